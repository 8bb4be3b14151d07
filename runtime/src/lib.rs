//! Ember's inference core: `no_std` + `alloc`.
#![no_std]
extern crate alloc;
