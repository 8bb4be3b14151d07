//! aarch64 NEON with the dot-product extension: versions of `scalar.rs` under the same names.
//! Integer block dots use SDOT (16 i8 × i8 products into four i32 lanes per instruction);
//! float dots use four-lane FMAs. Stable Rust lacks `vdotq_s32` and the f16 vector types,
//! so SDOT and the f16 -> f32 widening (FCVTL, base ARMv8) are one-instruction `asm!`.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use core::arch::aarch64::*;
use core::arch::asm;

use ember_format::blocks::scale_min_k4;

use super::scalar;

/// The feature set every function here needs; callers check it before calling.
pub const FEATURES: &str = "neon,dotprod";

/// acc + the four-lane SDOT of a and b (lane i gets sum of a[4i..4i+4] * b[4i..4i+4]).
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(crate) fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: SDOT only reads and writes the named vector registers; the dotprod feature is
    // enabled on this function, so its callers run on a CPU that has it.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Four halves widened to f32 (FCVTL).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn f16x4(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: FCVTL (base ARMv8 Advanced SIMD) only touches the named vector registers.
    unsafe {
        asm!(
            "fcvtl {o:v}.4s, {h:v}.4h",
            o = lateout(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// An f16 scale at `p` broadcast to four f32 lanes, converted in the vector unit (no
/// scalar f16 conversion: see the note in avx2.rs).
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn f16x4_at(p: *const u8) -> float32x4_t {
    // SAFETY: the caller guarantees two readable bytes at p; read_unaligned needs no alignment.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    f16x4(vdup_n_u16(bits))
}

/// 16 bytes of nibbles at `p` -> (low nibbles, high nibbles): elements 0..16 and 16..32.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    let b = unsafe { vld1q_u8(p) };
    (vandq_u8(b, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(b))
}

/// 32 int8 at `p` as two vectors.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn i8x32_at(p: *const i8) -> (int8x16_t, int8x16_t) {
    // SAFETY: the caller guarantees 32 readable bytes at p.
    unsafe { (vld1q_s8(p), vld1q_s8(p.add(16))) }
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn quantize_q8(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    let nb = x.len() / 32;
    assert!(qs.len() >= nb * 32 && d.len() >= nb && s.len() >= nb);
    for b in 0..nb {
        // SAFETY: block b lies within x (nb = x.len() / 32).
        let v: [float32x4_t; 8] =
            core::array::from_fn(|k| unsafe { vld1q_f32(x.as_ptr().add(32 * b + 4 * k)) });
        // maxnm, like f32::max, ignores NaN; the fold starts at 0 as in scalar.
        let mut m = vdupq_n_f32(0.0);
        for vi in &v {
            m = vmaxnmq_f32(m, vabsq_f32(*vi));
        }
        let amax = vmaxnmvq_f32(m);
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        // FCVTNS rounds half to even, as scalar's round_even does.
        let i: [int32x4_t; 8] = core::array::from_fn(|k| vcvtnq_s32_f32(vmulq_n_f32(v[k], inv)));
        let sum = vaddq_s32(
            vaddq_s32(vaddq_s32(i[0], i[1]), vaddq_s32(i[2], i[3])),
            vaddq_s32(vaddq_s32(i[4], i[5]), vaddq_s32(i[6], i[7])),
        );
        let h: [int16x8_t; 4] =
            core::array::from_fn(|k| vcombine_s16(vqmovn_s32(i[2 * k]), vqmovn_s32(i[2 * k + 1])));
        let q0 = vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1]));
        let q1 = vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3]));
        // SAFETY: block b lies within qs (checked above).
        unsafe {
            let p = qs.as_mut_ptr().add(32 * b);
            vst1q_s8(p, q0);
            vst1q_s8(p.add(16), q1);
        }
        d[b] = scale;
        s[b] = scale * vaddvq_s32(sum) as f32;
    }
}

