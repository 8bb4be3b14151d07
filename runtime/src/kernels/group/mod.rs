//! Kernels for matrices in the rows16 layout (docs/FORMAT.md): one call multiplies a group
//! of 16 rows, streamed once, against one token (decode) or several (prefill: 4 for block
//! types, up to 16 for floats). Lane r of every vector is row r: block types load 4 quant
//! bytes of each of the 16 rows per 64-byte chunk and meet a broadcast of 4 activation
//! bytes; float groups load one column of 16 rows and meet a broadcast activation. No
//! shuffles, no horizontal sums. `scalar.rs` is the reference.

use super::ActRow;
use ember_format::DType;

/// The block types of the quantized group kernels, as const parameters: each kernel is
/// instantiated per type, so its inner loops carry no branch on it.
pub mod kind {
    use ember_format::DType;

    pub const Q8_0: u8 = 0;
    pub const Q4_0: u8 = 1;
    pub const Q4_1: u8 = 2;
    pub const Q4Z: u8 = 3;
    pub const Q5_0: u8 = 4;
    pub const Q5_1: u8 = 5;
    pub const Q4K: u8 = 6;
    pub const Q5K: u8 = 7;
    pub const Q6K: u8 = 8;
    pub const IQ4NL: u8 = 9;
    pub const IQ4XS: u8 = 10;

    pub const fn dtype(k: u8) -> DType {
        match k {
            Q8_0 => DType::Q8_0,
            Q4_0 => DType::Q4_0,
            Q4_1 => DType::Q4_1,
            Q5_0 => DType::Q5_0,
            Q5_1 => DType::Q5_1,
            Q4K => DType::Q4K,
            Q5K => DType::Q5K,
            Q6K => DType::Q6K,
            IQ4NL => DType::IQ4NL,
            IQ4XS => DType::IQ4XS,
            _ => DType::Q4Z,
        }
    }

    /// Bytes of the u16 fields at the start of a tile (16 rows × 2 bytes per field).
    pub const fn head(k: u8) -> usize {
        match k {
            Q4_1 => 64,
            Q5_0 => 96,
            Q5_1 => 128,
            _ => 32,
        }
    }

    /// Whether the block type has fifth bits (the two `qh` fields just before the quants).
    pub const fn five(k: u8) -> bool {
        k == Q5_0 || k == Q5_1
    }

    /// Where the tile's `qh_lo` fields start (`qh_hi` follows 32 bytes later).
    pub const fn qh(k: u8) -> usize {
        head(k) - 64
    }

    pub const fn tile_bytes(k: u8) -> usize {
        match k {
            Q8_0 => 16 * 34,
            Q4_1 => 16 * 20,
            Q5_0 => 16 * 22,
            Q5_1 => 16 * 24,
            Q4K => 16 * 144,
            Q5K => 16 * 176,
            Q6K => 16 * 210,
            IQ4XS => 16 * 136,
            _ => 16 * 18,
        }
    }

    /// The fifth bits of quant bytes j..j+4 (bits `shift..shift+4` of each lane's 32-bit
    /// `qh`) moved to bit 4 of the lane's bytes 0..4: multiplying the 4 bits by
    /// 1 + 2^7 + 2^14 + 2^21 puts bit i at 8i (no two products overlap, so no carries).
    pub const SPREAD: u32 = 0x0020_4081;
}

