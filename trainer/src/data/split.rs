//! Train/validation split by document (seeded shuffle), or, for a single document, into
//! contiguous parts with the last fraction going to validation (as nanoGPT does).
use crate::rng::Rng;

/// Returns (train, validation). `val_fraction` is in (0, 1).
pub fn split(docs: Vec<String>, val_fraction: f64, seed: u64) -> (Vec<String>, Vec<String>) {
    if docs.len() == 1 {
        let doc = &docs[0];
        let n = doc.chars().count();
        let cut = (n as f64 * (1.0 - val_fraction)) as usize;
        let byte = doc
            .char_indices()
            .nth(cut)
            .map(|(i, _)| i)
            .unwrap_or(doc.len());
        let (a, b) = doc.split_at(byte);
        return (vec![a.to_string()], vec![b.to_string()]);
    }
    let mut idx: Vec<usize> = (0..docs.len()).collect();
    Rng::new(seed ^ 0x5911).shuffle(&mut idx);
    let n_val = ((docs.len() as f64 * val_fraction).round() as usize).clamp(1, docs.len() - 1);
    let val_set: std::collections::HashSet<usize> = idx[..n_val].iter().copied().collect();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, d) in docs.into_iter().enumerate() {
        if val_set.contains(&i) {
            val.push(d);
        } else {
            train.push(d);
        }
    }
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_is_cut_at_the_fraction() {
        let (t, v) = split(vec!["0123456789".into()], 0.1, 1);
        assert_eq!((t[0].as_str(), v[0].as_str()), ("012345678", "9"));
    }

    #[test]
    fn documents_go_whole_to_one_side_deterministically() {
        let docs: Vec<String> = (0..20).map(|i| format!("doc {i}")).collect();
        let (t, v) = split(docs.clone(), 0.2, 7);
        assert_eq!((t.len(), v.len()), (16, 4));
        assert_eq!(split(docs.clone(), 0.2, 7).1, v);
        assert_ne!(split(docs, 0.2, 8).1, v);
    }
}
