//! The one place the converter calls the tokenizer importer (`crate::tokenizer`).

use std::path::Path;

use ember_format::Writer;

use crate::error::Result;
use crate::gguf::GgufFile;

/// A model's tokenizer, ready to be written into the `.ember` file.
pub struct Tokenizer {
    _private: (),
}

impl Tokenizer {
    /// Number of tokens, to check against the model's vocabulary.
    pub fn vocab_size(&self) -> Option<usize> {
        None
    }

    pub fn write(&self, _w: &mut Writer) {}
}

/// Reads tokenizer.json, tokenizer_config.json and the chat template from an HF directory.
pub fn from_hf_dir(_dir: &Path) -> Result<Tokenizer> {
    Ok(Tokenizer { _private: () })
}

/// Reads the `tokenizer.*` keys of a GGUF file.
pub fn from_gguf(_g: &GgufFile<'_>) -> Result<Tokenizer> {
    Ok(Tokenizer { _private: () })
}
