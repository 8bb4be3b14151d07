//! The forward pass, top to bottom, over T new tokens at positions pos..pos+T.

use super::config::{Config, FfnKind, NormKind, Positions};
use super::weights::{Layer, Linear, Matrix, Norm};
use super::Model;
use crate::exec::{Executor, SyncMutPtr};
use crate::kernels::{self as k, ActQ8, Kernels};
use crate::kv_cache::KvCache;
use crate::math::powf;
use crate::Error;

/// Which positions need logits: generation needs only the last, evaluation all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    Last,
    All,
}

/// Where each activation array lives in one f32 buffer and one i8 buffer, for up to
/// `max_batch` tokens at once. Planned up front so the decode loop never allocates, and so
/// a microcontroller can supply static buffers of `floats` and `bytes` elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScratchPlan {
    pub max_batch: usize,
    pub capacity: usize,
    pub mode: Logits,
    /// Lengths of the f32 regions, in `Parts` order.
    lens: [usize; 14],
    /// i8 elements: the quantized activations.
    pub bytes: usize,
    /// f32 elements in all.
    pub floats: usize,
}

impl ScratchPlan {
    pub fn new(cfg: &Config, max_batch: usize, capacity: usize, mode: Logits) -> ScratchPlan {
        let b = max_batch.max(1);
        let (c, f) = (cfg.dim, cfg.ffn_dim);
        let max_cols = c.max(f).max(cfg.q_dim());
        let blocks = b * max_cols.div_ceil(32);
        let logit_rows = if mode == Logits::All { b } else { 1 };
        let lens = [
            b * c,                       // x (B, C) residual stream
            b * c,                       // xn (B, C) normalized
            b * cfg.q_dim(),             // q (B, NH·HS)
            b * 2 * cfg.kv_dim(),        // kv (B, 2·KVH·HS) new keys, then values
            b * cfg.q_dim(),             // att (B, NH·HS)
            b * f,                       // ffn_a (B, F) gate or up
            b * f,                       // ffn_b (B, F) up
            cfg.heads * capacity,        // scores (NH, capacity): one row per head
            b * cfg.head_dim,            // rope (B, HS): cos and sin per position
            max_cols,                    // row: one dequantized embedding row
            cfg.head_dim / 2,            // inv_freq (HS/2) RoPE frequencies
            blocks,                      // act d (B, cols/32)
            blocks,                      // act s (B, cols/32)
            logit_rows * cfg.vocab_size, // logits (B or 1, V)
        ];
        ScratchPlan {
            max_batch: b,
            capacity,
            mode,
            lens,
            bytes: blocks * 32,
            floats: lens.iter().sum(),
        }
    }

    /// Bytes of memory the plan needs.
    pub fn bytes_required(&self) -> usize {
        self.floats * core::mem::size_of::<f32>() + self.bytes
    }
}

/// Scratch memory in two buffers (f32 and i8), a `Vec` each with an allocator or a caller's
/// slices without one.
#[derive(Clone, Debug)]
pub struct Scratch<F, I> {
    plan: ScratchPlan,
    f: F,
    i: I,
}

/// The scratch arrays of one forward pass, carved from the buffers.
pub struct Parts<'s> {
    pub x: &'s mut [f32],
    pub xn: &'s mut [f32],
    pub q: &'s mut [f32],
    pub kv: &'s mut [f32],
    pub att: &'s mut [f32],
    pub ffn_a: &'s mut [f32],
    pub ffn_b: &'s mut [f32],
    pub scores: &'s mut [f32],
    pub rope: &'s mut [f32],
    pub row: &'s mut [f32],
    pub inv_freq: &'s [f32],
    pub act: ActQ8<'s>,
    pub logits: &'s mut [f32],
}

fn take<'s, T>(rest: &mut &'s mut [T], n: usize) -> &'s mut [T] {
    let (a, b) = core::mem::take(rest).split_at_mut(n);
    *rest = b;
    a
}

#[cfg(feature = "alloc")]
impl Scratch<alloc::vec::Vec<f32>, alloc::vec::Vec<i8>> {
    pub fn new(cfg: &Config, plan: ScratchPlan) -> Self {
        let (f, i) = (alloc::vec![0.0; plan.floats], alloc::vec![0; plan.bytes]);
        match Scratch::with_buffers(cfg, plan, f, i) {
            Ok(s) => s,
            Err(_) => unreachable!("buffers sized by the plan"),
        }
    }
}

impl<F: AsRef<[f32]> + AsMut<[f32]>, I: AsMut<[i8]>> Scratch<F, I> {
    /// Scratch in caller-provided buffers of at least `plan.floats` and `plan.bytes`.
    pub fn with_buffers(cfg: &Config, plan: ScratchPlan, f: F, mut i: I) -> Result<Self, Error> {
        if f.as_ref().len() < plan.floats {
            return Err(Error::BufferTooSmall {
                needed: plan.floats,
                got: f.as_ref().len(),
            });
        }
        if i.as_mut().len() < plan.bytes {
            return Err(Error::BufferTooSmall {
                needed: plan.bytes,
                got: i.as_mut().len(),
            });
        }
        let mut s = Scratch { plan, f, i };
        // RoPE frequencies theta^(-2i/HS), computed in f32 as Hugging Face does.
        let inv_freq_at: usize = plan.lens[..10].iter().sum();
        let half = plan.lens[10];
        for (k, v) in s.f.as_mut()[inv_freq_at..inv_freq_at + half]
            .iter_mut()
            .enumerate()
        {
            *v = 1.0 / powf(cfg.rope_theta, (2 * k) as f32 / cfg.head_dim as f32);
        }
        Ok(s)
    }

