//! AVX-512 (F, BW, VL) with VNNI: `vpdpbusd` does the u8 × i8 multiply-accumulate of a
//! block in one instruction; float dots use 16 lanes. Same functions as `scalar.rs`.
// Blocks are addressed by index into raw pointers and several slices at once.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::scalar;

pub const FEATURES: &str = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c";

/// An f16 scale broadcast to eight f32 lanes (no scalar round trip: see avx2.rs).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f16x8(bits: u16) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(bits as i16))
}

#[inline]
unsafe fn u16_at(p: *const u8) -> u16 {
    // SAFETY: the caller guarantees two readable bytes.
    unsafe { (p as *const u16).read_unaligned() }
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    let b = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let m = _mm_set1_epi8(0x0F);
    _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16::<4>(b), m),
        _mm_and_si128(b, m),
    )
}

/// u8 × i8 products of 32 lanes summed into eight i32, as floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dp(u: __m256i, s: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s))
}

#[inline]
fn blocks(w: &[u8], block_bytes: usize, qs: &[i8], d: &[f32], s: &[f32]) -> usize {
    let nb = d.len();
    assert!(w.len() >= nb * block_bytes && qs.len() >= nb * 32 && s.len() >= nb);
    nb
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn quantize_q8(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    // SAFETY: AVX2, FMA and F16C are part of this function's feature set.
    unsafe { super::avx2::quantize_q8(x, qs, d, s) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_q8_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 34, qs, d, s);
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut b = 0;
    // SAFETY: `blocks` checked that blocks 0..nb of w (34 bytes) and qs exist.
    unsafe {
        let block = |b: usize| {
            let p = w.as_ptr().add(34 * b);
            let wq = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = dp(_mm256_abs_epi8(wq), _mm256_sign_epi8(xq, wq));
            let scale = _mm256_mul_ps(f16x8(u16_at(p)), _mm256_set1_ps(d[b]));
            (scale, dot)
        };
        while b + 2 <= nb {
            let (s0, d0) = block(b);
            let (s1, d1) = block(b + 1);
            acc0 = _mm256_fmadd_ps(s0, d0, acc0);
            acc1 = _mm256_fmadd_ps(s1, d1, acc1);
            b += 2;
        }
        if b < nb {
            let (s0, d0) = block(b);
            acc0 = _mm256_fmadd_ps(s0, d0, acc0);
        }
    }
    hsum256(_mm256_add_ps(acc0, acc1))
}

/// Shared by Q4_0 and Q4_1: sum over blocks of dw·dx·dot(nibbles, xq), plus lane 0 of the
/// sum of `extra(b, p)` (a broadcast vector per block).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_q4(
    w: &[u8],
    block_bytes: usize,
    qs: &[i8],
    d: &[f32],
    s: &[f32],
    extra: impl Fn(usize, *const u8) -> __m256,
) -> f32 {
    let nb = blocks(w, block_bytes, qs, d, s);
    let quants = block_bytes - 16;
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut rest = _mm256_setzero_ps();
    let mut b = 0;
    // SAFETY: `blocks` checked that blocks 0..nb of w and qs exist.
    unsafe {
        let block = |b: usize| {
            let p = w.as_ptr().add(block_bytes * b);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = dp(nibbles(p.add(quants)), xq);
            let dw = f16x8(u16_at(p));
            (_mm256_mul_ps(dw, _mm256_set1_ps(d[b])), dot, extra(b, p))
        };
        while b + 2 <= nb {
            let (s0, d0, e0) = block(b);
            let (s1, d1, e1) = block(b + 1);
            acc0 = _mm256_fmadd_ps(s0, d0, acc0);
            acc1 = _mm256_fmadd_ps(s1, d1, acc1);
            rest = _mm256_add_ps(rest, _mm256_add_ps(e0, e1));
            b += 2;
        }
        if b < nb {
            let (s0, d0, e0) = block(b);
            acc0 = _mm256_fmadd_ps(s0, d0, acc0);
            rest = _mm256_add_ps(rest, e0);
        }
    }
    hsum256(_mm256_add_ps(acc0, acc1)) + _mm256_cvtss_f32(rest)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_q4_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (q - 8) x: the offset term is -8 dw sx per block.
    // SAFETY: p points at a whole Q4_0 block (checked in dot_q4).
    unsafe {
        dot_q4(w, 18, qs, d, s, |b, p| {
            _mm256_mul_ps(f16x8(u16_at(p)), _mm256_set1_ps(-8.0 * s[b]))
        })
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_q4_1(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // SAFETY: p points at a whole Q4_1 block (checked in dot_q4).
    unsafe {
        dot_q4(w, 20, qs, d, s, |b, p| {
            _mm256_mul_ps(f16x8(u16_at(p.add(2))), _mm256_set1_ps(s[b]))
        })
    }
}

/// q4_z: dw (dx · dot(q, xq) − z · sx) per block, two blocks per step (as `dot_q4`); the
/// f16 bits of dw are `(sd >> 1) & 0x7FC0` (times 2^-8, applied at the end).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_q4_z(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 18, qs, d, s);
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    // Every lane of `offset` holds the same running sum of dw * z * sx.
    let mut offset = _mm256_setzero_ps();
    let mut b = 0;
    // SAFETY: `blocks` checked that blocks 0..nb of w (18 bytes each) and qs exist.
    unsafe {
        let block = |b: usize| {
            let p = w.as_ptr().add(18 * b);
            let sd = u16_at(p);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = dp(nibbles(p.add(2)), xq);
            let dw = f16x8((sd >> 1) & 0x7FC0);
            let z = (sd & 0x7F) as f32 * 0.125;
            (
                _mm256_mul_ps(dw, _mm256_set1_ps(d[b])),
                dot,
                _mm256_mul_ps(dw, _mm256_set1_ps(z * s[b])),
            )
        };
        while b + 2 <= nb {
            let (s0, d0, e0) = block(b);
            let (s1, d1, e1) = block(b + 1);
            acc0 = _mm256_fmadd_ps(s0, d0, acc0);
            acc1 = _mm256_fmadd_ps(s1, d1, acc1);
            offset = _mm256_add_ps(offset, _mm256_add_ps(e0, e1));
            b += 2;
        }
        if b < nb {
            let (s0, d0, e0) = block(b);
            acc0 = _mm256_fmadd_ps(s0, d0, acc0);
            offset = _mm256_add_ps(offset, e0);
        }
    }
    // The 2^-8 scale shift of q4_z, applied once (exact: a power of two).
    (hsum256(_mm256_add_ps(acc0, acc1)) - _mm256_cvtss_f32(offset))
        * ember_format::blocks::Q4Z_SHIFT
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot_float(n: usize, x: &[f32], load: impl Fn(usize) -> __m512) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 16k + 16 <= n <= x.len(), checked by the callers.
            let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add(i + 16 * k)) };
            *a = _mm512_fmadd_ps(load(i + 16 * k), xv, *a);
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: as above.
        let xv = unsafe { _mm512_loadu_ps(x.as_ptr().add(i)) };
        acc[0] = _mm512_fmadd_ps(load(i), xv, acc[0]);
        i += 16;
    }
    let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(sum)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 4 * n);
    let wp = w.as_ptr() as *const f32;
    // SAFETY: loader indices stay below n - 15; w holds n floats.
    let main = unsafe { dot_float(n, x, |i| _mm512_loadu_ps(wp.add(i))) };
    let full = n / 16 * 16;
    main + scalar::dot_f32(&w[4 * full..4 * n], &x[full..])
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 2 * n);
    let wp = w.as_ptr();
    // SAFETY: loader indices stay below n - 15; w holds n halves.
    let main = unsafe {
        dot_float(n, x, |i| {
            _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(2 * i) as *const __m256i))
        })
    };
    let full = n / 16 * 16;
    main + scalar::dot_f16(&w[2 * full..2 * n], &x[full..])
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 2 * n);
    let wp = w.as_ptr();
    // SAFETY: loader indices stay below n - 15; w holds n halves.
    let main = unsafe {
        dot_float(n, x, |i| {
            let h = _mm256_loadu_si256(wp.add(2 * i) as *const __m256i);
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        })
    };
    let full = n / 16 * 16;
    main + scalar::dot_bf16(&w[2 * full..2 * n], &x[full..])
}

