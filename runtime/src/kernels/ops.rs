//! Reference kernels: plain loops, shape comments, no unsafe. The specification that
//! optimized kernels are tested against.

use ember_format::{blocks, rows16, Layout};

use super::Kernels;
use crate::kv_cache::KvRows;
use core::ops::Range;

use crate::math::{expf, sincos64, sqrt64, tanhf};
use crate::model::Matrix;

/// Dot product with eight partial sums (the order SIMD kernels use, and fast when
/// auto-vectorized).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for i in 0..chunks {
        for l in 0..8 {
            acc[l] += a[8 * i + l] * b[8 * i + l];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i];
    }
    let s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    s + tail
}

/// One row of `w` as f32 into `out` (cols).
pub fn dequantize_row(w: &Matrix, r: usize, out: &mut [f32]) {
    match w.layout {
        Layout::Rows16 => rows16::dequantize_row(w.dtype, w.data, w.cols, r, &mut out[..w.cols]),
        _ => blocks::dequantize_row_ref(w.dtype, w.row(r), &mut out[..w.cols]),
    }
}

/// out = x / rms(x) * w, over one row of C (mean of squares in f64 for accuracy).
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let ss: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
    let scale = (1.0 / sqrt64((ss as f32 + eps) as f64)) as f32;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = g * (v * scale);
    }
}

/// out = (x - mean) / sqrt(var + eps) * w + b, over one row of C.
pub fn layernorm(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (v as f64 - mean) * (v as f64 - mean))
        .sum::<f64>()
        / n;
    let inv = 1.0 / sqrt64(var + eps as f64);
    for (((o, &v), &g), &s) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = ((v as f64 - mean) * inv) as f32 * g + s;
    }
}

/// cos and sin of one position's RoPE angles: `out` (HS) = cos (HS/2) then sin (HS/2), with
/// angle = pos · inv_freq[i] computed in f32 as Hugging Face does, both multiplied by
/// `factor` (YaRN's attention factor; 1 otherwise). Computed once per position and shared by
/// every head and layer of one kind.
pub fn rope_angles(out: &mut [f32], pos: usize, inv_freq: &[f32], factor: f32) {
    let half = inv_freq.len();
    let (cos, sin) = out[..2 * half].split_at_mut(half);
    for i in 0..half {
        let (s, c) = sincos64((pos as f32 * inv_freq[i]) as f64);
        cos[i] = c as f32 * factor;
        sin[i] = s as f32 * factor;
    }
}

/// Rotates the first `rope_dim` (R ≤ HS) dimensions of each head of `x` (heads · HS) in
/// Hugging Face's rotate-half convention: dimension i pairs with i + R/2; the others pass
/// through (partial RoPE). `angles` (R) comes from `rope_angles`.
pub fn rope(x: &mut [f32], head_dim: usize, rope_dim: usize, angles: &[f32]) {
    let half = rope_dim / 2;
    let (cos, sin) = angles[..rope_dim].split_at(half);
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head[..rope_dim].split_at_mut(half);
        for i in 0..half {
            let (a, b) = (lo[i], hi[i]);
            lo[i] = a * cos[i] - b * sin[i];
            hi[i] = b * cos[i] + a * sin[i];
        }
    }
}

/// In-place softmax over `x`. (Always inlined, as the other elementwise functions, so each
/// level's table compiles it for its vector width.)
#[inline(always)]
pub fn softmax(x: &mut [f32]) {
    // The maximum in 16 lanes (a loop the compiler vectorizes; the maximum of a set does
    // not depend on the order it is taken in).
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = m.max(v);
        }
    }
    let max = lanes.iter().fold(tail, |m, &v| m.max(v));
    for v in x.iter_mut() {
        *v = expf(*v - max);
    }
    // The sum in 8 f64 lanes, then the lanes in order: a fixed order (the same bits at every
    // level) that the compiler vectorizes, instead of one chain of dependent adds.
    let mut lanes = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += v as f64;
        }
    }
    let sum = lanes.iter().sum::<f64>() + tail;
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Floats of keys (or values) per block of [`attention_heads`]: 16 KiB, which stays in L1
/// while every head of a group reads it. An f16 cache converts each block into a stack
/// buffer of this size (only then: a microcontroller choosing f16 needs the 16 KiB of
/// stack, one with an f32 cache does not).
const ATTENTION_BLOCK_FLOATS: usize = 4 * 1024;

/// Runs `f` with a block buffer on the stack, in a frame of its own (not inlined), so that
/// callers without f16 rows never reserve it.
#[inline(never)]
fn with_block_buffer(f: impl FnOnce(&mut [f32])) {
    let mut buf = [0f32; ATTENTION_BLOCK_FLOATS];
    f(&mut buf)
}

/// dst ← src's f16 values as f32 (`dst.len()` of them). Exact, so every level gives the
/// same bits; written to vectorize (no branch per value).
#[inline(always)]
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert!(src.len() >= dst.len());
    for (o, &h) in dst.iter_mut().zip(src) {
        *o = f16_to_f32_exact(h);
    }
}

/// One f16 as f32, by bit moves and one subtraction (normal, subnormal, zero, inf, NaN).
#[inline(always)]
fn f16_to_f32_exact(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let bits = (h & 0x7FFF) << 13;
    let exp = bits & 0x0F80_0000;
    // Rebias the exponent (15 -> 127); inf and NaN go the rest of the way to 255.
    let normal = bits + ((127 - 15) << 23);
    let v = if exp == 0x0F80_0000 {
        f32::from_bits(normal + ((128 - 16) << 23))
    } else if exp == 0 {
        // Zero or subnormal m·2^-24: (1 + m/1024)·2^-14 − 2^-14, exact.
        f32::from_bits(normal + (1 << 23)) - f32::from_bits(113 << 23)
    } else {
        f32::from_bits(normal)
    };
    f32::from_bits(v.to_bits() | sign)
}

