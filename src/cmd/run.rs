//! `ember run MODEL -p TEXT`: generate text from a prompt, streaming it to stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use ember_runtime::generate::{Finish, Generator};
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{Model, SamplerConfig};
use serde_json::json;

use super::shared::{describe_kernels, explicit_ctx, fault_in, read_text, threads, ModelArg};
use super::CmdResult;
use crate::chat_template::Prompter;
use crate::model_source::{open_model, SourceArgs};

/// Sampling flags shared by `run` and `chat`.
#[derive(clap::Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Temperature; 0 (or, as in llama.cpp, a negative value) is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0 or negative: all).
    #[arg(long, default_value_t = 40)]
    pub top_k: i64,
    /// Nucleus sampling threshold in [0, 1] (1: off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens below P times the best token's probability, P in [0, 1] (0: off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Penalize the last 64 tokens, > 0 (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Random seed: the same seed gives the same output (default or -1: a random seed,
    /// printed so that the run can be repeated).
    #[arg(short = 's', long, allow_negative_numbers = true)]
    pub seed: Option<i64>,
}

impl SamplingArgs {
    /// The sampler's configuration, with a random seed where none (or -1) was given; each
    /// wrong value is named with its flag.
    pub fn config(&self) -> Result<SamplerConfig, String> {
        let t = self.temperature;
        if t.is_nan() {
            return Err("--temp must be a number, got NaN".into());
        }
        for (flag, v) in [("--top-p", self.top_p), ("--min-p", self.min_p)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{flag} must be in [0, 1], got {v}"));
            }
        }
        let r = self.repeat_penalty;
        if !(r > 0.0 && r.is_finite()) {
            return Err(format!("--repeat-penalty must be > 0, got {r}"));
        }
        let seed = match self.seed {
            None | Some(-1) => random_seed(),
            Some(s) if s >= 0 => s as u64,
            Some(s) => {
                return Err(format!(
                    "--seed must be >= 0, or -1 for a random seed, got {s}"
                ))
            }
        };
        Ok(SamplerConfig {
            temperature: if t > 0.0 { t } else { 0.0 },
            top_k: usize::try_from(self.top_k).unwrap_or(0),
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: r,
            repeat_last_n: 64,
            seed,
        })
    }
}

/// A seed from the process's random hasher keys (no RNG crate): 32 bits, as llama.cpp's.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() & 0xFFFF_FFFF
}

/// `-n`: a token count, or -1 for "until the end of text or a full context" (llama.cpp's).
pub fn parse_n_predict(n: i64) -> Result<Option<usize>, String> {
    match n {
        -1 => Ok(None),
        n if n >= 0 => usize::try_from(n)
            .map(Some)
            .map_err(|_| format!("-n {n} is too large")),
        n => Err(format!(
            "-n must be >= 0, or -1 to generate until the context is full, got {n}"
        )),
    }
}

#[derive(clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Examples:\n  ember run smollm2.ember -p \"Once upon a time\" -n 64\n  ember run -m smollm2.ember -p \"Hello\" -c 512 -s 42 --temp 0.7   # llama.cpp's flags\n  ember run smollm2.ember --chat -p \"Write a haiku about the sea.\"\n  echo \"What is 2+2?\" | ember run smollm2.ember --chat -f -\n  ember run smollm2.ember -p \"2+2=\" --temp 0 --json\n  ember run smollm2.ember --prompt-ids 6403,1980,253,655 -n 16 --temp 0   # SmolLM2 ids of \"Once upon a time\"\n  ember run SmolLM2-135M-Instruct.Q4_1.gguf -p \"Hello\"   # converted once, cached in ~/.cache/ember\n\nStats (load, prompt and generation times) and why generation stopped go to stderr; see docs/CLI.md."
)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArg,
    /// Prompt text (special tokens such as <|im_start|> are recognized).
    #[arg(short = 'p', long, group = "prompt_source")]
    pub prompt: Option<String>,
    /// Read the prompt from a file (UTF-8); - reads stdin.
    #[arg(short = 'f', long = "file", group = "prompt_source")]
    pub prompt_file: Option<PathBuf>,
    /// The prompt as token ids, e.g. 1,2,3 (fed as they are: not with --chat).
    #[arg(long, group = "prompt_source", value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,
    /// Wrap the prompt (-p or -f) as one user message in the model's chat template (its own
    /// Jinja template, rendered as transformers does; ChatML, with a note, if the file has none).
    #[arg(long, conflicts_with = "prompt_ids")]
    pub chat: bool,
    /// Tokens to generate; -1: until the end of text or a full context.
    #[arg(
        short = 'n',
        long = "n-predict",
        visible_alias = "predict",
        default_value_t = 128
    )]
    pub n: i64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Stop when this text is generated (repeatable).
    #[arg(long = "stop")]
    pub stops: Vec<String>,
    /// KV cache positions (default or 0: prompt + n, up to the model's context length).
    #[arg(short = 'c', long, visible_alias = "ctx-size")]
    pub ctx: Option<usize>,
    /// Worker threads (default or 0: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub cache: crate::cmd::shared::CacheTypeArgs,
    /// Print one JSON object instead of streaming text (fields: docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// Also say which kernels run, the context and the threads (on stderr).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// The `--json` schema version: bumped when a field changes meaning or goes away.
