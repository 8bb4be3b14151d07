//! Quantization policy: which dtype each tensor is written in, and the conversion itself.
//!
//! Block types are written by the error-minimizing searches of [`crate::quant_search`]
//! (optionally importance-weighted by calibration statistics); docs/QUANTIZATION.md has
//! the measured recipes.

use ember_format::blocks::{dequantize_row_ref, quantize_row_ref};
use ember_format::schema::Role;
use ember_format::DType;

use crate::error::Result;
use crate::quant_search;

/// A `--quant` recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    /// ggml's non-linear 4-bit grid in 32-blocks (4.5 bits/weight).
    IQ4NL,
    /// Ember's 4.5-bit affine type for the block matrices.
    Q4Z,
    /// The recommended 4-bit recipe (currently q4_z block matrices, q8_0 embedding/head).
    Q4,
    /// Keep each matrix in its source dtype, byte for byte.
    Same,
}

impl Recipe {
    pub const ALL: [Recipe; 12] = [
        Recipe::F32,
        Recipe::F16,
        Recipe::BF16,
        Recipe::Q8_0,
        Recipe::Q4_0,
        Recipe::Q4_1,
        Recipe::Q5_0,
        Recipe::Q5_1,
        Recipe::IQ4NL,
        Recipe::Q4Z,
        Recipe::Q4,
        Recipe::Same,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Recipe::Same => "same",
            Recipe::Q4 => "q4",
            other => other.dtype().expect("not same").name(),
        }
    }

    pub fn from_name(s: &str) -> Option<Recipe> {
        Recipe::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The dtype of the per-layer (block) matrices, `None` for `same`.
    pub fn dtype(self) -> Option<DType> {
        match self {
            Recipe::F32 => Some(DType::F32),
            Recipe::F16 => Some(DType::F16),
            Recipe::BF16 => Some(DType::BF16),
            Recipe::Q8_0 => Some(DType::Q8_0),
            Recipe::Q4_0 => Some(DType::Q4_0),
            Recipe::Q4_1 => Some(DType::Q4_1),
            Recipe::Q5_0 => Some(DType::Q5_0),
            Recipe::Q5_1 => Some(DType::Q5_1),
            Recipe::IQ4NL => Some(DType::IQ4NL),
            Recipe::Q4Z | Recipe::Q4 => Some(DType::Q4Z),
            Recipe::Same => None,
        }
    }

    /// The dtype of the token embedding and output head under a sub-8-bit recipe: q8_0, as
    /// llama.cpp does. They are the largest matrices of a small model and the ones its
    /// logits are most sensitive to.
    pub fn embedding_dtype(self) -> Option<DType> {
        match self {
            Recipe::Q4_0
            | Recipe::Q4_1
            | Recipe::Q5_0
            | Recipe::Q5_1
            | Recipe::IQ4NL
            | Recipe::Q4Z
            | Recipe::Q4 => Some(DType::Q8_0),
            other => other.dtype(),
        }
    }

    /// A one-line description for the file's provenance (`quantization.recipe`).
    pub fn describe(self) -> String {
        match self {
            Recipe::Same => "every matrix kept in its source dtype".into(),
            Recipe::F32 | Recipe::F16 | Recipe::BF16 => format!("every matrix {}", self.name()),
            Recipe::Q8_0 => "every matrix q8_0".into(),
            r => format!(
                "{}{}: per-layer matrices {}, token_embd/output {}",
                r.name(),
                if r == Recipe::Q4 {
                    " (recommended 4-bit)"
                } else {
                    ""
                },
                r.dtype().expect("block type"),
                r.embedding_dtype().expect("block type")
            ),
        }
    }
}

impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `name` is the token embedding or the output head.
pub fn is_embedding(name: &str) -> bool {
    matches!(
        name,
        "token_embd.weight" | "output.weight" | "pos_embd.weight"
    )
}

/// Whether `name` (`blk.N.<role>.weight`) is a small parameter the runtime reads in f32
/// whatever its shape: a recurrent layer's convolution kernel ([`Role::keeps_f32`]).
fn keeps_f32(name: &str) -> bool {
    Role::of_tensor(name).is_some_and(Role::keeps_f32)
}

