//! `ember`: train, convert, run, chat, tokenize, eval, bench and inspect small language models.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod chat_template;
mod cmd;
mod model_source;

#[derive(Parser)]
#[command(name = "ember", version, about = "Train, convert and run small language models on CPUs and edge devices", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a decoder-only transformer from text.
    #[cfg(feature = "full")]
    Train(cmd::train::Args),
    /// Convert a Hugging Face checkpoint, a GGUF file or a trainer output to .ember.
    #[cfg(feature = "full")]
    Convert(cmd::convert::Args),
    /// Generate text from a prompt.
    Run(cmd::run::Args),
    /// Chat with a model using its chat template.
    Chat(cmd::chat::Args),
    /// Show the token ids of a text.
    Tokenize(cmd::tokenize::Args),
    /// Measure perplexity and divergence from a reference model.
    #[cfg(feature = "full")]
    Eval(cmd::eval::Args),
    /// Measure kernel throughput or model tokens/s.
    Bench(cmd::bench::Args),
    /// Show a .ember file's metadata and tensors; verify it.
    Inspect(cmd::inspect::Args),
}

fn main() -> ExitCode {
    // Exit quietly when stdout is a closed pipe (`ember inspect m.ember | head`), as Unix
    // tools do, instead of panicking inside println!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at startup, before any threads
    // exist, is async-signal-safe and affects only this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "full")]
        Command::Train(args) => cmd::train::run(args),
        #[cfg(feature = "full")]
        Command::Convert(args) => cmd::convert::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Chat(args) => cmd::chat::run(args),
        Command::Tokenize(args) => cmd::tokenize::run(args),
        #[cfg(feature = "full")]
        Command::Eval(args) => cmd::eval::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
