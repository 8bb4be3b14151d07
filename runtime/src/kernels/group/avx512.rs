//! AVX-512 VNNI rows16 kernels: lane r of every vector is row r of the group. Per tile, the
//! 16 scales convert in one instruction, each 64-byte chunk (4 quant bytes × 16 rows) meets
//! a broadcast of the matching 4 activation bytes in one `vpdpbusd`, and nothing is shuffled.
#![allow(clippy::missing_safety_doc)]

use core::arch::x86_64::*;

use super::{check, check_float, GROUP, GROUP_TOKENS};
use crate::kernels::ActRow;
use ember_format::DType;

type Out<const T: usize> = [[f32; GROUP]; T];

use super::kind::{
    dtype, five, head, qh, tile_bytes, IQ4NL, IQ4XS, Q4K, Q4Z, Q4_0, Q4_1, Q5K, Q5_0, Q5_1, Q6K,
    Q8_0,
};

/// The IQ4 grid plus 128 (unsigned, for `vpdpbusd`).
const IQ4_GRID_U8: [u8; 16] = {
    let mut g = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        g[i] = (ember_format::blocks::IQ4_GRID[i] as i16 + 128) as u8;
        i += 1;
    }
    g
};

/// [`IQ4_GRID_U8`] in every 128-bit lane: a nibble vector shuffled through it gives
/// grid[q] + 128; the kernels take back 128·Σx.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn iq4_grid_u8() -> __m512i {
    // SAFETY: the table is 16 bytes.
    let v = unsafe { _mm_loadu_si128(IQ4_GRID_U8.as_ptr() as *const __m128i) };
    _mm512_broadcast_i32x4(v)
}

/// 16 f16 values at p as f32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn f16x16(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 32 readable bytes.
    _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p as *const __m256i) })
}

/// 4 activation bytes (columns 4k..4k+4 of the block at x) in every lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn bcast(x: *const i8, k: usize) -> __m512i {
    // SAFETY: the caller guarantees 32 readable bytes at x and k < 8.
    _mm512_set1_epi32(unsafe { (x.add(4 * k) as *const i32).read_unaligned() })
}

