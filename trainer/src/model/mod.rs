//! The Llama-style decoder: forward and backward passes over one flat parameter buffer.
//!
//! Per layer: x -> RMSNorm -> q|k|v -> RoPE -> causal GQA -> o_proj (+x)
//!             -> RMSNorm -> gate|up -> SwiGLU -> down_proj (+) -> next x.
//! Every layer function has its backward next to it and a finite-difference test.
pub mod attention;
pub mod config;
#[cfg(test)]
pub(crate) mod gradcheck;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;

pub use config::ModelConfig;
pub use layout::{Layout, ParamSpec};

use crate::float::Float;
use crate::rng::Rng;
use attention::{attention_backward, attention_forward, AttnShape};
use linear::{linear_backward, linear_forward};
use loss::{softmax_xent_backward, softmax_xent_forward};
use rmsnorm::{rmsnorm_backward, rmsnorm_forward};
use rope::{rope_apply, RopeTable};
use swiglu::{swiglu_backward, swiglu_forward};

/// Fills a fresh parameter buffer: N(0, 0.02) weights (residual projections o_proj and
/// down_proj scaled by 1/sqrt(2L) as in GPT-2), norms at 1.
pub fn init_params(cfg: &ModelConfig, layout: &Layout, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed ^ 0x1417_u64);
    let mut p = vec![0f32; layout.n_params];
    let resid = 0.02 / (2.0 * cfg.n_layers as f64).sqrt();
    for spec in &layout.specs {
        let std = if spec.name.ends_with("o_proj.weight") || spec.name.ends_with("down_proj.weight")
        {
            resid
        } else {
            0.02
        };
        for v in &mut p[spec.range()] {
            *v = if spec.decay {
                (rng.normal() * std) as f32
            } else {
                1.0
            };
        }
    }
    p
}

/// Activations and backward scratch for up to `b` sequences of `t` tokens, allocated once.
pub struct Acts<T> {
    pub b: usize,
    pub t: usize,
    // Forward, saved for backward. Shapes for N = B T tokens.
    x: Vec<T>,     // (L+1, N, C) residual stream entering each layer, and after the last
    xmid: Vec<T>,  // (L, N, C) residual after attention
    ln1: Vec<T>,   // (L, N, C)
    rstd1: Vec<T>, // (L, N)
    qkv: Vec<T>,   // (L, N, QKV), q and k rotated
    att: Vec<T>,   // (L, B, NH, T, T)
    atty: Vec<T>,  // (L, N, NH HS)
    ln2: Vec<T>,   // (L, N, C)
    rstd2: Vec<T>, // (L, N)
    gu: Vec<T>,    // (L, N, 2F)
    h: Vec<T>,     // (L, N, F)
    sg: Vec<T>,    // (L, N, F) sigmoid(gate)
    lnf: Vec<T>,   // (N, C)
    rstdf: Vec<T>, // (N)
    pub logits: Vec<T>, // (N, V): logits, then probabilities, then d logits
    // Backward scratch.
    dx: Vec<T>,    // (N, C)
    dln: Vec<T>,   // (N, C)
    dqkv: Vec<T>,  // (N, QKV)
    datty: Vec<T>, // (N, NH HS)
    dgu: Vec<T>,   // (N, 2F)
    dh: Vec<T>,    // (N, F)
    datt: Vec<T>,  // (T, T)
}

impl<T: Float> Acts<T> {
    /// How many values `Acts::new(cfg, b, t)` allocates (saturating, for a memory check).
    pub fn floats(cfg: &ModelConfig, b: usize, t: usize) -> usize {
        let (n, c, l, f) = (b.saturating_mul(t), cfg.dim, cfg.n_layers, cfg.ffn);
        let ad = cfg.n_heads * cfg.head_size();
        let per_token = (l * (4 * c + 2 + cfg.qkv_dim() + ad + 4 * f) + 4 * c + 1 + cfg.vocab_size)
            .saturating_add(cfg.qkv_dim() + ad + 3 * f);
        n.saturating_mul(per_token)
            .saturating_add(
                l.saturating_mul(b)
                    .saturating_mul(cfg.n_heads)
                    .saturating_mul(t)
                    .saturating_mul(t),
            )
            .saturating_add(t.saturating_mul(t))
    }

