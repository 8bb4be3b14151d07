//! NEON + SDOT rows16 kernels: a group is four quarters of 4 rows, one i32 lane per row (16
//! bytes of a 64-byte chunk are 4 rows × 4 quant bytes). SDOT's by-element form multiplies
//! them with one 4-byte lane of the 16 activation bytes already in a register, so nothing is
//! broadcast or shuffled. Stable Rust lacks the SDOT intrinsics: it is one-instruction `asm!`.
//! Float groups (column-major) are one FMA by element per token and quarter column, at the end.
// Tokens and row ranges index several arrays at once.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use core::arch::aarch64::*;
use core::arch::asm;

use super::{check, check_float, GROUP, GROUP_TOKENS};
use crate::kernels::dot::neon::{f16x4, i8x32_at};
use crate::kernels::ActRow;
use ember_format::DType;

type Out<const T: usize> = [[f32; GROUP]; T];

use super::kind::{dtype, head, tile_bytes, Q4Z, Q4_0, Q4_1, Q8_0};

/// acc + SDOT of w's four 4-byte groups with bytes 4L..4L+4 of x (lane i gets
/// sum of w[4i..4i+4] * x[4L..4L+4]).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot_lane<const L: i32>(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: SDOT only reads and writes the named vector registers; the dotprod feature is
    // enabled on this function, so its callers run on a CPU that has it. L < 4 (asserted by
    // the assembler: the index field has two bits).
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{l}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            l = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// 4 f16 values at p as f32.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn f16x4_load(p: *const u8) -> float32x4_t {
    // SAFETY: the caller guarantees 8 readable bytes; byte loads need no alignment.
    f16x4(vreinterpret_u16_u8(unsafe { vld1_u8(p) }))
}

/// One quarter's scales: (dw, mw) with mw the factor of sx (see `group`).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn scales<const K: u8>(p: *const u8) -> (float32x4_t, float32x4_t) {
    // SAFETY: the caller guarantees the quarter's scale fields at p (and m at p + 32 for
    // Q4_1).
    unsafe {
        match K {
            Q4Z => {
                // sd = d9 << 7 | z: the scale is the f16 (sd >> 1) & 0x7FC0 times 2^-8.
                let sd = vreinterpret_u16_u8(vld1_u8(p));
                let bits = vand_u16(vshr_n_u16::<1>(sd), vdup_n_u16(0x7FC0));
                let dw = vmulq_n_f32(f16x4(bits), ember_format::blocks::Q4Z_SHIFT);
                let z = vcvtq_f32_u32(vmovl_u16(vand_u16(sd, vdup_n_u16(0x7F))));
                (dw, vmulq_f32(dw, vmulq_n_f32(z, -0.125)))
            }
            Q4_1 => (f16x4_load(p), f16x4_load(p.add(32))),
            Q4_0 => {
                let dw = f16x4_load(p);
                (dw, vmulq_n_f32(dw, -8.0))
            }
            // Q8_0 is multiplied as signed q: no offset to take back.
            _ => (f16x4_load(p), vdupq_n_f32(0.0)),
        }
    }
}

/// The shared body: one group against T tokens. Per tile and row, with dot the integer sum
/// of the quants times the activation bytes:
/// result += dw·(dx·dot) + mw·sx, where sx = dx·Σx and mw is -8·dw (Q4_0), m (Q4_1),
/// -dw·z/8 (Q4_Z) or 0 (Q8_0: its q + 128 bytes go back to signed q for SDOT).
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn group<const T: usize, const K: u8>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(dtype(K), w, a);
    let tb = tile_bytes(K);
    let nibble = vdupq_n_u8(0x0F);
    let flip = vdupq_n_u8(0x80);
    // acc[t][g]: rows 4g..4g+4 of token t.
    let mut acc = [[vdupq_n_f32(0.0); 4]; T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        // SAFETY: the quants follow the scales: 4 (Q4) or 8 (Q8_0) chunks of 64 bytes.
        let q = unsafe { p.add(head(K)) };
        // SAFETY: check() verified 32·nb activation bytes per token.
        let x: [(int8x16_t, int8x16_t); T] =
            core::array::from_fn(|t| unsafe { i8x32_at(a[t].qs.as_ptr().add(32 * b)) });
        for g in 0..4 {
            // SAFETY: the tile starts with 16 u16 scale fields (then 16 m for Q4_1).
            let (dw, mw) = unsafe { scales::<K>(p.add(8 * g)) };
            // wq[k]: rows 4g..4g+4 against activation bytes 4k..4k+4 (signed for SDOT:
            // nibbles are 0..15, Q8_0's bytes are flipped back to q).
            let mut wq = [vdupq_n_s8(0); 8];
            for c in 0..4 {
                // SAFETY: chunks are 64 bytes, the quarter's 16 at offset 16g.
                unsafe {
                    if K == Q8_0 {
                        let v0 = vld1q_u8(q.add(128 * c + 16 * g));
                        let v1 = vld1q_u8(q.add(128 * c + 64 + 16 * g));
                        wq[2 * c] = vreinterpretq_s8_u8(veorq_u8(v0, flip));
                        wq[2 * c + 1] = vreinterpretq_s8_u8(veorq_u8(v1, flip));
                    } else {
                        // Low nibbles are columns 4c.., high ones 16 + 4c...
                        let v = vld1q_u8(q.add(64 * c + 16 * g));
                        wq[c] = vreinterpretq_s8_u8(vandq_u8(v, nibble));
                        wq[c + 4] = vreinterpretq_s8_u8(vshrq_n_u8::<4>(v));
                    }
                }
            }
            for t in 0..T {
                let (x0, x1) = x[t];
                let mut d = vdupq_n_s32(0);
                d = sdot_lane::<0>(d, wq[0], x0);
                d = sdot_lane::<1>(d, wq[1], x0);
                d = sdot_lane::<2>(d, wq[2], x0);
                d = sdot_lane::<3>(d, wq[3], x0);
                d = sdot_lane::<0>(d, wq[4], x1);
                d = sdot_lane::<1>(d, wq[5], x1);
                d = sdot_lane::<2>(d, wq[6], x1);
                d = sdot_lane::<3>(d, wq[7], x1);
                let u = vmulq_n_f32(vcvtq_f32_s32(d), a[t].d[b]);
                let mut v = vfmaq_f32(acc[t][g], u, dw);
                if K != Q8_0 {
                    v = vfmaq_n_f32(v, mw, a[t].s[b]);
                }
                acc[t][g] = v;
            }
        }
    }
    let mut out = [[0f32; GROUP]; T];
    for t in 0..T {
        for g in 0..4 {
            // SAFETY: out[t] holds 16 f32, 4 per quarter.
            unsafe { vst1q_f32(out[t].as_mut_ptr().add(4 * g), acc[t][g]) };
        }
    }
    out
}

