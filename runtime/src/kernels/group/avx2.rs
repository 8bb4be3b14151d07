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

use super::kind::{
    dtype, five, head, qh, tile_bytes, IQ4NL, IQ4XS, Q4K, Q4Z, Q4_0, Q4_1, Q5K, Q5_0, Q5_1, Q6K,
    Q8_0,
};

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
    let nibble = _mm256_set1_epi8(0x0F);
    let grid = iq4_grid();
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
            if K == IQ4NL {
                for v in wq.iter_mut() {
                    *v = _mm256_shuffle_epi8(grid, *v);
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
                // Chunk c of the low half needs bits 4c..4c+4 of each row's h (in byte c / 2),
                // of the high half bits 16 + 4c.. (byte 2 + c / 2): byte j of h broadcast
                // inside each row's lane, each byte's bit tested by compare, 0x10 where set
                // (no multiply).
                let byte = |j: i8| {
                    // Byte j of each 32-bit lane, in all four bytes of that lane.
                    let lanes = _mm256_broadcastsi128_si256(_mm_setr_epi32(
                        0,
                        0x0404_0404,
                        0x0808_0808,
                        0x0C0C_0C0C,
                    ));
                    let idx = _mm256_add_epi8(lanes, _mm256_set1_epi8(j));
                    _mm256_shuffle_epi8(hbits, idx)
                };
                let bits = [
                    _mm256_set1_epi32(0x0804_0201),
                    _mm256_set1_epi32(0x8040_2010u32 as i32),
                ];
                let sixteen = _mm256_set1_epi8(0x10);
                let fifth = |v: __m256i, bits: __m256i| {
                    let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
                    _mm256_and_si256(set, sixteen)
                };
                for j in 0..2 {
                    let (lo, hi) = (byte(j as i8), byte(2 + j as i8));
                    for (n, &bits) in bits.iter().enumerate() {
                        let c = 2 * j + n;
                        wq[c] = _mm256_or_si256(wq[c], fifth(lo, bits));
                        wq[c + 4] = _mm256_or_si256(wq[c + 4], fifth(hi, bits));
                    }
                }
            }
            for t in 0..T {
                // SAFETY: check() verified 32·nb activation bytes.
                let x = unsafe { a[t].qs.as_ptr().add(32 * b) };
                let dot = if K == Q8_0 || K == IQ4NL {
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
                if K != Q8_0 && K != IQ4NL {
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

/// The IQ4 grid (signed) in both 128-bit lanes: a nibble vector shuffled through it gives
/// the weights' values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn iq4_grid() -> __m256i {
    // SAFETY: the grid is 16 bytes.
    let g = unsafe { _mm_loadu_si128(ember_format::blocks::IQ4_GRID.as_ptr() as *const __m128i) };
    _mm256_set_m128i(g, g)
}

/// Σ_k w[k]·x[4k..4k+4] for the 8 rows of a half (one i32 lane each): unsigned weights of
/// at most `max` (15, 31 or 63) times the block's activation bytes, summed in i16 as many
/// at a time as cannot overflow (2·max·128 per product pair).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_u8<const N: usize>(
    w: &[__m256i; N],
    x: *const i8,
    first: usize,
    max: i32,
) -> __m256i {
    let per = (32767 / (2 * max * 128)).max(1) as usize;
    let ones = _mm256_set1_epi16(1);
    let mut d = _mm256_setzero_si256();
    let mut k0 = 0;
    while k0 < N {
        let mut s = _mm256_setzero_si256();
        for k in k0..(k0 + per).min(N) {
            // SAFETY: the caller guarantees the activation bytes 4(first + k).. at x.
            let xk = unsafe { bcast(x, first + k) };
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[k], xk));
        }
        d = _mm256_add_epi32(d, _mm256_madd_epi16(s, ones));
        k0 += per;
    }
    d
}

/// Σ_k v[k]·x[4k..4k+4] for signed weights (|v| ≤ 127): |v| times x with v's sign on x.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i8(v: &[__m256i; 8], x: *const i8) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let mut d = _mm256_setzero_si256();
    for k in 0..8 {
        // SAFETY: the caller guarantees a whole activation block at x.
        let xk = unsafe { bcast(x, k) };
        let pr = _mm256_maddubs_epi16(_mm256_abs_epi8(v[k]), _mm256_sign_epi8(xk, v[k]));
        d = _mm256_add_epi32(d, _mm256_madd_epi16(pr, ones));
    }
    d
}

