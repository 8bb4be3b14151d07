//! Byte-level BPE training.
//!
//! Words are GPT-2 pre-tokens of the training documents, as bytes (ids 0..256 = byte
//! values). Each round merges the adjacent pair with the highest count over all words.
//! **Tie-breaking:** among pairs with equal counts, the pair (left id, right id) that is
//! smallest in lexicographic order wins, i.e. the pair of the oldest tokens. If a merge
//! produces a string that is already a token, that token's id is reused (the merge is
//! still recorded), so the vocabulary has no duplicate strings.
use std::collections::{HashMap, HashSet};

use super::pretokenize::pretokenize;

/// Returns (token byte strings by id, merges in order as id pairs).
pub fn train_bpe(docs: &[String], vocab_size: usize) -> (Vec<Vec<u8>>, Vec<(u32, u32)>) {
    let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    let mut ids: HashMap<Vec<u8>, u32> = vocab
        .iter()
        .enumerate()
        .map(|(i, v)| (v.clone(), i as u32))
        .collect();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for d in docs {
        for w in pretokenize(d) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut keys: Vec<(&str, u64)> = counts.into_iter().collect();
    keys.sort_unstable();
    let mut words: Vec<(Vec<u32>, i64)> = keys
        .iter()
        .map(|(w, c)| (w.bytes().map(u32::from).collect(), *c as i64))
        .collect();
    let mut pairs: HashMap<(u32, u32), i64> = HashMap::new();
    let mut where_: HashMap<(u32, u32), HashSet<usize>> = HashMap::new();
    for (wi, (w, c)) in words.iter().enumerate() {
        for p in w.windows(2) {
            *pairs.entry((p[0], p[1])).or_default() += c;
            where_.entry((p[0], p[1])).or_default().insert(wi);
        }
    }
    let mut merges = Vec::new();
    while vocab.len() < vocab_size {
        let best = pairs
            .iter()
            .filter(|(_, &c)| c > 0)
            .max_by(|(pa, ca), (pb, cb)| ca.cmp(cb).then(pb.cmp(pa)))
            .map(|(&p, _)| p);
        let Some((a, b)) = best else { break };
        let mut s = vocab[a as usize].clone();
        s.extend_from_slice(&vocab[b as usize]);
        let new_id = *ids.entry(s.clone()).or_insert_with(|| {
            vocab.push(s);
            (vocab.len() - 1) as u32
        });
        merges.push((a, b));
        let mut affected: Vec<usize> = where_
            .remove(&(a, b))
            .unwrap_or_default()
            .into_iter()
            .collect();
        affected.sort_unstable();
        for wi in affected {
            let (w, c) = &mut words[wi];
            for p in w.windows(2) {
                let e = pairs.get_mut(&(p[0], p[1])).expect("counted pair");
                *e -= *c;
            }
            let mut out = Vec::with_capacity(w.len());
            let mut i = 0;
            while i < w.len() {
                if i + 1 < w.len() && w[i] == a && w[i + 1] == b {
                    out.push(new_id);
                    i += 2;
                } else {
                    out.push(w[i]);
                    i += 1;
                }
            }
            *w = out;
            for p in w.windows(2) {
                *pairs.entry((p[0], p[1])).or_default() += *c;
                where_.entry((p[0], p[1])).or_default().insert(wi);
            }
        }
        pairs.retain(|_, c| *c > 0);
    }
    (vocab, merges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_most_frequent_pair_first_with_documented_ties() {
        let (vocab, merges) = train_bpe(&["aaab aaab ab".to_string()], 259);
        // Pairs: (a,a) 4, (a,b) 3, (' ',a) 2 -> first merge is "aa".
        assert_eq!(merges[0], (b'a' as u32, b'a' as u32));
        assert_eq!(vocab[256], b"aa".to_vec());
        assert_eq!(vocab.len(), 259);
        // Equal counts: "xy" and "zw" appear once each; (x, y) < (z, w) wins.
        let (_, m) = train_bpe(&["zw xy".to_string()], 257);
        assert_eq!(
            m[0],
            (b' ' as u32, b'x' as u32).min((b'x' as u32, b'y' as u32))
        );
    }
}
