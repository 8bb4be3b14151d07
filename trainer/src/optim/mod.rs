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
    ranges: Vec<std::ops::Range<usize>>,
}

impl AdamW {
    pub fn new(cfg: AdamWConfig, layout: &Layout) -> Self {
        let n = layout.n_params;
        AdamW {
            cfg,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            decay: layout.specs.iter().map(|s| s.decay).collect(),
            ranges: layout.specs.iter().map(|s| s.range()).collect(),
        }
    }

    /// One update: p -= lr * wd * p (decay tensors only), then the Adam step.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        self.t += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - (c.beta1 as f64).powi(self.t as i32);
        let bc2 = 1.0 - (c.beta2 as f64).powi(self.t as i32);
        let step_size = (lr as f64 / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        for (range, &decay) in self.ranges.iter().zip(&self.decay) {
            let keep = if decay {
                1.0 - lr * c.weight_decay
            } else {
                1.0
            };
            let r = range.clone();
            for (((p, &g), m), v) in params[r.clone()]
                .iter_mut()
                .zip(&grads[r.clone()])
                .zip(&mut self.m[r.clone()])
                .zip(&mut self.v[r])
            {
                *p *= keep;
                *m = c.beta1 * *m + (1.0 - c.beta1) * g;
                *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
                *p -= step_size * *m / (v.sqrt() * inv_sqrt_bc2 + c.eps);
            }
        }
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm` (if > 0).
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    let norm = grads
        .iter()
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt() as f32;
    if max_norm > 0.0 && norm > max_norm {
        let s = max_norm / (norm + 1e-6);
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
    }
}