/// Checks the lengths every quantized dot relies on; returns the block count.
#[inline]
fn blocks(w: &[u8], block_bytes: usize, qs: &[i8], d: &[f32], s: &[f32]) -> usize {
    let nb = d.len();
    assert!(w.len() >= nb * block_bytes && qs.len() >= nb * 32 && s.len() >= nb);
    nb
}

/// Runs `block(b)` -> (integer dot as f32 lanes, scale lanes) over nb blocks, alternating
/// two accumulators so consecutive blocks' FMAs do not wait on each other.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sum_blocks(nb: usize, block: impl Fn(usize) -> (float32x4_t, float32x4_t)) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 2];
    let mut b = 0;
    while b + 2 <= nb {
        let (d0, s0) = block(b);
        let (d1, s1) = block(b + 1);
        acc[0] = vfmaq_f32(acc[0], d0, s0);
        acc[1] = vfmaq_f32(acc[1], d1, s1);
        b += 2;
    }
    if b < nb {
        let (d0, s0) = block(b);
        acc[0] = vfmaq_f32(acc[0], d0, s0);
    }
    vaddvq_f32(vaddq_f32(acc[0], acc[1]))
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q8_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 34, qs, d, s);
    sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (34 bytes), of qs (32) and of d exist.
        unsafe {
            let p = w.as_ptr().add(34 * b);
            let (w0, w1) = i8x32_at(p.add(2) as *const i8);
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            (
                vcvtq_f32_s32(dot),
                vmulq_n_f32(f16x4_at(p), *d.get_unchecked(b)),
            )
        }
    })
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q4_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (q - 8) x with the offset applied to the nibbles: exact integers, no use of s.
    let nb = blocks(w, 18, qs, d, s);
    let eight = vdupq_n_s8(8);
    sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (18 bytes), of qs (32) and of d exist.
        unsafe {
            let p = w.as_ptr().add(18 * b);
            let (lo, hi) = nibbles(p.add(2));
            let w0 = vsubq_s8(vreinterpretq_s8_u8(lo), eight);
            let w1 = vsubq_s8(vreinterpretq_s8_u8(hi), eight);
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            (
                vcvtq_f32_s32(dot),
                vmulq_n_f32(f16x4_at(p), *d.get_unchecked(b)),
            )
        }
    })
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q4_1(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (dw q + m) x = dw dx sum q xq + m sx
    let nb = blocks(w, 20, qs, d, s);
    // Every lane of `mins` holds the same running sum of m * sx.
    let mut mins = vdupq_n_f32(0.0);
    for (b, &sx) in s[..nb].iter().enumerate() {
        // SAFETY: `blocks` checked that block b of w (20 bytes) exists.
        mins = vfmaq_n_f32(mins, unsafe { f16x4_at(w.as_ptr().add(20 * b + 2)) }, sx);
    }
    let dots = sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (20 bytes), of qs (32) and of d exist.
        unsafe {
            let p = w.as_ptr().add(20 * b);
            let (lo, hi) = nibbles(p.add(4));
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(
                sdot(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), x0),
                vreinterpretq_s8_u8(hi),
                x1,
            );
            (
                vcvtq_f32_s32(dot),
                vmulq_n_f32(f16x4_at(p), *d.get_unchecked(b)),
            )
        }
    });
    dots + vgetq_lane_f32::<0>(mins)
}

