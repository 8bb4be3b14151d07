//! Quantization policy: which dtype each tensor is written in, and the conversion itself.

use ember_format::blocks::{dequantize_row_ref, quantize_row_ref};
use ember_format::DType;

use crate::error::Result;

/// A `--quant` recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    /// Keep each matrix in its source dtype, byte for byte.
    Same,
}

impl Recipe {
    pub const ALL: [Recipe; 7] = [
        Recipe::F32,
        Recipe::F16,
        Recipe::BF16,
        Recipe::Q8_0,
        Recipe::Q4_0,
        Recipe::Q4_1,
        Recipe::Same,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Recipe::Same => "same",
            other => other.dtype().expect("not same").name(),
        }
    }

    pub fn from_name(s: &str) -> Option<Recipe> {
        Recipe::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The dtype of 2-D matrices, `None` for `same`.
    pub fn dtype(self) -> Option<DType> {
        match self {
            Recipe::F32 => Some(DType::F32),
            Recipe::F16 => Some(DType::F16),
            Recipe::BF16 => Some(DType::BF16),
            Recipe::Q8_0 => Some(DType::Q8_0),
            Recipe::Q4_0 => Some(DType::Q4_0),
            Recipe::Q4_1 => Some(DType::Q4_1),
            Recipe::Same => None,
        }
    }
}

impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The dtype a tensor is written in, and whether that is a fallback from the recipe.
///
/// - 1-D tensors (norm weights, biases) are always f32: they are tiny and the runtime
///   adds or multiplies them elementwise in f32.
/// - `same` keeps a matrix's source dtype.
/// - A block-quantized recipe needs rows that are whole blocks; other matrices fall back
///   to f16 (returned as a fallback so the caller can report it).
pub fn target_dtype(recipe: Recipe, src: DType, shape: &[usize]) -> (DType, bool) {
    if shape.len() < 2 {
        return (DType::F32, false);
    }
    let Some(want) = recipe.dtype() else {
        return (src, false);
    };
    let row = *shape.last().expect("2-D");
    if want.row_bytes(row).is_some() {
        (want, false)
    } else {
        (DType::F16, true)
    }
}

/// Converts `data` (a tensor of `src` with `shape`) to `dst`. Identical dtypes are copied
/// byte for byte (so `q4_1` → `q4_1` is exact); otherwise each row is dequantized exactly
/// to f32 and quantized with ggml's reference quantizer.
pub fn convert(data: Vec<u8>, src: DType, dst: DType, shape: &[usize]) -> Result<Vec<u8>> {
    if src == dst {
        return Ok(data);
    }
    let cols = *shape.last().unwrap_or(&1);
    let Some(src_row) = src.row_bytes(cols) else {
        crate::bail!("row of {cols} elements is not whole {src} blocks");
    };
    let Some(dst_len) = dst.tensor_bytes(shape) else {
        crate::bail!("shape {shape:?} cannot be stored as {dst}");
    };
    let dst_row = dst.row_bytes(cols).expect("checked by tensor_bytes");
    if !data.len().is_multiple_of(src_row.max(1)) {
        crate::bail!("data is not whole rows of {src}");
    }
    let mut out = vec![0u8; dst_len];
    let mut row = vec![0f32; cols];
    for (s, d) in data
        .chunks_exact(src_row)
        .zip(out.chunks_exact_mut(dst_row))
    {
        dequantize_row_ref(src, s, &mut row);
        if !quantize_row_ref(dst, &row, d) {
            crate::bail!("no quantizer for {dst}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(
            target_dtype(Recipe::Q4_0, DType::F32, &[64]),
            (DType::F32, false)
        );
        assert_eq!(
            target_dtype(Recipe::Q4_0, DType::F32, &[8, 64]),
            (DType::Q4_0, false)
        );
        assert_eq!(
            target_dtype(Recipe::Q4_0, DType::F32, &[8, 172]),
            (DType::F16, true)
        );
        assert_eq!(
            target_dtype(Recipe::Same, DType::Q6K, &[8, 256]),
            (DType::Q6K, false)
        );
        assert_eq!(
            target_dtype(Recipe::Same, DType::BF16, &[256]),
            (DType::F32, false)
        );
        for r in Recipe::ALL {
            assert_eq!(Recipe::from_name(r.name()), Some(r));
        }
    }

    #[test]
    fn f16_round_trip_is_exact_for_halves() {
        let xs: Vec<f32> = (0..64).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes: Vec<u8> = bytemuck::cast_slice(&xs).to_vec();
        let h = convert(bytes.clone(), DType::F32, DType::F16, &[2, 32]).unwrap();
        assert_eq!(h.len(), 128);
        let back = convert(h, DType::F16, DType::F32, &[2, 32]).unwrap();
        assert_eq!(back, bytes);
    }
}
