//! Hugging Face tokenizer.json -> .ember -> runtime tokenizer, against ids from HF tokenizers
//! (tests/fixtures/tokenizer/make_golden.py regenerates golden.json) and transformers
//! (the fixtures' reference.json files).
extern crate alloc;

mod common_tokenizer;

use common_tokenizer::{decode, encode, fixtures, json, parse, rt, to_file};
use ember_convert::tokenizer::{from_hf_dir, from_hf_str, TokenizerModel};

#[test]
fn tiny_bpe_reference_ids() {
    let dir = fixtures().join("tiny-bpe");
    let spec = from_hf_dir(&dir).unwrap();
    assert_eq!(spec.model, TokenizerModel::ByteBpe);
    assert_eq!(spec.vocab_size(), 512);
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    let r = json(&dir.join("reference.json"));
    let text = r["text"].as_str().unwrap();
    let want: Vec<u32> = r["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    // reference.json holds the first 24 ids (its logits cover 24 positions); golden.json has
    // the whole text.
    let got = encode(&tok, text);
    assert_eq!(got[..want.len()], want[..]);
    assert_eq!(decode(&tok, &got), text);
    assert_eq!(tok.bos_id(), Some(0));
    assert!(tok.is_eog(0));
    assert_eq!(tok.token_id("<|endoftext|>"), Some(0));
}

/// The same reference through every fixture directory that has one (they share the tokenizer).
#[test]
fn shared_fixture_reference_ids() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    if !shared.is_dir() {
        println!("SKIPPED: shared fixture reference ids (../shared absent)");
        return;
    }
    for name in ["tiny-llama", "tiny-qwen2", "tiny-gpt2"] {
        let dir = shared.join(name);
        let spec = from_hf_dir(&dir).unwrap();
        let bytes = to_file(&spec);
        let file = parse(&bytes);
        let tok = rt::Tokenizer::from_file(&file).unwrap();
        let r = json(&dir.join("reference.json"));
        let want: Vec<u32> = r["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = encode(&tok, r["text"].as_str().unwrap());
        assert_eq!(got[..want.len()], want[..], "{name}");
    }
}

fn check_golden(name: &str, tokenizer_json: &str) {
    let spec = from_hf_str(tokenizer_json, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    let golden = json(&fixtures().join("golden.json"));
    let cases = golden[name].as_array().unwrap();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = encode(&tok, text);
        if got != want {
            failures.push(format!("{name}: {text:?}\n  want {want:?}\n  got  {got:?}"));
            continue;
        }
        // Round trip: our decode equals HF's decode (which is the text itself except where
        // the model's decoder strips a leading space).
        let hf_decoded = case["decoded"].as_str().unwrap();
        let ours = decode(&tok, &got);
        if ours != hf_decoded {
            failures.push(format!(
                "{name}: decode {text:?}: want {hf_decoded:?} got {ours:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn variant(name: &str) -> String {
    let p = fixtures()
        .join("tiny-bpe/variants")
        .join(format!("{name}.json"));
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn golden_gpt2() {
    let j = std::fs::read_to_string(fixtures().join("tiny-bpe/tokenizer.json")).unwrap();
    check_golden("gpt2", &j);
}

#[test]
fn golden_gpt2_split_regex() {
    check_golden("gpt2-split", &variant("gpt2-split"));
}

#[test]
fn golden_gpt2_digits() {
    check_golden("gpt2-digits", &variant("gpt2-digits"));
}

#[test]
fn golden_llama3() {
    check_golden("llama3", &variant("llama3"));
    check_golden("llama3-ignore-merges", &variant("llama3-ignore-merges"));
}

#[test]
fn golden_qwen2() {
    check_golden("qwen2", &variant("qwen2"));
}

/// GPT-4o's o200k split (Phi-4-mini's tokenizer.json) maps to `o200k` by exact string; the
/// ids against HF are tests/tokenizer_diff.rs's (family o200k).
#[test]
fn o200k_split_regex() {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const O200K: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let escaped = |r: &str| serde_json::to_string(r).unwrap();
    let llama3 = variant("llama3");
    assert!(llama3.contains(&escaped(LLAMA3)));
    let j = llama3.replace(&escaped(LLAMA3), &escaped(O200K));
    let spec = from_hf_str(&j, None).unwrap();
    assert_eq!(spec.pre, "o200k");
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    assert_eq!(tok.pre_tokenizer(), rt::PreTokenizer::O200k);
    for text in [
        "CamelCaseWord DON'T x'\u{17F}x",
        "e\u{301}X 12345 //\n\n  b",
    ] {
        assert_eq!(decode(&tok, &encode(&tok, text)), text);
    }
    // Any other regex is refused, not split some other way.
    let near = O200K.replace("[\\r\\n/]*", "[\\r\\n]*");
    assert_ne!(near, O200K);
    let j = llama3.replace(&escaped(LLAMA3), &escaped(&near));
    let e = from_hf_str(&j, None).unwrap_err().to_string();
    assert!(e.contains("unsupported pre-tokenizer regex"), "{e}");
}

#[test]
fn golden_prefix_space() {
    check_golden("gpt2-prefix-space", &variant("gpt2-prefix-space"));
}

#[test]
fn golden_added_tokens_lstrip_rstrip_and_template_bos() {
    check_golden("added", &variant("added"));
}

/// `ember train --tokenizer char` writes a BPE with no merges, no normalizer, no
/// pre-tokenizer and a `Fuse` decoder: one token per character; HF drops unknown characters.
#[test]
fn trainer_char_tokenizer() {
    let j = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "merges": [],
            "vocab": {"\n": 0, " ": 1, "A": 2, "b": 3, "\u{e9}": 4}}
    });
    let spec = from_hf_str(&j.to_string(), None).unwrap();
    assert_eq!(spec.model, TokenizerModel::Spm);
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    assert_eq!(encode(&tok, "Ab \n\u{e9}b"), [2, 3, 1, 0, 4, 3]);
    assert_eq!(decode(&tok, &[1, 2, 1, 4]), " A \u{e9}");
    // A character outside the vocabulary is dropped (HF tokenizers: no unk_token).
    assert_eq!(encode(&tok, "AzA"), [2, 2]);
}

fn spm_json() -> String {
    std::fs::read_to_string(fixtures().join("llama2-spm/tokenizer.json")).unwrap()
}

#[test]
fn golden_llama2_spm() {
    check_golden("llama2-spm", &spm_json());
}

#[test]
fn golden_llama2_spm_legacy_normalizer() {
    // The older Llama 2 tokenizer.json layout: Prepend("▁") + Replace(" ", "▁"), no
    // pre-tokenizer. make_golden.py makes the same edit.
    let mut j: serde_json::Value = serde_json::from_str(&spm_json()).unwrap();
    j["normalizer"] = serde_json::json!({"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u{2581}"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}]});
    j["pre_tokenizer"] = serde_json::Value::Null;
    check_golden("llama2-spm-legacy", &j.to_string());
}

#[test]
fn golden_llama2_spm_metaspace_split_always() {
    // Metaspace(split=true, prepend_scheme="always"); make_golden.py makes the same edit.
    let mut j: serde_json::Value = serde_json::from_str(&spm_json()).unwrap();
    j["pre_tokenizer"]["split"] = serde_json::Value::Bool(true);
    j["pre_tokenizer"]["prepend_scheme"] = serde_json::Value::from("always");
    check_golden("llama2-spm-split-always", &j.to_string());
}

#[test]
fn llama2_spm_reference_ids() {
    let dir = fixtures().join("llama2-spm");
    let spec = from_hf_dir(&dir).unwrap();
    assert_eq!(spec.model, TokenizerModel::Spm);
    assert_eq!(spec.vocab_size(), 32000);
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(1), Some(2)));
    assert!(tok.adds_bos());
    let r = json(&dir.join("reference.json"));
    for case in r["tokenize"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids_with_bos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = encode(&tok, text);
        assert_eq!(got, want, "{text:?}");
        // HF decodes `<s>` written in the text as the special token, skipped here; its
        // decoder strips one leading space (`Strip(" ", 1, 0)`), so we do too.
        if !text.starts_with("<s>") {
            let want = text.strip_prefix(' ').unwrap_or(text);
            assert_eq!(decode(&tok, &got), want, "round trip");
        }
    }
    // Byte fallback tokens decode to their byte; the emoji is four of them.
    assert_eq!(tok.token_bytes(243), &[0xF0]);
    assert_eq!(tok.token_bytes(15043), b" Hello");
    assert_eq!(tok.token_id(" Hello"), Some(15043));
}

