//! Error-minimizing block quantizers: for each block, a search over candidate scales (and
//! zero points), each refitted by weighted least squares and scored by the weighted squared
//! error of the block as it will be stored (scales rounded to their stored precision, the
//! integers rounded again for them). Deterministic: plain loops in a fixed order.
//!
//! Weights `w` (one per element, >= 0) come from calibration (mean x² of the input channel
//! the element multiplies: errors on channels that carry large activations cost more), or
//! are all 1 (plain squared error).

use ember_format::blocks::{
    f16_to_f32, f32_to_f16, q4z_code_d, q4z_d, BlockIQ4NL, BlockQ4Z, BlockQ4_0, BlockQ4_1,
    BlockQ5_0, BlockQ5_1, BlockQ8_0, IQ4_GRID,
};
use ember_format::DType;

/// Whether [`quantize_row`] has a searching quantizer for `dtype`.
pub fn has_search(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::Q8_0
            | DType::Q4_0
            | DType::Q4_1
            | DType::Q4Z
            | DType::Q5_0
            | DType::Q5_1
            | DType::IQ4NL
    )
}

/// Quantizes `x` (whole blocks of 32) into `out` with per-element weights `w` (same length
/// as `x`, or `None` for all 1). Returns false for dtypes without a search (see
/// [`has_search`]).
pub fn quantize_row(dtype: DType, x: &[f32], w: Option<&[f32]>, out: &mut [u8]) -> bool {
    const ONES: [f32; 32] = [1.0; 32];
    assert_eq!(Some(out.len()), dtype.row_bytes(x.len()), "size mismatch");
    if let Some(w) = w {
        assert_eq!(w.len(), x.len(), "weights");
    }
    let weights = |b: usize| -> &[f32; 32] {
        match w {
            Some(w) => w[32 * b..32 * b + 32].try_into().expect("32"),
            None => &ONES,
        }
    };
    // Each 32-weight block of x (with its weights) becomes one output block of type B.
    fn fill<'w, B: bytemuck::Pod>(
        out: &mut [u8],
        x: &[f32],
        weights: impl Fn(usize) -> &'w [f32; 32],
        block: fn(&[f32; 32], &[f32; 32]) -> B,
    ) {
        // Blocks are packed (alignment 1), so any byte buffer casts.
        let out: &mut [B] = bytemuck::cast_slice_mut(out);
        let xs = x
            .chunks_exact(32)
            .map(|c| -> &[f32; 32] { c.try_into().expect("32") });
        for (b, (o, x)) in out.iter_mut().zip(xs).enumerate() {
            *o = block(x, weights(b));
        }
    }
    match dtype {
        DType::Q8_0 => fill::<BlockQ8_0>(out, x, weights, q8_0_block),
        DType::Q4_0 => fill::<BlockQ4_0>(out, x, weights, q4_0_block),
        DType::Q4_1 => fill::<BlockQ4_1>(out, x, weights, q4_1_block),
        DType::Q4Z => fill::<BlockQ4Z>(out, x, weights, q4_z_block),
        DType::Q5_0 => fill::<BlockQ5_0>(out, x, weights, q5_0_block),
        DType::Q5_1 => fill::<BlockQ5_1>(out, x, weights, q5_1_block),
        DType::IQ4NL => fill::<BlockIQ4NL>(out, x, weights, iq4_nl_block),
        _ => return false,
    }
    true
}

/// Round half away from zero (C's `roundf`), as ggml does.
#[inline]
fn round(x: f32) -> f32 {
    x.round()
}

fn nibbles(q: &[u8; 32]) -> [u8; 16] {
    core::array::from_fn(|j| q[j] | (q[j + 16] << 4))
}

/// Symmetric types, `x = d * q` with q in `lo..=hi`: the stored f16 `d`, the integers and
/// the weighted error for a candidate scale `d` (rounded to f16 first).
fn eval_sym(x: &[f32; 32], w: &[f32; 32], d: f32, lo: f32, hi: f32) -> (u16, [i8; 32], f32) {
    let dh = f32_to_f16(d);
    let d = f16_to_f32(dh);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; 32];
    let mut err = 0f32;
    for j in 0..32 {
        let qi = round(x[j] * id).clamp(lo, hi);
        q[j] = qi as i8;
        let e = d * qi - x[j];
        err += w[j] * e * e;
    }
    (dh, q, err)
}

