//! Tensor element types. Ids and block layouts of the quantized types are ggml's, so a
//! GGUF tensor is copied into a `.ember` file byte for byte.

/// A tensor's element type. Quantized types store `block_len` consecutive elements of a
/// row in one block of `block_bytes` bytes; rows (the last dimension) are whole blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4K,
    Q5K,
    Q6K,
    /// ggml's 4-bit non-linear type: 32 weights, one f16 scale, nibbles indexing a fixed
    /// 16-value grid (`blocks::IQ4_GRID`).
    IQ4NL,
    /// The same grid in 256-weight super-blocks with a 6-bit scale per 32 (4.25 bits/weight).
    IQ4XS,
    /// Ember's own 4.5-bit affine type (id 64): see `blocks::BlockQ4Z`.
    Q4Z,
}

impl DType {
    pub const ALL: [DType; 14] = [
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q4K,
        DType::Q5K,
        DType::Q6K,
        DType::IQ4NL,
        DType::IQ4XS,
        DType::Q4Z,
    ];

    /// The id stored in files: ggml's `ggml_type` value; Ember's own types use ids from 64
    /// up, so they never collide with ggml's.
    pub const fn id(self) -> u32 {
        match self {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q4_0 => 2,
            DType::Q4_1 => 3,
            DType::Q5_0 => 6,
            DType::Q5_1 => 7,
            DType::Q8_0 => 8,
            DType::Q4K => 12,
            DType::Q5K => 13,
            DType::Q6K => 14,
            DType::IQ4NL => 20,
            DType::IQ4XS => 23,
            DType::BF16 => 30,
            DType::Q4Z => 64,
        }
    }

    pub fn from_id(id: u32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.id() == id)
    }

    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
            DType::Q4_1 => "q4_1",
            DType::Q5_0 => "q5_0",
            DType::Q5_1 => "q5_1",
            DType::Q4K => "q4_k",
            DType::Q5K => "q5_k",
            DType::Q6K => "q6_k",
            DType::IQ4NL => "iq4_nl",
            DType::IQ4XS => "iq4_xs",
            DType::Q4Z => "q4_z",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Elements per block (1 for plain floats).
    pub const fn block_len(self) -> usize {
        match self {
            DType::F32 | DType::F16 | DType::BF16 => 1,
            DType::Q8_0
            | DType::Q4_0
            | DType::Q4_1
            | DType::Q5_0
            | DType::Q5_1
            | DType::Q4Z
            | DType::IQ4NL => 32,
            DType::Q4K | DType::Q5K | DType::Q6K | DType::IQ4XS => 256,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::Q8_0 => 34,
            DType::Q4_0 | DType::Q4Z | DType::IQ4NL => 18,
            DType::IQ4XS => 136,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q4K => 144,
            DType::Q5K => 176,
            DType::Q6K => 210,
        }
    }

    pub const fn is_quantized(self) -> bool {
        self.block_len() > 1
    }

    /// Bits per weight, including block scales.
    pub fn bits_per_weight(self) -> f64 {
        (self.block_bytes() * 8) as f64 / self.block_len() as f64
    }

    /// Bytes of one row of `n` elements, or `None` if `n` is not a whole number of blocks
    /// or the size overflows.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        if !n.is_multiple_of(self.block_len()) {
            return None;
        }
        (n / self.block_len()).checked_mul(self.block_bytes())
    }

    /// Bytes of a tensor of this shape (row-major, last dimension innermost).
    pub fn tensor_bytes(self, shape: &[usize]) -> Option<usize> {
        let (&last, outer) = shape.split_last()?;
        let rows = outer
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        self.row_bytes(last)?.checked_mul(rows)
    }
}

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_id(d.id()), Some(d));
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_id(99), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(DType::Q4_0.tensor_bytes(&[3, 64]), Some(3 * 2 * 18));
        assert_eq!(DType::Q4_0.tensor_bytes(&[3, 65]), None);
        assert_eq!(DType::F32.tensor_bytes(&[usize::MAX, 2]), None);
        assert_eq!(DType::Q4_1.bits_per_weight(), 5.0);
        assert_eq!(DType::Q4Z.bits_per_weight(), 4.5);
        assert!(DType::ALL.iter().all(|d| d.id() < 64 || *d == DType::Q4Z));
    }
}
