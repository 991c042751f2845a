#!/usr/bin/env python3
"""The Python client (sdk/python) against a real gateway.

Usage:  python sdk_python_test.py BIN_DIR

Needs the moe_client package installed in this Python (ctest's fixture
sdk_python_install does it). Makes a tiny random Mixtral FP8 model with
moe-make-model, starts moe-router and moe-gateway on 127.0.0.1 (ports from
their "listening on" lines), and checks the client end to end: model info,
tokenize / detokenize, streamed generation (the chunks concatenate to the
detokenization of the generated tokens), seeds, stop strings, token-id
prompts, errors, cancellation and deadlines.

Exits 77 (skipped) when BIN_DIR has no moe-gateway. Last line: "N passed,
M failed".
"""

import os
import subprocess
import sys
import tempfile

import grpc
from moe_client import Client, MoeError
from moe_services import Service, make_tiny_model, run_checks

PROMPT = "The licensee may copy"


def expect_error(code, words, call):
    try:
        call()
    except MoeError as error:
        assert error.code == code, f"{error.code} != {code}: {error.message}"
        for word in words:
            assert word in error.message, f"'{word}' not in '{error.message}'"
        return error
    raise AssertionError(f"no error, expected {code}")


def check_model_info(client, model):
    info = client.model_info()
    assert info.name == os.path.basename(model), info
    assert (info.architecture, info.num_layers, info.num_experts) == ("mixtral", 2, 8), info
    assert (info.hidden_size, info.vocab_size, info.weight_dtype) == (64, 500, "fp8"), info
    assert info.top_k >= 1 and info.context_length > 0, info


def check_tokenize(client, model):
    info = client.model_info()
    ids = client.tokenize(PROMPT)
    assert ids and all(0 <= i < info.vocab_size for i in ids), ids
    assert client.detokenize(ids) == PROMPT, client.detokenize(ids)
    with_special = client.tokenize(PROMPT, add_special_tokens=True)
    if info.bos_token_id is None:
        assert with_special == ids, with_special
    else:
        assert with_special == [info.bos_token_id] + ids, with_special


def sample(client, **kwargs):
    params = dict(max_tokens=16, ignore_eos=True, temperature=1.0, seed=7)
    params.update(kwargs)
    return client.generate(PROMPT, **params)


def check_streamed_generation(client, model):
    completion = sample(client)
    chunks = list(completion)
    assert len(chunks) > 1, f"not streamed: {chunks}"
    assert "".join(chunks) == completion.text
    assert len(completion.token_ids) == 16, completion.token_ids
    assert completion.text == client.detokenize(completion.token_ids)
    assert completion.finish_reason == "length", completion.finish_reason
    assert completion.usage.completion_tokens == 16, completion.usage
    prompt_tokens = len(client.tokenize(PROMPT, add_special_tokens=True))
    assert completion.usage.prompt_tokens == prompt_tokens, completion.usage
    assert completion.request_id


def check_seeds(client, model):
    a = client.generate_text(PROMPT, max_tokens=16, ignore_eos=True, seed=5)
    b = client.generate_text(PROMPT, max_tokens=16, ignore_eos=True, seed=5)
    c = client.generate_text(PROMPT, max_tokens=16, ignore_eos=True, seed=6)
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.token_ids != c.token_ids


def check_stop_string(client, model):
    full = sample(client, max_tokens=24).result().text
    stop = full[len(full) // 2:len(full) // 2 + 2]
    assert stop, f"text too short: {full!r}"
    stopped = sample(client, max_tokens=24, stop=[stop]).result()
    assert stopped.finish_reason == "stop", stopped.finish_reason
    assert stopped.text == full[:full.find(stop)], (stopped.text, full, stop)


def check_token_id_prompt(client, model):
    ids = client.tokenize(PROMPT, add_special_tokens=True)
    by_text = client.generate_text(PROMPT, max_tokens=8, temperature=0)
    by_ids = client.generate_text(ids, max_tokens=8, temperature=0)
    assert by_ids.token_ids == by_text.token_ids and by_ids.text == by_text.text
    assert by_ids.usage.prompt_tokens == len(ids), by_ids.usage


def check_errors(client, model):
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, ["max_tokens"],
                 lambda: client.generate_text(PROMPT, max_tokens=0))
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, ["top_p"],
                 lambda: client.generate_text(PROMPT, top_p=1.5))
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, [],
                 lambda: client.detokenize([10 ** 6]))
    unreachable = Client("127.0.0.1:1", max_retries=1)
    expect_error(grpc.StatusCode.UNAVAILABLE, [],
                 lambda: unreachable.model_info(timeout=10))


