//! `ember eval MODEL --text FILE`: perplexity like llama-perplexity (non-overlapping windows
//! of --ctx tokens, scoring the second half of each), and with `--reference` the KL
//! divergence from a reference model and how often both pick the same top token.

use std::path::PathBuf;

use ember_runtime::kv_cache::KvTypes;
use ember_runtime::tokenizer::Tokenizer;
use ember_runtime::{HeapSession as Session, Logits, Model};
use serde_json::json;

use super::progress::Progress;
use super::CmdResult;
use crate::model_source::{open_model, SourceArgs};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  ember eval smollm2-q4.ember --text data.txt --ctx 512\n  ember eval smollm2-q4.ember --text data.txt --reference smollm2-f32.ember --json\n  ember eval smollm2-q4.ember --text data.txt --reference ./SmolLM2-135M-Instruct   # HF directory, converted once and cached"
)]
pub struct Args {
    /// The model to evaluate: a .ember file, or a GGUF file or Hugging Face directory
    /// (converted with --quant same on first use and cached; see --no-cache).
    pub model: PathBuf,
    /// A UTF-8 text file.
    #[arg(long)]
    pub text: PathBuf,
    /// Tokens per window.
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// A reference model (same tokenizer) for KL divergence and top-1 agreement: a .ember,
    /// GGUF file or Hugging Face directory.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Stop after this many windows.
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub cache: crate::cmd::shared::CacheTypeArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Tokens per forward call while scoring (logits buffer: BATCH × vocabulary).
const BATCH: usize = 64;

/// A model ready to produce the scored logits of one window.
struct Scorer<'m, 'a> {
    session: Session<'m, 'a>,
    vocab: usize,
}

impl<'m, 'a> Scorer<'m, 'a> {
    fn new(
        model: &'m Model<'a>,
        ctx: usize,
        threads: usize,
        kv: KvTypes,
    ) -> Result<Self, ember_runtime::Error> {
        let mut session = Session::with_kv_types(model, ctx, BATCH, Logits::All, kv)?;
        session.set_threads(threads);
        Ok(Scorer {
            session,
            vocab: model.config.vocab_size,
        })
    }

