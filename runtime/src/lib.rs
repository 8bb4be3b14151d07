//! Ember's inference core: `no_std` + `alloc`. With the `std` feature it also maps files
//! from disk and runs kernels on a thread pool.
//!
//! ```no_run
//! # #[cfg(feature = "std")] fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ember_runtime::{MappedFile, Model, Session, Sampler, SamplerConfig};
//! let mapped = MappedFile::open("model.ember".as_ref())?;
//! let file = mapped.parse()?;
//! let model = Model::load(&file)?;
//! let mut session = Session::new(&model, 256)?;
//! let mut sampler = Sampler::new(SamplerConfig::greedy(), model.config.vocab_size);
//! let mut history = vec![1u32, 2, 3];
//! let mut logits = session.prefill(&history)?.to_vec();
//! for _ in 0..8 {
//!     let next = sampler.sample(&mut logits, &history);
//!     history.push(next);
//!     logits.copy_from_slice(session.step(next)?);
//! }
//! # Ok(()) }
//! # #[cfg(not(feature = "std"))] fn main() {}
//! ```
#![no_std]
#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "alloc")]
pub mod chat;
mod error;
pub mod exec;
#[cfg(feature = "alloc")]
pub mod generate;
pub mod kernels;
pub mod kv_cache;
pub mod math;
#[cfg(feature = "alloc")]
pub mod memory;
pub mod model;
#[cfg(feature = "alloc")]
pub mod sampler;
mod sampler_core;
pub mod session;
#[cfg(feature = "alloc")]
pub mod tokenizer;

#[cfg(feature = "std")]
pub mod mapped;
#[cfg(feature = "std")]
pub mod pool;

pub use error::Error;
#[cfg(feature = "std")]
pub use mapped::MappedFile;
pub use model::{Config, Logits, Model};
#[cfg(feature = "alloc")]
pub use sampler::{Sampler, SamplerConfig};
pub use sampler_core::argmax;
#[cfg(feature = "alloc")]
pub use session::HeapSession;
pub use session::{Session, SessionPlan};
