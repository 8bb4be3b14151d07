//! The recurrent token mixers (schema::Recurrent): LFM2's short convolution, Mamba-2 and
//! Gated DeltaNet. They run token by token over a state the session keeps per layer
//! (`KvCache::state_mut`): the convolution's last K-1 inputs, then (Mamba-2, Gated
//! DeltaNet) a (P, N) matrix per head. A state cannot be rewound: it is zeroed when a pass starts at position 0, and
//! holds exactly the positions before `pos` otherwise.

use super::forward::{linear, linears, Compute, Parts, Pass};
use super::weights::{ConvKernel, GatedDeltaNet, Mamba2, ShortConv};
use super::Config;
use crate::exec::SyncMutPtr;
use crate::kernels::{self as k, recurrent as r};
use crate::math::expf;

/// out = out_proj(c ⊙ conv(b ⊙ x)) with b, c, x = in_proj·in; `in` is xn (`normed`) or x,
/// `out` y (`to_y`) or xn. State: the last K-1 values of b ⊙ x, (K-1, C).
pub(super) fn short_conv(
    cx: Compute,
    li: usize,
    w: &ShortConv,
    pass: Pass,
    state: &mut [f32],
    s: &mut Parts,
) {
    let Pass {
        normed,
        to_y,
        t,
        pos,
    } = pass;
    let c = w.out_proj.w.rows;
    if pos == 0 {
        state.fill(0.0);
    }
    let input: &[f32] = if normed { s.xn } else { s.x };
    linear(
        cx,
        li,
        "shortconv.in_proj",
        &w.in_proj,
        input,
        t,
        s.mix_in,
        &mut s.act,
    );
    // mix_in (T, 3C) = [b | c | x] per token; mix_conv (T, C) = b ⊙ x, convolved in place.
    for i in 0..t {
        let row = &s.mix_in[i * 3 * c..(i + 1) * 3 * c];
        let bx = &mut s.mix_conv[i * c..(i + 1) * c];
        for ((o, &b), &x) in bx.iter_mut().zip(&row[..c]).zip(&row[2 * c..]) {
            *o = b * x;
        }
    }
    let kernel = &w.conv;
    let row = &mut s.row[..c];
    r::causal_conv(
        kernel.weight,
        kernel.bias,
        kernel.taps,
        state,
        &mut s.mix_conv[..t * c],
        t,
        row,
    );
    for i in 0..t {
        let gate = &s.mix_in[i * 3 * c + c..i * 3 * c + 2 * c];
        let y = &mut s.mix_y[i * c..(i + 1) * c];
        for ((o, &g), &v) in y.iter_mut().zip(gate).zip(&s.mix_conv[i * c..(i + 1) * c]) {
            *o = g * v;
        }
    }
    let out = if to_y { &mut *s.y } else { &mut *s.xn };
    linear(
        cx,
        li,
        "shortconv.out_proj",
        &w.out_proj,
        s.mix_y,
        t,
        out,
        &mut s.act,
    );
}

/// The start of the SSM mixers: the sizes (H, P, N, G, H·P, convolution channels), and the
/// state zeroed at position 0 and split into the convolution's window and the heads'
/// matrices.
fn ssm_parts<'s>(
    cfg: &Config,
    pos: usize,
    state: &'s mut [f32],
) -> ([usize; 6], &'s mut [f32], &'s mut [f32]) {
    let (h, p) = (cfg.ssm_heads, cfg.ssm_head_dim);
    let ch = cfg.dims().conv_channels(cfg.features.recurrent);
    if pos == 0 {
        state.fill(0.0);
    }
    let (conv, heads) = state.split_at_mut((cfg.conv_kernel - 1) * ch);
    (
        [h, p, cfg.ssm_state, cfg.ssm_groups, h * p, ch],
        conv,
        heads,
    )
}

/// The convolution of `t` tokens' rows x (T, CH) in place, then silu.
fn conv_silu(kernel: &ConvKernel, window: &mut [f32], x: &mut [f32], t: usize, row: &mut [f32]) {
    r::causal_conv(kernel.weight, kernel.bias, kernel.taps, window, x, t, row);
    r::silu(x);
}

