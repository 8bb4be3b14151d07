//! AVX-512 VNNI tiles. Quantized types process two blocks (64 weights) per instruction:
//! lanes 0-7 of every 16-lane vector belong to block b, lanes 8-15 to block b + 1.
// Blocks are addressed by index into raw pointers and several slices at once.
#![allow(clippy::missing_safety_doc, clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::TILE;
use crate::kernels::ActRow;

type Tile = [[f32; TILE]; TILE];

#[inline]
unsafe fn u16_at(p: *const u8) -> u16 {
    // SAFETY: the caller guarantees two readable bytes.
    unsafe { (p as *const u16).read_unaligned() }
}

/// [a ×8, b ×8] from two f16 scales.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f16_pair(a: u16, b: u16) -> __m512 {
    _mm512_cvtph_ps(_mm256_set_m128i(
        _mm_set1_epi16(b as i16),
        _mm_set1_epi16(a as i16),
    ))
}

/// [a ×8, b ×8] from two f32 values.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn f32_pair(a: f32, b: f32) -> __m512 {
    // insertf64x4 (AVX-512F) moves the 256-bit half; insertf32x8 would need AVX-512DQ.
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castps_pd(_mm512_set1_ps(a)),
        _mm256_castps_pd(_mm256_set1_ps(b)),
    ))
}

/// 64 activation bytes of blocks b and b+1 (the second zeroed when `two` is false).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn load_act(p: *const i8, two: bool) -> __m512i {
    if two {
        // SAFETY: the caller guarantees 64 readable bytes.
        unsafe { _mm512_loadu_si512(p as *const __m512i) }
    } else {
        // SAFETY: the caller guarantees 32 readable bytes; masked-off bytes are not accessed.
        unsafe { _mm512_maskz_loadu_epi8(0xFFFF_FFFF, p) }
    }
}

/// Nibbles of two Q4 blocks (16 bytes each at p0, p1) as 64 unsigned bytes in element order.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn nibbles2(p0: *const u8, p1: *const u8) -> __m512i {
    // SAFETY: the caller guarantees 16 readable bytes at p0 and p1.
    let v = unsafe {
        _mm256_set_m128i(
            _mm_loadu_si128(p1 as *const __m128i),
            _mm_loadu_si128(p0 as *const __m128i),
        )
    };
    let m = _mm256_set1_epi8(0x0F);
    let lo = _mm256_and_si256(v, m);
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m);
    // [b0 lo, b1 lo, b0 hi, b1 hi] -> [b0 lo, b0 hi, b1 lo, b1 hi]
    let x = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
    _mm512_shuffle_i64x2::<0b11_01_10_00>(x, x)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn reduce<const T: usize>(acc: &[[__m512; T]; TILE]) -> [[f32; T]; TILE] {
    core::array::from_fn(|r| core::array::from_fn(|t| _mm512_reduce_add_ps(acc[r][t])))
}

fn check_q8<const T: usize>(
    w: &[u8],
    row_bytes: usize,
    block_bytes: usize,
    a: &[ActRow; T],
) -> usize {
    let nb = a[0].d.len();
    assert!(row_bytes >= nb * block_bytes && w.len() >= (TILE - 1) * row_bytes + nb * block_bytes);
    for t in a {
        assert!(t.d.len() == nb && t.s.len() >= nb && t.qs.len() >= nb * 32);
    }
    nb
}

