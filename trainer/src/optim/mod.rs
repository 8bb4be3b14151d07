//! AdamW (decoupled weight decay, PyTorch's formula), the learning-rate schedule and
//! gradient-norm clipping.
pub mod schedule;

pub use schedule::lr_at;

use crate::model::Layout;

#[derive(Clone, Debug)]
pub struct AdamWConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// First and second moments, one slot per parameter, plus the step count for bias correction.
#[derive(Clone, Debug)]
pub struct AdamW {
    pub cfg: AdamWConfig,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub t: u64,
    /// Per parameter: does weight decay apply (2-D weights yes, norms no).
    decay: Vec<bool>,
}

/// The per-step constants of an update.
#[derive(Clone, Copy)]
struct StepConsts {
    beta1: f32,
    beta2: f32,
    eps: f32,
    /// 1 - lr * wd, applied to decayed parameters.
    keep: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    grad_scale: f32,
}

fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decay: &[bool], k: StepConsts) {
    for i in 0..p.len() {
        let gi = g[i] * k.grad_scale;
        if decay[i] {
            p[i] *= k.keep;
        }
        m[i] = k.beta1 * m[i] + (1.0 - k.beta1) * gi;
        v[i] = k.beta2 * v[i] + (1.0 - k.beta2) * gi * gi;
        p[i] -= k.step_size * m[i] / (v[i].sqrt() * k.inv_sqrt_bc2 + k.eps);
    }
}

impl AdamW {
    pub fn new(cfg: AdamWConfig, layout: &Layout) -> Self {
        let n = layout.n_params;
        let mut decay = vec![false; n];
        for s in &layout.specs {
            decay[s.range()].iter_mut().for_each(|d| *d = s.decay);
        }
        AdamW {
            cfg,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            decay,
        }
    }

    fn consts(&self, lr: f32, grad_scale: f32) -> StepConsts {
        let c = &self.cfg;
        let bc1 = 1.0 - (c.beta1 as f64).powi(self.t as i32);
        let bc2 = 1.0 - (c.beta2 as f64).powi(self.t as i32);
        StepConsts {
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            keep: 1.0 - lr * c.weight_decay,
            step_size: (lr as f64 / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            grad_scale,
        }
    }

    /// One update: p -= lr * wd * p (decay tensors only), then the Adam step.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        self.step_parallel(params, grads, lr, 1.0, 1);
    }

    /// The same update with the gradients multiplied by `grad_scale` (gradient clipping),
    /// split over `threads` contiguous parameter ranges. The result does not depend on
    /// `threads`: each parameter's update is independent.
    pub fn step_parallel(
        &mut self,
        params: &mut [f32],
        grads: &[f32],
        lr: f32,
        grad_scale: f32,
        threads: usize,
    ) {
        self.t += 1;
        let k = self.consts(lr, grad_scale);
        let chunk = params.len().div_ceil(threads.max(1)).max(1);
        if threads <= 1 {
            update(params, grads, &mut self.m, &mut self.v, &self.decay, k);
            return;
        }
        std::thread::scope(|s| {
            let parts = params
                .chunks_mut(chunk)
                .zip(grads.chunks(chunk))
                .zip(self.m.chunks_mut(chunk))
                .zip(self.v.chunks_mut(chunk))
                .zip(self.decay.chunks(chunk));
            for ((((p, g), m), v), d) in parts {
                s.spawn(move || update(p, g, m, v, d, k));
            }
        });
    }
}

/// The factor that brings a gradient of global L2 norm `norm` down to `max_norm`
/// (1 when it is already within, or when `max_norm` is 0).
pub fn clip_scale(norm: f32, max_norm: f32) -> f32 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// Sum of squares in f64, eight f32-lane partial sums at a time so it vectorizes.
pub fn sum_squares(xs: &[f32]) -> f64 {
    let mut total = 0f64;
    for block in xs.chunks(4096) {
        let mut lanes = [0f32; 8];
        let mut it = block.chunks_exact(8);
        for c in &mut it {
            for j in 0..8 {
                lanes[j] += c[j] * c[j];
            }
        }
        total += lanes.iter().map(|&l| l as f64).sum::<f64>();
        total += it
            .remainder()
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>();
    }
    total
}

/// Scales `grads` so that their global L2 norm is at most `max_norm` (if > 0).
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    let norm = sum_squares(grads).sqrt() as f32;
    let s = clip_scale(norm, max_norm);
    if s != 1.0 {
        grads.iter_mut().for_each(|g| *g *= s);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_bounds_the_norm() {
        let mut g = vec![3.0f32, 4.0];
        assert_eq!(clip_grad_norm(&mut g, 1.0), 5.0);
        let n = (g[0] * g[0] + g[1] * g[1]).sqrt();
        assert!((n - 1.0).abs() < 1e-4);
        let mut h = vec![0.3f32, 0.4];
        clip_grad_norm(&mut h, 1.0);
        assert_eq!(h, vec![0.3, 0.4]);
        let xs: Vec<f32> = (0..10001).map(|i| (i as f32 * 0.37).sin()).collect();
        let exact: f64 = xs.iter().map(|&x| (x as f64) * (x as f64)).sum();
        assert!((sum_squares(&xs) - exact).abs() < 1e-6 * exact);
    }

    #[test]
    fn parallel_step_equals_serial_step() {
        let cfg = crate::model::ModelConfig {
            vocab_size: 5,
            dim: 4,
            n_layers: 1,
            n_heads: 2,
            n_kv_heads: 1,
            ffn: 6,
            ctx: 4,
            norm_eps: 1e-5,
            rope_theta: 1e4,
            tie_embeddings: false,
        };
        let layout = Layout::new(&cfg);
        let c = AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let p0: Vec<f32> = (0..layout.n_params)
            .map(|i| (i as f32 * 0.1).cos())
            .collect();
        let g: Vec<f32> = (0..layout.n_params)
            .map(|i| (i as f32 * 0.7).sin())
            .collect();
        let (mut a, mut b) = (AdamW::new(c.clone(), &layout), AdamW::new(c, &layout));
        let (mut pa, mut pb) = (p0.clone(), p0.clone());
        let mut gs = g.clone();
        for _ in 0..3 {
            gs.copy_from_slice(&g);
            gs.iter_mut().for_each(|x| *x *= 0.5);
            a.step(&mut pa, &gs, 1e-2);
            b.step_parallel(&mut pb, &g, 1e-2, 0.5, 3);
        }
        assert_eq!(pa, pb);
        // Norms are not decayed: with zero gradient they stay put.
        let norm = layout.find("model.norm.weight").unwrap().range();
        let mut p = p0.clone();
        AdamW::new(
            AdamWConfig {
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
                weight_decay: 0.5,
            },
            &layout,
        )
        .step(&mut p, &vec![0.0; p0.len()], 0.1);
        assert_eq!(p[norm.clone()], p0[norm]);
        assert!(p[0].abs() < p0[0].abs());
    }
}