/// The fifth bits of a Q5 block (the u32 at `p`, bit j for element j) as 0x10 in each byte:
/// elements 0..16 and 16..32.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn q5_high(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: the caller guarantees four readable bytes at p.
    let h = unsafe { (p as *const u32).read_unaligned() };
    let h = vreinterpretq_u8_u32(vdupq_n_u32(h));
    // Byte k of each half holds source byte idx[k]; lane k tests bit k % 8 of it.
    let idx0 = vcombine_u8(vdup_n_u8(0), vdup_n_u8(1));
    let idx1 = vcombine_u8(vdup_n_u8(2), vdup_n_u8(3));
    let bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
    let ten = vdupq_n_u8(0x10);
    (
        vandq_u8(vtstq_u8(vqtbl1q_u8(h, idx0), bit), ten),
        vandq_u8(vtstq_u8(vqtbl1q_u8(h, idx1), bit), ten),
    )
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q5_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (q - 16) x with the offset applied to the values, as in dot_q4_0.
    let nb = blocks(w, 22, qs, d, s);
    let sixteen = vdupq_n_s8(16);
    sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (22 bytes), of qs (32) and of d exist.
        unsafe {
            let p = w.as_ptr().add(22 * b);
            let (h0, h1) = q5_high(p.add(2));
            let (lo, hi) = nibbles(p.add(6));
            let w0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, h0)), sixteen);
            let w1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, h1)), sixteen);
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            (
                vcvtq_f32_s32(dot),
                vmulq_n_f32(f16x4_at(p), *d.get_unchecked(b)),
            )
        }
    })
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q5_1(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 24, qs, d, s);
    // Every lane of `mins` holds the same running sum of m * sx.
    let mut mins = vdupq_n_f32(0.0);
    for (b, &sx) in s[..nb].iter().enumerate() {
        // SAFETY: `blocks` checked that block b of w (24 bytes) exists.
        mins = vfmaq_n_f32(mins, unsafe { f16x4_at(w.as_ptr().add(24 * b + 2)) }, sx);
    }
    let dots = sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (24 bytes), of qs (32) and of d exist.
        unsafe {
            let p = w.as_ptr().add(24 * b);
            let (h0, h1) = q5_high(p.add(4));
            let (lo, hi) = nibbles(p.add(8));
            let w0 = vreinterpretq_s8_u8(vorrq_u8(lo, h0));
            let w1 = vreinterpretq_s8_u8(vorrq_u8(hi, h1));
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            (
                vcvtq_f32_s32(dot),
                vmulq_n_f32(f16x4_at(p), *d.get_unchecked(b)),
            )
        }
    });
    dots + vgetq_lane_f32::<0>(mins)
}

/// [sum a, sum b, sum c, sum e]: four lane sums in one vector.
#[inline]
#[target_feature(enable = "neon")]
pub(crate) fn sums4(a: int32x4_t, b: int32x4_t, c: int32x4_t, e: int32x4_t) -> int32x4_t {
    vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, e))
}

/// Checks the lengths a K-quant dot relies on (super-blocks of 256 = 8 activation blocks);
/// returns the super-block count.
#[inline]
fn super_blocks(w: &[u8], block_bytes: usize, qs: &[i8], d: &[f32], s: &[f32]) -> usize {
    let nsb = d.len() / 8;
    assert!(w.len() >= nsb * block_bytes && qs.len() >= nsb * 256 && s.len() >= nsb * 8);
    nsb
}

/// Q4_K / Q5_K: the 8 (scale, min) pairs of a super-block as f32 vectors (sub-blocks 0..4,
/// 4..8).
#[inline]
#[target_feature(enable = "neon")]
fn k4_scales(scales: &[u8; 12]) -> ([float32x4_t; 2], [float32x4_t; 2]) {
    let mut sc = [0f32; 8];
    let mut m = [0f32; 8];
    for j in 0..8 {
        let (a, b) = scale_min_k4(j, scales);
        sc[j] = a as f32;
        m[j] = b as f32;
    }
    // SAFETY: each array holds 8 floats.
    unsafe {
        (
            [vld1q_f32(sc.as_ptr()), vld1q_f32(sc.as_ptr().add(4))],
            [vld1q_f32(m.as_ptr()), vld1q_f32(m.as_ptr().add(4))],
        )
    }
}

