//! The reference (de)quantizers and the rows16 helpers on byte buffers at every offset
//! within an 8-byte word: the results must not depend on where the bytes start. (This stands
//! in for Miri, which gives byte vectors alignment 1; no nightly toolchain is installed here.)

use ember_format::blocks::{dequantize_row_ref, quantize_row_ref};
use ember_format::{rows16, DType};

/// A deterministic row of `n` values in about [-2, 2].
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// `len` bytes starting `offset` bytes past an 8-byte aligned address.
fn at_offset(storage: &mut Vec<u64>, offset: usize, len: usize) -> &mut [u8] {
    storage.clear();
    storage.resize((offset + len).div_ceil(8) + 1, 0);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(storage.as_mut_slice());
    &mut bytes[offset..offset + len]
}

/// Bytes for `dtype` rows: the reference quantizer's where it has one, else random bytes
/// with finite f16 scales (K-quants and IQ4 blocks).
fn row_bytes(dtype: DType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; dtype.row_bytes(x.len()).unwrap()];
    if !quantize_row_ref(dtype, x, &mut out) {
        for (i, b) in out.iter_mut().enumerate() {
            *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] & 0x3F;
        }
    }
    out
}

#[test]
fn quantize_and_dequantize_at_every_offset() {
    for dtype in DType::ALL {
        let n = 2 * dtype.block_len().max(32);
        let x = values(n, 7);
        let aligned = row_bytes(dtype, &x);
        let mut want = vec![0f32; n];
        dequantize_row_ref(dtype, &aligned, &mut want);
        let mut storage = Vec::new();
        for offset in 1..8 {
            let buf = at_offset(&mut storage, offset, aligned.len());
            if quantize_row_ref(dtype, &x, buf) {
                assert_eq!(buf, &aligned[..], "{dtype}: quantized at offset {offset}");
            } else {
                buf.copy_from_slice(&aligned);
            }
            let mut got = vec![0f32; n];
            dequantize_row_ref(dtype, buf, &mut got);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{dtype}: dequantized at offset {offset}"
            );
        }
    }
}

#[test]
fn rows16_rows_read_back_at_every_offset() {
    for dtype in DType::ALL {
        let cols = 2 * dtype.block_len().max(32);
        if !rows16::supports(dtype, &[rows16::GROUP, cols]) {
            continue;
        }
        let flat: Vec<u8> = (0..rows16::GROUP)
            .flat_map(|r| row_bytes(dtype, &values(cols, r as u32 + 1)))
            .collect();
        let mut inter = vec![0u8; flat.len()];
        rows16::interleave(dtype, rows16::GROUP, cols, &flat, &mut inter);
        let mut storage = Vec::new();
        for offset in 1..8 {
            let buf = at_offset(&mut storage, offset, inter.len());
            buf.copy_from_slice(&inter);
            for r in [0, 5, rows16::GROUP - 1] {
                let (mut got, mut want) = (vec![0f32; cols], vec![0f32; cols]);
                rows16::dequantize_row(dtype, buf, cols, r, &mut got);
                let row = &flat[r * flat.len() / rows16::GROUP..][..flat.len() / rows16::GROUP];
                dequantize_row_ref(dtype, row, &mut want);
                assert_eq!(got, want, "{dtype} row {r} at offset {offset}");
            }
        }
    }
}
