//! Duplicate removal: exact (a hash of the whole text) and near-duplicate (MinHash over
//! word 5-gram shingles, banded LSH, then the estimated Jaccard similarity), for documents;
//! optionally exact duplicate lines above a minimum length.
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// MinHash signature length, LSH bands x rows (16 x 4 = 64).
const NUM_HASHES: usize = 64;
const BANDS: usize = 16;
const ROWS: usize = NUM_HASHES / BANDS;
const SHINGLE_WORDS: usize = 5;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// MinHash signature of a text's word shingles (whole text when it has fewer words).
pub fn minhash(text: &str) -> [u64; NUM_HASHES] {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut shingles: Vec<u64> = Vec::new();
    if words.len() < SHINGLE_WORDS {
        shingles.push(fnv1a(words.join(" ").as_bytes()));
    } else {
        for w in words.windows(SHINGLE_WORDS) {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            w.hash(&mut h);
            shingles.push(h.finish());
        }
    }
    let mut sig = [u64::MAX; NUM_HASHES];
    for &s in &shingles {
        for (i, m) in sig.iter_mut().enumerate() {
            let h = mix(s ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            *m = (*m).min(h);
        }
    }
    sig
}

/// Fraction of equal MinHash slots: an estimate of the Jaccard similarity.
pub fn similarity(a: &[u64; NUM_HASHES], b: &[u64; NUM_HASHES]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / NUM_HASHES as f64
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DedupStats {
    pub exact: usize,
    pub near: usize,
}

/// Keeps the first of each group of exact or near duplicates (Jaccard >= `threshold`;
/// a threshold above 1 disables near-duplicate detection). Order is preserved.
pub fn dedup_documents(docs: Vec<String>, threshold: f64) -> (Vec<String>, DedupStats) {
    let mut stats = DedupStats::default();
    let mut seen = HashSet::new();
    let mut buckets: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    let mut sigs: Vec<[u64; NUM_HASHES]> = Vec::new();
    let mut kept = Vec::new();
    for doc in docs {
        if !seen.insert(fnv1a(doc.as_bytes())) {
            stats.exact += 1;
            continue;
        }
        if threshold <= 1.0 {
            let sig = minhash(&doc);
            let keys: Vec<(usize, u64)> = (0..BANDS)
                .map(|b| {
                    (
                        b,
                        fnv1a(bytes_of(&sig[b * ROWS..(b + 1) * ROWS]).as_slice()),
                    )
                })
                .collect();
            let dup = keys
                .iter()
                .filter_map(|k| buckets.get(k))
                .flatten()
                .any(|&j| similarity(&sig, &sigs[j]) >= threshold);
            if dup {
                stats.near += 1;
                continue;
            }
            for k in keys {
                buckets.entry(k).or_default().push(sigs.len());
            }
            sigs.push(sig);
        }
        kept.push(doc);
    }
    (kept, stats)
}

fn bytes_of(xs: &[u64]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Removes repeated lines of at least `min_chars` characters (after their first occurrence
/// anywhere in the corpus). Short lines (speaker names, "Amen.") are never touched.
pub fn dedup_lines(docs: &mut [String], min_chars: usize) -> usize {
    let mut seen = HashSet::new();
    let mut dropped = 0;
    for doc in docs.iter_mut() {
        let mut out = String::with_capacity(doc.len());
        for line in doc.split_inclusive('\n') {
            let key = line.trim();
            if key.chars().count() >= min_chars && !seen.insert(fnv1a(key.as_bytes())) {
                dropped += 1;
                continue;
            }
            out.push_str(line);
        }
        *doc = out;
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_exact_and_near_duplicates_only() {
        let base: String = (0..60).map(|i| format!("w{} ", i * 7 % 13 + i)).collect();
        let near = base.replace("w30 ", "changed ");
        let other = "an entirely different text about ships sailing on a grey sea under heavy clouds toward a distant harbour town at dusk";
        let docs = vec![base.clone(), other.to_string(), base.clone(), near];
        let (kept, stats) = dedup_documents(docs.clone(), 0.8);
        assert_eq!(kept, vec![base.clone(), other.to_string()]);
        assert_eq!(stats, DedupStats { exact: 1, near: 1 });
        let (kept, stats) = dedup_documents(docs, 2.0);
        assert_eq!(kept.len(), 3);
        assert_eq!(stats.exact, 1);
    }

    #[test]
    fn drops_long_repeated_lines() {
        let mut docs = vec![
            "a long repeated line here\nROMEO:\n".to_string(),
            "ROMEO:\na long repeated line here\nnew\n".to_string(),
        ];
        assert_eq!(dedup_lines(&mut docs, 10), 1);
        assert_eq!(docs[1], "ROMEO:\nnew\n");
    }
}
