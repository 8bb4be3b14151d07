//! Reference dot products and activation quantizer: plain loops, no unsafe.
//!
//! A quantized dot takes a weight row `w` (whole blocks of its dtype) and an activation row
//! quantized to 8-bit blocks of 32 (`qs`, scales `d`, and `s = d * sum(qs)` per block).
//! Float dots take the f32 activations.

use ember_format::blocks::{
    bf16_to_f32, f16_to_f32, scale_min_k4, BlockIQ4NL, BlockIQ4XS, BlockQ4K, BlockQ4Z, BlockQ4_0,
    BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, IQ4_GRID,
};

/// Round half to even, the CPU's default (so SIMD conversions give the same integers).
#[inline]
pub fn round_even(x: f32) -> f32 {
    // Adding and subtracting 1.5 * 2^23 rounds to an integer in the current (nearest-even)
    // mode for |x| < 2^22; activations here are within ±127.5.
    const MAGIC: f32 = 12_582_912.0;
    (x + MAGIC) - MAGIC
}

/// x (32·nb) -> qs (32·nb), d (nb), s (nb): per block d = max|x| / 127, q = round(x / d).
pub fn quantize_q8(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    for (b, xb) in x.chunks_exact(32).enumerate() {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0i32;
        for (q, &v) in qs[32 * b..32 * b + 32].iter_mut().zip(xb) {
            let r = round_even(v * inv) as i32;
            *q = r as i8;
            sum += r;
        }
        d[b] = scale;
        s[b] = scale * sum as f32;
    }
}

/// The blocks of a weight row. Block structs have alignment 1 (`repr(C, packed)`), so this
/// holds for a row at any address.
fn blocks<B: bytemuck::Pod>(w: &[u8]) -> &[B] {
    bytemuck::cast_slice(w)
}

fn idot(a: impl Iterator<Item = i32>, x: &[i8]) -> i32 {
    a.zip(x).map(|(a, &b)| a * b as i32).sum()
}

pub fn dot_q8_0(w: &[u8], qs: &[i8], d: &[f32], _s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ8_0>(w).iter().enumerate() {
        let dot = idot(blk.qs.iter().map(|&q| q as i32), &qs[32 * b..]);
        acc += f16_to_f32(blk.d) * d[b] * dot as f32;
    }
    acc
}

/// The 32 unsigned nibbles of a Q4 block in element order.
fn nibbles(qs: &[u8; 16]) -> impl Iterator<Item = i32> + '_ {
    qs.iter()
        .map(|&b| (b & 0x0F) as i32)
        .chain(qs.iter().map(|&b| (b >> 4) as i32))
}

pub fn dot_q4_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (q - 8) x = sum q x - 8 sum x
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ4_0>(w).iter().enumerate() {
        let dot = idot(nibbles(&blk.qs), &qs[32 * b..]);
        let dw = f16_to_f32(blk.d);
        acc += dw * (d[b] * dot as f32 - 8.0 * s[b]);
    }
    acc
}

pub fn dot_q4_1(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum (dw q + m) x = dw dx sum q xq + m sx
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ4_1>(w).iter().enumerate() {
        let dot = idot(nibbles(&blk.qs), &qs[32 * b..]);
        acc += f16_to_f32(blk.d) * d[b] * dot as f32 + f16_to_f32(blk.m) * s[b];
    }
    acc
}

pub fn dot_q4_z(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    // sum dw (q - z) x = dw (dx sum q xq - z sx)
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ4Z>(w).iter().enumerate() {
        let dot = idot(nibbles(&blk.qs), &qs[32 * b..]);
        let (dw, z) = blk.scale_zero();
        acc += dw * (d[b] * dot as f32 - z * s[b]);
    }
    acc
}

fn q5_values<'a>(qs: &'a [u8; 16], qh: [u8; 4]) -> impl Iterator<Item = i32> + 'a {
    let h = u32::from_le_bytes(qh);
    nibbles(qs)
        .enumerate()
        .map(move |(j, q)| q | ((((h >> j) & 1) as i32) << 4))
}

