//! `ember tokenize MODEL (TEXT | --file PATH) [--json]`: the token ids of a text, as Hugging
//! Face's `tokenizer(text)` gives them (special tokens written in the text are recognized,
//! BOS only where the model adds one).

use std::fmt::Write as _;
use std::path::PathBuf;

use ember_runtime::tokenizer::Tokenizer;

use super::shared::{read_text, ModelArg};
use super::CmdResult;
use crate::model_source::{open_model, SourceArgs};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  ember tokenize smollm2.ember \"Hello, world!\"\n  ember tokenize -m smollm2.ember \"<|im_start|>user\"      # special tokens are recognized\n  echo \"Hello\" | ember tokenize smollm2.ember --json     # no TEXT: stdin (or -f -)\n  ember tokenize ./SmolLM2-135M-Instruct -f text.txt --json   # a Hugging Face directory, converted once and cached"
)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArg,
    /// The text to tokenize (without it and without -f: stdin).
    #[arg(conflicts_with = "file")]
    pub text: Option<String>,
    /// Read the text from a file instead (UTF-8); - reads stdin.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Print `{"ids": [...]}` only.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(mut args: Args) -> CmdResult {
    // `ember tokenize -m MODEL TEXT`: clap gives TEXT to the first positional, MODEL's.
    if args.model.model_flag.is_some() && args.text.is_none() {
        if let Some(text) = args.model.model.take() {
            args.text = Some(text.to_string_lossy().into_owned());
        }
    }
    let model = args.model.path()?.to_path_buf();
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => read_text(p)?,
        (None, None) => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err("give a TEXT, -f FILE, or text on stdin".into());
            }
            read_text(std::path::Path::new("-"))?
        }
    };
    let loaded = open_model(&model, args.source.no_cache)?;
    let file = loaded.parse()?;
    let tok = Tokenizer::from_file(&file).map_err(|e| format!("{}: {e}", model.display()))?;
    let mut ids = Vec::new();
    tok.encode(&text, &mut ids);
    if args.json {
        println!("{}", serde_json::json!({ "ids": ids }));
        return Ok(());
    }
    let mut out = String::new();
    for &id in &ids {
        let _ = writeln!(out, "{id:>8}  {}", piece(&tok, id));
    }
    let _ = writeln!(out, "{} tokens", ids.len());
    print!("{out}");
    Ok(())
}

/// A token's decoded bytes, readable: quoted, with control characters, invalid UTF-8 (a
/// partial character) escaped; control tokens marked.
fn piece(tok: &Tokenizer<'_>, id: u32) -> String {
    let bytes = tok.token_bytes(id);
    let mut s = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(s, "{}", c.escape_default());
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02X}");
        }
    }
    s.push('"');
    if tok.is_control(id) {
        s.push_str("  (control)");
    }
    s
}
