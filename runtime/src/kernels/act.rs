//! Activations quantized to 8-bit blocks of 32, once per matmul, so weight blocks meet them
//! in integer dot products (as llama.cpp does). Stored as separate arrays (structure of
//! arrays) so SIMD kernels load 32 or 64 values at once.

use alloc::vec;
use alloc::vec::Vec;

/// T rows of `cols` activations: `qs` (T, cols) int8, `d` and `s` (T, cols/32): block scale
/// and `d * sum(qs)` (the sum serves weight types with an offset or a minimum).
#[derive(Clone, Debug, Default)]
pub struct ActQ8 {
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
    cols: usize,
}

/// One row of [`ActQ8`].
#[derive(Clone, Copy, Debug)]
pub struct ActRow<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
}

impl ActQ8 {
    /// Room for `rows` rows of up to `max_cols` (a multiple of 32).
    pub fn new(rows: usize, max_cols: usize) -> ActQ8 {
        let nb = max_cols.div_ceil(32);
        ActQ8 {
            qs: vec![0; rows * nb * 32],
            d: vec![0.0; rows * nb],
            s: vec![0.0; rows * nb],
            cols: 0,
        }
    }

    pub fn bytes_required(rows: usize, max_cols: usize) -> usize {
        let nb = max_cols.div_ceil(32);
        rows * nb * (32 + 8)
    }

    /// Quantizes `x` (T, cols) with `quantize` (cols a multiple of 32, T within capacity).
    pub fn fill(&mut self, quantize: super::QuantizeFn, x: &[f32], t: usize, cols: usize) {
        let nb = cols / 32;
        self.cols = cols;
        for i in 0..t {
            quantize(
                &x[i * cols..(i + 1) * cols],
                &mut self.qs[i * cols..(i + 1) * cols],
                &mut self.d[i * nb..(i + 1) * nb],
                &mut self.s[i * nb..(i + 1) * nb],
            );
        }
    }

    pub fn row(&self, i: usize) -> ActRow<'_> {
        let (c, nb) = (self.cols, self.cols / 32);
        ActRow {
            qs: &self.qs[i * c..(i + 1) * c],
            d: &self.d[i * nb..(i + 1) * nb],
            s: &self.s[i * nb..(i + 1) * nb],
        }
    }
}
