#!/usr/bin/env python3
"""moe-serve next to PyTorch's MixtralForCausalLM on the same BF16 checkpoint.

usage: torch_peer.py --bin BIN_DIR [--device cuda|cpu] [--out DIR]
                     [--batches 1,16,64] [--new-tokens N] [--peer-layers N]

Needs: torch and transformers (the GPU machine has both), and the programs
moe-make-model, moe-plan, moe-expert-worker and moe-generate in BIN_DIR.

Two parts, in one run:

1. Reference. A small random Mixtral checkpoint (BF16, written by
   moe-make-model) is loaded by transformers' MixtralForCausalLM in float32,
   which shares no code with moe-serve. moe-serve runs the same prompt with its
   experts on one expert worker; with --device cuda the worker holds them on
   GPU 0 (BF16 products) and the router's forward pass runs there too. Checked:
   the prompt's teacher-forced logits (largest difference over the largest
   reference logit: 1e-3 on the CPU, whose products are float32; 5e-2 on the
   GPU, whose products and KV cache are BF16, as in the cluster tests), and
   the greedy tokens (equal on the CPU; on the GPU a BF16 near tie may change
   one, so their agreement is reported, not checked).

2. Peer. Decode tokens/s at each batch size on a Mixtral-8x7B-shaped
   checkpoint cut to --peer-layers layers (the tiny one on the CPU):
   moe-generate --batch B against MixtralForCausalLM.generate in BF16, eager
   and torch.compile'd with a static KV cache. Both time only decode steps
   (N new tokens less the first, which the prefill produces).

Prints a table and writes DIR/torch_peer.json. Exit code 0 when the reference
checks pass.
"""

import argparse
import glob
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import MixtralForCausalLM

TINY_SHAPE = dict(hidden=256, intermediate=512, heads=8, kv_heads=4, experts=8,
                  vocab=512, layers=2)
# Mixtral-8x7B's layer (hidden 4096, 8 experts of 14336, 32 heads of 128 with
# 8 KV heads, vocabulary 32000).
MIXTRAL_SHAPE = dict(hidden=4096, intermediate=14336, heads=32, kv_heads=8,
                     experts=8, vocab=32000, layers=1)
LOGITS_TOLERANCE = {"cpu": 1e-3, "cuda": 5e-2}
PROMPT_LENGTH = 24
GREEDY_TOKENS = 12


def program_environment(bin_dir):
    """The programs' environment: with scripts/gpu-bundle.sh's bundle, the
    library path and PATH (its spm_train) that its env.sh sets, for the
    programs only, not this Python."""
    environment = dict(os.environ)
    env_sh = os.path.join(bin_dir, os.pardir, "env.sh")
    if os.path.isfile(env_sh):
        paths = subprocess.run(
            ["bash", "-c",
             'source "$0" && printf "%s\\n%s" "$LD_LIBRARY_PATH" "$PATH"',
             env_sh], check=True, capture_output=True, text=True).stdout
        environment["LD_LIBRARY_PATH"], environment["PATH"] = paths.split("\n")
    return environment


def tokenizer_corpus():
    """Text to train the checkpoint's tokenizer on, wherever Python runs:
    the standard library's modules (enough for 32000 pieces)."""
    return sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py")))


def make_model(bin_dir, out, shape, seed=7):
    environment = program_environment(bin_dir)
    subprocess.run(
        [os.path.join(bin_dir, "moe-make-model"), "--out", out, "--arch",
         "mixtral", "--dtype", "bf16", "--seed", str(seed),
         "--hidden", str(shape["hidden"]), "--intermediate",
         str(shape["intermediate"]), "--heads", str(shape["heads"]),
         "--kv-heads", str(shape["kv_heads"]), "--experts",
         str(shape["experts"]), "--vocab", str(shape["vocab"]), "--layers",
         str(shape["layers"]), "--max-position", "4096", "--corpus",
         ",".join(tokenizer_corpus())],
        check=True, stdout=subprocess.DEVNULL, env=environment)
    plan = os.path.join(out, "plan.json")
    subprocess.run([os.path.join(bin_dir, "moe-plan"), "--model", out,
                    "--workers", "w0=1TiB", "--out", plan],
                   check=True, stdout=subprocess.DEVNULL, env=environment)
    return plan