/// Q4_K / Q5_K super-block b: d_all·sc_j·d_j·dot_j − dmin·m_j·s_j summed over the 8
/// sub-blocks into `acc`, given the integer dots (sub-blocks 0..4, 4..8).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn k4_accumulate(
    acc: float32x4_t,
    blk: *const u8,
    dots: [int32x4_t; 2],
    d: *const f32,
    s: *const f32,
) -> float32x4_t {
    // SAFETY: the caller guarantees a whole super-block at blk and 8 floats at d and s.
    unsafe {
        let scales = &*(blk.add(4) as *const [u8; 12]);
        let (sc, m) = k4_scales(scales);
        let (dall, dmin) = (f16x4_at(blk), f16x4_at(blk.add(2)));
        let mut acc = acc;
        for k in 0..2 {
            let dk = vld1q_f32(d.add(4 * k));
            let sk = vld1q_f32(s.add(4 * k));
            let t = vmulq_f32(vmulq_f32(sc[k], dk), vcvtq_f32_s32(dots[k]));
            acc = vfmaq_f32(acc, dall, t);
            acc = vfmsq_f32(acc, dmin, vmulq_f32(m[k], sk));
        }
        acc
    }
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q4_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nsb = super_blocks(w, 144, qs, d, s);
    let mut acc = vdupq_n_f32(0.0);
    for b in 0..nsb {
        // SAFETY: `super_blocks` checked that super-block b of w (144 bytes), of qs (256)
        // and of d and s (8 each) exist.
        unsafe {
            let blk = w.as_ptr().add(144 * b);
            let q = blk.add(16);
            let x = qs.as_ptr().add(256 * b);
            // 32 bytes serve sub-block 2i (low nibbles) and 2i + 1 (high nibbles).
            let dots: [int32x4_t; 8] = core::array::from_fn(|j| {
                let i = j / 2;
                let (b0, b1) = (vld1q_u8(q.add(32 * i)), vld1q_u8(q.add(32 * i + 16)));
                let (v0, v1) = if j % 2 == 0 {
                    (
                        vandq_u8(b0, vdupq_n_u8(0x0F)),
                        vandq_u8(b1, vdupq_n_u8(0x0F)),
                    )
                } else {
                    (vshrq_n_u8::<4>(b0), vshrq_n_u8::<4>(b1))
                };
                let (x0, x1) = i8x32_at(x.add(32 * j));
                let z = vdupq_n_s32(0);
                sdot(
                    sdot(z, vreinterpretq_s8_u8(v0), x0),
                    vreinterpretq_s8_u8(v1),
                    x1,
                )
            });
            let dots = [
                sums4(dots[0], dots[1], dots[2], dots[3]),
                sums4(dots[4], dots[5], dots[6], dots[7]),
            ];
            acc = k4_accumulate(acc, blk, dots, d.as_ptr().add(8 * b), s.as_ptr().add(8 * b));
        }
    }
    vaddvq_f32(acc)
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q5_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nsb = super_blocks(w, 176, qs, d, s);
    let mut acc = vdupq_n_f32(0.0);
    for b in 0..nsb {
        // SAFETY: `super_blocks` checked that super-block b of w (176 bytes), of qs (256)
        // and of d and s (8 each) exist.
        unsafe {
            let blk = w.as_ptr().add(176 * b);
            let (qh0, qh1) = (vld1q_u8(blk.add(16)), vld1q_u8(blk.add(32)));
            let q = blk.add(48);
            let x = qs.as_ptr().add(256 * b);
            let ten = vdupq_n_u8(0x10);
            let dots: [int32x4_t; 8] = core::array::from_fn(|j| {
                let i = j / 2;
                let (b0, b1) = (vld1q_u8(q.add(32 * i)), vld1q_u8(q.add(32 * i + 16)));
                let (v0, v1) = if j % 2 == 0 {
                    (
                        vandq_u8(b0, vdupq_n_u8(0x0F)),
                        vandq_u8(b1, vdupq_n_u8(0x0F)),
                    )
                } else {
                    (vshrq_n_u8::<4>(b0), vshrq_n_u8::<4>(b1))
                };
                // Element l of sub-block j has its fifth bit in bit j of qh[l].
                let shift = vdupq_n_s8(4 - j as i8);
                let h0 = vandq_u8(vshlq_u8(qh0, shift), ten);
                let h1 = vandq_u8(vshlq_u8(qh1, shift), ten);
                let (v0, v1) = (vorrq_u8(v0, h0), vorrq_u8(v1, h1));
                let (x0, x1) = i8x32_at(x.add(32 * j));
                let z = vdupq_n_s32(0);
                sdot(
                    sdot(z, vreinterpretq_s8_u8(v0), x0),
                    vreinterpretq_s8_u8(v1),
                    x1,
                )
            });
            let dots = [
                sums4(dots[0], dots[1], dots[2], dots[3]),
                sums4(dots[4], dots[5], dots[6], dots[7]),
            ];
            acc = k4_accumulate(acc, blk, dots, d.as_ptr().add(8 * b), s.as_ptr().add(8 * b));
        }
    }
    vaddvq_f32(acc)
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q6_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nsb = super_blocks(w, 210, qs, d, s);
    let mut acc = vdupq_n_f32(0.0);
    let (low4, two_bits, thirty_two) = (vdupq_n_u8(0x0F), vdupq_n_u8(0x30), vdupq_n_s8(32));
    for b in 0..nsb {
        // SAFETY: `super_blocks` checked that super-block b of w (210 bytes), of qs (256)
        // and of d (8) exist.
        unsafe {
            let blk = w.as_ptr().add(210 * b);
            let dw = f16x4_at(blk.add(208));
            // Sub-block scales (16 × i8) as f32, four per vector.
            let sc8 = vld1q_s8(blk.add(192) as *const i8);
            let (lo16, hi16) = (vmovl_s8(vget_low_s8(sc8)), vmovl_high_s8(sc8));
            let sc = [
                vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo16))),
                vcvtq_f32_s32(vmovl_high_s16(lo16)),
                vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi16))),
                vcvtq_f32_s32(vmovl_high_s16(hi16)),
            ];
            // Sub-block k (16 elements) meets activation block k / 2.
            let (d0, d1) = (
                vld1q_f32(d.as_ptr().add(8 * b)),
                vld1q_f32(d.as_ptr().add(8 * b + 4)),
            );
            let dd = [
                vzip1q_f32(d0, d0),
                vzip2q_f32(d0, d0),
                vzip1q_f32(d1, d1),
                vzip2q_f32(d1, d1),
            ];
            for h in 0..2 {
                let ql = blk.add(64 * h);
                let qh = blk.add(128 + 32 * h);
                let x = qs.as_ptr().add(256 * b + 128 * h);
                let l = [
                    vld1q_u8(ql),
                    vld1q_u8(ql.add(16)),
                    vld1q_u8(ql.add(32)),
                    vld1q_u8(ql.add(48)),
                ];
                let (h0, h1) = (vld1q_u8(qh), vld1q_u8(qh.add(16)));
                // Elements 16k..16k+16 of this half: low 4 bits from l, bits 4-5 from h.
                let v = [
                    vorrq_u8(
                        vandq_u8(l[0], low4),
                        vandq_u8(vshlq_n_u8::<4>(h0), two_bits),
                    ),
                    vorrq_u8(
                        vandq_u8(l[1], low4),
                        vandq_u8(vshlq_n_u8::<4>(h1), two_bits),
                    ),
                    vorrq_u8(
                        vandq_u8(l[2], low4),
                        vandq_u8(vshlq_n_u8::<2>(h0), two_bits),
                    ),
                    vorrq_u8(
                        vandq_u8(l[3], low4),
                        vandq_u8(vshlq_n_u8::<2>(h1), two_bits),
                    ),
                    vorrq_u8(vshrq_n_u8::<4>(l[0]), vandq_u8(h0, two_bits)),
                    vorrq_u8(vshrq_n_u8::<4>(l[1]), vandq_u8(h1, two_bits)),
                    vorrq_u8(
                        vshrq_n_u8::<4>(l[2]),
                        vandq_u8(vshrq_n_u8::<2>(h0), two_bits),
                    ),
                    vorrq_u8(
                        vshrq_n_u8::<4>(l[3]),
                        vandq_u8(vshrq_n_u8::<2>(h1), two_bits),
                    ),
                ];
                let dots: [int32x4_t; 8] = core::array::from_fn(|k| {
                    let q = vsubq_s8(vreinterpretq_s8_u8(v[k]), thirty_two);
                    sdot(vdupq_n_s32(0), q, vld1q_s8(x.add(16 * k)))
                });
                let dots = [
                    sums4(dots[0], dots[1], dots[2], dots[3]),
                    sums4(dots[4], dots[5], dots[6], dots[7]),
                ];
                for k in 0..2 {
                    let t = vmulq_f32(
                        vmulq_f32(sc[2 * h + k], dd[2 * h + k]),
                        vcvtq_f32_s32(dots[k]),
                    );
                    acc = vfmaq_f32(acc, dw, t);
                }
            }
        }
    }
    vaddvq_f32(acc)
}

