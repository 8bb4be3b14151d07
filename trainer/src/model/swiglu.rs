//! SwiGLU: h = silu(gate) * up, with gate|up from one fused projection.

use crate::float::Float;

fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).fast_exp())
}

/// gu: (N, 2F), each row [gate (F) | up (F)]; h: (N, F); sg: (N, F) sigmoid(gate), saved
/// so that backward needs no exp.
pub fn swiglu_forward<T: Float>(h: &mut [T], sg: &mut [T], gu: &[T], f: usize) {
    for ((hr, sr), gr) in h
        .chunks_exact_mut(f)
        .zip(sg.chunks_exact_mut(f))
        .zip(gu.chunks_exact(2 * f))
    {
        let (g, u) = gr.split_at(f);
        for i in 0..f {
            let s = sigmoid(g[i]);
            sr[i] = s;
            hr[i] = g[i] * s * u[i];
        }
    }
}

/// dgu: (N, 2F), overwritten, from dh: (N, F) and the forward's gu and sg.
pub fn swiglu_backward<T: Float>(dgu: &mut [T], dh: &[T], gu: &[T], sg: &[T], f: usize) {
    let rows = dgu
        .chunks_exact_mut(2 * f)
        .zip(dh.chunks_exact(f))
        .zip(gu.chunks_exact(2 * f))
        .zip(sg.chunks_exact(f));
    for (((dr, dhr), gr), sr) in rows {
        let (g, u) = gr.split_at(f);
        let (dg, du) = dr.split_at_mut(f);
        for i in 0..f {
            let s = sr[i];
            let silu = g[i] * s;
            du[i] = dhr[i] * silu;
            dg[i] = dhr[i] * u[i] * s * (T::ONE + g[i] * (T::ONE - s));
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
        let (n, f) = (3, 4);
        let mut rng = Rng::new(3);
        let gu = randn(&mut rng, n * 2 * f, 2.0);
        let r = randn(&mut rng, n * f, 1.0);
        let fwd = |gu: &[f64]| {
            let mut h = vec![0.0; n * f];
            let mut sg = vec![0.0; n * f];
            swiglu_forward(&mut h, &mut sg, gu, f);
            (dot(&h, &r), sg)
        };
        let loss = |gu: &[f64]| fwd(gu).0;
        let mut dgu = vec![0.0; n * 2 * f];
        swiglu_backward(&mut dgu, &r, &gu, &fwd(&gu).1, f);
        check("swiglu", &gu, &dgu, loss);
    }
}
