#!/usr/bin/env python3
"""The byte-level BPE tokenizer (core/tokenizer/bpe_tokenizer.h) against the PyPI `tokenizers`.

Usage:  python tokenizer_reference_test.py BIN_DIR [--tokenizer-json PATH] [--keep DIR]

Needs: tokenizers (see requirements.txt next to this file).

Trains small byte-level BPE tokenizers with `tokenizers` on the license texts of
/usr/share/common-licenses, in the shapes real checkpoints use:
  gpt2     ByteLevel (GPT-2's regex) with add_prefix_space, a TemplateProcessing
  smollm2  Sequence[Digits(individual_digits), ByteLevel(add_prefix_space=False)]
  llama3   Split(Llama 3's regex, isolated) then ByteLevel(use_regex=False),
           ignore_merges, merges rewritten as "a b" strings (the older format)
  splits   every other Split behavior, invert, a String pattern, Digits runs
each with special tokens (<|endoftext|>, <|im_start|>, <|im_end|>) and two added
tokens that are not special. Also the tokenizer.json that --tokenizer-json or
$MOE_TOKENIZER_JSON names, if any.

For every tokenizer and test string, `tokenize_tool` (BIN_DIR) must give the ids of
tokenizer.encode(text, add_special_tokens=False); byte strings that are not UTF-8
are compared with the encoding of bytes.decode("utf-8", errors="replace"). Its
decode of those ids, and of random id sequences (which split characters), must
equal tokenizer.decode(ids, skip_special_tokens=True).

Exit code 0 when all are equal; last line: "N compared, M mismatched".
"""

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                        pre_tokenizers, processors, trainers)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Not special: decoded to their content. "<think>" is matched on the raw text,
# " Program" (normalized) in the text between the others.
ADDED = [AddedToken("<think>", normalized=False), AddedToken(" Program")]

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Text beyond the licenses' English, so that merges exist for other scripts.
EXTRA_CORPUS = [
    "Ceci est un café très agréable; naïve façade, où est l'hôtel?",
    "Größe, Übermaß und Straße: schön.",
    "Привет, как дела? Это тестовая строка.",
    "中文字符和日本語の文章、한국어 문장도 있습니다。",
    "emoji 🙂🚀 and 👩‍💻 and 🇫🇷 and 👍🏽",
    "def f(x):\n    return x ** 2  # square\n\tif x != 0: pass",
    "numbers 1234567890, 3.14159, 2024-06-01, 0x1F and 1e-5",
    "   lots    of\t\twhitespace\n\n\nand lines  \r\n",
]


def corpus_lines():
    lines = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                lines.extend(f.read().splitlines(keepends=True))
    return lines + EXTRA_CORPUS * 20