/// The shared body: one group against T tokens. Per tile and row, with dot the integer sum
/// of the stored (unsigned) quants times the activation bytes:
/// result += dw·(dx·dot) + mw·sx, where sx = dx·Σx and mw is -8·dw (Q4_0), -128·dw (Q8_0,
/// stored as q + 128), m (Q4_1, Q5_1), -16·dw (Q5_0) or -dw·z/8 (Q4_Z). Q5 types OR their
/// fifth bits into the nibbles (bit 4 of each byte) before the dot.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn group<const T: usize, const K: u8>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    // K-quant super-blocks have kernels of their own (K is a constant: no branch remains).
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
    let nibble = _mm512_set1_epi8(0x0F);
    let grid = if K == IQ4NL {
        iq4_grid_u8()
    } else {
        _mm512_setzero_si512()
    };
    let mut acc = [_mm512_setzero_ps(); T];
    // Σ mw·sx; for Q4_0 and Q8_0 Σ dw·sx, scaled by -8 or -128 once at the end.
    let mut accm = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        super::prefetch_ahead(p, tb);
        // SAFETY: a tile starts with its scale fields (32 or 64 bytes).
        let (dw, mw) = unsafe {
            match K {
                Q4Z => {
                    // sd = d9 << 7 | z: the scale is the f16 (sd >> 1) & 0x7FC0 times 2^-8.
                    let sd = _mm256_loadu_si256(p as *const __m256i);
                    let bits =
                        _mm256_and_si256(_mm256_srli_epi16::<1>(sd), _mm256_set1_epi16(0x7FC0));
                    let dw = _mm512_mul_ps(
                        _mm512_cvtph_ps(bits),
                        _mm512_set1_ps(ember_format::blocks::Q4Z_SHIFT),
                    );
                    let z = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm256_and_si256(
                        sd,
                        _mm256_set1_epi16(0x7F),
                    )));
                    (
                        dw,
                        _mm512_mul_ps(dw, _mm512_mul_ps(z, _mm512_set1_ps(-0.125))),
                    )
                }
                Q4_1 | Q5_1 => (f16x16(p), f16x16(p.add(32))),
                _ => {
                    let dw = f16x16(p);
                    (dw, dw)
                }
            }
        };
        // SAFETY: the quants follow the scales: 4 (Q4) or 8 (Q8_0) chunks of 64 bytes.
        let q = unsafe { p.add(head(K)) };
        // wq[k] pairs with activation bytes 4k..4k+4 of the block.
        let mut wq = [_mm512_setzero_si512(); 8];
        for c in 0..4 {
            if K == Q8_0 {
                // SAFETY: as above.
                unsafe {
                    wq[2 * c] = _mm512_loadu_si512(q.add(128 * c) as *const __m512i);
                    wq[2 * c + 1] = _mm512_loadu_si512(q.add(128 * c + 64) as *const __m512i);
                }
            } else {
                // SAFETY: as above. Low nibbles are columns 4c.., high ones 16 + 4c...
                let v = unsafe { _mm512_loadu_si512(q.add(64 * c) as *const __m512i) };
                wq[c] = _mm512_and_si512(v, nibble);
                wq[c + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble);
            }
        }
        if K == IQ4NL {
            for v in wq.iter_mut() {
                *v = _mm512_shuffle_epi8(grid, *v);
            }
        }
        if five(K) {
            // SAFETY: Q5 tiles hold qh_lo and qh_hi (16 u16 each) at qh(K).
            let h = unsafe {
                let lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.add(qh(K)) as *const __m256i));
                let hi =
                    _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.add(qh(K) + 32) as *const __m256i));
                _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi))
            };
            // Chunk c of the low half needs bits 4c..4c+4 of each row's h (in byte c / 2),
            // of the high half bits 16 + 4c.. (byte 2 + c / 2): each byte of the chunk gets
            // its bit as 0x10, by a byte broadcast inside the lane, a bit test and a
            // masked add (no multiply).
            let byte = |j: i8| {
                // Byte j of each 32-bit lane, in all four bytes of that lane.
                let lanes = _mm512_set4_epi32(0x0C0C_0C0C, 0x0808_0808, 0x0404_0404, 0);
                let idx = _mm512_add_epi8(lanes, _mm512_set1_epi8(j));
                _mm512_shuffle_epi8(h, idx)
            };
            let bits = [
                _mm512_set1_epi32(0x0804_0201),
                _mm512_set1_epi32(0x8040_2010u32 as i32),
            ];
            let sixteen = _mm512_set1_epi8(0x10);
            for j in 0..2 {
                let (lo, hi) = (byte(j as i8), byte(2 + j as i8));
                for (n, &bits) in bits.iter().enumerate() {
                    let c = 2 * j + n;
                    let m = _mm512_test_epi8_mask(lo, bits);
                    wq[c] = _mm512_mask_add_epi8(wq[c], m, wq[c], sixteen);
                    let m = _mm512_test_epi8_mask(hi, bits);
                    wq[c + 4] = _mm512_mask_add_epi8(wq[c + 4], m, wq[c + 4], sixteen);
                }
            }
        }
        for t in 0..T {
            // SAFETY: check() verified 32·nb activation bytes.
            let x = unsafe { a[t].qs.as_ptr().add(32 * b) };
            // Two accumulators halve the dependency chain.
            let (mut d0, mut d1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            for k in (0..8).step_by(2) {
                // SAFETY: x points at a whole activation block.
                unsafe {
                    d0 = _mm512_dpbusd_epi32(d0, wq[k], bcast(x, k));
                    d1 = _mm512_dpbusd_epi32(d1, wq[k + 1], bcast(x, k + 1));
                }
            }
            let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(d0, d1));
            let u = _mm512_mul_ps(dot, _mm512_set1_ps(a[t].d[b]));
            acc[t] = _mm512_fmadd_ps(u, dw, acc[t]);
            accm[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a[t].s[b]), accm[t]);
        }
    }
    let c = match K {
        Q4_0 => -8.0,
        Q5_0 => -16.0,
        Q8_0 | IQ4NL => -128.0,
        _ => 1.0,
    };
    let mut out = [[0f32; GROUP]; T];
    for t in 0..T {
        let v = _mm512_fmadd_ps(accm[t], _mm512_set1_ps(c), acc[t]);
        // SAFETY: out[t] holds 16 f32.
        unsafe { _mm512_storeu_ps(out[t].as_mut_ptr(), v) };
    }
    out
}

/// Σ x over bytes 0..16 and 16..32 of an activation block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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