    pub fn plan(&self) -> &ScratchPlan {
        &self.plan
    }

    pub fn parts(&mut self) -> Parts<'_> {
        let l = self.plan.lens;
        let mut rest: &mut [f32] = self.f.as_mut();
        let mut bytes: &mut [i8] = self.i.as_mut();
        let x = take(&mut rest, l[0]);
        let xn = take(&mut rest, l[1]);
        let q = take(&mut rest, l[2]);
        let kv = take(&mut rest, l[3]);
        let att = take(&mut rest, l[4]);
        let ffn_a = take(&mut rest, l[5]);
        let ffn_b = take(&mut rest, l[6]);
        let scores = take(&mut rest, l[7]);
        let rope = take(&mut rest, l[8]);
        let row = take(&mut rest, l[9]);
        let inv_freq = take(&mut rest, l[10]);
        let d = take(&mut rest, l[11]);
        let s = take(&mut rest, l[12]);
        let logits = take(&mut rest, l[13]);
        let qs = take(&mut bytes, self.plan.bytes);
        Parts {
            x,
            xn,
            q,
            kv,
            att,
            ffn_a,
            ffn_b,
            scores,
            rope,
            row,
            inv_freq,
            act: ActQ8::new(qs, d, s),
            logits,
        }
    }

    /// The logits of the last forward pass: (T, V) for `Logits::All`, else (V).
    pub fn logits(&self) -> &[f32] {
        let at: usize = self.plan.lens[..13].iter().sum();
        &self.f.as_ref()[at..at + self.plan.lens[13]]
    }
}

/// Runs `f(i)` for every token i < t: split over the threads when a prompt has enough tokens
/// to pay for a dispatch, inline for decode.
fn per_token(exec: &dyn Executor, t: usize, f: &(dyn Fn(usize) + Sync)) {
    let threads = exec.threads();
    if t < 8 || threads == 1 {
        (0..t).for_each(f);
        return;
    }
    let parts = t.min(threads * 4);
    exec.run(parts, &|p| (t * p / parts..t * (p + 1) / parts).for_each(f));
}

#[allow(clippy::too_many_arguments)]
fn norm(
    exec: &dyn Executor,
    kind: NormKind,
    eps: f32,
    n: &Norm,
    x: &[f32],
    out: &mut [f32],
    t: usize,
    c: usize,
) {
    assert!(x.len() >= t * c && out.len() >= t * c);
    let o = SyncMutPtr(out.as_mut_ptr());
    per_token(exec, t, &|i| {
        let xi = &x[i * c..(i + 1) * c];
        // SAFETY: token i alone writes row i of out, which holds t rows of c.
        let oi = unsafe { o.slice(i * c, c) };
        match (kind, n.bias) {
            (NormKind::Layer, Some(b)) => k::layernorm(oi, xi, n.weight, b, eps),
            _ => k::rmsnorm(oi, xi, n.weight, eps),
        }
    });
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
    linears(c, layer, [(name, l, out)], x, t, act);
}

