//! Fuzz target: the converter's tokenizer.json importer on arbitrary text. Errors, never
//! panics; whatever it accepts must write a tokenizer the runtime loads.
//!
//! Run: `cargo fuzz run tokenizer_json` (fuzz/Cargo.toml lists it; needs ember-format, ember-runtime, ember-convert).
//! Seeds: converter/tests/fixtures/tokenizer/**/*.json.
#![no_main]

use ember_format::{AlignedBytes, EmberFile, Writer};
use ember_runtime::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = ember_convert::tokenizer::from_hf_str(json, None) else {
        return;
    };
    let mut w = Writer::new();
    spec.write(&mut w);
    let bytes = AlignedBytes::from(w.to_vec());
    let file = EmberFile::parse(&bytes).expect("the writer's output parses");
    let tok = Tokenizer::from_file(&file).expect("a converted tokenizer loads");
    let mut ids = Vec::new();
    tok.encode("Hello, world! 123 <|endoftext|>", &mut ids);
});
