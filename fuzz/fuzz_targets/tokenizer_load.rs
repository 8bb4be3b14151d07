//! Fuzz target: the runtime tokenizer loader and encoder on arbitrary `.ember` bytes.
//! Anything `EmberFile::parse` accepts must give a `Tokenizer` or an error, and a loaded
//! tokenizer must encode and decode any text without panicking.
//!
//! Run: `cargo fuzz run tokenizer_load` (fuzz/Cargo.toml lists it; needs ember-format, ember-runtime).
//! Seeds: any converted model, or the files `runtime/tests/tokenizer_loader.rs` builds.
#![no_main]

use ember_format::{AlignedBytes, EmberFile};
use ember_runtime::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader wants an 8-byte aligned buffer; the last 64 bytes double as the text.
    let split = data.len().saturating_sub(64);
    let (file_bytes, text) = data.split_at(split);
    let aligned = AlignedBytes::from(file_bytes);
    let Ok(file) = EmberFile::parse(&aligned) else {
        return;
    };
    let Ok(tok) = Tokenizer::from_file(&file) else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let mut ids = Vec::new();
    tok.encode(&text, &mut ids);
    ids.extend([0, u32::MAX, tok.vocab_size() as u32]);
    let mut out = String::new();
    tok.decode(&ids, false, &mut out);
    let _ = tok.token_id(&text);
});
