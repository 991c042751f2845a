"""A typed wrapper of the generated moe.v1.Inference stub."""

from __future__ import annotations

import dataclasses
import json
from typing import Iterator, List, Optional, Sequence, Union

import grpc

from moe_client._proto import finish_reason_pb2, inference_pb2, inference_pb2_grpc

_FINISH_REASONS = {
    finish_reason_pb2.FINISH_REASON_LENGTH: "length",
    finish_reason_pb2.FINISH_REASON_EOS: "eos",
    finish_reason_pb2.FINISH_REASON_STOP: "stop",
    finish_reason_pb2.FINISH_REASON_CANCELLED: "cancelled",
}


class MoeError(Exception):
    """A failed call: the gRPC status code and the server's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def _error(error: grpc.RpcError) -> MoeError:
    return MoeError(error.code(), error.details() or "")


@dataclasses.dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int  # generated tokens, stop or EOS included


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    architecture: str  # "mixtral" or "skywork_moe"
    num_layers: int
    num_experts: int  # per layer
    top_k: int  # experts per token
    hidden_size: int
    vocab_size: int
    context_length: int  # prompt + generated tokens, at most
    weight_dtype: str  # "fp8" or "bf16"
    placement_version: int
    bos_token_id: Optional[int]
    eos_token_ids: tuple


class Completion:
    """A generation: iterating it yields the text as it arrives (str chunks).

    Once the iteration ends, finish_reason ("length", "eos", "stop" or
    "cancelled"), usage, request_id, text and token_ids hold the whole result.
    Leaving the loop early, or cancel(), cancels the generation on the server.
    """

    def __init__(self, call):
        self._call = call
        self._iterated = False
        self.text = ""
        self.token_ids: List[int] = []
        self.request_id = ""
        self.finish_reason: Optional[str] = None
        self.usage: Optional[Usage] = None

    def __iter__(self) -> Iterator[str]:
        if self._iterated:
            raise RuntimeError("a Completion can be iterated once")
        self._iterated = True
        try:
            for response in self._call:
                self.request_id = response.request_id
                self.token_ids.extend(response.token_ids)
                self.text += response.text
                if response.finish_reason:
                    self.finish_reason = _FINISH_REASONS.get(
                        response.finish_reason, "unknown")
                    self.usage = Usage(response.usage.prompt_tokens,
                                       response.usage.completion_tokens)
                if response.text:
                    yield response.text
        except grpc.RpcError as error:
            raise _error(error) from None
        finally:
            if self.finish_reason is None:
                self._call.cancel()
        if self.finish_reason is None:
            raise MoeError(grpc.StatusCode.UNKNOWN,
                           "the Generate stream ended without a finish reason")

    def cancel(self) -> None:
        """Cancels the generation; the iteration then raises CANCELLED."""
        self._call.cancel()

    def result(self) -> "Completion":
        """Reads the rest of the stream; returns self."""
        for _ in self:
            pass
        return self


def _retry_service_config(max_retries: int) -> str:
    # gRPC retries a call only until the server has answered anything (its
    # response headers): never after text was received, which the caller
    # would otherwise get twice.
    return json.dumps({"methodConfig": [{
        "name": [{"service": "moe.v1.Inference"}],
        "retryPolicy": {
            "maxAttempts": max_retries + 1,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]})


class Client:
    """A client of a moe-serve gateway at `address` (host:port).

    Plaintext unless given `tls_ca` (the PEM file of the CA that signed the
    gateway's certificate; scripts/make-certs.sh writes ca.pem) and, where
    the gateway checks clients, `tls_cert` and `tls_key` (the client's
    certificate and key, PEM files). `api_key` is sent as "authorization:
    Bearer KEY" to a gateway that checks keys. `timeout` (seconds) is the default
    deadline of every call; each method takes its own. Calls failing with
    UNAVAILABLE before the server answered are retried up to `max_retries`
    times (gRPC caps attempts at 5 in all). Errors raise MoeError.
    """

    def __init__(self, address: str, *, timeout: Optional[float] = None,
                 max_retries: int = 3, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 api_key: Optional[str] = None):
        if max_retries > 0:
            options = [("grpc.service_config", _retry_service_config(max_retries)),
                       ("grpc.enable_retries", 1)]
        else:
            options = [("grpc.enable_retries", 0)]
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key come together")
        if tls_ca is None and tls_cert is None:
            self._channel = grpc.insecure_channel(address, options=options)
        else:
            def read(path: Optional[str]) -> Optional[bytes]:
                if path is None:
                    return None
                with open(path, "rb") as f:
                    return f.read()
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read(tls_ca), private_key=read(tls_key),
                certificate_chain=read(tls_cert))
            self._channel = grpc.secure_channel(address, credentials,
                                                options=options)
        self._stub = inference_pb2_grpc.InferenceStub(self._channel)
        self._timeout = timeout
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def generate(self, prompt: Union[str, Sequence[int]], *,
                 max_tokens: int = 16,
                 temperature: Optional[float] = None,
                 top_p: Optional[float] = None,
                 top_k: int = 0,
                 seed: Optional[int] = None,
                 stop: Sequence[str] = (),
                 ignore_eos: bool = False,
                 request_id: str = "",
                 timeout: Optional[float] = None) -> Completion:
        """Starts a generation of a text prompt, or of token ids as they are.

        Unset parameters take the server's defaults (temperature 1, top_p 1,
        a random seed); see protos/moe/v1/inference.proto for their ranges.
        """
        request = inference_pb2.GenerateRequest(
            max_tokens=max_tokens, top_k=top_k, stop=list(stop),
            ignore_eos=ignore_eos, request_id=request_id)
        if isinstance(prompt, str):
            request.text = prompt
        else:
            request.token_ids.ids.extend(prompt)
        if temperature is not None:
            request.temperature = temperature
        if top_p is not None:
            request.top_p = top_p
        if seed is not None:
            request.seed = seed
        return Completion(self._stub.Generate(request, timeout=self._deadline(timeout),
                                               metadata=self._metadata))

    def generate_text(self, prompt: Union[str, Sequence[int]],
                      **kwargs) -> Completion:
        """generate() read to the end: the whole text, finish reason, usage."""
        return self.generate(prompt, **kwargs).result()

    def tokenize(self, text: str, *, add_special_tokens: bool = False,
                 timeout: Optional[float] = None) -> List[int]:
        request = inference_pb2.TokenizeRequest(
            text=text, add_special_tokens=add_special_tokens)
        return list(self._unary(self._stub.Tokenize, request, timeout).token_ids)

    def detokenize(self, token_ids: Sequence[int], *,
                   timeout: Optional[float] = None) -> str:
        request = inference_pb2.DetokenizeRequest(token_ids=list(token_ids))
        return self._unary(self._stub.Detokenize, request, timeout).text

    def model_info(self, *, timeout: Optional[float] = None) -> ModelInfo:
        info = self._unary(self._stub.GetModelInfo,
                           inference_pb2.GetModelInfoRequest(), timeout)
        return ModelInfo(
            name=info.name, architecture=info.architecture,
            num_layers=info.num_layers, num_experts=info.num_experts,
            top_k=info.top_k, hidden_size=info.hidden_size,
            vocab_size=info.vocab_size, context_length=info.context_length,
            weight_dtype=info.weight_dtype,
            placement_version=info.placement_version,
            bos_token_id=None if info.bos_token_id < 0 else info.bos_token_id,
            eos_token_ids=tuple(info.eos_token_ids))

    def _deadline(self, timeout: Optional[float]) -> Optional[float]:
        return self._timeout if timeout is None else timeout

    def _unary(self, method, request, timeout: Optional[float]):
        try:
            return method(request, timeout=self._deadline(timeout),
                          metadata=self._metadata)
        except grpc.RpcError as error:
            raise _error(error) from None
