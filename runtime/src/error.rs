//! The runtime's error type: no heap data, `Display`, usable without std.

use core::fmt;

use ember_format::{DType, ShortName};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The file itself is malformed.
    Format(ember_format::Error),
    /// Hyperparameters that cannot describe a model (missing keys, zero sizes, heads not
    /// dividing, an unknown architecture).
    Config(ember_format::HparamsError),
    /// Tensors or buffers that contradict the hyperparameters.
    BadConfig(&'static str),
    MissingTensor(ShortName),
    /// A tensor the architecture does not have: running without it would silently compute
    /// something else.
    UnexpectedTensor(ShortName),
    /// A tensor's shape differs from what the config implies.
    TensorShape(ShortName),
    /// Norms, biases and positions must be f32; matrices any supported dtype.
    TensorDtype(ShortName, DType),
    /// The tokenizer data is missing or corrupt.
    Tokenizer,
    EmptyPrompt,
    /// A token id at or beyond the vocabulary size.
    TokenOutOfRange(u32),
    /// The prompt plus generation needs more positions than the KV cache holds.
    ContextFull {
        needed: usize,
        capacity: usize,
    },
    /// The requested kernel level cannot run here (EMBER_KERNELS).
    Kernels(&'static str),
    /// Caller-supplied buffers (or layer storage) are smaller than the plan needs.
    BufferTooSmall {
        needed: usize,
        got: usize,
    },
    /// The KV cache and scratch of a `capacity`-position context need `needed` bytes: more
    /// than `available` (what the system says this process can still get), or more than the
    /// allocator gave (`available: None`).
    OutOfMemory {
        capacity: usize,
        needed: u64,
        available: Option<u64>,
    },
}

/// `2,214,592,512 bytes (2.06 GiB)`.
fn write_bytes(f: &mut fmt::Formatter<'_>, n: u64) -> fmt::Result {
    let mut groups = [0u16; 7];
    let mut k = 0;
    let mut rest = n;
    loop {
        groups[k] = (rest % 1000) as u16;
        k += 1;
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    write!(f, "{}", groups[k - 1])?;
    for g in groups[..k - 1].iter().rev() {
        write!(f, ",{g:03}")?;
    }
    write!(f, " bytes ({:.2} GiB)", n as f64 / (1u64 << 30) as f64)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format(e) => write!(f, "{e}"),
            Error::Config(e @ ember_format::HparamsError::MissingKey(_))
            | Error::Config(e @ ember_format::HparamsError::UnsupportedArchitecture) => {
                write!(f, "{e}")
            }
            Error::Config(e) => write!(f, "invalid model configuration: {e}"),
            Error::BadConfig(what) => write!(f, "invalid model configuration: {what}"),
            Error::MissingTensor(n) => write!(f, "model lacks tensor '{n}'"),
            Error::UnexpectedTensor(n) => write!(
                f,
                "tensor '{n}' is not part of this architecture (a feature this runtime does not implement)"
            ),
            Error::TensorShape(n) => write!(f, "tensor '{n}' has the wrong shape for this config"),
            Error::TensorDtype(n, d) => write!(f, "tensor '{n}' has unsupported dtype {d} here"),
            Error::Tokenizer => f.write_str("the model's tokenizer data is missing or corrupt"),
            Error::EmptyPrompt => f.write_str("the prompt is empty (no tokens)"),
            Error::TokenOutOfRange(id) => write!(f, "token id {id} is outside the vocabulary"),
            Error::ContextFull { needed, capacity } => write!(
                f,
                "prompt plus generation needs {needed} positions but the context holds {capacity} \
                 (shorten the prompt, lower -n, or raise --ctx up to the model's context length)"
            ),
            Error::Kernels(why) => f.write_str(why),
            Error::BufferTooSmall { needed, got } => {
                write!(f, "buffer too small: need {needed} elements, got {got}")
            }
            Error::OutOfMemory {
                capacity,
                needed,
                available,
            } => {
                write!(
                    f,
                    "a context of {capacity} positions needs "
                )?;
                write_bytes(f, *needed)?;
                f.write_str(" for its KV cache and scratch, but ")?;
                match available {
                    Some(a) => {
                        f.write_str("only ")?;
                        write_bytes(f, *a)?;
                        f.write_str(" are available")?;
                    }
                    None => f.write_str("the allocator refused them")?,
                }
                f.write_str(": use a smaller context (--ctx)")
            }
        }
    }
}

impl core::error::Error for Error {}

impl From<ember_format::Error> for Error {
    fn from(e: ember_format::Error) -> Self {
        Error::Format(e)
    }
}

impl From<ember_format::HparamsError> for Error {
    fn from(e: ember_format::HparamsError) -> Self {
        Error::Config(e)
    }
}
