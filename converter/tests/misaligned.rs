//! The searching quantizers write blocks into byte buffers that start anywhere: the output at
//! every offset within an 8-byte word must equal the aligned output. (This stands in for
//! Miri, which gives byte vectors alignment 1; no nightly toolchain is installed here.)

use ember_convert::quant_search::{has_search, quantize_row};
use ember_format::DType;

#[test]
fn searching_quantizers_write_at_every_offset() {
    let n = 96;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
        .collect();
    let w: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32).collect();
    let mut searched = 0;
    for dtype in DType::ALL.into_iter().filter(|&d| has_search(d)) {
        let len = dtype.row_bytes(n).unwrap();
        for weights in [None, Some(&w[..])] {
            let mut aligned = vec![0u64; len.div_ceil(8)];
            let want = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut aligned)[..len];
            assert!(quantize_row(dtype, &x, weights, want));
            for offset in 1..8 {
                let mut storage = vec![0u64; (offset + len).div_ceil(8)];
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut storage);
                let got = &mut bytes[offset..offset + len];
                assert!(quantize_row(dtype, &x, weights, got));
                assert_eq!(got, &want[..], "{dtype} at offset {offset}");
            }
        }
        searched += 1;
    }
    // At least the original four (q8_0, q4_0, q4_1, q4_z); the recipes add more over time.
    for dtype in [DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4Z] {
        assert!(has_search(dtype), "{dtype} lost its search");
    }
    assert!(searched >= 4, "only {searched} dtypes searched");
}