/// The dtype a tensor is written in, and whether that is a fallback from the recipe.
///
/// - 1-D tensors (norm weights, biases) and convolution kernels are always f32: they are tiny and the runtime
///   adds or multiplies them elementwise in f32.
/// - `same` keeps a matrix's source dtype.
/// - Sub-8-bit recipes keep the embedding and output head at q8_0 ([`Recipe::embedding_dtype`]).
/// - A block-quantized recipe needs rows that are whole blocks; other matrices fall back
///   to f16 (returned as a fallback so the caller can report it).
pub fn target_dtype(recipe: Recipe, name: &str, src: DType, shape: &[usize]) -> (DType, bool) {
    if shape.len() < 2 || keeps_f32(name) {
        return (DType::F32, false);
    }
    let want = if is_embedding(name) {
        recipe.embedding_dtype()
    } else {
        recipe.dtype()
    };
    let Some(want) = want else {
        return (src, false);
    };
    let row = *shape.last().expect("2-D");
    if want.row_bytes(row).is_some() {
        (want, false)
    } else {
        (DType::F16, true)
    }
}

/// Per-tensor dtype overrides (`--tensor-type PATTERN=TYPE`, and the choices of
/// `--target-bpw`): a rule applies to a matrix whose name equals or contains PATTERN; an
/// exact name wins over a pattern, then the first matching pattern. Matrices only (1-D
/// tensors stay f32), and only where the rows are whole blocks of the type.
#[derive(Clone, Debug, Default)]
pub struct TypeRules {
    pub rules: Vec<(String, DType)>,
    /// How the rules were chosen, for the file's provenance (`None`: `--tensor-type`).
    pub origin: Option<String>,
}

impl TypeRules {
    /// Parses `PATTERN=TYPE` (TYPE a dtype name: q8_0, q5_0, iq4_nl, ...).
    pub fn parse_rule(s: &str) -> std::result::Result<(String, DType), String> {
        let (pat, ty) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("'{s}': expected PATTERN=TYPE"))?;
        let d = DType::from_name(&ty.to_ascii_lowercase())
            .ok_or_else(|| format!("'{s}': unknown type '{ty}'"))?;
        if pat.is_empty() {
            return Err(format!("'{s}': empty pattern"));
        }
        Ok((pat.to_string(), d))
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The dtype a rule gives `name`, if any.
    pub fn dtype_for(&self, name: &str) -> Option<DType> {
        self.rules
            .iter()
            .find(|(p, _)| p == name)
            .or_else(|| self.rules.iter().find(|(p, _)| name.contains(p.as_str())))
            .map(|&(_, d)| d)
    }

    /// [`target_dtype`] with these rules applied on top of the recipe.
    pub fn target_dtype(
        &self,
        recipe: Recipe,
        name: &str,
        src: DType,
        shape: &[usize],
    ) -> (DType, bool) {
        let base = target_dtype(recipe, name, src, shape);
        if shape.len() < 2 || keeps_f32(name) {
            return base;
        }
        match self.dtype_for(name) {
            Some(d) if d.row_bytes(*shape.last().expect("2-D")).is_some() => (d, false),
            _ => base,
        }
    }
}

/// How a tensor was produced, for the provenance record.
pub fn method(src: DType, dst: DType, weighted: bool) -> String {
    if src == dst {
        format!("{dst} (copied)")
    } else if quant_search::has_search(dst) {
        format!(
            "{dst} (least-squares scale search{})",
            if weighted {
                ", calibration-weighted"
            } else {
                ""
            }
        )
    } else {
        format!("{dst}")
    }
}

