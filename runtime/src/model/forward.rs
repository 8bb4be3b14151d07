//! The forward pass, top to bottom, over T new tokens at positions pos..pos+T.

use super::recurrent;
use super::weights::{
    AttentionWeights, Experts, Ffn, Layer, Linear, Matrix, Mixer, Norm, PerLayerEmbeddings,
};
use super::Config;
use super::Model;
use super::{Attention, BlockNorms, FfnKind, NormKind, Positions, QkNorm};
use crate::exec::{Executor, SyncMutPtr};
use crate::kernels::{self as k, ActQ8, Kernels};
use crate::kv_cache::KvCache;
use crate::math::{powf, sqrt64};
use crate::Error;
use ember_format::schema::{AttentionGate, LayerPositions, ValueNorm};

/// Which positions need logits: generation needs only the last, evaluation all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    Last,
    All,
}

/// The f32 regions of the scratch buffer, in order.
#[derive(Clone, Copy)]
enum Region {
    /// x (B, C) residual stream
    X,
    /// xn (B, C) normalized
    Xn,
    /// y (B, C) a block's output before its post-norm
    Y,
    /// q (B, NH·HS), twice that with an attention gate (the projection's output)
    Q,
    /// gate (B, NH·HS): the attention gate's inputs (AttentionGate::Sigmoid)
    Gate,
    /// kv (B, 2·KVH·HS) new keys, then values
    Kv,
    /// att (B, NH·HS)
    Att,
    /// ffn_a (B, max(F, FE)) gate or up
    FfnA,
    /// ffn_b (B, max(F, FE)) up
    FfnB,
    /// router (B, N): experts' weights per token, -1 where not chosen
    Router,
    /// moe_in (B, C): the tokens routed to one expert, gathered
    MoeIn,
    /// moe_down (B, C): that expert's outputs
    MoeDown,
    /// moe_out (B, C): the weighted sum of the chosen experts' outputs
    MoeOut,
    /// mix_in (B, recurrent in_proj rows): a recurrent mixer's input projection
    MixIn,
    /// mix_conv (B, convolution channels): its convolution's inputs, then outputs
    MixConv,
    /// mix_y (B, max(C, H·P)): its output before out_proj
    MixY,
    /// scores (NH, capacity): one row per head
    Scores,
    /// rope (B, HS): cos and sin per position, global layers
    Rope,
    /// rope_local (B, HS): the same for local layers
    RopeLocal,
    /// row: one dequantized embedding row, or a head's partial attention output
    Row,
    /// inv_freq (HS/2) RoPE frequencies of global layers
    InvFreq,
    /// inv_freq_local (HS/2) RoPE frequencies of local layers
    InvFreqLocal,
    /// ple (B, L·P): each layer's per-layer input
    Ple,
    /// ple_tok (B, L·P): the per-layer embeddings of the tokens
    PleTok,
    /// ple_gate (B, P): a layer's gated per-layer branch
    PleGate,
    /// ones (max HS): the weight of an unweighted RMSNorm (Gemma 4's values)
    Ones,
    /// act d (B, cols/32)
    ActD,
    /// act s (B, cols/32)
    ActS,
    /// logits (B or 1, V)
    Logits,
}

const REGIONS: usize = Region::Logits as usize + 1;

/// Where each activation array lives in one f32 buffer and one i8 buffer, for up to
/// `max_batch` tokens at once. Planned up front so the decode loop never allocates, and so
/// a microcontroller can supply static buffers of `floats` and `bytes` elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScratchPlan {
    pub max_batch: usize,
    pub capacity: usize,
    pub mode: Logits,
    /// Lengths of the f32 regions, in `Region` order.
    lens: [usize; REGIONS],
    /// i8 elements: the quantized activations.
    pub bytes: usize,
    /// f32 elements in all.
    pub floats: usize,
}