/// Eight u16 fields (one per row of half h) of field `f` at p, as i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn field8(p: *const u8, f: usize, h: usize) -> __m256i {
    // SAFETY: the caller guarantees field f (16 u16) at p.
    _mm256_cvtepu16_epi32(unsafe { _mm_loadu_si128(p.add(32 * f + 16 * h) as *const __m128i) })
}

/// Q4_K / Q5_K super-blocks (see the AVX-512 kernel for the tile): per half of 8 rows,
/// sub-block j meets activation block 8b + j: result += d·sc_j·(dx·dot) − dmin·m_j·sx.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_k4<const T: usize, const K: u8>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(dtype(K), w, a);
    let tb = tile_bytes(K);
    let nibble = _mm256_set1_epi8(0x0F);
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    let mut accm = [[_mm256_setzero_ps(); 2]; T];
    let shr = |v: __m256i, n: u32| _mm256_srlv_epi32(v, _mm256_set1_epi32(n as i32));
    let and = |v: __m256i, m: u32| _mm256_and_si256(v, _mm256_set1_epi32(m as i32));
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        let q = p.wrapping_add(256);
        let qs = if K == Q5K { q.wrapping_add(512) } else { q };
        for h in 0..2 {
            // SAFETY: the tile starts with 8 fields: d, dmin, 6 of scale bytes.
            // (Loops, not array::from_fn: its closures are not inlined into these kernels.)
            let mut f = [_mm256_setzero_si256(); 6];
            for (i, f) in f.iter_mut().enumerate() {
                // SAFETY: as above.
                *f = unsafe { field8(p, 2 + i, h) };
            }
            // SAFETY: as above.
            let (d, dmin) = unsafe { (f16x8(p.add(16 * h)), f16x8(p.add(32 + 16 * h))) };
            let byte = |i: usize| and(shr(f[i / 2], 8 * (i as u32 % 2)), 0xFF);
            let (mut dsc, mut dm) = ([_mm256_setzero_ps(); 8], [_mm256_setzero_ps(); 8]);
            for j in 0..8 {
                let (sc, m) = if j < 4 {
                    (and(byte(j), 63), and(byte(j + 4), 63))
                } else {
                    (
                        _mm256_or_si256(
                            and(byte(j + 4), 0x0F),
                            _mm256_slli_epi32::<4>(shr(byte(j - 4), 6)),
                        ),
                        _mm256_or_si256(
                            shr(byte(j + 4), 4),
                            _mm256_slli_epi32::<4>(shr(byte(j), 6)),
                        ),
                    )
                };
                dsc[j] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
                dm[j] = _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(m));
            }
            for pair in 0..4 {
                if h == 0 {
                    super::prefetch_part(p, tb, pair, 4);
                }
                let (mut lo, mut hi) = ([_mm256_setzero_si256(); 8], [_mm256_setzero_si256(); 8]);
                for k in 0..8 {
                    // SAFETY: 32 qs chunks of 64 bytes; this half's 32 bytes at 32h.
                    let v = unsafe {
                        _mm256_loadu_si256(qs.add(64 * (8 * pair + k) + 32 * h) as *const __m256i)
                    };
                    lo[k] = _mm256_and_si256(v, nibble);
                    hi[k] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
                    if K == Q5K {
                        // SAFETY: Q5_K tiles have 8 qh chunks of 64 bytes first.
                        let qhv =
                            unsafe { _mm256_loadu_si256(q.add(64 * k + 32 * h) as *const __m256i) };
                        let bit = |j: i32| {
                            let b = _mm256_srl_epi16(qhv, _mm_cvtsi32_si128(j));
                            _mm256_slli_epi16::<4>(_mm256_and_si256(b, _mm256_set1_epi8(1)))
                        };
                        lo[k] = _mm256_or_si256(lo[k], bit(2 * pair as i32));
                        hi[k] = _mm256_or_si256(hi[k], bit(2 * pair as i32 + 1));
                    }
                }
                let max = if K == Q5K { 31 } else { 15 };
                for (j, wq) in [(2 * pair, &lo), (2 * pair + 1, &hi)] {
                    let ai = 8 * b + j;
                    for t in 0..T {
                        // SAFETY: check() verified 32 bytes per activation block.
                        let dot = unsafe { dot_u8(wq, a[t].qs.as_ptr().add(32 * ai), 0, max) };
                        let u = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(a[t].d[ai]));
                        acc[t][h] = _mm256_fmadd_ps(u, dsc[j], acc[t][h]);
                        accm[t][h] = _mm256_fmadd_ps(dm[j], _mm256_set1_ps(a[t].s[ai]), accm[t][h]);
                    }
                }
            }
        }
    }
    let mut out = [[0f32; GROUP]; T];
    for t in 0..T {
        // SAFETY: out[t] holds 16 f32.
        unsafe {
            _mm256_storeu_ps(out[t].as_mut_ptr(), _mm256_sub_ps(acc[t][0], accm[t][0]));
            _mm256_storeu_ps(
                out[t].as_mut_ptr().add(8),
                _mm256_sub_ps(acc[t][1], accm[t][1]),
            );
        }
    }
    out
}