/// 16 rows of one column as four f32 vectors, for element type E (0 f32, 1 f16, 2 bf16).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn float_column<const E: u8>(p: *const u8) -> [float32x4_t; 4] {
    // SAFETY: the caller guarantees 16 elements at p; these loads need no alignment.
    unsafe {
        match E {
            0 => {
                let f = p as *const f32;
                [
                    vld1q_f32(f),
                    vld1q_f32(f.add(4)),
                    vld1q_f32(f.add(8)),
                    vld1q_f32(f.add(12)),
                ]
            }
            1 => {
                let h0 = vld1q_u16(p as *const u16);
                let h1 = vld1q_u16((p as *const u16).add(8));
                [
                    f16x4(vget_low_u16(h0)),
                    f16x4(vget_high_u16(h0)),
                    f16x4(vget_low_u16(h1)),
                    f16x4(vget_high_u16(h1)),
                ]
            }
            _ => {
                // A bf16 is the high half of its f32.
                let h0 = vld1q_u16(p as *const u16);
                let h1 = vld1q_u16((p as *const u16).add(8));
                [
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h0))),
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_high_u16(h0))),
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h1))),
                    vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_high_u16(h1))),
                ]
            }
        }
    }
}

/// T tokens (at most 4) against one column-major float group: per column, the 16 rows in
/// four vectors and four FMAs per token by its value. U sets of accumulators (column k goes
/// to set k mod U) keep enough FMAs in flight when T is small; the 4·T·U ≤ 16 accumulators
/// and the column stay within the 32 vector registers.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn float_pass<const T: usize, const U: usize, const E: u8>(
    p: *const u8,
    cols: usize,
    xs: [*const f32; T],
    out: &mut [[f32; GROUP]],
) {
    let step = GROUP * if E == 0 { 4 } else { 2 };
    let mut acc = [[[vdupq_n_f32(0.0); 4]; T]; U];
    let mut k = 0;
    while k + U <= cols {
        for u in 0..U {
            // SAFETY: the caller guarantees cols columns of 16 elements at p and cols values
            // at each xs[t]; k + u < cols.
            unsafe {
                let w = float_column::<E>(p.add((k + u) * step));
                for t in 0..T {
                    let b = *xs[t].add(k + u);
                    for g in 0..4 {
                        acc[u][t][g] = vfmaq_n_f32(acc[u][t][g], w[g], b);
                    }
                }
            }
        }
        k += U;
    }
    while k < cols {
        // SAFETY: as above; k < cols.
        unsafe {
            let w = float_column::<E>(p.add(k * step));
            for t in 0..T {
                let b = *xs[t].add(k);
                for g in 0..4 {
                    acc[0][t][g] = vfmaq_n_f32(acc[0][t][g], w[g], b);
                }
            }
        }
        k += 1;
    }
    for t in 0..T {
        for g in 0..4 {
            let mut v = acc[0][t][g];
            for u in 1..U {
                v = vaddq_f32(v, acc[u][t][g]);
            }
            // SAFETY: out[t] holds 16 f32 (the caller passes at least T of them).
            unsafe { vst1q_f32(out[t].as_mut_ptr().add(4 * g), v) };
        }
    }
}

/// Any number of tokens, at most 4 per pass over the group (8 tokens × 4 vectors of accumulators
/// would take all 32 registers); later passes find the group in cache.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn float_group<const E: u8>(w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]) {
    let dtype = [DType::F32, DType::F16, DType::BF16][E as usize];
    let cols = check_float(dtype, w, x, out);
    let p = w.as_ptr();
    for (xc, oc) in x.chunks(4).zip(out.chunks_mut(4)) {
        let xs = |i: usize| xc[i].as_ptr();
        // SAFETY: check_float() verified cols columns of 16 elements at p, cols values per
        // token and one out row per token; each pass gets as many tokens as out rows.
        unsafe {
            match xc.len() {
                1 => float_pass::<1, 4, E>(p, cols, [xs(0)], oc),
                2 => float_pass::<2, 2, E>(p, cols, [xs(0), xs(1)], oc),
                3 => float_pass::<3, 1, E>(p, cols, [xs(0), xs(1), xs(2)], oc),
                _ => float_pass::<4, 1, E>(p, cols, [xs(0), xs(1), xs(2), xs(3)], oc),
            }
        }
    }
}

super::entry_points!("neon,dotprod");