/// Best symmetric block: candidate inverse scales `(n + step·i) / amax` (signed extreme
/// mapped near `n`), each followed by the weighted least-squares scale for its integers.
fn search_sym(
    x: &[f32; 32],
    w: &[f32; 32],
    lo: f32,
    hi: f32,
    n: f32,
    steps: i32,
    step: f32,
) -> (u16, [i8; 32]) {
    // The element of largest magnitude, with its sign.
    let mut max = 0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    if max == 0.0 {
        return (0, [0; 32]);
    }
    let mut best = eval_sym(x, w, max / n, lo, hi);
    for i in -steps..=steps {
        let iscale = (n + step * i as f32) / max;
        let (mut sxq, mut sqq) = (0f32, 0f32);
        for j in 0..32 {
            let q = round(x[j] * iscale).clamp(lo, hi);
            sxq += w[j] * x[j] * q;
            sqq += w[j] * q * q;
        }
        if sqq <= 0.0 {
            continue;
        }
        let cand = eval_sym(x, w, sxq / sqq, lo, hi);
        if cand.2 < best.2 {
            best = cand;
        }
    }
    (best.0, best.1)
}

fn q8_0_block(x: &[f32; 32], w: &[f32; 32]) -> BlockQ8_0 {
    // The signed extreme to 127 (ggml maps |x| max to 127), then candidates around it.
    let (d, qs) = search_sym(x, w, -127.0, 127.0, 127.0, 4, 0.25);
    BlockQ8_0 { d, qs }
}

fn q4_0_block(x: &[f32; 32], w: &[f32; 32]) -> BlockQ4_0 {
    // x = d (q - 8), q - 8 in -8..=7: the signed extreme maps to -8 as in ggml, so d < 0 when
    // it is positive; the candidates shrink and stretch that mapping.
    let (d, q) = search_sym(x, w, -8.0, 7.0, -8.0, 10, 0.1);
    let q: [u8; 32] = core::array::from_fn(|j| (q[j] + 8) as u8);
    BlockQ4_0 { d, qs: nibbles(&q) }
}

/// Affine candidates `x ≈ d q + m`, q in 0..=15: for inverse scales around 15 / (max - min),
/// the integers, then the weighted least-squares (d, m) for them. `min_le_zero` keeps
/// m <= 0 (q4_z stores m = -d z with z >= 0).
fn affine_candidates(x: &[f32; 32], w: &[f32; 32], min_le_zero: bool, each: impl FnMut(f32, f32)) {
    affine_candidates_n(x, w, min_le_zero, 15.0, each)
}

/// [`affine_candidates`] for q in 0..=nmax.
fn affine_candidates_n(
    x: &[f32; 32],
    w: &[f32; 32],
    min_le_zero: bool,
    nmax: f32,
    mut each: impl FnMut(f32, f32),
) {
    let (mut min, mut max) = x
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if min_le_zero {
        min = min.min(0.0);
        max = max.max(0.0);
    }
    if max <= min {
        each(0.0, min);
        return;
    }
    // The plain min/max mapping first.
    each((max - min) / nmax, min);
    let sum_w: f32 = w.iter().sum();
    let sum_x: f32 = w.iter().zip(x).map(|(w, x)| w * x).sum();
    for i in 0..=20 {
        let iscale = (nmax - 1.0 + 0.1 * i as f32) / (max - min);
        let (mut sl, mut sl2, mut sxl) = (0f32, 0f32, 0f32);
        for j in 0..32 {
            let l = round(iscale * (x[j] - min)).clamp(0.0, nmax);
            sl += w[j] * l;
            sl2 += w[j] * l * l;
            sxl += w[j] * l * x[j];
        }
        let det = sum_w * sl2 - sl * sl;
        if det <= 0.0 {
            continue;
        }
        let mut d = (sum_w * sxl - sum_x * sl) / det;
        let mut m = (sl2 * sum_x - sl * sxl) / det;
        if min_le_zero && m > 0.0 {
            m = 0.0;
            d = sxl / sl2;
        }
        if d > 0.0 {
            each(d, m);
        }
    }
}

/// Weighted error and integers of an affine block `x = d q + m` stored exactly as (d, m).
fn eval_affine(x: &[f32; 32], w: &[f32; 32], d: f32, m: f32) -> ([u8; 32], f32) {
    eval_affine_n(x, w, d, m, 15.0)
}

