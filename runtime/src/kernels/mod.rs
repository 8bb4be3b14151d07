//! Compute kernels. `dot/scalar.rs` and `ops.rs` are the reference; SIMD versions of the dot
//! products live beside the scalar ones under the same names, and one [`Kernels`] table of
//! plain function pointers is chosen once per session.

pub mod act;
pub mod dot;
pub mod group;
pub mod matmul;
pub mod ops;
pub mod recurrent;
pub mod tile;

#[cfg(feature = "alloc")]
pub use act::ActQ8Buf;
pub use act::{ActQ8, ActRow};
pub use ops::{
    add_in_place, attention_heads, dequantize_row, geglu, gelu_tanh, layernorm, rmsnorm,
    rmsnorm_heads, rope, rope_angles, softcap, softmax, swiglu,
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

/// One token's step of a Mamba-2 head: (state (P, N), x (P), B, C (N), decay, dt, D, y (P))
/// (recurrent::ssm_step).
pub type SsmStepFn = fn(&mut [f32], &[f32], &[f32], &[f32], f32, f32, f32, &mut [f32]);
/// One token's step of a Gated DeltaNet head: (state (P, N), q, k (N), v (P), decay, β,
/// o (P)) (recurrent::delta_step).
pub type DeltaStepFn = fn(&mut [f32], &[f32], &[f32], &[f32], f32, f32, &mut [f32]);

/// dst ← src's f16 values as f32 (ops::f16_to_f32).
pub type F16ToF32Fn = fn(&[u16], &mut [f32]);
/// gate = act(gate) · up, elementwise (SwiGLU, GeGLU).
pub type GatedFn = fn(&mut [f32], &[f32]);
/// An in-place elementwise function over a vector (softmax, GELU).
pub type VecFn = fn(&mut [f32]);

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
    /// aarch64 NEON with dot products and the matrix multiply extension (SMMLA prefill).
    I8mm,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Scalar,
        Level::Avx2,
        Level::Avx512,
        Level::Neon,
        Level::I8mm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
            Level::I8mm => "i8mm",
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
            #[cfg(all(target_arch = "aarch64", feature = "std"))]
            Level::I8mm => {
                Level::Neon.supported() && std::arch::is_aarch64_feature_detected!("i8mm")
            }
            #[cfg(all(target_arch = "aarch64", not(feature = "std")))]
            Level::I8mm => cfg!(all(target_feature = "dotprod", target_feature = "i8mm")),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best supported level.
    pub fn best() -> Level {
        [Level::Avx512, Level::Avx2, Level::I8mm, Level::Neon]
            .into_iter()
            .find(|l| l.supported())
            .unwrap_or(Level::Scalar)
    }
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

/// The matmul dtypes with the names of their kernels, one row each: the one list the level
/// tables, [`MATMUL_DTYPES`] and the tests are generated from. `$cb!(args...)` receives the
/// rows `quantized DTYPE: dot, gemv, gemm;` (8-bit activations; rows16 group kernels for
/// decode and prefill) and `float DTYPE: dot, group;`. A level's table names every kernel
/// of every row in that level's module, so a missing SIMD kernel is a compile error, never
/// a silent scalar fallback.
macro_rules! with_matmul_dtypes {
    ($cb:ident!($($args:tt)*)) => {
        $cb!($($args)*
            quantized Q8_0: dot_q8_0, gemv_q8_0, gemm_q8_0;
            quantized Q4_0: dot_q4_0, gemv_q4_0, gemm_q4_0;
            quantized Q4_1: dot_q4_1, gemv_q4_1, gemm_q4_1;
            quantized Q4Z: dot_q4_z, gemv_q4_z, gemm_q4_z;
            quantized Q5_0: dot_q5_0, gemv_q5_0, gemm_q5_0;
            quantized Q5_1: dot_q5_1, gemv_q5_1, gemm_q5_1;
            quantized Q4K: dot_q4_k, gemv_q4_k, gemm_q4_k;
            quantized Q5K: dot_q5_k, gemv_q5_k, gemm_q5_k;
            quantized Q6K: dot_q6_k, gemv_q6_k, gemm_q6_k;
            quantized IQ4NL: dot_iq4_nl, gemv_iq4_nl, gemm_iq4_nl;
            quantized IQ4XS: dot_iq4_xs, gemv_iq4_xs, gemm_iq4_xs;
            float F32: dot_f32, group_f32;
            float F16: dot_f16, group_f16;
            float BF16: dot_bf16, group_bf16;
        )
    };
}

macro_rules! dtype_list {
    ($($kind:ident $dtype:ident: $($f:ident),+;)*) => {
        [$(DType::$dtype),*]
    };
}

/// Every dtype a matrix can have, in the order of [`Kernels::by_dtype`].
pub const MATMUL_DTYPES: [DType; 14] = with_matmul_dtypes!(dtype_list!());

/// One level's kernels for one dtype.
#[derive(Clone, Copy, Debug)]
pub enum DTypeKernels {
    /// Block-quantized weights against 8-bit activations: the row dot (row-major matrices),
    /// optional prefill tiles and decode multi-row kernels (row-major, some levels), and the
    /// rows16 group kernels.
    Quantized {
        dot: DotQ8Fn,
        tile: Option<TileQ8Fn>,
        rows: Option<RowsQ8Fn>,
        group: GroupFns,
    },
    /// Float weights against f32 activations.
    Float {
        dot: DotFloatFn,
        tile: Option<TileFloatFn>,
        group: GroupFloatFn,
    },
}

macro_rules! dtype_kernels {
    ($m:ident, quantized $dtype:ident: $dot:ident, $gemv:ident, $gemm:ident) => {
        DTypeKernels::Quantized {
            dot: $m::$dot,
            tile: None,
            rows: None,
            group: GroupFns {
                gemv: $m::$gemv,
                gemm: $m::$gemm,
            },
        }
    };
    ($m:ident, float $dtype:ident: $dot:ident, $group:ident) => {
        DTypeKernels::Float {
            dot: $m::$dot,
            tile: None,
            group: $m::$group,
        }
    };
}

/// A level's table from module `$m`, which defines `quantize_q8`, `attn_scores`,
/// `attn_values` and every kernel named in [`with_matmul_dtypes`] (tiles and multi-row
/// kernels, which only some levels have, are added by the level).
macro_rules! level_table {
    ($m:ident, $level:expr; $($kind:ident $dtype:ident: $($f:ident),+;)*) => {
        Kernels {
            level: $level,
            quantize_q8: $m::quantize_q8,
            attn_scores: $m::attn_scores,
            attn_values: $m::attn_values,
            softmax: $m::softmax,
            swiglu: $m::swiglu,
            geglu: $m::geglu,
            gelu: $m::gelu_tanh,
            ssm_step: $m::ssm_step,
            delta_step: $m::delta_step,
            f16_to_f32: $m::f16_to_f32,
            by_dtype: [$(dtype_kernels!($m, $kind $dtype: $($f),+)),*],
        }
    };
}

/// The kernels of one level as plain function pointers.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub level: Level,
    pub quantize_q8: QuantizeFn,
    /// One query head's scores against the cached keys of its KV head.
    pub attn_scores: AttnScoresFn,
    /// One query head's softmax-weighted sum of the cached values.
    pub attn_values: AttnValuesFn,
    /// The elementwise functions of ops.rs compiled for the level's vector width (their loops
    /// are branch-free, so the compiler vectorizes them; same bits as the scalar level).
    pub softmax: VecFn,
    pub swiglu: GatedFn,
    pub geglu: GatedFn,
    pub gelu: VecFn,
    /// The recurrent layers' state steps (recurrent.rs), compiled likewise.
    pub ssm_step: SsmStepFn,
    pub delta_step: DeltaStepFn,
    /// An f16 KV cache's values as f32 (ops.rs, compiled likewise; exact).
    pub f16_to_f32: F16ToF32Fn,
    /// The kernels of `MATMUL_DTYPES[i]`.
    pub by_dtype: [DTypeKernels; MATMUL_DTYPES.len()],
}