/// Shared by Q4_0, Q4_1, Q4_Z and Q8_0: TILE rows against T tokens (T = TILE for prefill, 1 for
/// decode), two blocks per step.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_blocks<const T: usize, const K: u8>(
    w: &[u8],
    row_bytes: usize,
    a: &[ActRow; T],
) -> [[f32; T]; TILE] {
    // The block type is a const parameter so each instantiation is specialized: no branch
    // on the type in the inner loops, and the accumulators stay in registers.
    let kind = Kind::from_const(K);
    let bb = kind.block_bytes();
    let nb = check_q8(w, row_bytes, bb, a);
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); T]; TILE];
    let mut b = 0;
    while b < nb {
        let two = b + 1 < nb;
        let b1 = if two { b + 1 } else { b };
        // Activation side, once per token: bytes, scales, and the per-lane correction that
        // turns the unsigned-weight trick into the signed result.
        // q4_0 has two ways to handle its offset of 8: per token (decode: one token, so the
        // correction costs once per block pair) or per row with signed weights (prefill: the
        // per-token correction registers would spill).
        let q4_0_per_token = T == 1;
        let mut x = [zero; T];
        let mut init = [zero; T];
        let mut dx = [_mm512_setzero_ps(); T];
        let mut extra = [_mm512_setzero_ps(); T];
        for t in 0..T {
            // SAFETY: check_q8 verified 32·nb activation bytes per token.
            let xt = unsafe { load_act(a[t].qs.as_ptr().add(32 * b), two) };
            let d1 = if two { a[t].d[b1] } else { 0.0 };
            dx[t] = f32_pair(a[t].d[b], d1);
            match kind {
                // m · sx spread over the 8 lanes of each block (q4_z: m = -d z).
                Kind::Q4_1 | Kind::Q4Z => {
                    let s1 = if two { a[t].s[b1] } else { 0.0 };
                    extra[t] = f32_pair(a[t].s[b] / 8.0, s1 / 8.0);
                    x[t] = xt;
                }
                // sum (q - 8) x: start the integer sum at -8 · (per-lane sum of x).
                Kind::Q4_0 if q4_0_per_token => {
                    let c = _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(8), xt);
                    init[t] = _mm512_sub_epi32(zero, c);
                    x[t] = xt;
                }
                // Signed weights (q8_0, and q4_0 as q - 8): x + 128 is the unsigned operand
                // (x XOR 0x80); the per-row correction below removes the 128.
                Kind::Q8_0 | Kind::Q4_0 => x[t] = _mm512_xor_si512(xt, _mm512_set1_epi8(-128)),
            }
        }
        for r in 0..TILE {
            // SAFETY: check_q8 verified TILE rows of nb blocks.
            let p0 = unsafe { w.as_ptr().add(r * row_bytes + bb * b) };
            // SAFETY: as above; b1 < nb.
            let p1 = unsafe { w.as_ptr().add(r * row_bytes + bb * b1) };
            // SAFETY: p0 and p1 point at whole blocks of this kind.
            let (d0, d1) = unsafe { (u16_at(p0), if two { u16_at(p1) } else { 0 }) };
            let dw = match kind {
                // sd = d9 << 7 | z: the scale is the f16 (sd >> 1) & 0x7FC0 times 2^-8.
                Kind::Q4Z => _mm512_mul_ps(
                    f16_pair((d0 >> 1) & 0x7FC0, (d1 >> 1) & 0x7FC0),
                    _mm512_set1_ps(ember_format::blocks::Q4Z_SHIFT),
                ),
                _ => f16_pair(d0, d1),
            };
            let (wq, corr, m) = match kind {
                Kind::Q4_0 if q4_0_per_token => {
                    // SAFETY: p0/p1 point at whole blocks.
                    (unsafe { nibbles2(p0.add(2), p1.add(2)) }, None, None)
                }
                Kind::Q4_0 => {
                    // SAFETY: p0/p1 point at whole blocks. Signed q - 8 in [-8, 7].
                    let wq = unsafe { nibbles2(p0.add(2), p1.add(2)) };
                    let wq = _mm512_sub_epi8(wq, _mm512_set1_epi8(8));
                    // sum (x + 128) w = sum x w + 128 sum w: start at -128 · (per-lane sum of w).
                    let c = _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(-128), wq);
                    (wq, Some(_mm512_sub_epi32(zero, c)), None)
                }
                Kind::Q4_1 => {
                    // SAFETY: as above.
                    let (m0, m1) =
                        unsafe { (u16_at(p0.add(2)), if two { u16_at(p1.add(2)) } else { 0 }) };
                    // SAFETY: as above.
                    (
                        unsafe { nibbles2(p0.add(4), p1.add(4)) },
                        None,
                        Some(f16_pair(m0, m1)),
                    )
                }
                Kind::Q4Z => {
                    let z = f32_pair(-((d0 & 0x7F) as f32) * 0.125, -((d1 & 0x7F) as f32) * 0.125);
                    // SAFETY: p0/p1 point at whole blocks.
                    (
                        unsafe { nibbles2(p0.add(2), p1.add(2)) },
                        None,
                        Some(_mm512_mul_ps(dw, z)),
                    )
                }
                Kind::Q8_0 => {
                    // SAFETY: as above: 32 quant bytes after the 2-byte scale.
                    let wq = unsafe {
                        _mm512_inserti64x4::<1>(
                            _mm512_castsi256_si512(_mm256_loadu_si256(p0.add(2) as *const __m256i)),
                            _mm256_loadu_si256(p1.add(2) as *const __m256i),
                        )
                    };
                    // sum (x + 128) w = sum x w + 128 sum w: start at -128 · (per-lane sum of w).
                    let c = _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(-128), wq);
                    (wq, Some(_mm512_sub_epi32(zero, c)), None)
                }
            };
            for t in 0..T {
                let dot = match kind {
                    Kind::Q4_0 if q4_0_per_token => _mm512_dpbusd_epi32(init[t], wq, x[t]),
                    Kind::Q4_1 | Kind::Q4Z => _mm512_dpbusd_epi32(zero, wq, x[t]),
                    Kind::Q8_0 | Kind::Q4_0 => _mm512_dpbusd_epi32(corr.unwrap_or(zero), x[t], wq),
                };
                let scale = _mm512_mul_ps(dw, dx[t]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[r][t]);
                if let Some(m) = m {
                    acc[r][t] = _mm512_fmadd_ps(m, extra[t], acc[r][t]);
                }
            }
        }
        b += 2;
    }
    reduce(&acc)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Q8_0,
    Q4_0,
    Q4_1,
    Q4Z,
}

