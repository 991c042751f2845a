#!/usr/bin/env python3
"""Independent check of the GGUF import against the PyPI `gguf` package.

Usage:  python gguf_reference_test.py BIN_DIR GGUF_FILE

Needs: numpy, safetensors, gguf (requirements.txt next to this file).

Runs `moe-upcycle --experts 1 --noise 0 --dtype f32` on the GGUF (so the
checkpoint holds the imported dense weights unchanged, in float32), then
compares every tensor with gguf-py's own reader and dequantizer
(`gguf.GGUFReader`, `gguf.quants.dequantize`). Q and K are compared after
undoing convert_hf_to_gguf.py's `permute` (written here from that script).
Also checks config.json against the GGUF metadata and tokenizer.json's vocab
and merges against tokenizer.ggml.tokens / merges.

Exit code 0 on success, 77 (skipped) when the GGUF file is absent.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import load_file

LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "block_sparse_moe.experts.0.w1",
    "ffn_up": "block_sparse_moe.experts.0.w3",
    "ffn_down": "block_sparse_moe.experts.0.w2",
}


def hf_name(gguf_name):
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output_norm.weight":
        return "model.norm.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    blk, layer, part, _ = gguf_name.split(".")
    assert blk == "blk", gguf_name
    return f"model.layers.{layer}.{LAYER_NAMES[part]}.weight"


def unpermute(w, n_head):
    # convert_hf_to_gguf.py: w.reshape(n_head, 2, rows // n_head // 2, cols)
    #                         .swapaxes(1, 2).reshape(w.shape)
    rows, cols = w.shape
    return (w.reshape(n_head, rows // n_head // 2, 2, cols)
            .swapaxes(1, 2).reshape(rows, cols))


def field(reader, key):
    f = reader.fields[key]
    value = f.parts[f.data[0]]
    if f.types[0].name == "STRING":
        return bytes(value).decode("utf-8")
    return value.tolist()[0]


def string_array(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def main():
    bin_dir, gguf_path = sys.argv[1], sys.argv[2]
    if not os.path.exists(gguf_path):
        print(f"SKIPPED: {gguf_path} is missing: run scripts/get-demo-model.sh")
        return 77
    reader = GGUFReader(gguf_path)
    failures = []
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([os.path.join(bin_dir, "moe-upcycle"), "--model",
                        gguf_path, "--out", out, "--experts", "1", "--noise",
                        "0", "--dtype", "f32", "--layout", "mixtral"],
                       check=True, stdout=subprocess.DEVNULL)
        tensors = load_file(os.path.join(out, "model.safetensors"))
        config = json.load(open(os.path.join(out, "config.json")))
        tokenizer = json.load(open(os.path.join(out, "tokenizer.json")))

    heads = field(reader, "llama.attention.head_count")
    kv_heads = field(reader, "llama.attention.head_count_kv")
    expected_config = {
        "hidden_size": field(reader, "llama.embedding_length"),
        "intermediate_size": field(reader, "llama.feed_forward_length"),
        "num_hidden_layers": field(reader, "llama.block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": field(reader, "llama.context_length"),
        "bos_token_id": field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": field(reader, "tokenizer.ggml.eos_token_id"),
        "tie_word_embeddings": not any(t.name == "output.weight"
                                       for t in reader.tensors),
    }
    for key, value in expected_config.items():
        if config.get(key) != value:
            failures.append(f"config {key}: {config.get(key)} != {value}")
    for key, gguf_key in [("rope_theta", "llama.rope.freq_base"),
                          ("rms_norm_eps",
                           "llama.attention.layer_norm_rms_epsilon")]:
        if not np.isclose(config[key], field(reader, gguf_key), rtol=1e-6):
            failures.append(f"config {key}: {config[key]}")

    compared = 0
    types = set()
    for t in reader.tensors:
        name = hf_name(t.name)
        ours = tensors.get(name)
        if ours is None:
            failures.append(f"{name} missing")
            continue
        theirs = dequantize(t.data, t.tensor_type).astype(np.float32)
        theirs = theirs.reshape([int(d) for d in reversed(t.shape)])
        if t.name.endswith("attn_q.weight"):
            theirs = unpermute(theirs, heads)
        elif t.name.endswith("attn_k.weight"):
            theirs = unpermute(theirs, kv_heads)
        if ours.shape != theirs.shape:
            failures.append(f"{name}: shape {ours.shape} != {theirs.shape}")
            continue
        # Both decode d·q (+ m) in float32: equal up to one rounding.
        if not np.allclose(ours, theirs, rtol=1e-6, atol=1e-7):
            worst = np.max(np.abs(ours - theirs))
            failures.append(f"{name} ({t.tensor_type.name}): max diff {worst}")
        compared += 1
        types.add(t.tensor_type.name)

    if compared == 0 or compared != len(reader.tensors):
        failures.append(f"compared {compared} of {len(reader.tensors)} tensors")

    tokens = string_array(reader, "tokenizer.ggml.tokens")
    vocab = tokenizer["model"]["vocab"]
    added = {a["id"]: a["content"] for a in tokenizer["added_tokens"]}
    for i, token in enumerate(tokens):
        if vocab.get(token) != i and added.get(i) != token:
            failures.append(f"token {i} {token!r} not in tokenizer.json")
            break
    merges = [m if isinstance(m, str) else " ".join(m)
              for m in tokenizer["model"]["merges"]]
    if merges != string_array(reader, "tokenizer.ggml.merges"):
        failures.append("tokenizer.json merges differ from the GGUF's")

    for failure in failures:
        print("FAIL:", failure)
    print(f"{compared} tensors compared ({', '.join(sorted(types))}), "
          f"{len(tokens)} tokens, {len(merges)} merges; "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