/// [`eval_affine`] for q in 0..=nmax.
fn eval_affine_n(x: &[f32; 32], w: &[f32; 32], d: f32, m: f32, nmax: f32) -> ([u8; 32], f32) {
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; 32];
    let mut err = 0f32;
    for j in 0..32 {
        let qi = round((x[j] - m) * id).clamp(0.0, nmax);
        q[j] = qi as u8;
        let e = d * qi + m - x[j];
        err += w[j] * e * e;
    }
    (q, err)
}

fn q4_1_block(x: &[f32; 32], w: &[f32; 32]) -> BlockQ4_1 {
    let mut best: Option<(f32, u16, u16, [u8; 32])> = None;
    affine_candidates(x, w, false, |d, m| {
        let (dh, mh) = (f32_to_f16(d), f32_to_f16(m));
        let (q, err) = eval_affine(x, w, f16_to_f32(dh), f16_to_f32(mh));
        if best.is_none_or(|b| err < b.0) {
            best = Some((err, dh, mh, q));
        }
    });
    let (_, d, m, q) = best.expect("at least one candidate");
    BlockQ4_1 {
        d,
        m,
        qs: nibbles(&q),
    }
}

/// Packs 5-bit integers as Q5_0/Q5_1 do: low nibbles as q4_0, fifth bits in `qh`.
fn pack5(q: &[u8; 32]) -> ([u8; 4], [u8; 16]) {
    let mut qh = 0u32;
    for (j, &v) in q.iter().enumerate() {
        qh |= u32::from(v >> 4) << j;
    }
    let low: [u8; 32] = core::array::from_fn(|j| q[j] & 0x0F);
    (qh.to_le_bytes(), nibbles(&low))
}

fn q5_0_block(x: &[f32; 32], w: &[f32; 32]) -> BlockQ5_0 {
    // x = d (q - 16), q - 16 in -16..=15: the signed extreme maps to -16 as in ggml.
    let (d, q) = search_sym(x, w, -16.0, 15.0, -16.0, 10, 0.1);
    let q: [u8; 32] = core::array::from_fn(|j| (q[j] + 16) as u8);
    let (qh, qs) = pack5(&q);
    BlockQ5_0 { d, qh, qs }
}

fn q5_1_block(x: &[f32; 32], w: &[f32; 32]) -> BlockQ5_1 {
    let mut best: Option<(f32, u16, u16, [u8; 32])> = None;
    affine_candidates_n(x, w, false, 31.0, |d, m| {
        let (dh, mh) = (f32_to_f16(d), f32_to_f16(m));
        let (q, err) = eval_affine_n(x, w, f16_to_f32(dh), f16_to_f32(mh), 31.0);
        if best.is_none_or(|b| err < b.0) {
            best = Some((err, dh, mh, q));
        }
    });
    let (_, d, m, q) = best.expect("at least one candidate");
    let (qh, qs) = pack5(&q);
    BlockQ5_1 { d, m, qh, qs }
}

/// The index of the IQ4 grid value nearest to `v` (in grid units).
fn iq4_index(v: f32) -> usize {
    // The grid is sorted: the first midpoint above v.
    let mut k = 0;
    while k < 15 && v > 0.5 * (IQ4_GRID[k] as f32 + IQ4_GRID[k + 1] as f32) {
        k += 1;
    }
    k
}

/// IQ4_NL error and indices for a stored f16 scale `dh`.
fn eval_iq4(x: &[f32; 32], w: &[f32; 32], dh: u16) -> ([u8; 32], f32) {
    let d = f16_to_f32(dh);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; 32];
    let mut err = 0f32;
    for j in 0..32 {
        let k = iq4_index(x[j] * id);
        q[j] = k as u8;
        let e = d * IQ4_GRID[k] as f32 - x[j];
        err += w[j] * e * e;
    }
    (q, err)
}

