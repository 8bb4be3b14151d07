//! Turning logits into the next token: repetition penalty, top-k, top-p, min-p,
//! temperature, then a draw from a seeded RNG (same seed, same output). Temperature 0 is
//! greedy. Buffers are sized once; sampling never allocates.

use alloc::vec::Vec;

use crate::math::expf;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p; 1 keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one; 0 keeps all.
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens; 1 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5EED,
        }
    }
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        }
    }
}

/// PCG32 (O'Neill): small, fast, and the same sequence on every platform.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng { state: 0 };
        r.next_u32();
        r.state = r.state.wrapping_add(seed);
        r.next_u32();
        r
    }

    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Uniform in [0, 1).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }
}

#[derive(Clone, Debug)]
pub struct Sampler {
    pub config: SamplerConfig,
    rng: Rng,
    /// (logit or probability, token id) for every vocabulary entry.
    candidates: Vec<(f32, u32)>,
}

pub use crate::sampler_core::argmax;

impl Sampler {
    pub fn new(config: SamplerConfig, vocab_size: usize) -> Sampler {
        Sampler {
            config,
            rng: Rng::new(config.seed),
            candidates: Vec::with_capacity(vocab_size),
        }
    }

    /// Picks the next token. `logits` (V) is modified by the repetition penalty;
    /// `history` holds the tokens so far (prompt and generated).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let cfg = self.config;
        if cfg.repeat_penalty != 1.0 && cfg.repeat_penalty > 0.0 {
            let window = &history[history.len().saturating_sub(cfg.repeat_last_n)..];
            for (i, &id) in window.iter().enumerate() {
                // Once per distinct token, as HF and llama.cpp do: only at its last occurrence.
                if window[i + 1..].contains(&id) {
                    continue;
                }
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 {
                        *l / cfg.repeat_penalty
                    } else {
                        *l * cfg.repeat_penalty
                    };
                }
            }
        }
        if cfg.temperature <= 0.0 {
            return argmax(logits);
        }

        let c = &mut self.candidates;
        c.clear();
        c.extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
        let by_logit_desc = |a: &(f32, u32), b: &(f32, u32)| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(core::cmp::Ordering::Equal)
                .then(a.1.cmp(&b.1))
        };
        // Top-k: partial selection then sort of the survivors.
        let k = if cfg.top_k == 0 {
            c.len()
        } else {
            cfg.top_k.min(c.len())
        };
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, by_logit_desc);
            c.truncate(k);
        }
        c.sort_unstable_by(by_logit_desc);

        // Softmax with temperature over the survivors.
        let max = c[0].0;
        let mut sum = 0.0f64;
        for e in c.iter_mut() {
            e.0 = expf((e.0 - max) / cfg.temperature);
            sum += e.0 as f64;
        }
        for e in c.iter_mut() {
            e.0 = (e.0 as f64 / sum) as f32;
        }
        // Top-p: smallest prefix reaching p.
        if cfg.top_p < 1.0 {
            let mut acc = 0.0f32;
            let mut keep = c.len();
            for (i, e) in c.iter().enumerate() {
                acc += e.0;
                if acc >= cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep.max(1));
        }
        // Min-p: relative to the most likely token.
        if cfg.min_p > 0.0 {
            let floor = c[0].0 * cfg.min_p;
            let keep = c.iter().take_while(|e| e.0 >= floor).count();
            c.truncate(keep.max(1));
        }
        let total: f32 = c.iter().map(|e| e.0).sum();
        let mut r = self.rng.next_f32() * total;
        for e in c.iter() {
            r -= e.0;
            if r < 0.0 {
                return e.1;
            }
        }
        c[c.len() - 1].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_first_on_ties() {
        let mut s = Sampler::new(SamplerConfig::greedy(), 4);
        assert_eq!(s.sample(&mut [0.0, 3.0, 3.0, 1.0], &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_filters_hold() {
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 3,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            seed: 7,
        };
        let logits = [0.0, 5.0, 4.0, 3.0, -9.0, 4.5];
        let draw = |seed| {
            let mut s = Sampler::new(SamplerConfig { seed, ..cfg }, 6);
            (0..200)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        // top-k 3 keeps ids 1, 5, 2 only.
        assert!(a.iter().all(|id| [1, 5, 2].contains(id)));
        assert!(a.contains(&2));
    }

    #[test]
    fn min_p_and_top_p_prune() {
        let logits = [10.0, 0.0, 9.9, -5.0];
        let mut s = Sampler::new(
            SamplerConfig {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.5,
                seed: 1,
                ..Default::default()
            },
            4,
        );
        for _ in 0..100 {
            assert!([0, 2].contains(&s.sample(&mut logits.clone(), &[])));
        }
        let mut s = Sampler::new(
            SamplerConfig {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.1,
                min_p: 0.0,
                seed: 1,
                ..Default::default()
            },
            4,
        );
        for _ in 0..100 {
            assert_eq!(s.sample(&mut logits.clone(), &[]), 0);
        }
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(
            SamplerConfig {
                repeat_penalty: 2.0,
                ..SamplerConfig::greedy()
            },
            3,
        );
        assert_eq!(s.sample(&mut [3.0, 2.0, -1.0], &[0]), 1);
    }
}
