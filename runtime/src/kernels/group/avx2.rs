//! AVX2 rows16 kernels: a group is two halves of 8 rows, one lane per row (a 64-byte chunk
//! is rows 0-7 in its first 32 bytes, rows 8-15 in the next). Without VNNI each chunk meets
//! the broadcast 4 activation bytes in `maddubs` (u8 × i8 pairs into i16) and `madd` (i16
//! pairs into i32), so the 4 products of a row land in its lane with no shuffle. Float groups
//! (column-major) are one broadcast FMA per token and half column, at the end.
// Tokens and row ranges index several arrays at once.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::{check, check_float, GROUP, GROUP_TOKENS};
use crate::kernels::ActRow;
use ember_format::DType;

type Out<const T: usize> = [[f32; GROUP]; T];

use super::kind::{dtype, five, head, qh, tile_bytes, Q4Z, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, SPREAD};

/// 8 f16 values at p as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16x8(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p as *const __m128i) })
}

/// 4 activation bytes (columns 4k..4k+4 of the block at x) in every lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bcast(x: *const i8, k: usize) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes at x and k < 8.
    _mm256_set1_epi32(unsafe { (x.add(4 * k) as *const i32).read_unaligned() })
}

/// One half's scales: (dw, mw) with mw the factor of sx (see `group`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scales<const K: u8>(p: *const u8) -> (__m256, __m256) {
    // SAFETY: the caller guarantees the half's scale fields at p (and m at p + 32 for Q4_1).
    unsafe {
        match K {
            Q4Z => {
                // sd = d9 << 7 | z: the scale is the f16 (sd >> 1) & 0x7FC0 times 2^-8.
                let sd = _mm_loadu_si128(p as *const __m128i);
                let bits = _mm_and_si128(_mm_srli_epi16::<1>(sd), _mm_set1_epi16(0x7FC0));
                let dw = _mm256_mul_ps(
                    _mm256_cvtph_ps(bits),
                    _mm256_set1_ps(ember_format::blocks::Q4Z_SHIFT),
                );
                let z = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_and_si128(
                    sd,
                    _mm_set1_epi16(0x7F),
                )));
                (
                    dw,
                    _mm256_mul_ps(dw, _mm256_mul_ps(z, _mm256_set1_ps(-0.125))),
                )
            }
            Q4_1 | Q5_1 => (f16x8(p), f16x8(p.add(32))),
            Q4_0 => {
                let dw = f16x8(p);
                (dw, _mm256_mul_ps(dw, _mm256_set1_ps(-8.0)))
            }
            Q5_0 => {
                let dw = f16x8(p);
                (dw, _mm256_mul_ps(dw, _mm256_set1_ps(-16.0)))
            }
            // Q8_0 is multiplied as signed q: no offset to take back.
            _ => (f16x8(p), _mm256_setzero_ps()),
        }
    }
}

