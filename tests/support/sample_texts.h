#ifndef MOE_TESTS_SUPPORT_SAMPLE_TEXTS_H_
#define MOE_TESTS_SUPPORT_SAMPLE_TEXTS_H_

namespace moe::testing {

// Texts that exercise a tokenizer: words, whitespace runs, digits, accents,
// CJK and emoji (byte fallback), code.
inline constexpr const char* kSampleTexts[] = {
    "The licensee may copy and distribute the Program.",
    "  leading and  double  spaces\tand a tab\nand lines\n",
    "digits 1234567890 and 3.14159",
    "accents: héllo naïve façade",
    "CJK 中文字符 and emoji 🙂🚀",
    "int main() { return x->y[0] + 1; }",
};

}  // namespace moe::testing

#endif  // MOE_TESTS_SUPPORT_SAMPLE_TEXTS_H_
