#!/usr/bin/env python3
"""Hostile and broken clients against a real moe-gateway.

Usage:  python hostile_client_test.py BIN_DIR

Starts moe-router and two moe-gateways on 127.0.0.1 with a tiny model and
checks, with stock grpcio clients:
- bytes that are not the request message, and text fields that are not
  UTF-8, get INVALID_ARGUMENT naming the field;
- prompts longer than --max-prompt-bytes are refused, naming the flag, and
  messages far larger are not read;
- Tokenize waits for admission like Generate, leaves the queue at its
  deadline, and is refused when the queue is full;
- a client that opens streams and stops reading holds only the slots
  admission gives it: further streams are refused, the gateway's memory
  stays put, and when it reads again every token arrives.

Needs the moe_client package (ctest's fixture sdk_python_install). Exits 77
(skipped) when BIN_DIR has no moe-gateway. Last line: "N passed, M failed".
"""

import os
import sys
import tempfile
import time
import urllib.request

import grpc
from moe_client import Client, MoeError
from moe_client._proto import inference_pb2, inference_pb2_grpc
from moe_services import Service, make_tiny_model, run_checks

# A client window this small makes the gateway's writes wait for the
# client's reads after a few hundred bytes.
SLOW_READER_OPTIONS = [("grpc.http2.lookahead_bytes", 1024),
                       ("grpc.http2.bdp_probe", 0)]
LONG_GENERATION = 1500  # tokens; far more text than the window holds


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def varint_field(number, value):
    return varint(number << 3) + varint(value)


def expect_rpc_error(code, words, call):
    try:
        result = call()
        if hasattr(result, "__iter__") and not isinstance(result, bytes):
            list(result)
    except grpc.RpcError as error:
        assert error.code() == code, f"{error.code()} != {code}: {error.details()}"
        for word in words:
            assert word in error.details(), f"'{word}' not in '{error.details()}'"
        return
    raise AssertionError(f"no error, expected {code}")


def check_unparseable_requests(gateway, slow):
    channel = grpc.insecure_channel(gateway.address)
    generate = channel.unary_stream("/moe.v1.Inference/Generate")
    tokenize = channel.unary_unary("/moe.v1.Inference/Tokenize")
    max_tokens = varint_field(3, 4)
    expect_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, ["text: not valid UTF-8"],
                     lambda: generate(length_delimited(1, b"caf\xc3") + max_tokens,
                                      timeout=10))
    expect_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, ["stop[1]: not valid UTF-8"],
                     lambda: generate(length_delimited(1, b"ok") + max_tokens +
                                      length_delimited(8, b"x") +
                                      length_delimited(8, b"\xff"), timeout=10))
    expect_rpc_error(grpc.StatusCode.INVALID_ARGUMENT, ["text: not valid UTF-8"],
                     lambda: tokenize(length_delimited(1, b"\xed\xa0\x80"),
                                      timeout=10))
    expect_rpc_error(grpc.StatusCode.INVALID_ARGUMENT,
                     ["not a valid moe.v1.GenerateRequest"],
                     lambda: generate(b"\x0a\x7fabc", timeout=10))
    # The gateway still serves.
    with Client(gateway.address, timeout=30) as client:
        assert client.tokenize("still here")
    channel.close()


def check_prompt_bytes(gateway, slow):
    # The tiny model's context is 2048 tokens: 32 KiB of text at most.
    prompt = "word " * 200_000
    with Client(gateway.address, timeout=30) as client:
        for call in (lambda: client.generate_text(prompt, max_tokens=1),
                     lambda: client.tokenize(prompt)):
            try:
                call()
                raise AssertionError("a 1 MB prompt was taken")
            except MoeError as error:
                assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error.code
                assert "text: 1000000 bytes" in error.message, error.message
                assert "--max-prompt-bytes" in error.message, error.message
        # Messages beyond the prompt's room (1 MiB more) are not even read.
        try:
            client.tokenize("word " * 500_000)
            raise AssertionError("a 2.5 MB message was taken")
        except MoeError as error:
            assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED, error.code


