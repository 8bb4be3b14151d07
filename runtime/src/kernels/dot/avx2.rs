//! AVX2 + FMA + F16C versions of `scalar.rs`. Integer block dots use the maddubs idiom:
//! unsigned weights (or |w| with the sign moved onto x) times signed activations.
// Blocks are addressed by index into raw pointers and several slices at once.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::scalar;

/// The feature set every function here needs; callers check it before calling.
pub const FEATURES: &str = "avx2,fma,f16c";

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_ps(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// An f16 scale broadcast to eight f32 lanes. (Converting through a scalar register made
/// the compiler merge into a live register: a false dependency chaining every block.)
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16x8(bits: u16) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(bits as i16))
}

/// Reads the little-endian u16 at `p`.
#[inline]
unsafe fn u16_at(p: *const u8) -> u16 {
    // SAFETY: the caller guarantees two readable bytes.
    unsafe { (p as *const u16).read_unaligned() }
}

/// 16 bytes of nibbles -> 32 unsigned bytes in element order (low nibbles, then high).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at p.
    let b = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let m = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(b, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(b), m);
    _mm256_set_m128i(hi, lo)
}

/// Sum of u8 × i8 products over 32 lanes, as eight i32 partial sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_us8(u: __m256i, s: __m256i) -> __m256 {
    let p16 = _mm256_maddubs_epi16(u, s);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_q8(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    let nb = x.len() / 32;
    assert!(qs.len() >= nb * 32 && d.len() >= nb && s.len() >= nb);
    let sign = _mm256_set1_ps(-0.0);
    for b in 0..nb {
        // SAFETY: block b lies within x (nb = x.len() / 32) and qs (checked above).
        unsafe {
            let p = x.as_ptr().add(32 * b);
            let v = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            let mut m = _mm256_andnot_ps(sign, v[0]);
            for vi in &v[1..] {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, *vi));
            }
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m4 = _mm_max_ss(m4, _mm_shuffle_ps::<0b01>(m4, m4));
            let amax = _mm_cvtss_f32(m4);
            let scale = amax / 127.0;
            let inv = _mm256_set1_ps(if scale > 0.0 { 1.0 / scale } else { 0.0 });
            let i = [
                _mm256_cvtps_epi32(_mm256_mul_ps(v[0], inv)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[1], inv)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[2], inv)),
                _mm256_cvtps_epi32(_mm256_mul_ps(v[3], inv)),
            ];
            let sum = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
            let a = _mm256_packs_epi32(i[0], i[1]);
            let c = _mm256_packs_epi32(i[2], i[3]);
            let q = _mm256_packs_epi16(a, c);
            let q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(qs.as_mut_ptr().add(32 * b) as *mut __m256i, q);
            d[b] = scale;
            s[b] = scale * hsum_epi32(sum) as f32;
        }
    }
}

/// Checks the lengths every quantized dot relies on; returns the block count.
#[inline]
fn blocks(w: &[u8], block_bytes: usize, qs: &[i8], d: &[f32], s: &[f32]) -> usize {
    let nb = d.len();
    assert!(w.len() >= nb * block_bytes && qs.len() >= nb * 32 && s.len() >= nb);
    nb
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q8_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 34, qs, d, s);
    let mut acc = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: `blocks` checked that block b of w (34 bytes) and of qs (32) exist.
        unsafe {
            let p = w.as_ptr().add(34 * b);
            let wq = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = mul_sum_us8(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq));
            let scale = _mm256_mul_ps(f16x8(u16_at(p)), _mm256_set1_ps(d[b]));
            acc = _mm256_fmadd_ps(scale, dot, acc);
        }
    }
    hsum_ps(acc)
}

