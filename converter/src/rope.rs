//! RoPE row order. Hugging Face pairs dimension i of a head with i + HS/2 ("rotate half");
//! llama.cpp's convert_hf_to_gguf permutes Q and K rows so pairs are adjacent:
//! `w.reshape(n_head, 2, HS/2, C).swapaxes(1, 2).reshape(w.shape)`, i.e.
//! GGUF row `h*HS + 2*i + j` is HF row `h*HS + j*HS/2 + i`. Ember stores HF order.
//!
//! Whole rows move, so this works on quantized rows without requantizing.

/// GGUF (interleaved) rows back to HF (rotate-half) order. `src` is `rows` rows of
/// `row_bytes` bytes; `heads` divides `rows` and the head size `rows / heads` is even.
pub fn unpermute_rows(src: &[u8], row_bytes: usize, rows: usize, heads: usize) -> Vec<u8> {
    let hs = rows / heads;
    let half = hs / 2;
    let mut out = vec![0u8; src.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let gguf_row = h * hs + 2 * i + j;
                let hf_row = h * hs + j * half + i;
                out[hf_row * row_bytes..(hf_row + 1) * row_bytes]
                    .copy_from_slice(&src[gguf_row * row_bytes..(gguf_row + 1) * row_bytes]);
            }
        }
    }
    out
}
