//! aarch64 NEON with the dot-product extension: versions of `scalar.rs` under the same names.
//! Integer block dots use SDOT (16 i8 × i8 products into four i32 lanes per instruction);
//! float dots use four-lane FMAs. Stable Rust lacks `vdotq_s32` and the f16 vector types,
//! so SDOT and the f16 -> f32 widening (FCVTL, base ARMv8) are one-instruction `asm!`.
#![allow(clippy::missing_safety_doc)]

use core::arch::aarch64::*;
use core::arch::asm;

use super::scalar;

/// The feature set every function here needs; callers check it before calling.
pub const FEATURES: &str = "neon,dotprod";

/// acc + the four-lane SDOT of a and b (lane i gets sum of a[4i..4i+4] * b[4i..4i+4]).
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
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
fn f16x4(h: uint16x4_t) -> float32x4_t {
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
unsafe fn f16x4_at(p: *const u8) -> float32x4_t {
    // SAFETY: the caller guarantees two readable bytes at p; read_unaligned needs no alignment.
    let bits = unsafe { (p as *const u16).read_unaligned() };
    f16x4(vdup_n_u16(bits))
}

/// 16 bytes of nibbles at `p` -> (low nibbles, high nibbles): elements 0..16 and 16..32.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    let b = unsafe { vld1q_u8(p) };
    (vandq_u8(b, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(b))
}

/// 32 int8 at `p` as two vectors.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn i8x32_at(p: *const i8) -> (int8x16_t, int8x16_t) {
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
        // SAFETY: `blocks` checked that block b of w (34 bytes) and of qs (32) exist.
        unsafe {
            let p = w.as_ptr().add(34 * b);
            let (w0, w1) = i8x32_at(p.add(2) as *const i8);
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            (vcvtq_f32_s32(dot), vmulq_n_f32(f16x4_at(p), d[b]))
        }
    })
}

#[target_feature(enable = "neon,dotprod")]
pub unsafe fn dot_q4_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (q - 8) x with the offset applied to the nibbles: exact integers, no use of s.
    let nb = blocks(w, 18, qs, d, s);
    let eight = vdupq_n_s8(8);
    sum_blocks(nb, |b| {
        // SAFETY: `blocks` checked that block b of w (18 bytes) and of qs (32) exist.
        unsafe {
            let p = w.as_ptr().add(18 * b);
            let (lo, hi) = nibbles(p.add(2));
            let w0 = vsubq_s8(vreinterpretq_s8_u8(lo), eight);
            let w1 = vsubq_s8(vreinterpretq_s8_u8(hi), eight);
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(sdot(vdupq_n_s32(0), w0, x0), w1, x1);
            (vcvtq_f32_s32(dot), vmulq_n_f32(f16x4_at(p), d[b]))
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
        // SAFETY: `blocks` checked that block b of w (20 bytes) and of qs (32) exist.
        unsafe {
            let p = w.as_ptr().add(20 * b);
            let (lo, hi) = nibbles(p.add(4));
            let (x0, x1) = i8x32_at(qs.as_ptr().add(32 * b));
            let dot = sdot(
                sdot(vdupq_n_s32(0), vreinterpretq_s8_u8(lo), x0),
                vreinterpretq_s8_u8(hi),
                x1,
            );
            (vcvtq_f32_s32(dot), vmulq_n_f32(f16x4_at(p), d[b]))
        }
    });
    dots + vgetq_lane_f32::<0>(mins)
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