class MoeServe:
    """One expert worker holding every expert, and moe-generate against it."""

    def __init__(self, bin_dir, model, plan, device, work):
        self.bin_dir, self.model, self.plan, self.device = (bin_dir, model,
                                                            plan, device)
        self.environment = program_environment(bin_dir)
        worker = [os.path.join(bin_dir, "moe-expert-worker"), "--model", model,
                  "--plan", plan, "--worker-id", "w0"]
        if device == "cuda":
            worker += ["--device", "0", "--expert-precision", "bf16"]
        log_path = os.path.join(work, "worker.log")
        with open(log_path, "w") as log:
            self.worker = subprocess.Popen(worker, stdout=subprocess.PIPE,
                                           stderr=log, text=True,
                                           env=self.environment)
        ready, _, _ = select.select([self.worker.stdout], [], [], 300)
        line = self.worker.stdout.readline() if ready else ""
        match = re.search(r"listening on (\S+)", line)
        if not match:
            self.worker.kill()
            with open(log_path) as log:
                raise RuntimeError("moe-expert-worker did not start: " +
                                   line + log.read())
        self.address = match.group(1)

    def close(self):
        self.worker.terminate()
        self.worker.wait(timeout=30)

    def generate(self, ids, *flags):
        command = [os.path.join(self.bin_dir, "moe-generate"), "--model",
                   self.model, "--plan", self.plan, "--workers",
                   "w0=" + self.address, "--prompt-ids",
                   ",".join(map(str, ids))] + list(flags)
        if self.device == "cuda":
            command += ["--router-device", "0"]
        result = subprocess.run(command, capture_output=True, text=True,
                                env=self.environment)
        if result.returncode != 0:
            raise RuntimeError(" ".join(command) + " failed: " + result.stderr)
        return result

    def logits(self, ids, work):
        path = os.path.join(work, "logits.npy")
        self.generate(ids, "--logits-out", path)
        return np.load(path).astype(np.float64)

    def greedy(self, ids, n):
        out = self.generate(ids, "--max-tokens", str(n), "--ignore-eos",
                            "--output-ids").stdout
        return [int(t) for t in out.strip().split(",")]

    def decode_window(self, ids, batch, n):
        """(tokens, seconds) of the decode steps of one sampled run."""
        err = self.generate(ids, "--batch", str(batch), "--max-tokens", str(n),
                            "--ignore-eos", "--temperature", "1",
                            "--seed", "1").stderr
        rate = float(re.search(r"decode ([0-9.]+) tok/s", err).group(1))
        window = re.search(r"([0-9]+) tokens in ([0-9.]+) s", err)
        if window:  # --batch above 1
            return int(window.group(1)), float(window.group(2))
        return n - 1, (n - 1) / max(rate, 1e-9)

    def decode_tokens_per_second(self, ids, batch, n):
        """Each run is a new process: the window of n new tokens less that
        of n / 2 leaves out what its first steps cost once (cuBLASLt plans,
        lazily loaded kernels, growing buffers)."""
        tokens, seconds = self.decode_window(ids, batch, n)
        half_tokens, half_seconds = self.decode_window(ids, batch,
                                                       max(2, n // 2))
        return (tokens - half_tokens) / max(seconds - half_seconds, 1e-9)


def load_hf(model_dir, dtype, device, **options):
    model = MixtralForCausalLM.from_pretrained(model_dir, dtype=dtype,
                                               **options)
    return model.to(device).eval()


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def hf_generate(model, ids, n, **options):
    return model.generate(ids, max_new_tokens=n, min_new_tokens=n,
                          pad_token_id=0, **options)


# Sampled, as moe-generate --temperature 1 samples: the rows of a batch
# diverge after their first token and route to different experts.
SAMPLED = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)


def hf_decode_tokens_per_second(model, ids, n, device, **options):
    """Decode steps only: the time of n new tokens less that of the first
    (the prefill), the median of three, after each shape ran twice (for
    torch.compile, its compilation and CUDA graph recording)."""
    def seconds(tokens):
        synchronize(device)
        start = time.perf_counter()
        hf_generate(model, ids, tokens, **SAMPLED, **options)
        synchronize(device)
        return time.perf_counter() - start
    for _ in range(2):
        seconds(1)
        seconds(n)
    windows = sorted(seconds(n) - seconds(1) for _ in range(3))
    return ids.shape[0] * (n - 1) / max(windows[1], 1e-9)


def check_reference(args, work):
    """Part 1: logits and greedy tokens against MixtralForCausalLM (float32)."""
    model_dir = os.path.join(work, "tiny")
    plan = make_model(args.bin, model_dir, TINY_SHAPE)
    rng = np.random.default_rng(3)
    prompt = rng.integers(3, TINY_SHAPE["vocab"], PROMPT_LENGTH).tolist()
    # The experts as a plain loop, the implementation closest to the math.
    reference = load_hf(model_dir, torch.float32, args.device,
                        experts_implementation="eager")
    ids = torch.tensor([prompt], device=args.device)
    with torch.no_grad():
        expected = reference(ids).logits[0].double().cpu().numpy()
    expected_tokens = hf_generate(reference, ids, GREEDY_TOKENS,
                                  do_sample=False)[0, len(prompt):]
    expected_tokens = expected_tokens.tolist()
    del reference

    serve = MoeServe(args.bin, model_dir, plan, args.device, work)
    try:
        actual = serve.logits(prompt, work)
        tokens = serve.greedy(prompt, GREEDY_TOKENS)
    finally:
        serve.close()
    error = float(np.abs(actual - expected).max() / np.abs(expected).max())
    agree = next((i for i, (a, b) in enumerate(zip(tokens, expected_tokens))
                  if a != b), len(expected_tokens))
    tolerance = LOGITS_TOLERANCE[args.device]
    failures = []
    if actual.shape != expected.shape:
        failures.append(f"logits shape {actual.shape} != {expected.shape}")
    elif not error <= tolerance:
        failures.append(f"logits error {error:.2e} > {tolerance:.0e}")
    if args.device == "cpu" and tokens != expected_tokens:
        failures.append(f"greedy tokens {tokens} != {expected_tokens}")
    print(f"reference: logits error {error:.2e} (tolerance {tolerance:.0e}), "
          f"greedy tokens equal for {agree} of {len(expected_tokens)}")
    return {"logits_error": error, "tolerance": tolerance,
            "greedy_tokens_equal": agree, "greedy_tokens": len(expected_tokens),
            "failures": failures}


def measured(row, side, rate):
    """Records and prints one number as soon as it is measured."""
    row[side] = rate
    print(f"{side}, batch {row['batch']}: {rate:.1f} decode tokens/s",
          flush=True)


def measure_peer(args, work):
    """Part 2: decode tokens/s of moe-serve and of PyTorch, side by side."""
    base = TINY_SHAPE if args.device == "cpu" else MIXTRAL_SHAPE
    shape = dict(base, layers=args.peer_layers or base["layers"])
    model_dir = os.path.join(work, "peer")
    plan = make_model(args.bin, model_dir, shape)
    prompt = np.random.default_rng(5).integers(
        3, shape["vocab"], PROMPT_LENGTH).tolist()
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    serve = MoeServe(args.bin, model_dir, plan, args.device, work)
    try:
        for batch in batches:
            rows.append({"batch": batch})
            measured(rows[-1], "moe_serve", serve.decode_tokens_per_second(
                prompt, batch, args.new_tokens))
    finally:
        serve.close()

    model = load_hf(model_dir, torch.bfloat16, args.device)
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([prompt] * row["batch"], device=args.device)
            measured(row, "torch_eager", hf_decode_tokens_per_second(
                model, ids, args.new_tokens, args.device))
        # Compiled once here, not again by generate (disable_compile), with
        # room for one graph per batch size and step kind.
        torch._dynamo.config.cache_size_limit = 64
        model.forward = torch.compile(model.forward, mode="reduce-overhead")
        for row in rows:
            ids = torch.tensor([prompt] * row["batch"], device=args.device)
            measured(row, "torch_compile", hf_decode_tokens_per_second(
                model, ids, args.new_tokens, args.device,
                cache_implementation="static", disable_compile=True))
    print(f"peer: {shape}, prompt {PROMPT_LENGTH}, {args.new_tokens} new tokens "
          "sampled at temperature 1, decode tokens/s")
    print("| batch | moe-serve | PyTorch eager | PyTorch torch.compile |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['batch']} | {row['moe_serve']:.1f} | "
              f"{row['torch_eager']:.1f} | {row['torch_compile']:.1f} |")
    return {"shape": shape, "new_tokens": args.new_tokens, "rows": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True, help="moe-serve programs")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", default=None, help="where to write the JSON")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--peer-layers", type=int, default=0,
                        help="layers of the peer checkpoint (default: 2 on the "
                        "CPU, 1 on the GPU)")
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("torch_peer: no CUDA device for --device cuda", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="torch_peer_") as work:
        result = {"device": args.device,
                  "device_name": (torch.cuda.get_device_name(0)
                                  if args.device == "cuda" else "cpu"),
                  "torch": torch.__version__,
                  "reference": check_reference(args, work)}
        if not args.skip_peer:
            result["peer"] = measure_peer(args, work)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "torch_peer.json"), "w") as f:
            json.dump(result, f, indent=2)
    for failure in result["reference"]["failures"]:
        print("FAILED:", failure)
    return 1 if result["reference"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
