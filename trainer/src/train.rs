//! The training run: data → tokenizer → model → AdamW loop with evaluation, checkpoints,
//! loss curve and metrics. Batches are split across worker threads by sequence (data
//! parallel); each worker has its own activations and gradients, summed in a fixed order.
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use crate::bpe::{Tokenizer, TokenizerKind};
use crate::checkpoint::{self, write_atomic, write_json, TrainState};
use crate::data::{self, PrepareOptions, PrepareReport};
use crate::error::{Result, TrainError};
use crate::model::{init_params, Acts, Model, ModelConfig};
use crate::ngram::KneserNey;
use crate::optim::{clip_scale, lr_at, sum_squares, AdamW, AdamWConfig};
use crate::plot::{loss_svg, Series};
use crate::progress::{hms, Progress};
use crate::rng::Rng;

/// Every option of `ember train`.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub prepare: PrepareOptions,
    pub tokenizer: TokenizerKind,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub dim: usize,
    pub ffn: usize,
    pub ctx: usize,
    pub tie_embeddings: bool,
    pub batch: usize,
    pub grad_accum: usize,
    pub steps: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup: usize,
    pub weight_decay: f32,
    pub beta2: f32,
    pub grad_clip: f32,
    pub eval_every: usize,
    pub eval_batches: usize,
    pub seed: u64,
    pub threads: usize,
    pub ngram_order: usize,
    pub resume: Option<PathBuf>,
    pub force: bool,
    pub quiet: bool,
}

impl Default for TrainOptions {
    /// nanoGPT's CPU "baby GPT" on Shakespeare, character level.
    fn default() -> Self {
        TrainOptions {
            data: PathBuf::new(),
            out: PathBuf::new(),
            prepare: PrepareOptions::default(),
            tokenizer: TokenizerKind::Char,
            layers: 4,
            heads: 4,
            kv_heads: 4,
            dim: 128,
            ffn: 344,
            ctx: 64,
            tie_embeddings: false,
            batch: 12,
            grad_accum: 1,
            steps: 2000,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup: 100,
            weight_decay: 0.1,
            beta2: 0.99,
            grad_clip: 1.0,
            eval_every: 250,
            eval_batches: 20,
            seed: 1337,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            ngram_order: 4,
            resume: None,
            force: false,
            quiet: false,
        }
    }
}

/// What a finished run reports (also written as DIR/metrics.json).
#[derive(Clone, Debug)]
pub struct Metrics {
    pub steps: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub ngram_val_loss: f64,
    pub tokens_per_s: f64,
    pub train_seconds: f64,
    pub params: Vec<f32>,
}

impl TrainOptions {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.batch == 0 || self.batch > 1 << 16 {
            return bad("--batch must be between 1 and 65536");
        }
        if self.grad_accum == 0 || self.grad_accum > 1 << 16 {
            return bad("--grad-accum must be between 1 and 65536");
        }
        if self.ctx == 0 {
            return bad("--ctx must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 10.0) {
            return bad("--lr must be a positive number below 10");
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return bad("--min-lr must be between 0 and --lr");
        }
        if !(self.beta2 > 0.0 && self.beta2 < 1.0) {
            return bad("--beta2 must be in (0, 1)");
        }
        if !(self.weight_decay >= 0.0
            && self.weight_decay.is_finite()
            && self.grad_clip >= 0.0
            && self.grad_clip.is_finite())
        {
            return bad("--weight-decay and --grad-clip must be >= 0 (0 disables clipping)");
        }
        if self.eval_batches == 0 {
            return bad("--eval-batches must be at least 1");
        }
        if !(1..=KneserNey::MAX_ORDER).contains(&self.ngram_order) {
            return bad("--ngram-order must be between 1 and 4");
        }
        Ok(())
    }

    fn model_config(&self, vocab: usize) -> ModelConfig {
        ModelConfig {
            vocab_size: vocab,
            dim: self.dim,
            n_layers: self.layers,
            n_heads: self.heads,
            n_kv_heads: self.kv_heads,
            ffn: self.ffn,
            ctx: self.ctx,
            norm_eps: 1e-5,
            rope_theta: 10000.0,
            tie_embeddings: self.tie_embeddings,
        }
    }
}