/// Float dot over 16 elements per step with four accumulators, then steps of 4;
/// `load(i)` gives the 4 weights at i. Returns the sum over the first n / 4 * 4 elements.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_float(n: usize, x: &[f32], load: impl Fn(usize) -> float32x4_t) -> f32 {
    debug_assert!(n <= x.len());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4k + 4 <= n <= x.len(), checked by the callers.
            let xv = unsafe { vld1q_f32(x.as_ptr().add(i + 4 * k)) };
            *a = vfmaq_f32(*a, load(i + 4 * k), xv);
        }
        i += 16;
    }
    while i + 4 <= n {
        // SAFETY: as above.
        let xv = unsafe { vld1q_f32(x.as_ptr().add(i)) };
        acc[0] = vfmaq_f32(acc[0], load(i), xv);
        i += 4;
    }
    vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ))
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 4 * n);
    let wp = w.as_ptr();
    // SAFETY: every index passed to the loader is at most n - 4, and w holds n floats;
    // the bytes are loaded as u8 so w needs no alignment.
    let sum = unsafe { dot_float(n, x, |i| vreinterpretq_f32_u8(vld1q_u8(wp.add(4 * i)))) };
    let full = n / 4 * 4;
    sum + scalar::dot_f32(&w[4 * full..4 * n], &x[full..])
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 2 * n);
    let wp = w.as_ptr();
    // SAFETY: every index passed to the loader is at most n - 4, and w holds n halves:
    // the 8-byte load reads halves i..i+4.
    let sum = unsafe { dot_float(n, x, |i| f16x4(vreinterpret_u16_u8(vld1_u8(wp.add(2 * i))))) };
    let full = n / 4 * 4;
    sum + scalar::dot_f16(&w[2 * full..2 * n], &x[full..])
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 2 * n);
    let wp = w.as_ptr();
    // SAFETY: every index passed to the loader is at most n - 4, and w holds n halves:
    // the 8-byte load reads halves i..i+4.
    let sum = unsafe {
        dot_float(n, x, |i| {
            let h = vreinterpret_u16_u8(vld1_u8(wp.add(2 * i)));
            vreinterpretq_f32_u32(vshll_n_u16::<16>(h))
        })
    };
    let full = n / 4 * 4;
    sum + scalar::dot_bf16(&w[2 * full..2 * n], &x[full..])
}