/// Shared by Q4_0 and Q4_1: the sum over blocks of dw·dx·dot(nibbles, xq), plus the sum of
/// `offset(p)`·sx, where `offset` gives a block's per-element offset broadcast to 8 lanes
/// (every lane of that running sum holds the same value).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4(
    w: &[u8],
    block_bytes: usize,
    qs: &[i8],
    d: &[f32],
    s: &[f32],
    offset: impl Fn(*const u8) -> __m256,
) -> f32 {
    let nb = blocks(w, block_bytes, qs, d, s);
    let mut acc = _mm256_setzero_ps();
    let mut offsets = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: `blocks` checked that block b of w and of qs (32 bytes) exist.
        unsafe {
            let p = w.as_ptr().add(block_bytes * b);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = mul_sum_us8(nibbles(p.add(block_bytes - 16)), xq);
            let dw = f16x8(u16_at(p));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(d[b])), dot, acc);
            offsets = _mm256_fmadd_ps(offset(p), _mm256_set1_ps(s[b]), offsets);
        }
    }
    hsum_ps(acc) + _mm256_cvtss_f32(offsets)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (q - 8) x: the offset of each element is -8 dw.
    // SAFETY: `dot_q4` passes p pointing at a whole 18-byte block.
    unsafe {
        dot_q4(w, 18, qs, d, s, |p| {
            _mm256_mul_ps(f16x8(u16_at(p)), _mm256_set1_ps(-8.0))
        })
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4_1(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (dw q + m) x: the offset of each element is the block minimum m.
    // SAFETY: `dot_q4` passes p pointing at a whole 20-byte block.
    unsafe { dot_q4(w, 20, qs, d, s, |p| f16x8(u16_at(p.add(2)))) }
}

/// q4_z: dw (dx · dot(q, xq) − z · sx) per block; dw is the f16 `(sd >> 1) & 0x7FC0` times
/// 2^-8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4_z(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 18, qs, d, s);
    let mut acc = _mm256_setzero_ps();
    // Every lane of `offset` holds the same running sum of dw * z * sx.
    let mut offset = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: `blocks` checked that block b of w (18 bytes) and of qs (32) exist.
        unsafe {
            let p = w.as_ptr().add(18 * b);
            let sd = u16_at(p);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = mul_sum_us8(nibbles(p.add(2)), xq);
            let dw = f16x8((sd >> 1) & 0x7FC0);
            let z = (sd & 0x7F) as f32 * 0.125;
            acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(d[b])), dot, acc);
            offset = _mm256_fmadd_ps(dw, _mm256_set1_ps(z * s[b]), offset);
        }
    }
    // The 2^-8 scale shift of q4_z, applied once (exact: a power of two).
    (hsum_ps(acc) - _mm256_cvtss_f32(offset)) * ember_format::blocks::Q4Z_SHIFT
}

/// Float dot over 32 elements per step with four accumulators; `load(i)` gives 8 weights.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_float(n: usize, x: &[f32], load: impl Fn(usize) -> __m256) -> __m256 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8k + 8 <= n <= x.len(), checked by the callers.
            let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * k)) };
            *a = _mm256_fmadd_ps(load(i + 8 * k), xv, *a);
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: as above.
        let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(i)) };
        acc[0] = _mm256_fmadd_ps(load(i), xv, acc[0]);
        i += 8;
    }
    _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 4 * n);
    let wp = w.as_ptr() as *const f32;
    // SAFETY: every index passed to the loader is below n, and w holds n floats.
    let acc = unsafe { dot_float(n, x, |i| _mm256_loadu_ps(wp.add(i))) };
    let full = n / 8 * 8;
    hsum_ps(acc) + scalar::dot_f32(&w[4 * full..4 * n], &x[full..])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 2 * n);
    let wp = w.as_ptr();
    // SAFETY: every index passed to the loader is below n - 7, and w holds n halves.
    let acc = unsafe {
        dot_float(n, x, |i| {
            _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * i) as *const __m128i))
        })
    };
    let full = n / 8 * 8;
    hsum_ps(acc) + scalar::dot_f16(&w[2 * full..2 * n], &x[full..])
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    let n = x.len();
    assert!(w.len() >= 2 * n);
    let wp = w.as_ptr();
    // SAFETY: every index passed to the loader is below n - 7, and w holds n halves.
    let acc = unsafe {
        dot_float(n, x, |i| {
            let h = _mm_loadu_si128(wp.add(2 * i) as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        })
    };
    let full = n / 8 * 8;
    hsum_ps(acc) + scalar::dot_bf16(&w[2 * full..2 * n], &x[full..])
}