/// How a level multiplies matrices of one dtype and layout, for `ember inspect`/`run -v`
/// and the test that requires SIMD paths. Every kernel of a SIMD level is named in its
/// table (generated from [`with_matmul_dtypes`]), so a SIMD level has no scalar entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// The scalar reference (the scalar level).
    Reference,
    /// The level's own SIMD kernel.
    Simd,
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
        mod s {
            pub use crate::kernels::dot::scalar::{
                attn_scores, attn_values, dot_bf16, dot_f16, dot_f32, dot_iq4_nl, dot_iq4_xs,
                dot_q4_0, dot_q4_1, dot_q4_k, dot_q4_z, dot_q5_0, dot_q5_1, dot_q5_k, dot_q6_k,
                dot_q8_0, quantize_q8,
            };
            pub use crate::kernels::group::scalar::*;
            pub use crate::kernels::ops::{f16_to_f32, geglu, gelu_tanh, softmax, swiglu};
            pub use crate::kernels::recurrent::{delta_step, ssm_step};
        }
        with_matmul_dtypes!(level_table!(s, Level::Scalar;))
    }

    /// The kernels of `dtype`, if matrices can have that dtype.
    pub fn entry(&self, dtype: DType) -> Option<&DTypeKernels> {
        MATMUL_DTYPES
            .iter()
            .position(|&d| d == dtype)
            .map(|i| &self.by_dtype[i])
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn entry_mut(&mut self, dtype: DType) -> &mut DTypeKernels {
        let i = MATMUL_DTYPES
            .iter()
            .position(|&d| d == dtype)
            .expect("a matmul dtype");
        &mut self.by_dtype[i]
    }

    /// Adds a level's prefill tile and decode multi-row kernel for a quantized dtype.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn with_tiles(mut self, dtype: DType, t: Option<TileQ8Fn>, r: Option<RowsQ8Fn>) -> Self {
        if let DTypeKernels::Quantized { tile, rows, .. } = self.entry_mut(dtype) {
            *tile = t;
            *rows = r;
        }
        self
    }

    /// Adds a level's prefill tile for a float dtype.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn with_float_tile(mut self, dtype: DType, t: TileFloatFn) -> Self {
        if let DTypeKernels::Float { tile, .. } = self.entry_mut(dtype) {
            *tile = Some(t);
        }
        self
    }

    /// Replaces a level's rows16 prefill kernel for a quantized dtype.
    #[cfg(target_arch = "aarch64")]
    fn with_gemm(mut self, dtype: DType, gemm: GroupGemmFn) -> Self {
        if let DTypeKernels::Quantized { group, .. } = self.entry_mut(dtype) {
            group.gemm = gemm;
        }
        self
    }

    /// How this level multiplies matrices of `dtype` stored in `layout` (every dtype has a
    /// row dot and a group kernel at every level: the tables are generated from one list).
    pub fn path(&self, _dtype: DType, _layout: ember_format::Layout) -> KernelPath {
        match self.level {
            Level::Scalar => KernelPath::Reference,
            Level::Avx2 | Level::Avx512 | Level::Neon | Level::I8mm => KernelPath::Simd,
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
            #[cfg(target_arch = "aarch64")]
            Level::I8mm => Some(arm::i8mm()),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The best kernels for this CPU, unless `EMBER_KERNELS=scalar|avx2|avx512|neon|i8mm`
    /// (read by the caller with std and passed as `forced`) names another supported level.
    pub fn select(forced: Option<&str>) -> Result<Kernels, &'static str> {
        match forced {
            None | Some("") | Some("auto") => {
                Ok(Kernels::for_level(Level::best()).unwrap_or_else(Kernels::scalar))
            }
            Some(name) => {
                let level = Level::from_name(name)
                    .ok_or("EMBER_KERNELS must be one of auto, scalar, avx2, avx512, neon, i8mm")?;
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
        // The loader accepts only MATMUL_DTYPES (Weights::load checks `supports`).
        let entry = self.entry(dtype).unwrap_or_else(|| {
            panic!("no kernels for {dtype:?}: Weights::load accepts only MATMUL_DTYPES")
        });
        match entry {
            DTypeKernels::Quantized {
                dot, tile, rows, ..
            } => RowDot::Quantized(*dot, *tile, *rows),
            DTypeKernels::Float { dot, tile, .. } => RowDot::Float(*dot, *tile),
        }
    }

    /// The rows16 kernels for a quantized `dtype`.
    pub fn group(&self, dtype: DType) -> Option<GroupFns> {
        match self.entry(dtype)? {
            DTypeKernels::Quantized { group, .. } => Some(*group),
            DTypeKernels::Float { .. } => None,
        }
    }

    /// The rows16 kernel for a float `dtype`.
    pub fn group_float(&self, dtype: DType) -> Option<GroupFloatFn> {
        match self.entry(dtype)? {
            DTypeKernels::Float { group, .. } => Some(*group),
            DTypeKernels::Quantized { .. } => None,
        }
    }

    /// Whether matrices of `dtype` can be multiplied.
    pub fn supports(dtype: DType) -> bool {
        MATMUL_DTYPES.contains(&dtype)
    }
}

/// Wrappers compiling ops.rs's elementwise functions and recurrent.rs's state steps with
/// `$features` (the names `level_table!` takes: softmax, swiglu, geglu, gelu_tanh,
/// ssm_step, delta_step, f16_to_f32).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! vectorized_ops {
    ($features:literal) => {
        vectorized_ops!(@one $features, softmax, (x: &mut [f32]));
        vectorized_ops!(@one $features, gelu_tanh, (x: &mut [f32]));
        vectorized_ops!(@one $features, swiglu, (gate: &mut [f32], up: &[f32]));
        vectorized_ops!(@one $features, geglu, (gate: &mut [f32], up: &[f32]));
        vectorized_ops!(@one $features, f16_to_f32, (src: &[u16], dst: &mut [f32]));
        vectorized_ops!(@one $features, recurrent, ssm_step, (s: &mut [f32], x: &[f32], b: &[f32], c: &[f32], decay: f32, dt: f32, d: f32, y: &mut [f32]));
        vectorized_ops!(@one $features, recurrent, delta_step, (s: &mut [f32], q: &[f32], k: &[f32], v: &[f32], decay: f32, beta: f32, o: &mut [f32]));
    };
    (@one $features:literal, $name:ident, ($($arg:ident: $ty:ty),*)) => {
        vectorized_ops!(@one $features, ops, $name, ($($arg: $ty),*));
    };
    (@one $features:literal, $module:ident, $name:ident, ($($arg:ident: $ty:ty),*)) => {
        #[allow(clippy::too_many_arguments)]
        pub fn $name($($arg: $ty),*) {
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn vectorized($($arg: $ty),*) {
                crate::kernels::$module::$name($($arg),*)
            }
            // SAFETY: placed in a Kernels table only by a level's table function, which
            // `Kernels::for_level` calls after checking the CPU has these features.
            unsafe { vectorized($($arg),*) }
        }
    };
}

/// Safe wrappers around the `#[target_feature]` functions, built only after detection.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::dot::{avx2, avx512};
    use super::group::avx2 as group2;
    use super::group::avx512 as group512;
    use super::tile::avx512 as tile512;
    use super::{DTypeKernels, GroupFns, Kernels, Level};
    use ember_format::DType;

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

    pub fn avx2() -> Kernels {
        mod w {
            use super::avx2;
            wrap_x86_row_kernels!(avx2);
            vectorized_ops!("avx2,fma,f16c");
            use super::group2;
            wrap_group_kernels!(group2);
            wrap_super_block_group_kernels!(group2);
        }
        // Without tiles, prefill of row-major matrices uses the row dots (rows16 the groups).
        with_matmul_dtypes!(level_table!(w, Level::Avx2;))
    }

    pub fn avx512() -> Kernels {
        mod w {
            use super::avx512;
            wrap_x86_row_kernels!(avx512);
            vectorized_ops!("avx512f,avx512bw,avx512vl,avx2,fma,f16c");
            use super::super::{ActRow, TILE};
            use super::tile512;
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
        // Row-major prefill tiles and decode multi-row kernels for the 32-weight types.
        with_matmul_dtypes!(level_table!(w, Level::Avx512;))
            .with_tiles(DType::Q8_0, Some(w::tile_q8_0), Some(w::rows_q8_0))
            .with_tiles(DType::Q4_0, Some(w::tile_q4_0), Some(w::rows_q4_0))
            .with_tiles(DType::Q4_1, Some(w::tile_q4_1), Some(w::rows_q4_1))
            .with_tiles(DType::Q4Z, Some(w::tile_q4_z), Some(w::rows_q4_z))
            .with_float_tile(DType::F32, w::tile_f32)
            .with_float_tile(DType::F16, w::tile_f16)
            .with_float_tile(DType::BF16, w::tile_bf16)
    }
}

/// Safe wrappers around the NEON + dotprod functions, built only after detection.
#[cfg(target_arch = "aarch64")]
mod arm {
    use super::dot::neon;
    use super::group::neon as group_neon;
    use super::tile::neon as tile_neon;
    use super::{DTypeKernels, GroupFns, Kernels, Level};
    use ember_format::DType;

    macro_rules! wrap {
        ($module:ident, $name:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
            pub fn $name($($arg: $ty),*) -> $ret {
                // SAFETY: these wrappers are only placed in a Kernels table by `neon()` or
                // `i8mm()`, which `Kernels::for_level` calls after checking the CPU has
                // dotprod (and i8mm for the `_i8mm` kernels).
                unsafe { $module::$name($($arg),*) }
            }
        };
    }

    mod w {
        use super::super::{ActRow, TILE};
        use super::{neon, tile_neon};
        type Tile = [[f32; TILE]; TILE];
        // NEON is aarch64's baseline: these are the scalar level's loops, vectorized 4-wide
        // by the compiler on both levels.
        vectorized_ops!("neon");
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
        wrap!(group_neon, gemm_q8_0_i8mm, (w: &[u8], a: &Acts) -> Group);
        wrap!(group_neon, gemm_q4_0_i8mm, (w: &[u8], a: &Acts) -> Group);
        wrap!(group_neon, gemm_q4_1_i8mm, (w: &[u8], a: &Acts) -> Group);
        wrap!(group_neon, gemm_q4_z_i8mm, (w: &[u8], a: &Acts) -> Group);
    }

    /// NEON with SDOT; row-major prefill tiles for Q8_0/Q4_0/Q4_1 and floats (decode uses
    /// the SDOT row dots: multi-row kernels are x86 only so far).
    pub fn neon() -> Kernels {
        with_matmul_dtypes!(level_table!(w, Level::Neon;))
            .with_tiles(DType::Q8_0, Some(w::tile_q8_0), None)
            .with_tiles(DType::Q4_0, Some(w::tile_q4_0), None)
            .with_tiles(DType::Q4_1, Some(w::tile_q4_1), None)
            .with_float_tile(DType::F32, w::tile_f32)
            .with_float_tile(DType::F16, w::tile_f16)
            .with_float_tile(DType::BF16, w::tile_bf16)
    }

    /// NEON plus the matrix multiply extension: rows16 prefill of the 32-weight types with
    /// SMMLA (2 rows × 2 tokens × 8 columns per instruction) instead of SDOT.
    pub fn i8mm() -> Kernels {
        let mut k = neon();
        k.level = Level::I8mm;
        k.with_gemm(DType::Q8_0, w::gemm_q8_0_i8mm)
            .with_gemm(DType::Q4_0, w::gemm_q4_0_i8mm)
            .with_gemm(DType::Q4_1, w::gemm_q4_1_i8mm)
            .with_gemm(DType::Q4Z, w::gemm_q4_z_i8mm)
    }
}
