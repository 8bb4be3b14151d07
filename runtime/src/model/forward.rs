//! The forward pass, top to bottom, over T new tokens at positions pos..pos+T.

use alloc::vec;
use alloc::vec::Vec;

use super::config::{Config, FfnKind, NormKind, Positions};
use super::weights::{Linear, Matrix, Norm};
use super::Model;
use crate::exec::Executor;
use crate::kernels::{self as k, ActQ8, Kernels};
use crate::kv_cache::KvCache;
use crate::math::powf;

/// Which positions need logits: generation needs only the last, evaluation all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    Last,
    All,
}

/// Activation buffers for up to `max_batch` tokens at once, planned up front so the decode
/// loop never allocates.
#[derive(Clone, Debug)]
pub struct Scratch {
    pub max_batch: usize,
    x: Vec<f32>,      // (B, C) residual stream
    xn: Vec<f32>,     // (B, C) normalized
    q: Vec<f32>,      // (B, NH·HS)
    kv: Vec<f32>,     // (B, 2·KVH·HS) new keys then values
    att: Vec<f32>,    // (B, NH·HS)
    ffn_a: Vec<f32>,  // (B, F) gate or up
    ffn_b: Vec<f32>,  // (B, F) up
    scores: Vec<f32>, // (capacity)
    row: Vec<f32>,    // (max cols) one dequantized embedding row
    act: ActQ8,       // (B, max cols) activations quantized for integer dot products
    inv_freq: Vec<f32>,
    pub logits: Vec<f32>, // (B, V) or (1, V)
}

impl Scratch {
    pub fn new(cfg: &Config, max_batch: usize, capacity: usize, logits: Logits) -> Scratch {
        let b = max_batch.max(1);
        let (c, f) = (cfg.dim, cfg.ffn_dim);
        let max_cols = c.max(f).max(cfg.q_dim());
        let logit_rows = if logits == Logits::All { b } else { 1 };
        let half = cfg.head_dim / 2;
        let inv_freq = (0..half)
            .map(|i| 1.0 / powf(cfg.rope_theta, (2 * i) as f32 / cfg.head_dim as f32))
            .collect();
        Scratch {
            max_batch: b,
            x: vec![0.0; b * c],
            xn: vec![0.0; b * c],
            q: vec![0.0; b * cfg.q_dim()],
            kv: vec![0.0; b * 2 * cfg.kv_dim()],
            att: vec![0.0; b * cfg.q_dim()],
            ffn_a: vec![0.0; b * f],
            ffn_b: vec![0.0; b * f],
            scores: vec![0.0; capacity],
            row: vec![0.0; max_cols],
            act: ActQ8::new(b, max_cols),
            inv_freq,
            logits: vec![0.0; logit_rows * cfg.vocab_size],
        }
    }

    /// Bytes of scratch for these settings (for `memory_required`).
    pub fn bytes_required(
        cfg: &Config,
        max_batch: usize,
        capacity: usize,
        logits: Logits,
    ) -> usize {
        let b = max_batch.max(1);
        let (c, f) = (cfg.dim, cfg.ffn_dim);
        let logit_rows = if logits == Logits::All { b } else { 1 };
        let floats = b * (2 * c + 2 * cfg.q_dim() + 2 * cfg.kv_dim() + 2 * f)
            + capacity
            + c.max(f).max(cfg.q_dim())
            + cfg.head_dim / 2
            + logit_rows * cfg.vocab_size;
        floats * core::mem::size_of::<f32>() + ActQ8::bytes_required(b, c.max(f).max(cfg.q_dim()))
    }
}

fn norm(kind: NormKind, eps: f32, n: &Norm, x: &[f32], out: &mut [f32], t: usize, c: usize) {
    for i in 0..t {
        let (xi, oi) = (&x[i * c..(i + 1) * c], &mut out[i * c..(i + 1) * c]);
        match (kind, n.bias) {
            (NormKind::Layer, Some(b)) => k::layernorm(oi, xi, n.weight, b, eps),
            _ => k::rmsnorm(oi, xi, n.weight, eps),
        }
    }
}

/// The kernels and threads a forward pass runs on.
#[derive(Clone, Copy)]
pub struct Compute<'e> {
    pub kernels: &'e Kernels,
    pub exec: &'e dyn Executor,
    /// Sees every matmul's input (calibration for importance-weighted quantization).
    pub observer: Option<&'e dyn Observer>,
}

