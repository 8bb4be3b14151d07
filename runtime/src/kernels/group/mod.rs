//! Kernels for matrices in the rows16 layout (docs/FORMAT.md): one call multiplies a group
//! of 16 rows, streamed once, against one token (decode) or four (prefill). The layout puts
//! 4 quant bytes of each of the 16 rows in one 64-byte chunk, so SIMD versions need no
//! shuffles: one lane per row, activations broadcast 4 bytes at a time.
//! `scalar.rs` is the reference (the row-major block dots, block by block).

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use super::ActRow;
use ember_format::DType;

/// Rows per group (the layout's).
pub const GROUP: usize = ember_format::rows16::GROUP;
/// Tokens per prefill call.
pub const GROUP_TOKENS: usize = 4;

/// `w`: one group's tiles (nb tiles for nb activation blocks); returns out[r], r < 16.
pub type GroupGemvFn = fn(w: &[u8], a: &ActRow) -> [f32; GROUP];
/// As [`GroupGemvFn`] for 4 tokens at once: out[t][r].
pub type GroupGemmFn = fn(w: &[u8], a: &[ActRow; GROUP_TOKENS]) -> [[f32; GROUP]; GROUP_TOKENS];

/// A level's pair of rows16 kernels for one dtype.
#[derive(Clone, Copy, Debug)]
pub struct GroupFns {
    pub gemv: GroupGemvFn,
    pub gemm: GroupGemmFn,
}

/// Number of blocks per row, after checking the buffers agree (a kernel's precondition).
#[inline]
pub fn check(dtype: DType, w: &[u8], a: &[ActRow]) -> usize {
    let nb = a[0].d.len();
    let tb = ember_format::rows16::tile_bytes(dtype).unwrap_or(0);
    assert!(
        tb > 0 && w.len() == nb * tb,
        "rows16 group of the wrong size"
    );
    for t in a {
        assert!(t.d.len() == nb && t.s.len() >= nb && t.qs.len() >= 32 * nb);
    }
    nb
}