def check_cancel_and_deadline(client, model):
    completion = sample(client, max_tokens=200)
    chunks = iter(completion)
    next(chunks)
    completion.cancel()
    expect_error(grpc.StatusCode.CANCELLED, [], lambda: list(chunks))
    expect_error(grpc.StatusCode.DEADLINE_EXCEEDED, [],
                 lambda: sample(client, max_tokens=200, timeout=0.001).result())
    # The gateway still serves after both.
    assert sample(client, max_tokens=4).result().finish_reason == "length"


def check_tls(bin_dir, model, work, services):
    """A gateway serving TLS (scripts/make-certs.sh): reached with the CA,
    with a client certificate too, and refused to a plaintext client."""
    certs = os.path.join(work, "certs")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["bash", os.path.join(root, "scripts", "make-certs.sh"), certs,
                    "gateway", "router", "client"], check=True,
                   stdout=subprocess.DEVNULL)
    pem = lambda name: os.path.join(certs, name)
    tls = lambda name: ["--tls-cert", pem(name + ".pem"), "--tls-key",
                        pem(name + ".key"), "--tls-ca", pem("ca.pem")]
    # The gateway reaches its router with the same certificate: mTLS.
    services.append(Service("moe-router", [
        os.path.join(bin_dir, "moe-router"), "--model", model,
        "--listen", "127.0.0.1:0"] + tls("router")))
    services.append(Service("moe-gateway", [
        os.path.join(bin_dir, "moe-gateway"), "--model", model,
        "--routers", services[-1].address, "--listen", "127.0.0.1:0"] + tls("gateway")))
    address = services[-1].address
    with Client(address, timeout=60, tls_ca=pem("ca.pem")) as client:
        assert client.generate_text(PROMPT, max_tokens=3, ignore_eos=True).usage \
            .completion_tokens == 3
    with Client(address, timeout=60, tls_ca=pem("ca.pem"), tls_cert=pem("client.pem"),
                tls_key=pem("client.key")) as client:
        assert client.tokenize("hello")
    with Client(address, max_retries=0) as plaintext:
        expect_error(grpc.StatusCode.UNAVAILABLE, [],
                     lambda: plaintext.model_info(timeout=10))
    try:
        Client(address, tls_cert=pem("client.pem"))
        raise AssertionError("tls_cert without tls_key was accepted")
    except ValueError as error:
        assert "come together" in str(error), error


CHECKS = [check_model_info, check_tokenize, check_streamed_generation,
          check_seeds, check_stop_string, check_token_id_prompt, check_errors,
          check_cancel_and_deadline]


def main():
    bin_dir = sys.argv[1]
    if not os.path.exists(os.path.join(bin_dir, "moe-gateway")):
        print(f"SKIP: no moe-gateway in {bin_dir}")
        return 77
    with tempfile.TemporaryDirectory() as work:
        model = make_tiny_model(bin_dir, work)
        services = []
        try:
            services.append(Service("moe-router", [
                os.path.join(bin_dir, "moe-router"), "--model", model,
                "--listen", "127.0.0.1:0"]))
            services.append(Service("moe-gateway", [
                os.path.join(bin_dir, "moe-gateway"), "--model", model,
                "--routers", services[0].address, "--listen", "127.0.0.1:0"]))
            with Client(services[1].address, timeout=60) as client:
                passed, failed = run_checks(CHECKS, client, model)
            tls_passed, tls_failed = run_checks([check_tls], bin_dir, model,
                                                work, services)
            passed += tls_passed
            failed += tls_failed
        finally:
            for service in reversed(services):
                service.stop()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
