//! Greedy selection, available without an allocator.

/// Index of the largest value; the first one on ties, as `torch.argmax` does.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}