    pub fn new(cfg: &ModelConfig, b: usize, t: usize) -> Self {
        let (n, c, l, f) = (b * t, cfg.dim, cfg.n_layers, cfg.ffn);
        let z = |len: usize| vec![T::ZERO; len];
        let ad = cfg.n_heads * cfg.head_size();
        Acts {
            b,
            t,
            x: z((l + 1) * n * c),
            xmid: z(l * n * c),
            ln1: z(l * n * c),
            rstd1: z(l * n),
            qkv: z(l * n * cfg.qkv_dim()),
            att: z(l * b * cfg.n_heads * t * t),
            atty: z(l * n * ad),
            ln2: z(l * n * c),
            rstd2: z(l * n),
            gu: z(l * n * 2 * f),
            h: z(l * n * f),
            sg: z(l * n * f),
            lnf: z(n * c),
            rstdf: z(n),
            logits: z(n * cfg.vocab_size),
            dx: z(n * c),
            dln: z(n * c),
            dqkv: z(n * cfg.qkv_dim()),
            datty: z(n * ad),
            dgu: z(n * 2 * f),
            dh: z(n * f),
            datt: z(t * t),
        }
    }
}

/// The model's shape, parameter layout and RoPE tables; parameters live outside.
pub struct Model<T> {
    pub cfg: ModelConfig,
    pub layout: Layout,
    rope: RopeTable<T>,
}

impl<T: Float> Model<T> {
    pub fn new(cfg: &ModelConfig) -> Self {
        Model {
            cfg: cfg.clone(),
            layout: Layout::new(cfg),
            rope: RopeTable::new(cfg.ctx, cfg.head_size(), cfg.rope_theta),
        }
    }

    /// Runs `tokens` (B T ids, B <= acts.b, T = acts.t) through the model. With targets,
    /// returns the summed cross-entropy (nats) and leaves probabilities in acts.logits.
    pub fn forward(
        &self,
        p: &[T],
        a: &mut Acts<T>,
        tokens: &[u32],
        targets: Option<&[u32]>,
    ) -> f64 {
        let cfg = &self.cfg;
        let (c, t, f, v) = (cfg.dim, a.t, cfg.ffn, cfg.vocab_size);
        let n = tokens.len();
        assert!(
            n.is_multiple_of(t) && n / t <= a.b,
            "forward: batch does not fit the activations"
        );
        let (qd, ad) = (cfg.qkv_dim(), cfg.n_heads * cfg.head_size());
        let shape = AttnShape {
            b: n / t,
            t,
            nh: cfg.n_heads,
            kvh: cfg.n_kv_heads,
            hs: cfg.head_size(),
        };
        let (nn, bt) = (n * c, a.b * t);
        // Embedding lookup: x0[i] = wte[tokens[i]].
        let wte = &p[self.layout.wte..self.layout.wte + v * c];
        for (row, &tok) in a.x[..nn].chunks_exact_mut(c).zip(tokens) {
            row.copy_from_slice(&wte[tok as usize * c..(tok as usize + 1) * c]);
        }
        for (l, lo) in self.layout.layers.iter().enumerate() {
            let (xs, xrest) = a.x.split_at_mut((l + 1) * bt * c);
            let x = &xs[l * bt * c..l * bt * c + nn];
            let ln1 = &mut a.ln1[l * bt * c..][..nn];
            let rstd1 = &mut a.rstd1[l * bt..][..n];
            rmsnorm_forward(ln1, rstd1, x, &p[lo.ln1..lo.ln1 + c], c, cfg.norm_eps);
            let qkv = &mut a.qkv[l * bt * qd..][..n * qd];
            linear_forward(qkv, ln1, &p[lo.wqkv..lo.wqkv + qd * c], n, c, qd, false);
            rope_apply(qkv, qd, 0, cfg.n_heads, t, &self.rope, false);
            rope_apply(qkv, qd, ad, cfg.n_kv_heads, t, &self.rope, false);
            let att = &mut a.att[l * a.b * cfg.n_heads * t * t..][..n * cfg.n_heads * t];
            let atty = &mut a.atty[l * bt * ad..][..n * ad];
            attention_forward(atty, att, qkv, shape);
            let xmid = &mut a.xmid[l * bt * c..][..nn];
            xmid.copy_from_slice(x);
            linear_forward(xmid, atty, &p[lo.wo..lo.wo + c * ad], n, ad, c, true);
            let ln2 = &mut a.ln2[l * bt * c..][..nn];
            let rstd2 = &mut a.rstd2[l * bt..][..n];
            rmsnorm_forward(ln2, rstd2, xmid, &p[lo.ln2..lo.ln2 + c], c, cfg.norm_eps);
            let gu = &mut a.gu[l * bt * 2 * f..][..n * 2 * f];
            linear_forward(gu, ln2, &p[lo.wgu..lo.wgu + 2 * f * c], n, c, 2 * f, false);
            let h = &mut a.h[l * bt * f..][..n * f];
            let sg = &mut a.sg[l * bt * f..][..n * f];
            swiglu_forward(h, sg, gu, f);
            let xout = &mut xrest[..nn];
            xout.copy_from_slice(xmid);
            linear_forward(xout, h, &p[lo.wd..lo.wd + c * f], n, f, c, true);
        }
        let l = cfg.n_layers;
        let xl = &a.x[l * bt * c..][..nn];
        rmsnorm_forward(
            &mut a.lnf[..nn],
            &mut a.rstdf[..n],
            xl,
            &p[self.layout.lnf..self.layout.lnf + c],
            c,
            cfg.norm_eps,
        );
        let logits = &mut a.logits[..n * v];
        linear_forward(
            logits,
            &a.lnf[..nn],
            &p[self.layout.wlm..self.layout.wlm + v * c],
            n,
            c,
            v,
            false,
        );
        match targets {
            Some(tg) => softmax_xent_forward(logits, tg, v),
            None => 0.0,
        }
    }

