//! Softmax cross-entropy for next-token prediction.
use crate::float::Float;

/// logits: (N, V), replaced by softmax probabilities. Returns sum over rows of -ln p[target].
pub fn softmax_xent_forward<T: Float>(logits: &mut [T], targets: &[u32], v: usize) -> f64 {
    let mut total = 0.0;
    for (row, &tg) in logits.chunks_exact_mut(v).zip(targets) {
        let mut mx = row[0];
        for &x in &row[1..] {
            if x > mx {
                mx = x;
            }
        }
        let mut sum = T::ZERO;
        for x in row.iter_mut() {
            *x = (*x - mx).fast_exp();
            sum += *x;
        }
        let inv = T::ONE / sum;
        for x in row.iter_mut() {
            *x *= inv;
        }
        total -= row[tg as usize].to_f64().max(f64::MIN_POSITIVE).ln();
    }
    total
}

/// probs (N, V) -> dlogits in place: (p - onehot(target)) * scale.
pub fn softmax_xent_backward<T: Float>(probs: &mut [T], targets: &[u32], v: usize, scale: T) {
    for (row, &tg) in probs.chunks_exact_mut(v).zip(targets) {
        row[tg as usize] -= T::ONE;
        for x in row.iter_mut() {
            *x *= scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gradcheck::{check, randn};
    use crate::rng::Rng;

    #[test]
    fn backward_matches_finite_differences() {
        let (n, v) = (3, 5);
        let targets = [1u32, 4, 0];
        let mut rng = Rng::new(6);
        let logits = randn(&mut rng, n * v, 2.0);
        let loss = |l: &[f64]| softmax_xent_forward(&mut l.to_vec(), &targets, v) / n as f64;
        let mut g = logits.clone();
        softmax_xent_forward(&mut g, &targets, v);
        softmax_xent_backward(&mut g, &targets, v, 1.0 / n as f64);
        check("xent", &logits, &g, loss);
    }
}
