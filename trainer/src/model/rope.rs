//! Rotary position embedding in Hugging Face's rotate-half convention:
//! for i < HS/2, (x_i, x_{i+HS/2}) is rotated by pos * theta^(-2i/HS).

use crate::float::Float;

/// cos and sin tables, each (T, HS/2).
#[derive(Clone, Debug)]
pub struct RopeTable<T> {
    pub cos: Vec<T>,
    pub sin: Vec<T>,
    pub half: usize,
}

impl<T: Float> RopeTable<T> {
    pub fn new(ctx: usize, hs: usize, theta: f64) -> Self {
        let half = hs / 2;
        let mut cos = Vec::with_capacity(ctx * half);
        let mut sin = Vec::with_capacity(ctx * half);
        for p in 0..ctx {
            for i in 0..half {
                let inv_freq = 1.0 / theta.powf((2 * i) as f64 / hs as f64);
                let a = p as f64 * inv_freq;
                cos.push(T::from_f64(a.cos()));
                sin.push(T::from_f64(a.sin()));
            }
        }
        RopeTable { cos, sin, half }
    }
}

/// Rotates `nheads` heads of size HS found at columns `col0..` of each row of x, a
/// (N, row_stride) buffer whose row r is position r % t. `inverse` rotates back, which is
/// the backward pass (the rotation is orthogonal, so its transpose is its inverse).
#[allow(clippy::too_many_arguments)]
pub fn rope_apply<T: Float>(
    x: &mut [T],
    row_stride: usize,
    col0: usize,
    nheads: usize,
    t: usize,
    table: &RopeTable<T>,
    inverse: bool,
) {
    let half = table.half;
    for (r, row) in x.chunks_exact_mut(row_stride).enumerate() {
        let p = r % t;
        let cos = &table.cos[p * half..(p + 1) * half];
        let sin = &table.sin[p * half..(p + 1) * half];
        for h in 0..nheads {
            let head = &mut row[col0 + h * 2 * half..col0 + (h + 1) * 2 * half];
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let s = if inverse { -sin[i] } else { sin[i] };
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * cos[i] - x2 * s;
                b[i] = x2 * cos[i] + x1 * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, dot, randn};
    use crate::rng::Rng;

    #[test]
    fn backward_matches_finite_differences() {
        // 2 sequences of 3 positions, 2 heads of size 4 after 2 untouched columns.
        let (t, stride, col0, nh, hs) = (3, 2 + 2 * 4 + 1, 2, 2, 4);
        let table = RopeTable::<f64>::new(t, hs, 10000.0);
        let mut rng = Rng::new(4);
        let x = randn(&mut rng, 2 * t * stride, 1.0);
        let r = randn(&mut rng, 2 * t * stride, 1.0);
        let loss = |x: &[f64]| {
            let mut y = x.to_vec();
            rope_apply(&mut y, stride, col0, nh, t, &table, false);
            dot(&y, &r)
        };
        let mut g = r.clone();
        rope_apply(&mut g, stride, col0, nh, t, &table, true);
        check("rope", &x, &g, loss);
        // Position 0 is the identity.
        let mut y = x.clone();
        rope_apply(&mut y, stride, col0, nh, t, &table, false);
        assert_eq!(&y[..stride], &x[..stride]);
    }
}
