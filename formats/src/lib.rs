//! The `.ember` flat model format (see docs/FORMAT.md).
#![no_std]