/// For each of the NV 8-float vectors covering `rem` floats: whether it is full, and the
/// `vmaskmovps` mask of its lanes below rem.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn masks8<const NV: usize>(rem: usize) -> [(bool, __m256i); NV] {
    core::array::from_fn(|c| {
        let left = rem.saturating_sub(8 * c).min(8);
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        (
            left == 8,
            _mm256_cmpgt_epi32(_mm256_set1_epi32(left as i32), lanes),
        )
    })
}

/// Eight floats at p: a plain load if `full`, else only the lanes of `mask` (others 0).
///
/// # Safety
/// p must hold 8 floats if full, else the lanes of mask.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(p: *const f32, (full, mask): (bool, __m256i)) -> __m256 {
    // SAFETY: the caller's promise; vmaskmovps does not touch masked-off lanes.
    unsafe {
        if full {
            _mm256_loadu_ps(p)
        } else {
            _mm256_maskload_ps(p, mask)
        }
    }
}

/// Keys `base + j·stride`, j < count ≤ 8, against the NV-vector block of q at qp.
///
/// # Safety
/// Each of the count rows, and q, must hold the lanes of `masks`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scores_block<const NV: usize>(
    qp: *const f32,
    masks: [(bool, __m256i); NV],
    base: *const f32,
    stride: usize,
    count: usize,
    acc: &mut [__m256; 8],
) {
    // SAFETY: the caller's promise.
    unsafe {
        let qv: [__m256; NV] = core::array::from_fn(|c| load8(qp.add(8 * c), masks[c]));
        for (j, a) in acc.iter_mut().enumerate() {
            if j < count {
                let row = base.add(j * stride);
                for c in 0..NV {
                    *a = _mm256_fmadd_ps(qv[c], load8(row.add(8 * c), masks[c]), *a);
                }
            }
        }
    }
}

/// Lane j = the horizontal sum of v[j]: one hadd tree for the eight.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum8(v: &[__m256; 8]) -> __m256 {
    let h01 = _mm256_hadd_ps(v[0], v[1]);
    let h23 = _mm256_hadd_ps(v[2], v[3]);
    let h45 = _mm256_hadd_ps(v[4], v[5]);
    let h67 = _mm256_hadd_ps(v[6], v[7]);
    // Each 128-bit half: partial sums of keys 0-3 (resp. 4-7).
    let lo = _mm256_hadd_ps(h01, h23);
    let hi = _mm256_hadd_ps(h45, h67);
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(lo, hi),
        _mm256_permute2f128_ps::<0x31>(lo, hi),
    )
}

/// scores[p] = scale · q · keys[p·stride + offset..][..hs]: 8 keys at a time, q in registers
/// in blocks of 32 floats, one reduction tree per 8 keys.
#[target_feature(enable = "avx2,fma,f16c")]
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
    let vscale = _mm256_set1_ps(scale);
    let mut p0 = 0;
    while p0 < n {
        let count = (n - p0).min(8);
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut d0 = 0;
        while d0 < hs {
            let rem = hs - d0;
            // SAFETY: rows p0..p0+count exist (check_rows: (n−1)·stride + offset + hs ≤
            // keys.len()), and the masks keep every load within d0..hs of q and of each row.
            unsafe {
                let qp = q.as_ptr().add(d0);
                let base = keys.as_ptr().add(p0 * stride + offset + d0);
                match rem.div_ceil(8) {
                    1 => scores_block::<1>(qp, masks8(rem), base, stride, count, &mut acc),
                    2 => scores_block::<2>(qp, masks8(rem), base, stride, count, &mut acc),
                    3 => scores_block::<3>(qp, masks8(rem), base, stride, count, &mut acc),
                    _ => scores_block::<4>(qp, masks8(rem), base, stride, count, &mut acc),
                }
            }
            d0 += 32;
        }
        let s = _mm256_mul_ps(hsum8(&acc), vscale);
        if count == 8 {
            // SAFETY: p0 + 8 <= n = scores.len().
            unsafe { _mm256_storeu_ps(scores.as_mut_ptr().add(p0), s) };
        } else {
            let mut tmp = [0f32; 8];
            // SAFETY: tmp holds 8 floats.
            unsafe { _mm256_storeu_ps(tmp.as_mut_ptr(), s) };
            scores[p0..].copy_from_slice(&tmp[..count]);
        }
        p0 += 8;
    }
}