/// Mamba-2: z, xBC, dt = in_proj·in; xBC = silu(conv(xBC) + bias); each head's selective
/// scan (`Kernels::ssm_step` per token) gives y (H·P); out = out_proj(norm(y ⊙ silu(z)))
/// with an RMSNorm per group of H·P/G channels. State: the last K-1 xBC inputs
/// ((K-1), H·P + 2·G·N), then H matrices (P, N).
pub(super) fn mamba2(
    cx: Compute,
    cfg: &Config,
    li: usize,
    w: &Mamba2,
    pass: Pass,
    state: &mut [f32],
    s: &mut Parts,
) {
    let Pass {
        normed,
        to_y,
        t,
        pos,
    } = pass;
    let ([h, p, n, g, hp, ch], conv_state, ssm_state) = ssm_parts(cfg, pos, state);
    let d_in = w.in_proj.w.rows; // z (HP), xBC (CH), dt (H)
    let input: &[f32] = if normed { s.xn } else { s.x };
    linear(cx, li, "ssm_in", &w.in_proj, input, t, s.mix_in, &mut s.act);
    for i in 0..t {
        s.mix_conv[i * ch..(i + 1) * ch].copy_from_slice(&s.mix_in[i * d_in + hp..][..ch]);
    }
    conv_silu(
        &w.conv,
        conv_state,
        &mut s.mix_conv[..t * ch],
        t,
        &mut s.row[..ch],
    );
    // Heads are independent: one part per head, each with its own state and outputs.
    let heads_per_group = h / g;
    let (xbc, d_raw) = (&s.mix_conv[..], &s.mix_in[..]);
    let (states, ys) = (
        SyncMutPtr(ssm_state.as_mut_ptr()),
        SyncMutPtr(s.mix_y.as_mut_ptr()),
    );
    let step = cx.kernels.ssm_step;
    cx.exec.run(h, &|head| {
        let grp = head / heads_per_group;
        // SAFETY: part `head` alone uses state matrix `head`, inside the H·P·N state.
        let st = unsafe { states.slice(head * p * n, p * n) };
        for i in 0..t {
            let dt = r::softplus(d_raw[i * d_in + hp + ch + head] + w.dt_bias[head]);
            let row = &xbc[i * ch..(i + 1) * ch];
            let (b, c) = (
                &row[hp + grp * n..hp + (grp + 1) * n],
                &row[hp + g * n + grp * n..hp + g * n + (grp + 1) * n],
            );
            // SAFETY: part `head` alone writes columns head·P.. of each token's row of y
            // (T, H·P).
            let y = unsafe { ys.slice(i * hp + head * p, p) };
            let x = &row[head * p..(head + 1) * p];
            step(st, x, b, c, expf(dt * w.a[head]), dt, w.d[head], y);
        }
    });
    // y ⊙ silu(z), into z's place; then the grouped RMSNorm into mix_y.
    let swiglu = cx.kernels.swiglu;
    let gs = hp / g;
    for i in 0..t {
        let z = &mut s.mix_in[i * d_in..i * d_in + hp];
        swiglu(z, &s.mix_y[i * hp..(i + 1) * hp]);
        for grp in 0..g {
            let span = i * hp + grp * gs..i * hp + (grp + 1) * gs;
            k::rmsnorm(
                &mut s.mix_y[span],
                &z[grp * gs..(grp + 1) * gs],
                &w.norm[grp * gs..(grp + 1) * gs],
                cfg.norm_eps,
            );
        }
    }
    let out = if to_y { &mut *s.y } else { &mut *s.xn };
    linear(cx, li, "ssm_out", &w.out_proj, s.mix_y, t, out, &mut s.act);
}

