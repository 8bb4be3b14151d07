//! Quantization recipes end to end: the q4 recipe (q4_z matrices, q8_0 embedding), its
//! provenance, calibration statistics, and that calibration-weighted q4_z runs in the
//! runtime close to the f32 model.
mod common;

use common::*;
use ember_convert::calibrate::calibrate;
use ember_convert::{build, build_with, Recipe};
use ember_format::{DType, EmberFile};
use ember_runtime::{HeapSession, Model};

const TEXT: &str = "Once upon a time there was a little fox who lived in the woods. \
    Every morning the fox ran to the river and looked at the fish. The fish looked back. \
    One day the fox said hello, and the fish said hello too, and they became friends.";

fn calibration_text() -> std::path::PathBuf {
    let dir = temp_dir("quant-calib");
    let p = dir.join("calib.txt");
    std::fs::write(&p, TEXT.repeat(4)).unwrap();
    p
}

#[test]
fn q4_recipe_types_and_provenance() {
    let dir = fixture("tiny-qwen2");
    let (w, s) = build(&dir, Some(Recipe::Q4), false).unwrap();
    assert!(s.fallbacks.is_empty());
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    assert_eq!(meta_str(&f, "general.quantization"), "q4");
    assert!(meta_str(&f, "quantization.recipe").contains("q4_z"));
    assert_eq!(f.tensor("blk.0.ffn_up.weight").unwrap().dtype, DType::Q4Z);
    assert_eq!(f.tensor("token_embd.weight").unwrap().dtype, DType::Q8_0);
    assert_eq!(
        meta_str(&f, "quantization.tensor.blk.0.ffn_up.weight"),
        "q4_z (least-squares scale search)"
    );
    assert!(f.metadata().all(|(k, _)| k != "quantization.calibration"));
}

#[test]
fn calibration_collects_every_matrix_and_weights_the_quantizer() {
    let dir = fixture("tiny-llama");
    let text = calibration_text();
    let imp = calibrate(&dir, &text, 10_000, 32, false).unwrap();
    assert!(imp.tokens > 32, "{}", imp.tokens);
    let (w32, _) = build(&dir, Some(Recipe::F32), false).unwrap();
    let b32 = file_bytes(&w32);
    let f32file = EmberFile::parse(&b32).unwrap();
    // Every per-layer matrix and the output head (tied: the embedding) has statistics of
    // its input width, all finite and non-negative.
    for t in f32file.tensors() {
        if t.shape().len() != 2
            || t.name == "token_embd.weight" && f32file.tensor("output.weight").is_some()
        {
            continue;
        }
        let c = imp
            .columns
            .get(t.name)
            .unwrap_or_else(|| panic!("{}", t.name));
        assert_eq!(c.len(), t.shape()[1], "{}", t.name);
        assert!(c.iter().all(|v| v.is_finite() && *v >= 0.0), "{}", t.name);
        assert!(c.iter().any(|v| *v > 0.0), "{}", t.name);
    }

    let (wq, _) = build_with(&dir, Some(Recipe::Q4Z), Some(&imp), false).unwrap();
    let bq = file_bytes(&wq);
    let fq = EmberFile::parse(&bq).unwrap();
    assert!(meta_str(&fq, "quantization.calibration").contains("calib.txt"));
    assert_eq!(
        meta_str(&fq, "quantization.tensor.blk.0.attn_q.weight"),
        "q4_z (least-squares scale search, calibration-weighted)"
    );

    // The calibrated model runs and stays near the f32 model. (This tiny random model is
    // far harder to quantize than a trained one, and one prompt's logits are a noisy
    // measure: docs/QUANTIZATION.md has real measurements.)
    let logits = |f: &EmberFile| -> Vec<f32> {
        let m = Model::load(f).unwrap();
        let mut s = HeapSession::new(&m, 64).unwrap();
        let toks: Vec<u32> = (0..48).map(|i| (i * 7 + 3) % 100).collect();
        s.prefill(&toks).unwrap().to_vec()
    };
    let reference = logits(&f32file);
    let got = logits(&fq);
    let num: f32 = got
        .iter()
        .zip(&reference)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let den: f32 = reference.iter().map(|x| x * x).sum();
    let rel = (num / den).sqrt();
    assert!(rel < 0.5, "relative logit error {rel}");
}
