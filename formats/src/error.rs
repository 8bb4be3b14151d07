//! The reader's error type: no heap data, so it works without an allocator.

use core::fmt;

use crate::DType;

/// Which part of the file an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Header,
    Metadata,
    TensorDirectory,
    TensorData,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Metadata => "metadata",
            Section::TensorDirectory => "tensor directory",
            Section::TensorData => "tensor data",
        })
    }
}

/// A short copy of a name from the file, so errors can say which tensor or key is wrong
/// without borrowing the file or allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortName {
    bytes: [u8; 48],
    len: u8,
}

impl ShortName {
    pub fn new(name: &[u8]) -> Self {
        let len = name.len().min(48);
        let mut bytes = [0u8; 48];
        bytes[..len].copy_from_slice(&name[..len]);
        Self {
            bytes,
            len: len as u8,
        }
    }
}

impl fmt::Debug for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.bytes[..self.len as usize].utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

/// Everything that can be wrong with a `.ember` file or a request to write one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before the named section does.
    Truncated {
        section: Section,
        needed: u64,
        available: u64,
    },
    /// The first bytes are not the `.ember` magic.
    BadMagic,
    /// A major version this reader does not know.
    UnsupportedVersion {
        major: u16,
        minor: u16,
    },
    /// Flag bits this reader does not know.
    UnknownFlags(u32),
    /// The buffer must start at an 8-byte aligned address.
    MisalignedBuffer,
    /// The header's file length differs from the buffer's.
    LengthMismatch {
        header: u64,
        actual: u64,
    },
    /// Section offsets or lengths are out of order, misaligned or overflow.
    BadLayout(Section),
    /// A padding byte (after a key, value or name, before the data, between tensors) is not
    /// zero: docs/FORMAT.md says zero, and the reader holds files to it.
    NonZeroPadding(Section),
    /// Reserved header bytes are not zero.
    ReservedNotZero,
    /// A metadata key is empty, too long or not UTF-8.
    BadKey {
        index: u64,
    },
    /// Metadata keys must be unique and in ascending byte order.
    KeysNotSorted {
        key: ShortName,
    },
    /// A metadata value type this reader does not know.
    UnknownValueType {
        key: ShortName,
        value_type: u32,
    },
    /// A metadata value whose length does not fit its type.
    BadValue {
        key: ShortName,
    },
    /// A tensor name is empty, too long or not UTF-8.
    BadTensorName {
        index: u64,
    },
    /// Tensor names must be unique and in ascending byte order.
    TensorsNotSorted {
        name: ShortName,
    },
    UnknownDtype {
        name: ShortName,
        dtype: u32,
    },
    UnknownLayout {
        name: ShortName,
        layout: u32,
    },
    /// A known layout that does not apply to the tensor's dtype or shape.
    LayoutMismatch {
        name: ShortName,
        layout: &'static str,
    },
    /// Zero or too many dimensions, a zero or absurd extent, or a row that is not whole blocks.
    BadShape {
        name: ShortName,
    },
    /// The byte length does not match dtype and shape.
    SizeMismatch {
        name: ShortName,
        dtype: DType,
        expected: u64,
        actual: u64,
    },
    /// Data outside the data section, not 64-byte aligned, or overlapping the previous tensor.
    BadTensorOffset {
        name: ShortName,
    },
    ChecksumMismatch {
        stored: u64,
        computed: u64,
    },
    /// Writer: the same metadata key or tensor name was added twice.
    Duplicate {
        name: ShortName,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { section, needed, available } => write!(
                f,
                "file is truncated: the {section} needs {needed} bytes, the file has {available}"
            ),
            Error::BadMagic => f.write_str("not a .ember file (bad magic bytes)"),
            Error::UnsupportedVersion { major, minor } => write!(
                f,
                "unsupported .ember format version {major}.{minor} (this build reads {}.x)",
                crate::FORMAT_MAJOR
            ),
            Error::UnknownFlags(v) => write!(f, "unknown header flags {v:#x}"),
            Error::MisalignedBuffer => f.write_str("the file buffer is not 8-byte aligned"),
            Error::LengthMismatch { header, actual } => write!(
                f,
                "file length is {actual} bytes but the header says {header} (truncated or padded)"
            ),
            Error::BadLayout(s) => write!(f, "corrupt header: bad offset or length of the {s}"),
            Error::NonZeroPadding(s) => write!(f, "corrupt {s}: padding bytes are not zero"),
            Error::ReservedNotZero => f.write_str("corrupt header: reserved bytes are not zero"),
            Error::BadKey { index } => write!(f, "corrupt metadata: key #{index} is invalid"),
            Error::KeysNotSorted { key } => {
                write!(f, "corrupt metadata: key '{key}' is duplicated or out of order")
            }
            Error::UnknownValueType { key, value_type } => {
                write!(f, "metadata '{key}' has unknown value type {value_type}")
            }
            Error::BadValue { key } => write!(f, "corrupt metadata: value of '{key}' is invalid"),
            Error::BadTensorName { index } => {
                write!(f, "corrupt tensor directory: name of tensor #{index} is invalid")
            }
            Error::TensorsNotSorted { name } => write!(
                f,
                "corrupt tensor directory: tensor '{name}' is duplicated or out of order"
            ),
            Error::UnknownDtype { name, dtype } => {
                write!(f, "tensor '{name}' has unknown dtype id {dtype}")
            }
            Error::UnknownLayout { name, layout } => {
                write!(f, "tensor '{name}' has unknown layout id {layout}")
            }
            Error::LayoutMismatch { name, layout } => write!(
                f,
                "tensor '{name}': layout {layout} does not apply to its dtype or shape"
            ),
            Error::BadShape { name } => write!(f, "tensor '{name}' has an invalid shape"),
            Error::SizeMismatch { name, dtype, expected, actual } => write!(
                f,
                "tensor '{name}' ({dtype}) should be {expected} bytes but is {actual}"
            ),
            Error::BadTensorOffset { name } => write!(
                f,
                "tensor '{name}' lies outside the data section, is misaligned or overlaps another"
            ),
            Error::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: stored {stored:016x}, computed {computed:016x} (file is corrupt)"
            ),
            Error::Duplicate { name } => write!(f, "'{name}' was added twice"),
        }
    }
}

impl core::error::Error for Error {}