/// Σ x over bytes 0..16 and 16..32 of an activation block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sums16(x: *const i8) -> (i32, i32) {
    let flip = _mm_set1_epi8(-128);
    let sum = |v: __m128i| {
        // x + 128 as unsigned bytes: psadbw sums each 8 of them.
        let s = _mm_sad_epu8(_mm_xor_si128(v, flip), _mm_setzero_si128());
        _mm_cvtsi128_si32(s) + _mm_extract_epi16::<4>(s) - 16 * 128
    };
    // SAFETY: the caller guarantees 32 readable bytes at x.
    unsafe {
        (
            sum(_mm_loadu_si128(x as *const __m128i)),
            sum(_mm_loadu_si128(x.add(16) as *const __m128i)),
        )
    }
}

/// Q6_K super-blocks (see the AVX-512 kernel): per half of 8 rows, activation block 4g + kk
/// meets (q − 32) with the scales of sub-blocks 8g + 2kk and 8g + 2kk + 1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_q6k<const T: usize>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(DType::Q6K, w, a);
    let tb = tile_bytes(Q6K);
    let (low, three) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3));
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        for h in 0..2 {
            // SAFETY: d[16] first, then 52 chunks of 64 bytes; this half's 32 at 32h.
            let (d, chunk) = unsafe {
                let c = p.add(32 + 32 * h);
                (f16x8(p.add(16 * h)), move |i: usize| {
                    _mm256_loadu_si256(c.add(64 * i) as *const __m256i)
                })
            };
            let scale = |s: usize| {
                let v = chunk(48 + s / 4);
                let v = match s % 4 {
                    0 => _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(v)),
                    1 => _mm256_srai_epi32::<24>(_mm256_slli_epi32::<16>(v)),
                    2 => _mm256_srai_epi32::<24>(_mm256_slli_epi32::<8>(v)),
                    _ => _mm256_srai_epi32::<24>(v),
                };
                _mm256_mul_ps(d, _mm256_cvtepi32_ps(v))
            };
            for g in 0..2 {
                for kk in 0..4 {
                    if h == 0 {
                        super::prefetch_part(p, tb, 4 * g + kk, 8);
                    }
                    // Two halves of 4 chunks (weights 0..16 and 16..32 of the block).
                    let (mut w0, mut w1) =
                        ([_mm256_setzero_si256(); 4], [_mm256_setzero_si256(); 4]);
                    for k in 0..8 {
                        let ql = chunk(16 * g + 8 * (kk % 2) + k);
                        let qh = chunk(32 + 8 * g + k);
                        let (l, hb) = match kk {
                            0 => (_mm256_and_si256(ql, low), _mm256_and_si256(qh, three)),
                            1 => (
                                _mm256_and_si256(ql, low),
                                _mm256_and_si256(_mm256_srli_epi16::<2>(qh), three),
                            ),
                            2 => (
                                _mm256_and_si256(_mm256_srli_epi16::<4>(ql), low),
                                _mm256_and_si256(_mm256_srli_epi16::<4>(qh), three),
                            ),
                            _ => (
                                _mm256_and_si256(_mm256_srli_epi16::<4>(ql), low),
                                _mm256_and_si256(_mm256_srli_epi16::<6>(qh), three),
                            ),
                        };
                        let v = _mm256_or_si256(l, _mm256_slli_epi16::<4>(hb));
                        if k < 4 {
                            w0[k] = v;
                        } else {
                            w1[k - 4] = v;
                        }
                    }
                    let sub = 8 * g + 2 * kk;
                    let (s0, s1) = (scale(sub), scale(sub + 1));
                    let ai = 8 * b + 4 * g + kk;
                    for t in 0..T {
                        // SAFETY: check() verified 32 bytes per activation block.
                        let x = unsafe { a[t].qs.as_ptr().add(32 * ai) };
                        // SAFETY: as above.
                        let (d0, d1, (x0, x1)) =
                            unsafe { (dot_u8(&w0, x, 0, 63), dot_u8(&w1, x, 4, 63), sums16(x)) };
                        // Σ (q − 32)·x = Σ q·x − 32·Σx, per 16 weights.
                        let d0 = _mm256_sub_epi32(d0, _mm256_set1_epi32(32 * x0));
                        let d1 = _mm256_sub_epi32(d1, _mm256_set1_epi32(32 * x1));
                        let v = _mm256_fmadd_ps(
                            s1,
                            _mm256_cvtepi32_ps(d1),
                            _mm256_mul_ps(s0, _mm256_cvtepi32_ps(d0)),
                        );
                        acc[t][h] = _mm256_fmadd_ps(v, _mm256_set1_ps(a[t].d[ai]), acc[t][h]);
                    }
                }
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

/// IQ4_XS super-blocks (see the AVX-512 kernel): sub-block ib meets activation block 8b + ib
/// with the scale d·(ls − 32) and signed grid values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn group_iq4xs<const T: usize>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(DType::IQ4XS, w, a);
    let tb = tile_bytes(IQ4XS);
    let (nibble, grid) = (_mm256_set1_epi8(0x0F), iq4_grid());
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        for h in 0..2 {
            // SAFETY: the tile starts with 4 fields: d, scales_h, scales_l (2).
            let (d, sh, sl) = unsafe {
                (
                    f16x8(p.add(16 * h)),
                    field8(p, 1, h),
                    [field8(p, 2, h), field8(p, 3, h)],
                )
            };
            for ib in 0..8 {
                if h == 0 {
                    super::prefetch_part(p, tb, ib, 8);
                }
                let lo = _mm256_srlv_epi32(sl[ib / 4], _mm256_set1_epi32(4 * (ib % 4) as i32));
                let hi = _mm256_srlv_epi32(sh, _mm256_set1_epi32(2 * ib as i32));
                let ls = _mm256_or_si256(
                    _mm256_and_si256(lo, _mm256_set1_epi32(0x0F)),
                    _mm256_slli_epi32::<4>(_mm256_and_si256(hi, _mm256_set1_epi32(3))),
                );
                let ls = _mm256_sub_epi32(ls, _mm256_set1_epi32(32));
                let dl = _mm256_mul_ps(d, _mm256_cvtepi32_ps(ls));
                let mut wq = [_mm256_setzero_si256(); 8];
                for k in 0..4 {
                    // SAFETY: 32 chunks of 64 bytes after the 128 bytes of fields.
                    let v = unsafe {
                        _mm256_loadu_si256(p.add(128 + 64 * (4 * ib + k) + 32 * h) as *const __m256i)
                    };
                    wq[k] = _mm256_shuffle_epi8(grid, _mm256_and_si256(v, nibble));
                    wq[k + 4] = _mm256_shuffle_epi8(
                        grid,
                        _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble),
                    );
                }
                let ai = 8 * b + ib;
                for t in 0..T {
                    // SAFETY: check() verified 32 bytes per activation block.
                    let dot = unsafe { dot_i8(&wq, a[t].qs.as_ptr().add(32 * ai)) };
                    let u = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(a[t].d[ai]));
                    acc[t][h] = _mm256_fmadd_ps(u, dl, acc[t][h]);
                }
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
super::entry_points!(@super_blocks "avx2,fma,f16c");