/// Elements `r` of cached keys or values as f32: read in place, or converted into `buf`.
fn as_f32<'c>(k: &Kernels, from: KvRows<'c>, r: Range<usize>, buf: &'c mut [f32]) -> &'c [f32] {
    match from {
        KvRows::F32(v) => &v[r],
        KvRows::F16(v) => {
            let dst = &mut buf[..r.len()];
            (k.f16_to_f32)(&v[r], dst);
            dst
        }
    }
}

/// The query heads of one GQA group (G heads sharing a KV head) against n cached keys and
/// values, with the level's attention kernels (scores · `scale`, softmax, weighted sum of
/// values). q, out: (G, HS); scores: G rows of `cap` (scratch, cap ≥ n); tmp: (HS) scratch.
/// Keys and values come in one or two pieces (two where a ring buffer wrapped), (n, HS)
/// rows of this KV head (the cache is head-major), f32 or f16. Both passes walk the rows in
/// blocks that every head uses while the block is in cache, so the group streams its KV head
/// once, not G times (at depth the KV cache is a large share of a decode step's bytes). A
/// head's result does not depend on how many heads share the call.
#[allow(clippy::too_many_arguments)]
pub fn attention_heads(
    k: &Kernels,
    out: &mut [f32],
    tmp: &mut [f32],
    q: &[f32],
    pieces: &[(KvRows, KvRows)],
    scale: f32,
    scores: &mut [f32],
    cap: usize,
) {
    let f16 = |r: &KvRows| matches!(r, KvRows::F16(_));
    if pieces.iter().any(|(k, v)| f16(k) || f16(v)) {
        with_block_buffer(|buf| attention_blocks(k, out, tmp, q, pieces, scale, scores, cap, buf));
    } else {
        attention_blocks(k, out, tmp, q, pieces, scale, scores, cap, &mut []);
    }
}

/// [`attention_heads`] with `buf` for f16 blocks (empty where every row is f32).
#[allow(clippy::too_many_arguments)]
fn attention_blocks(
    k: &Kernels,
    out: &mut [f32],
    tmp: &mut [f32],
    q: &[f32],
    pieces: &[(KvRows, KvRows)],
    scale: f32,
    scores: &mut [f32],
    cap: usize,
    buf: &mut [f32],
) {
    let hs = tmp.len();
    let heads = q.len() / hs;
    assert!(hs > 0 && hs <= ATTENTION_BLOCK_FLOATS);
    let block = ATTENTION_BLOCK_FLOATS / hs;
    let rows = |keys: &KvRows| keys.len() / hs;
    let n: usize = pieces.iter().map(|(keys, _)| rows(keys)).sum();
    assert!(q.len() == heads * hs && out.len() == q.len() && n <= cap);
    assert!(scores.len() >= heads * cap);
    // (first row overall, keys, values, first row in the piece, rows) of every block.
    let blocks = || {
        let mut at = 0;
        pieces.iter().flat_map(move |&(keys, values)| {
            let (start, len) = (at, rows(&keys));
            at += len;
            (0..len)
                .step_by(block)
                .map(move |r| (start + r, keys, values, r, block.min(len - r)))
        })
    };
    for (first, keys, _, r, len) in blocks() {
        let keys = as_f32(k, keys, r * hs..(r + len) * hs, buf);
        for j in 0..heads {
            let row = &mut scores[j * cap + first..j * cap + first + len];
            (k.attn_scores)(&q[j * hs..(j + 1) * hs], keys, hs, 0, scale, row);
        }
    }
    for j in 0..heads {
        (k.softmax)(&mut scores[j * cap..j * cap + n]);
    }
    out.fill(0.0);
    for (first, _, values, r, len) in blocks() {
        let values = as_f32(k, values, r * hs..(r + len) * hs, buf);
        for j in 0..heads {
            let w = &scores[j * cap + first..j * cap + first + len];
            (k.attn_values)(w, values, hs, 0, tmp);
            add_in_place(&mut out[j * hs..(j + 1) * hs], tmp);
        }
    }
}

/// gate = silu(gate) * up, elementwise.
#[inline(always)]
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + expf(-*g)) * u;
    }
}

/// GELU with the tanh approximation (GPT-2's `gelu_new`, `gelu_pytorch_tanh`).
#[inline(always)]
fn gelu_tanh_one(u: f32) -> f32 {
    const K: f32 = 0.797_884_6; // sqrt(2 / pi)
    0.5 * u * (1.0 + tanhf(K * (u + 0.044_715 * u * u * u)))
}

#[inline(always)]
pub fn gelu_tanh(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_tanh_one(*v);
    }
}

/// gate = gelu_tanh(gate) * up, elementwise (Gemma's GeGLU).
#[inline(always)]
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = gelu_tanh_one(*g) * u;
    }
}

/// x = cap · tanh(x / cap) (Gemma's final logit soft-capping).
pub fn softcap(x: &mut [f32], cap: f32) {
    for v in x.iter_mut() {
        *v = tanhf(*v / cap) * cap;
    }
}

/// RMSNorm of each `hs`-wide head of `x` in place, with weight w (HS): Qwen3's and Gemma 3's
/// query and key norms.
pub fn rmsnorm_heads(x: &mut [f32], hs: usize, w: &[f32], eps: f32) {
    for head in x.chunks_exact_mut(hs) {
        let ss: f64 = head.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / hs as f64;
        let scale = (1.0 / sqrt64((ss as f32 + eps) as f64)) as f32;
        for (v, &g) in head.iter_mut().zip(w) {
            *v = g * (*v * scale);
        }
    }
}

pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
