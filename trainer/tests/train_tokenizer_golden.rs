//! Tokenizers against golden ids from Hugging Face `tokenizers` (fixtures/tokenizer-golden,
//! made by make_tokenizer_golden.py): the trainer's tokenizer.json for `char` and `bpe:400`
//! on corpus.txt must be the committed one, and its ids for probe.txt must be HF's.
//! Regenerate: EMBER_BLESS=1 cargo test -p ember-train --test train_tokenizer_golden, then
//! python3 trainer/tests/fixtures/make_tokenizer_golden.py.
use std::path::PathBuf;

use ember_train::bpe::{Tokenizer, TokenizerKind};
use ember_train::checkpoint::{read_json, write_json};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer-golden")
}

#[test]
fn tokenizer_json_and_ids_match_hf_tokenizers() {
    let d = dir();
    let corpus = std::fs::read_to_string(d.join("corpus.txt")).unwrap();
    let probe = std::fs::read_to_string(d.join("probe.txt")).unwrap();
    let golden = read_json(&d.join("golden.json")).unwrap();
    for (name, kind) in [
        ("char", TokenizerKind::Char),
        ("bpe400", TokenizerKind::Bpe(400)),
    ] {
        let tok = Tokenizer::train(&kind, std::slice::from_ref(&corpus));
        let json = tok.to_hf_json();
        let path = d.join(format!("{name}.tokenizer.json"));
        if std::env::var_os("EMBER_BLESS").is_some() {
            write_json(&path, &json).unwrap();
            eprintln!(
                "SKIPPED: blessed {}; now run make_tokenizer_golden.py",
                path.display()
            );
            continue;
        }
        assert_eq!(
            json,
            read_json(&path).unwrap(),
            "{name}: trained tokenizer.json differs from the committed one"
        );
        let ids: Vec<u32> = tok.encode(&probe);
        let want: Vec<u32> = golden[name]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, want, "{name}: ids differ from HF tokenizers");
        assert_eq!(
            tok.decode(&ids),
            golden[name]["decoded"].as_str().unwrap(),
            "{name}: decode differs"
        );
    }
}
