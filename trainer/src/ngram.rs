//! An interpolated Kneser-Ney n-gram model: the baseline the transformer should beat.
//!
//! The highest order uses raw counts, lower orders continuation counts (the number of
//! distinct left contexts), each with an absolute discount D = n1 / (n1 + 2 n2) estimated
//! per order from counts of counts (Ney et al. 1994); the unigram level is interpolated
//! with the uniform distribution over the vocabulary, so no token has probability 0.
use std::collections::HashMap;

/// Up to 4 tokens of 32 bits packed into one key (order is implied by the table).
fn key(tokens: &[u32]) -> u128 {
    tokens.iter().fold(0u128, |k, &t| (k << 32) | t as u128)
}

#[derive(Default)]
struct Level {
    /// n-gram -> count (raw at the top order, continuation count below).
    counts: HashMap<u128, u32>,
    /// context (n-1 tokens) -> (sum of counts, number of distinct followers).
    ctx: HashMap<u128, (u64, u32)>,
    discount: f64,
}

pub struct KneserNey {
    order: usize,
    vocab: usize,
    /// levels[k - 1] holds k-grams.
    levels: Vec<Level>,
}

impl KneserNey {
    pub const MAX_ORDER: usize = 4;

    /// Counts n-grams of `tokens` up to `order` (1..=4).
    pub fn train(tokens: &[u32], order: usize, vocab: usize) -> Self {
        let order = order.clamp(1, Self::MAX_ORDER);
        let mut levels: Vec<Level> = (0..order).map(|_| Level::default()).collect();
        for w in tokens.windows(order) {
            *levels[order - 1].counts.entry(key(w)).or_default() += 1;
        }
        // Lower orders: continuation counts N1+(. w) from the distinct (k+1)-grams.
        for k in (1..order).rev() {
            let upper: Vec<u128> = levels[k].counts.keys().copied().collect();
            let mask = (1u128 << (32 * k)) - 1;
            let lower = &mut levels[k - 1].counts;
            for g in upper {
                *lower.entry(g & mask).or_default() += 1;
            }
        }
        for level in levels.iter_mut() {
            let (mut n1, mut n2) = (0f64, 0f64);
            for (&g, &c) in &level.counts {
                match c {
                    1 => n1 += 1.0,
                    2 => n2 += 1.0,
                    _ => {}
                }
                let e = level.ctx.entry(g >> 32).or_default();
                e.0 += c as u64;
                e.1 += 1;
            }
            level.discount = if n1 + n2 > 0.0 {
                (n1 / (n1 + 2.0 * n2)).clamp(0.05, 0.95)
            } else {
                0.5
            };
        }
        KneserNey {
            order,
            vocab: vocab.max(1),
            levels,
        }
    }

    /// P(w | history), history = the up to order-1 preceding tokens.
    pub fn prob(&self, history: &[u32], w: u32) -> f64 {
        let h = &history[history.len().saturating_sub(self.order - 1)..];
        let mut p = 1.0 / self.vocab as f64;
        for k in 1..=self.order {
            if k - 1 > h.len() {
                break;
            }
            let ctx = &h[h.len() - (k - 1)..];
            let level = &self.levels[k - 1];
            let Some(&(total, types)) = level.ctx.get(&key(ctx)) else {
                continue;
            };
            let mut g = ctx.to_vec();
            g.push(w);
            let c = level.counts.get(&key(&g)).copied().unwrap_or(0) as f64;
            let d = level.discount;
            p = (c - d).max(0.0) / total as f64 + d * types as f64 / total as f64 * p;
        }
        p
    }

    /// Mean -ln P over `tokens`, each predicted from the tokens before it.
    pub fn loss(&self, tokens: &[u32]) -> f64 {
        if tokens.is_empty() {
            return f64::NAN;
        }
        let total: f64 = (0..tokens.len())
            .map(|i| -self.prob(&tokens[..i], tokens[i]).ln())
            .sum();
        total / tokens.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_context_helps() {
        let text: Vec<u32> = "abcabcabdabcabcaab"
            .bytes()
            .map(|b| (b - b'a') as u32)
            .collect();
        let vocab = 5;
        for order in 1..=4 {
            let kn = KneserNey::train(&text, order, vocab);
            for hist in [&[][..], &[0][..], &[0, 1][..], &[3, 3, 3][..]] {
                let s: f64 = (0..vocab as u32).map(|w| kn.prob(hist, w)).sum();
                assert!(
                    (s - 1.0).abs() < 1e-9,
                    "order {order} history {hist:?}: {s}"
                );
            }
        }
        let uni = KneserNey::train(&text, 1, vocab).loss(&text);
        let tri = KneserNey::train(&text, 3, vocab).loss(&text);
        assert!(tri < uni, "trigram {tri} should beat unigram {uni}");
    }
}
