//! Compute kernels. `dot/scalar.rs` and `ops.rs` are the reference; SIMD versions of the dot
//! products live beside the scalar ones under the same names, and one [`Kernels`] table of
//! plain function pointers is chosen once per session.

pub mod act;
pub mod dot;
pub mod group;
pub mod matmul;
pub mod ops;
pub mod tile;

#[cfg(feature = "alloc")]
pub use act::ActQ8Buf;
pub use act::{ActQ8, ActRow};
pub use ops::{
    add_in_place, attention_head, attention_head_split, dequantize_row, geglu, gelu_tanh,
    layernorm, rmsnorm, rmsnorm_heads, rope, rope_angles, softcap, softmax, swiglu,
};

use ember_format::DType;
pub use group::{
    GroupFloatFn, GroupFns, GroupGemmFn, GroupGemvFn, FLOAT_TOKENS, GROUP, GROUP_TOKENS,
};
pub use tile::{RowsQ8Fn, TileFloatFn, TileQ8Fn, TILE};

/// x (32·nb) -> int8 blocks: qs (32·nb), scales d (nb), d·sum(q) s (nb).
pub type QuantizeFn = fn(&[f32], &mut [i8], &mut [f32], &mut [f32]);
/// Weight row (whole blocks) · quantized activation row (qs, d, s).
pub type DotQ8Fn = fn(&[u8], &[i8], &[f32], &[f32]) -> f32;
/// Float weight row (f32/f16/bf16 bytes) · f32 activations.
pub type DotFloatFn = fn(&[u8], &[f32]) -> f32;
/// (q, keys, stride, offset, scale, scores): scores[p] = scale · q · keys[p·stride + offset..]
/// [..q.len()] for p < scores.len().
pub type AttnScoresFn = fn(&[f32], &[f32], usize, usize, f32, &mut [f32]);
/// (scores, values, stride, offset, out): out[d] = Σ_p scores[p] · values[p·stride + offset + d]
/// for d < out.len(); out is overwritten.
pub type AttnValuesFn = fn(&[f32], &[f32], usize, usize, &mut [f32]);

/// An instruction-set level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL with VNNI.
    Avx512,
    /// aarch64 NEON with the dot-product extension.
    Neon,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Scalar, Level::Avx2, Level::Avx512, Level::Neon];

    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }

    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Whether this CPU can run the level: runtime detection with std, compile-time target
    /// features without.
    pub fn supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            Level::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
            }
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            Level::Avx512 => {
                Level::Avx2.supported()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
            Level::Avx2 => cfg!(all(
                target_feature = "avx2",
                target_feature = "fma",
                target_feature = "f16c"
            )),
            #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
            Level::Avx512 => cfg!(all(
                target_feature = "avx2",
                target_feature = "fma",
                target_feature = "f16c",
                target_feature = "avx512f",
                target_feature = "avx512bw",
                target_feature = "avx512vl",
                target_feature = "avx512vnni"
            )),
            #[cfg(all(target_arch = "aarch64", feature = "std"))]
            Level::Neon => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[cfg(all(target_arch = "aarch64", not(feature = "std")))]
            Level::Neon => cfg!(target_feature = "dotprod"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best supported level.
    pub fn best() -> Level {
        [Level::Avx512, Level::Avx2, Level::Neon]
            .into_iter()
            .find(|l| l.supported())
            .unwrap_or(Level::Scalar)
    }
}

/// The kernels of one level as plain function pointers.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub level: Level,
    pub quantize_q8: QuantizeFn,
    pub dot_q8_0: DotQ8Fn,
    pub dot_q4_0: DotQ8Fn,
    pub dot_q4_1: DotQ8Fn,
    pub dot_q5_0: DotQ8Fn,
    pub dot_q5_1: DotQ8Fn,
    pub dot_q4_k: DotQ8Fn,
    pub dot_q5_k: DotQ8Fn,
    pub dot_q6_k: DotQ8Fn,
    pub dot_iq4_nl: DotQ8Fn,
    pub dot_iq4_xs: DotQ8Fn,
    pub dot_q4_z: DotQ8Fn,
    pub dot_f32: DotFloatFn,
    pub dot_f16: DotFloatFn,
    pub dot_bf16: DotFloatFn,
    /// One query head's scores against the cached keys of its KV head.
    pub attn_scores: AttnScoresFn,
    /// One query head's softmax-weighted sum of the cached values.
    pub attn_values: AttnValuesFn,
    /// GEMM tiles (prefill); `None` multiplies token by token with the row dot.
    pub tile_q8_0: Option<TileQ8Fn>,
    pub tile_q4_0: Option<TileQ8Fn>,
    pub tile_q4_1: Option<TileQ8Fn>,
    pub tile_q4_z: Option<TileQ8Fn>,
    pub tile_f32: Option<TileFloatFn>,
    pub tile_f16: Option<TileFloatFn>,
    pub tile_bf16: Option<TileFloatFn>,
    /// Decode GEMV over TILE rows at once; `None` uses the row dot.
    pub rows_q8_0: Option<RowsQ8Fn>,
    pub rows_q4_0: Option<RowsQ8Fn>,
    pub rows_q4_1: Option<RowsQ8Fn>,
    pub rows_q4_z: Option<RowsQ8Fn>,
    /// Kernels for matrices in the rows16 layout (every level has its own).
    pub groups: GroupKernels,
}