/// Gated DeltaNet (Qwen3.5): q, k, v = silu(conv(qkv·in)); q and k L2-normalised per key
/// head, q scaled by 1/√N; each value head's delta rule (`Kernels::delta_step` per token)
/// with decay exp(A·softplus(alpha·in + dt_bias)) and β = sigmoid(beta·in)
/// gives o (H·P); out = out_proj(rmsnorm(o_h) ⊙ silu(z_h)), z = gate·in. State: the last
/// K-1 qkv inputs ((K-1), 2·G·N + H·P), then H matrices (P, N).
pub(super) fn gated_delta_net(
    cx: Compute,
    cfg: &Config,
    li: usize,
    w: &GatedDeltaNet,
    pass: Pass,
    state: &mut [f32],
    s: &mut Parts,
) {
    let Pass {
        normed,
        to_y,
        t,
        pos,
    } = pass;
    let ([h, p, n, g, hp, ch], conv_state, delta_state) = ssm_parts(cfg, pos, state);
    let input: &[f32] = if normed { s.xn } else { s.x };
    // mix_in holds z (T, H·P), then β's inputs (T, H), then the decay's (T, H).
    let (z, rest) = s.mix_in.split_at_mut(t * hp);
    let (beta, rest) = rest.split_at_mut(t * h);
    let alpha = &mut rest[..t * h];
    linears(
        cx,
        li,
        [
            ("attn_qkv", &w.qkv, &mut s.mix_conv[..]),
            ("attn_gate", &w.gate, &mut z[..]),
            ("ssm_beta", &w.beta, &mut beta[..]),
            ("ssm_alpha", &w.alpha, &mut alpha[..]),
        ],
        input,
        t,
        &mut s.act,
    );
    let qkv = &mut s.mix_conv[..t * ch];
    conv_silu(&w.conv, conv_state, qkv, t, &mut s.row[..ch]);
    let q_scale = 1.0 / crate::math::sqrtf(n as f32);
    for row in qkv.chunks_exact_mut(ch) {
        for head in row[..2 * g * n].chunks_exact_mut(n) {
            r::l2_normalize(head, 1e-6);
        }
        row[..g * n].iter_mut().for_each(|v| *v *= q_scale);
    }
    // Value heads are independent: one part per head, each with its own state and outputs.
    let per_key = h / g;
    let tiled = cfg.ssm_tiled_heads;
    let (qkv, beta, alpha) = (&*qkv, &*beta, &*alpha);
    let (states, outs) = (
        SyncMutPtr(delta_state.as_mut_ptr()),
        SyncMutPtr(s.mix_y.as_mut_ptr()),
    );
    let step = cx.kernels.delta_step;
    cx.exec.run(h, &|j| {
        let kh = if tiled { j % g } else { j / per_key };
        // SAFETY: part j alone uses state matrix j, inside the H·P·N state.
        let st = unsafe { states.slice(j * p * n, p * n) };
        for i in 0..t {
            let decay = expf(w.a[j] * r::softplus(alpha[i * h + j] + w.dt_bias[j]));
            let b = 1.0 / (1.0 + expf(-beta[i * h + j]));
            let row = &qkv[i * ch..(i + 1) * ch];
            let (q, k, v) = (
                &row[kh * n..(kh + 1) * n],
                &row[g * n + kh * n..g * n + (kh + 1) * n],
                &row[2 * g * n + j * p..2 * g * n + (j + 1) * p],
            );
            // SAFETY: part j alone writes columns j·P.. of each token's row of o (T, H·P).
            let o = unsafe { outs.slice(i * hp + j * p, p) };
            step(st, q, k, v, decay, b, o);
        }
    });
    // Per head: z ← rmsnorm(o_h) ⊙ silu(z_h).
    let swiglu = cx.kernels.swiglu;
    for i in 0..t {
        for j in 0..h {
            let at = i * hp + j * p;
            k::rmsnorm(&mut s.row[..p], &s.mix_y[at..at + p], w.norm, cfg.norm_eps);
            swiglu(&mut z[at..at + p], &s.row[..p]);
        }
    }
    let out = if to_y { &mut *s.y } else { &mut *s.xn };
    linear(cx, li, "ssm_out", &w.out_proj, z, t, out, &mut s.act);
}
