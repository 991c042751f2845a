#!/usr/bin/env bash
# The command-line tools as a user runs them: moe-make-model, moe-quantize and
# moe-generate for Mixtral and Skywork-MoE, BF16 and FP8, moe-plan,
# moe-upcycle's refusals, and their errors.
set -u
bin="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

source "$(dirname "$0")/checks.sh"

shape=(--hidden 64 --layers 2 --heads 4 --kv-heads 2 --experts 8 --intermediate 96 --vocab 500)
for arch in mixtral skywork_moe; do
  for dtype in bf16 fp8; do
    model="$work/$arch-$dtype"
    check "make $arch $dtype" "$bin/moe-make-model" --out "$model" --arch "$arch" --dtype "$dtype" "${shape[@]}"
    check "generate $arch $dtype" "$bin/moe-generate" --model "$model" \
      --prompt "The licensee may copy" --max-tokens 12 --ignore-eos
    if ! grep -Eq '^prefill [0-9.]+ tok/s, decode [0-9.]+ tok/s$' "$work/err"; then
      failed=$((failed + 1)); echo "FAIL: $arch $dtype: no speed line on stderr"; cat "$work/err"
    fi
    if [ ! -s "$work/out" ]; then
      failed=$((failed + 1)); echo "FAIL: $arch $dtype: no text on stdout"
    fi
  done
done

# Seeded sampling is reproducible; different seeds differ.
model="$work/mixtral-bf16"
sample=(--model "$model" --prompt "Permission is granted" --max-tokens 24 --ignore-eos
        --temperature 1.5 --top-k 50 --top-p 0.95)
"$bin/moe-generate" "${sample[@]}" --seed 5 >"$work/a" 2>/dev/null
"$bin/moe-generate" "${sample[@]}" --seed 5 >"$work/b" 2>/dev/null
"$bin/moe-generate" "${sample[@]}" --seed 6 >"$work/c" 2>/dev/null
if cmp -s "$work/a" "$work/b" && ! cmp -s "$work/a" "$work/c"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: seeded sampling not reproducible"
fi

# Skywork-MoE configs spell out its gating keys as released, also through
# moe-quantize (which keeps the input's meaning).
for config in "$work/skywork_moe-bf16/config.json" "$work/skywork_moe-fp8/config.json"; do
  if grep -q '"moe_feature_no_mul_topk": true' "$config" &&
    grep -q '"moe_2layer_gate": false' "$config" &&
    grep -q '"moe_use_mixtral_gating": false' "$config"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $config lacks the released gating keys"; cat "$config"
  fi