    /// Accumulates d(scale * summed loss)/d params into `g`, after `forward` with targets.
    pub fn backward(
        &self,
        p: &[T],
        g: &mut [T],
        a: &mut Acts<T>,
        tokens: &[u32],
        targets: &[u32],
        scale: T,
    ) {
        let cfg = &self.cfg;
        let (c, t, f, v) = (cfg.dim, a.t, cfg.ffn, cfg.vocab_size);
        let n = tokens.len();
        let (qd, ad) = (cfg.qkv_dim(), cfg.n_heads * cfg.head_size());
        let shape = AttnShape {
            b: n / t,
            t,
            nh: cfg.n_heads,
            kvh: cfg.n_kv_heads,
            hs: cfg.head_size(),
        };
        let (nn, bt) = (n * c, a.b * t);
        let (wlm, lnf) = (self.layout.wlm, self.layout.lnf);
        let dlogits = &mut a.logits[..n * v];
        softmax_xent_backward(dlogits, targets, v, scale);
        linear_backward(
            Some(&mut a.dln[..nn]),
            &mut g[wlm..wlm + v * c],
            dlogits,
            &a.lnf[..nn],
            &p[wlm..wlm + v * c],
            n,
            c,
            v,
        );
        let dx = &mut a.dx[..nn];
        dx.iter_mut().for_each(|x| *x = T::ZERO);
        let xl = &a.x[cfg.n_layers * bt * c..][..nn];
        rmsnorm_backward(
            dx,
            &mut g[lnf..lnf + c],
            &a.dln[..nn],
            xl,
            &p[lnf..lnf + c],
            &a.rstdf[..n],
            c,
        );
        for (l, lo) in self.layout.layers.iter().enumerate().rev() {
            let x = &a.x[l * bt * c..][..nn];
            let xmid = &a.xmid[l * bt * c..][..nn];
            let h = &a.h[l * bt * f..][..n * f];
            let gu = &a.gu[l * bt * 2 * f..][..n * 2 * f];
            // MLP: dx flows through the residual and into down_proj.
            linear_backward(
                Some(&mut a.dh[..n * f]),
                &mut g[lo.wd..lo.wd + c * f],
                dx,
                h,
                &p[lo.wd..lo.wd + c * f],
                n,
                f,
                c,
            );
            let sg = &a.sg[l * bt * f..][..n * f];
            swiglu_backward(&mut a.dgu[..n * 2 * f], &a.dh[..n * f], gu, sg, f);
            let ln2 = &a.ln2[l * bt * c..][..nn];
            linear_backward(
                Some(&mut a.dln[..nn]),
                &mut g[lo.wgu..lo.wgu + 2 * f * c],
                &a.dgu[..n * 2 * f],
                ln2,
                &p[lo.wgu..lo.wgu + 2 * f * c],
                n,
                c,
                2 * f,
            );
            rmsnorm_backward(
                dx,
                &mut g[lo.ln2..lo.ln2 + c],
                &a.dln[..nn],
                xmid,
                &p[lo.ln2..lo.ln2 + c],
                &a.rstd2[l * bt..][..n],
                c,
            );
            // Attention.
            let atty = &a.atty[l * bt * ad..][..n * ad];
            linear_backward(
                Some(&mut a.datty[..n * ad]),
                &mut g[lo.wo..lo.wo + c * ad],
                dx,
                atty,
                &p[lo.wo..lo.wo + c * ad],
                n,
                ad,
                c,
            );
            let att = &a.att[l * a.b * cfg.n_heads * t * t..][..n * cfg.n_heads * t];
            let qkv = &a.qkv[l * bt * qd..][..n * qd];
            let dqkv = &mut a.dqkv[..n * qd];
            attention_backward(dqkv, &mut a.datt, &a.datty[..n * ad], att, qkv, shape);
            rope_apply(dqkv, qd, 0, cfg.n_heads, t, &self.rope, true);
            rope_apply(dqkv, qd, ad, cfg.n_kv_heads, t, &self.rope, true);
            let ln1 = &a.ln1[l * bt * c..][..nn];
            linear_backward(
                Some(&mut a.dln[..nn]),
                &mut g[lo.wqkv..lo.wqkv + qd * c],
                dqkv,
                ln1,
                &p[lo.wqkv..lo.wqkv + qd * c],
                n,
                c,
                qd,
            );
            rmsnorm_backward(
                dx,
                &mut g[lo.ln1..lo.ln1 + c],
                &a.dln[..nn],
                x,
                &p[lo.ln1..lo.ln1 + c],
                &a.rstd1[l * bt..][..n],
                c,
            );
        }
        // Embedding: dwte[tokens[i]] += dx0[i].
        let wte = self.layout.wte;
        for (row, &tok) in dx.chunks_exact(c).zip(tokens) {
            let dst = &mut g[wte + tok as usize * c..wte + (tok as usize + 1) * c];
            for (d, &s) in dst.iter_mut().zip(row) {
                *d += s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, randn};

    fn tiny(tie: bool) -> ModelConfig {
        ModelConfig {
            vocab_size: 7,
            dim: 8,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            ffn: 6,
            ctx: 4,
            norm_eps: 1e-5,
            rope_theta: 10000.0,
            tie_embeddings: tie,
        }
    }

    #[test]
    fn whole_model_backward_matches_finite_differences() {
        for tie in [false, true] {
            let cfg = tiny(tie);
            let model = Model::<f64>::new(&cfg);
            let mut rng = Rng::new(9);
            let mut p = randn(&mut rng, model.layout.n_params, 0.5);
            for spec in model.layout.specs.iter().filter(|s| !s.decay) {
                p[spec.range()].iter_mut().for_each(|x| *x += 1.0);
            }
            let tokens = [1u32, 3, 5, 0, 6, 2, 2, 4];
            let targets = [3u32, 5, 0, 6, 2, 2, 4, 1];
            let mut a = Acts::new(&cfg, 2, 4);
            let n = tokens.len() as f64;
            model.forward(&p, &mut a, &tokens, Some(&targets));
            let mut g = vec![0.0; p.len()];
            model.backward(&p, &mut g, &mut a, &tokens, &targets, 1.0 / n);
            let loss = |q: &[f64]| {
                let mut a = Acts::new(&cfg, 2, 4);
                model.forward(q, &mut a, &tokens, Some(&targets)) / n
            };
            check(if tie { "model (tied)" } else { "model" }, &p, &g, loss);
        }
    }

    #[test]
    fn activation_size_is_what_new_allocates() {
        let cfg = tiny(false);
        let a = Acts::<f32>::new(&cfg, 3, 4);
        let total = [
            &a.x, &a.xmid, &a.ln1, &a.rstd1, &a.qkv, &a.att, &a.atty, &a.ln2, &a.rstd2, &a.gu,
            &a.h, &a.sg, &a.lnf, &a.rstdf, &a.logits, &a.dx, &a.dln, &a.dqkv, &a.datty, &a.dgu,
            &a.dh, &a.datt,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>();
        assert_eq!(Acts::<f32>::floats(&cfg, 3, 4), total);
    }

    #[test]
    fn f32_and_f64_forward_agree() {
        let cfg = tiny(false);
        let layout = Layout::new(&cfg);
        let p32 = init_params(&cfg, &layout, 3);
        let p64: Vec<f64> = p32.iter().map(|&x| x as f64).collect();
        let tokens = [1u32, 2, 3, 4];
        let targets = [2u32, 3, 4, 5];
        let l32 = Model::<f32>::new(&cfg).forward(
            &p32,
            &mut Acts::new(&cfg, 1, 4),
            &tokens,
            Some(&targets),
        );
        let l64 = Model::<f64>::new(&cfg).forward(
            &p64,
            &mut Acts::new(&cfg, 1, 4),
            &tokens,
            Some(&targets),
        );
        assert!((l32 - l64).abs() < 1e-5, "{l32} vs {l64}");
        assert!(
            (l64 / 4.0 - (7f64).ln()).abs() < 0.05,
            "initial loss near ln V"
        );
    }
}
