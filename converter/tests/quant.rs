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

/// `convert` with a calibration text: the q4 recipe allocates by measurement within the
/// 4-bit budget; `--target-size` gives a file of at most that size; an impossible budget is
/// a clear error and writes nothing.
#[test]
fn budgets_place_types_by_measurement_within_the_bytes() {
    use ember_convert::quant_alloc::{Budget, CANDIDATES, FOUR_BIT_BITS, FOUR_BIT_HEAD_BITS};
    let dir = fixture("tiny-llama");
    let text = calibration_text();
    let out = temp_dir("quant-budget");
    let opts = |name: &str, quant: Recipe, budget: Option<Budget>| ember_convert::Options {
        input: dir.clone(),
        output: out.join(name),
        quant: Some(quant),
        force: true,
        progress: false,
        calibration: Some(text.clone()),
        calibration_tokens: 10_000,
        layout: ember_format::Layout::Rows16,
        rules: Default::default(),
        budget,
        sensitivity_cache: Some(out.join("sens.json")),
    };
    let matrices = |f: &EmberFile| -> Vec<(String, DType, usize, usize)> {
        // The matrices the allocation places: those whose rows are whole 32-blocks (tiny
        // models have others, written as f16).
        f.tensors()
            .filter(|t| t.shape().len() == 2 && t.shape()[1] % 32 == 0)
            .map(|t| (t.name.to_string(), t.dtype, t.elements(), t.data.len()))
            .collect()
    };

    // q4 + calibration: every allocated matrix in a candidate type, within the 4-bit bytes.
    ember_convert::convert(&opts("q4.ember", Recipe::Q4, None)).unwrap();
    let b = ember_format::AlignedBytes::from(std::fs::read(out.join("q4.ember")).unwrap());
    let f = EmberFile::parse(&b).unwrap();
    assert!(
        meta_str(&f, "quantization.recipe")
            .contains("placed by measured sensitivity (the 4-bit budget"),
        "{}",
        meta_str(&f, "quantization.recipe")
    );
    let ms = matrices(&f);
    let tied = !ms.iter().any(|m| m.0 == "output.weight");
    let mut allowed = 0f64;
    let mut used = 0usize;
    for (name, dtype, n, bytes) in &ms {
        assert!(CANDIDATES.contains(dtype), "{name}: {dtype}");
        let head = name == "output.weight" || (tied && name == "token_embd.weight");
        allowed += *n as f64
            * if head {
                FOUR_BIT_HEAD_BITS
            } else {
                FOUR_BIT_BITS
            }
            / 8.0;
        used += bytes;
    }
    assert!(used as f64 <= allowed, "{used} > {allowed}");
    // Not everything in the cheapest type: the budget above 4.5 bits was spent.
    assert!(ms.iter().any(|m| m.1 != CANDIDATES[0]));

    // --target-size: the whole file within the size, most of it used.
    let cheap = std::fs::metadata(out.join("q4.ember")).unwrap().len();
    let target = cheap + cheap / 8;
    ember_convert::convert(&opts(
        "sized.ember",
        Recipe::Q4,
        Some(Budget::FileBytes(target)),
    ))
    .unwrap();
    let len = std::fs::metadata(out.join("sized.ember")).unwrap().len();
    assert!(len <= target && len > cheap, "{cheap} < {len} <= {target}");

    // Impossible budgets: an error naming the cheapest choice, and no file.
    for (name, budget) in [
        ("tiny-bpw.ember", Budget::BitsPerWeight(2.0)),
        ("tiny-size.ember", Budget::FileBytes(1000)),
    ] {
        let e = ember_convert::convert(&opts(name, Recipe::Q4, Some(budget)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("below") || e.contains("smaller than"), "{e}");
        assert!(!out.join(name).exists());
    }
}
