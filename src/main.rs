//! `ember`: train, convert, run, chat, tokenize, eval, bench and inspect small language models.
use std::process::ExitCode;

use std::ffi::OsString;

use clap::{CommandFactory, Parser, Subcommand};

mod chat_template;
mod cmd;
mod model_source;
mod serve;

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
    /// Serve the model over HTTP with OpenAI's API (chat, completions, streaming).
    Serve(serve::Args),
}

/// A model file truncated while it is memory-mapped (another process rewrote it in place)
/// makes the next read of a page past its new end raise SIGBUS, which would end the process
/// with only the shell's "Bus error". Nothing can be recovered inside the handler: it says
/// what happened in one line and exits 1. (A file replaced by rename, as `ember convert`
/// writes, leaves the mapped one intact; the size check at open catches a file truncated
/// before.)
#[cfg(unix)]
extern "C" fn on_sigbus(_signal: libc::c_int) {
    const MSG: &[u8] = b"error: bus error (SIGBUS) reading memory-mapped data: the model file was probably truncated or rewritten while in use\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe; MSG is static.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::_exit(1);
    }
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
    #[cfg(unix)]
    // SAFETY: installing a handler at startup, before any threads exist; the handler calls
    // only async-signal-safe functions (see `on_sigbus`).
    unsafe {
        libc::signal(
            libc::SIGBUS,
            on_sigbus as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t,
        );
    }
    let cli = match Cli::try_parse_from(llama_cpp_args(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
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
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// llama.cpp flags with no meaning on a CPU-only runtime (`-ngl 99`, which clap would read as
/// `-n gl`): dropped with a note, so that a llama-cli command line works unchanged.
fn llama_cpp_args(mut args: Vec<OsString>) -> Vec<OsString> {
    const GPU_LAYERS: [&str; 3] = ["-ngl", "--n-gpu-layers", "--gpu-layers"];
    let mut i = 1;
    while i < args.len() {
        let arg = args[i].to_string_lossy().into_owned();
        if arg == "--" {
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        if GPU_LAYERS.contains(&flag.as_str()) {
            let value = match inline {
                Some(v) => v,
                None if i + 1 < args.len() => args.remove(i + 1).to_string_lossy().into_owned(),
                None => String::new(),
            };
            eprintln!("note: ember runs on the CPU; ignoring {flag} {value}");
            args.remove(i);
            continue;
        }
        i += 1;
    }
    args
}

/// A command-line error as one line naming the problem (clap's usage block and tips folded
/// in), exit status 2; --help and --version print as usual.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(msg) = line.strip_prefix("error: ") {
            parts.push(msg.to_string());
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            parts.push(tip.to_string());
        }
    }
    if parts.is_empty() {
        parts.push(
            text.lines()
                .next()
                .unwrap_or("invalid arguments")
                .to_string(),
        );
    }
    let command = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| Cli::command().find_subcommand(a).is_some());
    let help = match command {
        Some(c) => format!("ember {c} --help"),
        None => "ember --help".to_string(),
    };
    eprintln!("error: {} (see {help})", parts.join("; "));
    ExitCode::from(2)
}
