//! Activations quantized to 8-bit blocks of 32, once per matmul, so weight blocks meet them
//! in integer dot products (as llama.cpp does). Stored as separate arrays (structure of
//! arrays) so SIMD kernels load 32 or 64 values at once.

/// T rows of `cols` activations in borrowed buffers: `qs` (T, cols) int8, `d` and `s`
/// (T, cols/32): block scale and `d * sum(qs)` (the sum serves weight types with an offset
/// or a minimum).
#[derive(Debug)]
pub struct ActQ8<'b> {
    qs: &'b mut [i8],
    d: &'b mut [f32],
    s: &'b mut [f32],
    cols: usize,
}

/// One row of [`ActQ8`].
#[derive(Clone, Copy, Debug)]
pub struct ActRow<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
}

impl<'b> ActQ8<'b> {
    /// Views over buffers of 32·n bytes and n scales each (n blocks in all).
    pub fn new(qs: &'b mut [i8], d: &'b mut [f32], s: &'b mut [f32]) -> Self {
        ActQ8 { qs, d, s, cols: 0 }
    }

    /// Quantizes `x` (T, cols) with `quantize`. `cols` is a multiple of 32 and T rows fit.
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

/// Owned buffers for an [`ActQ8`] (tests, benchmarks).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, Default)]
pub struct ActQ8Buf {
    qs: alloc::vec::Vec<i8>,
    d: alloc::vec::Vec<f32>,
    s: alloc::vec::Vec<f32>,
}

#[cfg(feature = "alloc")]
impl ActQ8Buf {
    /// Room for `rows` rows of up to `max_cols` (a multiple of 32).
    pub fn new(rows: usize, max_cols: usize) -> Self {
        let nb = rows * max_cols.div_ceil(32);
        ActQ8Buf {
            qs: alloc::vec![0; nb * 32],
            d: alloc::vec![0.0; nb],
            s: alloc::vec![0.0; nb],
        }
    }

    pub fn view(&mut self) -> ActQ8<'_> {
        ActQ8::new(&mut self.qs, &mut self.d, &mut self.s)
    }
}
