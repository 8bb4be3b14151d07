//! Model throughput: prompt processing (pp) and token generation (tg), as llama-bench
//! measures them: pp = p tokens in one prefill; tg = n single-token steps.

use std::path::Path;
use std::time::Instant;

use ember_runtime::{Model, Session};
use serde_json::json;

use super::{median, Args};
use crate::cmd::CmdResult;
use crate::model_source::open_model;

pub fn run(path: &Path, args: &Args, threads: usize) -> CmdResult {
    let start = Instant::now();
    let loaded = open_model(path, args.source.no_cache)?;
    let file = loaded.parse()?;
    let model = Model::load(&file)?;
    let load_s = start.elapsed().as_secs_f64();
    let v = model.config.vocab_size as u32;
    let capacity = args.prompt + args.gen;
    if capacity == 0 || capacity > model.config.context_length {
        return Err(format!(
            "-p + -n must be between 1 and the model's context length {}",
            model.config.context_length
        )
        .into());
    }
    let mut session = Session::new(&model, capacity)?;
    session.set_threads(threads);
    // Deterministic pseudo-random prompt ids, as llama-bench uses random tokens.
    let prompt: Vec<u32> = (0..args.prompt as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % v)
        .collect();

    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    // One warm-up repetition pages the weights in.
    for rep in 0..=args.reps {
        session.reset();
        if !prompt.is_empty() {
            let t = Instant::now();
            session.prefill(&prompt)?;
            if rep > 0 {
                pp.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
            }
        }
        if args.gen > 0 {
            session.reset();
            let mut next = prompt.first().copied().unwrap_or(1);
            let t = Instant::now();
            for _ in 0..args.gen {
                let logits = session.step(next)?;
                next = ember_runtime::sampler::argmax(logits);
            }
            if rep > 0 {
                tg.push(args.gen as f64 / t.elapsed().as_secs_f64());
            }
        }
    }
    let (pp_tok_s, tg_tok_s) = (median(&pp), median(&tg));
    let kernels = session.kernels().level.name();
    if args.json {
        let out = json!({
            "model": path.display().to_string(),
            "file_bytes": loaded.bytes().len(),
            "threads": threads,
            "kernels": kernels,
            "n_prompt": args.prompt,
            "n_gen": args.gen,
            "reps": args.reps,
            "pp_tok_s": pp_tok_s,
            "tg_tok_s": tg_tok_s,
            "pp_samples": pp,
            "tg_samples": tg,
            "load_s": load_s,
        });
        println!("{out}");
    } else {
        println!(
            "{} ({:.1} MB), {threads} threads, {kernels} kernels, median of {}",
            path.display(),
            loaded.bytes().len() as f64 / 1e6,
            args.reps
        );
        if args.prompt > 0 {
            println!("  pp{:<5} {:>9.1} tok/s", args.prompt, pp_tok_s);
        }
        if args.gen > 0 {
            println!("  tg{:<5} {:>9.1} tok/s", args.gen, tg_tok_s);
        }
    }
    Ok(())
}