/// The shared body: one group against T tokens. Per tile and row, with dot the integer sum
/// of the quants times the activation bytes:
/// result += dw·(dx·dot) + mw·sx, where sx = dx·Σx and mw is -8·dw (Q4_0), m (Q4_1, Q5_1),
/// -16·dw (Q5_0), -dw·z/8 (Q4_Z) or 0 (Q8_0: its q + 128 bytes go back to signed q, see
/// below). Q5 types OR their fifth bits into the nibbles (bit 4 of each byte).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group<const T: usize, const K: u8>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(dtype(K), w, a);
    let tb = tile_bytes(K);
    let nibble = _mm256_set1_epi8(0x0F);
    let flip = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    // acc[t][h]: rows 8h..8h+8 of token t.
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        super::prefetch_ahead(p, tb);
        // SAFETY: the quants follow the scales: 4 (Q4) or 8 (Q8_0) chunks of 64 bytes.
        let q = unsafe { p.add(head(K)) };
        for h in 0..2 {
            // SAFETY: the tile starts with 16 u16 scale fields (then 16 m for Q4_1).
            let (dw, mw) = unsafe { scales::<K>(p.add(16 * h)) };
            // wq[k]: rows 8h.. against activation bytes 4k..4k+4; Q8_0 keeps signed q.
            let mut wq = [_mm256_setzero_si256(); 8];
            for c in 0..4 {
                // SAFETY: chunks are 64 bytes, the half's 32 at offset 32h.
                unsafe {
                    if K == Q8_0 {
                        let v0 = _mm256_loadu_si256(q.add(128 * c + 32 * h) as *const __m256i);
                        let v1 = _mm256_loadu_si256(q.add(128 * c + 64 + 32 * h) as *const __m256i);
                        wq[2 * c] = _mm256_xor_si256(v0, flip);
                        wq[2 * c + 1] = _mm256_xor_si256(v1, flip);
                    } else {
                        // Low nibbles are columns 4c.., high ones 16 + 4c...
                        let v = _mm256_loadu_si256(q.add(64 * c + 32 * h) as *const __m256i);
                        wq[c] = _mm256_and_si256(v, nibble);
                        wq[c + 4] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
                    }
                }
            }
            if five(K) {
                // SAFETY: Q5 tiles hold qh_lo and qh_hi (16 u16 each) at qh(K); this half's
                // 8 rows are at 16h.
                let hbits = unsafe {
                    let at = p.add(qh(K) + 16 * h);
                    let lo = _mm256_cvtepu16_epi32(_mm_loadu_si128(at as *const __m128i));
                    let hi = _mm256_cvtepu16_epi32(_mm_loadu_si128(at.add(32) as *const __m128i));
                    _mm256_or_si256(lo, _mm256_slli_epi32::<16>(hi))
                };
                let spread = |shift: i32| {
                    let bits = _mm256_and_si256(
                        _mm256_srl_epi32(hbits, _mm_cvtsi32_si128(shift)),
                        _mm256_set1_epi32(0xF),
                    );
                    let bytes = _mm256_and_si256(
                        _mm256_mullo_epi32(bits, _mm256_set1_epi32(SPREAD as i32)),
                        _mm256_set1_epi32(0x0101_0101),
                    );
                    _mm256_slli_epi32::<4>(bytes)
                };
                for c in 0..4 {
                    wq[c] = _mm256_or_si256(wq[c], spread(4 * c as i32));
                    wq[c + 4] = _mm256_or_si256(wq[c + 4], spread(16 + 4 * c as i32));
                }
            }
            for t in 0..T {
                // SAFETY: check() verified 32·nb activation bytes.
                let x = unsafe { a[t].qs.as_ptr().add(32 * b) };
                let dot = if K == Q8_0 {
                    // u8 q + 128 times x could saturate maddubs (2·255·127 > 32767):
                    // |q| times x with q's sign moved onto x stays within 2·128·127.
                    let mut d = _mm256_setzero_si256();
                    for k in 0..8 {
                        // SAFETY: x points at a whole activation block.
                        let xk = unsafe { bcast(x, k) };
                        let pr = _mm256_maddubs_epi16(
                            _mm256_abs_epi8(wq[k]),
                            _mm256_sign_epi8(xk, wq[k]),
                        );
                        d = _mm256_add_epi32(d, _mm256_madd_epi16(pr, ones));
                    }
                    d
                } else {
                    // Nibble pairs are at most 2·15·128 = 3840, so all 8 sum in i16; 5-bit
                    // pairs (2·31·128 = 7936) only 4 at a time.
                    let per = if five(K) { 4 } else { 8 };
                    let mut d = _mm256_setzero_si256();
                    for k0 in (0..8).step_by(per) {
                        let mut s = _mm256_setzero_si256();
                        for k in k0..k0 + per {
                            // SAFETY: x points at a whole activation block.
                            let xk = unsafe { bcast(x, k) };
                            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(wq[k], xk));
                        }
                        d = _mm256_add_epi32(d, _mm256_madd_epi16(s, ones));
                    }
                    d
                };
                let u = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(a[t].d[b]));
                let mut v = _mm256_fmadd_ps(u, dw, acc[t][h]);
                if K != Q8_0 {
                    v = _mm256_fmadd_ps(mw, _mm256_set1_ps(a[t].s[b]), v);
                }
                acc[t][h] = v;
            }
        }
    }
    let mut out = [[0f32; GROUP]; T];
    for t in 0..T {
        // SAFETY: out[t] holds 16 f32.
        unsafe {
            _mm256_storeu_ps(out[t].as_mut_ptr(), acc[t][0]);
            _mm256_storeu_ps(out[t].as_mut_ptr().add(8), acc[t][1]);
        }
    }
    out
}

