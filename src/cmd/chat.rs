//! `ember chat MODEL`: an interactive multi-turn chat in the model's own chat template
//! (src/chat_template.rs). The KV cache keeps the conversation, so each turn usually only
//! processes the new text.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use ember_runtime::generate::{Finish, Generator};
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{Model, Session};

use super::run::SamplingArgs;
use super::CmdResult;
use crate::chat_template::Prompter;
use crate::model_source::{open_model, SourceArgs};

#[derive(clap::Args)]
#[command(
    after_help = "Type a message and press Enter; an empty line is ignored, /reset starts over, /quit or end of input (Ctrl-D) leaves.\n\nExamples:\n  ember chat smollm2.ember\n  ember chat smollm2.ember --system \"Answer in one sentence.\" --temp 0.3\n  echo \"What is the capital of France?\" | ember chat smollm2.ember --temp 0\n  ember chat ./SmolLM2-135M-Instruct   # a Hugging Face directory, converted once and cached"
)]
pub struct Args {
    /// The model: a .ember file, or a GGUF file or Hugging Face directory (converted with
    /// --quant same on first use and cached; see --no-cache).
    pub model: PathBuf,
    /// System prompt (default: the one the model's template inserts, if any).
    #[arg(long)]
    pub system: Option<String>,
    /// Maximum tokens per reply.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    pub n: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Conversation length in tokens (KV cache positions).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(args: Args) -> CmdResult {
    let sampling = args.sampling.config()?;
    let loaded = open_model(&args.model, args.source.no_cache)?;
    let file = loaded.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;
    let prompter = Prompter::new(&tokenizer, &args.model.display().to_string());
    let system = args.system.clone();
    // The end-of-turn text stops a reply even where it is not an end-of-generation token.
    let end_of_turn = prompter.end_of_turn();
    let stops: Vec<&str> = end_of_turn.iter().map(String::as_str).collect();
    let capacity = args.ctx.min(model.config.context_length);
    let mut session = Session::new(&model, capacity)?;
    session.set_threads(args.threads.unwrap_or(0));
    let mut gen = Generator::new(&mut session, &tokenizer, sampling, &stops);

    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let first_messages = || -> Vec<(String, String)> {
        system
            .iter()
            .map(|s| ("system".to_string(), s.clone()))
            .collect()
    };
    let mut messages = first_messages();
    // The rendered text whose tokens fill the KV cache, when they are exactly that text's.
    let mut cached: Option<String> = None;
    loop {
        if interactive {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| format!("reading input: {e}"))?;
        let message = line.trim();
        match message {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                gen.session.reset();
                gen.history.clear();
                messages = first_messages();
                cached = None;
                eprintln!("(conversation reset)");
                continue;
            }
            _ => {}
        }

        // The whole conversation is rendered each turn, as the template would render it; the
        // cache keeps what is unchanged, so only the new text is fed. Where the template
        // rewrites an earlier turn (Qwen3 drops past reasoning, Llama 3 and Gemma trim
        // replies), the conversation is fed again from the start.
        messages.push(("user".to_string(), message.to_string()));
        let text = match prompter.render(&messages) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("(chat template: {e})");
                messages.pop();
                continue;
            }
        };
        let (ids, restart) = match cached.as_deref().and_then(|c| text.strip_prefix(c)) {
            Some(rest) if !rest.is_empty() => (prompter.encode(&tokenizer, rest, false), false),
            _ => (prompter.encode(&tokenizer, &text, true), true),
        };
        let needed = if restart { 0 } else { gen.session.position() } + ids.len();
        if needed >= gen.session.capacity() {
            eprintln!(
                "(the conversation is full: {needed} of {} tokens; /reset to start over, or raise --ctx)",
                gen.session.capacity()
            );
            messages.pop();
            continue;
        }
        if restart {
            gen.session.reset();
            gen.history.clear();
        }
        let start = Instant::now();
        gen.prefill(&ids)?;
        let fed = gen.session.position();
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut reply = String::new();
        let mut emit = |t: &str| {
            reply.push_str(t);
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        };
        let mut n = 0;
        while n < args.n {
            match gen.next(&mut emit)? {
                Some(_) => n += 1,
                None => break,
            }
        }
        let why = gen.finish(&mut emit);
        println!();
        // The cache holds the reply's tokens but not the one that ended it (end of generation)
        // or was cut at the budget after being fed; other endings leave it out of step.
        let in_step = match why {
            Finish::EndOfText => gen.session.position() + 1 == fed + n,
            Finish::Length => gen.session.position() == fed + n,
            _ => false,
        };
        cached = in_step.then(|| text + &reply);
        messages.push(("assistant".to_string(), reply));
        let secs = start.elapsed().as_secs_f64();
        if interactive {
            eprintln!("({n} tokens, {:.1} tok/s)", n as f64 / secs.max(1e-9));
        }
    }
    Ok(())
}
