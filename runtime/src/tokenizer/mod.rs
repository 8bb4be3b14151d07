//! Tokenizers read from a `.ember` file's `tokenizer.*` metadata (docs/FORMAT.md, section
//! "Tokenizer"): byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2, Phi-4-mini) and
//! SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama, Mistral).
//!
//! The converter did the heavy work offline: token bytes are stored already decoded, the
//! merge table is sorted by pair for binary search, and the text-to-id index is sorted by
//! bytes. Building a [`Tokenizer`] validates those tables once (every id, every order) and
//! copies nothing; encoding then cannot go out of bounds.
//!
//! ```no_run
//! # fn demo(bytes: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use ember_runtime::tokenizer::Tokenizer;
//! let file = ember_format::EmberFile::parse(bytes)?;
//! let tok = Tokenizer::from_file(&file)?;
//! let mut ids = Vec::new();
//! tok.encode("Hello world", &mut ids);
//! let mut text = String::new();
//! tok.decode(&ids, true, &mut text);
//! # Ok(()) }
//! ```

mod bpe;
mod decode;
mod pretok;
mod unicode_tables;

use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::fmt;

use ember_format::{BytesArray, EmberFile};

pub use decode::StreamDecoder;
pub use pretok::PreTokenizer;

use bpe::{Merges, Scratch, VocabMerges};