/// How a level multiplies matrices of one dtype and layout, for `ember inspect`/`run -v`
/// and the test that requires SIMD paths. Every table entry of a SIMD level is named in its
/// table function (no spread from the scalar table), so a SIMD level has no scalar entry
/// unless one is written there by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// The scalar reference (the scalar level).
    Reference,
    /// The level's own SIMD kernel.
    Simd,
}

/// A level's rows16 kernels, one per dtype the layout takes.
#[derive(Clone, Copy, Debug)]
pub struct GroupKernels {
    pub q8_0: GroupFns,
    pub q4_0: GroupFns,
    pub q4_1: GroupFns,
    pub q4_z: GroupFns,
    pub q5_0: GroupFns,
    pub q5_1: GroupFns,
    pub q4_k: GroupFns,
    pub q5_k: GroupFns,
    pub q6_k: GroupFns,
    pub iq4_nl: GroupFns,
    pub iq4_xs: GroupFns,
    pub f32: GroupFloatFn,
    pub f16: GroupFloatFn,
    pub bf16: GroupFloatFn,
}

/// The [`GroupKernels`] of a module that defines the fifteen group kernel names (each
/// level's `group` module, or its safe wrappers).
macro_rules! group_kernels {
    ($m:path) => {{
        use $m as m;
        $crate::kernels::GroupKernels {
            q8_0: $crate::kernels::GroupFns {
                gemv: m::gemv_q8_0,
                gemm: m::gemm_q8_0,
            },
            q4_0: $crate::kernels::GroupFns {
                gemv: m::gemv_q4_0,
                gemm: m::gemm_q4_0,
            },
            q4_1: $crate::kernels::GroupFns {
                gemv: m::gemv_q4_1,
                gemm: m::gemm_q4_1,
            },
            q4_z: $crate::kernels::GroupFns {
                gemv: m::gemv_q4_z,
                gemm: m::gemm_q4_z,
            },
            q5_0: $crate::kernels::GroupFns {
                gemv: m::gemv_q5_0,
                gemm: m::gemm_q5_0,
            },
            q5_1: $crate::kernels::GroupFns {
                gemv: m::gemv_q5_1,
                gemm: m::gemm_q5_1,
            },
            q4_k: $crate::kernels::GroupFns {
                gemv: m::gemv_q4_k,
                gemm: m::gemm_q4_k,
            },
            q5_k: $crate::kernels::GroupFns {
                gemv: m::gemv_q5_k,
                gemm: m::gemm_q5_k,
            },
            q6_k: $crate::kernels::GroupFns {
                gemv: m::gemv_q6_k,
                gemm: m::gemm_q6_k,
            },
            iq4_nl: $crate::kernels::GroupFns {
                gemv: m::gemv_iq4_nl,
                gemm: m::gemm_iq4_nl,
            },
            iq4_xs: $crate::kernels::GroupFns {
                gemv: m::gemv_iq4_xs,
                gemm: m::gemm_iq4_xs,
            },
            f32: m::group_f32,
            f16: m::group_f16,
            bf16: m::group_bf16,
        }
    }};
}

