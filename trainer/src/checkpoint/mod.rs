//! Checkpoints in Hugging Face layout (model.safetensors, config.json, tokenizer.json,
//! tokenizer_config.json) plus the trainer's own resume state (optimizer.safetensors,
//! trainer_state.json). Every file is written to a temporary name, then renamed.
pub mod safetensors_io;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Result, TrainError};
use crate::model::{Layout, ModelConfig};
use crate::optim::AdamW;

pub use safetensors_io::{load_params, read_tensors, save_params};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so a reader never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

pub fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v).expect("JSON of plain values");
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

pub fn read_json(path: &Path) -> Result<Value> {
    let s = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| TrainError::Format(format!("{}: {e}", path.display())))
}

/// The trainer's position in a run, saved next to the model for `--resume`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    pub step: usize,
    pub rng_state: u64,
    pub tokens_seen: u64,
    /// A fingerprint of the prepared training data, so a resume on other data is caught.
    pub data_hash: u64,
    pub elapsed_s: f64,
}

/// Everything a checkpoint holds.
pub struct Checkpoint {
    pub cfg: ModelConfig,
    pub params: Vec<f32>,
    pub tokenizer_json: Value,
    pub opt_m: Vec<f32>,
    pub opt_v: Vec<f32>,
    pub opt_t: u64,
    pub state: TrainState,
}

/// Saves model, tokenizer, optimizer and state into `dir`.
pub fn save(
    dir: &Path,
    cfg: &ModelConfig,
    params: &[f32],
    tokenizer_json: &Value,
    opt: &AdamW,
    state: &TrainState,
) -> Result<()> {
    let layout = Layout::new(cfg);
    write_json(&dir.join("config.json"), &cfg.to_hf_json())?;
    save_params(&dir.join("model.safetensors"), &layout, params)?;
    write_json(&dir.join("tokenizer.json"), tokenizer_json)?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": cfg.ctx,
            "clean_up_tokenization_spaces": false,
        }),
    )?;
    write_json(
        &dir.join("generation_config.json"),
        &json!({"do_sample": false}),
    )?;
    let n = [opt.m.len()];
    let meta = BTreeMap::from([("step".to_string(), opt.t.to_string())]);
    let bytes =
        safetensors_io::to_bytes(&[("adamw.m", &n, &opt.m), ("adamw.v", &n, &opt.v)], &meta);
    write_atomic(&dir.join("optimizer.safetensors"), &bytes)?;
    write_json(
        &dir.join("trainer_state.json"),
        &json!({
            "step": state.step,
            "adamw_t": opt.t,
            "rng_state": state.rng_state.to_string(),
            "tokens_seen": state.tokens_seen,
            "data_hash": state.data_hash.to_string(),
            "elapsed_s": state.elapsed_s,
        }),
    )
}

/// Loads a checkpoint written by [`save`].
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let cfg = ModelConfig::from_hf_json(&read_json(&dir.join("config.json"))?)?;
    let layout = Layout::new(&cfg);
    let params = load_params(&dir.join("model.safetensors"), &layout)?;
    let tokenizer_json = read_json(&dir.join("tokenizer.json"))?;
    let st = read_json(&dir.join("trainer_state.json"))?;
    let bad = |k: &str| {
        TrainError::Format(format!(
            "{}: bad or missing `{k}`",
            dir.join("trainer_state.json").display()
        ))
    };
    let num = |k: &str| st.get(k).and_then(Value::as_u64).ok_or_else(|| bad(k));
    let big = |k: &str| {
        st.get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| bad(k))
    };
    let state = TrainState {
        step: num("step")? as usize,
        rng_state: big("rng_state")?,
        tokens_seen: num("tokens_seen")?,
        data_hash: big("data_hash")?,
        elapsed_s: st.get("elapsed_s").and_then(Value::as_f64).unwrap_or(0.0),
    };
    let mut opt = read_tensors(&dir.join("optimizer.safetensors"))?;
    let mut take = |k: &str| -> Result<Vec<f32>> {
        let (_, v) = opt
            .remove(k)
            .ok_or_else(|| TrainError::Format(format!("optimizer.safetensors: missing {k}")))?;
        if v.len() != layout.n_params {
            return Err(TrainError::Format(format!(
                "optimizer.safetensors: {k} has {} values, model has {}",
                v.len(),
                layout.n_params
            )));
        }
        Ok(v)
    };
    let opt_m = take("adamw.m")?;
    let opt_v = take("adamw.v")?;
    Ok(Checkpoint {
        cfg,
        params,
        tokenizer_json,
        opt_m,
        opt_v,
        opt_t: num("adamw_t")?,
        state,
    })
}
