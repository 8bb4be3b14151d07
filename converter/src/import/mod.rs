//! Importers: each opens its source (memory-mapped) and builds a [`crate::plan::Plan`].

pub mod gguf;
pub mod hf;
