//! `ember run MODEL -p TEXT`: generate text from a prompt, streaming it to stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use ember_runtime::generate::Generator;
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{Model, SamplerConfig, Session};
use serde_json::json;

use super::CmdResult;
use crate::chat_template::Prompter;
use crate::model_source::{open_model, SourceArgs};

/// Sampling flags shared by `run` and `chat`.
#[derive(clap::Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1: off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens below P times the best token's probability (0: off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalize the last 64 tokens (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Random seed: the same seed gives the same output.
    #[arg(long, default_value_t = 0x5EED)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn config(&self) -> Result<SamplerConfig, String> {
        let ok = self.temperature >= 0.0
            && self.temperature.is_finite()
            && (0.0..=1.0).contains(&self.top_p)
            && (0.0..=1.0).contains(&self.min_p)
            && self.repeat_penalty > 0.0;
        if !ok {
            return Err(
                "sampling: need --temp >= 0, --top-p and --min-p in [0, 1], --repeat-penalty > 0"
                    .into(),
            );
        }
        Ok(SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: 64,
            seed: self.seed,
        })
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  ember run smollm2.ember -p \"Once upon a time\" -n 64\n  ember run smollm2.ember --chat -p \"Write a haiku about the sea.\"\n  ember run smollm2.ember -p \"2+2=\" --temp 0 --json\n  ember run model.ember --prompt-ids 1,450,4996 -n 16 --temp 0\n  ember run SmolLM2-135M-Instruct.Q4_1.gguf -p \"Hello\"   # converted once, cached in ~/.cache/ember"
)]
pub struct Args {
    /// The model: a .ember file, or a GGUF file or Hugging Face directory (converted with
    /// --quant same on first use and cached; see --no-cache).
    pub model: PathBuf,
    /// Prompt text (special tokens such as <|im_start|> are recognized).
    #[arg(short = 'p', long, group = "prompt_source")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long = "file", group = "prompt_source")]
    pub prompt_file: Option<PathBuf>,
    /// The prompt as token ids, e.g. 1,2,3.
    #[arg(long, group = "prompt_source", value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,
    /// Wrap the prompt as one user message in the model's chat template (its own Jinja
    /// template, rendered as transformers does; ChatML, with a note, if the file has none).
    #[arg(long)]
    pub chat: bool,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    pub n: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Stop when this text is generated (repeatable).
    #[arg(long = "stop")]
    pub stops: Vec<String>,
    /// KV cache positions (default: prompt + n, up to the model's context length).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(args: Args) -> CmdResult {
    let sampling = args.sampling.config()?;
    let loaded = open_model(&args.model, args.source.no_cache)?;
    let file = loaded.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;

    let mut stops: Vec<String> = args.stops.clone();
    let prompt_ids: Vec<u32> = match (&args.prompt, &args.prompt_file, &args.prompt_ids) {
        (_, _, Some(ids)) => ids.clone(),
        (Some(text), _, _) if args.chat => {
            let (ids, end) = chat_prompt(&tokenizer, &args.model, text)?;
            stops.extend(end);
            ids
        }
        (Some(text), _, _) => encode(&tokenizer, text),
        (_, Some(path), _) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: the prompt file is not valid UTF-8", path.display()))?;
            encode(&tokenizer, &text)
        }
        _ => return Err("give a prompt: -p TEXT, -f FILE or --prompt-ids 1,2,3".into()),
    };
    if prompt_ids.is_empty() {
        return Err("the prompt is empty (it encodes to no tokens)".into());
    }
    let context = model.config.context_length;
    let capacity = match args.ctx {
        Some(c) => c,
        None => (prompt_ids.len() + args.n).min(context),
    };
    if prompt_ids.len() > capacity {
        return Err(format!(
            "the prompt is {} tokens but the context holds {capacity} (model maximum {context})",
            prompt_ids.len()
        )
        .into());
    }
    let mut session = Session::new(&model, capacity)?;
    session.set_threads(args.threads.unwrap_or(0));
    let stops: Vec<&str> = stops.iter().map(String::as_str).collect();
    let mut gen = Generator::new(&mut session, &tokenizer, sampling, &stops);

    let start = Instant::now();
    gen.prefill(&prompt_ids)?;
    let prefill_s = start.elapsed().as_secs_f64();

    let mut text = String::new();
    let mut ids = Vec::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let json = args.json;
    let mut emit = |t: &str| {
        if json {
            text.push_str(t);
        } else {
            let _ = out.write_all(t.as_bytes());
            let _ = out.flush();
        }
    };
    let start = Instant::now();
    while ids.len() < args.n {
        match gen.next(&mut emit)? {
            Some(id) => ids.push(id),
            None => break,
        }
    }
    gen.finish(&mut emit);
    let decode_s = start.elapsed().as_secs_f64();

    let prefill_tok_s = prompt_ids.len() as f64 / prefill_s.max(1e-9);
    // The first generated token comes from the prefill's logits: decode speed counts the
    // forward passes made in the loop.
    let decode_tok_s = ids.len() as f64 / decode_s.max(1e-9);
    if args.json {
        let obj = json!({
            "prompt_ids": prompt_ids,
            "ids": ids,
            "text": text,
            "prefill_tok_s": prefill_tok_s,
            "decode_tok_s": decode_tok_s,
        });
        println!("{obj}");
    } else {
        println!();
        eprintln!(
            "prompt {} tokens, prefill {:.1} tok/s, decode {:.1} tok/s ({} tokens)",
            prompt_ids.len(),
            prefill_tok_s,
            decode_tok_s,
            ids.len()
        );
    }
    Ok(())
}

/// One user turn in the model's chat template (rendered as transformers renders it; the
/// built-in ChatML for a file without one) and the template's end-of-turn text, which stops
/// the reply.
fn chat_prompt(
    tokenizer: &Tokenizer,
    model: &std::path::Path,
    user: &str,
) -> Result<(Vec<u32>, Option<String>), String> {
    let prompter = Prompter::new(tokenizer, &model.display().to_string());
    let text = prompter
        .render(&[("user", user)])
        .map_err(|e| format!("chat template: {e}"))?;
    Ok((
        prompter.encode(tokenizer, &text, true),
        prompter.end_of_turn(),
    ))
}

pub fn encode(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    let mut ids = Vec::new();
    tokenizer.encode(text, &mut ids);
    ids
}
