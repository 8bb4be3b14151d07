//! IQ4_NL and IQ4_XS blocks dequantize exactly as llama.cpp's gguf-py does
//! (fixtures/iq4/reference.json, made by make_reference.py beside it).
use ember_format::{blocks, DType};

#[test]
fn iq4_dequantizes_like_gguf_py() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/iq4/reference.json"
    );
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for case in reference["cases"].as_array().unwrap() {
        let dtype = DType::from_name(case["dtype"].as_str().unwrap()).unwrap();
        let bytes: Vec<u8> = case["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let want: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let mut got = vec![0f32; want.len()];
        blocks::dequantize_row_ref(dtype, &bytes, &mut got);
        assert_eq!(got, want, "{dtype}");
    }
}