done
check "quantize skywork" "$bin/moe-quantize" --model "$work/skywork_moe-bf16" --out "$work/skywork-quantized"
if grep -q '"moe_feature_no_mul_topk": true' "$work/skywork-quantized/config.json"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the quantized Skywork config lost moe_feature_no_mul_topk"
fi
sed 's/"moe_feature_no_mul_topk": true,//' "$work/skywork_moe-bf16/config.json" >"$work/absent.json"
mkdir -p "$work/skywork-absent"
cp "$work/skywork_moe-bf16"/* "$work/skywork-absent/"
cp "$work/absent.json" "$work/skywork-absent/config.json"
check "quantize skywork absent key" "$bin/moe-quantize" --model "$work/skywork-absent" --out "$work/skywork-absent-q"
if grep -q '"moe_feature_no_mul_topk": false' "$work/skywork-absent-q/config.json"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: quantizing a config without moe_feature_no_mul_topk did not write its default, false"
fi

# moe-quantize output serves and has the FP8 config.
check "quantize" "$bin/moe-quantize" --model "$model" --out "$work/quantized" --scales channel
if grep -q '"quant_method": "fp8"' "$work/quantized/config.json"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: quantized config lacks quant_method fp8"
fi
check "generate quantized" "$bin/moe-generate" --model "$work/quantized" --prompt "Permission" --max-tokens 4

# Token ids in and out need no tokenizer.
cp -r "$model" "$work/no-tokenizer" && rm "$work/no-tokenizer/tokenizer.model"
check "ids without tokenizer" "$bin/moe-generate" --model "$work/no-tokenizer" \
  --prompt-ids 1,40,41,42 --output-ids --max-tokens 6 --ignore-eos
if grep -Eq '^[0-9]+(,[0-9]+){5}$' "$work/out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: --output-ids printed:"; cat "$work/out"
fi
expect_error "text without tokenizer" "tokenizer.model" "$bin/moe-generate" \
  --model "$work/no-tokenizer" --prompt-ids 1,40 --max-tokens 2

# --help lists each tool's own flags.
for tool in moe-generate:max_tokens moe-make-model:kv_heads moe-quantize:scales moe-plan:workers; do
  if "$bin/${tool%%:*}" --help 2>&1 | grep -q -- "--${tool##*:}"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: ${tool%%:*} --help lacks --${tool##*:}"
  fi
done

# Clear errors.
expect_error "missing model" "config.json" "$bin/moe-generate" --model "$work/none" --prompt x
expect_error "bad top-p" "top_p" "$bin/moe-generate" --model "$model" --prompt x --top-p 1.5
expect_error "bad token id" "token id 999999" "$bin/moe-generate" --model "$model" --prompt-ids 1,999999
cp -r "$model" "$work/truncated"
truncate -s -100 "$work/truncated/model.safetensors"
expect_error "truncated checkpoint" "truncated" "$bin/moe-generate" --model "$work/truncated" --prompt x
mkdir -p "$work/dense" && echo '{"model_type": "skywork", "hidden_size": 64}' > "$work/dense/config.json"
expect_error "dense skywork config" "Skywork-13B" "$bin/moe-generate" --model "$work/dense" --prompt x
expect_error "fp8 requantize" "already an FP8" "$bin/moe-quantize" --model "$work/mixtral-fp8" --out "$work/q2"

# moe-upcycle refuses what it cannot import, naming it.
printf 'GGUF\x09\x00\x00\x00' > "$work/v9.gguf"
expect_error "upcycle gguf version" "GGUF version 9 is not supported" \
  "$bin/moe-upcycle" --model "$work/v9.gguf" --out "$work/u"
expect_error "upcycle not gguf" "not a GGUF file" \
  "$bin/moe-upcycle" --model "$work/mixtral-bf16/config.json" --out "$work/u"
expect_error "upcycle moe input" 'model_type "mixtral" is not a dense llama model' \
  "$bin/moe-upcycle" --model "$work/mixtral-bf16" --out "$work/u"
expect_error "upcycle missing" "does not exist" \
  "$bin/moe-upcycle" --model "$work/none.gguf" --out "$work/u"
expect_error "upcycle bad dtype" "--dtype must be fp8, bf16 or f32" \
  "$bin/moe-upcycle" --model "$work/v9.gguf" --out "$work/u" --dtype int4

# moe-plan places Skywork-MoE's experts; a worker with half the memory holds
# fewer of them. The plan file reads back, and a damaged one is rejected.
skywork="$(dirname "$0")/../../docs/examples/skywork-moe-146b-config.json"
workers="w0=24GiB,w1=24GiB,w2=24GiB,w3=24GiB,w4=24GiB,w5=24GiB,w6=24GiB,w7=12GiB"
check "plan" "$bin/moe-plan" --config "$skywork" --workers "$workers" --out "$work/plan.json"
big=$(awk '$1 == "w0" { print $5 }' "$work/out")
small=$(awk '$1 == "w7" { print $5 }' "$work/out")
if [ -n "$big" ] && [ -n "$small" ] && [ "$small" -lt "$big" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: moe-plan gave w7 (12GiB) $small experts, w0 (24GiB) $big"; cat "$work/out"
fi
check "plan reads back" "$bin/moe-plan" --check "$work/plan.json"
# --copies: every expert on distinct workers, or the missing bytes said.
expect_error "plan copies missing memory" "2 copies of every expert need" \
  "$bin/moe-plan" --config "$skywork" --workers "$workers" --copies 2
check "plan with copies" "$bin/moe-plan" --config "$skywork" --copies 2 \
  --workers "w0=48GiB,w1=48GiB,w2=48GiB,w3=48GiB,w4=48GiB,w5=48GiB,w6=48GiB,w7=48GiB"
if grep -q "every expert on at least 2" "$work/out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: moe-plan --copies 2 left an expert on one worker"; cat "$work/out"
fi
check "plan with replicas" "$bin/moe-plan" --config "$skywork" --workers "$workers" --replicas 64
# --keep: planned again from itself, nothing moves; with a ninth worker,
# fewer experts move than from scratch.
check "plan kept" "$bin/moe-plan" --config "$skywork" --workers "$workers" --keep "$work/plan.json"
if grep -q "applying it loads 0 expert copies" "$work/out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: moe-plan --keep of its own plan moved experts"; cat "$work/out"
fi
check "plan kept, one more worker" "$bin/moe-plan" --config "$skywork" \
  --workers "$workers,w8=24GiB" --keep "$work/plan.json"
moved=$(awk '/applying it loads/ {print $(NF - 2)}' "$work/out")
held=$(awk '$1 == "w8" { print $5 }' "$work/out")
if [ -n "$moved" ] && [ -n "$held" ] && [ "$moved" -le $((held * 5 / 4)) ] && [ "$held" -gt 0 ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: moe-plan --keep with w8 moved $moved, w8 holds $held"; cat "$work/out"
fi
sed 's/"w3"]/"w9"]/' "$work/plan.json" >"$work/bad-plan.json"
expect_error "plan unknown worker" 'unknown worker "w9"' "$bin/moe-plan" --check "$work/bad-plan.json"
# --emit-kustomize names Kubernetes objects after the worker ids.
check "plan emits kustomize" "$bin/moe-plan" --check "$work/plan.json" --emit-kustomize "$work/k8s"
if [ -f "$work/k8s/worker-w7.yaml" ] && grep -q '"moe-worker-w7"' "$work/k8s/worker-w7.yaml" &&
    grep -q 'w7=dns:///moe-worker-w7:17011' "$work/k8s/kustomization.yaml"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: moe-plan --emit-kustomize wrote:"; ls "$work/k8s"
fi
expect_error "plan emits kustomize for an unnameable id" 'worker id "W_0" cannot name Kubernetes objects' \
  "$bin/moe-plan" --config "$skywork" --workers "W_0=200GiB" --emit-kustomize "$work/k8s-bad"
expect_error "plan too little memory" "bytes missing" "$bin/moe-plan" --config "$skywork" \
  --workers "w0=24GiB,w1=24GiB,w2=24GiB,w3=24GiB"
expect_error "plan bad worker item" '"w1=lots": "lots" is not a size' "$bin/moe-plan" \
  --config "$skywork" --workers "w0=24GiB,w1=lots"

# moe-plan --project: the router's GPU keeps room for its weights and the K/V
# cache, so it gets a small expert budget; the table lists each batch size.
router_workers="w0=2GiB,w1=22GiB,w2=22GiB,w3=22GiB,w4=22GiB,w5=22GiB,w6=22GiB,w7=22GiB"
check "plan projection" "$bin/moe-plan" --config "$skywork" --workers "$router_workers" \
  --project --gpu rtx4090
if grep -q 'tokens/s' "$work/out" && grep -Eq '^ +512 +[0-9.]+ .* (memory|compute|link|overhead) +(yes|no)$' "$work/out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: moe-plan --project printed no table"; cat "$work/out"
fi
expect_error "projection unknown gpu" '--gpu: unknown GPU "a100"' "$bin/moe-plan" \
  --config "$skywork" --workers "$router_workers" --project --gpu a100
expect_error "projection router too full" "worker w1: its GPU" "$bin/moe-plan" \
  --config "$skywork" --workers "$router_workers" --project --router-worker w1

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