/// A level's public kernels, the same names at every level, over its generic
/// `group::<T, K>` (block types) and `float_group::<E>` (0 f32, 1 f16, 2 bf16), each
/// compiled with the level's target features.
#[allow(unused_macros)] // no SIMD level on some targets (Cortex-M)
macro_rules! entry_points {
    ($features:literal) => {
        entry_points!(@quant $features, gemv_q8_0, gemm_q8_0, super::kind::Q8_0);
        entry_points!(@quant $features, gemv_q4_0, gemm_q4_0, super::kind::Q4_0);
        entry_points!(@quant $features, gemv_q4_1, gemm_q4_1, super::kind::Q4_1);
        entry_points!(@quant $features, gemv_q4_z, gemm_q4_z, super::kind::Q4Z);
        entry_points!(@quant $features, gemv_q5_0, gemm_q5_0, super::kind::Q5_0);
        entry_points!(@quant $features, gemv_q5_1, gemm_q5_1, super::kind::Q5_1);
        entry_points!(@float $features, group_f32, 0);
        entry_points!(@float $features, group_f16, 1);
        entry_points!(@float $features, group_bf16, 2);
    };
    // The K-quant and IQ4 kernels of a level that has them.
    (@super_blocks $features:literal) => {
        entry_points!(@quant $features, gemv_q4_k, gemm_q4_k, super::kind::Q4K);
        entry_points!(@quant $features, gemv_q5_k, gemm_q5_k, super::kind::Q5K);
        entry_points!(@quant $features, gemv_q6_k, gemm_q6_k, super::kind::Q6K);
        entry_points!(@quant $features, gemv_iq4_nl, gemm_iq4_nl, super::kind::IQ4NL);
        entry_points!(@quant $features, gemv_iq4_xs, gemm_iq4_xs, super::kind::IQ4XS);
    };
    (@quant $features:literal, $gemv:ident, $gemm:ident, $k:expr) => {
        #[target_feature(enable = $features)]
        pub unsafe fn $gemv(w: &[u8], a: &ActRow) -> [f32; GROUP] {
            // SAFETY: same features; bounds are checked inside.
            let out = unsafe { group::<1, { $k }>(w, &[*a]) };
            out[0]
        }

        #[target_feature(enable = $features)]
        pub unsafe fn $gemm(
            w: &[u8],
            a: &[ActRow; GROUP_TOKENS],
        ) -> [[f32; GROUP]; GROUP_TOKENS] {
            // SAFETY: same features; bounds are checked inside.
            unsafe { group::<GROUP_TOKENS, { $k }>(w, a) }
        }
    };
    (@float $features:literal, $name:ident, $e:expr) => {
        #[target_feature(enable = $features)]
        pub unsafe fn $name(w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]) {
            // SAFETY: same features; bounds are checked inside (check_float).
            unsafe { float_group::<{ $e }>(w, x, out) }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use entry_points;

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

/// Rows per group (the layout's).
pub const GROUP: usize = ember_format::rows16::GROUP;
/// Tokens per prefill call.
pub const GROUP_TOKENS: usize = 4;

/// `w`: one group's tiles (nb tiles for nb activation blocks); returns out[r], r < 16.
pub type GroupGemvFn = fn(w: &[u8], a: &ActRow) -> [f32; GROUP];
/// As [`GroupGemvFn`] for 4 tokens at once: out[t][r].
pub type GroupGemmFn = fn(w: &[u8], a: &[ActRow; GROUP_TOKENS]) -> [[f32; GROUP]; GROUP_TOKENS];

/// Tokens per call of a float group kernel, at most.
pub const FLOAT_TOKENS: usize = 16;

/// Float rows16 (F32, F16, BF16: each group column-major): out[t][r] = row r · x[t] for
/// 1 to [`FLOAT_TOKENS`] tokens of equal length (the matrix's cols); `out.len() == x.len()`.
pub type GroupFloatFn = fn(w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]);

/// Columns of a float group, after checking the buffers agree (a kernel's precondition).
#[inline]
pub fn check_float(dtype: DType, w: &[u8], x: &[&[f32]], out: &[[f32; GROUP]]) -> usize {
    let e = ember_format::rows16::float_bytes(dtype).unwrap_or(0);
    assert!(!x.is_empty() && x.len() <= FLOAT_TOKENS && out.len() == x.len());
    let cols = x[0].len();
    assert!(
        e > 0 && w.len() == GROUP * cols * e,
        "rows16 group of the wrong size"
    );
    assert!(x.iter().all(|t| t.len() == cols));
    cols
}

/// A level's pair of rows16 kernels for one dtype.
#[derive(Clone, Copy, Debug)]
pub struct GroupFns {
    pub gemv: GroupGemvFn,
    pub gemm: GroupGemmFn,
}

/// Number of weight blocks (tiles) per row, after checking the buffers agree (a kernel's
/// precondition): a tile of 32-weight blocks meets one activation block, a K-quant tile 8.
#[inline]
pub fn check(dtype: DType, w: &[u8], a: &[ActRow]) -> usize {
    let acts = a[0].d.len();
    let per = dtype.block_len() / 32;
    let nb = acts / per.max(1);
    let tb = ember_format::rows16::tile_bytes(dtype).unwrap_or(0);
    assert!(
        tb > 0 && nb * per == acts && w.len() == nb * tb,
        "rows16 group of the wrong size"
    );
    for t in a {
        assert!(t.d.len() == acts && t.s.len() >= acts && t.qs.len() >= 32 * acts);
    }
    nb
}

/// Bytes ahead of the current tile that x86 kernels prefetch.
#[cfg(target_arch = "x86_64")]
const PREFETCH: usize = 4096;

/// Asks for the `len` bytes PREFETCH past `p`: the hardware prefetcher alone leaves one
/// core short of the memory bandwidth on 4-bit weights (1-thread SmolLM2 Q4_0 decode went
/// from 99 to 145 tokens/s). Prefetches never fault, so passing the group's end is harmless.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_ahead(p: *const u8, len: usize) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let mut off = 0;
    while off < len {
        // SAFETY: SSE is part of x86-64; a prefetch reads nothing and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH + off) as *const i8) };
        off += 64;
    }
}

/// Part `part` of `parts` of [`prefetch_ahead`] over a tile of `len` bytes: kernels with
/// large tiles (K-quants: 2-3 KiB) spread their prefetches over the tile's steps, since one
/// burst of 36-53 lines fills the core's miss buffers and stalls the loads that follow
/// (1-thread GEMV from memory on Zen 4, with 4 KiB of distance instead of 2: Q4_K 13 to
/// 18 GB/s, Q6_K 6 to 15).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_part(p: *const u8, len: usize, part: usize, parts: usize) {
    let (lo, hi) = ((len * part / parts) & !63, len * (part + 1) / parts);
    prefetch_ahead(p.wrapping_add(lo), hi.saturating_sub(lo));
}