/// Safe wrappers around a level's own K-quant and IQ4 group kernels in module `$m` (those
/// defined by `entry_points!(@super_blocks ...)`); uses the table's `wrap!` and the types
/// of `wrap_group_kernels!`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! wrap_super_block_group_kernels {
    ($m:ident) => {
        wrap!($m, gemv_q4_k, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_q5_k, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_q6_k, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_iq4_nl, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_iq4_xs, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemm_q4_k, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_q5_k, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_q6_k, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_iq4_nl, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_iq4_xs, (w: &[u8], a: &Acts) -> Group);
    };
}

/// Safe wrappers (module `w` inside a level's table function) around a level's
/// `#[target_feature]` group kernels in module `$m` (the 32-weight block types and floats);
/// uses that table's `wrap!`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! wrap_group_kernels {
    ($m:ident) => {
        type Group = [[f32; crate::kernels::GROUP]; crate::kernels::GROUP_TOKENS];
        type Out = [f32; crate::kernels::GROUP];
        type Rows = [[f32; crate::kernels::GROUP]];
        type Act<'a> = crate::kernels::ActRow<'a>;
        type Acts<'a> = [crate::kernels::ActRow<'a>; crate::kernels::GROUP_TOKENS];
        wrap!($m, gemv_q8_0, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_q4_0, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_q4_1, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_q4_z, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_q5_0, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemv_q5_1, (w: &[u8], a: &Act) -> Out);
        wrap!($m, gemm_q8_0, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_q4_0, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_q4_1, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_q4_z, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_q5_0, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, gemm_q5_1, (w: &[u8], a: &Acts) -> Group);
        wrap!($m, group_f32, (w: &[u8], x: &[&[f32]], out: &mut Rows) -> ());
        wrap!($m, group_f16, (w: &[u8], x: &[&[f32]], out: &mut Rows) -> ());
        wrap!($m, group_bf16, (w: &[u8], x: &[&[f32]], out: &mut Rows) -> ());
    };
}

/// How a matrix of a dtype meets its activations: a row dot, a prefill tile and a decode
/// multi-row kernel if there are.
#[derive(Clone, Copy, Debug)]
pub enum RowDot {
    Quantized(DotQ8Fn, Option<TileQ8Fn>, Option<RowsQ8Fn>),
    Float(DotFloatFn, Option<TileFloatFn>),
}

impl Kernels {
    pub fn scalar() -> Kernels {
        use dot::scalar as s;
        Kernels {
            level: Level::Scalar,
            quantize_q8: s::quantize_q8,
            dot_q8_0: s::dot_q8_0,
            dot_q4_0: s::dot_q4_0,
            dot_q4_1: s::dot_q4_1,
            dot_q5_0: s::dot_q5_0,
            dot_q5_1: s::dot_q5_1,
            dot_q4_k: s::dot_q4_k,
            dot_q5_k: s::dot_q5_k,
            dot_q6_k: s::dot_q6_k,
            dot_iq4_nl: s::dot_iq4_nl,
            dot_iq4_xs: s::dot_iq4_xs,
            dot_q4_z: s::dot_q4_z,
            dot_f32: s::dot_f32,
            dot_f16: s::dot_f16,
            dot_bf16: s::dot_bf16,
            attn_scores: s::attn_scores,
            attn_values: s::attn_values,
            tile_q8_0: None,
            tile_q4_0: None,
            tile_q4_1: None,
            tile_q4_z: None,
            tile_f32: None,
            tile_f16: None,
            tile_bf16: None,
            rows_q8_0: None,
            rows_q4_0: None,
            rows_q4_1: None,
            rows_q4_z: None,
            groups: group_kernels!(group::scalar),
        }
    }

