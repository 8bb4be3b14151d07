#!/usr/bin/env python3
"""The reference side of the tokenizer differential test (tests/tokenizer_diff.rs).

A seeded generator of the strings a new user's text holds (mixed scripts, runs of spaces,
tabs, no-break and ideographic spaces, ASCII and other Unicode numbers, superscripts and
vulgar fractions, punctuation, combining marks, zero-width characters, emoji sequences, the
model's special tokens, random code points) and Hugging Face `tokenizers` as the reference.
For each tokenizer family it writes OUT/<family>/cases.json:

    {"family", "source": "hf" | "gguf", "path": tokenizer.json or .gguf,
     "prefix": number of ids the post-processor puts before the text (BOS),
     "cases": [{"text", "ids", "round_trip"}]}

`ids` are `tokenizer.encode(text).ids` (special tokens in the text recognized, BOS added
where the model adds one, as transformers' `tokenizer(text)`); `round_trip` is whether HF's
`decode(ids[prefix:], skip_special_tokens=False)` gives the text back.

Families: smollm2 and gemma3 (the real GGUF vocabularies, as transformers imports them;
SmolLM2 with its own Digits + ByteLevel pre-tokenizer), gpt2, llama3, qwen2 and o200k
(GPT-4o's split, Phi-4-mini's tokenizer.json) (byte-level BPEs trained here with HF's
BpeTrainer using each model's split pattern, as no real tokenizer.json can be had offline;
o200k's strings also hold words of mixed case, titlecase, modifier and other letters, marks,
contractions in any case and slashes), llama2-spm (../shared/fixtures/tiny-llama2-spm, the
real Llama 2 vocabulary) and trainer (ember-train's BPE, a tokenizer.json given by --trainer).

Unicode: the generator's random code points and the runtime's character classes use Unicode
16.0.0, the version of the Oniguruma (6.9.10) bundled in tokenizers 0.23; `--check-classes`
compares HF's \\p{L}, \\p{N}, \\s and o200k's two letter sets with unicodedata2 16.0.0 on
every code point.

Needs: tokenizers, transformers (GGUF import, with gguf), unicodedata2==16.0.0.
"""
import importlib.util
import argparse
import json
import os
import random
import sys

import unicodedata2 as ud
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

UNICODE_VERSION = "16.0.0"

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# GPT-4o's o200k_base (tiktoken), as Phi-4-mini's tokenizer.json has it.
O200K = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLITS = {"llama3": LLAMA3, "qwen2": QWEN2, "o200k": O200K}

# Pieces a fragment is drawn from.
WORDS = ["the", "The", "of", "and", "hello", "World", "naïve", "café", "Zürich", "don't", "it's",
         "WE'RE", "they'll", "I'd", "x", "a", "fn", "main", "println", "self", "NULL", "camelCase",
         "snake_case", "ALLCAPS", "McDonald", "http", "www", "com", "i18n", "v2", "e.g", "etc"]
SCRIPTS = ["Москва", "Привет", "Ελληνικά", "λόγος", "東京", "中文文本", "日本語", "ひらがな", "カタカナ",
           "한국어", "안녕하세요", "مرحبا", "بالعالم", "שלום", "नमस्ते", "दुनिया", "สวัสดี", "ภาษาไทย",
           "ქართული", "Հայերեն", "አማርኛ", "தமிழ்", "ꦗꦮ", "ᚠᚢᚦ", "𐌰𐌱", "Ærøskøbing", "ŁÓDŹ",
           "ǅemal", "ß", "ẞ", "İstanbul", "ﬁnance", "Ⅻ"]
SPACES = [" ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n",
          "\n ", " \t ", "\u00a0", "\u00a0\u00a0", "\u3000", "\u2003", "\u2009", "\u202f",
          "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\u1680", "\u205f"]
NUMBERS = ["0", "7", "42", "123", "1234", "2024", "12345678", "3.14159", "1,000,000", "-5",
           "0x1F", "1e-9", "٣٤٥", "١٢٣", "०१२", "๓", "１２３", "²", "³", "¹²³", "x²", "₂", "H₂O",
           "½", "¼", "¾", "⅓", "⅞", "Ⅻ", "ⅷ", "①②", "⑳", "〇", "𝟙𝟚", "𐒠", "፲", "万"]
