//! RoPE row order: permuting HF → GGUF the way llama.cpp's convert_hf_to_gguf does and
//! un-permuting with the converter's function is the identity, on f32 and on Q4_1 rows.
mod common;

use common::Rng;
use ember_convert::rope::unpermute_rows;
use ember_format::blocks::quantize_row_ref;
use ember_format::DType;

/// llama.cpp: `w.reshape(n_head, 2, hd/2, *rest).swapaxes(1, 2).reshape(w.shape)`.
/// Output row (h, i, a) in a (n_head, hd/2, 2) grid takes input row (h, a, i) of a
/// (n_head, 2, hd/2) grid.
fn permute_hf_to_gguf(src: &[u8], rows: usize, n_head: usize) -> Vec<u8> {
    let rb = src.len() / rows;
    let hd = rows / n_head;
    let mut out = Vec::with_capacity(src.len());
    for h in 0..n_head {
        for i in 0..hd / 2 {
            for a in 0..2 {
                let from = h * hd + a * (hd / 2) + i;
                out.extend_from_slice(&src[from * rb..(from + 1) * rb]);
            }
        }
    }
    out
}

#[test]
fn known_small_case() {
    // One head of size 4: HF rows [r0, r1, r2, r3] pair (r0, r2) and (r1, r3); GGUF stores
    // pairs adjacent: [r0, r2, r1, r3].
    let hf: Vec<u8> = vec![0, 1, 2, 3];
    assert_eq!(permute_hf_to_gguf(&hf, 4, 1), vec![0, 2, 1, 3]);
    assert_eq!(unpermute_rows(&[0, 2, 1, 3], 1, 4, 1), hf);
    // Two heads of size 4.
    let hf: Vec<u8> = (0..8).collect();
    let g = permute_hf_to_gguf(&hf, 8, 2);
    assert_eq!(g, vec![0, 2, 1, 3, 4, 6, 5, 7]);
    assert_eq!(unpermute_rows(&g, 1, 8, 2), hf);
}

#[test]
fn round_trip_on_random_f32_rows() {
    let mut rng = Rng(42);
    for (heads, hd, cols) in [(1, 2, 1), (9, 64, 8), (3, 64, 5), (4, 16, 32), (32, 128, 3)] {
        let rows = heads * hd;
        let vals = rng.vec(rows * cols);
        let bytes: Vec<u8> = bytemuck::cast_slice(&vals).to_vec();
        let g = permute_hf_to_gguf(&bytes, rows, heads);
        if hd > 2 {
            assert_ne!(g, bytes, "the permutation should move rows ({heads}x{hd})");
        }
        assert_eq!(unpermute_rows(&g, cols * 4, rows, heads), bytes);
    }
}

#[test]
fn round_trip_on_q4_1_rows() {
    let mut rng = Rng(7);
    let (heads, hd, cols) = (3, 64, 96);
    let rows = heads * hd;
    let vals = rng.vec(rows * cols);
    let rb = DType::Q4_1.row_bytes(cols).unwrap();
    let mut q = vec![0u8; rows * rb];
    assert!(quantize_row_ref(DType::Q4_1, &vals, &mut q));
    let g = permute_hf_to_gguf(&q, rows, heads);
    assert_eq!(unpermute_rows(&g, rb, rows, heads), q);
}
