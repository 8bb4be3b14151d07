//! `ember chat MODEL`: an interactive multi-turn chat using the model's chat template.
//! The KV cache keeps the conversation, so each turn only processes the new text.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use ember_runtime::chat::{default_system_prompt, ChatFormat, Role};
use ember_runtime::generate::{Finish, Generator};
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{MappedFile, Model, Session};

use super::run::SamplingArgs;
use super::CmdResult;

#[derive(clap::Args)]
#[command(
    after_help = "Type a message and press Enter; an empty line is ignored, /reset starts over, /quit or end of input (Ctrl-D) leaves.\n\nExamples:\n  ember chat smollm2.ember\n  ember chat smollm2.ember --system \"Answer in one sentence.\" --temp 0.3\n  echo \"What is the capital of France?\" | ember chat smollm2.ember --temp 0"
)]
pub struct Args {
    /// The .ember model.
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
}

pub fn run(args: Args) -> CmdResult {
    let sampling = args.sampling.config()?;
    let mapped = MappedFile::open(&args.model)?;
    let file = mapped.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;
    let template = tokenizer.chat_template();
    let format = ChatFormat::detect(template);
    let system = args
        .system
        .clone()
        .or_else(|| template.and_then(default_system_prompt).map(str::to_string));
    let capacity = args.ctx.min(model.config.context_length);
    let mut session = Session::new(&model, capacity)?;
    session.set_threads(args.threads.unwrap_or(0));
    let mut gen = Generator::new(&mut session, &tokenizer, sampling, &[]);

    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut first_turn = true;
    let mut unfed_end: Option<u32> = None;
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
                first_turn = true;
                unfed_end = None;
                eprintln!("(conversation reset)");
                continue;
            }
            _ => {}
        }

        // The new text: close the previous reply, then the user's turn and the reply opener.
        let mut text = String::new();
        if first_turn {
            if let Some(s) = &system {
                format.push_message(&mut text, Role::System, s);
            }
        } else if unfed_end.is_none() {
            text.push_str(format.end_of_turn());
        }
        if !first_turn && format == ChatFormat::ChatMl {
            text.push('\n');
        }
        format.push_message(&mut text, Role::User, message);
        format.push_generation_prompt(&mut text);
        let mut ids: Vec<u32> = unfed_end.take().into_iter().collect();
        let mut encoded = Vec::new();
        tokenizer.encode(&text, &mut encoded);
        if !first_turn
            && format != ChatFormat::Llama2
            && encoded.first() == tokenizer.bos_id().as_ref()
        {
            encoded.remove(0);
        }
        ids.extend(encoded);
        first_turn = false;

        let needed = gen.session.position() + ids.len();
        if needed >= gen.session.capacity() {
            eprintln!(
                "(the conversation is full: {needed} of {} tokens; /reset to start over, or raise --ctx)",
                gen.session.capacity()
            );
            continue;
        }
        let start = Instant::now();
        gen.prefill(&ids)?;
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut emit = |t: &str| {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        };
        let mut n = 0;
        let mut last = None;
        while n < args.n {
            match gen.next(&mut emit)? {
                Some(id) => {
                    n += 1;
                    last = Some(id);
                }
                None => break,
            }
        }
        let why = gen.finish(&mut emit);
        println!();
        if why == Finish::EndOfText {
            unfed_end = last;
        }
        let secs = start.elapsed().as_secs_f64();
        if interactive {
            eprintln!("({n} tokens, {:.1} tok/s)", n as f64 / secs.max(1e-9));
        }
    }
    Ok(())
}
