//! Tokenizer import: Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) and GGUF's
//! `tokenizer.ggml.*` keys become one [`TokenizerSpec`], which writes the `tokenizer.*`
//! metadata the runtime reads (docs/FORMAT.md, section "Tokenizer").
//!
//! Everything the runtime would otherwise compute at load time is done here: token strings
//! are decoded to bytes (GPT-2's byte-to-unicode mapping undone, SentencePiece's `▁` made a
//! space, `<0xXX>` made the byte), the merge table is resolved to ids and sorted by pair, the
//! text-to-id index is sorted by bytes, and end-of-generation tokens are listed.
//!
//! Tokenizer files are untrusted input: every id is checked, nothing is allocated beyond
//! what the file's own size justifies, and unsupported tokenizers are named in the error.

mod gguf;
mod hf;

use std::collections::HashMap;

use ember_format::{OwnedValue, Writer};

pub use gguf::{from_gguf, GgufTokenizerFields};
pub use hf::{from_hf_dir, from_hf_str};

/// Token types, numbered as GGUF's `tokenizer.ggml.token_type` (the runtime's
/// `ember_runtime::tokenizer::token_type`).
pub mod token_type {
    pub const NORMAL: u8 = 1;
    pub const UNKNOWN: u8 = 2;
    pub const CONTROL: u8 = 3;
    pub const USER_DEFINED: u8 = 4;
    pub const UNUSED: u8 = 5;
    pub const BYTE: u8 = 6;
}

const LSTRIP: u8 = 1;
const RSTRIP: u8 = 2;

/// Which algorithm turns text into initial symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerModel {
    /// Byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2): written as `"bpe"`.
    ByteBpe,
    /// SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama): written as `"spm"`.
    Spm,
}

/// Where a tokenizer's merges come from.
#[derive(Clone, Debug)]
pub enum Merges {
    /// `[left, right, rank, result]` (HF's merge list, GGUF's `tokenizer.ggml.merges`);
    /// sorted and deduplicated by `write`. Written as `tokenizer.merges`.
    Table(Vec<[u32; 4]>),
    /// SentencePiece's rule (a GGUF vocabulary with scores): two adjacent normal tokens merge
    /// when their concatenation is a normal token; per token its rank as that result (higher
    /// score = lower rank, equal scores share one; `u32::MAX` for other tokens). Written as
    /// `tokenizer.merge_ranks` with the model `spm-vocab`: V u32 where a table would list
    /// every split of every token (Gemma 3: 1 MB instead of 8.2 MB).
    Vocab(Vec<u32>),
}

/// A tokenizer ready to be written into a `.ember` file.
#[derive(Clone, Debug)]
pub struct TokenizerSpec {
    pub model: TokenizerModel,
    /// Pre-tokenizer name: `none`, `gpt2`, `gpt2-digits`, `llama3`, `qwen2`, `space-split`.
    pub pre: &'static str,
    /// `never`, `first`, `always`, `legacy` (see docs/FORMAT.md).
    pub space_prefix: &'static str,
    /// Decoded bytes of every token, indexed by id.
    pub tokens: Vec<Vec<u8>>,
    /// [`token_type`] of every token.
    pub types: Vec<u8>,
    pub merges: Merges,
    /// Tokens recognized when written in the text, with their lstrip/rstrip flags.
    pub specials: Vec<(u32, u8)>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// Extra end-of-generation ids (EOS is always one).
    pub eog_ids: Vec<u32>,
    pub ignore_merges: bool,
    pub byte_fallback: bool,
    pub fuse_unk: bool,
    pub strip_space: bool,
    pub chat_template: Option<String>,
}

/// Names of tokens that end a turn in common chat formats (llama.cpp keeps a similar list).
const EOG_NAMES: &[&str] = &[
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<|end_of_text|>",
    "</s>",
];

impl TokenizerSpec {
    /// V: the number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Adds the end-of-turn tokens found by name (only control and user-defined tokens, so a
    /// normal word never stops generation).
    fn find_eog(&mut self) {
        let mut eog: Vec<u32> = self.eog_ids.clone();
        eog.extend(self.eos_id);
        for (id, (t, &ty)) in self.tokens.iter().zip(&self.types).enumerate() {
            if (ty == token_type::CONTROL || ty == token_type::USER_DEFINED)
                && EOG_NAMES.iter().any(|n| n.as_bytes() == t.as_slice())
            {
                eog.push(id as u32);
            }
        }
        eog.sort_unstable();
        eog.dedup();
        self.eog_ids = eog;
    }

    /// Ids of the tokens findable by text, sorted by bytes. One id per distinct text:
    /// normal tokens win over others, then the lowest id. Byte-fallback tokens and empty
    /// (unused) slots are left out.
    fn token_index(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = (0..self.tokens.len() as u32)
            .filter(|&i| {
                let ty = self.types[i as usize];
                ty != token_type::BYTE && !self.tokens[i as usize].is_empty()
            })
            .collect();
        let rank = |i: u32| (self.types[i as usize] != token_type::NORMAL, i);
        ids.sort_by(|&a, &b| {
            self.tokens[a as usize]
                .cmp(&self.tokens[b as usize])
                .then(rank(a).cmp(&rank(b)))
        });
        ids.dedup_by(|b, a| self.tokens[*a as usize] == self.tokens[*b as usize]);
        ids
    }

