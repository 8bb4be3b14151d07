//! NEON + SDOT rows16 kernels: a group is four quarters of 4 rows, one i32 lane per row (16
//! bytes of a 64-byte chunk are 4 rows × 4 quant bytes). SDOT's by-element form multiplies
//! them with one 4-byte lane of the 16 activation bytes already in a register, so nothing is
//! broadcast or shuffled. Stable Rust lacks the SDOT intrinsics: it is one-instruction `asm!`.
//! Float groups (column-major) are one FMA by element per token and quarter column, at the end.
//! With i8mm, prefill (4 tokens) uses SMMLA instead: `group_i8mm` and the `gemm_*_i8mm` kernels.
// Tokens and row ranges index several arrays at once.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use core::arch::aarch64::*;
use core::arch::asm;

use super::{check, check_float, GROUP, GROUP_TOKENS};
use crate::kernels::dot::neon::{f16x4, i8x32_at};
use crate::kernels::ActRow;
use ember_format::DType;

type Out<const T: usize> = [[f32; GROUP]; T];

use super::kind::{
    dtype, five, head, qh, tile_bytes, IQ4NL, IQ4XS, Q4K, Q4Z, Q4_0, Q4_1, Q5K, Q5_0, Q5_1, Q6K,
    Q8_0, SPREAD,
};

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
            Q4_1 | Q5_1 => (f16x4_load(p), f16x4_load(p.add(32))),
            Q4_0 => {
                let dw = f16x4_load(p);
                (dw, vmulq_n_f32(dw, -8.0))
            }
            Q5_0 => {
                let dw = f16x4_load(p);
                (dw, vmulq_n_f32(dw, -16.0))
            }
            // Q8_0 is multiplied as signed q: no offset to take back.
            _ => (f16x4_load(p), vdupq_n_f32(0.0)),
        }
    }
}

