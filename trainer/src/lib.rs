#![doc = include_str!("../README.md")]
//! ember-train: a dependency-light trainer for Llama-style decoders.
//!
//! Text → [`data`] (normalize, clean, dedup, split) → [`bpe`] tokenizer → [`model`]
//! (hand-written forward/backward) → [`optim`] AdamW → [`checkpoint`] in Hugging Face layout.
pub mod error;
pub mod float;
pub mod model;
pub mod rng;

pub use error::{Result, TrainError};
pub mod bpe;
pub mod checkpoint;
pub mod data;
pub mod ngram;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod train;
