//! Kernels of the recurrent token mixers (model/recurrent.rs): the depthwise causal
//! convolution over a carried window of past inputs, and one token's step of a head's
//! state: Mamba-2's selective scan ([`ssm_step`]) and Gated DeltaNet's delta rule
//! ([`delta_step`]).
//!
//! The two steps stream the whole state (P·N floats per head) every token, so they are the
//! levels' kernels (`Kernels::ssm_step`, `Kernels::delta_step`): these scalar references
//! are written over 8 independent lanes with a fixed reduction order, which the SIMD levels
//! compile with their vector features (kernels/mod.rs, `vectorized_ops!`) into the same
//! arithmetic on vectors: the same bits at every level.

use crate::math::{expf, lnf};

/// softplus(x) = ln(1 + e^x), linear above 20 as torch computes it.
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        lnf(1.0 + expf(x))
    }
}

/// x ⊙ sigmoid(gate), in place.
pub fn sigmoid_gate(x: &mut [f32], gate: &[f32]) {
    for (v, &g) in x.iter_mut().zip(gate) {
        *v /= 1.0 + expf(-g);
    }
}

/// x / sqrt(Σx² + eps), in place (Gated DeltaNet's q and k, eps 1e-6 as transformers).
pub fn l2_normalize(x: &mut [f32], eps: f32) {
    let ss: f32 = x.iter().map(|v| v * v).sum();
    let inv = 1.0 / crate::math::sqrtf(ss + eps);
    x.iter_mut().for_each(|v| *v *= inv);
}

/// One Gated DeltaNet value head over `t` tokens, state `s` (P, N) (row p: value channel p
/// against the N key channels): for token i with k, q (N, q already scaled) and v (P),
/// decay e^g and β, S ← e^g·S; S ← S + β (v − S·k) ⊗ k; o = S·q.
pub fn delta_rule_head<'a>(
    s: &mut [f32],
    t: usize,
    gates: impl Fn(usize) -> (f32, f32),
    qkv: impl Fn(usize) -> (&'a [f32], &'a [f32], &'a [f32]),
    mut o: impl FnMut(usize, usize, f32),
) {
    for i in 0..t {
        let (decay, beta) = gates(i);
        let (q, k, v) = qkv(i);
        let n = k.len();
        for (p, &vp) in v.iter().enumerate() {
            let row = &mut s[p * n..(p + 1) * n];
            let mut kv = 0.0;
            for (sv, &kn) in row.iter_mut().zip(k) {
                *sv *= decay;
                kv += *sv * kn;
            }
            let delta = (vp - kv) * beta;
            let mut out = 0.0;
            for ((sv, &kn), &qn) in row.iter_mut().zip(k).zip(q) {
                *sv += kn * delta;
                out += *sv * qn;
            }
            o(i, p, out);
        }
    }
}

/// x · sigmoid(x), in place.
pub fn silu(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v /= 1.0 + expf(-*v));
}

/// Depthwise causal convolution of `t` tokens, in place: x (T, CH) becomes
/// y[i][c] = bias[c] + Σ_j w[c][j] · u[i + j - (K-1)][c], where u is the K-1 inputs of
/// `state` ((K-1, CH), oldest first) followed by x. `state` ends holding the last K-1
/// inputs. `w` is (CH, K); `row` (CH) is scratch.
pub fn causal_conv(
    w: &[f32],
    bias: Option<&[f32]>,
    taps: usize,
    state: &mut [f32],
    x: &mut [f32],
    t: usize,
    row: &mut [f32],
) {
    let ch = row.len();
    let past = taps - 1;
    debug_assert!(w.len() == ch * taps && state.len() == past * ch && x.len() >= t * ch);
    for i in 0..t {
        let xi = &mut x[i * ch..(i + 1) * ch];
        for (c, out) in row.iter_mut().enumerate() {
            let wc = &w[c * taps..(c + 1) * taps];
            let mut acc = bias.map_or(0.0, |b| b[c]);
            for (j, &wj) in wc[..past].iter().enumerate() {
                acc += wj * state[j * ch + c];
            }
            *out = acc + wc[past] * xi[c];
        }
        // The window moves one input on: drop the oldest, append this token's input.
        if past > 0 {
            state.copy_within(ch.., 0);
            state[(past - 1) * ch..].copy_from_slice(xi);
        }
        xi.copy_from_slice(row);
    }
}

/// Lanes of the reductions below: one AVX2 vector.
const LANES: usize = 8;

/// Σ a·b over 8 lanes (element i in lane i mod 8), the lanes summed pairwise at the end.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ta.iter().zip(tb).enumerate() {
        acc[l] += x * y;
    }
    lanes_sum(acc)
}