/// Metadata keys (docs/FORMAT.md, section "Tokenizer").
pub mod keys {
    pub const MODEL: &str = "tokenizer.model";
    pub const PRE: &str = "tokenizer.pre";
    pub const SPACE_PREFIX: &str = "tokenizer.space_prefix";
    pub const TOKENS: &str = "tokenizer.tokens";
    pub const TOKEN_TYPES: &str = "tokenizer.token_types";
    pub const TOKEN_INDEX: &str = "tokenizer.token_index";
    pub const BYTE_IDS: &str = "tokenizer.byte_ids";
    pub const MERGES: &str = "tokenizer.merges";
    pub const MERGE_RANKS: &str = "tokenizer.merge_ranks";
    pub const SPECIAL_IDS: &str = "tokenizer.special_ids";
    pub const SPECIAL_FLAGS: &str = "tokenizer.special_flags";
    pub const EOG_IDS: &str = "tokenizer.eog_ids";
    pub const BOS_ID: &str = "tokenizer.bos_id";
    pub const EOS_ID: &str = "tokenizer.eos_id";
    pub const UNK_ID: &str = "tokenizer.unk_id";
    pub const PAD_ID: &str = "tokenizer.pad_id";
    pub const ADD_BOS: &str = "tokenizer.add_bos";
    pub const ADD_EOS: &str = "tokenizer.add_eos";
    pub const IGNORE_MERGES: &str = "tokenizer.ignore_merges";
    pub const BYTE_FALLBACK: &str = "tokenizer.byte_fallback";
    pub const FUSE_UNK: &str = "tokenizer.fuse_unk";
    pub const STRIP_SPACE: &str = "tokenizer.strip_space";
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

/// Token types, numbered as GGUF's `tokenizer.ggml.token_type`.
pub mod token_type {
    pub const NORMAL: u8 = 1;
    pub const UNKNOWN: u8 = 2;
    /// BOS, EOS, `<|im_end|>`: special tokens, recognized in text, skipped by `decode(.., true, ..)`.
    pub const CONTROL: u8 = 3;
    /// Added tokens that are not special: recognized in text, decoded as text.
    pub const USER_DEFINED: u8 = 4;
    pub const UNUSED: u8 = 5;
    /// SentencePiece byte-fallback tokens `<0xXX>`; their stored bytes are the one byte.
    pub const BYTE: u8 = 6;
}

/// Flags in `tokenizer.special_flags`, one byte per entry of `tokenizer.special_ids`.
pub mod special_flag {
    /// Whitespace before the token in the text belongs to the token (HF `lstrip`).
    pub const LSTRIP: u8 = 1;
    /// Whitespace after the token belongs to the token (HF `rstrip`).
    pub const RSTRIP: u8 = 2;
}

const NO_ID: u32 = u32::MAX;

/// SentencePiece's space, `▁` (U+2581), in UTF-8.
const METASPACE: &[u8] = "\u{2581}".as_bytes();

/// Longest piece merged as one (bytes); longer pieces are cut, so symbol indices fit a u32.
const MAX_PIECE: usize = 1 << 30;

/// Why a file's tokenizer cannot be used. Names the metadata key at fault.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerError {
    /// A required key is absent.
    MissingKey(&'static str),
    /// A key holds the wrong value type or length.
    BadValue(&'static str),
    /// A tokenizer model or variant this runtime does not implement.
    Unsupported(&'static str),
    /// A token id in a table is not below the vocabulary size.
    IdOutOfRange { key: &'static str, index: usize },
    /// A table that is binary-searched is not strictly sorted.
    NotSorted { key: &'static str, index: usize },
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerError::MissingKey(k) => write!(f, "tokenizer: missing metadata key {k}"),
            TokenizerError::BadValue(k) => {
                write!(
                    f,
                    "tokenizer: metadata key {k} has the wrong type or length"
                )
            }
            TokenizerError::Unsupported(k) => {
                write!(f, "tokenizer: unsupported value of {k}")
            }
            TokenizerError::IdOutOfRange { key, index } => write!(
                f,
                "tokenizer: {key} entry {index} is not a token id below the vocabulary size"
            ),
            TokenizerError::NotSorted { key, index } => {
                write!(
                    f,
                    "tokenizer: {key} is not strictly sorted at entry {index}"
                )
            }
        }
    }
}

impl core::error::Error for TokenizerError {}

/// How pieces of text become initial symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Byte-level BPE (GPT-2): one symbol per byte, every byte has a token.
    ByteBpe,
    /// SentencePiece-style BPE: one symbol per character; unknown characters fall back to
    /// `<0xXX>` byte tokens or to the unknown token; spaces are `▁` in the vocabulary.
    Spm,
}

/// When a space is put before a segment of text (a segment is text between special tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpacePrefix {
    Never,
    /// Only the segment at the start of the text, if it does not start with a space
    /// (HF `Metaspace(prepend_scheme="first")`).
    First,
    /// Every segment that does not start with a space (HF `Metaspace(prepend_scheme="always")`,
    /// `ByteLevel(add_prefix_space=true)`).
    Always,
    /// Every non-empty segment, even one starting with a space (HF's legacy Llama normalizer
    /// `Prepend("▁")`, llama.cpp's SPM `add_space_prefix`).
    Legacy,
}

/// A tokenizer borrowing its tables from an [`EmberFile`].
#[derive(Clone, Debug)]
pub struct Tokenizer<'a> {
    model: Model,
    pre: PreTokenizer,
    space_prefix: SpacePrefix,
    tokens: BytesArray<'a>,
    types: &'a [u8],
    index: &'a [u32],
    byte_ids: Option<&'a [u32]>,
    merges: Merges<'a>,
    specials: &'a [u32],
    special_flags: Option<&'a [u8]>,
    /// Positions in `specials` grouped by their token's first byte (bucket b is
    /// `special_order[special_start[b]..special_start[b + 1]]`), longest token first, equal
    /// lengths in list order: the scan tries only the tokens that can start at a byte, and
    /// the first match of a bucket is its best (Gemma 3 has 6,414 special tokens).
    special_order: Vec<u32>,
    special_start: [u32; 257],
    /// The token of each ASCII character (`spm` initial symbols), `NO_ID` if none: 128
    /// lookups at load instead of one binary search per character of text.
    ascii_ids: [u32; 128],
    eog: &'a [u32],
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    ignore_merges: bool,
    byte_fallback: bool,
    fuse_unk: bool,
    strip_space: bool,
    chat_template: Option<&'a str>,
}

fn get_str<'a>(file: &EmberFile<'a>, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or(TokenizerError::BadValue(key)),
    }
}

fn get_bool(file: &EmberFile<'_>, key: &'static str) -> Result<bool, TokenizerError> {
    match file.get(key) {
        None => Ok(false),
        Some(v) => v.as_bool().ok_or(TokenizerError::BadValue(key)),
    }
}

fn get_u32s<'a>(file: &EmberFile<'a>, key: &'static str) -> Result<&'a [u32], TokenizerError> {
    match file.get(key) {
        None => Ok(&[]),
        Some(v) => v.as_u32s().ok_or(TokenizerError::BadValue(key)),
    }
}

fn check_ids(ids: &[u32], vocab: usize, key: &'static str) -> Result<(), TokenizerError> {
    match ids.iter().position(|&id| id as usize >= vocab) {
        Some(index) => Err(TokenizerError::IdOutOfRange { key, index }),
        None => Ok(()),
    }
}

