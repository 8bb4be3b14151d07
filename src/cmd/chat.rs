//! `ember chat MODEL`: an interactive multi-turn chat in the model's own chat template
//! (src/chat_template.rs). The KV cache keeps the conversation, so each turn usually only
//! processes the new text. A full context drops the oldest turns (never the system prompt);
//! Ctrl-C stops a reply and returns to the prompt, as llama-cli does.

use std::io::{BufRead, Write};
use std::time::Instant;

use ember_runtime::generate::{Finish, Generator};
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::Model;

use super::run::{parse_n_predict, SamplingArgs};
use super::shared::{describe_kernels, explicit_ctx, fault_in, threads, ModelArg};
use super::CmdResult;
use crate::chat_template::Prompter;
use crate::model_source::{open_model, SourceArgs};

const HELP: &str = "  /help    this list
  /reset   start the conversation over (the system prompt stays)
  /quit    leave (also /exit, Ctrl-D on an empty line, or Ctrl-C at the prompt)
  a line ending in \\ continues on the next line (multi-line messages)
  Ctrl-C while the model replies stops the reply and returns to the prompt";

#[derive(clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Type a message and press Enter; an empty line is ignored. In the chat:\n\
  /help    the commands\n  /reset   start over\n  /quit    leave (or Ctrl-D)\n\
  a trailing \\ continues a message on the next line; Ctrl-C stops a reply.\n\
When the context fills, the oldest turns are dropped (the system prompt is kept), with a note.\n\n\
Examples:\n  ember chat smollm2.ember\n  ember chat -m smollm2.ember --system \"Answer in one sentence.\" --temp 0.3 -c 4096\n  echo \"What is the capital of France?\" | ember chat smollm2.ember --temp 0\n  ember chat ./SmolLM2-135M-Instruct   # a Hugging Face directory, converted once and cached"
)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArg,
    /// System prompt (default: the one the model's template inserts, if any).
    #[arg(long, visible_alias = "system-prompt")]
    pub system: Option<String>,
    /// Maximum tokens per reply; -1: no limit but the context.
    #[arg(
        short = 'n',
        long = "n-predict",
        visible_alias = "predict",
        default_value_t = 512
    )]
    pub n: i64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Conversation length in tokens (KV cache positions); default 2048, or 0: the model's
    /// context length if smaller.
    #[arg(short = 'c', long, visible_alias = "ctx-size")]
    pub ctx: Option<usize>,
    /// Worker threads (default or 0: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub cache: crate::cmd::shared::CacheTypeArgs,
    /// Also say which kernels run, the context and the threads (on stderr).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// The conversation: messages as (role, content), the system prompt (if any) first.
type Messages = Vec<(String, String)>;

/// Drops the oldest turn after the system prompt (a user message and the reply to it), never
/// the last message. Returns how many messages went.
fn drop_oldest_turn(messages: &mut Messages) -> usize {
    let start = usize::from(messages.first().is_some_and(|m| m.0 == "system"));
    if messages.len() <= start + 1 {
        return 0;
    }
    messages.remove(start);
    let mut dropped = 1;
    while messages.len() > start + 1 && messages[start].0 == "assistant" {
        messages.remove(start);
        dropped += 1;
    }
    dropped
}

/// Reads one message: lines ending in `\` continue it. `None` at end of input.
fn read_message(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    interactive: bool,
) -> Result<Option<String>, String> {
    let mut message = String::new();
    loop {
        if interactive {
            eprint!("{}", if message.is_empty() { "> " } else { ". " });
        }
        let Some(line) = lines.next() else {
            return Ok((!message.is_empty()).then_some(message));
        };
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => "stdin: not valid UTF-8 text".to_string(),
            _ => format!("reading stdin: {e}"),
        })?;
        match line.strip_suffix('\\') {
            Some(part) => {
                message.push_str(part);
                message.push('\n');
            }
            None => {
                message.push_str(&line);
                return Ok(Some(message));
            }
        }
    }
}