/// Keys `base + j·stride`, j < count ≤ 8, against the 4·NV floats of q at qp.
///
/// # Safety
/// q and each of the count rows must hold 4·NV floats.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn scores_block<const NV: usize>(
    qp: *const f32,
    base: *const f32,
    stride: usize,
    count: usize,
    acc: &mut [float32x4_t; 8],
) {
    // SAFETY: the caller's promise.
    unsafe {
        let qv: [float32x4_t; NV] = core::array::from_fn(|c| vld1q_f32(qp.add(4 * c)));
        for (j, a) in acc.iter_mut().enumerate() {
            if j < count {
                let row = base.add(j * stride);
                for c in 0..NV {
                    *a = vfmaq_f32(*a, qv[c], vld1q_f32(row.add(4 * c)));
                }
            }
        }
    }
}

/// scores[p] = scale · q · keys[p·stride + offset..][..hs]: 8 keys at a time, q in registers
/// in blocks of up to 32 floats, one pairwise-add tree per 4 keys.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn attn_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    offset: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let (hs, n) = (q.len(), scores.len());
    scalar::check_rows(keys.len(), n, stride, offset, hs);
    let full = hs / 4;
    // The last hs % 4 floats of q, zero-padded.
    let mut q_tail = [0f32; 4];
    q_tail[..hs - 4 * full].copy_from_slice(&q[4 * full..]);
    let mut p0 = 0;
    while p0 < n {
        let count = (n - p0).min(8);
        let mut acc = [vdupq_n_f32(0.0); 8];
        let mut v = 0;
        while v < full {
            // SAFETY: rows p0..p0+count exist (check_rows: (n−1)·stride + offset + hs ≤
            // keys.len()), and each block reads vectors v..v+NV ≤ full of q and of each row.
            unsafe {
                let qp = q.as_ptr().add(4 * v);
                let base = keys.as_ptr().add(p0 * stride + offset + 4 * v);
                v += match full - v {
                    8.. => {
                        scores_block::<8>(qp, base, stride, count, &mut acc);
                        8
                    }
                    4..=7 => {
                        scores_block::<4>(qp, base, stride, count, &mut acc);
                        4
                    }
                    2 | 3 => {
                        scores_block::<2>(qp, base, stride, count, &mut acc);
                        2
                    }
                    _ => {
                        scores_block::<1>(qp, base, stride, count, &mut acc);
                        1
                    }
                };
            }
        }
        if hs > 4 * full {
            // SAFETY: q_tail holds 4 floats.
            let qt = unsafe { vld1q_f32(q_tail.as_ptr()) };
            for (j, a) in acc.iter_mut().enumerate().take(count) {
                let at = (p0 + j) * stride + offset;
                let mut kt = [0f32; 4];
                kt[..hs - 4 * full].copy_from_slice(&keys[at + 4 * full..at + hs]);
                // SAFETY: kt holds 4 floats.
                *a = vfmaq_f32(*a, qt, unsafe { vld1q_f32(kt.as_ptr()) });
            }
        }
        let sums = [
            vpaddq_f32(vpaddq_f32(acc[0], acc[1]), vpaddq_f32(acc[2], acc[3])),
            vpaddq_f32(vpaddq_f32(acc[4], acc[5]), vpaddq_f32(acc[6], acc[7])),
        ];
        let mut tmp = [0f32; 8];
        // SAFETY: tmp holds 8 floats.
        unsafe {
            vst1q_f32(tmp.as_mut_ptr(), vmulq_n_f32(sums[0], scale));
            vst1q_f32(tmp.as_mut_ptr().add(4), vmulq_n_f32(sums[1], scale));
        }
        scores[p0..p0 + count].copy_from_slice(&tmp[..count]);
        p0 += 8;
    }
}

