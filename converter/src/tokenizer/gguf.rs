//! GGUF's `tokenizer.ggml.*` keys, as llama.cpp interprets them.

use std::collections::HashMap;

use super::{
    byte_level_decode, merge_ranks, parse_byte_token, spm_decode, token_type, unicode_to_byte,
    Merges, TokenizerModel, TokenizerSpec,
};
use crate::bail;
use crate::error::{Error, Result};

/// Everything GGUF's `tokenizer.ggml.*` keys hold (the GGUF reader fills this; plain data).
#[derive(Clone, Debug, Default)]
pub struct GgufTokenizerFields {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: `smollm`, `llama-bpe`, `qwen2`, `gpt-4o`, `gpt-2`, `default`, ...
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, as stored.
    pub tokens: Vec<Vec<u8>>,
    /// `tokenizer.ggml.merges` (`"a b"`), may be empty.
    pub merges: Vec<Vec<u8>>,
    pub scores: Option<Vec<f32>>,
    pub token_types: Option<Vec<i32>>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece's dummy prefix; Gemma has none).
    pub add_space_prefix: Option<bool>,
    pub chat_template: Option<String>,
}

/// Maps `tokenizer.ggml.pre` to the runtime's pre-tokenizer (and whether whole words found
/// in the vocabulary skip merging, as llama.cpp does for Llama 3).
fn pre_for(pre: Option<&str>) -> Result<(&'static str, bool)> {
    Ok(match pre.unwrap_or("default") {
        "default" | "gpt-2" | "gpt2" => ("gpt2", false),
        // llama.cpp splits these with `\p{N}` first, then the GPT-2 regex.
        "smollm" | "starcoder" | "refact" => ("gpt2-digits", false),
        "llama-bpe" | "llama3" | "llama-v3" | "smaug-bpe" => ("llama3", true),
        "qwen2" => ("qwen2", false),
        // GPT-4o's o200k split (Phi-4-mini).
        "gpt-4o" => ("o200k", false),
        other => bail!("unsupported GGUF pre-tokenizer tokenizer.ggml.pre = '{other}'"),
    })
}

/// Builds the spec from GGUF tokenizer fields.
/// `tokenizer.ggml.merges` ("left right", in the tokens' own spelling) as
/// `[left, right, rank, result]`.
fn merge_table(tokens: &[Vec<u8>], lines: &[Vec<u8>]) -> Result<Vec<[u32; 4]>> {
    let by_text: HashMap<&[u8], u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_slice(), i as u32))
        .collect();
    let mut m = Vec::with_capacity(lines.len());
    for (rank, line) in lines.iter().enumerate() {
        let Some(sp) = line.iter().position(|&b| b == b' ') else {
            bail!("GGUF tokenizer.ggml.merges[{rank}] is not \"left right\"");
        };
        let (a, b) = (&line[..sp], &line[sp + 1..]);
        let joined = [a, b].concat();
        let (Some(&l), Some(&r), Some(&res)) = (
            by_text.get(a),
            by_text.get(b),
            by_text.get(joined.as_slice()),
        ) else {
            bail!(
                "GGUF tokenizer.ggml.merges[{rank}] ({}) names a token that is not in the vocabulary",
                String::from_utf8_lossy(line)
            );
        };
        m.push([l, r, rank as u32, res]);
    }
    Ok(m)
}

