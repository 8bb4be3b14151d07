//! The one place the converter calls the tokenizer importer (`crate::tokenizer`).

use std::path::Path;

use ember_format::Writer;

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::tokenizer::{GgufTokenizerFields, TokenizerSpec};

/// A model's tokenizer, ready to be written into the `.ember` file.
pub struct Tokenizer(TokenizerSpec);

impl Tokenizer {
    /// Number of tokens, to check against the model's vocabulary.
    pub fn vocab_size(&self) -> Option<usize> {
        Some(self.0.vocab_size())
    }

    pub fn write(&self, w: &mut Writer) {
        self.0.write(w)
    }
}

/// Reads tokenizer.json, tokenizer_config.json and the chat template from an HF directory.
pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
    if !dir.join("tokenizer.json").is_file() {
        crate::bail!(
            "{} has no tokenizer.json (a .ember file carries its tokenizer)",
            dir.display()
        );
    }
    crate::tokenizer::from_hf_dir(dir).map(Tokenizer)
}

/// Reads the `tokenizer.*` keys of a GGUF file.
pub fn from_gguf(g: &GgufFile<'_>) -> Result<Tokenizer> {
    crate::tokenizer::from_gguf(gguf_fields(g)?).map(Tokenizer)
}

/// The `tokenizer.ggml.*` (and `tokenizer.chat_template`) keys of a GGUF file, checked for
/// their types: the one place that names them.
pub fn gguf_fields(g: &GgufFile<'_>) -> Result<GgufTokenizerFields> {
    let owned_str = |key: &str| -> Result<Option<String>> {
        match g.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or_else(|| {
                Error(format!(
                    "GGUF metadata '{key}' should be a UTF-8 string, not {}",
                    v.type_name()
                ))
            }),
        }
    };
    let strings = |key: &str| -> Result<Option<Vec<Vec<u8>>>> {
        match g.opt_array(key)? {
            None => Ok(None),
            Some(a) => a
                .strings()
                .map(|v| Some(v.into_iter().map(<[u8]>::to_vec).collect()))
                .ok_or_else(|| {
                    Error(format!(
                        "GGUF metadata '{key}' should be an array of strings"
                    ))
                }),
        }
    };
    let Some(model) = owned_str("tokenizer.ggml.model")? else {
        crate::bail!("GGUF metadata 'tokenizer.ggml.model' is missing: the file has no tokenizer");
    };
    let Some(tokens) = strings("tokenizer.ggml.tokens")? else {
        crate::bail!("GGUF metadata 'tokenizer.ggml.tokens' is missing");
    };
    let scores = match g.opt_array("tokenizer.ggml.scores")? {
        None => None,
        Some(a) => Some(a.f32s().ok_or_else(|| {
            Error("GGUF metadata 'tokenizer.ggml.scores' should be an array of f32".into())
        })?),
    };
    let token_types = match g.opt_array("tokenizer.ggml.token_type")? {
        None => None,
        Some(a) => Some(a.i32s().ok_or_else(|| {
            Error("GGUF metadata 'tokenizer.ggml.token_type' should be an array of i32".into())
        })?),
    };
    let fields = GgufTokenizerFields {
        model,
        pre: owned_str("tokenizer.ggml.pre")?,
        tokens,
        merges: strings("tokenizer.ggml.merges")?.unwrap_or_default(),
        scores,
        token_types,
        bos_id: g.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_id: g.opt_u32("tokenizer.ggml.eos_token_id")?,
        unk_id: g.opt_u32("tokenizer.ggml.unknown_token_id")?,
        pad_id: g.opt_u32("tokenizer.ggml.padding_token_id")?,
        add_bos: g.opt_bool("tokenizer.ggml.add_bos_token")?,
        add_space_prefix: g.opt_bool("tokenizer.ggml.add_space_prefix")?,
        add_eos: g.opt_bool("tokenizer.ggml.add_eos_token")?,
        chat_template: owned_str("tokenizer.chat_template")?,
    };
    Ok(fields)
}