/// Refuses a non-empty output directory unless it is the run being resumed or --force.
fn check_out_dir(opts: &TrainOptions) -> Result<()> {
    let out = &opts.out;
    if let Ok(mut entries) = std::fs::read_dir(out) {
        let same_as_resume = opts.resume.as_ref().is_some_and(|r| same_dir(r, out));
        if entries.next().is_some() && !opts.force && !same_as_resume {
            return Err(TrainError::Config(format!(
                "{} is not empty; pass --force to overwrite it or --resume {} to continue its run",
                out.display(),
                out.display()
            )));
        }
    } else if out.exists() {
        return Err(TrainError::Config(format!(
            "{} exists and is not a directory",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn fnv(ids: &[u32]) -> u64 {
    ids.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &t| {
        (h ^ t as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// One worker thread's share of each batch.
struct Worker {
    acts: Acts<f32>,
    grads: Vec<f32>,
    /// Sequences [first, first + count) of the batch.
    first: usize,
    count: usize,
}

fn make_workers(cfg: &ModelConfig, batch: usize, threads: usize, n_params: usize) -> Vec<Worker> {
    let w = threads.clamp(1, batch);
    (0..w)
        .map(|i| {
            let first = i * batch / w;
            let count = (i + 1) * batch / w - first;
            Worker {
                acts: Acts::new(cfg, count, cfg.ctx),
                grads: vec![0.0; n_params],
                first,
                count,
            }
        })
        .collect()
}

/// What `run_batch` does with a batch.
#[derive(Clone, Copy)]
enum Pass {
    /// Forward only, for the loss.
    Eval,
    /// Forward and backward, gradients scaled by `scale`, accumulated (zeroed first if asked).
    Train { zero_grads: bool, scale: f32 },
}

/// One batch over the workers; returns the summed loss.
fn run_batch(
    model: &Model<f32>,
    params: &[f32],
    workers: &mut [Worker],
    tokens: &[u32],
    targets: &[u32],
    pass: Pass,
) -> f64 {
    let t = model.cfg.ctx;
    let n_seq = tokens.len() / t;
    let job = |w: &mut Worker| -> f64 {
        if let Pass::Train {
            zero_grads: true, ..
        } = pass
        {
            w.grads.iter_mut().for_each(|g| *g = 0.0);
        }
        let end = (w.first + w.count).min(n_seq);
        if w.first >= end {
            return 0.0;
        }
        let (tk, tg) = (
            &tokens[w.first * t..end * t],
            &targets[w.first * t..end * t],
        );
        let loss = model.forward(params, &mut w.acts, tk, Some(tg));
        if let Pass::Train { scale, .. } = pass {
            model.backward(params, &mut w.grads, &mut w.acts, tk, tg, scale);
        }
        loss
    };
    if workers.len() == 1 {
        return job(&mut workers[0]);
    }
    std::thread::scope(|s| {
        let (first, rest) = workers.split_first_mut().expect("at least one worker");
        let handles: Vec<_> = rest.iter_mut().map(|w| s.spawn(move || job(w))).collect();
        let mut total = job(first);
        for h in handles {
            total += h.join().expect("worker thread panicked");
        }
        total
    })
}

/// Sums every worker's gradients into the first worker's buffer (in worker order), split
/// over threads by parameter range; returns the global sum of squares.
fn reduce_grads(workers: &mut [Worker]) -> f64 {
    let (first, rest) = workers.split_first_mut().expect("at least one worker");
    let rest: &[Worker] = rest;
    let threads = rest.len() + 1;
    let chunk = first.grads.len().div_ceil(threads).max(1);
    let job = move |ci: usize, g: &mut [f32]| -> f64 {
        let (off, len) = (ci * chunk, g.len());
        for w in rest {
            for (a, &b) in g.iter_mut().zip(&w.grads[off..off + len]) {
                *a += b;
            }
        }
        sum_squares(g)
    };
    if threads == 1 {
        return job(0, &mut first.grads);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = first
            .grads
            .chunks_mut(chunk)
            .enumerate()
            .map(|(ci, g)| s.spawn(move || job(ci, g)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("reduce thread panicked"))
            .sum()
    })
}

/// Fills tokens/targets with `b` random windows of `t` (+1) tokens from `ids`.
fn sample(ids: &[u32], t: usize, rng: &mut Rng, tokens: &mut [u32], targets: &mut [u32]) {
    for (tk, tg) in tokens.chunks_exact_mut(t).zip(targets.chunks_exact_mut(t)) {
        let s = rng.below(ids.len() - t);
        tk.copy_from_slice(&ids[s..s + t]);
        tg.copy_from_slice(&ids[s + 1..s + t + 1]);
    }
}

/// Mean loss over `batches` random batches of the validation split (the same windows at
/// every evaluation, so evaluations are comparable).
fn eval_loss(
    model: &Model<f32>,
    params: &[f32],
    workers: &mut [Worker],
    ids: &[u32],
    batch: usize,
    batches: usize,
    seed: u64,
) -> f64 {
    let t = model.cfg.ctx;
    let mut rng = Rng::new(seed ^ 0xE7A1);
    let (mut tokens, mut targets) = (vec![0u32; batch * t], vec![0u32; batch * t]);
    let mut total = 0.0;
    for _ in 0..batches {
        sample(ids, t, &mut rng, &mut tokens, &mut targets);
        total += run_batch(model, params, workers, &tokens, &targets, Pass::Eval);
    }
    total / (batches * batch * t) as f64
}

/// Mean loss over the whole validation split in consecutive non-overlapping windows.
fn full_val_loss(
    model: &Model<f32>,
    params: &[f32],
    workers: &mut [Worker],
    ids: &[u32],
    batch: usize,
) -> f64 {
    let t = model.cfg.ctx;
    let windows = (ids.len() - 1) / t;
    let (mut tokens, mut targets) = (vec![0u32; batch * t], vec![0u32; batch * t]);
    let (mut total, mut count) = (0.0, 0usize);
    let mut w = 0;
    while w < windows {
        let nb = batch.min(windows - w);
        for j in 0..nb {
            let s = (w + j) * t;
            tokens[j * t..(j + 1) * t].copy_from_slice(&ids[s..s + t]);
            targets[j * t..(j + 1) * t].copy_from_slice(&ids[s + 1..s + t + 1]);
        }
        total += run_batch(
            model,
            params,
            workers,
            &tokens[..nb * t],
            &targets[..nb * t],
            Pass::Eval,
        );
        count += nb * t;
        w += nb;
    }
    total / count as f64
}

/// One row of DIR/loss.csv.
#[derive(Clone, Debug)]
struct Row {
    step: usize,
    lr: f32,
    train_loss: f64,
    val_loss: Option<f64>,
    tokens_per_s: f64,
    elapsed_s: f64,
}

fn write_curves(out: &Path, rows: &[Row], ngram: f64) -> Result<()> {
    let mut csv = String::from("step,lr,train_loss,val_loss,tokens_per_s,elapsed_s\n");
    for r in rows {
        let val = r.val_loss.map(|v| format!("{v:.6}")).unwrap_or_default();
        let train = if r.train_loss.is_finite() {
            format!("{:.6}", r.train_loss)
        } else {
            String::new()
        };
        csv += &format!(
            "{},{:.6e},{train},{val},{:.1},{:.3}\n",
            r.step, r.lr, r.tokens_per_s, r.elapsed_s
        );
    }
    write_atomic(&out.join("loss.csv"), csv.as_bytes())?;
    let train: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r.train_loss.is_finite())
        .map(|r| (r.step, r.train_loss))
        .collect();
    let val: Vec<(usize, f64)> = rows
        .iter()
        .filter_map(|r| r.val_loss.map(|v| (r.step, v)))
        .collect();
    let last = rows.last().map_or(0, |r| r.step);
    let ng = [(0, ngram), (last, ngram)];
    let series = [
        Series {
            points: &train,
            color: "#1f77b4",
            label: "train",
        },
        Series {
            points: &val,
            color: "#d62728",
            label: "validation",
        },
        Series {
            points: &ng,
            color: "#7f7f7f",
            label: "n-gram baseline (val)",
        },
    ];
    write_atomic(
        &out.join("loss.svg"),
        loss_svg(&series, "ember train: loss").as_bytes(),
    )
}

fn read_curves(dir: &Path, up_to: usize) -> Vec<Row> {
    let Ok(s) = std::fs::read_to_string(dir.join("loss.csv")) else {
        return Vec::new();
    };
    s.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some(Row {
                step: f.first()?.parse().ok()?,
                lr: f.get(1)?.parse().ok()?,
                train_loss: f.get(2)?.parse().unwrap_or(f64::NAN),
                val_loss: f.get(3)?.parse().ok(),
                tokens_per_s: f.get(4)?.parse().ok()?,
                elapsed_s: f.get(5)?.parse().ok()?,
            })
        })
        .filter(|r| r.step <= up_to)
        .collect()
}

/// Runs `ember train prepare`: writes DIR/{train.txt, val.txt, prepare.json} and, given a
/// tokenizer kind, trains it on the training split (DIR/tokenizer.json) and counts tokens.
pub fn prepare_to_dir(
    data: &Path,
    out: &Path,
    opts: &PrepareOptions,
    tokenizer: Option<&TokenizerKind>,
    force: bool,
) -> Result<PrepareReport> {
    let (prep, mut report) = data::prepare(data, opts)?;
    if out.join("prepare.json").exists() && !force {
        return Err(TrainError::Config(format!(
            "{} already holds prepared data; pass --force to overwrite",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let (train_text, val_text) = (data::join(&prep.train), data::join(&prep.val));
    if let Some(kind) = tokenizer {
        let tok = Tokenizer::train(kind, &prep.train);
        report.tokens_train = tok.encode(&train_text).len();
        report.tokens_val = tok.encode(&val_text).len();
        write_json(&out.join("tokenizer.json"), &tok.to_hf_json())?;
    }
    write_atomic(&out.join("train.txt"), train_text.as_bytes())?;
    write_atomic(&out.join("val.txt"), val_text.as_bytes())?;
    write_json(&out.join("prepare.json"), &report.to_json())?;
    Ok(report)
}

/// The whole `ember train` run.
pub fn train(opts: &TrainOptions) -> Result<Metrics> {
    opts.validate()?;
    if let Some(r) = &opts.resume {
        if !r.join("trainer_state.json").exists() {
            return Err(TrainError::Config(format!(
                "--resume {}: no trainer_state.json there",
                r.display()
            )));
        }
    }
    if !opts.data.exists() {
        return Err(TrainError::Data(format!(
            "{}: no such file or directory",
            opts.data.display()
        )));
    }
    let say = |m: &str| {
        if !opts.quiet {
            eprintln!("{m}");
        }
    };
    let wall = Instant::now();
    let resumed = match &opts.resume {
        Some(r) => Some(checkpoint::load(r)?),
        None => None,
    };
    // Shapes first (vocab not known yet), so absurd options fail before any work.
    if resumed.is_none() {
        opts.model_config(256).validate()?;
    }
    // Data and tokenizer.
    let (prep, mut report) = data::prepare(&opts.data, &opts.prepare)?;
    let tok = match &resumed {
        Some(ck) => Tokenizer::from_hf_json(&ck.tokenizer_json)?,
        None => Tokenizer::train(&opts.tokenizer, &prep.train),
    };
    let train_ids = tok.encode(&data::join(&prep.train));
    let val_ids = tok.encode(&data::join(&prep.val));
    report.tokens_train = train_ids.len();
    report.tokens_val = val_ids.len();
    let cfg = match &resumed {
        Some(ck) => ck.cfg.clone(),
        None => opts.model_config(tok.vocab_size()),
    };
    cfg.validate()?;
    if cfg.vocab_size < tok.vocab_size() {
        return Err(TrainError::Format(format!(
            "the checkpoint's vocab_size {} is smaller than its tokenizer's {}",
            cfg.vocab_size,
            tok.vocab_size()
        )));
    }
    for (name, ids) in [("train", &train_ids), ("validation", &val_ids)] {
        if ids.len() <= cfg.ctx {
            return Err(TrainError::Data(format!(
                "the {name} split has {} tokens, not more than --ctx {}; lower --ctx or use more data",
                ids.len(),
                cfg.ctx
            )));
        }
    }
    let act_bytes = Acts::<f32>::floats(&cfg, opts.batch, cfg.ctx) as f64 * 4.0;
    if act_bytes > 16.0 * (1u64 << 30) as f64 {
        return Err(TrainError::Config(format!(
            "activations would need {:.1} GiB (limit 16); lower --batch, --ctx or the model size",
            act_bytes / (1u64 << 30) as f64
        )));
    }
    check_out_dir(opts)?;
    write_json(&opts.out.join("prepare.json"), &report.to_json())?;
    say(&report.summary());
    let data_hash = fnv(&train_ids);
    // Baseline.
    let t0 = Instant::now();
    let kn = KneserNey::train(&train_ids, opts.ngram_order, cfg.vocab_size);
    let ngram_val = kn.loss(&val_ids);
    drop(kn);
    say(&format!(
        "{}-gram Kneser-Ney baseline: val loss {ngram_val:.4} nats/token ({:.1} s)",
        opts.ngram_order,
        t0.elapsed().as_secs_f64()
    ));
    // Model and optimizer.
    let model = Model::<f32>::new(&cfg);
    let n_params = model.layout.n_params;
    let mut opt = AdamW::new(
        AdamWConfig {
            beta1: 0.9,
            beta2: opts.beta2,
            eps: 1e-8,
            weight_decay: opts.weight_decay,
        },
        &model.layout,
    );
    let (mut params, mut rng, start, mut tokens_seen, prior_s) = match resumed {
        Some(ck) => {
            if ck.state.data_hash != data_hash {
                return Err(TrainError::Config(
                    "--resume: the prepared training data differs from the checkpoint's run".into(),
                ));
            }
            opt.m = ck.opt_m;
            opt.v = ck.opt_v;
            opt.t = ck.opt_t;
            (
                ck.params,
                Rng::from_state(ck.state.rng_state),
                ck.state.step,
                ck.state.tokens_seen,
                ck.state.elapsed_s,
            )
        }
        None => (
            init_params(&cfg, &model.layout, opts.seed),
            Rng::new(opts.seed),
            0,
            0,
            0.0,
        ),
    };
    let tok_json = tok.to_hf_json();
    let mut rows = match &opts.resume {
        Some(r) => read_curves(r, start),
        None => Vec::new(),
    };
    say(&format!(
        "model: {} params, {} layers, dim {}, heads {}/{}, ffn {}, ctx {}, vocab {}; {} threads; steps {start}..{}",
        n_params, cfg.n_layers, cfg.dim, cfg.n_heads, cfg.n_kv_heads, cfg.ffn, cfg.ctx, cfg.vocab_size, opts.threads.clamp(1, opts.batch), opts.steps
    ));
    let (b, t) = (opts.batch, cfg.ctx);
    let mut workers = make_workers(&cfg, b, opts.threads, n_params);
    let (mut tokens, mut targets) = (vec![0u32; b * t], vec![0u32; b * t]);
    let scale = 1.0 / (b * t * opts.grad_accum) as f32;
    let mut progress = Progress::new(start, opts.steps, opts.eval_every.max(1), opts.quiet);
    let train_start = Instant::now();
    let mut last_val = f64::NAN;
    let eval_due = |step: usize| opts.eval_every > 0 && step.is_multiple_of(opts.eval_every);
    if start == 0 && eval_due(0) {
        last_val = eval_loss(
            &model,
            &params,
            &mut workers,
            &val_ids,
            b,
            opts.eval_batches,
            opts.seed,
        );
        rows.push(Row {
            step: 0,
            lr: 0.0,
            train_loss: f64::NAN,
            val_loss: Some(last_val),
            tokens_per_s: 0.0,
            elapsed_s: 0.0,
        });
        progress.message(&format!("step 0: val loss {last_val:.4}"));
    }
    let mut train_loss = f64::NAN;
    let mut step_tokens = 0u64;
    for step in start..opts.steps {
        let lr = lr_at(step, opts.steps, opts.warmup, opts.lr, opts.min_lr);
        let mut loss_sum = 0.0;
        for micro in 0..opts.grad_accum {
            sample(&train_ids, t, &mut rng, &mut tokens, &mut targets);
            let pass = Pass::Train {
                zero_grads: micro == 0,
                scale,
            };
            loss_sum += run_batch(&model, &params, &mut workers, &tokens, &targets, pass);
        }
        let norm = reduce_grads(&mut workers).sqrt() as f32;
        let grad_scale = clip_scale(norm, opts.grad_clip);
        opt.step_parallel(
            &mut params,
            &workers[0].grads,
            lr,
            grad_scale,
            workers.len(),
        );
        train_loss = loss_sum / (b * t * opts.grad_accum) as f64;
        if !train_loss.is_finite() {
            return Err(TrainError::Config(format!(
                "the loss diverged at step {} ({train_loss}); lower --lr",
                step + 1
            )));
        }
        tokens_seen += (b * t * opts.grad_accum) as u64;
        step_tokens += (b * t * opts.grad_accum) as u64;
        let elapsed = train_start.elapsed().as_secs_f64();
        let tps = step_tokens as f64 / elapsed.max(1e-9);
        let done = step + 1;
        let mut row = Row {
            step: done,
            lr,
            train_loss,
            val_loss: None,
            tokens_per_s: tps,
            elapsed_s: prior_s + elapsed,
        };
        progress.update(done, train_loss as f32, lr, tps);
        if eval_due(done) || done == opts.steps {
            last_val = eval_loss(
                &model,
                &params,
                &mut workers,
                &val_ids,
                b,
                opts.eval_batches,
                opts.seed,
            );
            row.val_loss = Some(last_val);
            progress.message(&format!("step {done}: train loss {train_loss:.4}, val loss {last_val:.4} (ppl {:.2}), {:.0} tok/s, {}", last_val.exp(), tps, hms(elapsed)));
            rows.push(row);
            let state = TrainState {
                step: done,
                rng_state: rng.state(),
                tokens_seen,
                data_hash,
                elapsed_s: prior_s + train_start.elapsed().as_secs_f64(),
            };
            checkpoint::save(&opts.out, &cfg, &params, &tok_json, &opt, &state)?;
            write_curves(&opts.out, &rows, ngram_val)?;
        } else {
            rows.push(row);
        }
    }
    progress.finish();
    let train_seconds = train_start.elapsed().as_secs_f64();
    let tokens_per_s = step_tokens as f64 / train_seconds.max(1e-9);
    let val_loss = full_val_loss(&model, &params, &mut workers, &val_ids, b);
    if opts.steps <= start {
        let state = TrainState {
            step: start.max(opts.steps),
            rng_state: rng.state(),
            tokens_seen,
            data_hash,
            elapsed_s: prior_s,
        };
        checkpoint::save(&opts.out, &cfg, &params, &tok_json, &opt, &state)?;
    }
    write_curves(&opts.out, &rows, ngram_val)?;
    let metrics = json!({
        "val_loss": val_loss,
        "val_perplexity": val_loss.exp(),
        "val_loss_eval_batches": if last_val.is_finite() { json!(last_val) } else { Value::Null },
        "ngram_val_loss": ngram_val,
        "ngram_order": opts.ngram_order,
        "train_loss": if train_loss.is_finite() { json!(train_loss) } else { Value::Null },
        "tokens_per_s": tokens_per_s,
        "steps": opts.steps.max(start),
        "train_seconds": train_seconds,
        "wall_seconds": wall.elapsed().as_secs_f64(),
        "params": n_params,
        "tokens_train": train_ids.len(),
        "tokens_val": val_ids.len(),
        "threads": workers.len(),
    });
    write_json(&opts.out.join("metrics.json"), &metrics)?;
    say(&format!(
        "done: val loss {val_loss:.4} (ppl {:.2}) over the whole validation split; {}-gram baseline {ngram_val:.4}; {:.0} tokens/s; {:.1} s",
        val_loss.exp(),
        opts.ngram_order,
        tokens_per_s,
        wall.elapsed().as_secs_f64()
    ));
    Ok(Metrics {
        steps: opts.steps.max(start),
        train_loss,
        val_loss,
        ngram_val_loss: ngram_val,
        tokens_per_s,
        train_seconds,
        params,
    })
}
