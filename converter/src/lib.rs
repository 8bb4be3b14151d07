//! ember-convert: reads Hugging Face checkpoints, GGUF files and ember-train output, and
//! writes one `.ember` file (docs/FORMAT.md) with config, tokenizer, chat template, tensors.
//!
//! ```no_run
//! use ember_convert::{convert, Options, Recipe};
//! let summary = convert(&Options {
//!     input: "models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
//!     output: "smollm2.ember".into(),
//!     quant: Some(Recipe::Same),
//!     force: false,
//!     progress: true,
//!     calibration: None,
//!     calibration_tokens: 0,
//!     layout: ember_format::Layout::Rows16,
//!     rules: Default::default(),
//!     budget: None,
//!     sensitivity_cache: None,
//! })?;
//! println!("{} tensors, {:.2} bits/weight", summary.tensors, summary.bits_per_weight());
//! # Ok::<(), ember_convert::Error>(())
//! ```

pub mod calibrate;
pub mod convert;
pub mod dither;
pub mod error;
pub mod gguf;
pub mod import;
pub mod model;
pub mod plan;
pub mod quant;
pub mod quant_alloc;
pub mod quant_search;
pub mod rope;
mod tok;
/// The tokenizer fields of a GGUF file, as the converter reads them (tests build specs from them).
pub use tok::gguf_fields as gguf_tokenizer_fields;
pub mod tokenizer;

pub use convert::{
    build, build_gguf_bytes, build_ruled, build_with, convert, detect, InputKind, Options, Summary,
};
pub use error::{Error, Result};
pub use quant::Recipe;