pub fn dot_q5_0(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ5_0>(w).iter().enumerate() {
        let dot = idot(q5_values(&blk.qs, blk.qh), &qs[32 * b..]);
        acc += f16_to_f32(blk.d) * (d[b] * dot as f32 - 16.0 * s[b]);
    }
    acc
}

pub fn dot_q5_1(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ5_1>(w).iter().enumerate() {
        let dot = idot(q5_values(&blk.qs, blk.qh), &qs[32 * b..]);
        acc += f16_to_f32(blk.d) * d[b] * dot as f32 + f16_to_f32(blk.m) * s[b];
    }
    acc
}

/// Q4_K / Q5_K: 8 sub-blocks of 32, each meeting one activation block.
fn dot_k4(
    d_all: f32,
    dmin: f32,
    scales: &[u8; 12],
    value: impl Fn(usize, usize) -> i32,
    qs: &[i8],
    d: &[f32],
    s: &[f32],
) -> f32 {
    let mut acc = 0f32;
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, scales);
        let dot: i32 = (0..32).map(|l| value(j, l) * qs[32 * j + l] as i32).sum();
        acc += d_all * sc as f32 * d[j] * dot as f32 - dmin * m as f32 * s[j];
    }
    acc
}

pub fn dot_q4_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ4K>(w).iter().enumerate() {
        let value = |j: usize, l: usize| {
            let byte = blk.qs[32 * (j / 2) + l];
            (if j.is_multiple_of(2) {
                byte & 0x0F
            } else {
                byte >> 4
            }) as i32
        };
        let (q, dd, ss) = (&qs[256 * b..], &d[8 * b..], &s[8 * b..]);
        acc += dot_k4(
            f16_to_f32(blk.d),
            f16_to_f32(blk.dmin),
            &blk.scales,
            value,
            q,
            dd,
            ss,
        );
    }
    acc
}

pub fn dot_q5_k(w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ5K>(w).iter().enumerate() {
        let value = |j: usize, l: usize| {
            let byte = blk.qs[32 * (j / 2) + l];
            let low = (if j.is_multiple_of(2) {
                byte & 0x0F
            } else {
                byte >> 4
            }) as i32;
            let high = ((blk.qh[l] >> j) & 1) as i32;
            low | (high << 4)
        };
        let (q, dd, ss) = (&qs[256 * b..], &d[8 * b..], &s[8 * b..]);
        acc += dot_k4(
            f16_to_f32(blk.d),
            f16_to_f32(blk.dmin),
            &blk.scales,
            value,
            q,
            dd,
            ss,
        );
    }
    acc
}

