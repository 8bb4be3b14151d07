//! Model throughput: prompt processing (pp) and token generation (tg), as llama-bench
//! measures them: pp = p tokens in one prefill; tg = n single-token steps; each after `-d`
//! positions fed untimed.

use std::path::Path;
use std::time::Instant;

use ember_runtime::Model;
use serde_json::json;

use super::roofline::BandwidthProbe;
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
    let capacity = args.depth + args.prompt.max(args.gen);
    if args.prompt + args.gen == 0 || capacity > model.config.context_length {
        return Err(format!(
            "-p and -n must not both be 0, and -d + the larger of them must be at most the \
             model's context length {}",
            model.config.context_length
        )
        .into());
    }
    let mut session = args.cache.session(&model, capacity)?;
    session.set_threads(threads);
    // Deterministic pseudo-random prompt ids, as llama-bench uses random tokens.
    let ids = |from: usize, n: usize| -> Vec<u32> {
        (from as u32..(from + n) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % v)
            .collect()
    };
    let depth = ids(0, args.depth);
    let prompt = ids(args.depth, args.prompt);
    // The context each test starts from: empty, or `depth` positions fed untimed.
    let fill = |session: &mut ember_runtime::HeapSession| -> Result<(), ember_runtime::Error> {
        session.reset();
        if !depth.is_empty() {
            session.prefill(&depth)?;
        }
        Ok(())
    };

    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    // Generation streams these bytes per token; a bandwidth round before each repetition
    // gives the ceiling it is held against, measured on the same machine at the same time.
    let bytes_per_token = model.matrix_bytes_per_token();
    let mut probe = (args.gen > 0).then(|| BandwidthProbe::new(threads));
    // One warm-up repetition pages the weights in.
    for rep in 0..=args.reps {
        if !prompt.is_empty() {
            fill(&mut session)?;
            let t = Instant::now();
            session.prefill(&prompt)?;
            if rep > 0 {
                pp.push(prompt.len() as f64 / t.elapsed().as_secs_f64());
            }
        }
        if args.gen > 0 {
            if let (Some(probe), true) = (probe.as_mut(), rep > 0) {
                probe.measure();
            }
            fill(&mut session)?;
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
    let kernels = crate::cmd::shared::describe_kernels(session.kernels(), &file);
    let bandwidth = probe.as_ref().map(|p| {
        let gbs = bytes_per_token as f64 * tg_tok_s / 1e9;
        let (lo, hi) = p.spread();
        (gbs, p.median(), lo, hi, 100.0 * gbs / p.median())
    });
    if args.json {
        let out = json!({
            "model": path.display().to_string(),
            "file_bytes": loaded.bytes().len(),
            "threads": threads,
            "kernels": kernels,
            "n_prompt": args.prompt,
            "n_gen": args.gen,
            "n_depth": args.depth,
            "reps": args.reps,
            "pp_tok_s": pp_tok_s,
            "tg_tok_s": tg_tok_s,
            "pp_samples": pp,
            "tg_samples": tg,
            "load_s": load_s,
            "matrix_bytes_per_token": bytes_per_token,
            "tg_gb_s": bandwidth.map(|b| b.0),
            "read_bandwidth_gb_s": bandwidth.map(|b| b.1),
            "read_bandwidth_rounds_gb_s": probe.as_ref().map(|p| p.rounds().to_vec()),
            "tg_pct_of_bandwidth": bandwidth.map(|b| b.4),
        });
        println!("{out}");
    } else {
        println!(
            "{} ({:.1} MB), {threads} threads, median of {}\n  kernels: {kernels}",
            path.display(),
            loaded.bytes().len() as f64 / 1e6,
            args.reps
        );
        let at = if args.depth > 0 {
            format!(" @ d{}", args.depth)
        } else {
            String::new()
        };
        if args.prompt > 0 {
            println!("  pp{:<5} {:>9.1} tok/s{at}", args.prompt, pp_tok_s);
        }
        if args.gen > 0 {
            println!("  tg{:<5} {:>9.1} tok/s{at}", args.gen, tg_tok_s);
        }
        if let Some((gbs, bw, lo, hi, pct)) = bandwidth {
            println!(
                "  generation streams {:.1} MB/token{}: {gbs:.1} GB/s, {pct:.0}% of the read \
                 bandwidth measured between repetitions ({bw:.1} GB/s median, {lo:.1}-{hi:.1})",
                bytes_per_token as f64 / 1e6,
                if args.depth > 0 {
                    " of weights (the KV cache's reads come on top)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