pub const JSON_SCHEMA: u32 = 1;

pub fn run(args: Args) -> CmdResult {
    let sampling = args.sampling.config()?;
    let n_predict = parse_n_predict(args.n)?;
    let model_path = args.model.path()?;

    let load_start = Instant::now();
    let loaded = open_model(model_path, args.source.no_cache)?;
    fault_in(loaded.bytes());
    let file = loaded.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;
    let load_s = load_start.elapsed().as_secs_f64();

    let mut stops: Vec<String> = args.stops.clone();
    let text = match (&args.prompt, &args.prompt_file) {
        (Some(text), _) => Some(text.clone()),
        (_, Some(path)) => Some(read_text(path)?),
        _ => None,
    };
    let prompt_ids: Vec<u32> = match (&text, &args.prompt_ids) {
        (_, Some(ids)) => ids.clone(),
        (Some(text), _) if args.chat => {
            let (ids, end) = chat_prompt(&tokenizer, model_path, text)?;
            stops.extend(end);
            ids
        }
        (Some(text), _) => encode(&tokenizer, text),
        _ => {
            return Err(
                "give a prompt: -p TEXT, -f FILE (- for stdin) or --prompt-ids 1,2,3".into(),
            )
        }
    };
    if prompt_ids.is_empty() {
        return Err("the prompt is empty (it encodes to no tokens)".into());
    }
    let context = model.config.context_length;
    let capacity = match explicit_ctx(args.ctx, context)? {
        Some(c) => c,
        None => match n_predict {
            Some(n) => prompt_ids.len().saturating_add(n).min(context),
            None => context,
        },
    };
    if prompt_ids.len() > capacity {
        let why = if args.ctx.is_some_and(|c| c > 0) {
            format!("--ctx {capacity} holds only {capacity} (model maximum {context})")
        } else {
            format!("the model's context length is {context}")
        };
        return Err(format!("the prompt is {} tokens but {why}", prompt_ids.len()).into());
    }
    let threads = threads(args.threads);
    let mut session = args.cache.session(&model, capacity)?;
    session.set_threads(threads);
    let kernels = *session.kernels();
    if args.verbose {
        eprintln!("kernels: {}", describe_kernels(&kernels, &file));
        eprintln!(
            "context {capacity} of {context} positions, {threads} threads, prompt {} tokens",
            prompt_ids.len()
        );
    }
    let stops: Vec<&str> = stops.iter().map(String::as_str).collect();
    let mut gen = Generator::new(&mut session, &tokenizer, sampling, &stops);

    let start = Instant::now();
    gen.prefill(&prompt_ids)?;
    let prompt_s = start.elapsed().as_secs_f64();

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
    while n_predict.is_none_or(|n| ids.len() < n) {
        match gen.next(&mut emit)? {
            Some(id) => ids.push(id),
            None => break,
        }
    }
    let why = gen.finish(&mut emit);
    let gen_s = start.elapsed().as_secs_f64();
    let passes = gen.steps;

    let ms = |s: f64| s * 1e3;
    let rate = |n: usize, s: f64| if n == 0 { 0.0 } else { n as f64 / s.max(1e-9) };
    let greedy = sampling.temperature == 0.0;
    if args.json {
        let obj = json!({
            "schema_version": JSON_SCHEMA,
            "prompt_ids": prompt_ids,
            "ids": ids,
            "text": text,
            "stop_reason": why.name(),
            "seed": if greedy { None } else { Some(sampling.seed) },
            "ctx": capacity,
            "threads": threads,
            "kernels": kernels.level.name(),
            "timings": {
                "load_ms": ms(load_s),
                "prompt_n": prompt_ids.len(),
                "prompt_ms": ms(prompt_s),
                "prompt_per_second": rate(prompt_ids.len(), prompt_s),
                "predicted_n": ids.len(),
                "predicted_passes": passes,
                "predicted_ms": ms(gen_s),
                "predicted_per_second": rate(passes, gen_s),
            },
        });
        println!("{obj}");
    } else {
        drop(out);
        println!();
        let note = match why {
            Finish::EndOfText => "[end of text]".to_string(),
            Finish::StopString => "[stop string]".to_string(),
            Finish::Length => format!("[-n {} tokens generated]", ids.len()),
            Finish::Context => format!(
                "[context full: {capacity} positions{}]",
                if capacity < context {
                    format!("; raise --ctx, up to {context}")
                } else {
                    " (the model's maximum)".to_string()
                }
            ),
        };
        eprintln!("{note}");
        eprintln!("load       {:>9.2} ms", ms(load_s));
        eprintln!(
            "prompt     {:>9.2} ms / {:>5} tokens ({:>8.2} tokens/s)",
            ms(prompt_s),
            prompt_ids.len(),
            rate(prompt_ids.len(), prompt_s)
        );
        eprintln!(
            "generation {:>9.2} ms / {:>5} tokens ({:>8.2} tokens/s over {passes} forward passes; the first token comes from the prompt)",
            ms(gen_s),
            ids.len(),
            rate(passes, gen_s)
        );
        if !greedy {
            eprintln!(
                "seed {} (--seed {} repeats this run)",
                sampling.seed, sampling.seed
            );
        }
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
