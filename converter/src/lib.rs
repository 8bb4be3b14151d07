//! ember-convert: reads Hugging Face checkpoints, GGUF files and ember-train output, and
//! writes one `.ember` file (docs/FORMAT.md) with config, tokenizer, chat template, tensors.

pub mod error;

pub use error::{Error, Result};
