//! GEMM tiles for prefill: 4 consecutive weight rows against 4 token rows at once, so each
//! weight block is unpacked once and each activation block loaded once per 16 dot products.
//! `scalar.rs` defines a tile as 16 row dots; SIMD versions must agree with it.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use super::ActRow;

/// Rows and tokens per tile.
pub const TILE: usize = 4;

/// `w` holds TILE rows of `row_bytes` each; returns out[r][t] = dot(row r, token t).
pub type TileQ8Fn = fn(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> [[f32; TILE]; TILE];
/// Decode: `w` holds TILE rows; returns the dot of each with one token.
pub type RowsQ8Fn = fn(w: &[u8], row_bytes: usize, a: &ActRow) -> [f32; TILE];
/// Float weights (f32/f16/bf16 bytes) against f32 tokens.
pub type TileFloatFn = fn(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> [[f32; TILE]; TILE];
