//! Tokenizers: byte-level BPE (GPT-2 pre-tokenization) and character-level, both saved as a
//! Hugging Face tokenizer.json that `tokenizers` loads and that gives the same ids.
pub mod bytes;
pub mod pretokenize;
pub mod train;

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::error::{Result, TrainError};
use pretokenize::pretokenize;

/// Which tokenizer to train: `char` or `bpe:VOCAB`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    Char,
    Bpe(usize),
}

impl std::str::FromStr for TokenizerKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "char" {
            return Ok(TokenizerKind::Char);
        }
        let v = s
            .strip_prefix("bpe:")
            .ok_or_else(|| format!("unknown tokenizer `{s}` (expected char or bpe:VOCAB)"))?;
        let n: usize = v
            .parse()
            .map_err(|_| format!("bpe vocabulary size `{v}` is not a number"))?;
        if n < 256 {
            return Err(format!(
                "bpe vocabulary {n} is smaller than the 256 byte tokens"
            ));
        }
        if n > 1 << 20 {
            return Err(format!("bpe vocabulary {n} is too large (limit 2^20)"));
        }
        Ok(TokenizerKind::Bpe(n))
    }
}

#[derive(Clone, Debug)]
pub enum Tokenizer {
    /// One token per character seen in training, ids in code point order; unseen
    /// characters are dropped (as HF's BPE model without an unk token does).
    Char {
        chars: Vec<char>,
        index: HashMap<char, u32>,
    },
    /// Byte-level BPE: tokens are byte strings; ids 0..256 are the bytes.
    Bpe {
        vocab: Vec<Vec<u8>>,
        merges: Vec<(u32, u32)>,
        ranks: HashMap<(u32, u32), (u32, u32)>,
    },
}

impl Tokenizer {
    pub fn train(kind: &TokenizerKind, docs: &[String]) -> Tokenizer {
        match kind {
            TokenizerKind::Char => {
                let mut chars: Vec<char> = docs
                    .iter()
                    .flat_map(|d| d.chars())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                chars.sort_unstable();
                Tokenizer::new_char(chars)
            }
            TokenizerKind::Bpe(n) => {
                let (vocab, merges) = train::train_bpe(docs, *n);
                Tokenizer::new_bpe(vocab, merges)
            }
        }
    }

    fn new_char(chars: Vec<char>) -> Tokenizer {
        let index = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        Tokenizer::Char { chars, index }
    }

