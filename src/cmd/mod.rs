//! One module per subcommand; each has `Args` (clap) and `run(args) -> Result`.

/// What every subcommand returns: the error is printed as one line by `main`.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

#[cfg(feature = "full")]
pub mod train;
#[cfg(feature = "full")]
pub mod convert;
pub mod run;
pub mod chat;
pub mod tokenize;
#[cfg(feature = "full")]
pub mod eval;
pub mod bench;
pub mod inspect;