/// Q4_K / Q5_K super-blocks (256 weights; tile: d[16], dmin[16], the 12 scale bytes as six
/// u16 fields, then [Q5_K: qh in 8 chunks] qs in 32 chunks). Sub-block j (32 weights) meets
/// activation block 8b + j: result += d·sc_j·(dx·dot) − dmin·m_j·sx.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn group_k4<const T: usize, const K: u8>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(dtype(K), w, a);
    let tb = tile_bytes(K);
    let nibble = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); T];
    let mut accm = [_mm512_setzero_ps(); T];
    let shr = |v: __m512i, n: u32| _mm512_srlv_epi32(v, _mm512_set1_epi32(n as i32));
    let and = |v: __m512i, m: u32| _mm512_and_si512(v, _mm512_set1_epi32(m as i32));
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        // SAFETY: the tile starts with 8 fields of 16 u16: d, dmin, 6 of scale bytes.
        // (Loops, not array::from_fn: its closures are not inlined into these kernels.)
        let mut f = [_mm512_setzero_si512(); 6];
        for (i, f) in f.iter_mut().enumerate() {
            // SAFETY: as above.
            *f = _mm512_cvtepu16_epi32(unsafe {
                _mm256_loadu_si256(p.add(64 + 32 * i) as *const __m256i)
            });
        }
        // SAFETY: as above.
        let (d, dmin) = unsafe { (f16x16(p), f16x16(p.add(32))) };
        // Scale byte i of each row, then the 6-bit scales and mins (blocks::scale_min_k4).
        let byte = |i: usize| and(shr(f[i / 2], 8 * (i as u32 % 2)), 0xFF);
        let (mut dsc, mut dm) = ([_mm512_setzero_ps(); 8], [_mm512_setzero_ps(); 8]);
        for j in 0..8 {
            let (sc, m) = if j < 4 {
                (and(byte(j), 63), and(byte(j + 4), 63))
            } else {
                (
                    _mm512_or_si512(
                        and(byte(j + 4), 0x0F),
                        _mm512_slli_epi32::<4>(shr(byte(j - 4), 6)),
                    ),
                    _mm512_or_si512(shr(byte(j + 4), 4), _mm512_slli_epi32::<4>(shr(byte(j), 6))),
                )
            };
            dsc[j] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
            dm[j] = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(m));
        }
        // SAFETY: the chunks follow the 256 bytes of fields.
        let q = unsafe { p.add(256) };
        // Q5_K: qh chunk k holds the fifth bits of weights 4k..4k+4 of every sub-block.
        let mut qhv = [_mm512_setzero_si512(); 8];
        if K == Q5K {
            for (k, v) in qhv.iter_mut().enumerate() {
                // SAFETY: Q5_K tiles have 8 qh chunks of 64 bytes first.
                *v = unsafe { _mm512_loadu_si512(q.add(64 * k) as *const __m512i) };
            }
        }
        let qs = if K == Q5K { q.wrapping_add(512) } else { q };
        for pair in 0..4 {
            super::prefetch_part(p, tb, pair, 4);
            let (mut lo, mut hi) = ([_mm512_setzero_si512(); 8], [_mm512_setzero_si512(); 8]);
            for k in 0..8 {
                // SAFETY: 32 qs chunks of 64 bytes; pair p's are 8p..8p+8.
                let v =
                    unsafe { _mm512_loadu_si512(qs.add(64 * (8 * pair + k)) as *const __m512i) };
                lo[k] = _mm512_and_si512(v, nibble);
                hi[k] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble);
                if K == Q5K {
                    let bit = |j: u32| {
                        let b = _mm512_srlv_epi16(qhv[k], _mm512_set1_epi16(j as i16));
                        _mm512_slli_epi16::<4>(_mm512_and_si512(b, _mm512_set1_epi8(1)))
                    };
                    lo[k] = _mm512_or_si512(lo[k], bit(2 * pair as u32));
                    hi[k] = _mm512_or_si512(hi[k], bit(2 * pair as u32 + 1));
                }
            }
            for (j, wq) in [(2 * pair, &lo), (2 * pair + 1, &hi)] {
                let ai = 8 * b + j;
                for t in 0..T {
                    // SAFETY: check() verified 32 bytes per activation block.
                    let x = unsafe { a[t].qs.as_ptr().add(32 * ai) };
                    let (mut d0, mut d1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                    for k in (0..8).step_by(2) {
                        // SAFETY: x points at a whole activation block.
                        unsafe {
                            d0 = _mm512_dpbusd_epi32(d0, wq[k], bcast(x, k));
                            d1 = _mm512_dpbusd_epi32(d1, wq[k + 1], bcast(x, k + 1));
                        }
                    }
                    let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(d0, d1));
                    let u = _mm512_mul_ps(dot, _mm512_set1_ps(a[t].d[ai]));
                    acc[t] = _mm512_fmadd_ps(u, dsc[j], acc[t]);
                    accm[t] = _mm512_fmadd_ps(dm[j], _mm512_set1_ps(a[t].s[ai]), accm[t]);
                }
            }
        }
    }
    let mut out = [[0f32; GROUP]; T];
    for t in 0..T {
        // SAFETY: out[t] holds 16 f32.
        unsafe { _mm512_storeu_ps(out[t].as_mut_ptr(), _mm512_sub_ps(acc[t], accm[t])) };
    }
    out
}

