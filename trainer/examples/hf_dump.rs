//! Prints, as JSON, what the trainer's own code computes for a checkpoint directory and a
//! text: the token ids and the logits of the first `ctx` tokens. scripts/check-trainer-hf.sh
//! compares them with Hugging Face `tokenizers` and `transformers`.
//!
//!     cargo run -p ember-train --release --example hf_dump -- RUN_DIR TEXT_FILE
use std::path::PathBuf;

use ember_train::bpe::Tokenizer;
use ember_train::checkpoint::{load_params, read_json};
use ember_train::model::{Acts, Model, ModelConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(text)) = (args.get(1), args.get(2)) else {
        return Err("usage: hf_dump RUN_DIR TEXT_FILE".into());
    };
    let dir = PathBuf::from(dir);
    let text = std::fs::read_to_string(text)?;
    let tok = Tokenizer::from_hf_json(&read_json(&dir.join("tokenizer.json"))?)?;
    let cfg = ModelConfig::from_hf_json(&read_json(&dir.join("config.json"))?)?;
    let model = Model::<f32>::new(&cfg);
    let params = load_params(&dir.join("model.safetensors"), &model.layout)?;
    let ids = tok.encode(&text);
    let t = ids.len().min(cfg.ctx);
    let mut acts = Acts::new(&cfg, 1, t);
    model.forward(&params, &mut acts, &ids[..t], None);
    let logits: Vec<&[f32]> = acts.logits.chunks(cfg.vocab_size).take(t).collect();
    println!(
        "{}",
        serde_json::json!({"ids": ids, "logits": logits, "decoded": tok.decode(&ids)})
    );
    Ok(())
}