impl ScratchPlan {
    pub fn new(cfg: &Config, max_batch: usize, capacity: usize, mode: Logits) -> ScratchPlan {
        let b = max_batch.max(1);
        let (c, f) = (cfg.dim, cfg.max_ffn_dim().max(cfg.expert_ffn_dim));
        let hs = cfg.head_dim.max(cfg.head_dim_global);
        let lp = cfg.layers * cfg.per_layer_dim;
        // Recurrent mixers: in_proj's rows, the convolution's channels, out_proj's columns
        // (all 0 without recurrent layers).
        let (mix_in, mix_conv, mix_y) = cfg.recurrent_widths();
        let max_cols = c.max(f).max(cfg.q_dim()).max(mix_y).max(mix_conv);
        // Decode runs the k chosen experts side by side: k rows of FE (and of C).
        let k = cfg.experts_used;
        let blocks = (b * max_cols.div_ceil(32)).max(k * cfg.expert_ffn_dim.div_ceil(32));
        let logit_rows = if mode == Logits::All { b } else { 1 };
        // Regions only some architectures use are empty for the others (a microcontroller
        // pays for none of them): the block output before a post-norm (sandwich norms), the
        // local layers' RoPE tables and a head's partial output for a wrapped KV ring.
        let sandwich = match cfg.features.block_norms {
            BlockNorms::Sandwich | BlockNorms::Post => 1,
            BlockNorms::Pre => 0,
        };
        let moe = usize::from(cfg.layer_kinds.any_experts());
        let gate = usize::from(cfg.features.attention_gate == AttentionGate::Sigmoid);
        let local = usize::from(cfg.layer_kinds.any_local());
        let mut lens = [0; REGIONS];
        for (r, n) in [
            (Region::X, b * c),
            (Region::Xn, b * c),
            (Region::Y, sandwich * b * c),
            (Region::Q, (1 + gate) * b * cfg.q_dim()),
            (Region::Gate, gate * b * cfg.q_dim()),
            (Region::Kv, b * 2 * cfg.kv_dim()),
            (Region::Att, b * cfg.q_dim()),
            (Region::FfnA, (b * f).max(k * cfg.expert_ffn_dim)),
            (Region::FfnB, (b * f).max(k * cfg.expert_ffn_dim)),
            (Region::Router, moe * b * cfg.experts),
            (Region::MoeIn, moe * b * c),
            (Region::MoeDown, moe * b.max(k) * c),
            (Region::MoeOut, moe * b * c),
            (Region::MixIn, b * mix_in),
            (Region::MixConv, b * mix_conv),
            (Region::MixY, b * mix_y),
            (Region::Scores, cfg.heads * capacity),
            (Region::Rope, b * hs),
            (Region::RopeLocal, local * b * hs),
            (Region::Row, max_cols.max(local * cfg.q_dim())),
            (Region::InvFreq, cfg.rope_dim / 2),
            (Region::InvFreqLocal, local * cfg.head_dim / 2),
            (Region::Ple, b * lp),
            (Region::PleTok, b * lp),
            (Region::PleGate, b * cfg.per_layer_dim),
            (
                Region::Ones,
                usize::from(cfg.features.value_norm == ValueNorm::Rms) * hs,
            ),
            (Region::ActD, blocks),
            (Region::ActS, blocks),
            (Region::Logits, logit_rows * cfg.vocab_size),
        ] {
            lens[r as usize] = n;
        }
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

    /// Where region `r` starts.
    fn offset(&self, r: Region) -> usize {
        self.lens[..r as usize].iter().sum()
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
    pub y: &'s mut [f32],
    pub q: &'s mut [f32],
    pub gate: &'s mut [f32],
    pub kv: &'s mut [f32],
    pub att: &'s mut [f32],
    pub ffn_a: &'s mut [f32],
    pub ffn_b: &'s mut [f32],
    pub router: &'s mut [f32],
    pub moe_in: &'s mut [f32],
    pub moe_down: &'s mut [f32],
    pub moe_out: &'s mut [f32],
    pub mix_in: &'s mut [f32],
    pub mix_conv: &'s mut [f32],
    pub mix_y: &'s mut [f32],
    pub scores: &'s mut [f32],
    pub rope: &'s mut [f32],
    pub rope_local: &'s mut [f32],
    pub row: &'s mut [f32],
    pub inv_freq: &'s [f32],
    pub inv_freq_local: &'s [f32],
    pub ple: &'s mut [f32],
    pub ple_tok: &'s mut [f32],
    pub ple_gate: &'s mut [f32],
    pub ones: &'s [f32],
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

/// RoPE frequencies theta^(-2i/R) for the R rotated dimensions (HS or fewer), computed in
/// f32 as Hugging Face does; `out` is (R/2).
fn fill_inv_freq(out: &mut [f32], theta: f32, rope_dim: usize) {
    for (k, v) in out.iter_mut().enumerate() {
        *v = 1.0 / powf(theta, (2 * k) as f32 / rope_dim as f32);
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
        // Global layers rotate R dimensions, local layers all of theirs.
        for (r, theta, dims) in [
            (Region::InvFreq, cfg.rope_theta, cfg.rope_dim),
            (Region::InvFreqLocal, cfg.rope_theta_local, cfg.head_dim),
        ] {
            let (at, n) = (plan.offset(r), plan.lens[r as usize]);
            fill_inv_freq(&mut s.f.as_mut()[at..at + n], theta, dims);
        }
        let (at, n) = (plan.offset(Region::Ones), plan.lens[Region::Ones as usize]);
        s.f.as_mut()[at..at + n].fill(1.0);
        Ok(s)
    }

    pub fn plan(&self) -> &ScratchPlan {
        &self.plan
    }

    pub fn parts(&mut self) -> Parts<'_> {
        let l = self.plan.lens;
        let mut rest: &mut [f32] = self.f.as_mut();
        let mut bytes: &mut [i8] = self.i.as_mut();
        let mut next = |r: Region| take(&mut rest, l[r as usize]);
        let x = next(Region::X);
        let xn = next(Region::Xn);
        let y = next(Region::Y);
        let q = next(Region::Q);
        let gate = next(Region::Gate);
        let kv = next(Region::Kv);
        let att = next(Region::Att);
        let ffn_a = next(Region::FfnA);
        let ffn_b = next(Region::FfnB);
        let router = next(Region::Router);
        let moe_in = next(Region::MoeIn);
        let moe_down = next(Region::MoeDown);
        let moe_out = next(Region::MoeOut);
        let mix_in = next(Region::MixIn);
        let mix_conv = next(Region::MixConv);
        let mix_y = next(Region::MixY);
        let scores = next(Region::Scores);
        let rope = next(Region::Rope);
        let rope_local = next(Region::RopeLocal);
        let row = next(Region::Row);
        let inv_freq = next(Region::InvFreq);
        let inv_freq_local = next(Region::InvFreqLocal);
        let ple = next(Region::Ple);
        let ple_tok = next(Region::PleTok);
        let ple_gate = next(Region::PleGate);
        let ones = next(Region::Ones);
        let d = next(Region::ActD);
        let s = next(Region::ActS);
        let logits = next(Region::Logits);
        let qs = take(&mut bytes, self.plan.bytes);
        Parts {
            x,
            xn,
            y,
            q,
            gate,
            kv,
            att,
            ffn_a,
            ffn_b,
            router,
            moe_in,
            moe_down,
            moe_out,
            mix_in,
            mix_conv,
            mix_y,
            scores,
            rope,
            rope_local,
            row,
            inv_freq,
            inv_freq_local,
            ple,
            ple_tok,
            ple_gate,
            ones,
            act: ActQ8::new(qs, d, s),
            logits,
        }
    }

    /// The logits of the last forward pass: (T, V) for `Logits::All`, else (V).
    pub fn logits(&self) -> &[f32] {
        let at = self.plan.offset(Region::Logits);
        &self.f.as_ref()[at..at + self.plan.lens[Region::Logits as usize]]
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
            (NormKind::Rms, _) => k::rmsnorm(oi, xi, n.weight, eps),
            (NormKind::Layer, bias) => k::layernorm(oi, xi, n.weight, bias.unwrap_or(&[]), eps),
        }
    });
}