PUNCT = [".", ",", "!", "?", "...", "—", "–", "-", "(", ")", "[", "]", "{", "}", "\"", "'", "''",
         "“", "”", "‘", "’", "«", "»", "¿", "¡", "、", "。", "：", "；", "@", "#", "$", "%", "^",
         "&", "*", "_", "=", "+", "<", ">", "/", "\\", "|", "~", "`", "::", "->", "=>", "//",
         "/*", "*/", "#!", "€", "£", "¥", "©", "®", "™", "°", "±", "×", "÷", "∑", "√", "∞",
         "≠", "≤", "→", "♥", "★", "▁", "▁▁"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0327", "\u0303", "\u0332", "\u20dd", "\u0361",
             "\u093f", "\u0e31", "\u05b7", "\u064b", "\u302a", "\u1ab0", "\ufe0f", "\ufe0e"]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u200e",
              "\u200f", "\u2061", "\x00", "\x01", "\x1f", "\x7f"]
# More for o200k, which splits words where the case changes and keeps contractions (in any
# case) with the word before them.
CASED = ["CamelCase", "camelCaseWord", "HTTPServer", "XMLHttpRequest", "iPhone", "McDONALD'S",
         "DON'T", "don'T", "I'M", "WE'LL", "You'Re", "they'VE", "\u01c5emal", "\u01c8ubljana",
         "\u1f88", "\u02b0", "\u3005", "\u30fc", "\u01c4\u01c5\u01c6", "\u0100\u0101\u0102\u0103",
         "\u03a3\u0391\u03a3'S", "e\u0301", "E\u0301X", "\u0301", "\u0301'S", "'\u017f", "x'\u017fx",
         "a//b", "//", " //\n", "!/", "\r\n/", "http://a.b/c", "HELLOworld", "helloWORLD",
         "\u00c0\u00c9\u00ce\u00f5\u00fc", "\ua640\ua641", "\U00010400\U00010428", "\uff21\uff22\uff43",
         "\u6771\u4eacABC", "abc\u6771\u4eac"]
CONTRACTIONS = ["'s", "'S", "'t", "'re", "'VE", "'m", "'ll", "'D", "'\u017f", "'"]
CASE_POOLS = {}

EMOJI = ["🙂", "😀", "🎉", "🚀", "👍", "👍🏽", "👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧\u200d👦",
         "🏳️\u200d🌈", "🇫🇷", "🇯🇵", "1️⃣", "#️⃣", "❤️", "☺", "🫠", "🧑🏿\u200d💻", "🐈\u200d⬛"]


def random_code_point(rng):
    """Any scalar value, biased to the planes where text lives and to assigned characters."""
    while True:
        r = rng.random()
        if r < 0.45:
            cp = rng.randrange(0x80, 0x3000)
        elif r < 0.7:
            cp = rng.randrange(0x3000, 0x10000)
        elif r < 0.95:
            cp = rng.randrange(0x10000, 0x32000)
        else:
            cp = rng.randrange(0x32000, 0x110000)
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if ud.category(chr(cp)) == "Cn" and rng.random() < 0.8:
            continue
        return chr(cp)


def o200k_fragment(rng):
    """A mixed-case word: from CASED, or random letters of each case and marks."""
    if not CASE_POOLS:
        for cp in range(0x80, 0x110000):
            if not 0xD800 <= cp <= 0xDFFF:
                cat = ud.category(chr(cp))
                if cat[0] in "LM":
                    CASE_POOLS.setdefault(cat if cat[0] == "L" else "M", []).append(chr(cp))
        CASE_POOLS["upper"] = [chr(c) for c in range(0x41, 0x5B)]
        CASE_POOLS["lower"] = [chr(c) for c in range(0x61, 0x7B)]
    if rng.random() < 0.5:
        return rng.choice(CASED)
    pools = ["upper", "lower", "Lu", "Ll", "Lt", "Lm", "Lo", "M"]
    w = "".join(rng.choice(CASE_POOLS[rng.choice(pools)]) for _ in range(rng.randint(1, 6)))
    if rng.random() < 0.3:
        w += rng.choice(CONTRACTIONS)
    return w


