//! One module per subcommand; each has `Args` (clap) and `run(args) -> Result`.

/// What every subcommand returns: the error is printed as one line by `main`.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

pub mod bench;
pub mod chat;
#[cfg(feature = "full")]
pub mod convert;
#[cfg(feature = "full")]
pub mod eval;
pub mod inspect;
#[cfg(feature = "full")]
mod progress;
pub mod run;
pub mod shared;
pub mod tokenize;
#[cfg(feature = "full")]
pub mod train;
