//! Reference tiles: sixteen calls of the reference row dot.

use super::TILE;
use crate::kernels::dot::scalar as dot;
use crate::kernels::{ActRow, DotFloatFn, DotQ8Fn};

pub fn tile_q8_with(
    f: DotQ8Fn,
    w: &[u8],
    row_bytes: usize,
    a: &[ActRow; TILE],
) -> [[f32; TILE]; TILE] {
    core::array::from_fn(|r| {
        let row = &w[r * row_bytes..(r + 1) * row_bytes];
        core::array::from_fn(|t| f(row, a[t].qs, a[t].d, a[t].s))
    })
}

pub fn tile_float_with(
    f: DotFloatFn,
    w: &[u8],
    row_bytes: usize,
    x: &[&[f32]; TILE],
) -> [[f32; TILE]; TILE] {
    core::array::from_fn(|r| {
        let row = &w[r * row_bytes..(r + 1) * row_bytes];
        core::array::from_fn(|t| f(row, x[t]))
    })
}

pub fn tile_q8_0(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> [[f32; TILE]; TILE] {
    tile_q8_with(dot::dot_q8_0, w, row_bytes, a)
}

pub fn tile_q4_0(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> [[f32; TILE]; TILE] {
    tile_q8_with(dot::dot_q4_0, w, row_bytes, a)
}

pub fn tile_q4_1(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> [[f32; TILE]; TILE] {
    tile_q8_with(dot::dot_q4_1, w, row_bytes, a)
}

pub fn tile_f32(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> [[f32; TILE]; TILE] {
    tile_float_with(dot::dot_f32, w, row_bytes, x)
}

pub fn tile_f16(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> [[f32; TILE]; TILE] {
    tile_float_with(dot::dot_f16, w, row_bytes, x)
}

pub fn tile_bf16(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> [[f32; TILE]; TILE] {
    tile_float_with(dot::dot_bf16, w, row_bytes, x)
}