fn get_id(
    file: &EmberFile<'_>,
    key: &'static str,
    vocab: usize,
) -> Result<Option<u32>, TokenizerError> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => {
            let id = v.as_u32().ok_or(TokenizerError::BadValue(key))?;
            check_ids(&[id], vocab, key)?;
            Ok(Some(id))
        }
    }
}

impl<'a> Tokenizer<'a> {
    /// Reads and validates the `tokenizer.*` keys. Linear in the table sizes, no copies.
    pub fn from_file(file: &EmberFile<'a>) -> Result<Self, TokenizerError> {
        use keys::*;
        // `spm-vocab` is `spm` with merges derived from the vocabulary (`Merges::Vocab`): a
        // model name of its own, so that readers which only know the merge table refuse it.
        let (model, vocab_merges) =
            match get_str(file, MODEL)?.ok_or(TokenizerError::MissingKey(MODEL))? {
                "bpe" => (Model::ByteBpe, false),
                "spm" => (Model::Spm, false),
                "spm-vocab" => (Model::Spm, true),
                _ => return Err(TokenizerError::Unsupported(MODEL)),
            };
        let pre = match get_str(file, PRE)? {
            None => PreTokenizer::None,
            Some(name) => PreTokenizer::from_name(name).ok_or(TokenizerError::Unsupported(PRE))?,
        };
        let space_prefix = match get_str(file, SPACE_PREFIX)?.unwrap_or("never") {
            "never" => SpacePrefix::Never,
            "first" => SpacePrefix::First,
            "always" => SpacePrefix::Always,
            "legacy" => SpacePrefix::Legacy,
            _ => return Err(TokenizerError::Unsupported(SPACE_PREFIX)),
        };
        let tokens = file
            .get(TOKENS)
            .ok_or(TokenizerError::MissingKey(TOKENS))?
            .as_bytes_array()
            .ok_or(TokenizerError::BadValue(TOKENS))?;
        let vocab = tokens.len();
        // Ids are u32 and u32::MAX marks "no token".
        if vocab == 0 || vocab >= NO_ID as usize {
            return Err(TokenizerError::BadValue(TOKENS));
        }
        let types = file
            .get(TOKEN_TYPES)
            .ok_or(TokenizerError::MissingKey(TOKEN_TYPES))?
            .as_bytes()
            .ok_or(TokenizerError::BadValue(TOKEN_TYPES))?;
        if types.len() != vocab {
            return Err(TokenizerError::BadValue(TOKEN_TYPES));
        }

        let index = get_u32s(file, TOKEN_INDEX)?;
        check_ids(index, vocab, TOKEN_INDEX)?;
        for (i, w) in index.windows(2).enumerate() {
            // Both ids were checked above, so `get` finds them.
            let (a, b) = (tokens.get(w[0] as usize), tokens.get(w[1] as usize));
            if a >= b {
                return Err(TokenizerError::NotSorted {
                    key: TOKEN_INDEX,
                    index: i + 1,
                });
            }
        }

        let byte_ids = match file.get(BYTE_IDS) {
            None => None,
            Some(v) => {
                let ids = v.as_u32s().ok_or(TokenizerError::BadValue(BYTE_IDS))?;
                if ids.len() != 256 {
                    return Err(TokenizerError::BadValue(BYTE_IDS));
                }
                if let Some(index) = ids
                    .iter()
                    .position(|&id| id != NO_ID && id as usize >= vocab)
                {
                    return Err(TokenizerError::IdOutOfRange {
                        key: BYTE_IDS,
                        index,
                    });
                }
                Some(ids)
            }
        };
        if model == Model::ByteBpe && byte_ids.is_none() {
            return Err(TokenizerError::MissingKey(BYTE_IDS));
        }

        let merges = get_u32s(file, MERGES)?;
        let merge_ranks = get_u32s(file, MERGE_RANKS)?;
        if vocab_merges {
            if !merges.is_empty() {
                return Err(TokenizerError::BadValue(MERGES));
            }
            if merge_ranks.len() != vocab {
                return Err(TokenizerError::BadValue(MERGE_RANKS));
            }
        }
        if merges.len() % 4 != 0 {
            return Err(TokenizerError::BadValue(MERGES));
        }
        let mut prev: Option<(u32, u32)> = None;
        for (i, e) in merges.chunks_exact(4).enumerate() {
            let (left, right, result) = (e[0], e[1], e[3]);
            if [left, right, result].iter().any(|&id| id as usize >= vocab) {
                return Err(TokenizerError::IdOutOfRange {
                    key: MERGES,
                    index: i,
                });
            }
            if prev.is_some_and(|p| p >= (left, right)) {
                return Err(TokenizerError::NotSorted {
                    key: MERGES,
                    index: i,
                });
            }
            prev = Some((left, right));
        }

        let specials = get_u32s(file, SPECIAL_IDS)?;
        check_ids(specials, vocab, SPECIAL_IDS)?;
        let special_flags = match file.get(SPECIAL_FLAGS) {
            None => None,
            Some(v) => {
                let f = v
                    .as_bytes()
                    .ok_or(TokenizerError::BadValue(SPECIAL_FLAGS))?;
                if f.len() != specials.len() {
                    return Err(TokenizerError::BadValue(SPECIAL_FLAGS));
                }
                Some(f)
            }
        };
        // Special ids were checked above; an empty special token would match everywhere.
        let special = |k: u32| tokens.get(specials[k as usize] as usize).unwrap_or(&[]);
        if (0..specials.len() as u32).any(|k| special(k).is_empty()) {
            return Err(TokenizerError::BadValue(SPECIAL_IDS));
        }
        let mut special_order: Vec<u32> = (0..specials.len() as u32).collect();
        special_order.sort_by_key(|&k| (special(k)[0], Reverse(special(k).len()), k));
        let mut special_start = [0u32; 257];
        for &k in &special_order {
            special_start[special(k)[0] as usize + 1] += 1;
        }
        for b in 0..256 {
            special_start[b + 1] += special_start[b];
        }

        let eog = get_u32s(file, EOG_IDS)?;
        check_ids(eog, vocab, EOG_IDS)?;

        let bos = get_id(file, BOS_ID, vocab)?;
        let eos = get_id(file, EOS_ID, vocab)?;
        let unk = get_id(file, UNK_ID, vocab)?;
        let pad = get_id(file, PAD_ID, vocab)?;
        let add_bos = get_bool(file, ADD_BOS)?;
        let add_eos = get_bool(file, ADD_EOS)?;
        if add_bos && bos.is_none() {
            return Err(TokenizerError::MissingKey(BOS_ID));
        }
        if add_eos && eos.is_none() {
            return Err(TokenizerError::MissingKey(EOS_ID));
        }
        let mut tok = Tokenizer {
            model,
            pre,
            space_prefix,
            tokens,
            types,
            index,
            byte_ids,
            merges: if vocab_merges {
                Merges::Vocab(VocabMerges {
                    tokens,
                    types,
                    index,
                    ranks: merge_ranks,
                })
            } else {
                Merges::Table(merges)
            },
            specials,
            special_flags,
            special_order,
            special_start,
            eog,
            bos,
            eos,
            unk,
            pad,
            add_bos,
            add_eos,
            ignore_merges: get_bool(file, IGNORE_MERGES)?,
            byte_fallback: get_bool(file, BYTE_FALLBACK)?,
            fuse_unk: get_bool(file, FUSE_UNK)?,
            strip_space: get_bool(file, STRIP_SPACE)?,
            chat_template: get_str(file, CHAT_TEMPLATE)?,
            ascii_ids: [NO_ID; 128],
        };
        for c in 0..128u8 {
            tok.ascii_ids[c as usize] = tok.lookup(&[c]).unwrap_or(NO_ID);
        }
        Ok(tok)
    }