/// Linear layers sharing their input, in one fused multiplication where the kernels allow.
fn linears<const N: usize>(
    c: Compute,
    layer: usize,
    ls: [(&'static str, &Linear, &mut [f32]); N],
    x: &[f32],
    t: usize,
    act: &mut ActQ8,
) {
    if let Some(o) = c.observer {
        for (name, l, _) in &ls {
            o.matmul_input(Some(layer), name, &x[..t * l.w.cols], t);
        }
    }
    let products = ls.map(|(_, l, out)| (&l.w, l.b, out));
    k::matmul::matmul_many(c.kernels, c.exec, products, x, t, act);
}

fn embed(m: &Matrix, id: usize, out: &mut [f32]) {
    k::dequantize_row(m, id, out);
}

impl<'a, L: AsRef<[Layer<'a>]>> Model<'a, L> {
    /// Runs `tokens` (T ≤ max_batch) at positions `pos..pos+T`, appending their keys and
    /// values to `cache`. Logits land in `s.logits`: (T, V) for `All`, else the last (V).
    /// The caller checks ids < V and `pos + T <= cache.capacity()` (see `Session`).
    pub fn forward<B: AsRef<[f32]> + AsMut<[f32]>>(
        &self,
        cx: Compute,
        tokens: &[u32],
        pos: usize,
        cache: &mut KvCache<B>,
        s: &mut Parts,
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

        // RoPE cos/sin per position, shared by every head and layer: (T, HS).
        if cfg.positions == Positions::Rope {
            for i in 0..t {
                k::rope_angles(&mut s.rope[i * hs..(i + 1) * hs], pos + i, s.inv_freq);
            }
        }

        for (li, layer) in w.layers.as_ref().iter().enumerate() {
            // Attention block: x += Wo · attention(rope(Wq·xn), rope(Wk·xn), Wv·xn)
            norm(
                cx.exec,
                cfg.norm,
                cfg.norm_eps,
                &layer.attn_norm,
                s.x,
                s.xn,
                t,
                c,
            );
            let (new_k, new_v) = s.kv.split_at_mut(t * kvd);
            linears(
                cx,
                li,
                [
                    ("attn_q", &layer.q, &mut s.q[..]),
                    ("attn_k", &layer.k, &mut new_k[..]),
                    ("attn_v", &layer.v, &mut new_v[..t * kvd]),
                ],
                s.xn,
                t,
                &mut s.act,
            );
            if cfg.positions == Positions::Rope {
                for i in 0..t {
                    let angles = &s.rope[i * hs..(i + 1) * hs];
                    k::rope(&mut s.q[i * qd..(i + 1) * qd], hs, angles);
                    k::rope(&mut new_k[i * kvd..(i + 1) * kvd], hs, angles);
                }
            }
            let (keys, values) = cache.layer_mut(li);
            keys[pos * kvd..(pos + t) * kvd].copy_from_slice(&new_k[..t * kvd]);
            values[pos * kvd..(pos + t) * kvd].copy_from_slice(&new_v[..t * kvd]);
            // Heads are independent: one part per head, each with its own row of scores.
            let (keys, values) = cache.layer(li);
            let capacity = s.scores.len() / cfg.heads;
            let (att, scores) = (
                SyncMutPtr(s.att.as_mut_ptr()),
                SyncMutPtr(s.scores.as_mut_ptr()),
            );
            let q: &[f32] = s.q;
            cx.exec.run(cfg.heads, &|h| {
                let kv_off = (h / group) * hs;
                // SAFETY: part h alone uses scores row h, within the (NH, capacity) region.
                let scores = unsafe { scores.slice(h * capacity, capacity) };
                for i in 0..t {
                    let n = pos + i + 1; // causal: this token sees positions 0..=pos+i
                                         // SAFETY: part h alone writes head h's HS outputs of token i, inside
                                         // att (T, NH·HS).
                    let out = unsafe { att.slice(i * qd + h * hs, hs) };
                    let qh = &q[i * qd + h * hs..i * qd + (h + 1) * hs];
                    k::attention_head(cx.kernels, out, qh, keys, values, kvd, kv_off, n, scores);
                }
            });
            linear(cx, li, "attn_output", &layer.o, s.att, t, s.xn, &mut s.act);
            k::add_in_place(&mut s.x[..t * c], &s.xn[..t * c]);

            // Feed-forward block: x += down(silu(gate·xn) * up·xn)  or  down(gelu(up·xn))
            norm(
                cx.exec,
                cfg.norm,
                cfg.norm_eps,
                &layer.ffn_norm,
                s.x,
                s.xn,
                t,
                c,
            );
            match (cfg.ffn, &layer.gate) {
                (FfnKind::SwiGlu, Some(gate)) => {
                    linears(
                        cx,
                        li,
                        [
                            ("ffn_gate", gate, &mut s.ffn_a[..]),
                            ("ffn_up", &layer.up, &mut s.ffn_b[..]),
                        ],
                        s.xn,
                        t,
                        &mut s.act,
                    );
                    let (a, b) = (SyncMutPtr(s.ffn_a.as_mut_ptr()), &s.ffn_b[..t * f]);
                    per_token(cx.exec, t, &|i| {
                        // SAFETY: token i alone uses row i of ffn_a, which holds t rows of f.
                        k::swiglu(unsafe { a.slice(i * f, f) }, &b[i * f..(i + 1) * f])
                    });
                }
                _ => {
                    linear(cx, li, "ffn_up", &layer.up, s.xn, t, s.ffn_a, &mut s.act);
                    let a = SyncMutPtr(s.ffn_a.as_mut_ptr());
                    // SAFETY: token i alone uses row i of ffn_a, which holds t rows of f.
                    per_token(cx.exec, t, &|i| k::gelu_tanh(unsafe { a.slice(i * f, f) }));
                }
            }
            linear(
                cx,
                li,
                "ffn_down",
                &layer.down,
                s.ffn_a,
                t,
                s.xn,
                &mut s.act,
            );
            k::add_in_place(&mut s.x[..t * c], &s.xn[..t * c]);
        }

        // Output head over the positions that need logits.
        let first = if logits == Logits::All { 0 } else { t - 1 };
        let n = t - first;
        norm(
            cx.exec,
            cfg.norm,
            cfg.norm_eps,
            &w.output_norm,
            &s.x[first * c..],
            s.xn,
            n,
            c,
        );
        if let Some(o) = cx.observer {
            o.matmul_input(None, "output", &s.xn[..n * c], n);
        }
        k::matmul::matmul(
            cx.kernels, cx.exec, &w.output, None, s.xn, n, s.logits, &mut s.act,
        );
    }
}