const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q4_1: u8 = 2;
const Q4Z: u8 = 3;

impl Kind {
    #[inline(always)]
    const fn from_const(k: u8) -> Kind {
        match k {
            Q8_0 => Kind::Q8_0,
            Q4_0 => Kind::Q4_0,
            Q4Z => Kind::Q4Z,
            _ => Kind::Q4_1,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            Kind::Q8_0 => 34,
            Kind::Q4_0 | Kind::Q4Z => 18,
            Kind::Q4_1 => 20,
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn tile_q8_0(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<TILE, Q8_0>(w, row_bytes, a) }
}

/// Decode: TILE rows against one token.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn rows_q8_0(w: &[u8], row_bytes: usize, a: &ActRow) -> [f32; TILE] {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<1, Q8_0>(w, row_bytes, &[*a]) }.map(|r| r[0])
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn rows_q4_0(w: &[u8], row_bytes: usize, a: &ActRow) -> [f32; TILE] {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<1, Q4_0>(w, row_bytes, &[*a]) }.map(|r| r[0])
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn rows_q4_1(w: &[u8], row_bytes: usize, a: &ActRow) -> [f32; TILE] {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<1, Q4_1>(w, row_bytes, &[*a]) }.map(|r| r[0])
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn rows_q4_z(w: &[u8], row_bytes: usize, a: &ActRow) -> [f32; TILE] {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<1, Q4Z>(w, row_bytes, &[*a]) }.map(|r| r[0])
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn tile_q4_z(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<TILE, Q4Z>(w, row_bytes, a) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn tile_q4_0(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<TILE, Q4_0>(w, row_bytes, a) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn tile_q4_1(w: &[u8], row_bytes: usize, a: &[ActRow; TILE]) -> Tile {
    // SAFETY: same features; bounds are checked inside.
    unsafe { tile_blocks::<TILE, Q4_1>(w, row_bytes, a) }
}

/// Float tiles: 16 columns per step, masked loads for the tail.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_float(
    w: &[u8],
    row_bytes: usize,
    x: &[&[f32]; TILE],
    elem: usize,
    load: impl Fn(*const u8, __mmask16) -> __m512,
) -> Tile {
    let n = x[0].len();
    assert!(row_bytes >= n * elem && w.len() >= (TILE - 1) * row_bytes + n * elem);
    assert!(x.iter().all(|xt| xt.len() == n));
    let mut acc = [[_mm512_setzero_ps(); TILE]; TILE];
    let mut i = 0;
    while i < n {
        let mask: __mmask16 = if n - i >= 16 {
            0xFFFF
        } else {
            (1u16 << (n - i)) - 1
        };
        let mut xv = [_mm512_setzero_ps(); TILE];
        for t in 0..TILE {
            // SAFETY: lanes beyond n are masked off.
            xv[t] = unsafe { _mm512_maskz_loadu_ps(mask, x[t].as_ptr().add(i)) };
        }
        for r in 0..TILE {
            // SAFETY: row r holds n elements; lanes beyond n are masked off in `load`.
            let wv = load(unsafe { w.as_ptr().add(r * row_bytes + i * elem) }, mask);
            for t in 0..TILE {
                acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
            }
        }
        i += 16;
    }
    reduce(&acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn tile_f32(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> Tile {
    // SAFETY: `tile_float` passes pointers with the masked lanes readable.
    unsafe {
        tile_float(w, row_bytes, x, 4, |p, m| {
            _mm512_maskz_loadu_ps(m, p as *const f32)
        })
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn tile_f16(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> Tile {
    // SAFETY: `tile_float` passes pointers with the masked lanes readable.
    unsafe {
        tile_float(w, row_bytes, x, 2, |p, m| {
            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p as *const i16))
        })
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn tile_bf16(w: &[u8], row_bytes: usize, x: &[&[f32]; TILE]) -> Tile {
    // SAFETY: `tile_float` passes pointers with the masked lanes readable.
    unsafe {
        tile_float(w, row_bytes, x, 2, |p, m| {
            let h = _mm256_maskz_loadu_epi16(m, p as *const i16);
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        })
    }
}
