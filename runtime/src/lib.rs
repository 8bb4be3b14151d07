//! Ember's inference core: `no_std` + `alloc`. With the `std` feature it also maps files
//! from disk and runs kernels on a thread pool.
#![no_std]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod mapped;

#[cfg(feature = "std")]
pub use mapped::MappedFile;