/// Q6_K super-blocks (tile: d[16], then ql in 32 chunks, qh in 16, the i8 scales in 4).
/// Activation block 4h + kk of the super-block meets values (q − 32) with the scales of
/// sub-blocks 8h + 2kk (weights 0..16) and 8h + 2kk + 1 (16..32).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn group_q6k<const T: usize>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(DType::Q6K, w, a);
    let tb = tile_bytes(Q6K);
    let (low, three) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(3));
    let mut acc = [_mm512_setzero_ps(); T];
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        // SAFETY: d[16] first, then 52 chunks of 64 bytes.
        let (d, chunk) = unsafe {
            let c = p.add(32);
            (f16x16(p), move |i: usize| {
                _mm512_loadu_si512(c.add(64 * i) as *const __m512i)
            })
        };
        // Scale s of each row, as f32 · d (byte s % 4 of scale chunk s / 4, sign-extended).
        let scale = |s: usize| {
            let v = chunk(48 + s / 4);
            let v = match s % 4 {
                0 => _mm512_srai_epi32::<24>(_mm512_slli_epi32::<24>(v)),
                1 => _mm512_srai_epi32::<24>(_mm512_slli_epi32::<16>(v)),
                2 => _mm512_srai_epi32::<24>(_mm512_slli_epi32::<8>(v)),
                _ => _mm512_srai_epi32::<24>(v),
            };
            _mm512_mul_ps(d, _mm512_cvtepi32_ps(v))
        };
        for h in 0..2 {
            for kk in 0..4 {
                super::prefetch_part(p, tb, 4 * h + kk, 8);
                // Values of weights 4k..4k+4 (k < 8) of activation block 4h + kk.
                let mut wq = [_mm512_setzero_si512(); 8];
                for (k, wq) in wq.iter_mut().enumerate() {
                    let ql = chunk(16 * h + 8 * (kk % 2) + k);
                    let qh = chunk(32 + 8 * h + k);
                    let (l, hb) = match kk {
                        0 => (_mm512_and_si512(ql, low), _mm512_and_si512(qh, three)),
                        1 => (
                            _mm512_and_si512(ql, low),
                            _mm512_and_si512(_mm512_srli_epi16::<2>(qh), three),
                        ),
                        2 => (
                            _mm512_and_si512(_mm512_srli_epi16::<4>(ql), low),
                            _mm512_and_si512(_mm512_srli_epi16::<4>(qh), three),
                        ),
                        _ => (
                            _mm512_and_si512(_mm512_srli_epi16::<4>(ql), low),
                            _mm512_and_si512(_mm512_srli_epi16::<6>(qh), three),
                        ),
                    };
                    *wq = _mm512_or_si512(l, _mm512_slli_epi16::<4>(hb));
                }
                let sub = 8 * h + 2 * kk;
                let (s0, s1) = (scale(sub), scale(sub + 1));
                let ai = 8 * b + 4 * h + kk;
                for t in 0..T {
                    // SAFETY: check() verified 32 bytes per activation block.
                    let x = unsafe { a[t].qs.as_ptr().add(32 * ai) };
                    let (mut d0, mut d1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                    for k in 0..4 {
                        // SAFETY: x points at a whole activation block.
                        unsafe {
                            d0 = _mm512_dpbusd_epi32(d0, wq[k], bcast(x, k));
                            d1 = _mm512_dpbusd_epi32(d1, wq[k + 4], bcast(x, k + 4));
                        }
                    }
                    // Σ (q − 32)·x = Σ q·x − 32·Σx, per 16 weights.
                    // SAFETY: as above.
                    let (x0, x1) = unsafe { sums16(x) };
                    let d0 = _mm512_sub_epi32(d0, _mm512_set1_epi32(32 * x0));
                    let d1 = _mm512_sub_epi32(d1, _mm512_set1_epi32(32 * x1));
                    let v = _mm512_fmadd_ps(
                        s1,
                        _mm512_cvtepi32_ps(d1),
                        _mm512_mul_ps(s0, _mm512_cvtepi32_ps(d0)),
                    );
                    acc[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(a[t].d[ai]), acc[t]);
                }
            }
        }
    }
    let mut out = [[0f32; GROUP]; T];
    for t in 0..T {
        // SAFETY: out[t] holds 16 f32.
        unsafe { _mm512_storeu_ps(out[t].as_mut_ptr(), acc[t]) };
    }
    out
}

