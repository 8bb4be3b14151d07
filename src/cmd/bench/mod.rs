//! `ember bench`: without a model, each kernel's throughput beside the machine's measured
//! memory bandwidth and peak compute (a roofline); with a model, prompt processing and
//! generation tokens/s like llama-bench (median of repetitions).

mod kernels;
mod model;
mod roofline;

use std::path::PathBuf;

use super::CmdResult;
use crate::model_source::SourceArgs;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  ember bench                       # kernels vs. memory bandwidth and peak compute\n  ember bench --json\n  ember bench smollm2.ember -p 128 -n 64 -t 2 -r 5\n  ember bench smollm2.ember -p 0 -n 64 -d 4000 --ctk f16 --ctv f16   # generation at depth 4000\n  ember bench SmolLM2-135M-Instruct.Q4_1.gguf   # converted once, cached in ~/.cache/ember\n  ember bench --dtypes q4_k,q6_k -r 3        # some kernels only\n  EMBER_KERNELS=avx2 ember bench smollm2.ember --json"
)]
pub struct Args {
    /// A model to benchmark (a .ember file, or a GGUF file or Hugging Face directory,
    /// converted with --quant same on first use and cached); without it, the kernels are measured.
    pub model: Option<PathBuf>,
    /// Prompt tokens to process (model benchmark).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    pub prompt: usize,
    /// Tokens to generate (model benchmark).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    pub gen: usize,
    /// Positions already in the context before each test, fed untimed (llama-bench's -d):
    /// prompt and generation speed at that depth.
    #[arg(short = 'd', long = "n-depth", default_value_t = 0)]
    pub depth: usize,
    /// Threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub cache: crate::cmd::shared::CacheTypeArgs,
    /// Repetitions; the median is reported.
    #[arg(short = 'r', long, default_value_t = 5)]
    pub reps: usize,
    /// Kernel benchmark: only these dtypes (comma-separated, e.g. q4_k,q6_k; default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_dtype)]
    pub dtypes: Vec<ember_format::DType>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run(args: Args) -> CmdResult {
    if args.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let threads = match args.threads {
        Some(0) | None => ember_runtime::pool::ThreadPool::available(),
        Some(t) => t,
    };
    match &args.model {
        Some(path) => model::run(path, &args, threads),
        None => kernels::run(&args, threads),
    }
}

fn parse_dtype(s: &str) -> Result<ember_format::DType, String> {
    ember_format::DType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = ember_format::DType::ALL.iter().map(|d| d.name()).collect();
        format!("unknown dtype '{s}' (choose from: {})", names.join(", "))
    })
}

/// Median of measurements (sorted copy).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}