    /// How this level multiplies matrices of `dtype` stored in `layout` (every dtype has a
    /// row dot and, where rows16 applies, a group kernel at every level).
    pub fn path(&self, _dtype: DType, _layout: ember_format::Layout) -> KernelPath {
        match self.level {
            Level::Scalar => KernelPath::Reference,
            Level::Avx2 | Level::Avx512 | Level::Neon => KernelPath::Simd,
        }
    }

    /// The kernels of `level`, or `None` if this CPU (or build) cannot run them.
    pub fn for_level(level: Level) -> Option<Kernels> {
        if !level.supported() {
            return None;
        }
        match level {
            Level::Scalar => Some(Kernels::scalar()),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => Some(x86::avx2()),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => Some(x86::avx512()),
            #[cfg(target_arch = "aarch64")]
            Level::Neon => Some(arm::neon()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The best kernels for this CPU, unless `EMBER_KERNELS=scalar|avx2|avx512|neon` (read by
    /// the caller with std and passed as `forced`) names another supported level.
    pub fn select(forced: Option<&str>) -> Result<Kernels, &'static str> {
        match forced {
            None | Some("") | Some("auto") => {
                Ok(Kernels::for_level(Level::best()).unwrap_or_else(Kernels::scalar))
            }
            Some(name) => {
                let level = Level::from_name(name)
                    .ok_or("EMBER_KERNELS must be one of auto, scalar, avx2, avx512, neon")?;
                Kernels::for_level(level)
                    .ok_or("the kernel level named by EMBER_KERNELS is not supported by this CPU")
            }
        }
    }

    /// The best kernels, honoring `EMBER_KERNELS` (std only).
    #[cfg(feature = "std")]
    pub fn from_env() -> Result<Kernels, &'static str> {
        let forced = std::env::var("EMBER_KERNELS").ok();
        Kernels::select(forced.as_deref())
    }

    pub fn row_dot(&self, dtype: DType) -> RowDot {
        match dtype {
            DType::F32 => RowDot::Float(self.dot_f32, self.tile_f32),
            DType::F16 => RowDot::Float(self.dot_f16, self.tile_f16),
            DType::BF16 => RowDot::Float(self.dot_bf16, self.tile_bf16),
            DType::Q8_0 => RowDot::Quantized(self.dot_q8_0, self.tile_q8_0, self.rows_q8_0),
            DType::Q4_0 => RowDot::Quantized(self.dot_q4_0, self.tile_q4_0, self.rows_q4_0),
            DType::Q4_1 => RowDot::Quantized(self.dot_q4_1, self.tile_q4_1, self.rows_q4_1),
            DType::Q5_0 => RowDot::Quantized(self.dot_q5_0, None, None),
            DType::Q5_1 => RowDot::Quantized(self.dot_q5_1, None, None),
            DType::Q4K => RowDot::Quantized(self.dot_q4_k, None, None),
            DType::Q5K => RowDot::Quantized(self.dot_q5_k, None, None),
            DType::Q6K => RowDot::Quantized(self.dot_q6_k, None, None),
            DType::IQ4NL => RowDot::Quantized(self.dot_iq4_nl, None, None),
            DType::IQ4XS => RowDot::Quantized(self.dot_iq4_xs, None, None),
            DType::Q4Z => RowDot::Quantized(self.dot_q4_z, self.tile_q4_z, self.rows_q4_z),
            // DType is non-exhaustive; a new type must be added here before the loader
            // accepts it (Weights::load checks `supports`).
            _ => RowDot::Float(self.dot_f32, None),
        }
    }

    /// The rows16 kernels for `dtype`, if the layout takes that dtype.
    pub fn group(&self, dtype: DType) -> Option<GroupFns> {
        match dtype {
            DType::Q8_0 => Some(self.groups.q8_0),
            DType::Q4_0 => Some(self.groups.q4_0),
            DType::Q4_1 => Some(self.groups.q4_1),
            DType::Q4Z => Some(self.groups.q4_z),
            DType::Q5_0 => Some(self.groups.q5_0),
            DType::Q5_1 => Some(self.groups.q5_1),
            DType::Q4K => Some(self.groups.q4_k),
            DType::Q5K => Some(self.groups.q5_k),
            DType::Q6K => Some(self.groups.q6_k),
            DType::IQ4NL => Some(self.groups.iq4_nl),
            DType::IQ4XS => Some(self.groups.iq4_xs),
            _ => None,
        }
    }

    /// The rows16 kernel for a float `dtype`.
    pub fn group_float(&self, dtype: DType) -> Option<GroupFloatFn> {
        match dtype {
            DType::F32 => Some(self.groups.f32),
            DType::F16 => Some(self.groups.f16),
            DType::BF16 => Some(self.groups.bf16),
            _ => None,
        }
    }

    /// Whether matrices of `dtype` can be multiplied.
    pub fn supports(dtype: DType) -> bool {
        DType::ALL.contains(&dtype)
    }
}

/// Safe wrappers around the `#[target_feature]` functions, built only after detection.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::dot::{avx2, avx512};
    use super::group::avx2 as group2;
    use super::group::avx512 as group512;
    use super::tile::avx512 as tile512;
    use super::{ActRow, TILE};
    use super::{Kernels, Level};

    macro_rules! wrap {
        ($module:ident, $name:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
            pub fn $name($($arg: $ty),*) -> $ret {
                // SAFETY: these wrappers are only placed in a Kernels table by `avx2()` /
                // `avx512()`, which `Kernels::for_level` calls after checking the CPU.
                unsafe { $module::$name($($arg),*) }
            }
        };
    }

    /// Wrappers (module `w`) around the row kernels both x86 levels have in module `$m`.
    macro_rules! wrap_x86_row_kernels {
        ($m:ident) => {
            wrap!($m, quantize_q8, (x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32]) -> ());
            wrap!($m, dot_q8_0, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q4_0, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q4_1, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q4_z, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q5_0, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q5_1, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q4_k, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q5_k, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_q6_k, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_iq4_nl, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_iq4_xs, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!($m, dot_f32, (w: &[u8], x: &[f32]) -> f32);
            wrap!($m, dot_f16, (w: &[u8], x: &[f32]) -> f32);
            wrap!($m, dot_bf16, (w: &[u8], x: &[f32]) -> f32);
            wrap!($m, attn_scores, (q: &[f32], keys: &[f32], stride: usize, offset: usize, scale: f32, scores: &mut [f32]) -> ());
            wrap!($m, attn_values, (scores: &[f32], values: &[f32], stride: usize, offset: usize, out: &mut [f32]) -> ());
        };
    }

    /// A level's table from the wrappers in `w` (row kernels and group kernels); the types
    /// without an x86 version use the reference.
    macro_rules! x86_kernels {
        ($level:expr) => {
            Kernels {
                level: $level,
                quantize_q8: w::quantize_q8,
                dot_q8_0: w::dot_q8_0,
                dot_q4_0: w::dot_q4_0,
                dot_q4_1: w::dot_q4_1,
                dot_q4_z: w::dot_q4_z,
                dot_q5_0: w::dot_q5_0,
                dot_q5_1: w::dot_q5_1,
                dot_q4_k: w::dot_q4_k,
                dot_q5_k: w::dot_q5_k,
                dot_q6_k: w::dot_q6_k,
                dot_iq4_nl: w::dot_iq4_nl,
                dot_iq4_xs: w::dot_iq4_xs,
                dot_f32: w::dot_f32,
                dot_f16: w::dot_f16,
                dot_bf16: w::dot_bf16,
                attn_scores: w::attn_scores,
                attn_values: w::attn_values,
                groups: group_kernels!(w),
                // Every field is named: a missing SIMD entry is a compile error here, not a
                // silent scalar one. Without tiles, prefill uses the row dots (or rows16).
                tile_q8_0: None,
                tile_q4_0: None,
                tile_q4_1: None,
                tile_q4_z: None,
                tile_f32: None,
                tile_f16: None,
                tile_bf16: None,
                rows_q8_0: None,
                rows_q4_0: None,
                rows_q4_1: None,
                rows_q4_z: None,
            }
        };
    }

    pub fn avx2() -> Kernels {
        mod w {
            use super::avx2;
            wrap_x86_row_kernels!(avx2);
            use super::group2;
            wrap_group_kernels!(group2);
            wrap_super_block_group_kernels!(group2);
        }
        x86_kernels!(Level::Avx2)
    }

    pub fn avx512() -> Kernels {
        mod w {
            use super::avx512;
            wrap_x86_row_kernels!(avx512);
            use super::tile512;
            use super::{ActRow, TILE};
            type Tile = [[f32; TILE]; TILE];
            wrap!(tile512, tile_q8_0, (w: &[u8], n: usize, a: &[ActRow; TILE]) -> Tile);
            wrap!(tile512, tile_q4_0, (w: &[u8], n: usize, a: &[ActRow; TILE]) -> Tile);
            wrap!(tile512, tile_q4_1, (w: &[u8], n: usize, a: &[ActRow; TILE]) -> Tile);
            wrap!(tile512, tile_q4_z, (w: &[u8], n: usize, a: &[ActRow; TILE]) -> Tile);
            wrap!(tile512, tile_f32, (w: &[u8], n: usize, x: &[&[f32]; TILE]) -> Tile);
            wrap!(tile512, tile_f16, (w: &[u8], n: usize, x: &[&[f32]; TILE]) -> Tile);
            wrap!(tile512, tile_bf16, (w: &[u8], n: usize, x: &[&[f32]; TILE]) -> Tile);
            wrap!(tile512, rows_q8_0, (w: &[u8], n: usize, a: &ActRow) -> [f32; TILE]);
            wrap!(tile512, rows_q4_0, (w: &[u8], n: usize, a: &ActRow) -> [f32; TILE]);
            wrap!(tile512, rows_q4_1, (w: &[u8], n: usize, a: &ActRow) -> [f32; TILE]);
            wrap!(tile512, rows_q4_z, (w: &[u8], n: usize, a: &ActRow) -> [f32; TILE]);
            use super::group512;
            wrap_group_kernels!(group512);
            wrap_super_block_group_kernels!(group512);
        }
        Kernels {
            tile_q8_0: Some(w::tile_q8_0),
            tile_q4_0: Some(w::tile_q4_0),
            tile_q4_1: Some(w::tile_q4_1),
            tile_q4_z: Some(w::tile_q4_z),
            tile_f32: Some(w::tile_f32),
            tile_f16: Some(w::tile_f16),
            tile_bf16: Some(w::tile_bf16),
            rows_q8_0: Some(w::rows_q8_0),
            rows_q4_0: Some(w::rows_q4_0),
            rows_q4_1: Some(w::rows_q4_1),
            rows_q4_z: Some(w::rows_q4_z),
            ..x86_kernels!(Level::Avx512)
        }
    }
}

/// Safe wrappers around the NEON + dotprod functions, built only after detection.
#[cfg(target_arch = "aarch64")]
mod arm {
    use super::dot::neon;
    use super::group::neon as group_neon;
    use super::tile::neon as tile_neon;
    use super::{Kernels, Level};