/// out[..8·NV] (lanes of `masks`) = Σ_p scores[p] · rows p from `base`.
///
/// # Safety
/// Each of the scores.len() rows `base + p·stride` must hold the lanes of masks; so must out.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn values_block<const NV: usize>(
    scores: &[f32],
    base: *const f32,
    stride: usize,
    masks: [(bool, __m256i); NV],
    out: *mut f32,
) {
    let mut acc = [_mm256_setzero_ps(); NV];
    // SAFETY: the caller's promise; masked-off lanes are not touched.
    unsafe {
        let mut row = base;
        for &s in scores {
            let w = _mm256_set1_ps(s);
            for c in 0..NV {
                acc[c] = _mm256_fmadd_ps(w, load8(row.add(8 * c), masks[c]), acc[c]);
            }
            row = row.wrapping_add(stride);
        }
        for c in 0..NV {
            let (full, mask) = masks[c];
            if full {
                _mm256_storeu_ps(out.add(8 * c), acc[c]);
            } else {
                _mm256_maskstore_ps(out.add(8 * c), mask, acc[c]);
            }
        }
    }
}

/// out[d] = Σ_p scores[p] · values[p·stride + offset + d]: out kept in registers across all
/// positions, in blocks of up to 64 floats.
#[target_feature(enable = "avx2,fma,f16c")]
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
            match rem.div_ceil(8) {
                1 => values_block::<1>(scores, base, stride, masks8(rem), o),
                2 => values_block::<2>(scores, base, stride, masks8(rem), o),
                3 | 4 => values_block::<4>(scores, base, stride, masks8(rem), o),
                _ => values_block::<8>(scores, base, stride, masks8(rem), o),
            }
        }
        d0 += 64;
    }
}

// ---- 5-bit and K-quant blocks (the types of llama.cpp's Q4_K_M / Q5_K_M / Q6_K files) ----

/// The 32 bits of `bits` as 32 bytes: 0x10 where bit j is set, 0 elsewhere (byte j).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn high_bits_x16(bits: u32) -> __m256i {
    // Byte j takes byte j/8 of `bits`; OR-ing every bit except bit j%8 makes it all ones
    // exactly when bit j is set.
    let shuffle = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuffle);
    let others = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(bytes, others), _mm256_set1_epi64x(-1));
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// Q5_0 / Q5_1: 32 unsigned 5-bit values of the block at p (qh at `qh`, nibbles at `qs`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_values(p: *const u8, qh: usize, qs: usize) -> __m256i {
    // SAFETY: the caller guarantees a whole block at p.
    unsafe {
        let h = (p.add(qh) as *const u32).read_unaligned();
        _mm256_or_si256(nibbles(p.add(qs)), high_bits_x16(h))
    }
}

/// Q5_0: dw (dx · Σ v·x − 16 sx) per block, v = 5-bit value (0..31).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q5_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 22, qs, d, s);
    let (mut acc, mut offset) = (_mm256_setzero_ps(), 0f32);
    // SAFETY: `blocks` checked that blocks 0..nb of w (22 bytes each) and qs exist.
    unsafe {
        for b in 0..nb {
            let p = w.as_ptr().add(22 * b);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = mul_sum_us8(q5_values(p, 2, 6), xq);
            let dw = f16x8(u16_at(p));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(d[b])), dot, acc);
            offset += _mm256_cvtss_f32(dw) * 16.0 * s[b];
        }
    }
    hsum_ps(acc) - offset
}

/// Q5_1: dw · dx · Σ v·x + m · sx per block.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q5_1(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 24, qs, d, s);
    let (mut acc, mut offset) = (_mm256_setzero_ps(), 0f32);
    // SAFETY: `blocks` checked that blocks 0..nb of w (24 bytes each) and qs exist.
    unsafe {
        for b in 0..nb {
            let p = w.as_ptr().add(24 * b);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = mul_sum_us8(q5_values(p, 4, 8), xq);
            let dw = f16x8(u16_at(p));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(d[b])), dot, acc);
            offset += _mm256_cvtss_f32(f16x8(u16_at(p.add(2)))) * s[b];
        }
    }
    hsum_ps(acc) + offset
}