pub fn from_gguf(f: GgufTokenizerFields) -> Result<TokenizerSpec> {
    // "gemma4": SentencePiece-style tokens (▁ for spaces, <0xXX> bytes) merged by a merge
    // list instead of scores.
    let (model, spm_merges) = match f.model.as_str() {
        "gpt2" => (TokenizerModel::ByteBpe, false),
        "llama" => (TokenizerModel::Spm, false),
        "gemma4" => (TokenizerModel::Spm, true),
        other => bail!(
            "unsupported tokenizer model '{other}' in GGUF tokenizer.ggml.model (supported: gpt2, llama, gemma4)"
        ),
    };
    let n = f.tokens.len();
    if n == 0 || n >= u32::MAX as usize {
        bail!("GGUF tokenizer.ggml.tokens has {n} entries");
    }
    let mut types: Vec<u8> = match &f.token_types {
        None => vec![token_type::NORMAL; n],
        Some(t) if t.len() != n => bail!(
            "GGUF tokenizer.ggml.token_type has {} entries for {n} tokens",
            t.len()
        ),
        Some(t) => t
            .iter()
            .enumerate()
            .map(|(i, &ty)| match ty {
                1..=6 => Ok(ty as u8),
                _ => Err(Error(format!(
                    "GGUF tokenizer.ggml.token_type[{i}] = {ty} is not a token type"
                ))),
            })
            .collect::<Result<_>>()?,
    };
    if let Some(s) = &f.scores {
        if s.len() != n {
            bail!(
                "GGUF tokenizer.ggml.scores has {} entries for {n} tokens",
                s.len()
            );
        }
    }
    let check = |what: &str, id: Option<u32>| -> Result<Option<u32>> {
        match id {
            Some(id) if id as usize >= n => {
                bail!("GGUF tokenizer.ggml.{what} = {id} is not below the {n} tokens")
            }
            other => Ok(other),
        }
    };
    let bos_id = check("bos_token_id", f.bos_id)?;
    let eos_id = check("eos_token_id", f.eos_id)?;
    let unk_id = check("unknown_token_id", f.unk_id)?;
    let pad_id = check("padding_token_id", f.pad_id)?;

    let is_text = |ty: u8| ty == token_type::NORMAL || ty == token_type::UNUSED;
    let mut tokens = Vec::with_capacity(n);
    let (pre, ignore_merges);
    // A merge table (byte-level BPE) or SentencePiece scores.
    let (mut merges, mut scores) = (Vec::new(), None);
    match model {
        TokenizerModel::ByteBpe => {
            let u2b = unicode_to_byte();
            for (t, &ty) in f.tokens.iter().zip(&types) {
                let decoded = match std::str::from_utf8(t) {
                    Ok(s) if is_text(ty) => byte_level_decode(s, &u2b),
                    _ => None,
                };
                tokens.push(decoded.unwrap_or_else(|| t.clone()));
            }
            (pre, ignore_merges) = pre_for(f.pre.as_deref())?;
            merges = merge_table(&f.tokens, &f.merges)?;
        }
        TokenizerModel::Spm => {
            for (t, ty) in f.tokens.iter().zip(types.iter_mut()) {
                if *ty == token_type::BYTE {
                    match parse_byte_token(t) {
                        Some(b) => tokens.push(vec![b]),
                        None => bail!(
                            "GGUF byte token {:?} is not <0xXX>",
                            String::from_utf8_lossy(t)
                        ),
                    }
                } else if is_text(*ty) {
                    tokens.push(spm_decode(t));
                } else {
                    tokens.push(t.clone());
                }
            }
            pre = "none";
            ignore_merges = false;
            if spm_merges {
                merges = merge_table(&f.tokens, &f.merges)?;
            } else {
                scores = Some(match &f.scores {
                    Some(s) => s.clone(),
                    // Without scores, prefer earlier (more frequent) tokens, like a merge list.
                    None => (0..n).map(|i| -(i as f32)).collect(),
                });
            }
        }
    }
    // llama.cpp matches control, user-defined and unknown tokens written in the text.
    let specials = types
        .iter()
        .enumerate()
        .filter(|&(i, &ty)| {
            matches!(
                ty,
                token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
            ) && !tokens[i].is_empty()
        })
        .map(|(i, _)| (i as u32, 0u8))
        .collect();
    if let Some(u) = unk_id {
        if types[u as usize] == token_type::NORMAL {
            types[u as usize] = token_type::UNKNOWN;
        }
    }
    // SentencePiece merges from the final types (the unknown token is never a merge).
    let merges = match scores {
        Some(scores) => Merges::Vocab(merge_ranks(&types, &scores)),
        None => Merges::Table(merges),
    };
    let spm = model == TokenizerModel::Spm;
    let space_prefix = spm && f.add_space_prefix.unwrap_or(true);
    let add_bos = f.add_bos.unwrap_or(spm) && bos_id.is_some();
    let add_eos = f.add_eos.unwrap_or(false) && eos_id.is_some();
    let has_byte_tokens = types.contains(&token_type::BYTE);
    let mut spec = TokenizerSpec {
        model,
        pre,
        space_prefix: if space_prefix { "legacy" } else { "never" },
        tokens,
        types,
        merges,
        specials,
        bos_id,
        eos_id,
        unk_id,
        pad_id,
        add_bos,
        add_eos,
        eog_ids: vec![],
        ignore_merges,
        byte_fallback: spm && has_byte_tokens,
        fuse_unk: false,
        strip_space: space_prefix,
        chat_template: f.chat_template,
    };
    spec.find_eog();
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::pre_for;

    #[test]
    fn pre_tokenizer_names() {
        assert_eq!(pre_for(None).unwrap(), ("gpt2", false));
        assert_eq!(pre_for(Some("llama-bpe")).unwrap(), ("llama3", true));
        // Phi-4-mini's GGUF (llama.cpp's LLAMA_VOCAB_PRE_TYPE_GPT4O).
        assert_eq!(pre_for(Some("gpt-4o")).unwrap(), ("o200k", false));
        assert!(pre_for(Some("made-up")).is_err());
    }
}