/// (Σ a·b, Σ a·c) in one pass over a, each as [`dot`] computes it (the same bits).
#[inline(always)]
fn dot2(a: &[f32], b: &[f32], c: &[f32]) -> (f32, f32) {
    let (mut ab, mut ac) = ([0f32; LANES], [0f32; LANES]);
    let (ca, cb, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let (ta, tb, tc) = (ca.remainder(), cb.remainder(), cc.remainder());
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for l in 0..LANES {
            ab[l] += x[l] * y[l];
            ac[l] += x[l] * z[l];
        }
    }
    for (l, ((x, y), z)) in ta.iter().zip(tb).zip(tc).enumerate() {
        ab[l] += x * y;
        ac[l] += x * z;
    }
    (lanes_sum(ab), lanes_sum(ac))
}

#[inline(always)]
fn lanes_sum(a: [f32; LANES]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// One Mamba-2 head, one token: with the head's state `s` (P, N), its input x (P), B and C
/// (N), decay = exp(dt·A): row p of S ← decay·S_p + (dt·x_p)·B; y_p = S_p·C + D·x_p.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn ssm_step(
    s: &mut [f32],
    x: &[f32],
    b: &[f32],
    c: &[f32],
    decay: f32,
    dt: f32,
    d: f32,
    y: &mut [f32],
) {
    let n = b.len();
    for ((row, &xp), yp) in s.chunks_exact_mut(n).zip(x).zip(y.iter_mut()) {
        let u = dt * xp;
        for (sv, &bv) in row.iter_mut().zip(b) {
            *sv = *sv * decay + u * bv;
        }
        *yp = dot(row, c) + d * xp;
    }
}

/// One Gated DeltaNet value head, one token: with its state `s` (P, N; row p is value
/// channel p against the N key channels), q (N, scaled), k (N), v (P): S ← decay·S;
/// S ← S + β (v − S·k) ⊗ k; o = S·q. Computed per row as a = S_p·k and c = S_p·q of the
/// undecayed row, δ = β (v_p − decay·a), o_p = decay·c + δ (k·q), S_p ← decay·S_p + δ k.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn delta_step(
    s: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    decay: f32,
    beta: f32,
    o: &mut [f32],
) {
    let n = k.len();
    let kq = dot(k, q);
    for ((row, &vp), op) in s.chunks_exact_mut(n).zip(v).zip(o.iter_mut()) {
        let (a, c) = dot2(row, k, q);
        let delta = beta * (vp - decay * a);
        *op = decay * c + delta * kq;
        for (sv, &kv) in row.iter_mut().zip(k) {
            *sv = *sv * decay + delta * kv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_conv_carries_its_window_across_calls() {
        // 2 channels, 3 taps: the same 5 inputs fed at once and as 2 + 3 agree, and equal
        // the convolution written out.
        let w = [0.5, -1.0, 2.0, 1.0, 0.25, -0.5];
        let bias = [0.1, -0.2];
        let xs: [f32; 10] = [1.0, 2.0, -1.0, 0.5, 3.0, 1.5, 0.0, -2.0, 2.5, 1.0];
        let direct = |i: usize, c: usize| {
            let u = |k: isize| if k < 0 { 0.0 } else { xs[k as usize * 2 + c] };
            let i = i as isize;
            bias[c] + w[c * 3] * u(i - 2) + w[c * 3 + 1] * u(i - 1) + w[c * 3 + 2] * u(i)
        };
        let mut once = xs;
        let (mut state, mut row) = ([0.0; 4], [0.0; 2]);
        causal_conv(&w, Some(&bias), 3, &mut state, &mut once, 5, &mut row);
        let mut split = xs;
        let mut state2 = [0.0; 4];
        let (a, b) = split.split_at_mut(4);
        causal_conv(&w, Some(&bias), 3, &mut state2, a, 2, &mut row);
        causal_conv(&w, Some(&bias), 3, &mut state2, b, 3, &mut row);
        for i in 0..5 {
            for c in 0..2 {
                assert!((once[i * 2 + c] - direct(i, c)).abs() < 1e-6);
                assert_eq!(once[i * 2 + c], split[i * 2 + c]);
            }
        }
        assert_eq!(state, state2);
        assert_eq!(state, [0.0, -2.0, 2.5, 1.0]);
    }

    #[test]
    fn softplus_matches_its_definition() {
        for x in [-30.0f32, -3.0, 0.0, 0.7, 19.0, 25.0] {
            let want = (1.0 + (x as f64).exp()).ln() as f32;
            assert!(
                (softplus(x) - want).abs() <= 1e-5 * want.abs().max(1e-3),
                "{x}"
            );
        }
    }
}