/// Receives the input rows of each weight matrix during a forward pass.
pub trait Observer {
    /// `x` is (T, cols), the input of `blk.{layer}.{weight}.weight` (weight: "attn_q", ...);
    /// `layer` is None for the output head ("output").
    fn matmul_input(&self, layer: Option<usize>, weight: &'static str, x: &[f32], t: usize);
}

#[allow(clippy::too_many_arguments)]
fn linear(
    c: Compute,
    layer: usize,
    name: &'static str,
    l: &Linear,
    x: &[f32],
    t: usize,
    out: &mut [f32],
    act: &mut ActQ8,
) {
    if let Some(o) = c.observer {
        o.matmul_input(Some(layer), name, &x[..t * l.w.cols], t);
    }
    k::matmul::matmul(c.kernels, c.exec, &l.w, l.b, x, t, out, act);
}

fn embed(m: &Matrix, id: usize, out: &mut [f32]) {
    k::dequantize_row(m, id, out);
}

impl<'a> Model<'a> {
    /// Runs `tokens` (T ≤ max_batch) at positions `pos..pos+T`, appending their keys and
    /// values to `cache`. Logits land in `s.logits`: (T, V) for `All`, else the last (V).
    /// The caller checks ids < V and `pos + T <= cache.capacity()` (see `Session`).
    pub fn forward(
        &self,
        cx: Compute,
        tokens: &[u32],
        pos: usize,
        cache: &mut KvCache,
        s: &mut Scratch,
        logits: Logits,
    ) {
        let cfg = &self.config;
        let w = &self.weights;
        let t = tokens.len();
        let (c, hs, qd, kvd, f) = (
            cfg.dim,
            cfg.head_dim,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.ffn_dim,
        );
        let group = cfg.heads / cfg.kv_heads;

        // x (T, C) = token embedding (+ learned position embedding)
        for (i, &id) in tokens.iter().enumerate() {
            embed(&w.token_embd, id as usize, &mut s.x[i * c..(i + 1) * c]);
            if let Some(pe) = &w.pos_embd {
                embed(pe, pos + i, &mut s.row[..c]);
                k::add_in_place(&mut s.x[i * c..(i + 1) * c], &s.row[..c]);
            }
        }

        for (li, layer) in w.layers.iter().enumerate() {
            // Attention block: x += Wo · attention(rope(Wq·xn), rope(Wk·xn), Wv·xn)
            norm(
                cfg.norm,
                cfg.norm_eps,
                &layer.attn_norm,
                &s.x,
                &mut s.xn,
                t,
                c,
            );
            linear(cx, li, "attn_q", &layer.q, &s.xn, t, &mut s.q, &mut s.act);
            let (new_k, new_v) = s.kv.split_at_mut(t * kvd);
            linear(cx, li, "attn_k", &layer.k, &s.xn, t, new_k, &mut s.act);
            linear(
                cx,
                li,
                "attn_v",
                &layer.v,
                &s.xn,
                t,
                &mut new_v[..t * kvd],
                &mut s.act,
            );
            if cfg.positions == Positions::Rope {
                for i in 0..t {
                    k::rope(&mut s.q[i * qd..(i + 1) * qd], hs, pos + i, &s.inv_freq);
                    k::rope(&mut new_k[i * kvd..(i + 1) * kvd], hs, pos + i, &s.inv_freq);
                }
            }
            let (keys, values) = cache.layer_mut(li);
            keys[pos * kvd..(pos + t) * kvd].copy_from_slice(&new_k[..t * kvd]);
            values[pos * kvd..(pos + t) * kvd].copy_from_slice(&new_v[..t * kvd]);
            let (keys, values) = cache.layer(li);
            for i in 0..t {
                let n = pos + i + 1; // causal: this token sees positions 0..=pos+i
                for h in 0..cfg.heads {
                    let kv_off = (h / group) * hs;
                    k::attention_head(
                        &mut s.att[i * qd + h * hs..i * qd + (h + 1) * hs],
                        &s.q[i * qd + h * hs..i * qd + (h + 1) * hs],
                        keys,
                        values,
                        kvd,
                        kv_off,
                        n,
                        &mut s.scores,
                    );
                }
            }
            linear(
                cx,
                li,
                "attn_output",
                &layer.o,
                &s.att,
                t,
                &mut s.xn,
                &mut s.act,
            );
            k::add_in_place(&mut s.x[..t * c], &s.xn[..t * c]);

            // Feed-forward block: x += down(silu(gate·xn) * up·xn)  or  down(gelu(up·xn))
            norm(
                cfg.norm,
                cfg.norm_eps,
                &layer.ffn_norm,
                &s.x,
                &mut s.xn,
                t,
                c,
            );
            match (cfg.ffn, &layer.gate) {
                (FfnKind::SwiGlu, Some(gate)) => {
                    linear(cx, li, "ffn_gate", gate, &s.xn, t, &mut s.ffn_a, &mut s.act);
                    linear(
                        cx,
                        li,
                        "ffn_up",
                        &layer.up,
                        &s.xn,
                        t,
                        &mut s.ffn_b,
                        &mut s.act,
                    );
                    k::swiglu(&mut s.ffn_a[..t * f], &s.ffn_b[..t * f]);
                }
                _ => {
                    linear(
                        cx,
                        li,
                        "ffn_up",
                        &layer.up,
                        &s.xn,
                        t,
                        &mut s.ffn_a,
                        &mut s.act,
                    );
                    k::gelu_tanh(&mut s.ffn_a[..t * f]);
                }
            }
            linear(
                cx,
                li,
                "ffn_down",
                &layer.down,
                &s.ffn_a,
                t,
                &mut s.xn,
                &mut s.act,
            );
            k::add_in_place(&mut s.x[..t * c], &s.xn[..t * c]);
        }

        // Output head over the positions that need logits.
        let first = if logits == Logits::All { 0 } else { t - 1 };
        let n = t - first;
        norm(
            cfg.norm,
            cfg.norm_eps,
            &w.output_norm,
            &s.x[first * c..],
            &mut s.xn,
            n,
            c,
        );
        if let Some(o) = cx.observer {
            o.matmul_input(None, "output", &s.xn[..n * c], n);
        }
        k::matmul::matmul(
            cx.kernels,
            cx.exec,
            &w.output,
            None,
            &s.xn,
            n,
            &mut s.logits,
            &mut s.act,
        );
    }
}
