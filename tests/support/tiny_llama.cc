#include "tests/support/tiny_llama.h"

#include <cmath>
#include <random>

#include "tests/support/gguf_test_file.h"

namespace moe::testing {
namespace {

std::string Utf8(uint32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else {  // below 0x800 here
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return out;
}

// convert_hf_to_gguf.py's permute: rows (head, half i, j) of HF's
// rotate-half layout go to (head, j, i).
std::vector<float> PermuteForInterleavedRope(const std::vector<float>& hf,
                                             int heads, int64_t cols) {
  const int64_t rows = hf.size() / cols, head_dim = rows / heads;
  std::vector<float> out(hf.size());
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < head_dim / 2; ++j) {
        const int64_t from = h * head_dim + i * (head_dim / 2) + j;
        const int64_t to = h * head_dim + 2 * j + i;
        for (int64_t c = 0; c < cols; ++c)
          out[to * cols + c] = hf[from * cols + c];
      }
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> Gpt2ByteCharacters() {
  std::vector<std::string> characters(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                           (b >= 0xAE && b <= 0xFF);
    characters[b] = Utf8(printable ? b : next++);
  }
  return characters;
}

TinyLlama WriteTinyLlamaGguf(const TinyLlamaSpec& spec,
                             const std::string& name) {
  TinyLlama model;
  GgufTestFile file;
  std::mt19937_64 generator(spec.seed);
  const int head_dim = spec.hidden / spec.heads;
  file.AddString("general.architecture", "llama");
  file.AddUint32("llama.block_count", spec.layers);
  file.AddUint32("llama.context_length", 512);
  file.AddUint32("llama.embedding_length", spec.hidden);
  file.AddUint32("llama.feed_forward_length", spec.intermediate);
  file.AddUint32("llama.attention.head_count", spec.heads);
  file.AddUint32("llama.attention.head_count_kv", spec.kv_heads);
  file.AddUint32("llama.rope.dimension_count", head_dim);
  file.AddFloat32("llama.rope.freq_base", 10000.0f);
  file.AddFloat32("llama.attention.layer_norm_rms_epsilon", 1e-5f);

  std::vector<std::string> tokens = Gpt2ByteCharacters();
  tokens.push_back(
      "\xC4\xA0"
      "a");  // "Ġa": space + a
  std::vector<int32_t> types(tokens.size(), 1);
  tokens.push_back("<|endoftext|>");
  types.push_back(3);
  while (static_cast<int>(tokens.size()) < spec.vocab) {
    tokens.push_back("<extra_" + std::to_string(tokens.size()) + ">");
    types.push_back(4);
  }
  file.AddString("tokenizer.ggml.model", "gpt2");
  file.AddString("tokenizer.ggml.pre", "gpt2");
  file.AddStringArray("tokenizer.ggml.tokens", tokens);
  file.AddInt32Array("tokenizer.ggml.token_type", types);
  file.AddStringArray("tokenizer.ggml.merges", {"\xC4\xA0 a"});
  file.AddUint32("tokenizer.ggml.bos_token_id", 257);
  file.AddUint32("tokenizer.ggml.eos_token_id", 257);

  auto add = [&](const std::string& hf_name, const std::string& gguf_name,
                 int64_t rows, int64_t cols, double mean, double std,
                 uint32_t type, int permute_heads) {
    std::normal_distribution<float> normal(mean, std);
    std::vector<float> values(rows * cols);
    for (float& value : values) value = normal(generator);
    const std::vector<float> stored =
        permute_heads > 0
            ? PermuteForInterleavedRope(values, permute_heads, cols)
            : values;
    std::vector<uint64_t> dims = {static_cast<uint64_t>(cols)};
    if (rows > 1 || hf_name.find("norm") == std::string::npos) {
      dims.push_back(rows);
    }
    file.AddTensor(gguf_name, dims, type, EncodeGgml(type, stored));
    model.hf_tensors[hf_name] = std::move(values);
  };
  const int64_t h = spec.hidden, inter = spec.intermediate;
  const double in_h = 1 / std::sqrt(double(h));
  add("model.embed_tokens.weight", "token_embd.weight", spec.vocab, h, 0, 1,
      spec.type, 0);
  for (int layer = 0; layer < spec.layers; ++layer) {
    const std::string hf = "model.layers." + std::to_string(layer) + ".";
    const std::string g = "blk." + std::to_string(layer) + ".";
    add(hf + "input_layernorm.weight", g + "attn_norm.weight", 1, h, 1, 0.1, 0,
        0);
    add(hf + "self_attn.q_proj.weight", g + "attn_q.weight",
        spec.heads * head_dim, h, 0, in_h, spec.type, spec.heads);
    add(hf + "self_attn.k_proj.weight", g + "attn_k.weight",
        spec.kv_heads * head_dim, h, 0, in_h, spec.type, spec.kv_heads);
    add(hf + "self_attn.v_proj.weight", g + "attn_v.weight",
        spec.kv_heads * head_dim, h, 0, in_h, spec.type, 0);
    add(hf + "self_attn.o_proj.weight", g + "attn_output.weight", h,
        spec.heads * head_dim, 0, in_h, spec.type, 0);
    add(hf + "post_attention_layernorm.weight", g + "ffn_norm.weight", 1, h, 1,
        0.1, 0, 0);
    add(hf + "mlp.gate_proj.weight", g + "ffn_gate.weight", inter, h, 0, in_h,
        spec.type, 0);
    add(hf + "mlp.up_proj.weight", g + "ffn_up.weight", inter, h, 0, in_h,
        spec.type, 0);
    add(hf + "mlp.down_proj.weight", g + "ffn_down.weight", h, inter, 0,
        1 / std::sqrt(double(inter)), spec.type, 0);
  }
  add("model.norm.weight", "output_norm.weight", 1, h, 1, 0.1, 0, 0);
  if (!spec.tied) {
    add("lm_head.weight", "output.weight", spec.vocab, h, 0, in_h, spec.type,
        0);
  }
  model.path = file.Write(name);
  return model;
}

}  // namespace moe::testing