/// out[..4·NV] = Σ_p scores[p] · rows p from `base`.
///
/// # Safety
/// Each of the scores.len() rows `base + p·stride` must hold 4·NV floats; so must out.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn values_block<const NV: usize>(
    scores: &[f32],
    base: *const f32,
    stride: usize,
    out: *mut f32,
) {
    let mut acc = [vdupq_n_f32(0.0); NV];
    // SAFETY: the caller's promise.
    unsafe {
        let mut row = base;
        for &s in scores {
            for c in 0..NV {
                acc[c] = vfmaq_n_f32(acc[c], vld1q_f32(row.add(4 * c)), s);
            }
            row = row.wrapping_add(stride);
        }
        for c in 0..NV {
            vst1q_f32(out.add(4 * c), acc[c]);
        }
    }
}

/// out[d] = Σ_p scores[p] · values[p·stride + offset + d]: out kept in registers across all
/// positions, in blocks of up to 64 floats; the last hs % 4 columns in plain loops.
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn attn_values(
    scores: &[f32],
    values: &[f32],
    stride: usize,
    offset: usize,
    out: &mut [f32],
) {
    let hs = out.len();
    scalar::check_rows(values.len(), scores.len(), stride, offset, hs);
    let full = hs / 4;
    let mut v = 0;
    while v < full {
        // SAFETY: every row p < n holds hs floats at offset (check_rows), out holds hs, and
        // each block covers vectors v..v+NV ≤ full = hs / 4.
        unsafe {
            let base = values.as_ptr().add(offset + 4 * v);
            let o = out.as_mut_ptr().add(4 * v);
            v += match full - v {
                16.. => {
                    values_block::<16>(scores, base, stride, o);
                    16
                }
                8..=15 => {
                    values_block::<8>(scores, base, stride, o);
                    8
                }
                4..=7 => {
                    values_block::<4>(scores, base, stride, o);
                    4
                }
                2 | 3 => {
                    values_block::<2>(scores, base, stride, o);
                    2
                }
                _ => {
                    values_block::<1>(scores, base, stride, o);
                    1
                }
            };
        }
    }
    for d in 4 * full..hs {
        let mut sum = 0f32;
        for (p, &s) in scores.iter().enumerate() {
            sum += s * values[p * stride + offset + d];
        }
        out[d] = sum;
    }
}