/// IQ4_XS super-blocks (tile: d[16], scales_h[16], scales_l as two fields, then qs in 32
/// chunks, 4 per sub-block of 32): sub-block ib meets activation block 8b + ib with the scale
/// d·(ls − 32); the quants are grid[q] + 128, so 128·sx is taken back at the end.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn group_iq4xs<const T: usize>(w: &[u8], a: &[ActRow; T]) -> Out<T> {
    let nb = check(DType::IQ4XS, w, a);
    let tb = tile_bytes(IQ4XS);
    let (nibble, grid) = (_mm512_set1_epi8(0x0F), iq4_grid_u8());
    let mut acc = [_mm512_setzero_ps(); T];
    let mut accm = [_mm512_setzero_ps(); T];
    let field = |p: *const u8, f: usize| {
        // SAFETY: the caller passes a tile, which starts with 4 fields of 16 u16.
        unsafe { _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.add(32 * f) as *const __m256i)) }
    };
    for b in 0..nb {
        // SAFETY: check() verified nb tiles of tb bytes.
        let p = unsafe { w.as_ptr().add(b * tb) };
        // SAFETY: as above.
        let d = unsafe { f16x16(p) };
        let (sh, sl) = (field(p, 1), [field(p, 2), field(p, 3)]);
        for ib in 0..8 {
            super::prefetch_part(p, tb, ib, 8);
            // 6-bit scale: nibble ib of the 4 scales_l bytes, bits 2ib.. of scales_h.
            let lo = _mm512_srlv_epi32(sl[ib / 4], _mm512_set1_epi32(4 * (ib % 4) as i32));
            let hi = _mm512_srlv_epi32(sh, _mm512_set1_epi32(2 * ib as i32));
            let ls = _mm512_or_si512(
                _mm512_and_si512(lo, _mm512_set1_epi32(0x0F)),
                _mm512_slli_epi32::<4>(_mm512_and_si512(hi, _mm512_set1_epi32(3))),
            );
            let ls = _mm512_sub_epi32(ls, _mm512_set1_epi32(32));
            let dl = _mm512_mul_ps(d, _mm512_cvtepi32_ps(ls));
            let mut wq = [_mm512_setzero_si512(); 8];
            for k in 0..4 {
                // SAFETY: 32 chunks of 64 bytes after the 128 bytes of fields.
                let v =
                    unsafe { _mm512_loadu_si512(p.add(128 + 64 * (4 * ib + k)) as *const __m512i) };
                wq[k] = _mm512_shuffle_epi8(grid, _mm512_and_si512(v, nibble));
                wq[k + 4] =
                    _mm512_shuffle_epi8(grid, _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble));
            }
            let ai = 8 * b + ib;
            for t in 0..T {
                // SAFETY: check() verified 32 bytes per activation block.
                let x = unsafe { a[t].qs.as_ptr().add(32 * ai) };
                let (mut d0, mut d1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                for k in (0..8).step_by(2) {
                    // SAFETY: x points at a whole activation block.
                    unsafe {
                        d0 = _mm512_dpbusd_epi32(d0, wq[k], bcast(x, k));
                        d1 = _mm512_dpbusd_epi32(d1, wq[k + 1], bcast(x, k + 1));
                    }
                }
                let dot = _mm512_cvtepi32_ps(_mm512_add_epi32(d0, d1));
                let u = _mm512_mul_ps(dot, _mm512_set1_ps(a[t].d[ai]));
                acc[t] = _mm512_fmadd_ps(u, dl, acc[t]);
                accm[t] = _mm512_fmadd_ps(dl, _mm512_set1_ps(a[t].s[ai]), accm[t]);
            }
        }
    }
    let mut out = [[0f32; GROUP]; T];
    for t in 0..T {
        let v = _mm512_fmadd_ps(accm[t], _mm512_set1_ps(-128.0), acc[t]);
        // SAFETY: out[t] holds 16 f32.
        unsafe { _mm512_storeu_ps(out[t].as_mut_ptr(), v) };
    }
    out
}

