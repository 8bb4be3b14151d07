//! Dot products of one weight row with one activation row, per weight dtype and CPU level.
//! `scalar.rs` is the reference; every SIMD file has the same function names.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