def gateway_rss_kib(gateway):
    with open(f"/proc/{gateway.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def gateway_gauge(gateway, name):
    """The value of gauge `name` on the gateway's /metrics."""
    url = f"http://{gateway.metrics_address}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in {url}")


def eventually(condition, timeout=10):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def long_request():
    return inference_pb2.GenerateRequest(text="Once upon", ignore_eos=True,
                                         max_tokens=LONG_GENERATION,
                                         temperature=0, seed=1)


def read_rest(stream):
    """The token ids of a stream's remaining responses, and the last one."""
    tokens, last = [], None
    for response in stream:
        tokens.extend(response.token_ids)
        last = response
    return tokens, last


def check_slow_readers_and_admission(gateway, slow):
    """`slow` admits one request and queues one."""
    channel = grpc.insecure_channel(slow.address, options=SLOW_READER_OPTIONS)
    stub = inference_pb2_grpc.InferenceStub(channel)
    tokenize_request = inference_pb2.TokenizeRequest(text="hello")

    # A takes the one slot, reads its first response and stops reading.
    stream_a = stub.Generate(long_request(), timeout=120)
    first_a = next(stream_a)
    # Tokenize waits in the queue until its deadline, then leaves it: the
    # second one waits too instead of finding the queue full.
    for _ in range(2):
        expect_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, [],
                         lambda: stub.Tokenize(tokenize_request, timeout=1))
        eventually(lambda: gateway_gauge(slow, "moe_gateway_requests_queued") == 0)
    # B takes the queue's place; then neither kind of call finds room.
    stream_b = stub.Generate(long_request(), timeout=120)
    eventually(lambda: gateway_gauge(slow, "moe_gateway_requests_queued") == 1)
    expect_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, [],
                     lambda: stub.Tokenize(tokenize_request, timeout=10))
    rss_before = gateway_rss_kib(slow)
    for _ in range(200):
        expect_rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, [],
                         lambda: stub.Generate(long_request(), timeout=10))
    # A's router call ended long ago (1,500 tiny-model tokens); its text
    # waits for the reader without taking more memory.
    time.sleep(2)
    rss_after = gateway_rss_kib(slow)
    assert rss_after - rss_before < 32 * 1024, (rss_before, rss_after)
    # A still holds the one slot, B the queue's place.
    assert gateway_gauge(slow, "moe_gateway_requests_running") == 1
    assert gateway_gauge(slow, "moe_gateway_requests_queued") == 1

    # Reading again, every token arrives, A's then B's.
    tokens_a, last_a = read_rest(stream_a)
    tokens_a = list(first_a.token_ids) + tokens_a
    assert len(tokens_a) == LONG_GENERATION, len(tokens_a)
    assert last_a.usage.completion_tokens == LONG_GENERATION
    tokens_b, last_b = read_rest(stream_b)
    assert tokens_b == tokens_a, "the same greedy request, the same tokens"
    assert stub.Tokenize(tokenize_request, timeout=10).token_ids
    channel.close()


CHECKS = [check_unparseable_requests, check_prompt_bytes,
          check_slow_readers_and_admission]


def main():
    bin_dir = sys.argv[1]
    if not os.path.exists(os.path.join(bin_dir, "moe-gateway")):
        print(f"SKIP: no moe-gateway in {bin_dir}")
        return 77
    with tempfile.TemporaryDirectory() as work:
        model = make_tiny_model(bin_dir, work)
        services = []
        try:
            router = Service("moe-router", [
                os.path.join(bin_dir, "moe-router"), "--model", model,
                "--listen", "127.0.0.1:0"])
            services.append(router)
            gateway_args = [os.path.join(bin_dir, "moe-gateway"), "--model", model,
                            "--routers", router.address, "--listen", "127.0.0.1:0"]
            gateway = Service("moe-gateway", gateway_args)
            services.append(gateway)
            slow = Service("moe-gateway", gateway_args + [
                "--max-in-flight", "1", "--max-queued", "1",
                "--metrics-listen", "127.0.0.1:0"])
            services.append(slow)
            passed, failed = run_checks(CHECKS, gateway, slow)
        finally:
            for service in reversed(services):
                service.stop()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