def fragment(rng, specials, extra=None):
    # `extra` (a family's own fragments) draws from rng only where given, so the families
    # without it keep their strings.
    if extra is not None and rng.random() < 0.25:
        return extra(rng)
    k = rng.random()
    if k < 0.22:
        w = rng.choice(WORDS)
    elif k < 0.34:
        w = rng.choice(SCRIPTS)
    elif k < 0.50:
        w = rng.choice(SPACES)
    elif k < 0.62:
        w = rng.choice(NUMBERS)
    elif k < 0.72:
        w = "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 3)))
    elif k < 0.76:
        w = rng.choice(WORDS + SCRIPTS)[:1] + rng.choice(COMBINING)
    elif k < 0.80:
        w = rng.choice(ZERO_WIDTH)
    elif k < 0.85:
        w = rng.choice(EMOJI)
    elif k < 0.89 and specials:
        w = rng.choice(specials)
    elif k < 0.95:
        w = "".join(random_code_point(rng) for _ in range(rng.randint(1, 3)))
    else:
        # Aligned numeric columns and indented code: runs of spaces before digits.
        w = " " * rng.randint(1, 9) + rng.choice(NUMBERS)
    return w


def generate(rng, n, specials, extra=None):
    out = []
    for _ in range(n):
        parts = [fragment(rng, specials, extra) for _ in range(rng.randint(1, 14))]
        # Fragments are mostly separated by a space, as words are.
        s = ""
        for p in parts:
            s += p if rng.random() < 0.4 or not s else " " + p
        out.append(s)
    return out