/// Converts `data` (a tensor of `src` with `shape`) to `dst`. Identical dtypes are copied
/// byte for byte (so `q4_1` → `q4_1` is exact); otherwise each row is dequantized exactly
/// to f32 and quantized: block types by the error-minimizing search, weighted per input
/// column by `importance` (length = columns) when given; float types by rounding.
pub fn convert(
    data: Vec<u8>,
    src: DType,
    dst: DType,
    shape: &[usize],
    importance: Option<&[f32]>,
) -> Result<Vec<u8>> {
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
    if !data.len().is_multiple_of(src_row.max(1))
        || data.len() / src_row.max(1) * dst_row != dst_len
    {
        crate::bail!("data is not whole rows of {src}");
    }
    if let Some(imp) = importance {
        if imp.len() != cols {
            crate::bail!("importance has {} columns, the matrix {cols}", imp.len());
        }
    }
    let mut out = vec![0u8; dst_len];
    let rows = dst_len / dst_row.max(1);
    // Rows are independent: split them over threads (the result does not depend on it).
    // Not under cargo-fuzz: a scoped thread's thread-local destructor list is freed after
    // `scope` returns, which libFuzzer's per-input leak check reports as a leak.
    let threads = if quant_search::has_search(dst) && rows >= 64 && !cfg!(fuzzing) {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(16)
    } else {
        1
    };
    // Converts whole rows `s` into `d`; false if `dst` has no quantizer.
    let run = |s: &[u8], d: &mut [u8]| -> bool {
        let mut row = vec![0f32; cols];
        for (s, d) in s.chunks_exact(src_row).zip(d.chunks_exact_mut(dst_row)) {
            dequantize_row_ref(src, s, &mut row);
            if !(quant_search::quantize_row(dst, &row, importance, d)
                || quantize_row_ref(dst, &row, d))
            {
                return false;
            }
        }
        true
    };
    let ok = if threads == 1 {
        run(&data, &mut out)
    } else {
        let per = rows.div_ceil(threads).max(1);
        let failed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for (s, d) in data
                .chunks(per * src_row)
                .zip(out.chunks_mut(per * dst_row))
            {
                let (failed, run) = (&failed, &run);
                scope.spawn(move || {
                    if !run(s, d) {
                        failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        !failed.into_inner()
    };
    if !ok {
        crate::bail!("no quantizer for {dst}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        let m = "blk.0.ffn_up.weight";
        assert_eq!(
            target_dtype(Recipe::Q4_0, "x.bias", DType::F32, &[64]),
            (DType::F32, false)
        );
        assert_eq!(
            target_dtype(Recipe::Q4_0, m, DType::F32, &[8, 64]),
            (DType::Q4_0, false)
        );
        assert_eq!(
            target_dtype(Recipe::Q4_0, m, DType::F32, &[8, 172]),
            (DType::F16, true)
        );
        assert_eq!(
            target_dtype(Recipe::Same, m, DType::Q6K, &[8, 256]),
            (DType::Q6K, false)
        );
        assert_eq!(
            target_dtype(Recipe::Same, "x", DType::BF16, &[256]),
            (DType::F32, false)
        );
        for r in [Recipe::Q4, Recipe::Q4Z] {
            assert_eq!(
                target_dtype(r, m, DType::F32, &[8, 64]),
                (DType::Q4Z, false)
            );
            assert_eq!(
                target_dtype(r, "token_embd.weight", DType::Q4_1, &[8, 64]),
                (DType::Q8_0, false)
            );
        }
        assert_eq!(
            target_dtype(Recipe::Q8_0, "output.weight", DType::F32, &[8, 64]),
            (DType::Q8_0, false)
        );
        for r in Recipe::ALL {
            assert_eq!(Recipe::from_name(r.name()), Some(r));
        }
    }

    #[test]
    fn type_rules() {
        let rules = TypeRules {
            rules: vec![
                TypeRules::parse_rule("ffn_down=q8_0").unwrap(),
                TypeRules::parse_rule("blk.1.ffn_down.weight=q5_0").unwrap(),
                TypeRules::parse_rule("token_embd=IQ4_NL").unwrap(),
            ],
            origin: None,
        };
        assert!(TypeRules::parse_rule("x").is_err());
        assert!(TypeRules::parse_rule("x=q9").is_err());
        let t = |name: &str, shape: &[usize]| {
            rules.target_dtype(Recipe::Q4Z, name, DType::F32, shape).0
        };
        assert_eq!(t("blk.0.ffn_down.weight", &[8, 64]), DType::Q8_0);
        assert_eq!(t("blk.1.ffn_down.weight", &[8, 64]), DType::Q5_0);
        assert_eq!(t("blk.11.ffn_down.weight", &[8, 64]), DType::Q8_0);
        assert_eq!(t("token_embd.weight", &[8, 64]), DType::IQ4NL);
        assert_eq!(t("blk.0.ffn_up.weight", &[8, 64]), DType::Q4Z);
        assert_eq!(t("blk.0.ffn_norm.weight", &[64]), DType::F32);
    }

    #[test]
    fn f16_round_trip_is_exact_for_halves() {
        let xs: Vec<f32> = (0..64).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes: Vec<u8> = bytemuck::cast_slice(&xs).to_vec();
        let h = convert(bytes.clone(), DType::F32, DType::F16, &[2, 32], None).unwrap();
        assert_eq!(h.len(), 128);
        let back = convert(h, DType::F16, DType::F32, &[2, 32], None).unwrap();
        assert_eq!(back, bytes);
    }
}
