//! A model trained by `ember train` and converted by `ember convert` gives, in the runtime,
//! the logits of the trainer's own forward pass (which scripts/check-trainer-hf.sh shows
//! equal to transformers' LlamaForCausalLM within 3e-7): within 1e-4 of the row's largest
//! |logit|. Needs no shared fixtures: the corpus is generated here.
mod common;

use std::path::Path;

use common::ember;
use ember_convert::Recipe;
use ember_format::{AlignedBytes, EmberFile};
use ember_runtime::{HeapSession, Logits, Model};
use ember_train::bpe::Tokenizer;
use ember_train::checkpoint::{load_params, read_json};
use ember_train::model::{Acts, Model as TrainModel, ModelConfig};

fn corpus(dir: &Path) -> std::path::PathBuf {
    let lines = [
        "First Citizen: Before we proceed any further, hear me speak.",
        "All: Speak, speak. You are all resolved rather to die than to famish?",
        "Second Citizen: One word, good citizens. We are accounted poor citizens.",
        "MENENIUS: What work's, my countrymen, in hand? where go you with bats and clubs?",
    ];
    let text: String = (0..40)
        .map(|i| format!("{}\n", lines[i % lines.len()]))
        .collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// Trains with `extra` flags, then compares runtime and trainer logits on `probe`.
fn check(name: &str, extra: &[&str]) {
    let dir = std::env::temp_dir().join(format!("ember-tcr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = corpus(&dir);
    let out = dir.join("run");
    let status = ember()
        .args([
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--steps",
            "12",
            "--eval-every",
            "0",
            "--eval-batches",
            "1",
            "--quiet",
        ])
        .args([
            "--layers", "2", "--dim", "32", "--ffn", "64", "--ctx", "32", "--batch", "4",
        ])
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success(), "ember train failed");

    // The trainer's forward pass on the probe.
    let probe = "First Citizen: speak, citizens.";
    let tok = Tokenizer::from_hf_json(&read_json(&out.join("tokenizer.json")).unwrap()).unwrap();
    let cfg = ModelConfig::from_hf_json(&read_json(&out.join("config.json")).unwrap()).unwrap();
    let tmodel = TrainModel::<f32>::new(&cfg);
    let params = load_params(&out.join("model.safetensors"), &tmodel.layout).unwrap();
    let ids = tok.encode(probe);
    let t = ids.len().min(cfg.ctx);
    let mut acts = Acts::new(&cfg, 1, t);
    tmodel.forward(&params, &mut acts, &ids[..t], None);

    // The same checkpoint converted and run by the runtime.
    let (writer, _) = ember_convert::build(&out, Some(Recipe::F32), false).unwrap();
    let bytes = AlignedBytes::from(writer.to_vec());
    let file = EmberFile::parse(&bytes).unwrap();
    let model = Model::load(&file).unwrap();
    let runtime_tok = ember_runtime::tokenizer::Tokenizer::from_file(&file).unwrap();
    let mut runtime_ids = Vec::new();
    runtime_tok.encode(probe, &mut runtime_ids);
    assert_eq!(runtime_ids, ids, "{name}: tokenizer ids differ");
    let ids: Vec<u32> = ids[..t].to_vec();
    let mut session = HeapSession::with_options(&model, t, t, Logits::All).unwrap();
    let logits = session.forward_all(&ids).unwrap();
    let v = model.config.vocab_size;
    let mut worst = 0f32;
    for (row, want) in logits.chunks(v).zip(acts.logits.chunks(v)) {
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        for (a, b) in row.iter().zip(want) {
            worst = worst.max((a - b).abs() / scale);
        }
    }
    eprintln!("{name}: worst relative logit difference {worst:.2e}");
    assert!(
        worst <= 1e-4,
        "{name}: runtime and trainer logits differ by {worst:.2e}"
    );

    // And through the CLI: convert to a file, greedy generation runs.
    let model_path = dir.join("model.ember");
    let status = ember()
        .args([
            "convert",
            out.to_str().unwrap(),
            "-o",
            model_path.to_str().unwrap(),
            "--quant",
            "f32",
            "--quiet",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let run = ember()
        .args([
            "run",
            model_path.to_str().unwrap(),
            "-p",
            "First",
            "-n",
            "8",
            "--temp",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["ids"].as_array().unwrap().len(), 8);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn char_model_trained_by_ember_runs_in_the_runtime() {
    check("char", &["--tokenizer", "char", "--heads", "4"]);
}

#[test]
fn bpe_gqa_tied_model_trained_by_ember_runs_in_the_runtime() {
    check(
        "bpe",
        &[
            "--tokenizer",
            "bpe:300",
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--tie-embeddings",
        ],
    );
}
