//! GGUF tokenizer fields -> .ember -> runtime tokenizer: SmolLM2 (byte-level BPE, digits
//! split individually) against transformers' ids, and synthetic SentencePiece vocabularies
//! merged by score as llama.cpp does.
extern crate alloc;

mod common_tokenizer;

use common_tokenizer::{decode, encode, fixtures, json, parse, rt, to_file};
use ember_convert::gguf::GgufFile;
use ember_convert::tokenizer::{from_gguf, GgufTokenizerFields};

/// Fills the fields from a GGUF file's `tokenizer.ggml.*` keys.

#[test]
fn smollm2_reference_ids() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        println!("SKIPPED: SmolLM2 tokenizer test: run scripts/fetch-models.sh");
        return;
    }
    let bytes = std::fs::read(&path).unwrap();
    let g = GgufFile::parse(&bytes).unwrap();
    let spec = from_gguf(ember_convert::gguf_tokenizer_fields(&g).unwrap()).unwrap();
    assert_eq!(spec.vocab_size(), 49152);
    assert_eq!(spec.pre, "gpt2-digits");
    let file_bytes = to_file(&spec);
    let file = parse(&file_bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    assert!(!tok.adds_bos());
    let r = json(&fixtures().join("smollm2/reference.json"));
    for case in r["tokenize"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = encode(&tok, text);
        assert_eq!(got, want, "{text:?}");
        // Round trip, keeping special tokens (they are written in the text).
        let mut s = String::new();
        tok.decode(&got, false, &mut s);
        assert_eq!(s, text);
    }
    let im_start = tok.token_id("<|im_start|>").unwrap();
    let im_end = tok.token_id("<|im_end|>").unwrap();
    assert_eq!((im_start, im_end), (1, 2));
    assert!(tok.is_eog(im_end) && tok.is_eog(0) && !tok.is_eog(im_start));
    assert!(tok.chat_template().unwrap().contains("<|im_start|>"));
    assert_eq!(decode(&tok, &[1, 4093, 198, 26843, 17, 2]), "user\nHi!");

    // More texts: transformers reading the same GGUF (make_golden.py).
    let golden = json(&fixtures().join("golden.json"));
    let mut failures = Vec::new();
    for case in golden["smollm2"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = encode(&tok, text);
        if got != want {
            failures.push(format!("{text:?}\n  want {want:?}\n  got  {got:?}"));
        } else if decode(&tok, &got) != case["decoded"].as_str().unwrap() {
            failures.push(format!("decode {text:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A SentencePiece vocabulary as GGUF stores it, merged by score.
fn spm_fields(pieces: &[(&str, f32, i32)]) -> GgufTokenizerFields {
    let mut tokens: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    let mut scores = vec![0.0, 0.0, 0.0];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>").into_bytes());
        scores.push(0.0);
        types.push(6);
    }
    for &(p, s, t) in pieces {
        tokens.push(p.as_bytes().to_vec());
        scores.push(s);
        types.push(t);
    }
    GgufTokenizerFields {
        model: "llama".into(),
        tokens,
        scores: Some(scores),
        token_types: Some(types),
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        ..Default::default()
    }
}

#[test]
fn spm_merges_by_score_with_byte_fallback() {
    // ids: 259.. in order.
    let pieces = [
        ("▁", -1.0, 1),     // 259
        ("a", -2.0, 1),     // 260
        ("b", -2.0, 1),     // 261
        ("ab", -5.0, 1),    // 262
        ("▁a", -3.0, 1),    // 263
        ("▁ab", -4.0, 1),   // 264
        ("c", -2.0, 1),     // 265
        ("bc", -1.5, 1),    // 266
        ("<tool>", 0.0, 4), // 267: user-defined, matched in text
    ];
    let spec = from_gguf(spm_fields(&pieces)).unwrap();
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    // "▁ab": ▁a (-3) merges before ab (-5); then ▁a + b -> ▁ab.
    assert_eq!(encode(&tok, "ab"), [1, 264]);
    // "▁abc": bc (-1.5) beats ▁a (-3): ▁ + a + bc, then ▁a + bc has no token.
    assert_eq!(encode(&tok, "abc"), [1, 263, 266]);
    // Unknown characters fall back to bytes: é = C3 A9.
    assert_eq!(encode(&tok, "é"), [1, 259, 3 + 0xC3, 3 + 0xA9]);
    // Special and user-defined tokens in the text; llama.cpp puts a space before the text
    // after each one.
    assert_eq!(encode(&tok, "a</s>a<tool>"), [1, 263, 2, 263, 267]);
    assert_eq!(decode(&tok, &encode(&tok, "ab abc é")), "ab abc é");
    assert!(tok.is_eog(2));
}

#[test]
fn gguf_field_errors() {
    let base = spm_fields(&[("a", -1.0, 1)]);
    let mut cases: Vec<(GgufTokenizerFields, &str)> = Vec::new();
    let mut f = base.clone();
    f.model = "bert".into();
    cases.push((f, "unsupported tokenizer model 'bert'"));
    let mut f = base.clone();
    f.tokens.clear();
    cases.push((f, "0 entries"));
    let mut f = base.clone();
    f.scores = Some(vec![0.0]);
    cases.push((f, "scores"));
    let mut f = base.clone();
    f.token_types = Some(vec![1; 3]);
    cases.push((f, "token_type"));
    let mut f = base.clone();
    f.token_types.as_mut().unwrap()[5] = 99;
    cases.push((f, "token_type[5]"));
    let mut f = base.clone();
    f.eos_id = Some(100_000);
    cases.push((f, "eos_token_id"));
    let mut f = base.clone();
    f.tokens[10] = b"<0xZZ>".to_vec();
    cases.push((f, "<0xZZ>"));
    let mut g = GgufTokenizerFields {
        model: "gpt2".into(),
        tokens: vec![b"a".to_vec(), b"b".to_vec()],
        merges: vec![b"a b".to_vec()],
        ..Default::default()
    };
    cases.push((g.clone(), "merges[0]"));
    g.merges = vec![b"ab".to_vec()];
    cases.push((g.clone(), "merges[0]"));
    g.merges.clear();
    g.pre = Some("made-up".into());
    cases.push((g, "made-up"));
    for (f, want) in cases {
        match from_gguf(f) {
            Ok(_) => panic!("accepted; wanted an error with {want:?}"),
            Err(e) => assert!(e.to_string().contains(want), "{e} lacks {want:?}"),
        }
    }
}

/// The pieces of a SentencePiece `tokenizer.model` (a protobuf `ModelProto`: field 1 holds
/// the pieces, each with piece = 1, score = 2, type = 3), as llama.cpp's converter puts them
/// into GGUF.
fn read_sentencepiece_model(b: &[u8]) -> Vec<(Vec<u8>, f32, i32)> {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        v
    }
    fn fields(b: &[u8], mut f: impl FnMut(u64, &[u8], u64)) {
        let mut i = 0;
        while i < b.len() {
            let key = varint(b, &mut i);
            match key & 7 {
                0 => {
                    let v = varint(b, &mut i);
                    f(key >> 3, &[], v);
                }
                1 => i += 8,
                2 => {
                    let n = varint(b, &mut i) as usize;
                    f(key >> 3, &b[i..i + n], 0);
                    i += n;
                }
                5 => {
                    f(key >> 3, &b[i..i + 4], 0);
                    i += 4;
                }
                w => panic!("wire type {w}"),
            }
        }
    }
    let mut pieces = Vec::new();
    fields(b, |field, bytes, _| {
        if field == 1 {
            let (mut piece, mut score, mut ty) = (Vec::new(), 0.0f32, 1i32);
            fields(bytes, |f, v, n| match f {
                1 => piece = v.to_vec(),
                2 => score = f32::from_le_bytes(v.try_into().unwrap()),
                3 => ty = n as i32,
                _ => {}
            });
            pieces.push((piece, score, ty));
        }
    });
    pieces
}

/// Llama 2's tokenizer.model as a GGUF vocabulary (scores, no merges) must tokenize as the
/// sentencepiece library does (reference.json's `sentencepiece_ids`): merges derived from
/// scores, byte fallback, the dummy prefix.
#[test]
fn llama2_sentencepiece_model_as_gguf() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/tiny-llama2-spm/tokenizer.model");
    if !path.is_file() {
        println!("SKIPPED: Llama 2 tokenizer.model as GGUF (../shared absent)");
        return;
    }
    let pieces = read_sentencepiece_model(&std::fs::read(&path).unwrap());
    assert_eq!(pieces.len(), 32000);
    let fields = GgufTokenizerFields {
        model: "llama".into(),
        tokens: pieces.iter().map(|p| p.0.clone()).collect(),
        scores: Some(pieces.iter().map(|p| p.1).collect()),
        token_types: Some(pieces.iter().map(|p| p.2).collect()),
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        ..Default::default()
    };
    let spec = from_gguf(fields).unwrap();
    let bytes = to_file(&spec);
    let file = parse(&bytes);
    let tok = rt::Tokenizer::from_file(&file).unwrap();
    let r = json(&fixtures().join("llama2-spm/reference.json"));
    for case in r["tokenize"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        if text.contains("<s>") {
            // sentencepiece does not parse special tokens in text; GGUF models (llama.cpp) do.
            continue;
        }
        let mut want = vec![1u32];
        want.extend(
            case["sentencepiece_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32),
        );
        assert_eq!(encode(&tok, text), want, "{text:?}");
    }
    // Over longer texts too (golden.json, from the sentencepiece library). HF's merge-list
    // BPE differs from sentencepiece on some whitespace runs ("\n  indented"); a GGUF
    // vocabulary follows sentencepiece, as llama.cpp does.
    let golden = json(&fixtures().join("golden.json"));
    let mut failures = Vec::new();
    for case in golden["llama2-sentencepiece"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = encode(&tok, text);
        if got != want {
            failures.push(format!("{text:?}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