fn iq4_nl_block(x: &[f32; 32], w: &[f32; 32]) -> BlockIQ4NL {
    // As ggml: candidate inverse scales mapping the signed extreme near the grid's end
    // (-127), each refitted by weighted least squares for its indices; scored as stored.
    let mut max = 0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    if max == 0.0 {
        return BlockIQ4NL {
            d: 0,
            qs: nibbles(&[8; 32]),
        };
    }
    let mut best = {
        let dh = f32_to_f16(max / IQ4_GRID[0] as f32);
        let (q, err) = eval_iq4(x, w, dh);
        (err, dh, q)
    };
    for i in -10..=10 {
        let iscale = (IQ4_GRID[0] as f32 + 1.0 * i as f32) / max;
        let (mut sxq, mut sqq) = (0f32, 0f32);
        for j in 0..32 {
            let g = IQ4_GRID[iq4_index(x[j] * iscale)] as f32;
            sxq += w[j] * x[j] * g;
            sqq += w[j] * g * g;
        }
        if sqq <= 0.0 {
            continue;
        }
        let d = sxq / sqq;
        // The stored scale and its f16 neighbours.
        let dh = f32_to_f16(d);
        for h in [dh.wrapping_sub(1), dh, dh.wrapping_add(1)] {
            let (q, err) = eval_iq4(x, w, h);
            if err < best.0 && f16_to_f32(h).is_finite() {
                best = (err, h, q);
            }
        }
    }
    BlockIQ4NL {
        d: best.1,
        qs: nibbles(&best.2),
    }
}

/// q4_z error for scale code `cd` and zero point `zc` (eighths).
fn eval_q4z(x: &[f32; 32], w: &[f32; 32], cd: u16, zc: u16) -> ([u8; 32], f32) {
    let d = q4z_d(cd);
    eval_affine(x, w, d, -d * (zc as f32 * 0.125))
}

/// The best q4_z (error, scale code, zero code, integers) so far.
type Q4zBest = Option<(f32, u16, u16, [u8; 32])>;

fn consider_q4z(best: &mut Q4zBest, x: &[f32; 32], w: &[f32; 32], cd: u16, zc: u16) {
    let (q, err) = eval_q4z(x, w, cd, zc);
    if best.is_none_or(|b| err < b.0) {
        *best = Some((err, cd, zc, q));
    }
}

/// The zero-point code (eighths of `d`) nearest to `-m / d`.
fn code_z(d: f32, m: f32) -> u16 {
    if d > 0.0 {
        round(-m / d * 8.0).clamp(0.0, 127.0) as u16
    } else {
        0
    }
}