pub fn dot_q6_k(w: &[u8], qs: &[i8], d: &[f32], _s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockQ6K>(w).iter().enumerate() {
        // Element e of the block is (q - 32) with scale scales[e / 16].
        let mut q = [0i32; 256];
        for h in 0..2 {
            let (ql, qh) = (&blk.ql[64 * h..], &blk.qh[32 * h..]);
            for l in 0..32 {
                let e = 128 * h + l;
                q[e] = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
                q[e + 32] = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                q[e + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                q[e + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            }
        }
        let dw = f16_to_f32(blk.d);
        for sub in 0..16 {
            let x = &qs[256 * b + 16 * sub..];
            let dot: i32 = (0..16).map(|l| q[16 * sub + l] * x[l] as i32).sum();
            acc += dw * blk.scales[sub] as f32 * d[8 * b + sub / 2] * dot as f32;
        }
    }
    acc
}

/// The 32 grid values of an IQ4 block's nibbles, in element order.
fn iq4_values(qs: &[u8; 16]) -> impl Iterator<Item = i32> + '_ {
    nibbles(qs).map(|n| IQ4_GRID[n as usize] as i32)
}

pub fn dot_iq4_nl(w: &[u8], qs: &[i8], d: &[f32], _s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockIQ4NL>(w).iter().enumerate() {
        let dot = idot(iq4_values(&blk.qs), &qs[32 * b..]);
        acc += f16_to_f32(blk.d) * d[b] * dot as f32;
    }
    acc
}

pub fn dot_iq4_xs(w: &[u8], qs: &[i8], d: &[f32], _s: &[f32]) -> f32 {
    let mut acc = 0f32;
    for (b, blk) in blocks::<BlockIQ4XS>(w).iter().enumerate() {
        let dw = f16_to_f32(blk.d);
        for ib in 0..8 {
            let a = 8 * b + ib;
            let sub: &[u8; 16] = blk.qs[16 * ib..16 * ib + 16].try_into().unwrap_or(&[0; 16]);
            let dot = idot(iq4_values(sub), &qs[32 * a..]);
            acc += dw * blk.scale(ib) as f32 * d[a] * dot as f32;
        }
    }
    acc
}

/// Float dots accumulate in eight partial sums, the order SIMD kernels use.
fn dot_with(n: usize, w: impl Fn(usize) -> f32, x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let full = n / 8 * 8;
    for i in (0..full).step_by(8) {
        for l in 0..8 {
            acc[l] += w(i + l) * x[i + l];
        }
    }
    let mut tail = 0f32;
    for (i, xi) in x.iter().enumerate().take(n).skip(full) {
        tail += w(i) * xi;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

// Float rows are read as little-endian byte arrays (alignment 1), not cast to `&[f32]` or
// `&[u16]`: a row may start at any address (a SIMD kernel's tail, a byte buffer, flash).

pub fn dot_f32(w: &[u8], x: &[f32]) -> f32 {
    let w: &[[u8; 4]] = bytemuck::cast_slice(w);
    dot_with(x.len(), |i| f32::from_le_bytes(w[i]), x)
}

pub fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    let w: &[[u8; 2]] = bytemuck::cast_slice(w);
    dot_with(x.len(), |i| f16_to_f32(u16::from_le_bytes(w[i])), x)
}

pub fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    let w: &[[u8; 2]] = bytemuck::cast_slice(w);
    dot_with(x.len(), |i| bf16_to_f32(u16::from_le_bytes(w[i])), x)
}

/// Attention scores of one query head against n = scores.len() cached keys:
/// scores[p] = scale · Σ_d q[d] · keys[p·stride + offset + d], d < hs = q.len().
/// keys: (n, stride) row-major, the head's hs keys at `offset` in each row.
pub fn attn_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    offset: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let hs = q.len();
    check_rows(keys.len(), scores.len(), stride, offset, hs);
    for (p, s) in scores.iter_mut().enumerate() {
        let key = &keys[p * stride + offset..p * stride + offset + hs];
        *s = scale * dot_with(hs, |i| key[i], q);
    }
}

/// Attention's weighted sum of values: out[d] = Σ_p scores[p] · values[p·stride + offset + d]
/// for d < hs = out.len(), p < n = scores.len(); out is overwritten.
pub fn attn_values(scores: &[f32], values: &[f32], stride: usize, offset: usize, out: &mut [f32]) {
    let hs = out.len();
    check_rows(values.len(), scores.len(), stride, offset, hs);
    out.fill(0.0);
    for (p, &w) in scores.iter().enumerate() {
        let v = &values[p * stride + offset..p * stride + offset + hs];
        for (o, &x) in out.iter_mut().zip(v) {
            *o += w * x;
        }
    }
}

/// Asserts that `len` floats hold n rows of `stride` with hs elements at `offset` in each:
/// (n − 1)·stride + offset + hs ≤ len. The SIMD attention kernels rely on it for raw pointers.
pub(crate) fn check_rows(len: usize, n: usize, stride: usize, offset: usize, hs: usize) {
    if n > 0 {
        let need = (n - 1)
            .checked_mul(stride)
            .and_then(|x| x.checked_add(offset))
            .and_then(|x| x.checked_add(hs));
        assert!(
            need.is_some_and(|need| need <= len),
            "attention: {n} rows of stride {stride} at offset {offset} + {hs} overrun {len}"
        );
    }
}
