//! Differential test of every tokenizer family Ember loads against Hugging Face `tokenizers`,
//! on seeded random strings a new user's text holds (scripts/tokenizer_diff.py generates
//! them and the reference ids; its header lists the families and the Unicode version).
//!
//! For each family: the ids of `ember_runtime`'s tokenizer, loaded the way `ember convert`
//! loads it (tokenizer.json, or the GGUF's `tokenizer.ggml.*` keys), must equal HF's on every
//! string, and where HF's decode gives the string back, Ember's decode must too.
//!
//! Needs Python with tokenizers, transformers, gguf and unicodedata2==16.0.0
//! (`$EMBER_PYTHON`, else .cache/venv/bin/python; scripts/test.sh installs them); prints
//! `SKIPPED:` without it. `EMBER_TOKENIZER_DIFF_N` sets the strings per family (default
//! 10,000), `EMBER_TOKENIZER_DIFF_SEED` the seed (default 15), and
//! `EMBER_TOKENIZER_DIFF_FAMILIES` a comma-separated subset (for local runs).
#![cfg(feature = "full")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ember_convert::gguf::GgufFile;
use ember_convert::tokenizer::{from_gguf, from_hf_str, TokenizerSpec};
use ember_format::{AlignedBytes, EmberFile, Writer};
use ember_runtime::tokenizer::Tokenizer;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Python that has what scripts/tokenizer_diff.py imports, or `None` with a SKIPPED line.
fn python() -> Option<PathBuf> {
    let py = std::env::var_os("EMBER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/venv/bin/python"));
    let ok = Command::new(&py)
        .args([
            "-c",
            "import tokenizers, transformers, gguf, unicodedata2; \
             assert unicodedata2.unidata_version == '16.0.0'",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        eprintln!(
            "SKIPPED: tokenizer differential test: {} lacks tokenizers, transformers, gguf or \
             unicodedata2==16.0.0 (scripts/test.sh installs them)",
            py.display()
        );
        None
    }
}

fn spec_for(source: &str, path: &Path) -> TokenizerSpec {
    match source {
        "hf" => {
            let text = std::fs::read_to_string(path).unwrap();
            from_hf_str(&text, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
        "gguf" => {
            let bytes = std::fs::read(path).unwrap();
            let g = GgufFile::parse(&bytes).unwrap();
            from_gguf(ember_convert::gguf_tokenizer_fields(&g).unwrap()).unwrap()
        }
        other => panic!("unknown source {other}"),
    }
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Compares one family's cases; returns a description of each difference.
fn check_family(cases_json: &Path) -> (String, usize, Vec<String>) {
    let v = common::read_json(cases_json);
    let family = v["family"].as_str().unwrap().to_string();
    let spec = spec_for(
        v["source"].as_str().unwrap(),
        Path::new(v["path"].as_str().unwrap()),
    );
    let mut w = Writer::new();
    spec.write(&mut w);
    let bytes = AlignedBytes::from(w.to_vec());
    let file = EmberFile::parse(&bytes).unwrap();
    let tok = Tokenizer::from_file(&file).unwrap();
    let prefix = v["prefix"].as_u64().unwrap() as usize;
    let cases = v["cases"].as_array().unwrap();
    let mut bad = Vec::new();
    let (mut id_diffs, mut rt_diffs) = (0, 0);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        let mut got = Vec::new();
        tok.encode(text, &mut got);
        if got != want {
            id_diffs += 1;
            if bad.len() < 12 {
                bad.push(format!(
                    "{family}: {text:?}\n  HF    {want:?}\n  ember {got:?}"
                ));
            }
            continue;
        }
        if case["round_trip"].as_bool().unwrap() {
            let mut back = String::new();
            tok.decode(&got[prefix.min(got.len())..], false, &mut back);
            if back != text {
                rt_diffs += 1;
                if bad.len() < 12 {
                    bad.push(format!(
                        "{family}: decode(encode(s)) != s for {text:?}: {back:?}"
                    ));
                }
            }
        }
    }
    eprintln!(
        "tokenizer diff {family}: {} strings, {id_diffs} with other ids than HF, {rt_diffs} \
         failing the round trip HF passes",
        cases.len()
    );
    if id_diffs + rt_diffs > bad.len() {
        bad.push(format!(
            "{family}: {} differences in all",
            id_diffs + rt_diffs
        ));
    }
    (family, cases.len(), bad)
}

/// ember-train's BPE, trained on a slice of tiny Shakespeare (or a built-in text), as
/// tokenizer.json.
fn trainer_tokenizer(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("../shared/data/tinyshakespeare.txt"))
        .map(|t| t[..60_000].to_string())
        .unwrap_or_else(|_| "The quick brown fox jumps over the lazy dog. 1234 ".repeat(500));
    let docs: Vec<String> = text.split("\n\n").map(str::to_string).collect();
    let tok = ember_train::bpe::Tokenizer::train(&ember_train::bpe::TokenizerKind::Bpe(600), &docs);
    let path = dir.join("trainer-tokenizer.json");
    std::fs::write(&path, serde_json::to_string(&tok.to_hf_json()).unwrap()).unwrap();
    path
}

#[test]
fn tokenizers_match_hugging_face_on_random_text() {
    let Some(py) = python() else {
        return;
    };
    let n: usize = std::env::var("EMBER_TOKENIZER_DIFF_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let seed = std::env::var("EMBER_TOKENIZER_DIFF_SEED").unwrap_or_else(|_| "15".into());
    let out = std::env::temp_dir().join(format!("ember-tokenizer-diff-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let mut cmd = Command::new(&py);
    cmd.arg(root().join("scripts/tokenizer_diff.py"))
        .arg("--out")
        .arg(&out)
        .args(["--n", &n.to_string(), "--seed", &seed, "--check-classes"])
        .arg("--trainer")
        .arg(trainer_tokenizer(&out));
    if let Ok(f) = std::env::var("EMBER_TOKENIZER_DIFF_FAMILIES") {
        cmd.args(["--families", &f]);
    }
    let shared = root().join("../shared");
    if shared.is_dir() {
        cmd.arg("--shared").arg(&shared);
    } else {
        eprintln!("SKIPPED: tokenizer diff llama2-spm (../shared is absent)");
    }
    if let Some(p) = common::smollm2_gguf() {
        cmd.arg("--smollm2").arg(p);
    }
    if let Some(p) = common::gemma3_gguf() {
        cmd.arg("--gemma3").arg(p);
    }
    let status = cmd.status().expect("run scripts/tokenizer_diff.py");
    assert!(status.success(), "scripts/tokenizer_diff.py failed");
    let mut families = Vec::new();
    let mut all_bad = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let cases = entry.unwrap().path().join("cases.json");
        if cases.is_file() {
            let (family, count, bad) = check_family(&cases);
            assert!(count >= n, "{family}: only {count} strings");
            families.push(family);
            all_bad.extend(bad);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    families.sort();
    eprintln!("tokenizer diff: families {families:?}");
    if std::env::var_os("EMBER_TOKENIZER_DIFF_FAMILIES").is_none() {
        for must in ["gpt2", "llama3", "qwen2", "o200k", "trainer"] {
            assert!(families.iter().any(|f| f == must), "{must} was not checked");
        }
    }
    assert!(all_bad.is_empty(), "{}", all_bad.join("\n"));
}
