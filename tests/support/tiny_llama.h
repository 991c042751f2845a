#ifndef MOE_TESTS_SUPPORT_TINY_LLAMA_H_
#define MOE_TESTS_SUPPORT_TINY_LLAMA_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moe::testing {

// A small random dense llama model written as a GGUF file the way GGUF
// converters write one: llama.* metadata, GGUF tensor names, Q and K rows
// permuted for interleaved rotary embeddings, and a byte-level BPE
// tokenizer ("gpt2") in tokenizer.ggml.*.
struct TinyLlamaSpec {
  int hidden = 64;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int intermediate = 96;
  int vocab = 300;
  bool tied = false;
  uint32_t type = 8;  // GGML type of the linear weights (Q8_0)
  uint64_t seed = 5;
};

struct TinyLlama {
  std::string path;  // the .gguf file
  // The float values before encoding, by HF name, in the HF layout.
  std::map<std::string, std::vector<float>> hf_tensors;
};

TinyLlama WriteTinyLlamaGguf(const TinyLlamaSpec& spec,
                             const std::string& name);

// The GPT-2 byte-to-unicode character (UTF-8) of every byte value.
std::vector<std::string> Gpt2ByteCharacters();

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_TINY_LLAMA_H_