    fn new_bpe(vocab: Vec<Vec<u8>>, merges: Vec<(u32, u32)>) -> Tokenizer {
        let ids: HashMap<&[u8], u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, v)| (v.as_slice(), i as u32))
            .collect();
        let mut ranks = HashMap::new();
        for (r, &(a, b)) in merges.iter().enumerate() {
            let mut s = vocab[a as usize].clone();
            s.extend_from_slice(&vocab[b as usize]);
            ranks.entry((a, b)).or_insert((r as u32, ids[s.as_slice()]));
        }
        Tokenizer::Bpe {
            vocab,
            merges,
            ranks,
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char { chars, .. } => chars.len(),
            Tokenizer::Bpe { vocab, .. } => vocab.len(),
        }
    }

    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Tokenizer::Char { index, .. } => text
                .chars()
                .filter_map(|c| index.get(&c).copied())
                .collect(),
            Tokenizer::Bpe { ranks, .. } => {
                let mut cache: HashMap<&str, Vec<u32>> = HashMap::new();
                let mut out = Vec::with_capacity(text.len() / 3);
                for w in pretokenize(text) {
                    let ids = cache
                        .entry(w)
                        .or_insert_with(|| encode_word(w.as_bytes(), ranks));
                    out.extend_from_slice(ids);
                }
                out
            }
        }
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Char { chars, .. } => {
                ids.iter().filter_map(|&i| chars.get(i as usize)).collect()
            }
            Tokenizer::Bpe { vocab, .. } => {
                let bytes: Vec<u8> = ids
                    .iter()
                    .filter_map(|&i| vocab.get(i as usize))
                    .flatten()
                    .copied()
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    /// The Hugging Face `tokenizers` JSON form.
    pub fn to_hf_json(&self) -> Value {
        let (vocab, merges, pre, decoder) = match self {
            Tokenizer::Char { chars, .. } => {
                let vocab: Map<String, Value> = chars
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.to_string(), json!(i)))
                    .collect();
                (vocab, Vec::new(), Value::Null, json!({"type": "Fuse"}))
            }
            Tokenizer::Bpe { vocab, merges, .. } => {
                let map = bytes::byte_to_char();
                let show = |b: &[u8]| -> String { b.iter().map(|&x| map[x as usize]).collect() };
                let v: Map<String, Value> = vocab
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (show(t), json!(i)))
                    .collect();
                let m: Vec<Value> = merges
                    .iter()
                    .map(|&(a, b)| {
                        json!(format!(
                            "{} {}",
                            show(&vocab[a as usize]),
                            show(&vocab[b as usize])
                        ))
                    })
                    .collect();
                let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
                (v, m, byte_level.clone(), byte_level)
            }
        };
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": pre,
            "post_processor": null,
            "decoder": decoder,
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "vocab": vocab,
                "merges": merges,
            }
        })
    }

    /// Reads back a tokenizer.json written by [`Tokenizer::to_hf_json`].
    pub fn from_hf_json(v: &Value) -> Result<Tokenizer> {
        let bad = |m: &str| TrainError::Format(format!("tokenizer.json: {m}"));
        let model = v.get("model").ok_or_else(|| bad("no model"))?;
        let vocab = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no model.vocab"))?;
        let mut by_id: Vec<Option<&str>> = vec![None; vocab.len()];
        for (tok, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| bad("vocab id is not an integer"))? as usize;
            *by_id
                .get_mut(id)
                .ok_or_else(|| bad("vocab ids are not 0..n"))? = Some(tok);
        }
        let by_id: Vec<&str> = by_id
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| bad("vocab ids are not 0..n"))?;
        let byte_level = v
            .get("pre_tokenizer")
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            == Some("ByteLevel");
        if !byte_level {
            let chars = by_id.iter().map(|t| {
                let mut it = t.chars();
                match (it.next(), it.next()) {
                    (Some(c), None) => Ok(c),
                    _ => Err(bad("a character-level vocab entry is not one character")),
                }
            });
            return Ok(Tokenizer::new_char(chars.collect::<Result<_>>()?));
        }
        let map = bytes::byte_to_char();
        let unmap: HashMap<char, u8> = map.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        let to_bytes = |t: &str| -> Result<Vec<u8>> {
            t.chars()
                .map(|c| {
                    unmap
                        .get(&c)
                        .copied()
                        .ok_or_else(|| bad("non byte-level character"))
                })
                .collect()
        };
        let vocab: Vec<Vec<u8>> = by_id.iter().map(|t| to_bytes(t)).collect::<Result<_>>()?;
        let ids: HashMap<&str, u32> = by_id
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i as u32))
            .collect();
        let mut merges = Vec::new();
        for m in model
            .get("merges")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no model.merges"))?
        {
            let (a, b) = match m {
                Value::String(s) => s
                    .split_once(' ')
                    .ok_or_else(|| bad("merge without a space"))?,
                Value::Array(p) if p.len() == 2 => {
                    (p[0].as_str().unwrap_or(""), p[1].as_str().unwrap_or(""))
                }
                _ => return Err(bad("malformed merge")),
            };
            let id = |t: &str| {
                ids.get(t)
                    .copied()
                    .ok_or_else(|| bad("merge of an unknown token"))
            };
            merges.push((id(a)?, id(b)?));
        }
        for &(a, b) in &merges {
            let mut s = vocab[a as usize].clone();
            s.extend_from_slice(&vocab[b as usize]);
            if !vocab.contains(&s) {
                return Err(bad("a merge result is not in the vocab"));
            }
        }
        Ok(Tokenizer::new_bpe(vocab, merges))
    }
}

/// BPE on one pre-token: repeatedly merge the adjacent pair of lowest rank, leftmost first.
fn encode_word(bytes: &[u8], ranks: &HashMap<(u32, u32), (u32, u32)>) -> Vec<u32> {
    let mut w: Vec<u32> = bytes.iter().map(|&b| b as u32).collect();
    loop {
        let best = w
            .windows(2)
            .enumerate()
            .filter_map(|(i, p)| ranks.get(&(p[0], p[1])).map(|&(r, id)| (r, i, id)))
            .min();
        let Some((_, i, id)) = best else { return w };
        w[i] = id;
        w.remove(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpe_round_trips_through_json() {
        let docs = vec!["the cat sat on the mat. the cat! ünïcödé 123\n\n  x".to_string()];
        let tok = Tokenizer::train(&TokenizerKind::Bpe(280), &docs);
        assert_eq!(tok.vocab_size(), 280);
        let ids = tok.encode(&docs[0]);
        assert!(ids.len() < docs[0].len());
        assert_eq!(tok.decode(&ids), docs[0]);
        let back = Tokenizer::from_hf_json(&tok.to_hf_json()).unwrap();
        assert_eq!(back.encode(&docs[0]), ids);
        assert_eq!(back.encode("unseen words"), tok.encode("unseen words"));
    }

    #[test]
    fn char_round_trips_and_drops_unknown() {
        let tok = Tokenizer::train(&TokenizerKind::Char, &["hello world".to_string()]);
        assert_eq!(tok.vocab_size(), 8);
        assert_eq!(tok.encode(" ehl"), vec![0, 2, 3, 4]);
        assert_eq!(tok.decode(&tok.encode("hello?")), "hello");
        let back = Tokenizer::from_hf_json(&tok.to_hf_json()).unwrap();
        assert_eq!(back.encode("hold"), tok.encode("hold"));
    }

    #[test]
    fn kind_parsing_rejects_bad_sizes() {
        assert_eq!(
            "bpe:512".parse::<TokenizerKind>(),
            Ok(TokenizerKind::Bpe(512))
        );
        assert!("bpe:100"
            .parse::<TokenizerKind>()
            .unwrap_err()
            .contains("smaller than the 256"));
        assert!("words".parse::<TokenizerKind>().is_err());
    }
}