fn q4_z_block(x: &[f32; 32], w: &[f32; 32]) -> BlockQ4Z {
    let mut best: Q4zBest = None;
    affine_candidates(x, w, true, |d, m| {
        let cd = q4z_code_d(d, false);
        consider_q4z(&mut best, x, w, cd, code_z(q4z_d(cd), m));
    });
    // Around the best: neighbouring scale codes, each with the least-squares zero point for
    // the best integers and the codes next to it.
    let (_, cd0, zc0, q0) = best.expect("at least one candidate");
    let sum_w: f32 = w.iter().sum();
    for cd in cd0.saturating_sub(2)..=(cd0 + 2).min(0x1EF) {
        let d = q4z_d(cd);
        if d <= 0.0 || sum_w <= 0.0 {
            continue;
        }
        let m: f32 = (0..32)
            .map(|j| w[j] * (x[j] - d * q0[j] as f32))
            .sum::<f32>()
            / sum_w;
        let zc = code_z(d, m);
        for z in zc.saturating_sub(1)..=(zc + 1).min(127) {
            consider_q4z(&mut best, x, w, cd, z);
        }
        consider_q4z(&mut best, x, w, cd, zc0);
    }
    let (_, cd, zc, q) = best.expect("at least one candidate");
    BlockQ4Z {
        sd: (cd << 7) | zc,
        qs: nibbles(&q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_format::blocks::{dequantize_row_ref, quantize_row_ref};

    fn sample(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                // Roughly Gaussian (sum of uniforms) with an occasional outlier.
                let mut acc = 0f32;
                for _ in 0..4 {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                }
                if s.is_multiple_of(97) {
                    acc * 6.0
                } else {
                    acc
                }
            })
            .collect()
    }

    fn sq_err(dtype: DType, x: &[f32], q: &[u8]) -> f64 {
        let mut y = vec![0f32; x.len()];
        dequantize_row_ref(dtype, q, &mut y);
        x.iter()
            .zip(&y)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum()
    }

    #[test]
    fn search_beats_the_reference_quantizers() {
        let x = sample(1, 32 * 256);
        for dtype in [
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q4Z,
            DType::Q5_0,
            DType::Q5_1,
        ] {
            let n = dtype.row_bytes(x.len()).unwrap();
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            assert!(quantize_row(dtype, &x, None, &mut a));
            assert!(quantize_row_ref(dtype, &x, &mut b));
            let (ea, eb) = (sq_err(dtype, &x, &a), sq_err(dtype, &x, &b));
            assert!(ea < eb * 0.97, "{dtype}: search {ea} vs reference {eb}");
            // Deterministic.
            let mut c = vec![0u8; n];
            quantize_row(dtype, &x, None, &mut c);
            assert_eq!(a, c);
        }
    }

    #[test]
    fn q4_z_beats_q4_0_at_the_same_size() {
        let x = sample(2, 32 * 256);
        let e = |dtype: DType| {
            let mut q = vec![0u8; dtype.row_bytes(x.len()).unwrap()];
            quantize_row(dtype, &x, None, &mut q);
            sq_err(dtype, &x, &q)
        };
        let (z, q0, q1) = (e(DType::Q4Z), e(DType::Q4_0), e(DType::Q4_1));
        assert!(z < q0 * 0.8, "q4_z {z} vs q4_0 {q0}");
        assert!(z < q1 * 1.1, "q4_z {z} vs q4_1 {q1}");
    }

    #[test]
    fn q4_1_grids_are_kept_nearly_exactly() {
        // A row that is already on q4_1 grids (as a dequantized Q4_1 GGUF is): q4_1 keeps it
        // exactly, q4_z to within its scale precision.
        let x = sample(3, 32 * 64);
        let mut q41 = vec![0u8; DType::Q4_1.row_bytes(x.len()).unwrap()];
        quantize_row_ref(DType::Q4_1, &x, &mut q41);
        let mut grid = vec![0f32; x.len()];
        dequantize_row_ref(DType::Q4_1, &q41, &mut grid);
        let mut again = vec![0u8; q41.len()];
        quantize_row(DType::Q4_1, &grid, None, &mut again);
        assert_eq!(sq_err(DType::Q4_1, &grid, &again), 0.0);

        let mut z = vec![0u8; DType::Q4Z.row_bytes(x.len()).unwrap()];
        quantize_row(DType::Q4Z, &grid, None, &mut z);
        let ez = sq_err(DType::Q4Z, &grid, &z);
        // Against the rounding error a fresh 4-bit quantization would make.
        let fresh = sq_err(DType::Q4_1, &x, &q41);
        assert!(
            ez < fresh * 0.1,
            "q4_z on a q4_1 grid {ez} vs fresh {fresh}"
        );
    }

    #[test]
    fn weights_steer_the_error() {
        let x = sample(4, 32 * 128);
        // Heavy weight on the first 4 elements of each block.
        let w: Vec<f32> = (0..x.len())
            .map(|i| if i % 32 < 4 { 100.0 } else { 1.0 })
            .collect();
        let n = DType::Q4Z.row_bytes(x.len()).unwrap();
        let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
        quantize_row(DType::Q4Z, &x, None, &mut a);
        quantize_row(DType::Q4Z, &x, Some(&w), &mut b);
        let werr = |q: &[u8]| {
            let mut y = vec![0f32; x.len()];
            dequantize_row_ref(DType::Q4Z, q, &mut y);
            (0..x.len())
                .map(|i| (w[i] * (x[i] - y[i]).powi(2)) as f64)
                .sum::<f64>()
        };
        assert!(werr(&b) < werr(&a), "{} vs {}", werr(&b), werr(&a));
    }

    #[test]
    fn iq4_nl_search_is_between_q4_0_and_q5_0() {
        let x = sample(5, 32 * 256);
        let e = |dtype: DType| {
            let mut q = vec![0u8; dtype.row_bytes(x.len()).unwrap()];
            assert!(quantize_row(dtype, &x, None, &mut q));
            sq_err(dtype, &x, &q)
        };
        let (nl, q0, q5) = (e(DType::IQ4NL), e(DType::Q4_0), e(DType::Q5_0));
        assert!(nl < q0 * 0.95, "iq4_nl {nl} vs q4_0 {q0}");
        assert!(q5 < nl * 0.5, "q5_0 {q5} vs iq4_nl {nl}");
    }

    #[test]
    fn zero_and_constant_blocks() {
        for dtype in [
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q4Z,
            DType::Q5_0,
            DType::Q5_1,
            DType::IQ4NL,
        ] {
            for v in [0.0f32, 0.3, -2.0] {
                let x = vec![v; 32];
                let mut q = vec![0u8; dtype.row_bytes(32).unwrap()];
                quantize_row(dtype, &x, None, &mut q);
                let e = sq_err(dtype, &x, &q);
                assert!(
                    e <= 32.0 * (v as f64 * 0.01).powi(2) + 1e-12,
                    "{dtype} {v}: {e}"
                );
            }
        }
    }
}
