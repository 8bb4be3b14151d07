//! Central finite differences in f64: the reference every backward pass is checked against.
use crate::rng::Rng;

pub fn randn(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

/// Checks `analytic` = d loss / d x at every coordinate of `x` (h = 1e-5, relative tol 1e-6).
pub fn check(name: &str, x: &[f64], analytic: &[f64], loss: impl Fn(&[f64]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let h = 1e-5;
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + h;
        let lp = loss(&xp);
        xp[i] = x[i] - h;
        let lm = loss(&xp);
        xp[i] = x[i];
        let numeric = (lp - lm) / (2.0 * h);
        let err = (numeric - analytic[i]).abs();
        let tol = 1e-6 * (1.0 + numeric.abs().max(analytic[i].abs()));
        assert!(
            err <= tol,
            "{name}[{i}]: analytic {} vs numeric {numeric}",
            analytic[i]
        );
    }
}

/// sum(out * r): its gradient with respect to `out` is `r`.
pub fn dot(out: &[f64], r: &[f64]) -> f64 {
    out.iter().zip(r).map(|(a, b)| a * b).sum()
}