/// The 6-bit scales and mins of a Q4_K/Q5_K super-block's 8 sub-blocks.
#[inline]
fn scales_mins_k4(scales: &[u8; 12]) -> ([f32; 8], [f32; 8]) {
    let (mut sc, mut m) = ([0f32; 8], [0f32; 8]);
    for j in 0..8 {
        let (a, b) = ember_format::blocks::scale_min_k4(j, scales);
        sc[j] = a as f32;
        m[j] = b as f32;
    }
    (sc, m)
}

/// Q4_K (144 bytes) and Q5_K (176 bytes) per 256 weights: 8 sub-blocks of 32, each meeting
/// one activation block: d·sc_j · dx_j · Σ v·x − dmin·m_j · sx_j. `qh`: the Q5_K high bits.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_k(w: &[u8], block_bytes: usize, qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 0, qs, d, s) / 8;
    assert!(w.len() >= nb * block_bytes && d.len() == 8 * nb);
    let five = block_bytes == 176;
    let quants = if five { 48 } else { 16 };
    let low = _mm256_set1_epi8(0x0F);
    let (mut acc, mut offset) = (_mm256_setzero_ps(), 0f32);
    // SAFETY: the assert above checked blocks 0..nb of w and their 256 activations.
    unsafe {
        for b in 0..nb {
            let p = w.as_ptr().add(block_bytes * b);
            let (dall, dmin) = (
                _mm256_cvtss_f32(f16x8(u16_at(p))),
                _mm256_cvtss_f32(f16x8(u16_at(p.add(2)))),
            );
            let scales = &*(p.add(4) as *const [u8; 12]);
            let (sc, m) = scales_mins_k4(scales);
            let qh = if five {
                _mm256_loadu_si256(p.add(16) as *const __m256i)
            } else {
                _mm256_setzero_si256()
            };
            for pair in 0..4 {
                let q = _mm256_loadu_si256(p.add(quants + 32 * pair) as *const __m256i);
                for half in 0..2 {
                    let j = 2 * pair + half;
                    let mut v = if half == 0 {
                        _mm256_and_si256(q, low)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16::<4>(q), low)
                    };
                    if five {
                        // Bit j of qh[l] is bit 4 of value l of sub-block j.
                        let bit = _mm256_and_si256(
                            _mm256_srl_epi16(qh, _mm_cvtsi32_si128(j as i32)),
                            _mm256_set1_epi8(1),
                        );
                        v = _mm256_or_si256(v, _mm256_slli_epi16::<4>(bit));
                    }
                    let a = 8 * b + j;
                    let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * a) as *const __m256i);
                    let dot = mul_sum_us8(v, xq);
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(dall * sc[j] * d[a]), dot, acc);
                    offset += dmin * m[j] * s[a];
                }
            }
        }
    }
    hsum_ps(acc) - offset
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q4_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // SAFETY: same features; dot_k checks the lengths.
    unsafe { dot_k(w, 144, qs, d, s) }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q5_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // SAFETY: same features; dot_k checks the lengths.
    unsafe { dot_k(w, 176, qs, d, s) }
}