/// Lane masks of the NV 16-float vectors covering `rem` floats (all lanes past rem off).
#[inline]
fn masks16<const NV: usize>(rem: usize) -> [__mmask16; NV] {
    core::array::from_fn(|c| {
        let left = rem.saturating_sub(16 * c).min(16);
        ((1u32 << left) - 1) as __mmask16
    })
}

/// Keys `rows[j] = base + j·stride`, j < count ≤ 16, against the NV-vector block of q at
/// `qp` (lanes past `masks` off), accumulated into acc[j].
///
/// # Safety
/// Each of the count rows must hold the masked-on lanes of the block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn scores_block<const NV: usize>(
    qp: *const f32,
    masks: [__mmask16; NV],
    base: *const f32,
    stride: usize,
    count: usize,
    acc: &mut [__m512; 16],
) {
    // SAFETY: masked-off lanes are not read; the caller vouches for the rest.
    unsafe {
        let qv: [__m512; NV] =
            core::array::from_fn(|c| _mm512_maskz_loadu_ps(masks[c], qp.add(16 * c)));
        for (j, a) in acc.iter_mut().enumerate() {
            if j < count {
                let row = base.add(j * stride);
                for c in 0..NV {
                    let kv = _mm512_maskz_loadu_ps(masks[c], row.add(16 * c));
                    *a = _mm512_fmadd_ps(qv[c], kv, *a);
                }
            }
        }
    }
}

