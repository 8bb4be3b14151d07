//! A short run on real text (../shared/data/tinyshakespeare.txt): the model must learn well
//! past the unigram level in 150 steps. Skips loudly when ../shared is absent.
use std::path::PathBuf;

use ember_train::train::{train, TrainOptions};

#[test]
fn learns_shakespeare_past_unigram_level() {
    let data =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/tinyshakespeare.txt");
    if !data.exists() {
        eprintln!(
            "SKIPPED: learns_shakespeare_past_unigram_level: {} not found",
            data.display()
        );
        return;
    }
    let out = std::env::temp_dir().join(format!("ember-train-shakespeare-{}", std::process::id()));
    let opts = TrainOptions {
        data,
        out: out.clone(),
        layers: 2,
        heads: 4,
        kv_heads: 2,
        dim: 64,
        ffn: 128,
        ctx: 32,
        batch: 8,
        steps: 150,
        warmup: 10,
        lr: 1e-2,
        min_lr: 1e-3,
        eval_every: 0,
        eval_batches: 4,
        ngram_order: 2,
        threads: 2,
        force: true,
        quiet: true,
        ..TrainOptions::default()
    };
    let m = train(&opts).unwrap();
    eprintln!("val loss {:.3}, bigram {:.3}", m.val_loss, m.ngram_val_loss);
    std::fs::remove_dir_all(&out).unwrap();
    // ln(65) = 4.17 at init; character unigram entropy is about 3.3 nats.
    assert!(m.val_loss < 2.55, "val loss {} after 150 steps", m.val_loss);
    assert!(
        m.ngram_val_loss < 2.55,
        "bigram baseline {}",
        m.ngram_val_loss
    );
}
