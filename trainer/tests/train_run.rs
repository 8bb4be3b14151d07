//! End-to-end runs of the trainer on a small generated corpus: outputs, resume, bad inputs.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ember_train::bpe::TokenizerKind;
use ember_train::checkpoint::{load_params, read_json};
use ember_train::model::{Layout, ModelConfig};
use ember_train::train::{train, TrainOptions};

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ember-train-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A corpus directory of a few documents of simple repetitive text, one of them duplicated.
fn corpus(dir: &Path) -> PathBuf {
    let data = dir.join("corpus");
    std::fs::create_dir_all(&data).unwrap();
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home",
    ];
    for d in 0..8 {
        let text: String = (0..400)
            .map(|i| words[(i * 7 + d * 5 + i / 5) % words.len()])
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(data.join(format!("doc{d}.txt")), format!("{text}.\n")).unwrap();
    }
    std::fs::write(
        data.join("doc8.txt"),
        std::fs::read(data.join("doc0.txt")).unwrap(),
    )
    .unwrap();
    data
}

fn tiny(dir: &Path, out: &str) -> TrainOptions {
    TrainOptions {
        data: corpus(dir),
        out: dir.join(out),
        layers: 2,
        heads: 4,
        kv_heads: 2,
        dim: 16,
        ffn: 24,
        ctx: 16,
        batch: 4,
        steps: 6,
        warmup: 2,
        lr: 3e-3,
        eval_every: 3,
        eval_batches: 2,
        threads: 2,
        quiet: true,
        prepare: ember_train::data::PrepareOptions {
            val_fraction: 0.25,
            ..Default::default()
        },
        ..TrainOptions::default()
    }
}

#[test]
fn a_run_writes_a_complete_hf_checkpoint_and_metrics() {
    let dir = temp_dir("run");
    let mut opts = tiny(&dir, "out");
    opts.tokenizer = TokenizerKind::Bpe(270);
    opts.tie_embeddings = true;
    opts.grad_accum = 2;
    let m = train(&opts).unwrap();
    assert!(m.val_loss.is_finite() && m.ngram_val_loss.is_finite() && m.tokens_per_s > 0.0);
    let out = &opts.out;
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "optimizer.safetensors",
        "trainer_state.json",
        "loss.csv",
        "loss.svg",
        "metrics.json",
        "prepare.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let metrics = read_json(&out.join("metrics.json")).unwrap();
    for k in ["val_loss", "ngram_val_loss", "tokens_per_s", "steps"] {
        assert!(
            metrics.get(k).is_some_and(|v| v.is_number()),
            "metrics.json lacks {k}"
        );
    }
    assert_eq!(metrics["steps"], 6);
    let prep = read_json(&out.join("prepare.json")).unwrap();
    assert_eq!(prep["docs_dropped_exact_duplicate"], 1);
    let config = read_json(&out.join("config.json")).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    assert_eq!(config["vocab_size"], 270);
    let cfg = ModelConfig::from_hf_json(&config).unwrap();
    let layout = Layout::new(&cfg);
    assert!(
        layout.find("lm_head.weight").is_none(),
        "tied embeddings have no lm_head"
    );
    assert_eq!(
        load_params(&out.join("model.safetensors"), &layout).unwrap(),
        m.params
    );
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 1 + 6,
        "header, step 0 eval, 6 steps"
    );
    // A second run into the same non-empty directory is refused.
    let err = train(&opts).unwrap_err().to_string();
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resuming_gives_the_same_weights_as_an_uninterrupted_run() {
    let dir = temp_dir("resume");
    let full = train(&tiny(&dir, "full")).unwrap();
    let mut first = tiny(&dir, "part");
    first.steps = 3;
    train(&first).unwrap();
    let mut second = tiny(&dir, "part");
    second.resume = Some(dir.join("part"));
    let resumed = train(&second).unwrap();
    assert_eq!(resumed.params, full.params);
    assert_eq!(resumed.val_loss, full.val_loss);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_give_one_clear_error() {
    let dir = temp_dir("bad");
    let base = tiny(&dir, "out");
    let expect = |o: TrainOptions, needle: &str| {
        let e = train(&o).unwrap_err().to_string();
        assert!(e.contains(needle), "expected `{needle}` in: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    };
    expect(
        TrainOptions {
            data: dir.join("missing.txt"),
            ..base.clone()
        },
        "no such file",
    );
    std::fs::write(dir.join("empty.txt"), "\u{0}\n  \n").unwrap();
    expect(
        TrainOptions {
            data: dir.join("empty.txt"),
            ..base.clone()
        },
        "empty after cleanup",
    );
    expect(
        TrainOptions {
            ctx: 0,
            ..base.clone()
        },
        "--ctx",
    );
    expect(
        TrainOptions {
            dim: 1 << 20,
            ..base.clone()
        },
        "absurdly large",
    );
    expect(
        TrainOptions {
            dim: 18,
            ..base.clone()
        },
        "multiple of --heads",
    );
    expect(
        TrainOptions {
            kv_heads: 3,
            ..base.clone()
        },
        "--kv-heads",
    );
    expect(
        TrainOptions {
            ctx: 20_000,
            out: dir.join("o2"),
            ..base.clone()
        },
        "tokens",
    );
    expect(
        TrainOptions {
            lr: f32::NAN,
            ..base.clone()
        },
        "--lr",
    );
    expect(
        TrainOptions {
            resume: Some(dir.join("nowhere")),
            ..base
        },
        "trainer_state.json",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
