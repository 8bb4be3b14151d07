//! `ember train`: train a Llama-style model from text (and `ember train prepare`).
use std::path::PathBuf;

use ember_train::bpe::TokenizerKind;
use ember_train::data::{Normalization, PrepareOptions};
use ember_train::train::{prepare_to_dir, train, TrainOptions};

use super::CmdResult;

const EXAMPLE: &str = "Example (nanoGPT's CPU baby GPT on tiny Shakespeare, character level):
  ember train --data ../shared/data/tinyshakespeare.txt --out runs/shakespeare \\
      --tokenizer char --layers 4 --heads 4 --dim 128 --ffn 344 --ctx 64 --batch 12 \\
      --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99

  ember train prepare --data corpus/ --out prepared/   (data preparation only)

DIR receives model.safetensors, config.json, tokenizer.json (Hugging Face layout),
optimizer.safetensors + trainer_state.json (for --resume), loss.csv, loss.svg, metrics.json.";

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, after_help = EXAMPLE)]
pub struct Args {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Only prepare the data: normalize, clean, deduplicate, split; write DIR/train.txt,
    /// DIR/val.txt and DIR/prepare.json.
    Prepare(PrepareArgs),
}

#[derive(clap::Args)]
struct DataArgs {
    /// A text file (one document) or a directory of text files (one document each).
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Unicode normalization: nfc, nfkc or none.
    #[arg(long, default_value = "nfc")]
    normalize: Normalization,
    /// Near-duplicate documents: MinHash Jaccard threshold (above 1 disables).
    #[arg(long, default_value_t = 0.8)]
    near_dup: f64,
    /// Drop repeated lines of at least this many characters (0 keeps every line).
    #[arg(long, default_value_t = 0)]
    dedup_lines: usize,
    /// Fraction of the data held out for validation (by document; the tail of a single document).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Seed for the split, the initialization and the batches.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Overwrite a non-empty output directory.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct PrepareArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Also train this tokenizer (`char` or `bpe:VOCAB`) on the training split, save it as
    /// DIR/tokenizer.json and report tokens per split.
    #[arg(long)]
    tokenizer: Option<TokenizerKind>,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Tokenizer: `char` or `bpe:VOCAB` (byte-level BPE, VOCAB >= 256).
    #[arg(long, default_value = "char")]
    tokenizer: TokenizerKind,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Key/value heads (grouped-query attention); defaults to --heads.
    #[arg(long)]
    kv_heads: Option<usize>,
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// SwiGLU hidden width (344 matches the parameters of a 4x GELU MLP at dim 128).
    #[arg(long, default_value_t = 344)]
    ffn: usize,
    /// Context length in tokens.
    #[arg(long, default_value_t = 64)]
    ctx: usize,
    /// Share the embedding matrix with the output layer.
    #[arg(long)]
    tie_embeddings: bool,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 12)]
    batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Total optimizer steps (a resumed run continues up to this).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Learning rate at the end of the cosine decay.
    #[arg(long, default_value_t = 1e-4)]
    min_lr: f32,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// AdamW decoupled weight decay (2-D weights only).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0.99)]
    beta2: f32,
    /// Clip the global gradient norm to this (0 disables).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f32,
    /// Evaluate and checkpoint every N steps (0: only at the end).
    #[arg(long, default_value_t = 250)]
    eval_every: usize,
    /// Batches of validation data per evaluation.
    #[arg(long, default_value_t = 20)]
    eval_batches: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Order of the Kneser-Ney n-gram baseline (1 to 4).
    #[arg(long, default_value_t = 4)]
    ngram_order: usize,
    /// Continue the run saved in DIR (model, optimizer state, step, RNG).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

fn prepare_options(d: &DataArgs) -> PrepareOptions {
    PrepareOptions {
        normalization: d.normalize,
        near_dup_threshold: d.near_dup,
        dedup_lines_min_chars: d.dedup_lines,
        val_fraction: d.val_fraction,
        seed: d.seed,
    }
}

pub fn run(args: Args) -> CmdResult {
    if let Some(Sub::Prepare(p)) = args.sub {
        let d = &p.data;
        let (Some(data), Some(out)) = (&d.data, &d.out) else {
            return Err("`ember train prepare` needs --data PATH and --out DIR".into());
        };
        let report = prepare_to_dir(
            data,
            out,
            &prepare_options(d),
            p.tokenizer.as_ref(),
            d.force,
        )?;
        eprintln!("{}", report.summary());
        return Ok(());
    }
    let a = args.train;
    let Some(data) = a.data.data.clone() else {
        return Err(
            "`ember train` needs --data PATH (a text file or a directory of them); see --help"
                .into(),
        );
    };
    let Some(out) = a.data.out.clone().or_else(|| a.resume.clone()) else {
        return Err("`ember train` needs --out DIR".into());
    };
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if threads == 0 || threads > 1024 {
        return Err("--threads must be between 1 and 1024".into());
    }
    // The trainer parallelizes over sequences itself; matrixmultiply's own threads would
    // oversubscribe the cores. Set before the first GEMM reads it, while single-threaded.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    let opts = TrainOptions {
        data,
        out,
        prepare: prepare_options(&a.data),
        tokenizer: a.tokenizer,
        layers: a.layers,
        heads: a.heads,
        kv_heads: a.kv_heads.unwrap_or(a.heads),
        dim: a.dim,
        ffn: a.ffn,
        ctx: a.ctx,
        tie_embeddings: a.tie_embeddings,
        batch: a.batch,
        grad_accum: a.grad_accum,
        steps: a.steps,
        lr: a.lr,
        min_lr: a.min_lr,
        warmup: a.warmup,
        weight_decay: a.weight_decay,
        beta2: a.beta2,
        grad_clip: a.grad_clip,
        eval_every: a.eval_every,
        eval_batches: a.eval_batches,
        seed: a.data.seed,
        threads,
        ngram_order: a.ngram_order,
        resume: a.resume,
        force: a.data.force,
        quiet: a.quiet,
    };
    train(&opts)?;
    Ok(())
}
