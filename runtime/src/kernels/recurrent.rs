//! Kernels of the recurrent token mixers (model/recurrent.rs): the depthwise causal
//! convolution over a carried window of past inputs, and one Mamba-2 head's selective scan.
//! Scalar; they are a small share of a token's time next to the projections.

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

/// One Mamba-2 head over `t` tokens: for each token i, with dt = softplus(dt_raw[i] +
/// dt_bias) and the head's x (P), B and C (N each),
/// S = exp(dt·A)·S + dt · x ⊗ B; y = S·C + D·x.
/// `s` is the head's state (P, N); `x`, `b`, `c` give token i's slices; `y(i)` its output.
#[allow(clippy::too_many_arguments)]
pub fn ssm_scan_head<'a>(
    s: &mut [f32],
    t: usize,
    a: f32,
    d: f32,
    dt_bias: f32,
    dt_raw: impl Fn(usize) -> f32,
    xbc: impl Fn(usize) -> (&'a [f32], &'a [f32], &'a [f32]),
    mut y: impl FnMut(usize, usize, f32),
) {
    for i in 0..t {
        let dt = softplus(dt_raw(i) + dt_bias);
        let decay = expf(dt * a);
        let (x, b, c) = xbc(i);
        let n = b.len();
        for (p, &xp) in x.iter().enumerate() {
            let row = &mut s[p * n..(p + 1) * n];
            let u = dt * xp;
            let mut acc = 0.0;
            for ((sv, &bv), &cv) in row.iter_mut().zip(b).zip(c) {
                *sv = *sv * decay + u * bv;
                acc += *sv * cv;
            }
            y(i, p, acc + d * xp);
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