/// What a block's token mixer is handed for one pass: T tokens at positions pos..pos+T;
/// its input is xn (`normed`: after the pre-norm) or x, its output goes to y (`to_y`:
/// before a post-norm) or xn.
#[derive(Clone, Copy)]
pub(super) struct Pass {
    pub normed: bool,
    pub to_y: bool,
    pub t: usize,
    pub pos: usize,
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
pub(super) fn linear(
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
pub(super) fn linears<const N: usize>(
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

/// The slots of the cache (`slots` of them, position p in slot p % slots) that hold
/// positions `first..=last`: one range, or two where the ring wraps.
fn slot_ranges(
    first: usize,
    last: usize,
    slots: usize,
) -> (core::ops::Range<usize>, core::ops::Range<usize>) {
    let (a, b) = (first % slots, last % slots);
    if a <= b {
        (a..b + 1, 0..0)
    } else {
        (a..slots, 0..b + 1)
    }
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
        let ft = cfg.features;
        let w = &self.weights;
        let t = tokens.len();
        let c = cfg.dim;
        // Per-position stride of the RoPE angle tables: the largest head.
        let hs_max = cfg.head_dim.max(cfg.head_dim_global);

        // x (T, C) = token embedding · scale (+ learned position embedding)
        for (i, &id) in tokens.iter().enumerate() {
            let xi = &mut s.x[i * c..(i + 1) * c];
            embed(&w.token_embd, id as usize, xi);
            // sqrt(C) (Gemma) or the file's multiplier (Granite).
            if cfg.embedding_scale != 1.0 {
                xi.iter_mut().for_each(|v| *v *= cfg.embedding_scale);
            }
            if let Some(pe) = &w.pos_embd {
                embed(pe, pos + i, &mut s.row[..c]);
                k::add_in_place(xi, &s.row[..c]);
            }
        }
        if let Some(pl) = &w.per_layer {
            self.per_layer_inputs(cx, pl, tokens, s);
        }

        // RoPE cos/sin per position, shared by every head and layer of a kind: (T, HS).
        match ft.positions {
            Positions::Rope => {
                // LongRoPE: a session longer than the original context uses the long
                // factors throughout (as llama.cpp; transformers switches once a sequence
                // passes it).
                let long = match (w.rope_inv_freq_long, cfg.rope_long_context) {
                    (Some(f), Some(from)) if cache.capacity() > from => Some(f),
                    _ => None,
                };
                let global = long.or(w.rope_inv_freq).unwrap_or(s.inv_freq);
                let local = cfg.layer_kinds.any_local();
                for i in 0..t {
                    let at = i * hs_max..(i + 1) * hs_max;
                    let factor = cfg.rope_attention_factor;
                    k::rope_angles(&mut s.rope[at.clone()], pos + i, global, factor);
                    if local {
                        k::rope_angles(&mut s.rope_local[at], pos + i, s.inv_freq_local, 1.0);
                    }
                }
            }
            Positions::Learned => {}
        }

        for (li, layer) in w.layers.as_ref().iter().enumerate() {
            // Mixer block: x += [post_norm] mixer(xn), xn = norm(x), or x itself where the
            // block has no pre-norm (OLMo 2). The output goes to y before a post-norm, else
            // to xn.
            if let Some(n) = &layer.attn_norm {
                norm(cx.exec, ft.norm, cfg.norm_eps, n, s.x, s.xn, t, c);
            }
            let pass = Pass {
                normed: layer.attn_norm.is_some(),
                to_y: layer.post_attn_norm.is_some(),
                t,
                pos,
            };
            match &layer.mixer {
                Mixer::Attention(a) => self.attention(cx, li, a, pass, cache, s),
                Mixer::ShortConv(m) => {
                    let state = cache.state_mut(li);
                    recurrent::short_conv(cx, li, m, pass, state, s)
                }
                Mixer::Mamba2(m) => {
                    let state = cache.state_mut(li);
                    recurrent::mamba2(cx, cfg, li, m, pass, state, s)
                }
                Mixer::GatedDeltaNet(m) => {
                    let state = cache.state_mut(li);
                    recurrent::gated_delta_net(cx, cfg, li, m, pass, state, s)
                }
            }
            self.residual(cx, layer.post_attn_norm.as_ref(), s.x, s.y, s.xn, t);

            // Feed-forward block: x += [post_norm] down(act(gate·xn) * up·xn)  or
            // down(gelu(up·xn)), or the routed experts' weighted sum of the former; xn is
            // norm(x), or x itself where the block has no pre-norm (OLMo 2).
            if let Some(n) = &layer.ffn_norm {
                norm(cx.exec, ft.norm, cfg.norm_eps, n, s.x, s.xn, t, c);
            }
            let input: &[f32] = match layer.ffn_norm {
                Some(_) => s.xn,
                None => s.x,
            };
            match &layer.ffn {
                Ffn::Dense { gate, up, down } => {
                    let f = up.w.rows;
                    gated(
                        cx,
                        li,
                        ft.ffn,
                        gate.as_ref(),
                        up,
                        input,
                        t,
                        f,
                        s.ffn_a,
                        s.ffn_b,
                        &mut s.act,
                    );
                    let y = match layer.post_ffn_norm {
                        Some(_) => &mut *s.y,
                        None => &mut *s.xn,
                    };
                    linear(cx, li, "ffn_down", down, s.ffn_a, t, y, &mut s.act);
                }
                Ffn::Experts(x) => {
                    let moe = MoeScratch {
                        router: s.router,
                        gathered: s.moe_in,
                        down: s.moe_down,
                        sum: s.moe_out,
                        a: s.ffn_a,
                        b: s.ffn_b,
                        act: &mut s.act,
                    };
                    experts(cx, cfg, li, x, input, t, moe);
                    let y = match layer.post_ffn_norm {
                        Some(_) => &mut *s.y,
                        None => &mut *s.xn,
                    };
                    y[..t * c].copy_from_slice(&s.moe_out[..t * c]);
                }
            }
            self.residual(cx, layer.post_ffn_norm.as_ref(), s.x, s.y, s.xn, t);

            // Per-layer branch: x += post_norm(proj(gelu_tanh(gate·x) ⊙ input_l)).
            if let Some(b) = &layer.per_layer {
                let p = cfg.per_layer_dim;
                linear(cx, li, "inp_gate", &b.gate, s.x, t, s.ple_gate, &mut s.act);
                let lp = cfg.layers * p;
                for i in 0..t {
                    let g = &mut s.ple_gate[i * p..(i + 1) * p];
                    (cx.kernels.gelu)(g);
                    let input = &s.ple[i * lp + li * p..i * lp + (li + 1) * p];
                    g.iter_mut().zip(input).for_each(|(g, v)| *g *= v);
                }
                linear(cx, li, "proj", &b.proj, s.ple_gate, t, s.y, &mut s.act);
                norm(
                    cx.exec,
                    ft.norm,
                    cfg.norm_eps,
                    &b.post_norm,
                    s.y,
                    s.xn,
                    t,
                    c,
                );
                k::add_in_place(&mut s.x[..t * c], &s.xn[..t * c]);
            }
            if let Some(scale) = layer.output_scale {
                s.x[..t * c].iter_mut().for_each(|v| *v *= scale);
            }
        }

        // Output head over the positions that need logits.
        let first = if logits == Logits::All { 0 } else { t - 1 };
        let n = t - first;
        norm(
            cx.exec,
            ft.norm,
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
        if let Some(cap) = cfg.final_logit_softcap {
            k::softcap(&mut s.logits[..n * cfg.vocab_size], cap);
        }
        if cfg.logits_divisor != 1.0 {
            let d = cfg.logits_divisor;
            s.logits[..n * cfg.vocab_size]
                .iter_mut()
                .for_each(|v| *v /= d);
        }
    }

    /// Attention: out = Wo · attention(rope(Wq·in), rope(Wk·in), Wv·in) over the cache, with
    /// `in` xn (`normed`) or x, `out` y (`to_y`) or xn; the new keys and values join the
    /// cache at positions pos..pos+T.
    fn attention<B: AsRef<[f32]> + AsMut<[f32]>>(
        &self,
        cx: Compute,
        li: usize,
        layer: &AttentionWeights,
        pass: Pass,
        cache: &mut KvCache<B>,
        s: &mut Parts,
    ) {
        let Pass {
            normed,
            to_y,
            t,
            pos,
        } = pass;
        let cfg = &self.config;
        let ft = cfg.features;
        let group = cfg.heads / cfg.kv_heads;
        // Per-position stride of the RoPE angle tables: the largest head.
        let hs_max = cfg.head_dim.max(cfg.head_dim_global);
        let spec = cfg.layer(li);
        let attention = spec.attention;
        // This layer's head size, query width, key/value width, rotated dimensions.
        let hs = cfg.head_dim_of(li);
        let (qd, kvd) = (cfg.heads * hs, cfg.kv_heads * hs);
        let rd = match attention {
            Attention::Global => cfg.rope_dim,
            Attention::Local => cfg.head_dim,
        };
        let input: &[f32] = if normed { s.xn } else { s.x };
        let (new_k, new_v) = s.kv.split_at_mut(t * kvd);
        let new_v = &mut new_v[..t * kvd];
        match (&layer.k, &layer.v) {
            (Some(wk), Some(wv)) => linears(
                cx,
                li,
                [
                    ("attn_q", &layer.q, &mut s.q[..]),
                    ("attn_k", wk, &mut new_k[..]),
                    ("attn_v", wv, &mut new_v[..]),
                ],
                input,
                t,
                &mut s.act,
            ),
            // Keys and values come from an earlier layer's cache.
            _ => linear(cx, li, "attn_q", &layer.q, input, t, s.q, &mut s.act),
        }
        // Qwen3.5: each head's query is followed by its gate; the queries are packed to
        // (T, NH·HS) in place (each moves to a lower index), the gates to s.gate.
        let gated = ft.attention_gate == AttentionGate::Sigmoid;
        if gated {
            for i in 0..t {
                for h in 0..cfg.heads {
                    let from = i * 2 * qd + h * 2 * hs;
                    let to = i * qd + h * hs;
                    s.gate[to..to + hs].copy_from_slice(&s.q[from + hs..from + 2 * hs]);
                    s.q.copy_within(from..from + hs, to);
                }
            }
        }
        let own_kv = layer.k.is_some();
        // Per head (HS), or over each token's whole projection (NH·HS, KVH·HS).
        let (q_span, k_span) = match ft.qk_norm {
            QkNorm::RmsWhole => (qd, kvd),
            QkNorm::Rms | QkNorm::None => (hs, hs),
        };
        match (ft.qk_norm, layer.q_norm) {
            (QkNorm::Rms | QkNorm::RmsWhole, Some(qn)) => {
                k::rmsnorm_heads(&mut s.q[..t * qd], q_span, qn, cfg.norm_eps);
            }
            (QkNorm::Rms | QkNorm::RmsWhole, None) => {
                unreachable!("the loader requires q norms")
            }
            (QkNorm::None, _) => {}
        }
        if let Some(kn) = layer.k_norm {
            k::rmsnorm_heads(&mut new_k[..t * kvd], k_span, kn, cfg.norm_eps);
        }
        match ft.value_norm {
            ValueNorm::Rms if own_kv => k::rmsnorm_heads(new_v, hs, &s.ones[..hs], cfg.norm_eps),
            ValueNorm::Rms | ValueNorm::None => {}
        }
        match (ft.positions, spec.positions) {
            (_, LayerPositions::None) | (Positions::Learned, _) => {}
            (Positions::Rope, LayerPositions::Model) => {
                let angles = match attention {
                    Attention::Global => &s.rope[..],
                    Attention::Local => &s.rope_local[..],
                };
                for i in 0..t {
                    let angles = &angles[i * hs_max..i * hs_max + rd];
                    k::rope(&mut s.q[i * qd..(i + 1) * qd], hs, rd, angles);
                    if own_kv {
                        k::rope(&mut new_k[i * kvd..(i + 1) * kvd], hs, rd, angles);
                    }
                }
            }
        }
        let source = cfg.kv_source(li);
        let slots = cache.slots(source);
        if own_kv {
            for i in 0..t {
                let (k, v) = (
                    &new_k[i * kvd..(i + 1) * kvd],
                    &new_v[i * kvd..(i + 1) * kvd],
                );
                cache.store(li, (pos + i) % slots, k, v);
            }
        }
        // Parts take whole GQA groups, or equal shares of one where there are fewer KV heads
        // than threads: the heads of a part read their KV head once (attention_heads).
        let shares = (1..=group)
            .find(|&d| group.is_multiple_of(d) && cfg.kv_heads * d >= cx.exec.threads())
            .unwrap_or(group);
        let per_part = group / shares;
        let (keys, values) = cache.layer(source);
        let capacity = s.scores.len() / cfg.heads;
        let (att, scores, part) = (
            SyncMutPtr(s.att.as_mut_ptr()),
            SyncMutPtr(s.scores.as_mut_ptr()),
            SyncMutPtr(s.row.as_mut_ptr()),
        );
        let q: &[f32] = s.q;
        let scale = cfg.attention_scale;
        cx.exec.run(cfg.kv_heads * shares, &|part_index| {
            // KV head part_index / shares: `slots` rows of HS from `base` (head-major cache).
            let base = (part_index / shares) * slots * hs;
            // This part's heads: h0..h0 + per_part, all of KV head part_index / shares.
            let h0 = part_index * per_part;
            let width = per_part * hs;
            // SAFETY: this part alone uses scores rows h0..h0 + per_part, within the
            // (NH, capacity) region, and the row's HS slice h0, within (NH·HS).
            let (scores, tmp) = unsafe {
                (
                    scores.slice(h0 * capacity, per_part * capacity),
                    part.slice(h0 * hs, hs),
                )
            };
            for i in 0..t {
                let p = pos + i; // causal: this token sees positions first..=p
                let first = match attention {
                    Attention::Global => 0,
                    Attention::Local => (p + 1).saturating_sub(cfg.sliding_window),
                };
                // SAFETY: this part alone writes heads h0..h0 + per_part of token i, inside
                // att (T, NH·HS).
                let out = unsafe { att.slice(i * qd + h0 * hs, width) };
                let qh = &q[i * qd + h0 * hs..i * qd + h0 * hs + width];
                let (r1, r2) = slot_ranges(first, p, slots);
                let span = |r: &core::ops::Range<usize>| base + r.start * hs..base + r.end * hs;
                let pieces = [
                    (keys.slice(span(&r1)), values.slice(span(&r1))),
                    (keys.slice(span(&r2)), values.slice(span(&r2))),
                ];
                let pieces = if r2.is_empty() {
                    &pieces[..1]
                } else {
                    &pieces[..]
                };
                k::attention_heads(cx.kernels, out, tmp, qh, pieces, scale, scores, capacity);
            }
        });
        if gated {
            k::recurrent::sigmoid_gate(&mut s.att[..t * qd], &s.gate[..t * qd]);
        }
        let y = if to_y { &mut *s.y } else { &mut *s.xn };
        linear(cx, li, "attn_output", &layer.o, s.att, t, y, &mut s.act);
    }

    /// x += the block's output: `xn` as it is (blocks without a post-norm), or post_norm(`y`)
    /// (Gemma's sandwich norms and OLMo 2's post-norms, whose output went to `y`). All (T, C).
    fn residual(
        &self,
        cx: Compute,
        post_norm: Option<&Norm>,
        x: &mut [f32],
        y: &[f32],
        xn: &mut [f32],
        t: usize,
    ) {
        let (cfg, c) = (&self.config, self.config.dim);
        match (cfg.features.block_norms, post_norm) {
            (BlockNorms::Sandwich | BlockNorms::Post, Some(pn)) => {
                norm(cx.exec, cfg.features.norm, cfg.norm_eps, pn, y, xn, t, c)
            }
            (BlockNorms::Sandwich | BlockNorms::Post, None) => {
                unreachable!("the loader requires post norms")
            }
            (BlockNorms::Pre, _) => {}
        }
        // Granite's muP: the block's output is scaled before it joins the stream.
        if cfg.residual_scale != 1.0 {
            let r = cfg.residual_scale;
            xn[..t * c].iter_mut().for_each(|v| *v *= r);
        }
        k::add_in_place(&mut x[..t * c], &xn[..t * c]);
    }
}

/// ffn_a (T, W) = act(gate·x) ⊙ up·x for gated kinds, gelu(up·x) for GPT-2's; x (T, C),
/// W the block's width.
#[allow(clippy::too_many_arguments)]
fn gated(
    cx: Compute,
    li: usize,
    kind: FfnKind,
    gate: Option<&Linear>,
    up: &Linear,
    x: &[f32],
    t: usize,
    w: usize,
    ffn_a: &mut [f32],
    ffn_b: &mut [f32],
    act: &mut ActQ8,
) {
    match (kind, gate) {
        (FfnKind::SwiGlu | FfnKind::GeGlu, Some(gate)) => {
            linears(
                cx,
                li,
                [
                    ("ffn_gate", gate, &mut ffn_a[..]),
                    ("ffn_up", up, &mut ffn_b[..]),
                ],
                x,
                t,
                act,
            );
            let (a, b) = (SyncMutPtr(ffn_a.as_mut_ptr()), &ffn_b[..t * w]);
            let f = match kind {
                FfnKind::GeGlu => cx.kernels.geglu,
                FfnKind::SwiGlu | FfnKind::Gelu => cx.kernels.swiglu,
            };
            per_token(cx.exec, t, &|i| {
                // SAFETY: token i alone uses row i of ffn_a, which holds t rows of w.
                f(unsafe { a.slice(i * w, w) }, &b[i * w..(i + 1) * w])
            });
        }
        (FfnKind::SwiGlu | FfnKind::GeGlu, None) => unreachable!("the loader requires ffn_gate"),
        (FfnKind::Gelu, _) => {
            linear(cx, li, "ffn_up", up, x, t, ffn_a, act);
            let a = SyncMutPtr(ffn_a.as_mut_ptr());
            let gelu = cx.kernels.gelu;
            // SAFETY: token i alone uses row i of ffn_a, which holds t rows of w.
            per_token(cx.exec, t, &|i| gelu(unsafe { a.slice(i * w, w) }));
        }
    }
}

/// The scratch of a mixture-of-experts block.
struct MoeScratch<'s, 'p> {
    /// (T, N) the chosen experts' weights per token, -1 for the others
    router: &'p mut [f32],
    /// (T, C) the inputs of the tokens routed to one expert
    gathered: &'p mut [f32],
    /// (T, C) that expert's outputs
    down: &'p mut [f32],
    /// (T, C) the weighted sum over the chosen experts
    sum: &'p mut [f32],
    /// (T, FE) each
    a: &'p mut [f32],
    b: &'p mut [f32],
    act: &'p mut ActQ8<'s>,
}

/// sum (T, C) = Σ over each token's k chosen experts of weight · SwiGLU expert(x); x (T, C).
/// Experts run in index order over the tokens routed to them (gathered into one batch), so
/// decode reads only the chosen experts' bytes and each token sums in the same order
/// whatever the batch.
fn experts(
    cx: Compute,
    cfg: &Config,
    li: usize,
    w: &Experts,
    x: &[f32],
    t: usize,
    mut m: MoeScratch,
) {
    let (c, n, fe) = (cfg.dim, cfg.experts, cfg.expert_ffn_dim);
    if let Some(o) = cx.observer {
        o.matmul_input(Some(li), "ffn_gate_inp", &x[..t * c], t);
    }
    let router = &mut m.router[..t * n];
    k::matmul::matmul(cx.kernels, cx.exec, &w.router, None, x, t, router, m.act);
    for row in router.chunks_exact_mut(n) {
        route(row, cfg.experts_used, cfg.expert_weights_norm);
    }
    m.sum[..t * c].fill(0.0);
    if t == 1 && cx.observer.is_none() && decode_experts(cx, cfg, w, x, &mut m) {
        return;
    }
    let router = &m.router[..t * n];
    let sum = &mut m.sum[..t * c];
    for e in 0..n {
        // Gather the tokens routed to e.
        let mut te = 0;
        for i in 0..t {
            if router[i * n + e] >= 0.0 {
                m.gathered[te * c..(te + 1) * c].copy_from_slice(&x[i * c..(i + 1) * c]);
                te += 1;
            }
        }
        if te == 0 {
            continue;
        }
        let (gate, up, down) = w.expert(e);
        let xe = &m.gathered[..te * c];
        if let Some(o) = cx.observer {
            o.matmul_input(Some(li), "ffn_gate_exps", xe, te);
        }
        let products = [(&gate, None, &mut m.a[..]), (&up, None, &mut m.b[..])];
        k::matmul::matmul_many(cx.kernels, cx.exec, products, xe, te, m.act);
        for i in 0..te {
            (cx.kernels.swiglu)(&mut m.a[i * fe..(i + 1) * fe], &m.b[i * fe..(i + 1) * fe]);
        }
        if let Some(o) = cx.observer {
            o.matmul_input(Some(li), "ffn_down_exps", &m.a[..te * fe], te);
        }
        k::matmul::matmul(
            cx.kernels,
            cx.exec,
            &down,
            None,
            &m.a[..te * fe],
            te,
            m.down,
            m.act,
        );
        // Scatter: sum += weight · output, in the order the tokens were gathered.
        let mut j = 0;
        for i in 0..t {
            let wt = router[i * n + e];
            if wt >= 0.0 {
                let out = &m.down[j * c..(j + 1) * c];
                for (s, &o) in sum[i * c..(i + 1) * c].iter_mut().zip(out) {
                    *s += wt * o;
                }
                j += 1;
            }
        }
    }
}

/// One token's chosen experts (the weights of `router` (N) that are not -1) side by side:
/// the gate and up products of all of them in one dispatch, their down products in
/// another, then sum (C) = Σ weight · output in expert order (as the batched path). False
/// where the kernels cannot (see `matvec_rows16_each`).
fn decode_experts(cx: Compute, cfg: &Config, w: &Experts, x: &[f32], m: &mut MoeScratch) -> bool {
    let (c, fe) = (cfg.dim, cfg.expert_ffn_dim);
    let router = &m.router[..cfg.experts];
    let mut chosen = [0usize; MAX_EXPERTS_USED];
    let mut n = 0;
    for (e, &wt) in router.iter().enumerate() {
        if wt >= 0.0 && n < MAX_EXPERTS_USED {
            chosen[n] = e;
            n += 1;
        }
    }
    let chosen = &chosen[..n];
    let mats: [_; MAX_EXPERTS_USED] =
        core::array::from_fn(|j| w.expert(chosen.get(j).copied().unwrap_or(0)));
    let k = cx.kernels;
    m.act.fill(k.quantize_q8, x, 1, c);
    {
        let (a, b) = (&mut m.a[..n * fe], &mut m.b[..n * fe]);
        let mut items: [(&Matrix, usize, &mut [f32]); 2 * MAX_EXPERTS_USED] =
            core::array::from_fn(|_| (&Matrix::EMPTY, 0, &mut [][..]));
        for (j, (ga, ub)) in a
            .chunks_exact_mut(fe)
            .zip(b.chunks_exact_mut(fe))
            .enumerate()
        {
            items[2 * j] = (&mats[j].0, 0, ga);
            items[2 * j + 1] = (&mats[j].1, 0, ub);
        }
        if !k::matmul::matvec_rows16_each(k, cx.exec, &mut items[..2 * n], m.act) {
            return false;
        }
    }
    for j in 0..n {
        (k.swiglu)(&mut m.a[j * fe..(j + 1) * fe], &m.b[j * fe..(j + 1) * fe]);
    }
    m.act.fill(k.quantize_q8, &m.a[..n * fe], n, fe);
    {
        let mut items: [(&Matrix, usize, &mut [f32]); MAX_EXPERTS_USED] =
            core::array::from_fn(|_| (&Matrix::EMPTY, 0, &mut [][..]));
        for (j, out) in m.down[..n * c].chunks_exact_mut(c).enumerate() {
            items[j] = (&mats[j].2, j, out);
        }
        if !k::matmul::matvec_rows16_each(k, cx.exec, &mut items[..n], m.act) {
            return false;
        }
    }
    for (j, &e) in chosen.iter().enumerate() {
        let wt = m.router[e];
        for (s, &o) in m.sum[..c].iter_mut().zip(&m.down[j * c..(j + 1) * c]) {
            *s += wt * o;
        }
    }
    true
}

use ember_format::hparams::MAX_EXPERTS_USED;

/// One token's router logits (N) → the weights of its k largest: softmax over all N, keep
/// the top k (ties to the lower index), divided by their sum when `norm`; the others
/// become -1.
fn route(row: &mut [f32], k_used: usize, norm: bool) {
    k::softmax(row);
    let k_used = k_used.min(MAX_EXPERTS_USED).min(row.len());
    let mut picked = [(0usize, 0f32); MAX_EXPERTS_USED];
    for p in 0..k_used {
        let mut best: Option<usize> = None;
        for (e, &v) in row.iter().enumerate() {
            if picked[..p].iter().any(|&(q, _)| q == e) {
                continue;
            }
            if best.is_none_or(|b| v > row[b]) {
                best = Some(e);
            }
        }
        let b = best.unwrap_or(0); // k ≤ N: always found
        picked[p] = (b, row[b]);
    }
    let total: f32 = picked[..k_used].iter().map(|p| p.1).sum();
    row.fill(-1.0);
    for &(e, v) in &picked[..k_used] {
        row[e] = if norm && total > 0.0 { v / total } else { v };
    }
}

impl<'a, L: AsRef<[Layer<'a>]>> Model<'a, L> {
    /// Each layer's input from the per-layer embeddings, into `s.ple` (T, L·P):
    /// (rms_norm(proj·x / sqrt(C)) + table[id] · sqrt(P)) / sqrt(2), the norm over each
    /// layer's P; x (T, C) the scaled token embeddings.
    fn per_layer_inputs(
        &self,
        cx: Compute,
        pl: &PerLayerEmbeddings,
        tokens: &[u32],
        s: &mut Parts,
    ) {
        let cfg = &self.config;
        let (t, p) = (tokens.len(), cfg.per_layer_dim);
        let lp = cfg.layers * p;
        let table_scale = sqrt64(p as f64) as f32;
        for (i, &id) in tokens.iter().enumerate() {
            let row = &mut s.ple_tok[i * lp..(i + 1) * lp];
            embed(&pl.token_embd, id as usize, row);
            row.iter_mut().for_each(|v| *v *= table_scale);
        }
        if let Some(o) = cx.observer {
            o.matmul_input(None, "per_layer_model_proj", &s.x[..t * cfg.dim], t);
        }
        let ple = &mut s.ple[..t * lp];
        k::matmul::matmul(
            cx.kernels,
            cx.exec,
            &pl.model_proj,
            None,
            s.x,
            t,
            ple,
            &mut s.act,
        );
        let proj_scale = (1.0 / sqrt64(cfg.dim as f64)) as f32;
        ple.iter_mut().for_each(|v| *v *= proj_scale);
        k::rmsnorm_heads(ple, p, pl.proj_norm, cfg.norm_eps);
        let sum_scale = (1.0 / sqrt64(2.0)) as f32;
        for (v, &tok) in ple.iter_mut().zip(&s.ple_tok[..t * lp]) {
            *v = (*v + tok) * sum_scale;
        }
    }
}
