//! RMSNorm (Llama): y = x / sqrt(mean(x^2) + eps) * w.
use crate::float::Float;

/// out, x: (N, C); w: (C); rstd: (N), saved for backward.
pub fn rmsnorm_forward<T: Float>(
    out: &mut [T],
    rstd: &mut [T],
    x: &[T],
    w: &[T],
    c: usize,
    eps: f64,
) {
    for ((o, r), xr) in out
        .chunks_exact_mut(c)
        .zip(rstd.iter_mut())
        .zip(x.chunks_exact(c))
    {
        let mut ss = T::ZERO;
        for &v in xr {
            ss += v * v;
        }
        let s = T::ONE / (ss / T::from_f64(c as f64) + T::from_f64(eps)).sqrt();
        *r = s;
        for ((o, &v), &wi) in o.iter_mut().zip(xr).zip(w) {
            *o = v * s * wi;
        }
    }
}

/// dx (N, C) += d x; dw (C) += d w; given dout (N, C), the forward's x, w and rstd.
pub fn rmsnorm_backward<T: Float>(
    dx: &mut [T],
    dw: &mut [T],
    dout: &[T],
    x: &[T],
    w: &[T],
    rstd: &[T],
    c: usize,
) {
    let inv_c = T::ONE / T::from_f64(c as f64);
    for (((dxr, dor), xr), &s) in dx
        .chunks_exact_mut(c)
        .zip(dout.chunks_exact(c))
        .zip(x.chunks_exact(c))
        .zip(rstd)
    {
        // xhat = x * s; dxhat = dout * w; dx = s * (dxhat - xhat * mean(dxhat * xhat))
        let mut dot = T::ZERO;
        for i in 0..c {
            let xhat = xr[i] * s;
            dot += dor[i] * w[i] * xhat;
            dw[i] += dor[i] * xhat;
        }
        let m = dot * inv_c;
        for i in 0..c {
            let xhat = xr[i] * s;
            dxr[i] += s * (dor[i] * w[i] - xhat * m);
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
        let (n, c, eps) = (3, 5, 1e-5);
        let mut rng = Rng::new(1);
        let x = randn(&mut rng, n * c, 1.0);
        let w = randn(&mut rng, c, 1.0);
        let r = randn(&mut rng, n * c, 1.0);
        let f = |x: &[f64], w: &[f64]| {
            let mut out = vec![0.0; n * c];
            let mut rs = vec![0.0; n];
            rmsnorm_forward(&mut out, &mut rs, x, w, c, eps);
            (dot(&out, &r), rs)
        };
        let (_, rs) = f(&x, &w);
        let mut dx = vec![0.0; n * c];
        let mut dw = vec![0.0; c];
        rmsnorm_backward(&mut dx, &mut dw, &r, &x, &w, &rs, c);
        check("rmsnorm dx", &x, &dx, |x| f(x, &w).0);
        check("rmsnorm dw", &w, &dw, |w| f(&x, w).0);
    }
}
