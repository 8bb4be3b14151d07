//! Fuzz target: the converter's Hugging Face import (config.json and a model.safetensors
//! header and data) through the whole conversion, with a fixed tokenizer.json. Errors,
//! never panics; whatever converts must parse as a `.ember` file that the runtime loads.
//!
//! Input: a u32 (little-endian) length N, N bytes of config.json, then model.safetensors.
//! Seeds: fuzz/seeds/hf_import (fuzz/make_hf_seeds.py writes them).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ember_format::{AlignedBytes, EmberFile};
use libfuzzer_sys::fuzz_target;

const TOKENIZER: &str =
    include_str!("../../converter/tests/fixtures/tokenizer/tiny-bpe/tokenizer.json");

/// One directory per process, rewritten for each input (the importer reads a directory).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ember-fuzz-hf-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("tokenizer.json"), TOKENIZER).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let n = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let rest = &data[4..];
    if n > rest.len() {
        return;
    }
    let (config, weights) = rest.split_at(n);
    let d = dir();
    std::fs::write(d.join("config.json"), config).unwrap();
    std::fs::write(d.join("model.safetensors"), weights).unwrap();
    let (writer, _) = match ember_convert::build(d, Some(ember_convert::Recipe::F32), false) {
        Ok(x) => x,
        Err(e) => {
            // EMBER_FUZZ_VERBOSE=1: say why an input (a seed) did not convert.
            if std::env::var_os("EMBER_FUZZ_VERBOSE").is_some() {
                eprintln!("not converted: {e}");
            }
            return;
        }
    };
    let bytes = AlignedBytes::from(writer.to_vec());
    let file = EmberFile::parse(&bytes).expect("the converter's output parses");
    assert!(file.verify_checksum().is_ok());
    ember_runtime::Model::load(&file).expect("a converted model loads");
});
