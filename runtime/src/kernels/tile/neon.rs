//! NEON + SDOT tiles. Per block, the 4 tokens' activation bytes stay in registers while each
//! of the 4 weight rows is unpacked once; pairwise adds then gather a row's 4 token dots into
//! one vector, so accumulator lanes are tokens: acc[r] = [out[r][0], .., out[r][3]].
#![allow(clippy::missing_safety_doc)]

use core::arch::aarch64::*;

use super::TILE;
use crate::kernels::dot::neon::{f16x4, f16x4_at, i8x32_at, nibbles, sdot, sums4};
use crate::kernels::dot::scalar;
use crate::kernels::ActRow;

type Tile = [[f32; TILE]; TILE];

// One f32 lane per token.
const _: () = assert!(TILE == 4);

/// Block kinds, a const parameter so each tile gets its own straight-line loop.
const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q4_1: u8 = 2;

fn check_q8(w: &[u8], row_bytes: usize, block_bytes: usize, a: &[ActRow; TILE]) -> usize {
    let nb = a[0].d.len();
    assert!(row_bytes >= nb * block_bytes && w.len() >= (TILE - 1) * row_bytes + nb * block_bytes);
    for t in a {
        assert!(t.d.len() == nb && t.s.len() >= nb && t.qs.len() >= nb * 32);
    }
    nb
}

/// [v(0), v(1), v(2), v(3)]: one value per token.
#[inline]
#[target_feature(enable = "neon")]
fn per_token(v: impl Fn(usize) -> f32) -> float32x4_t {
    let lanes: [f32; TILE] = core::array::from_fn(v);
    // SAFETY: `lanes` holds 4 floats.
    unsafe { vld1q_f32(lanes.as_ptr()) }
}

#[inline]
#[target_feature(enable = "neon")]
fn store(acc: [float32x4_t; TILE]) -> Tile {
    core::array::from_fn(|r| {
        let mut out = [0f32; TILE];
        // SAFETY: `out` has room for 4 floats.
        unsafe { vst1q_f32(out.as_mut_ptr(), acc[r]) };
        out
    })
}

/// Shared by Q8_0, Q4_0 and Q4_1.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn tile_blocks<const KIND: u8>(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    let bb = match KIND {
        Q8_0 => 34,
        Q4_0 => 18,
        _ => 20,
    };
    let nb = check_q8(w, row_bytes, bb, a);
    let mut acc = [vdupq_n_f32(0.0); TILE];
    let eight = vdupq_n_s8(8);
    for b in 0..nb {
        // SAFETY: check_q8 verified 32·nb activation bytes per token.
        let x: [(int8x16_t, int8x16_t); TILE] =
            core::array::from_fn(|t| unsafe { i8x32_at(a[t].qs.as_ptr().add(32 * b)) });
        let dx = per_token(|t| a[t].d[b]);
        let sx = per_token(|t| a[t].s[b]);
        // Row r's contribution of block b, added to its accumulator.
        let step = |r: usize, acc: float32x4_t| {
            // SAFETY: check_q8 verified TILE rows of nb whole blocks; p is block b of row r.
            unsafe {
                let p = w.as_ptr().add(r * row_bytes + bb * b);
                let (w0, w1) = match KIND {
                    Q8_0 => i8x32_at(p.add(2) as *const i8),
                    // sum (q - 8) x, the offset applied to the nibbles.
                    Q4_0 => {
                        let (lo, hi) = nibbles(p.add(2));
                        (
                            vsubq_s8(vreinterpretq_s8_u8(lo), eight),
                            vsubq_s8(vreinterpretq_s8_u8(hi), eight),
                        )
                    }
                    _ => {
                        let (lo, hi) = nibbles(p.add(4));
                        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
                    }
                };
                let dots: [int32x4_t; TILE] =
                    core::array::from_fn(|t| sdot(sdot(vdupq_n_s32(0), w0, x[t].0), w1, x[t].1));
                let dot = vcvtq_f32_s32(sums4(dots[0], dots[1], dots[2], dots[3]));
                let acc = vfmaq_f32(acc, vmulq_f32(f16x4_at(p), dx), dot);
                if KIND == Q4_1 {
                    // + m · sx
                    vfmaq_f32(acc, f16x4_at(p.add(2)), sx)
                } else {
                    acc
                }
            }
        };
        // Written out so the four accumulators stay in registers.
        acc = [
            step(0, acc[0]),
            step(1, acc[1]),
            step(2, acc[2]),
            step(3, acc[3]),
        ];
    }
    store(acc)
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile_q8_0(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<Q8_0>(w, row_bytes, a) }
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile_q4_0(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<Q4_0>(w, row_bytes, a) }
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile_q4_1(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<Q4_1>(w, row_bytes, a) }
}

/// Float tiles: 4 columns per step into 16 accumulators; `load(p)` gives the 4 weights at
/// p, and `tail(row bytes, x)` the reference dot of the last n % 4 columns.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tile_float(
    w: &[u8],
    row_bytes: usize,
    x: &[&[f32]; TILE],
    elem: usize,
    load: impl Fn(*const u8) -> float32x4_t,
    tail: fn(&[u8], &[f32]) -> f32,
) -> Tile {
    let n = x[0].len();
    assert!(row_bytes >= n * elem && w.len() >= (TILE - 1) * row_bytes + n * elem);
    assert!(x.iter().all(|xt| xt.len() == n));
    let full = n / 4 * 4;
    let mut acc = [[vdupq_n_f32(0.0); TILE]; TILE];
    for i in (0..full).step_by(4) {
        // SAFETY: i + 4 <= n = x[t].len().
        let xv: [float32x4_t; TILE] =
            core::array::from_fn(|t| unsafe { vld1q_f32(x[t].as_ptr().add(i)) });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r holds n elements of `elem` bytes and i + 4 <= n.
            let wv = load(unsafe { w.as_ptr().add(r * row_bytes + i * elem) });
            for (a, xt) in acc_r.iter_mut().zip(&xv) {
                *a = vfmaq_f32(*a, wv, *xt);
            }
        }
    }
    core::array::from_fn(|r| {
        let row = &w[r * row_bytes + full * elem..r * row_bytes + n * elem];
        core::array::from_fn(|t| vaddvq_f32(acc[r][t]) + tail(row, &x[t][full..]))
    })
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile_f32(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> Tile {
    // SAFETY: `tile_float` passes pointers with 16 readable bytes; u8 loads need no alignment.
    unsafe {
        tile_float(
            w,
            row_bytes,
            x,
            4,
            |p| vreinterpretq_f32_u8(vld1q_u8(p)),
            scalar::dot_f32,
        )
    }
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile_f16(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> Tile {
    // SAFETY: `tile_float` passes pointers with 8 readable bytes.
    unsafe {
        tile_float(
            w,
            row_bytes,
            x,
            2,
            |p| f16x4(vreinterpret_u16_u8(vld1_u8(p))),
            scalar::dot_f16,
        )
    }
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn tile_bf16(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> Tile {
    // SAFETY: `tile_float` passes pointers with 8 readable bytes.
    unsafe {
        tile_float(
            w,
            row_bytes,
            x,
            2,
            |p| vreinterpretq_f32_u32(vshll_n_u16::<16>(vreinterpret_u16_u8(vld1_u8(p)))),
            scalar::dot_bf16,
        )
    }
}
