//! The converter's GGUF reader on arbitrary bytes: parse, walk every value, and when the
//! file parses, plan and convert it (`same`, which copies blocks). Errors are fine; a panic,
//! a hang or a huge allocation is a bug.
#![no_main]

use ember_convert::gguf::GgufFile;
use ember_convert::{build_gguf_bytes, Recipe};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = GgufFile::parse(data) else {
        return;
    };
    let _ = (g.version, g.alignment, g.data_offset);
    for (key, value) in &g.metadata {
        let _ = (key.len(), value.type_name());
        let _ = (
            value.as_u64(),
            value.as_u32(),
            value.as_f64(),
            value.as_bool(),
        );
        let _ = value.as_str();
        if let Some(a) = value.as_array() {
            let _ = (
                a.len(),
                a.is_empty(),
                a.strings(),
                a.f32s(),
                a.i32s(),
                a.values(),
            );
        }
    }
    for t in &g.tensors {
        let _ = (&t.name, t.dtype, &t.shape, t.offset, t.data.len());
        let _ = g.tensor(&t.name);
    }
    let _ = build_gguf_bytes(data, "fuzz.gguf", Recipe::Same);
});