/// The shared body: one group against T tokens. Per tile and row, with dot the integer sum
/// of the quants times the activation bytes:
/// result += dw·(dx·dot) + mw·sx, where sx = dx·Σx and mw is -8·dw (Q4_0), m (Q4_1, Q5_1),
/// -16·dw (Q5_0), -dw·z/8 (Q4_Z) or 0 (Q8_0: its q + 128 bytes go back to signed q for
/// SDOT). Q5 types OR their fifth bits into the nibbles (bit 4 of each byte).
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn group<const T: usize, const K: u8>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    // Super-block types have kernels of their own (K is a constant: no branch remains).
    if K == Q4K || K == Q5K {
        // SAFETY: same features; bounds are checked inside.
        return unsafe { group_k4::<T, K>(w, a) };
    }
    if K == Q6K {
        // SAFETY: same features; bounds are checked inside.
        return unsafe { group_q6k::<T>(w, a) };
    }
    if K == IQ4XS {
        // SAFETY: same features; bounds are checked inside.
        return unsafe { group_iq4xs::<T>(w, a) };
    }
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
            if K == IQ4NL {
                // SAFETY: the grid is 16 bytes.
                let grid = unsafe { vld1q_s8(ember_format::blocks::IQ4_GRID.as_ptr()) };
                for v in wq.iter_mut() {
                    *v = vqtbl1q_s8(grid, vreinterpretq_u8_s8(*v));
                }
            }
            if five(K) {
                // SAFETY: Q5 tiles hold qh_lo and qh_hi (16 u16 each) at qh(K); this
                // quarter's 4 rows are at 8g.
                let h = unsafe {
                    // Byte loads need no alignment.
                    let lo = vmovl_u16(vreinterpret_u16_u8(vld1_u8(p.add(qh(K) + 8 * g))));
                    let hi = vmovl_u16(vreinterpret_u16_u8(vld1_u8(p.add(qh(K) + 32 + 8 * g))));
                    vorrq_u32(lo, vshlq_n_u32::<16>(hi))
                };
                let spread = |shift: i32| {
                    let bits = vandq_u32(vshlq_u32(h, vdupq_n_s32(-shift)), vdupq_n_u32(0xF));
                    let bytes = vandq_u32(vmulq_n_u32(bits, SPREAD), vdupq_n_u32(0x0101_0101));
                    vreinterpretq_s8_u32(vshlq_n_u32::<4>(bytes))
                };
                for c in 0..4 {
                    wq[c] = vorrq_s8(wq[c], spread(4 * c as i32));
                    wq[c + 4] = vorrq_s8(wq[c + 4], spread(16 + 4 * c as i32));
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
                if K != Q8_0 && K != IQ4NL {
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

/// Σ_k w[k]·x[4k..4k+4] for the 4 rows of a quarter (one i32 lane each) by SDOT.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot8(w: &[int8x16_t; 8], x: (int8x16_t, int8x16_t)) -> int32x4_t {
    let (x0, x1) = x;
    let mut d = vdupq_n_s32(0);
    d = sdot_lane::<0>(d, w[0], x0);
    d = sdot_lane::<1>(d, w[1], x0);
    d = sdot_lane::<2>(d, w[2], x0);
    d = sdot_lane::<3>(d, w[3], x0);
    d = sdot_lane::<0>(d, w[4], x1);
    d = sdot_lane::<1>(d, w[5], x1);
    d = sdot_lane::<2>(d, w[6], x1);
    sdot_lane::<3>(d, w[7], x1)
}

/// Four u16 fields (rows 4g..4g+4) of field `f` at p, as u32 lanes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn field4(p: *const u8, f: usize, g: usize) -> uint32x4_t {
    // SAFETY: the caller guarantees field f (16 u16) at p; byte loads need no alignment.
    vmovl_u16(vreinterpret_u16_u8(unsafe {
        vld1_u8(p.add(32 * f + 8 * g))
    }))
}

/// Q4_K / Q5_K super-blocks (see the AVX-512 kernel for the tile): per quarter of 4 rows,
/// sub-block j meets activation block 8b + j: result += d·sc_j·(dx·dot) − dmin·m_j·sx.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn group_k4<const T: usize, const K: u8>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(dtype(K), w, a);
    let tb = tile_bytes(K);
    let nibble = vdupq_n_u8(0x0F);
    let mut acc = [[vdupq_n_f32(0.0); 4]; T];
    let shr = |v: uint32x4_t, n: i32| vshlq_u32(v, vdupq_n_s32(-n));
    let and = |v: uint32x4_t, m: u32| vandq_u32(v, vdupq_n_u32(m));
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        let q = p.wrapping_add(256);
        let qs = if K == Q5K { q.wrapping_add(512) } else { q };
        for g in 0..4 {
            // SAFETY: the tile starts with 8 fields: d, dmin, 6 of scale bytes.
            let (d, dmin, f) = unsafe {
                let f: [uint32x4_t; 6] = core::array::from_fn(|i| field4(p, 2 + i, g));
                (f16x4_load(p.add(8 * g)), f16x4_load(p.add(32 + 8 * g)), f)
            };
            let byte = |i: usize| and(shr(f[i / 2], 8 * (i as i32 % 2)), 0xFF);
            let (mut dsc, mut dm) = ([vdupq_n_f32(0.0); 8], [vdupq_n_f32(0.0); 8]);
            for j in 0..8 {
                let (sc, m) = if j < 4 {
                    (and(byte(j), 63), and(byte(j + 4), 63))
                } else {
                    (
                        vorrq_u32(
                            and(byte(j + 4), 0x0F),
                            vshlq_n_u32::<4>(shr(byte(j - 4), 6)),
                        ),
                        vorrq_u32(shr(byte(j + 4), 4), vshlq_n_u32::<4>(shr(byte(j), 6))),
                    )
                };
                dsc[j] = vmulq_f32(d, vcvtq_f32_u32(sc));
                dm[j] = vmulq_f32(dmin, vcvtq_f32_u32(m));
            }
            for pair in 0..4 {
                let (mut lo, mut hi) = ([vdupq_n_s8(0); 8], [vdupq_n_s8(0); 8]);
                for k in 0..8 {
                    // SAFETY: 32 qs chunks of 64 bytes; this quarter's 16 at 16g.
                    let v = unsafe { vld1q_u8(qs.add(64 * (8 * pair + k) + 16 * g)) };
                    let (mut l, mut h) = (vandq_u8(v, nibble), vshrq_n_u8::<4>(v));
                    if K == Q5K {
                        // SAFETY: Q5_K tiles have 8 qh chunks of 64 bytes first.
                        let qhv = unsafe { vld1q_u8(q.add(64 * k + 16 * g)) };
                        let bit = |j: i8| {
                            let b = vandq_u8(vshlq_u8(qhv, vdupq_n_s8(-j)), vdupq_n_u8(1));
                            vshlq_n_u8::<4>(b)
                        };
                        l = vorrq_u8(l, bit(2 * pair as i8));
                        h = vorrq_u8(h, bit(2 * pair as i8 + 1));
                    }
                    lo[k] = vreinterpretq_s8_u8(l);
                    hi[k] = vreinterpretq_s8_u8(h);
                }
                for (j, wq) in [(2 * pair, &lo), (2 * pair + 1, &hi)] {
                    let ai = 8 * b + j;
                    for t in 0..T {
                        // SAFETY: check() verified 32 bytes per activation block.
                        let x = unsafe { i8x32_at(a[t].qs.as_ptr().add(32 * ai)) };
                        let u = vmulq_n_f32(vcvtq_f32_s32(sdot8(wq, x)), a[t].d[ai]);
                        let v = vfmaq_f32(acc[t][g], u, dsc[j]);
                        acc[t][g] = vfmsq_n_f32(v, dm[j], a[t].s[ai]);
                    }
                }
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

/// Q6_K super-blocks (see the AVX-512 kernel): per quarter of 4 rows, activation block
/// 4h + kk meets (q − 32), signed for SDOT, with the scales of sub-blocks 8h + 2kk and
/// 8h + 2kk + 1.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn group_q6k<const T: usize>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(DType::Q6K, w, a);
    let tb = tile_bytes(Q6K);
    let (low, three, m32) = (vdupq_n_u8(0x0F), vdupq_n_u8(3), vdupq_n_s8(32));
    let mut acc = [[vdupq_n_f32(0.0); 4]; T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        for g in 0..4 {
            // SAFETY: d[16] first, then 52 chunks of 64 bytes; this quarter's 16 at 16g.
            let (d, chunk) = unsafe {
                let c = p.add(32 + 16 * g);
                (f16x4_load(p.add(8 * g)), move |i: usize| {
                    vld1q_u8(c.add(64 * i))
                })
            };
            // Scale s of each row (byte s % 4 of its lane in scale chunk s / 4) times d.
            let scale = |s: usize| {
                let v = vreinterpretq_s32_u8(chunk(48 + s / 4));
                let v = match s % 4 {
                    0 => vshrq_n_s32::<24>(vshlq_n_s32::<24>(v)),
                    1 => vshrq_n_s32::<24>(vshlq_n_s32::<16>(v)),
                    2 => vshrq_n_s32::<24>(vshlq_n_s32::<8>(v)),
                    _ => vshrq_n_s32::<24>(v),
                };
                vmulq_f32(d, vcvtq_f32_s32(v))
            };
            for h in 0..2 {
                for kk in 0..4 {
                    let wq: [int8x16_t; 8] = core::array::from_fn(|k| {
                        let ql = chunk(16 * h + 8 * (kk % 2) + k);
                        let qh = chunk(32 + 8 * h + k);
                        let (l, hb) = match kk {
                            0 => (vandq_u8(ql, low), vandq_u8(qh, three)),
                            1 => (vandq_u8(ql, low), vandq_u8(vshrq_n_u8::<2>(qh), three)),
                            2 => (vshrq_n_u8::<4>(ql), vandq_u8(vshrq_n_u8::<4>(qh), three)),
                            _ => (vshrq_n_u8::<4>(ql), vshrq_n_u8::<6>(qh)),
                        };
                        vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l, vshlq_n_u8::<4>(hb))), m32)
                    });
                    let sub = 8 * h + 2 * kk;
                    let (s0, s1) = (scale(sub), scale(sub + 1));
                    let ai = 8 * b + 4 * h + kk;
                    for t in 0..T {
                        // SAFETY: check() verified 32 bytes per activation block.
                        let (x0, x1) = unsafe { i8x32_at(a[t].qs.as_ptr().add(32 * ai)) };
                        let mut d0 = vdupq_n_s32(0);
                        d0 = sdot_lane::<0>(d0, wq[0], x0);
                        d0 = sdot_lane::<1>(d0, wq[1], x0);
                        d0 = sdot_lane::<2>(d0, wq[2], x0);
                        d0 = sdot_lane::<3>(d0, wq[3], x0);
                        let mut d1 = vdupq_n_s32(0);
                        d1 = sdot_lane::<0>(d1, wq[4], x1);
                        d1 = sdot_lane::<1>(d1, wq[5], x1);
                        d1 = sdot_lane::<2>(d1, wq[6], x1);
                        d1 = sdot_lane::<3>(d1, wq[7], x1);
                        let v = vfmaq_f32(vmulq_f32(s0, vcvtq_f32_s32(d0)), s1, vcvtq_f32_s32(d1));
                        acc[t][g] = vfmaq_n_f32(acc[t][g], v, a[t].d[ai]);
                    }
                }
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

/// IQ4_XS super-blocks (see the AVX-512 kernel): sub-block ib meets activation block 8b + ib
/// with the scale d·(ls − 32) and the grid values (signed, for SDOT).
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn group_iq4xs<const T: usize>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(DType::IQ4XS, w, a);
    let tb = tile_bytes(IQ4XS);
    let nibble = vdupq_n_u8(0x0F);
    // SAFETY: the grid is 16 bytes.
    let grid = unsafe { vld1q_s8(ember_format::blocks::IQ4_GRID.as_ptr()) };
    let mut acc = [[vdupq_n_f32(0.0); 4]; T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        for g in 0..4 {
            // SAFETY: the tile starts with 4 fields: d, scales_h, scales_l (2).
            let (d, sh, sl) = unsafe {
                (
                    f16x4_load(p.add(8 * g)),
                    field4(p, 1, g),
                    [field4(p, 2, g), field4(p, 3, g)],
                )
            };
            for ib in 0..8 {
                let lo = vshlq_u32(sl[ib / 4], vdupq_n_s32(-(4 * (ib % 4) as i32)));
                let hi = vshlq_u32(sh, vdupq_n_s32(-(2 * ib as i32)));
                let ls = vorrq_u32(
                    vandq_u32(lo, vdupq_n_u32(0x0F)),
                    vshlq_n_u32::<4>(vandq_u32(hi, vdupq_n_u32(3))),
                );
                let ls = vsubq_s32(vreinterpretq_s32_u32(ls), vdupq_n_s32(32));
                let dl = vmulq_f32(d, vcvtq_f32_s32(ls));
                let mut wq = [vdupq_n_s8(0); 8];
                for k in 0..4 {
                    // SAFETY: 32 chunks of 64 bytes after the 128 bytes of fields.
                    let v = unsafe { vld1q_u8(p.add(128 + 64 * (4 * ib + k) + 16 * g)) };
                    wq[k] = vqtbl1q_s8(grid, vandq_u8(v, nibble));
                    wq[k + 4] = vqtbl1q_s8(grid, vshrq_n_u8::<4>(v));
                }
                let ai = 8 * b + ib;
                for t in 0..T {
                    // SAFETY: check() verified 32 bytes per activation block.
                    let x = unsafe { i8x32_at(a[t].qs.as_ptr().add(32 * ai)) };
                    let u = vmulq_n_f32(vcvtq_f32_s32(sdot8(&wq, x)), a[t].d[ai]);
                    acc[t][g] = vfmaq_f32(acc[t][g], u, dl);
                }
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

/// acc + SMMLA of w and x: w holds 2 rows of 8 signed bytes, x 2 columns of 8 signed bytes
/// (each stored as a row); the result's lanes are [w0·x0, w0·x1, w1·x0, w1·x1].
#[inline]
#[target_feature(enable = "neon,i8mm")]
fn smmla(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: SMMLA only reads and writes the named vector registers; the i8mm feature is
    // enabled on this function, so its callers run on a CPU that has it.
    unsafe {
        asm!(
            "smmla {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `group::<GROUP_TOKENS, K>` with SMMLA (i8mm): 2 rows × 2 tokens × 8 columns per
/// instruction instead of 4 rows × 1 token × 4 columns per SDOT. Zipping the 32-bit lanes
/// of chunks 2j and 2j + 1 gives 2 rows × 8 consecutive quant bytes (SMMLA's first operand);
/// 2 tokens' same 8 activation bytes make the second. The per-tile i32 sums are the SDOT
/// version's, unzipped back to one vector per token and quarter, and meet the scales in the
/// same float operations, so the results are bit-identical to it.
#[inline]
#[target_feature(enable = "neon,i8mm")]
unsafe fn group_i8mm<const K: u8>(w: &[u8], a: &[ActRow; GROUP_TOKENS]) -> Out<GROUP_TOKENS> {
    const T: usize = GROUP_TOKENS;
    const P: usize = GROUP_TOKENS / 2;
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
        // xs[p][s]: tokens 2p and 2p + 1, activation bytes 8s..8s+8 of each.
        let xs: [[int8x16_t; 4]; P] = core::array::from_fn(|p| {
            let ((a0, a1), (b0, b1)) = (x[2 * p], x[2 * p + 1]);
            let z = |u: int8x16_t, v: int8x16_t, hi: bool| {
                let (u, v) = (vreinterpretq_s64_s8(u), vreinterpretq_s64_s8(v));
                vreinterpretq_s8_s64(if hi {
                    vzip2q_s64(u, v)
                } else {
                    vzip1q_s64(u, v)
                })
            };
            [
                z(a0, b0, false),
                z(a0, b0, true),
                z(a1, b1, false),
                z(a1, b1, true),
            ]
        });
        for g in 0..4 {
            // SAFETY: the tile starts with 16 u16 scale fields (then 16 m for Q4_1).
            let (dw, mw) = unsafe { scales::<K>(p.add(8 * g)) };
            // wq[h][s]: rows 4g + 2h and 4g + 2h + 1, columns 8s..8s+8 (signed, as for SDOT).
            let mut wq = [[vdupq_n_s8(0); 4]; 2];
            for j in 0..2 {
                // SAFETY: chunks are 64 bytes, the quarter's 16 at offset 16g.
                unsafe {
                    if K == Q8_0 {
                        for k in 0..2 {
                            let c = 4 * j + 2 * k;
                            let v0 = veorq_u8(vld1q_u8(q.add(64 * c + 16 * g)), flip);
                            let v1 = veorq_u8(vld1q_u8(q.add(64 * c + 64 + 16 * g)), flip);
                            let (v0, v1) = (vreinterpretq_u32_u8(v0), vreinterpretq_u32_u8(v1));
                            wq[0][2 * j + k] = vreinterpretq_s8_u32(vzip1q_u32(v0, v1));
                            wq[1][2 * j + k] = vreinterpretq_s8_u32(vzip2q_u32(v0, v1));
                        }
                    } else {
                        // Chunks 2j and 2j + 1: low nibbles are columns 8j.., high ones
                        // 16 + 8j...
                        let v0 = vreinterpretq_u32_u8(vld1q_u8(q.add(128 * j + 16 * g)));
                        let v1 = vreinterpretq_u32_u8(vld1q_u8(q.add(128 * j + 64 + 16 * g)));
                        let z = [vzip1q_u32(v0, v1), vzip2q_u32(v0, v1)];
                        for h in 0..2 {
                            let v = vreinterpretq_u8_u32(z[h]);
                            wq[h][j] = vreinterpretq_s8_u8(vandq_u8(v, nibble));
                            wq[h][j + 2] = vreinterpretq_s8_u8(vshrq_n_u8::<4>(v));
                        }
                    }
                }
            }
            for p in 0..P {
                // d[h]: [row 2h · token 2p, row 2h · token 2p+1, row 2h+1 · 2p, 2h+1 · 2p+1].
                let d: [int32x4_t; 2] = core::array::from_fn(|h| {
                    let mut d = vdupq_n_s32(0);
                    for s in 0..4 {
                        d = smmla(d, wq[h][s], xs[p][s]);
                    }
                    d
                });
                // Even lanes are token 2p's 4 rows, odd lanes token 2p + 1's.
                let dt = [vuzp1q_s32(d[0], d[1]), vuzp2q_s32(d[0], d[1])];
                for i in 0..2 {
                    let t = 2 * p + i;
                    let u = vmulq_n_f32(vcvtq_f32_s32(dt[i]), a[t].d[b]);
                    let mut v = vfmaq_f32(acc[t][g], u, dw);
                    if K != Q8_0 {
                        v = vfmaq_n_f32(v, mw, a[t].s[b]);
                    }
                    acc[t][g] = v;
                }
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
super::entry_points!(@super_blocks "neon,dotprod");

/// The 4-token (prefill) kernels with i8mm, named as `gemm_*` plus `_i8mm`.
macro_rules! i8mm_entry_points {
    ($($name:ident, $k:expr;)*) => {$(
        #[target_feature(enable = "neon,i8mm")]
        pub unsafe fn $name(w: &[u8], a: &[ActRow; GROUP_TOKENS]) -> Out<GROUP_TOKENS> {
            // SAFETY: same features; bounds are checked inside.
            unsafe { group_i8mm::<{ $k }>(w, a) }
        }
    )*};
}

i8mm_entry_points! {
    gemm_q8_0_i8mm, Q8_0;
    gemm_q4_0_i8mm, Q4_0;
    gemm_q4_1_i8mm, Q4_1;
    gemm_q4_z_i8mm, Q4Z;
}

// Detection, env and Vec need std; this file is aarch64-only (the cfg says so again).
#[cfg(all(test, target_arch = "aarch64", feature = "std"))]
mod tests {
    use super::*;
    use crate::kernels::{ActQ8Buf, Kernels};
    use ember_format::{blocks::quantize_row_ref, rows16};
    use std::{eprintln, vec, vec::Vec};

    /// Uniform in [-1, 1) from an xorshift state.
    fn random(state: &mut u64) -> f32 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// A random group of 16 rows of n columns (n a multiple of 32) in the rows16 layout.
    fn random_group(state: &mut u64, dtype: DType, n: usize) -> Vec<u8> {
        let row_bytes = dtype.row_bytes(n).unwrap();
        let mut flat = vec![0u8; GROUP * row_bytes];
        for row in flat.chunks_mut(row_bytes) {
            let x: Vec<f32> = (0..n).map(|_| 2.0 * random(state)).collect();
            assert!(quantize_row_ref(dtype, &x, row));
        }
        let mut w = vec![0u8; flat.len()];
        rows16::interleave(dtype, GROUP, n, &flat, &mut w);
        w
    }

    #[test]
    fn i8mm_gemm_matches_sdot_and_scalar() {
        if !std::arch::is_aarch64_feature_detected!("i8mm") {
            let required = std::env::var("EMBER_REQUIRE_LEVELS").unwrap_or_default();
            assert!(
                !required.split(',').any(|l| l == "i8mm"),
                "EMBER_REQUIRE_LEVELS has i8mm but this CPU lacks it"
            );
            eprintln!("SKIPPED: i8mm (not supported by this CPU)");
            return;
        }
        assert!(std::arch::is_aarch64_feature_detected!("dotprod"));
        type Gemm = unsafe fn(&[u8], &[ActRow; GROUP_TOKENS]) -> Out<GROUP_TOKENS>;
        type Reference = fn(&[u8], &[ActRow; GROUP_TOKENS]) -> Out<GROUP_TOKENS>;
        use super::super::scalar as s;
        let cases: [(DType, Gemm, Gemm, Reference); 4] = [
            (DType::Q8_0, gemm_q8_0_i8mm, gemm_q8_0, s::gemm_q8_0),
            (DType::Q4_0, gemm_q4_0_i8mm, gemm_q4_0, s::gemm_q4_0),
            (DType::Q4_1, gemm_q4_1_i8mm, gemm_q4_1, s::gemm_q4_1),
            (DType::Q4Z, gemm_q4_z_i8mm, gemm_q4_z, s::gemm_q4_z),
        ];
        let mut state = 88;
        let quantize_q8 = Kernels::scalar().quantize_q8;
        for (dtype, i8mm, sdot, reference) in cases {
            for nb in [1usize, 2, 3, 17, 18] {
                let n = 32 * nb;
                let w = random_group(&mut state, dtype, n);
                let x: Vec<f32> = (0..GROUP_TOKENS * n).map(|_| random(&mut state)).collect();
                let mut buf = ActQ8Buf::new(GROUP_TOKENS, n);
                let mut act = buf.view();
                act.fill(quantize_q8, &x, GROUP_TOKENS, n);
                let a: [_; GROUP_TOKENS] = core::array::from_fn(|t| act.row(t));
                // SAFETY: this CPU has neon, dotprod and i8mm (checked above).
                let (got, sdot) = unsafe { (i8mm(&w, &a), sdot(&w, &a)) };
                let e = reference(&w, &a);
                for t in 0..GROUP_TOKENS {
                    // Same i32 sums and the same float operations: bit-identical.
                    assert_eq!(got[t], sdot[t], "{dtype} nb={nb} token {t}: i8mm == SDOT");
                    for r in 0..GROUP {
                        let (g, e) = (got[t][r], e[t][r]);
                        let tol = 1e-5 * (n as f32).sqrt() * (e.abs() + 1.0) + 1e-5;
                        assert!(
                            (g - e).abs() <= tol,
                            "{dtype} nb={nb} token {t} row {r}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }
}