/// Q6_K (210 bytes per 256 weights: ql[128], qh[64], scales[16] i8, d f16): value
/// (q − 32) with a scale per 16. Each activation block covers two scales: Σ (q − 32)·x per
/// 16 is maddubs(q, x) − maddubs(32, x), weighted by the two scales in one madd.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_q6_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 0, qs, d, s) / 8;
    assert!(w.len() >= nb * 210 && d.len() == 8 * nb);
    let low = _mm256_set1_epi8(0x0F);
    let three = _mm256_set1_epi8(3);
    let m32 = _mm256_set1_epi8(32);
    let mut acc = _mm256_setzero_ps();
    // SAFETY: the assert above checked blocks 0..nb of w and their 256 activations.
    unsafe {
        for b in 0..nb {
            let p = w.as_ptr().add(210 * b);
            let scales = p.add(192) as *const i8;
            let dw = _mm256_cvtss_f32(f16x8(u16_at(p.add(208))));
            for h in 0..2 {
                let ql0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
                let ql1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
                let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                let hi = |shift: i32| {
                    let bits =
                        _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), three);
                    _mm256_slli_epi16::<4>(bits)
                };
                let values = [
                    _mm256_or_si256(_mm256_and_si256(ql0, low), hi(0)),
                    _mm256_or_si256(_mm256_and_si256(ql1, low), hi(2)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low), hi(4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low), hi(6)),
                ];
                for (k, v) in values.into_iter().enumerate() {
                    let a = 8 * b + 4 * h + k;
                    let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * a) as *const __m256i);
                    let p16 = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(v, xq),
                        _mm256_maddubs_epi16(m32, xq),
                    );
                    let sub = 8 * h + 2 * k;
                    let sc = _mm256_set_m128i(
                        _mm_set1_epi16(*scales.add(sub + 1) as i16),
                        _mm_set1_epi16(*scales.add(sub) as i16),
                    );
                    let dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, sc));
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * d[a]), dot, acc);
                }
            }
        }
    }
    hsum_ps(acc)
}

// ---- IQ4 (non-linear 4-bit grid) ----

/// The IQ4 grid values of the 32 nibbles at p, in element order: one table shuffle.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq4_values(p: *const u8) -> __m256i {
    let g = &ember_format::blocks::IQ4_GRID;
    // SAFETY: the grid is 16 bytes; the caller guarantees 16 readable bytes at p.
    unsafe {
        let grid = _mm_loadu_si128(g.as_ptr() as *const __m128i);
        _mm256_shuffle_epi8(_mm256_set_m128i(grid, grid), nibbles(p))
    }
}

/// Σ v·x over 32 signed grid values v and activations x: |v| times x with v's sign moved
/// onto x (|v| ≤ 127, so pairs stay within i16).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn signed_dot(v: __m256i, x: __m256i) -> __m256 {
    mul_sum_us8(_mm256_abs_epi8(v), _mm256_sign_epi8(x, v))
}

/// IQ4_NL: dw · dx · Σ grid[q]·x per block.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_iq4_nl(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 18, qs, d, s);
    let mut acc = _mm256_setzero_ps();
    // SAFETY: `blocks` checked that blocks 0..nb of w (18 bytes each) and qs exist.
    unsafe {
        for b in 0..nb {
            let p = w.as_ptr().add(18 * b);
            let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * b) as *const __m256i);
            let dot = signed_dot(iq4_values(p.add(2)), xq);
            let scale = _mm256_mul_ps(f16x8(u16_at(p)), _mm256_set1_ps(d[b]));
            acc = _mm256_fmadd_ps(scale, dot, acc);
        }
    }
    hsum_ps(acc)
}

/// IQ4_XS: d · (ls − 32) · dx · Σ grid[q]·x per sub-block of 32.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_iq4_xs(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = blocks(w, 0, qs, d, s) / 8;
    assert!(w.len() >= nb * 136 && d.len() == 8 * nb);
    let mut acc = _mm256_setzero_ps();
    // SAFETY: the assert above checked blocks 0..nb of w and their 256 activations.
    unsafe {
        for b in 0..nb {
            let p = w.as_ptr().add(136 * b);
            let dw = _mm256_cvtss_f32(f16x8(u16_at(p)));
            let (sh, sl) = (u16_at(p.add(2)), p.add(4));
            for ib in 0..8 {
                let lo = (*sl.add(ib / 2) >> (4 * (ib % 2))) & 0x0F;
                let ls = (lo | ((((sh >> (2 * ib)) & 3) as u8) << 4)) as i32 - 32;
                let a = 8 * b + ib;
                let xq = _mm256_loadu_si256(qs.as_ptr().add(32 * a) as *const __m256i);
                let dot = signed_dot(iq4_values(p.add(8 + 16 * ib)), xq);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * ls as f32 * d[a]), dot, acc);
            }
        }
    }
    hsum_ps(acc)
}