def train(pre_tokenizer, corpus, ignore_merges=False, post_processor=None):
    tokenizer = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    if post_processor is not None:
        tokenizer.post_processor = post_processor
    trainer = trainers.BpeTrainer(
        vocab_size=1500, min_frequency=2, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.add_tokens(ADDED)
    return tokenizer


def merges_as_strings(path):
    """Rewrites the merges of `path` from [a, b] pairs to "a b" strings."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                               for m in data["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)


def trained_tokenizers(directory):
    """(name, tokenizer.json path) of each trained shape."""
    corpus = corpus_lines()
    byte_level = pre_tokenizers.ByteLevel
    shapes = {
        "gpt2": train(byte_level(add_prefix_space=True), corpus,
                      post_processor=processors.TemplateProcessing(
                          single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])),
        "smollm2": train(pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            byte_level(add_prefix_space=False, use_regex=True)]), corpus),
        "llama3": train(pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            byte_level(add_prefix_space=False, use_regex=False)]), corpus,
            ignore_merges=True,
            post_processor=processors.Sequence([
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)])])),
        "splits": train(pre_tokenizers.Sequence([
            pre_tokenizers.Split("--", behavior="removed"),
            pre_tokenizers.Split(Regex(r"[,;:]"), behavior="merged_with_previous"),
            pre_tokenizers.Split(Regex(r"[(\[{]"), behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"\p{P}"), behavior="contiguous"),
            pre_tokenizers.Split(Regex(r"\S+"), behavior="isolated", invert=True),
            pre_tokenizers.Digits(individual_digits=False),
            byte_level(add_prefix_space=True, use_regex=False)]), corpus),
    }
    paths = []
    for name, tokenizer in shapes.items():
        path = os.path.join(directory, name + ".json")
        tokenizer.save(path)
        if name == "llama3":
            merges_as_strings(path)
        paths.append((name, path))
    return paths


def test_strings(corpus, rng):
    """A few hundred byte strings, some of them not UTF-8."""
    texts = [
        "", " ", "  ", "\n", "\n\n", "\t", " \t\n", "\r\n", "a", "A", "hello",
        "Hello world", " Hello world", "Hello world ", "Hello  world", "hello\n",
        "The licensee may copy and distribute the Program.",
        "THE PROGRAM IS PROVIDED \"AS IS\" WITHOUT WARRANTY OF ANY KIND",
        "don't can't won't I'm you're we've they'll he'd it's",
        "DON'T CAN'T I'M YOU'RE WE'VE THEY'LL HE'D IT'S",
        "'s 't 're 've 'm 'll 'd ''", "rock'n'roll o'clock",
        "1", "12", "123", "1234", "12345678901234567890", "3.14159", "-42", "1,000,000",
        "2024-06-01T12:34:56Z", "version 1.2.3-rc4", "0x1F 0b1010 1e-5 10%",
        "a1b2c3", "abc123def456", "٣٤٥ ۱۲۳ १२३ 一二三 ½ ² Ⅻ",
        "    ", "a    b", "a \t b", "a\n\nb", "a\n \nb", "trailing   ", "   leading",
        "x\r\ny\rz", "\n\n\n\n", "  \n  \n", "\t\t\tindented", "a\u00a0b", "a\u3000b",
        "a\u2003b\u2009c", "line\u2028sep\u2029para", "nel\u0085here", "zero\u200bwidth",
        "bom\ufeffmark", "a \u3000b", "a\u00a0 b",
        "int main() { return x->y[0] + 1; }",
        "def f(x):\n    return x ** 2  # square\n",
        "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "<html><body class=\"x\">&amp;</body></html>",
        "SELECT * FROM t WHERE a = 'b' AND c <> 3;",
        "https://example.com/path?q=1&r=two#frag", "user@example.com",
        "!!!", "...", "?!?!", "--", "---", "a--b", "(a)", "[x, y]", "{k: v}",
        "a,b;c:d", "\"quoted\"", "«guillemets»", "“curly” ‘quotes’", "…", "–—",
        "~!@#$%^&*()_+-=`", "\\backslash\\", "|pipe|",
        "🙂", "🚀🚀", "emoji 🙂🚀 end", "👩‍💻", "👨‍👩‍👧‍👦 family", "🇫🇷🇯🇵", "👍🏽",
        "❤️", "☺︎", "🙂 🙂  🙂",
        "中文字符", "日本語のテキスト", "한국어 문장", "中文 and English mixed",
        "Ceci est un café très agréable", "naïve façade", "Größe Übermaß Straße",
        "e\u0301 (combining) vs é", "Ångström", "Привет, мир!", "Ελληνικά γράμματα",
        "עברית וערבית عربي", "हिन्दी पाठ", "ไทย", "Tiếng Việt có dấu",
        "mixed: abcабв中文🙂123", "ſs Kelvin\u212a",
        "<|endoftext|>", "<|im_start|>user\nhello<|im_end|>",
        "a<|endoftext|>b", "<|im_start|><|im_end|>", "<|im_start|", "<|im_end|>>",
        " <|im_start|> ", "text<think>thought</think>", "<think><think>",
        "the Program", "thePrograms", " Program", "Program", "<|endoftext|> Program",
        "--<|endoftext|>--", "x<|im_start|>123<|im_end|>y",
    ]
    strings = [t.encode("utf-8") for t in texts]

    lines = [line for line in corpus if line.strip()]
    strings += [line.encode("utf-8") for line in rng.sample(lines, 100)]

    pieces = ["the", " Program", "1234", "  ", "\n", "\t", "🙂", "中文", "é", "'s",
              "<|im_start|>", "<|endoftext|>", "<think>", "x", "--", ",", "(",
              "ÿ", "\u00a0", "Ω", "👩‍💻", "0", " ", "don't", "...", "\r\n"]
    for _ in range(150):
        strings.append("".join(rng.choice(pieces)
                               for _ in range(rng.randint(1, 12))).encode("utf-8"))

    invalid = [
        b"\xff", b"\xfe\xff", b"\x80", b"\x80\x80abc", b"\xc3", b"abc\xc3", b"\xc3(",
        b"\xe2\x82", b"\xe2\x82abc", b"\xe2\x82\xac\xe2\x82", b"\xf0\x9f\x98",
        b"\xf0\x9f\x98x", b"\xf0\x9f", b"\xed\xa0\x80", b"\xed\xbf\xbf\xed\xa0",
        b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
        b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80",
        b"caf\xe9", b"na\xefve", b"hello \xff world", b" \xff ", b"\x00\x01\x02\x7f",
        b"<|im_start|>\xff<|im_end|>", b"<|im_\xffstart|>", b"12\xff34",
        "🙂".encode("utf-8")[:3] + b" after",
    ]
    strings += invalid
    for _ in range(40):
        strings.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))))
    return strings


def run_tool(tool, tokenizer_json, requests):
    result = subprocess.run([tool, tokenizer_json], input="".join(r + "\n" for r in requests),
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"tokenize_tool failed on {tokenizer_json}: {result.stderr}")
    answers = result.stdout.split("\n")[:-1]
    if len(answers) != len(requests):
        raise RuntimeError(f"tokenize_tool answered {len(answers)} of {len(requests)}")
    return answers


def parse_ids(answer):
    if answer.startswith("error"):
        return answer
    return [int(x) for x in answer.split()]


def parse_text(answer):
    if answer.startswith("error"):
        return answer
    return bytes.fromhex(answer).decode("utf-8")


def check(name, path, tool, strings, rng):
    """Returns (compared, mismatches) for one tokenizer.json."""
    reference = Tokenizer.from_file(path)
    mismatches = []
    compared = 0

    encoded = run_tool(tool, path, ["e " + s.hex() for s in strings])
    ids_list = []
    for s, answer in zip(strings, encoded):
        text = s.decode("utf-8", errors="replace")
        expected = reference.encode(text, add_special_tokens=False).ids
        got = parse_ids(answer)
        compared += 1
        if got != expected:
            mismatches.append(f"{name}: encode {s!r}\n  expected {expected}\n  got      {got}")
        ids_list.append(expected)

    # Decodes of the reference ids, then of random ids across the vocabulary
    # (specials included), which end and start in the middle of characters.
    vocab_size = max(reference.get_vocab(with_added_tokens=True).values()) + 1
    for _ in range(200):
        ids_list.append([rng.randrange(vocab_size) for _ in range(rng.randint(1, 8))])
    decoded = run_tool(tool, path, ["d " + " ".join(map(str, ids)) for ids in ids_list])
    for ids, answer in zip(ids_list, decoded):
        expected = reference.decode(ids, skip_special_tokens=True)
        got = parse_text(answer)
        compared += 1
        if got != expected:
            mismatches.append(f"{name}: decode {ids}\n  expected {expected!r}\n  got      {got!r}")
    return compared, mismatches


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--tokenizer-json", default=os.environ.get("MOE_TOKENIZER_JSON"),
                        help="also compare this tokenizer.json")
    parser.add_argument("--keep", help="write the trained tokenizers here")
    args = parser.parse_args()
    tool = os.path.join(args.bin_dir, "tokenize_tool")
    rng = random.Random(1234)

    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or scratch
        os.makedirs(directory, exist_ok=True)
        tokenizers = trained_tokenizers(directory)
        if args.tokenizer_json and os.path.exists(args.tokenizer_json):
            tokenizers.append(("given", args.tokenizer_json))
        elif args.tokenizer_json:
            print(f"{args.tokenizer_json} is missing (run "
                  "scripts/get-demo-model.sh): not compared")
        strings = test_strings(corpus_lines(), rng)
        total, failures = 0, []
        for name, path in tokenizers:
            compared, mismatches = check(name, path, tool, strings, rng)
            print(f"{name}: {compared} compared, {len(mismatches)} mismatched")
            total += compared
            failures += mismatches
    for failure in failures:
        print(failure)
    print(f"{total} compared, {len(failures)} mismatched")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
