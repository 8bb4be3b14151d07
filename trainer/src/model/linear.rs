//! Bias-free linear layer, PyTorch weight layout: out = x @ w^T.
use crate::float::{gemm, Float, View};

/// out (N, OC) = x (N, C) @ w^T, w: (OC, C). `accumulate` adds into out (residual adds).
pub fn linear_forward<T: Float>(
    out: &mut [T],
    x: &[T],
    w: &[T],
    n: usize,
    c: usize,
    oc: usize,
    accumulate: bool,
) {
    let beta = if accumulate { T::ONE } else { T::ZERO };
    gemm(
        n,
        c,
        oc,
        T::ONE,
        View::rows(x, c),
        View::rows(w, c).t(),
        beta,
        out,
        oc,
        1,
    );
}

/// dx (N, C) = dout (N, OC) @ w (overwritten, if wanted); dw (OC, C) += dout^T @ x.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Float>(
    dx: Option<&mut [T]>,
    dw: &mut [T],
    dout: &[T],
    x: &[T],
    w: &[T],
    n: usize,
    c: usize,
    oc: usize,
) {
    if let Some(dx) = dx {
        gemm(
            n,
            oc,
            c,
            T::ONE,
            View::rows(dout, oc),
            View::rows(w, c),
            T::ZERO,
            dx,
            c,
            1,
        );
    }
    gemm(
        oc,
        n,
        c,
        T::ONE,
        View::rows(dout, oc).t(),
        View::rows(x, c),
        T::ONE,
        dw,
        c,
        1,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, dot, randn};
    use crate::rng::Rng;

    #[test]
    fn backward_matches_finite_differences() {
        let (n, c, oc) = (4, 3, 5);
        let mut rng = Rng::new(2);
        let x = randn(&mut rng, n * c, 1.0);
        let w = randn(&mut rng, oc * c, 1.0);
        let r = randn(&mut rng, n * oc, 1.0);
        let f = |x: &[f64], w: &[f64]| {
            let mut out = vec![0.0; n * oc];
            linear_forward(&mut out, x, w, n, c, oc, false);
            dot(&out, &r)
        };
        let mut dx = vec![0.0; n * c];
        let mut dw = vec![0.0; oc * c];
        linear_backward(Some(&mut dx), &mut dw, &r, &x, &w, n, c, oc);
        check("linear dx", &x, &dx, |x| f(x, &w));
        check("linear dw", &w, &dw, |w| f(&x, w));
    }
}