    macro_rules! wrap {
        ($module:ident, $name:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
            pub fn $name($($arg: $ty),*) -> $ret {
                // SAFETY: these wrappers are only placed in a Kernels table by `neon()`,
                // which `Kernels::for_level` calls after checking the CPU has dotprod.
                unsafe { $module::$name($($arg),*) }
            }
        };
    }

    pub fn neon() -> Kernels {
        mod w {
            use super::super::{ActRow, TILE};
            use super::{neon, tile_neon};
            type Tile = [[f32; TILE]; TILE];
            wrap!(neon, quantize_q8, (x: &[f32], q: &mut [i8], d: &mut [f32], s: &mut [f32]) -> ());
            wrap!(neon, dot_q8_0, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q4_0, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q4_1, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q5_0, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q5_1, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q4_k, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q5_k, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q6_k, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_iq4_nl, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_iq4_xs, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_q4_z, (w: &[u8], q: &[i8], d: &[f32], s: &[f32]) -> f32);
            wrap!(neon, dot_f32, (w: &[u8], x: &[f32]) -> f32);
            wrap!(neon, dot_f16, (w: &[u8], x: &[f32]) -> f32);
            wrap!(neon, dot_bf16, (w: &[u8], x: &[f32]) -> f32);
            wrap!(neon, attn_scores, (q: &[f32], keys: &[f32], stride: usize, offset: usize, scale: f32, scores: &mut [f32]) -> ());
            wrap!(neon, attn_values, (scores: &[f32], values: &[f32], stride: usize, offset: usize, out: &mut [f32]) -> ());
            wrap!(tile_neon, tile_q8_0, (w: &[u8], n: usize, a: &[ActRow; TILE]) -> Tile);
            wrap!(tile_neon, tile_q4_0, (w: &[u8], n: usize, a: &[ActRow; TILE]) -> Tile);
            wrap!(tile_neon, tile_q4_1, (w: &[u8], n: usize, a: &[ActRow; TILE]) -> Tile);
            wrap!(tile_neon, tile_f32, (w: &[u8], n: usize, x: &[&[f32]; TILE]) -> Tile);
            wrap!(tile_neon, tile_f16, (w: &[u8], n: usize, x: &[&[f32]; TILE]) -> Tile);
            wrap!(tile_neon, tile_bf16, (w: &[u8], n: usize, x: &[&[f32]; TILE]) -> Tile);
            use super::group_neon;
            wrap_group_kernels!(group_neon);
            wrap_super_block_group_kernels!(group_neon);

            /// Safe wrappers around the i8mm (SMMLA) prefill kernels.
            macro_rules! wrap_i8mm {
                ($($name:ident),*) => {$(
                    pub fn $name(w: &[u8], a: &Acts) -> Group {
                        // SAFETY: `neon()` places these wrappers in a Kernels table only
                        // after detecting i8mm (and `for_level` checked dotprod).
                        unsafe { group_neon::$name(w, a) }
                    }
                )*};
            }
            wrap_i8mm!(
                gemm_q8_0_i8mm,
                gemm_q4_0_i8mm,
                gemm_q4_1_i8mm,
                gemm_q4_z_i8mm
            );
        }
        let mut groups = group_kernels!(w);
        // Prefill with SMMLA where the CPU has i8mm (the matrix multiply extension).
        #[cfg(feature = "std")]
        let i8mm = std::arch::is_aarch64_feature_detected!("i8mm");
        #[cfg(not(feature = "std"))]
        let i8mm = cfg!(target_feature = "i8mm");
        if i8mm {
            groups.q8_0.gemm = w::gemm_q8_0_i8mm;
            groups.q4_0.gemm = w::gemm_q4_0_i8mm;
            groups.q4_1.gemm = w::gemm_q4_1_i8mm;
            groups.q4_z.gemm = w::gemm_q4_z_i8mm;
        }
        Kernels {
            level: Level::Neon,
            quantize_q8: w::quantize_q8,
            dot_q8_0: w::dot_q8_0,
            dot_q4_0: w::dot_q4_0,
            dot_q4_1: w::dot_q4_1,
            dot_q5_0: w::dot_q5_0,
            dot_q5_1: w::dot_q5_1,
            dot_q4_k: w::dot_q4_k,
            dot_q5_k: w::dot_q5_k,
            dot_q6_k: w::dot_q6_k,
            dot_iq4_nl: w::dot_iq4_nl,
            dot_iq4_xs: w::dot_iq4_xs,
            dot_q4_z: w::dot_q4_z,
            dot_f32: w::dot_f32,
            dot_f16: w::dot_f16,
            dot_bf16: w::dot_bf16,
            attn_scores: w::attn_scores,
            attn_values: w::attn_values,
            tile_q8_0: Some(w::tile_q8_0),
            tile_q4_0: Some(w::tile_q4_0),
            tile_q4_1: Some(w::tile_q4_1),
            tile_q4_z: None,
            tile_f32: Some(w::tile_f32),
            tile_f16: Some(w::tile_f16),
            tile_bf16: Some(w::tile_bf16),
            // Decode uses the SDOT row dots (multi-row kernels: x86 only so far).
            rows_q8_0: None,
            rows_q4_0: None,
            rows_q4_1: None,
            rows_q4_z: None,
            groups,
        }
    }
}