    /// Runs `window`; calls `each(j, logits)` for every position j >= first with the
    /// logits (V) predicting token j + 1.
    fn window(
        &mut self,
        window: &[u32],
        first: usize,
        mut each: impl FnMut(usize, &[f32]),
    ) -> Result<(), ember_runtime::Error> {
        self.session.reset();
        // The first half needs no logits: the cheap path computes only the last position's.
        self.session.prefill(&window[..first])?;
        let mut pos = first;
        while pos < window.len() - 1 {
            let end = (pos + BATCH).min(window.len() - 1);
            let logits = self.session.forward_all(&window[pos..end])?;
            for (i, row) in logits.chunks_exact(self.vocab).enumerate() {
                each(pos + i, row);
            }
            pos = end;
        }
        Ok(())
    }
}

/// log-softmax of `logits` into `out`, in f64 for stable sums over large vocabularies.
fn log_softmax(logits: &[f32], out: &mut [f64]) {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    for (o, &v) in out.iter_mut().zip(logits) {
        *o = v as f64 - log_z;
    }
}

fn argmax(x: &[f32]) -> usize {
    ember_runtime::sampler::argmax(x) as usize
}

pub fn run(args: Args) -> CmdResult {
    if args.ctx < 4 {
        return Err("--ctx must be at least 4".into());
    }
    let threads = args.threads.unwrap_or(0);
    let loaded = open_model(&args.model, args.source.no_cache)?;
    let file = loaded.parse()?;
    let model = Model::load(&file)?;
    let tokenizer = Tokenizer::from_file(&file)?;
    if args.ctx > model.config.context_length {
        return Err(format!(
            "--ctx {} exceeds the model's context length {}",
            args.ctx, model.config.context_length
        )
        .into());
    }
    let bytes = std::fs::read(&args.text).map_err(|e| format!("{}: {e}", args.text.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{}: not valid UTF-8", args.text.display()))?;
    let mut tokens = Vec::new();
    tokenizer.encode(&text, &mut tokens);
    let mut windows = tokens.len() / args.ctx;
    if let Some(c) = args.chunks {
        windows = windows.min(c);
    }
    if windows == 0 {
        return Err(format!(
            "the text has {} tokens: fewer than one window of --ctx {}",
            tokens.len(),
            args.ctx
        )
        .into());
    }

    let ref_mapped = args
        .reference
        .as_ref()
        .map(|p| open_model(p, args.source.no_cache))
        .transpose()?;
    let ref_file = ref_mapped.as_ref().map(|m| m.parse()).transpose()?;
    let ref_model = ref_file.as_ref().map(Model::load).transpose()?;
    if let Some(r) = &ref_model {
        if r.config.vocab_size != model.config.vocab_size {
            return Err("the reference model has a different vocabulary".into());
        }
    }

    let v = model.config.vocab_size;
    let first = args.ctx / 2;
    let mut scorer = Scorer::new(&model, args.ctx, threads, args.cache.types())?;
    let mut ref_scorer = ref_model
        .as_ref()
        .map(|m| Scorer::new(m, args.ctx, threads, KvTypes::default()))
        .transpose()?;
    let (mut nll, mut scored) = (0f64, 0usize);
    let mut klds: Vec<f64> = Vec::new();
    let mut same_top = 0usize;
    let mut ref_rows: Vec<f32> = Vec::new();
    let (mut lp, mut lq) = (vec![0f64; v], vec![0f64; v]);
    let progress = Progress::new("eval", windows);
    for w in 0..windows {
        let mut window = tokens[w * args.ctx..(w + 1) * args.ctx].to_vec();
        // As llama-perplexity: a model that adds BOS sees it at the start of every window.
        if let (true, Some(bos)) = (tokenizer.adds_bos(), tokenizer.bos_id()) {
            window[0] = bos;
        }
        if let Some(rs) = ref_scorer.as_mut() {
            ref_rows.clear();
            rs.window(&window, first, |_, row| ref_rows.extend_from_slice(row))?;
        }
        scorer.window(&window, first, |j, row| {
            log_softmax(row, &mut lq);
            nll -= lq[window[j + 1] as usize];
            scored += 1;
            if ref_scorer.is_some() {
                let k = j - first;
                let ref_row = &ref_rows[k * v..(k + 1) * v];
                log_softmax(ref_row, &mut lp);
                let kld: f64 = lp.iter().zip(&lq).map(|(&p, &q)| p.exp() * (p - q)).sum();
                klds.push(kld.max(0.0));
                same_top += (argmax(ref_row) == argmax(row)) as usize;
            }
        })?;
        progress.update(
            w + 1,
            &format!("ppl {:.3}", (nll / scored.max(1) as f64).exp()),
        );
    }
    progress.finish();

    let ppl = (nll / scored as f64).exp();
    let (kld_mean, kld_p99, top1) = if klds.is_empty() {
        (None, None, None)
    } else {
        let mean = klds.iter().sum::<f64>() / klds.len() as f64;
        let mut sorted = klds.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let p99 = sorted[((sorted.len() as f64 * 0.99).ceil() as usize).clamp(1, sorted.len()) - 1];
        (
            Some(mean),
            Some(p99),
            Some(100.0 * same_top as f64 / klds.len() as f64),
        )
    };
    if args.json {
        println!(
            "{}",
            json!({ "ppl": ppl, "tokens": scored, "kld_mean": kld_mean, "kld_p99": kld_p99, "top1": top1 })
        );
    } else {
        println!(
            "perplexity {ppl:.4} over {scored} scored tokens ({windows} windows of {})",
            args.ctx
        );
        if let (Some(m), Some(p), Some(t)) = (kld_mean, kld_p99, top1) {
            println!(
                "KL divergence from the reference: mean {m:.6}, p99 {p:.6}; same top token {t:.2}%"
            );
        }
    }
    Ok(())
}