pub fn run(args: Args) -> CmdResult {
    let sampling = args.sampling.config()?;
    let budget = parse_n_predict(args.n)?;
    let model_path = args.model.path()?;
    let load_start = Instant::now();
    let loaded = open_model(model_path, args.source.no_cache)?;
    fault_in(loaded.bytes());
    let file = loaded.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;
    let load_s = load_start.elapsed().as_secs_f64();
    let prompter = Prompter::new(&tokenizer, &model_path.display().to_string());
    let system = args.system.clone();
    // The end-of-turn text stops a reply even where it is not an end-of-generation token.
    let end_of_turn = prompter.end_of_turn();
    let stops: Vec<&str> = end_of_turn.iter().map(String::as_str).collect();
    let context = model.config.context_length;
    let capacity = explicit_ctx(args.ctx, context)?.unwrap_or(context.min(2048));
    let threads = threads(args.threads);
    let mut session = args.cache.session(&model, capacity)?;
    session.set_threads(threads);
    if args.verbose {
        eprintln!("kernels: {}", describe_kernels(session.kernels(), &file));
        eprintln!(
            "load {:.2} ms; context {capacity} of {context} positions, {threads} threads",
            load_s * 1e3
        );
    }
    let mut gen = Generator::new(&mut session, &tokenizer, sampling, &stops);

    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive {
        eprintln!(
            "ember chat: {capacity} tokens of context. Enter sends; end a line with \\ to continue it; \
             /help, /reset, /quit; Ctrl-C stops a reply, Ctrl-D exits."
        );
    }
    sigint::install();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let first_messages = || -> Messages {
        system
            .iter()
            .map(|s| ("system".to_string(), s.clone()))
            .collect()
    };
    let mut messages = first_messages();
    // The rendered text whose tokens fill the KV cache, when they are exactly that text's.
    let mut cached: Option<String> = None;
    // Room a new message must leave for the reply before older turns are dropped.
    let reserve = budget.unwrap_or(capacity).min(capacity / 4);
    loop {
        let Some(message) = read_message(&mut lines, interactive)? else {
            if interactive {
                eprintln!();
            }
            break;
        };
        let message = message.trim();
        match message {
            "" => continue,
            "/quit" | "/exit" => break,
            "/help" => {
                eprintln!("{HELP}");
                continue;
            }
            "/reset" => {
                gen.session.reset();
                gen.history.clear();
                messages = first_messages();
                cached = None;
                eprintln!("(conversation reset)");
                continue;
            }
            m if m.starts_with('/')
                && m.len() > 1
                && m[1..].bytes().all(|b| b.is_ascii_lowercase()) =>
            {
                eprintln!("(unknown command {m}; /help lists the commands)");
                continue;
            }
            _ => {}
        }

        // The whole conversation is rendered each turn, as the template would render it; the
        // cache keeps what is unchanged, so only the new text is fed. Where the template
        // rewrites an earlier turn (Qwen3 drops past reasoning, Llama 3 and Gemma trim
        // replies), the conversation is fed again from the start. Where it would not leave
        // room for a reply, the oldest turns go.
        messages.push(("user".to_string(), message.to_string()));
        let mut dropped = 0;
        let fitted = loop {
            let text = match prompter.render(&messages) {
                Ok(text) => text,
                Err(e) => break Err(format!("(chat template: {e})")),
            };
            let (ids, restart) = match cached.as_deref().and_then(|c| text.strip_prefix(c)) {
                Some(rest) if !rest.is_empty() => (prompter.encode(&tokenizer, rest, false), false),
                _ => (prompter.encode(&tokenizer, &text, true), true),
            };
            let needed = if restart { 0 } else { gen.session.position() } + ids.len();
            if needed + reserve <= capacity {
                break Ok((text, ids, restart));
            }
            match drop_oldest_turn(&mut messages) {
                0 if needed < capacity => break Ok((text, ids, restart)),
                0 => {
                    break Err(format!(
                        "(this message needs {needed} tokens but the context holds {capacity}: \
                         shorten it, or raise --ctx up to {context})"
                    ))
                }
                n => {
                    dropped += n;
                    cached = None;
                }
            }
        };
        let (mut text, ids, restart) = match fitted {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{e}");
                messages.pop();
                continue;
            }
        };
        if dropped > 0 {
            eprintln!(
                "(context full: dropped the {dropped} oldest messages{})",
                if system.is_some() {
                    "; the system prompt is kept"
                } else {
                    ""
                }
            );
        }
        if restart {
            gen.session.reset();
            gen.history.clear();
        }
        sigint::replying(true);
        let start = Instant::now();
        gen.prefill(&ids)?;
        let prompt_s = start.elapsed().as_secs_f64();
        let prompt_n = ids.len();
        let mut fed = gen.session.position();
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut reply = String::new();
        let mut n = 0;
        // Tokens of the reply fed since the last (re)fill of the cache.
        let mut n_since = 0;
        let mut interrupted = false;
        let mut note = None;
        let gen_start = Instant::now();
        let mut passes = 0;
        while budget.is_none_or(|b| n < b) {
            if sigint::interrupted() {
                interrupted = true;
                break;
            }
            let mut emit = |t: &str| {
                reply.push_str(t);
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            };
            match gen.next(&mut emit)? {
                Some(_) => {
                    n += 1;
                    n_since += 1;
                }
                None => {
                    if gen.finish_reason() != Some(Finish::Context) {
                        break;
                    }
                    // Mid-reply: drop the oldest turns and feed the conversation and the
                    // reply so far again, then go on.
                    passes += gen.steps;
                    let mut gone = 0;
                    let refill = loop {
                        let k = drop_oldest_turn(&mut messages);
                        if k == 0 {
                            break None;
                        }
                        gone += k;
                        let Ok(t) = prompter.render(&messages) else {
                            break None;
                        };
                        let ids = prompter.encode(&tokenizer, &format!("{t}{reply}"), true);
                        if ids.len() + capacity / 4 <= capacity {
                            break Some((t, ids));
                        }
                    };
                    let Some((t, ids)) = refill else {
                        note = Some(format!(
                            "(context full: the reply is cut; /reset, or raise --ctx up to {context})"
                        ));
                        break;
                    };
                    eprint!("\n(context full: dropped the {gone} oldest messages and went on)\n");
                    gen.session.reset();
                    gen.history.clear();
                    gen.prefill(&ids)?;
                    gen.steps = 0;
                    text = t;
                    fed = gen.session.position();
                    n_since = 0;
                }
            }
        }
        let mut emit = |t: &str| {
            reply.push_str(t);
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        };
        let why = gen.finish(&mut emit);
        sigint::replying(false);
        drop(out);
        println!();
        passes += gen.steps;
        gen.steps = 0;
        if interrupted {
            eprintln!("(interrupted)");
        }
        if let Some(note) = note {
            eprintln!("{note}");
        }
        // The cache holds the reply's tokens but not the one that ended it (end of generation)
        // or was cut at the budget after being fed; other endings leave it out of step.
        let in_step = match why {
            Finish::EndOfText => gen.session.position() + 1 == fed + n_since,
            Finish::Length => gen.session.position() == fed + n_since,
            _ => false,
        };
        cached = in_step.then(|| text + &reply);
        messages.push(("assistant".to_string(), reply));
        let secs = gen_start.elapsed().as_secs_f64();
        if interactive || args.verbose {
            let rate = |k: usize, s: f64| if k == 0 { 0.0 } else { k as f64 / s.max(1e-9) };
            eprintln!(
                "(prompt {prompt_n} tokens, {:.1} tok/s; reply {n} tokens, {:.1} tok/s{})",
                rate(prompt_n, prompt_s),
                rate(passes, secs),
                if why == Finish::Length && !interrupted {
                    "; cut at -n"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// Ctrl-C: while a reply is generated it sets a flag the generation loop reads (the reply
/// stops, the chat goes on); at the prompt it ends the process with status 130, as a shell
/// expects of SIGINT.
#[cfg(unix)]
mod sigint {
    use std::sync::atomic::{AtomicBool, Ordering};

    static REPLYING: AtomicBool = AtomicBool::new(false);
    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigint(_: libc::c_int) {
        if REPLYING.load(Ordering::SeqCst) {
            INTERRUPTED.store(true, Ordering::SeqCst);
        } else {
            // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is static.
            unsafe {
                libc::write(2, c"\n".as_ptr().cast(), 1);
                libc::_exit(130);
            }
        }
    }

    pub fn install() {
        // SAFETY: a zeroed sigaction is valid (no flags, empty mask once sigemptyset has run);
        // the handler only touches atomics and async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        }
    }

    /// Marks the start (true) or end of a reply; a new reply starts uninterrupted.
    pub fn replying(on: bool) {
        INTERRUPTED.store(false, Ordering::SeqCst);
        REPLYING.store(on, Ordering::SeqCst);
    }

    pub fn interrupted() -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}

#[cfg(not(unix))]
mod sigint {
    pub fn install() {}
    pub fn replying(_: bool) {}
    pub fn interrupted() -> bool {
        false
    }
}