/// Lane j = the horizontal sum of v[j]: a transpose-and-add tree, 46 shuffles and adds for
/// the 16 sums instead of 16 separate reductions.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn hsum16(v: &[__m512; 16]) -> __m512 {
    // Lanes 0-7: v[2i]'s halves added; lanes 8-15: v[2i+1]'s.
    let c: [__m512; 8] = core::array::from_fn(|i| {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        )
    });
    // 128-bit block b of d[i]: four partial sums of key 4i + b.
    let d: [__m512; 4] = core::array::from_fn(|i| {
        let (a, b) = (c[2 * i], c[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
        )
    });
    // Block b of e[i]: two partials of key 8i + b, then two of key 8i + 4 + b.
    let e: [__m512; 2] = core::array::from_fn(|i| {
        let (a, b) = (d[2 * i], d[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
        )
    });
    // Block b: the sums of keys b, 4 + b, 8 + b, 12 + b.
    let f = _mm512_add_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(e[0], e[1]),
        _mm512_shuffle_ps::<0b11_01_11_01>(e[0], e[1]),
    );
    // Lane 4b + i holds key 4i + b: transpose back.
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_permutexvar_ps(idx, f)
}

/// scores[p] = scale · q · keys[p·stride + offset..][..hs]: 16 keys at a time, q in registers
/// in blocks of 64 floats, one reduction tree per 16 keys.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
    let vscale = _mm512_set1_ps(scale);
    let mut p0 = 0;
    while p0 < n {
        let count = (n - p0).min(16);
        let mut acc = [_mm512_setzero_ps(); 16];
        let mut d0 = 0;
        while d0 < hs {
            let rem = hs - d0;
            // SAFETY: rows p0..p0+count exist (check_rows: (n−1)·stride + offset + hs ≤
            // keys.len()), and the masks keep every load within d0..hs of q and of each row.
            unsafe {
                let qp = q.as_ptr().add(d0);
                let base = keys.as_ptr().add(p0 * stride + offset + d0);
                match rem.div_ceil(16) {
                    1 => scores_block::<1>(qp, masks16(rem), base, stride, count, &mut acc),
                    2 => scores_block::<2>(qp, masks16(rem), base, stride, count, &mut acc),
                    _ => scores_block::<4>(qp, masks16(rem), base, stride, count, &mut acc),
                }
            }
            d0 += 64;
        }
        let m = ((1u32 << count) - 1) as __mmask16;
        // SAFETY: lanes p0..p0+count lie within scores.
        unsafe {
            _mm512_mask_storeu_ps(
                scores.as_mut_ptr().add(p0),
                m,
                _mm512_mul_ps(hsum16(&acc), vscale),
            )
        };
        p0 += 16;
    }
}

/// out[..16·NV] (lanes past `masks` off) = Σ_p scores[p] · rows p from `base`, summed in
/// position order (the order of one axpy per position).
///
/// # Safety
/// Each of the scores.len() rows `base + p·stride` must hold the masked-on lanes; so must out.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn values_block<const NV: usize>(
    scores: &[f32],
    base: *const f32,
    stride: usize,
    masks: [__mmask16; NV],
    out: *mut f32,
) {
    let mut acc = [_mm512_setzero_ps(); NV];
    // SAFETY: rows p < scores.len() and out hold the masked-on lanes (the caller's promise);
    // masked-off lanes are not touched.
    unsafe {
        let mut row = base;
        for &s in scores {
            let w = _mm512_set1_ps(s);
            for c in 0..NV {
                let v = _mm512_maskz_loadu_ps(masks[c], row.add(16 * c));
                acc[c] = _mm512_fmadd_ps(w, v, acc[c]);
            }
            row = row.wrapping_add(stride);
        }
        for c in 0..NV {
            _mm512_mask_storeu_ps(out.add(16 * c), masks[c], acc[c]);
        }
    }
}

/// out[d] = Σ_p scores[p] · values[p·stride + offset + d]: out kept in registers across all
/// positions, in blocks of up to 64 floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn attn_values(
    scores: &[f32],
    values: &[f32],
    stride: usize,
    offset: usize,
    out: &mut [f32],
) {
    let hs = out.len();
    scalar::check_rows(values.len(), scores.len(), stride, offset, hs);
    if scores.is_empty() {
        out.fill(0.0);
        return;
    }
    let mut d0 = 0;
    while d0 < hs {
        let rem = hs - d0;
        // SAFETY: every row p < n holds d0..hs at offset (check_rows), out holds d0..hs, and
        // the masks stop at hs.
        unsafe {
            let base = values.as_ptr().add(offset + d0);
            let o = out.as_mut_ptr().add(d0);
            match rem.div_ceil(16) {
                1 => values_block::<1>(scores, base, stride, masks16(rem), o),
                2 => values_block::<2>(scores, base, stride, masks16(rem), o),
                _ => values_block::<4>(scores, base, stride, masks16(rem), o),
            }
        }
        d0 += 64;
    }
}

/// The 5-bit, K-quant and IQ4 dots are the AVX2 ones (maddubs): decode streams these weights at
/// memory speed either way.
macro_rules! from_avx2 {
    ($($name:ident),*) => {$(
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        pub unsafe fn $name(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
            // SAFETY: AVX2, FMA and F16C are part of this function's feature set.
            unsafe { super::avx2::$name(w, qs, d, s) }
        }
    )*};
}
from_avx2!(dot_q5_0, dot_q5_1, dot_q4_k, dot_q5_k, dot_q6_k, dot_iq4_nl, dot_iq4_xs);
