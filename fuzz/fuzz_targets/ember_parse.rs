//! The .ember reader on arbitrary bytes: parse, walk every accessor, verify the checksum.
//! Errors are fine; a panic or an out-of-bounds read is a bug.
#![no_main]

use ember_format::{AlignedBytes, EmberFile, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The reader needs an 8-byte aligned buffer, as an mmap gives.
    let buf = AlignedBytes::from(data);
    let Ok(file) = EmberFile::parse(&buf) else {
        return;
    };
    let _ = file.header().has_checksum();
    let _ = file.bytes().len();
    for (key, value) in file.metadata() {
        let _ = (key.len(), value.type_name());
        let _ = (
            value.as_u32(),
            value.as_u64(),
            value.as_f32(),
            value.as_bool(),
        );
        let _ = (
            value.as_str(),
            value.as_u32s(),
            value.as_i32s(),
            value.as_f32s(),
        );
        let _ = value.as_bytes();
        if let Some(arr) = value.as_bytes_array() {
            let _ = (arr.len(), arr.is_empty(), arr.blob_len(), arr.get(0));
            for item in arr.iter() {
                let _ = item.len();
            }
        }
        if let Value::Str(s) = value {
            let _ = file.get(s);
        }
        let _ = file.get(key);
    }
    let _ = file.tensor_count();
    for t in file.tensors() {
        let _ = (t.name, t.dtype, t.layout, t.offset, t.shape(), t.elements());
        let _ = t.as_f32().map(|x| x.iter().copied().fold(0f32, f32::max));
        let _ = t.data.iter().fold(0u8, |a, b| a ^ b);
        let _ = file.tensor(t.name);
    }
    let _ = file.verify_checksum();
});