/// 16 rows of column k as f32, for element type E (0 f32, 1 f16, 2 bf16).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn column<const E: u8>(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 16 elements at p.
    unsafe {
        match E {
            0 => _mm512_loadu_ps(p as *const f32),
            1 => _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)),
            _ => _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
                _mm256_loadu_si256(p as *const __m256i),
            ))),
        }
    }
}

/// T tokens against one column-major float group: per column, one load of 16 rows and
/// one FMA per token with the token's value broadcast. S sets of accumulators (columns
/// k mod S) keep at least 8 FMAs in flight when T is small; 16 tokens use all 16 alone,
/// so one weight conversion feeds 16 FMAs.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn float_pass<const T: usize, const S: usize, const E: u8>(
    p: *const u8,
    cols: usize,
    xs: [*const f32; T],
    out: &mut [[f32; GROUP]],
) {
    let step = GROUP * if E == 0 { 4 } else { 2 };
    let mut acc = [[_mm512_setzero_ps(); T]; S];
    let mut k = 0;
    while k + S <= cols {
        // The first pass over a group streams its weights from memory.
        super::prefetch_ahead(p.wrapping_add(k * step), S * step);
        for (s, acc) in acc.iter_mut().enumerate() {
            // SAFETY: the caller guarantees cols columns of 16 elements at p and cols values
            // at each xs[t]; k + s < cols.
            unsafe {
                let wv = column::<E>(p.add((k + s) * step));
                for t in 0..T {
                    acc[t] = _mm512_fmadd_ps(wv, _mm512_set1_ps(*xs[t].add(k + s)), acc[t]);
                }
            }
        }
        k += S;
    }
    for k in k..cols {
        // SAFETY: as above; k < cols.
        unsafe {
            let wv = column::<E>(p.add(k * step));
            for t in 0..T {
                acc[0][t] = _mm512_fmadd_ps(wv, _mm512_set1_ps(*xs[t].add(k)), acc[0][t]);
            }
        }
    }
    for t in 0..T {
        let mut v = acc[0][t];
        for a in &acc[1..] {
            v = _mm512_add_ps(v, a[t]);
        }
        // SAFETY: the caller passes T out rows of 16 f32.
        unsafe { _mm512_storeu_ps(out[t].as_mut_ptr(), v) };
    }
}

/// Any number of tokens (at most FLOAT_TOKENS), 16, 8, 4, 2 or 1 per pass over the group;
/// later passes find it in cache.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn float_group<const E: u8>(w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]) {
    let dtype = [DType::F32, DType::F16, DType::BF16][E as usize];
    let cols = check_float(dtype, w, x, out);
    let p = w.as_ptr();
    let mut i = 0;
    while i < x.len() {
        let n = [16, 8, 4, 2, 1]
            .into_iter()
            .find(|&n| i + n <= x.len())
            .unwrap_or(1);
        let xs = |j: usize| x[i + j].as_ptr();
        let o = &mut out[i..i + n];
        // SAFETY: check_float() verified cols columns of 16 elements at p, cols values per
        // token and one out row per token; each pass gets n tokens and n out rows.
        unsafe {
            match n {
                16 => float_pass::<16, 1, E>(p, cols, core::array::from_fn(xs), o),
                8 => float_pass::<8, 2, E>(p, cols, core::array::from_fn(xs), o),
                4 => float_pass::<4, 2, E>(p, cols, core::array::from_fn(xs), o),
                2 => float_pass::<2, 4, E>(p, cols, core::array::from_fn(xs), o),
                _ => float_pass::<1, 4, E>(p, cols, core::array::from_fn(xs), o),
            }
        }
        i += n;
    }
}

super::entry_points!("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c");
super::entry_points!(@super_blocks "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c");