    /// For each byte, the token that stands for it: byte-level BPE's alphabet, or
    /// SentencePiece's `<0xXX>`. `u32::MAX` where there is none.
    fn byte_ids(&self) -> Vec<u32> {
        let mut ids = vec![u32::MAX; 256];
        let want = match self.model {
            TokenizerModel::ByteBpe => token_type::NORMAL,
            TokenizerModel::Spm => token_type::BYTE,
        };
        for (id, (t, &ty)) in self.tokens.iter().zip(&self.types).enumerate().rev() {
            if t.len() == 1 && ty == want {
                ids[t[0] as usize] = id as u32;
            }
        }
        ids
    }

    /// Writes every `tokenizer.*` key.
    pub fn write(&self, w: &mut Writer) {
        w.set_str(
            "tokenizer.model",
            match (self.model, &self.merges) {
                (TokenizerModel::ByteBpe, _) => "bpe",
                (TokenizerModel::Spm, Merges::Table(_)) => "spm",
                (TokenizerModel::Spm, Merges::Vocab(_)) => "spm-vocab",
            },
        );
        w.set_str("tokenizer.pre", self.pre);
        w.set_str("tokenizer.space_prefix", self.space_prefix);
        w.set(
            "tokenizer.tokens",
            OwnedValue::BytesArray(self.tokens.clone()),
        );
        w.set("tokenizer.token_types", OwnedValue::U8(self.types.clone()));
        w.set("tokenizer.token_index", OwnedValue::U32(self.token_index()));
        w.set("tokenizer.byte_ids", OwnedValue::U32(self.byte_ids()));
        match &self.merges {
            Merges::Table(table) => {
                let mut merges = table.clone();
                // Sorted by pair; for a repeated pair the last entry wins, as in HF's merge map.
                merges.reverse();
                merges.sort_by_key(|m| (m[0], m[1]));
                merges.dedup_by_key(|m| (m[0], m[1]));
                w.set(
                    "tokenizer.merges",
                    OwnedValue::U32(merges.iter().flatten().copied().collect()),
                );
            }
            Merges::Vocab(ranks) => {
                debug_assert_eq!(self.model, TokenizerModel::Spm);
                w.set("tokenizer.merge_ranks", OwnedValue::U32(ranks.clone()));
            }
        }
        w.set(
            "tokenizer.special_ids",
            OwnedValue::U32(self.specials.iter().map(|s| s.0).collect()),
        );
        w.set(
            "tokenizer.special_flags",
            OwnedValue::U8(self.specials.iter().map(|s| s.1).collect()),
        );
        w.set("tokenizer.eog_ids", OwnedValue::U32(self.eog_ids.clone()));
        for (key, id) in [
            ("tokenizer.bos_id", self.bos_id),
            ("tokenizer.eos_id", self.eos_id),
            ("tokenizer.unk_id", self.unk_id),
            ("tokenizer.pad_id", self.pad_id),
        ] {
            if let Some(id) = id {
                w.set_u32(key, id);
            }
        }
        w.set_bool("tokenizer.add_bos", self.add_bos);
        w.set_bool("tokenizer.add_eos", self.add_eos);
        w.set_bool("tokenizer.ignore_merges", self.ignore_merges);
        w.set_bool("tokenizer.byte_fallback", self.byte_fallback);
        w.set_bool("tokenizer.fuse_unk", self.fuse_unk);
        w.set_bool("tokenizer.strip_space", self.strip_space);
        if let Some(t) = &self.chat_template {
            w.set_str("tokenizer.chat_template", t);
        }
    }
}

/// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the others are
/// shifted to U+0100 and up, so every byte string is a printable string.
pub(crate) fn byte_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    table
}

/// The inverse of [`byte_to_unicode`].
pub(crate) fn unicode_to_byte() -> HashMap<char, u8> {
    byte_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

/// Undoes the byte-level mapping of a vocabulary string; `None` if a character is outside
/// the 256-character alphabet (the token is then kept as its UTF-8 text).
pub(crate) fn byte_level_decode(s: &str, map: &HashMap<char, u8>) -> Option<Vec<u8>> {
    s.chars().map(|c| map.get(&c).copied()).collect()
}

/// `<0xAB>` → `0xAB`.
pub(crate) fn parse_byte_token(s: &[u8]) -> Option<u8> {
    if s.len() == 6 && s.starts_with(b"<0x") && s[5] == b'>' {
        let hex = std::str::from_utf8(&s[3..5]).ok()?;
        if hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return u8::from_str_radix(hex, 16).ok();
        }
    }
    None
}

/// SentencePiece text: `▁` is a space.
pub(crate) fn spm_decode(s: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(s) {
        Ok(t) => t.replace('▁', " ").into_bytes(),
        Err(_) => s.to_vec(),
    }
}

/// SentencePiece merge ranks from scores, as llama.cpp and sentencepiece merge: any two
/// adjacent symbols whose concatenation is a normal token merge, the highest-scoring result
/// first (equal scores: leftmost first). The rank of each normal token is its position by
/// descending score (equal scores share a rank; NaN ranks last); other tokens get none.
pub(crate) fn merge_ranks(types: &[u8], scores: &[f32]) -> Vec<u32> {
    let normal = |i: usize| types[i] == token_type::NORMAL;
    let score = |i: u32| {
        let s = scores[i as usize];
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s
        }
    };
    let mut order: Vec<u32> = (0..types.len() as u32)
        .filter(|&i| normal(i as usize))
        .collect();
    order.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    let mut rank = vec![u32::MAX; types.len()];
    let mut r = 0u32;
    for (k, &i) in order.iter().enumerate() {
        if k > 0 && score(i) != score(order[k - 1]) {
            r += 1;
        }
        rank[i as usize] = r;
    }
    rank
}