    /// V: the number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn model(&self) -> Model {
        self.model
    }

    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `encode` starts with BOS (what HF's `tokenizer(text)` does for this model).
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// End of generation: EOS, and for chat models the end-of-turn tokens
    /// (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, ...), as the converter listed them.
    pub fn is_eog(&self, id: u32) -> bool {
        Some(id) == self.eos || self.eog.contains(&id)
    }

    /// The token's type ([`token_type`]); 0 for an id outside the vocabulary.
    pub fn token_type(&self, id: u32) -> u8 {
        self.types.get(id as usize).copied().unwrap_or(0)
    }

    /// Whether the token is a control token (BOS, EOS, `<|im_start|>`): decoders that skip
    /// special tokens skip these.
    pub fn is_control(&self, id: u32) -> bool {
        self.token_type(id) == token_type::CONTROL
    }

    /// The token's decoded bytes: byte-level BPE's unicode mapping undone, SentencePiece's
    /// `▁` as a space and `<0xXX>` as the byte; control tokens give their text. Empty for an
    /// id outside the vocabulary. May be part of a UTF-8 character: see [`StreamDecoder`].
    pub fn token_bytes(&self, id: u32) -> &'a [u8] {
        self.tokens.get(id as usize).unwrap_or(&[])
    }

    /// Exact lookup of a token by its decoded text (`"<|im_start|>"`, `" the"`). Byte-fallback
    /// tokens are not found this way.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.lookup(text.as_bytes())
    }

    pub fn chat_template(&self) -> Option<&'a str> {
        self.chat_template
    }

    /// A decoder that strips the leading space as this model's HF decoder does (SentencePiece
    /// models): right for text that starts after BOS or a chat reply decoded on its own. For a
    /// continuation printed after its prompt, use `StreamDecoder::new(false)` to keep the
    /// space between them.
    pub fn stream_decoder(&self) -> StreamDecoder {
        StreamDecoder::new(self.strip_space)
    }

    /// Decodes `ids` into `out` (lossily for invalid UTF-8), like HF's
    /// `decode(ids, skip_special_tokens)`.
    pub fn decode(&self, ids: &[u32], skip_special: bool, out: &mut String) {
        let mut d = self.stream_decoder();
        for &id in ids {
            if skip_special && self.is_control(id) {
                continue;
            }
            d.push(self.token_bytes(id), |s| out.push_str(s));
        }
        d.flush(|s| out.push_str(s));
    }

    fn lookup(&self, key: &[u8]) -> Option<u32> {
        let tokens = self.tokens;
        self.index
            .binary_search_by(|&id| tokens.get(id as usize).unwrap_or(&[]).cmp(key))
            .ok()
            .map(|i| self.index[i])
    }

    /// Whether `text` starts with the special token `t`: the length it takes in the text.
    /// SentencePiece vocabularies hold spaces as `▁` and HF matches their whitespace tokens
    /// (Gemma's `▁▁`) after its normalizer made every space a `▁`, so there a `▁` typed in
    /// the text matches a space of the token.
    fn special_match(&self, text: &[u8], t: &[u8]) -> Option<usize> {
        if text.starts_with(t) {
            return Some(t.len());
        }
        if self.model != Model::Spm || !t.contains(&b' ') {
            return None;
        }
        let mut n = 0;
        for &b in t {
            if text.get(n) == Some(&b) {
                n += 1;
            } else if b == b' ' && text[n.min(text.len())..].starts_with(METASPACE) {
                n += METASPACE.len();
            } else {
                return None;
            }
        }
        Some(n)
    }

    /// The leftmost special token in `text[from..]`, the longest if several start there:
    /// `(start, end, id)` with `start..end` widened by the token's lstrip/rstrip whitespace.
    fn find_special(&self, text: &str, from: usize) -> Option<(usize, usize, u32)> {
        if self.specials.is_empty() {
            return None;
        }
        let bytes = text.as_bytes();
        let bucket = |b: u8| {
            let (lo, hi) = (
                self.special_start[b as usize],
                self.special_start[b as usize + 1],
            );
            &self.special_order[lo as usize..hi as usize]
        };
        for i in from..bytes.len() {
            // A `▁` in the text also matches a token's leading space (`special_match`).
            let metaspace = self.model == Model::Spm && bytes[i..].starts_with(METASPACE);
            let buckets = [Some(bytes[i]), metaspace.then_some(b' ')];
            if buckets.iter().flatten().all(|&b| bucket(b).is_empty()) || !text.is_char_boundary(i)
            {
                continue;
            }
            // (length in the text, length of the token, position in specials)
            let mut best: Option<(usize, usize, usize)> = None;
            for &b in buckets.iter().flatten() {
                for &k in bucket(b) {
                    let k = k as usize;
                    let t = self.token_bytes(self.specials[k]);
                    // A match must end on a character boundary (a damaged file could hold
                    // a special token that is part of a character).
                    let Some(n) = self.special_match(&bytes[i..], t) else {
                        continue;
                    };
                    if !text.is_char_boundary(i + n) {
                        continue;
                    }
                    if best.is_none_or(|(_, len, bk)| (t.len(), Reverse(k)) > (len, Reverse(bk))) {
                        best = Some((n, t.len(), k));
                    }
                    break;
                }
            }
            if let Some((len, _, k)) = best {
                let flags = self.special_flags.map_or(0, |f| f[k]);
                let (mut start, mut end) = (i, i + len);
                if flags & special_flag::LSTRIP != 0 {
                    start = from + text[from..start].trim_end().len();
                }
                if flags & special_flag::RSTRIP != 0 {
                    end = text.len() - text[end..].trim_start().len();
                }
                return Some((start, end, self.specials[k]));
            }
        }
        None
    }

    /// Appends the ids of `text` to `out`, as HF's `tokenizer(text)`: special tokens written
    /// in the text become their ids, BOS/EOS are added when the model adds them.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            out.push(bos);
        }
        self.encode_text(text, out);
        if let (true, Some(eos)) = (self.add_eos, self.eos) {
            out.push(eos);
        }
    }

    /// HF's `tokenizer(text, add_special_tokens=False)`: the ids of `text` without the
    /// BOS/EOS that `encode` adds (a chat template writes them where it wants them).
    pub fn encode_plain(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_text(text, &mut out);
        out
    }

    /// Special tokens written in `text` and the segments between them.
    fn encode_text(&self, text: &str, out: &mut Vec<u32>) {
        let mut scratch = Scratch::default();
        let mut buf = String::new();
        let mut pos = 0;
        while let Some((start, end, id)) = self.find_special(text, pos) {
            self.encode_segment(&text[pos..start], pos == 0, &mut scratch, &mut buf, out);
            out.push(id);
            pos = end;
        }
        self.encode_segment(&text[pos..], pos == 0, &mut scratch, &mut buf, out);
    }

    /// Text between special tokens: space prefix, pre-tokenization, then BPE on each piece.
    fn encode_segment(
        &self,
        seg: &str,
        at_start: bool,
        scratch: &mut Scratch,
        buf: &mut String,
        out: &mut Vec<u32>,
    ) {
        if seg.is_empty() {
            return;
        }
        let spm = self.model == Model::Spm;
        let starts_with_space = seg.starts_with(' ') || (spm && seg.starts_with('▁'));
        let prefix = match self.space_prefix {
            SpacePrefix::Never => false,
            SpacePrefix::First => at_start && !starts_with_space,
            SpacePrefix::Always => !starts_with_space,
            SpacePrefix::Legacy => true,
        };
        // SentencePiece vocabularies write spaces as `▁`; the stored tokens have them as
        // spaces, so a `▁` typed in the text is a space too.
        let needs_copy = prefix || (spm && seg.contains('▁'));
        let text = if needs_copy {
            buf.clear();
            if prefix {
                buf.push(' ');
            }
            if spm {
                for c in seg.chars() {
                    buf.push(if c == '▁' { ' ' } else { c });
                }
            } else {
                buf.push_str(seg);
            }
            buf.as_str()
        } else {
            seg
        };
        self.pre.split(text, &mut |piece: &str| {
            // Symbol links are u32: cut absurdly long pieces (never seen in real text).
            let mut rest = piece;
            while rest.len() > MAX_PIECE {
                let mut cut = MAX_PIECE;
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                self.encode_piece(&rest[..cut], scratch, out);
                rest = &rest[cut..];
            }
            self.encode_piece(rest, scratch, out)
        });
    }

    fn encode_piece(&self, piece: &str, scratch: &mut Scratch, out: &mut Vec<u32>) {
        if self.ignore_merges {
            if let Some(id) = self.lookup(piece.as_bytes()) {
                out.push(id);
                return;
            }
        }
        scratch.clear();
        match self.model {
            Model::ByteBpe => {
                let byte_ids = self.byte_ids.unwrap_or(&[]);
                for &b in piece.as_bytes() {
                    // A byte without a token (a trimmed alphabet) is dropped, as HF does.
                    match byte_ids.get(b as usize) {
                        Some(&id) if id != NO_ID => scratch.push(id),
                        _ => {}
                    }
                }
            }
            Model::Spm => {
                let mut last_unk = false;
                let mut ch = [0u8; 4];
                for c in piece.chars() {
                    let s = c.encode_utf8(&mut ch);
                    let found = match self.ascii_ids.get(c as usize) {
                        Some(&id) => Some(id).filter(|&id| id != NO_ID),
                        None => self.lookup(s.as_bytes()),
                    };
                    if let Some(id) = found {
                        scratch.push(id);
                        last_unk = false;
                        continue;
                    }
                    if self.byte_fallback {
                        if let Some(byte_ids) = self.byte_ids {
                            let ids = s.bytes().map(|b| byte_ids[b as usize]);
                            if ids.clone().all(|id| id != NO_ID) {
                                ids.for_each(|id| scratch.push(id));
                                last_unk = false;
                                continue;
                            }
                        }
                    }
                    if let Some(unk) = self.unk {
                        if !(self.fuse_unk && last_unk) {
                            scratch.push(unk);
                        }
                        last_unk = true;
                    }
                }
            }
        }
        scratch.merge_into(self.merges, out);
    }
}