/// 8 rows of one column as f32, for element type E (0 f32, 1 f16, 2 bf16).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn half_column<const E: u8>(p: *const u8) -> __m256 {
    // SAFETY: the caller guarantees 8 elements at p.
    unsafe {
        match E {
            0 => _mm256_loadu_ps(p as *const f32),
            1 => _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
            _ => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
                _mm_loadu_si128(p as *const __m128i),
            ))),
        }
    }
}

/// T tokens (at most 4) against one column-major float group, both 8-row halves at once:
/// per column, two loads of 8 rows and two FMAs per token with its value broadcast. U sets
/// of accumulators (column k goes to set k mod U) keep 8 FMAs in flight when T is small;
/// the 2·T·U ≤ 8 accumulators, two weight vectors and a broadcast fit the 16 ymm registers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_pass<const T: usize, const U: usize, const E: u8>(
    p: *const u8,
    cols: usize,
    xs: [*const f32; T],
    out: &mut [[f32; GROUP]],
) {
    let e = if E == 0 { 4 } else { 2 };
    let step = GROUP * e;
    let mut acc = [[[_mm256_setzero_ps(); 2]; T]; U];
    let mut k = 0;
    while k + U <= cols {
        // The first pass over a group streams its weights from memory.
        super::prefetch_ahead(p.wrapping_add(k * step), U * step);
        for u in 0..U {
            // SAFETY: the caller guarantees cols columns of 16 elements at p and cols values
            // at each xs[t]; k + u < cols.
            unsafe {
                let c = p.add((k + u) * step);
                let w0 = half_column::<E>(c);
                let w1 = half_column::<E>(c.add(8 * e));
                for t in 0..T {
                    let b = _mm256_set1_ps(*xs[t].add(k + u));
                    acc[u][t][0] = _mm256_fmadd_ps(w0, b, acc[u][t][0]);
                    acc[u][t][1] = _mm256_fmadd_ps(w1, b, acc[u][t][1]);
                }
            }
        }
        k += U;
    }
    while k < cols {
        // SAFETY: as above; k < cols.
        unsafe {
            let c = p.add(k * step);
            let w0 = half_column::<E>(c);
            let w1 = half_column::<E>(c.add(8 * e));
            for t in 0..T {
                let b = _mm256_set1_ps(*xs[t].add(k));
                acc[0][t][0] = _mm256_fmadd_ps(w0, b, acc[0][t][0]);
                acc[0][t][1] = _mm256_fmadd_ps(w1, b, acc[0][t][1]);
            }
        }
        k += 1;
    }
    for t in 0..T {
        let (mut lo, mut hi) = (acc[0][t][0], acc[0][t][1]);
        for u in 1..U {
            lo = _mm256_add_ps(lo, acc[u][t][0]);
            hi = _mm256_add_ps(hi, acc[u][t][1]);
        }
        // SAFETY: out[t] holds 16 f32 (the caller passes at least T of them).
        unsafe {
            _mm256_storeu_ps(out[t].as_mut_ptr(), lo);
            _mm256_storeu_ps(out[t].as_mut_ptr().add(8), hi);
        }
    }
}

/// Any number of tokens, at most 4 per pass over the group (8 tokens × 2 halves of accumulators
/// alone would take all 16 registers); later passes find the group in cache. Measured
/// on 8 tokens: one pass spills and runs ~10% slower, the two 8-row halves one after the
/// other (8 accumulators each) are no faster and slower for bf16 and f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
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

super::entry_points!("avx2,fma,f16c");
