//! The `.ember` flat model format: one little-endian file holding a model's configuration,
//! tokenizer, chat template and tensors, laid out so a runtime uses the weights in place
//! from an mmap or from flash. docs/FORMAT.md is the specification.
//!
//! ```
//! # #[cfg(feature = "write")] {
//! use ember_format::{DType, EmberFile, Writer};
//! let mut w = Writer::new();
//! w.set_str("general.architecture", "llama");
//! w.add_tensor_f32("norm.weight", &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
//! let bytes = ember_format::AlignedBytes::from(w.to_vec());
//! let file = EmberFile::parse(&bytes).unwrap();
//! assert_eq!(file.get("general.architecture").unwrap().as_str(), Some("llama"));
//! assert_eq!(file.tensor("norm.weight").unwrap().as_f32().unwrap()[2], 3.0);
//! # }
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(target_endian = "big")]
compile_error!(
    "the .ember reader maps little-endian data in place; big-endian hosts are not supported"
);

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod blocks;
mod dtype;
mod error;
pub mod hparams;
pub mod layout;
mod read;
pub mod rows16;
pub mod schema;
#[cfg(feature = "write")]
mod write;
pub mod xxh64;

#[cfg(feature = "alloc")]
mod aligned;

#[cfg(feature = "alloc")]
pub use aligned::AlignedBytes;
pub use dtype::DType;
pub use error::{Error, Section, ShortName};
pub use hparams::{Hparams, HparamsError};
pub use layout::{FORMAT_MAJOR, FORMAT_MINOR, MAGIC};
pub use read::{checksum, BytesArray, EmberFile, Header, TensorInfo, Value};
#[cfg(all(feature = "write", feature = "std"))]
pub use write::temp_path;
#[cfg(feature = "write")]
pub use write::{OwnedValue, Writer, ROW_MAJOR_Q6K_HEAD_COLS};

/// How a tensor's blocks are arranged. New kernel-friendly arrangements (rows interleaved
/// for SIMD) get new ids; a reader rejects ids it does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// Row-major; quantized rows are consecutive blocks.
    RowMajor,
    /// Groups of 16 rows with their blocks interleaved for SIMD ([`rows16`]).
    Rows16,
}

impl Layout {
    pub const fn id(self) -> u32 {
        match self {
            Layout::RowMajor => 0,
            Layout::Rows16 => 1,
        }
    }

    pub fn from_id(id: u32) -> Option<Layout> {
        match id {
            0 => Some(Layout::RowMajor),
            1 => Some(Layout::Rows16),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Layout::RowMajor => "row-major",
            Layout::Rows16 => "rows16",
        }
    }
}