/// The IQ4 grid values of the 32 nibbles at p: one table lookup per 16.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn iq4_values(p: *const u8) -> (int8x16_t, int8x16_t) {
    // SAFETY: the grid is 16 bytes; the caller guarantees 16 readable bytes at p.
    unsafe {
        let grid = vld1q_s8(ember_format::blocks::IQ4_GRID.as_ptr());
        let (lo, hi) = nibbles(p);
        (vqtbl1q_s8(grid, lo), vqtbl1q_s8(grid, hi))
    }
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_iq4_nl(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 18, qs, d, s);
    sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (18 bytes), of qs (32) and of d exist.
        unsafe {
            let p = w.as_ptr().add(18 * b);
            let (w0, w1) = iq4_values(p.add(2));
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            (
                vcvtq_f32_s32(dot),
                vmulq_n_f32(f16x4_at(p), *d.get_unchecked(b)),
            )
        }
    })
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_iq4_xs(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 0, qs, d, s) / 8;
    assert!(w.len() >= nb * 136 && d.len() == 8 * nb);
    // Activation block a = 8b + ib meets sub-block ib of super-block b.
    sum_blocks(8 * nb, |a| {
        let (b, ib) = (a / 8, a % 8);
        // SAFETY: the assert above checked super-block b of w and activation block a.
        unsafe {
            let p = w.as_ptr().add(136 * b);
            let sh = (p.add(2) as *const u16).read_unaligned();
            let lo = (*p.add(4 + ib / 2) >> (4 * (ib % 2))) & 0x0F;
            let ls = (lo | ((((sh >> (2 * ib)) & 3) as u8) << 4)) as i32 - 32;
            let (w0, w1) = iq4_values(p.add(8 + 16 * ib));
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * a));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            let dw = vgetq_lane_f32::<0>(f16x4_at(p));
            (
                vcvtq_f32_s32(dot),
                vdupq_n_f32(dw * ls as f32 * *d.get_unchecked(a)),
            )
        }
    })
}

/// q4_z: dw (dx · Σ q·x − z · sx) per block (the nibbles are 0..15, signed for SDOT).
#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q4_z(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 18, qs, d, s);
    // Every lane of `offset` holds the same running sum of dw · z · sx.
    let mut offset = 0f32;
    let dots = sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (18 bytes), of qs (32) and of d exist.
        unsafe {
            let p = w.as_ptr().add(18 * b);
            let (lo, hi) = nibbles(p.add(2));
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(
                sdot(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), x0),
                vreinterpretq_s8_u8(hi),
                x1,
            );
            let sd = (p as *const u16).read_unaligned();
            let dw = ember_format::blocks::q4z_d(sd >> 7);
            (vcvtq_f32_s32(dot), vdupq_n_f32(dw * *d.get_unchecked(b)))
        }
    });
    for b in 0..nb {
        // SAFETY: as above.
        let sd = unsafe { (w.as_ptr().add(18 * b) as *const u16).read_unaligned() };
        let (dw, z) = ember_format::blocks::q4z_scale_zero(sd);
        offset += dw * z * s[b];
    }
    dots - offset
}
