//! Shared by the converter's tokenizer tests: the runtime tokenizer (included by path, as
//! ember-convert does not depend on ember-runtime) and a spec -> .ember -> Tokenizer helper.
#![allow(dead_code)]

#[path = "../../../runtime/src/tokenizer/mod.rs"]
pub mod rt;

use ember_convert::tokenizer::TokenizerSpec;
use ember_format::{AlignedBytes, EmberFile, Writer};

pub fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

/// Writes `spec` into an otherwise empty `.ember` file, in a 64-byte aligned buffer.
pub fn to_file(spec: &TokenizerSpec) -> AlignedBytes {
    let mut w = Writer::new();
    spec.write(&mut w);
    AlignedBytes::from(w.to_vec())
}

pub fn parse(bytes: &AlignedBytes) -> EmberFile<'_> {
    EmberFile::parse(bytes).expect("the writer's output parses")
}

pub fn encode(tok: &rt::Tokenizer<'_>, text: &str) -> Vec<u32> {
    let mut ids = Vec::new();
    tok.encode(text, &mut ids);
    ids
}

pub fn decode(tok: &rt::Tokenizer<'_>, ids: &[u32]) -> String {
    let mut s = String::new();
    tok.decode(ids, true, &mut s);
    s
}

pub fn json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}
