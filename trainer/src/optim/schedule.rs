//! Linear warmup, then cosine decay from the peak rate to the minimum (nanoGPT's schedule).

/// Learning rate at `step` (0-based) for a run of `total` steps.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f32, min: f32) -> f32 {
    if step < warmup {
        return peak * (step + 1) as f32 / (warmup + 1) as f32;
    }
    if step >= total || total <= warmup {
        return min;
    }
    let ratio = (step - warmup) as f64 / (total - warmup) as f64;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
    min + (coeff * (peak - min) as f64) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_peak_and_floor() {
        assert!(lr_at(0, 100, 10, 1.0, 0.1) < 0.1);
        assert!((lr_at(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-6);
        assert!((lr_at(55, 100, 10, 1.0, 0.1) - 0.55).abs() < 1e-3);
        assert_eq!(lr_at(100, 100, 10, 1.0, 0.1), 0.1);
        let mut prev = f32::MAX;
        for s in 10..100 {
            let lr = lr_at(s, 100, 10, 1.0, 0.1);
            assert!(lr <= prev);
            prev = lr;
        }
    }
}