#[test]
fn stream_decoder_holds_partial_characters() {
    let dir = fixtures().join("llama2-spm");
    let spec = from_hf_dir(&dir).unwrap();
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    let text = "naïve café, 東京 and emoji 🙂";
    let ids = encode(&tok, text);
    let mut d = tok.stream_decoder();
    let mut pieces = Vec::new();
    for &id in &ids[1..] {
        d.push(tok.token_bytes(id), |s| pieces.push(s.to_string()));
    }
    d.flush(|s| pieces.push(s.to_string()));
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
    assert_eq!(pieces.concat(), text);
}

#[test]
fn chat_template_and_config() {
    let dir = tempdir("chat");
    std::fs::copy(
        fixtures().join("tiny-bpe/tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|endoftext|>",
            "add_bos_token": true, "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}"#,
    )
    .unwrap();
    let spec = from_hf_dir(&dir).unwrap();
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    assert_eq!(
        tok.chat_template(),
        Some("{% for m in messages %}{{ m.content }}{% endfor %}")
    );
    assert!(tok.adds_bos());
    assert_eq!(encode(&tok, "")[..], [0]);
    std::fs::remove_dir_all(&dir).ok();
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ember-tok-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn garbage_tokenizer_json_gives_errors() {
    let cases: &[(&str, &str)] = &[
        ("", "tokenizer.json"),
        ("{", "tokenizer.json"),
        ("[]", "model"),
        ("{\"model\": 3}", "model"),
        (
            r#"{"model": {"type": "Unigram", "vocab": []}}"#,
            "unsupported tokenizer model 'Unigram' in tokenizer.json",
        ),
        (
            r#"{"model": {"type": "WordPiece", "vocab": {}}}"#,
            "unsupported tokenizer model 'WordPiece'",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": [], "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "vocab",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "empty",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 4294967296}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "id",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "id",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "merge 0",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "merge 0",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "merge 0",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}}"#,
            "unsupported pre_tokenizer 'BertPreTokenizer'",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "unsupported normalizer 'Lowercase'",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}}"#,
            "regex",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            "unk_token",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": [{"id": 1, "content": ""}]}"#,
            "empty content",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "post_processor": {"type": "BertProcessing"}}"#,
            "post_processor",
        ),
        (
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}]}}"#,
            "not in the vocabulary",
        ),
    ];
    for (input, want) in cases {
        match from_hf_str(input, None) {
            Ok(_) => panic!("{input:?} was accepted"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(want),
                    "{input:?}: error {msg:?} lacks {want:?}"
                );
                assert!(msg.starts_with("tokenizer.json"), "{msg}");
            }
        }
    }
    // A missing file names the path.
    let e = from_hf_dir(std::path::Path::new("/nonexistent-dir")).unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent-dir/tokenizer.json"),
        "{e}"
    );
}

/// Every truncation and many byte flips of a real tokenizer.json: errors or a tokenizer,
/// never a panic, and whatever is accepted loads in the runtime.
#[test]
fn mangled_tokenizer_json_never_panics() {
    let j = std::fs::read_to_string(fixtures().join("tiny-bpe/variants/added.json")).unwrap();
    let b = j.as_bytes();
    let mut accepted = 0;
    let mut check = |bytes: &[u8]| {
        if let Ok(s) = std::str::from_utf8(bytes) {
            if let Ok(spec) = from_hf_str(s, None) {
                accepted += 1;
                let file_bytes = to_file(&spec);
                let file = parse(&file_bytes);
                let tok = rt::Tokenizer::from_file(&file).expect("a converted tokenizer loads");
                encode(&tok, "Hello <|im_start|> world 123");
            }
        }
    };
    for n in (0..b.len()).step_by(97) {
        check(&b[..n]);
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut m = b.to_vec();
        let at = (state % m.len() as u64) as usize;
        m[at] = b"0123456789\"{}[],: ab\\"[(state >> 32) as usize % 21];
        check(&m);
    }
    assert!(accepted > 0);
}
