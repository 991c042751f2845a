#ifndef MOE_CORE_TOKENIZER_SENTENCEPIECE_SHIM_H_
#define MOE_CORE_TOKENIZER_SENTENCEPIECE_SHIM_H_

#include <stddef.h>

// The C interface of libmoe_sentencepiece_shim.so, a module that links
// Debian's libsentencepiece. That library carries its own copy of protobuf
// 3.14 with exported symbols, which aborts any process that also links the
// protobuf of gRPC; the module is therefore loaded with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND) and only this interface crosses the boundary. Strings and
// arrays it returns are malloc'ed and freed with moe_spm_release. Errors are
// written to `error` (NUL-terminated, truncated to error_size).
extern "C" {

// Returns a processor handle, or null on error.
void* moe_spm_load(const char* model_path, char* error, size_t error_size);
void moe_spm_free(void* processor);
void moe_spm_release(void* buffer);

int moe_spm_vocab_size(const void* processor);
int moe_spm_bos_id(const void* processor);  // -1 when the model has none
int moe_spm_eos_id(const void* processor);

// Returns 0 on success with *ids (malloc'ed) and *count set.
int moe_spm_encode(const void* processor, const char* text, size_t length,
                   int** ids, size_t* count, char* error, size_t error_size);
// Returns 0 on success with *text (malloc'ed, not NUL-terminated) and *length.
int moe_spm_decode(const void* processor, const int* ids, size_t count,
                   char** text, size_t* length, char* error, size_t error_size);
}

#endif  // MOE_CORE_TOKENIZER_SENTENCEPIECE_SHIM_H_