def check_classes():
    cps = [cp for cp in range(0x110000) if not (0xD800 <= cp <= 0xDFFF) and cp != 1]
    s = "".join(map(chr, cps))
    ws = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
          (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]
    ok = True
    upper = {"Lu", "Lt", "Lm", "Lo", "Mn", "Mc", "Me"}
    lower = {"Ll", "Lm", "Lo", "Mn", "Mc", "Me"}
    for pat, want in [(r"\p{L}", lambda cp: ud.category(chr(cp))[0] == "L"),
                      (r"\p{N}", lambda cp: ud.category(chr(cp))[0] == "N"),
                      (r"\s", lambda cp: any(lo <= cp <= hi for lo, hi in ws)),
                      (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", lambda cp: ud.category(chr(cp)) in upper),
                      (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", lambda cp: ud.category(chr(cp)) in lower)]:
        out = normalizers.Replace(Regex(pat), "\x01").normalize_str(s)
        bad = [hex(cp) for cp, c in zip(cps, out) if (c == "\x01") != want(cp)]
        print(f"classes: HF {pat} vs Unicode {ud.unidata_version}: {len(bad)} code points differ {bad[:8]}")
        ok = ok and not bad
    return ok


def train_bpe(name, rng, corpus, vocab_size=4000):
    """A byte-level BPE with the model's split pattern, trained by HF on `corpus`."""
    tok = Tokenizer(models.BPE(ignore_merges=(name == "llama3")))
    if name == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(SPLITS[name]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if name == "llama3":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|eot_id|>"]
    elif name == "o200k":
        # Phi-4-mini's.
        specials = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    if name == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
            special_tokens=[("<|begin_of_text|>", bos)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok, specials


def gguf_tokenizer(path, family):
    from transformers import AutoTokenizer
    from tokenizers import pre_tokenizers as P
    t = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    if family == "smollm2":
        # SmolLM2's own tokenizer.json (and llama.cpp's `smollm` pre-tokenizer) isolate every
        # \p{N} first; transformers' GGUF import gives a plain ByteLevel.
        t.backend_tokenizer.pre_tokenizer = P.Sequence([
            P.Digits(individual_digits=True), P.ByteLevel(add_prefix_space=False, use_regex=True)])
    return t.backend_tokenizer, t


def write_cases(out_dir, family, source, path, tok, texts, hf=None):
    prefix = len(tok.encode("").ids)
    encs = tok.encode_batch(texts)
    cases = []
    rt = 0
    for text, e in zip(texts, encs):
        ids = e.ids
        back = tok.decode(ids[prefix:], skip_special_tokens=False) == text
        rt += back
        cases.append({"text": text, "ids": ids, "round_trip": back})
    if hf is not None:
        # transformers' tokenizer(text) is the same as its backend's encode (checked on a few).
        for c in cases[:50]:
            assert hf(c["text"])["input_ids"] == c["ids"], (family, c["text"])
    d = os.path.join(out_dir, family)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"family": family, "source": source, "path": path, "prefix": prefix,
                   "unicode": ud.unidata_version, "cases": cases}, f, ensure_ascii=False)
    print(f"{family}: {len(cases)} strings, {rt} round-trip in HF, source {source} {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--shared", help="../shared (fixtures/tiny-llama2-spm, data/tinyshakespeare.txt)")
    ap.add_argument("--smollm2", help="SmolLM2 GGUF")
    ap.add_argument("--gemma3", help="Gemma 3 GGUF")
    ap.add_argument("--trainer", help="tokenizer.json written by ember-train")
    ap.add_argument("--families", default="smollm2,gpt2,llama3,qwen2,o200k,llama2-spm,gemma3,trainer")
    ap.add_argument("--check-classes", action="store_true")
    a = ap.parse_args()
    if ud.unidata_version != UNICODE_VERSION:
        sys.exit(f"unicodedata2 {ud.unidata_version}: pip install unicodedata2=={UNICODE_VERSION}")
    if a.check_classes and not check_classes():
        sys.exit("HF's character classes differ from Unicode " + UNICODE_VERSION)
    fams = a.families.split(",")
    shakespeare = []
    if a.shared and os.path.exists(os.path.join(a.shared, "data", "tinyshakespeare.txt")):
        with open(os.path.join(a.shared, "data", "tinyshakespeare.txt"), encoding="utf-8") as f:
            text = f.read()[:300000]
        shakespeare = [text[i:i + 1000] for i in range(0, len(text), 1000)]
    for i, family in enumerate(fams):
        # Each family its own stream, so adding a family leaves the others' strings unchanged.
        rng = random.Random(f"{a.seed}/{family}")
        if family in ("gpt2", "llama3", "qwen2", "o200k"):
            extra = o200k_fragment if family == "o200k" else None
            corpus = shakespeare + generate(random.Random(f"{a.seed}/{family}/corpus"), 6000, [], extra)
            tok, specials = train_bpe(family, rng, corpus)
            d = os.path.join(a.out, family)
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, "tokenizer.json")
            tok.save(path)
            write_cases(a.out, family, "hf", path, tok, generate(rng, a.n, specials, extra))
        elif family == "llama2-spm":
            if not a.shared:
                print("SKIPPED: llama2-spm (no --shared)")
                continue
            path = os.path.join(a.shared, "fixtures", "tiny-llama2-spm", "tokenizer.json")
            tok = Tokenizer.from_file(path)
            write_cases(a.out, family, "hf", path, tok, generate(rng, a.n, ["<s>", "</s>", "<unk>"]))
        elif family in ("smollm2", "gemma3"):
            path = getattr(a, family)
            if not path or not os.path.exists(path):
                print(f"SKIPPED: {family} (no GGUF)")
                continue
            if importlib.util.find_spec("torch") is None:
                # transformers refuses to read a GGUF (even its tokenizer) without torch.
                print(f"SKIPPED: {family} (transformers needs torch to read its GGUF tokenizer)")
                continue
            tok, hf = gguf_tokenizer(path, family)
            specials = (["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>"]
                        if family == "smollm2" else
                        ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<pad>", "<unk>"])
            write_cases(a.out, family, "gguf", path, tok, generate(rng, a.n, specials),
                        hf if family == "gemma3" else None)
        elif family == "trainer":
            if not a.trainer:
                print("SKIPPED: trainer (no --trainer)")
                continue
            tok = Tokenizer.from_file(a.trainer)
            write_cases(a.out, family, "hf", a.trainer, tok, generate(rng, a.n, ["<|endoftext|>"]))
        else:
            sys.exit(f"unknown family {family}")


main()
