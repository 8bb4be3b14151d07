//! The model's hyperparameters and their Hugging Face `LlamaConfig` form.
use serde_json::{json, Value};

use crate::error::{Result, TrainError};

/// A Llama-style decoder. Dimension letters: V vocab, C dim, L layers, NH/KVH heads,
/// HS = C / NH head size, F FFN width, T context.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn: usize,
    pub ctx: usize,
    pub norm_eps: f64,
    pub rope_theta: f64,
    pub tie_embeddings: bool,
}

impl ModelConfig {
    pub fn head_size(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the fused q|k|v projection output: (NH + 2 KVH) * HS.
    pub fn qkv_dim(&self) -> usize {
        (self.n_heads + 2 * self.n_kv_heads) * self.head_size()
    }

    /// Reject shapes the model cannot have, with one clear message.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        let limit = 1 << 16;
        for (name, v) in [
            ("--dim", self.dim),
            ("--layers", self.n_layers),
            ("--heads", self.n_heads),
            ("--kv-heads", self.n_kv_heads),
            ("--ffn", self.ffn),
            ("--ctx", self.ctx),
            ("vocab size", self.vocab_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
            if v > limit && name != "vocab size" {
                return bad(format!("{name} = {v} is absurdly large (limit {limit})"));
            }
        }
        if self.n_layers > 256 {
            return bad(format!(
                "--layers = {} is absurdly large (limit 256)",
                self.n_layers
            ));
        }
        if self.vocab_size > 1 << 20 {
            return bad(format!(
                "vocab size {} is too large (limit 2^20)",
                self.vocab_size
            ));
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return bad(format!(
                "--dim {} is not a multiple of --heads {}",
                self.dim, self.n_heads
            ));
        }
        if !self.head_size().is_multiple_of(2) {
            return bad(format!(
                "head size {} (dim / heads) must be even for RoPE",
                self.head_size()
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "--heads {} is not a multiple of --kv-heads {}",
                self.n_heads, self.n_kv_heads
            ));
        }
        // What Ember's runtime will load: its one hyperparameter record and validator.
        self.hparams()
            .map_err(|e| TrainError::Config(format!("Ember could not run this model: {e}")))?;
        let params = crate::model::Layout::new(self).n_params as u128;
        if params > 2_000_000_000 {
            return bad(format!(
                "{params} parameters do not fit this trainer (limit 2e9)"
            ));
        }
        Ok(())
    }

    /// The model as Ember's hyperparameter record (`ember_format::Hparams`, what the
    /// converter writes and the runtime loads for a `llama` model), validated by it.
    pub fn hparams(
        &self,
    ) -> std::result::Result<ember_format::Hparams, ember_format::HparamsError> {
        use ember_format::schema::keys;
        let mut w = ember_format::Writer::new();
        w.set_str(keys::ARCHITECTURE, ember_format::schema::Arch::Llama.name());
        for (key, v) in [
            (keys::VOCAB_SIZE, self.vocab_size),
            (keys::CONTEXT_LENGTH, self.ctx),
            (keys::EMBEDDING_DIM, self.dim),
            (keys::LAYER_COUNT, self.n_layers),
            (keys::HEAD_COUNT, self.n_heads),
            (keys::KV_HEAD_COUNT, self.n_kv_heads),
            (keys::HEAD_DIM, self.head_size()),
            (keys::FFN_DIM, self.ffn),
        ] {
            w.set_u32(key, u32::try_from(v).unwrap_or(u32::MAX));
        }
        w.set_f32(keys::NORM_EPS, self.norm_eps as f32);
        w.set_f32(keys::ROPE_THETA, self.rope_theta as f32);
        w.set_bool(keys::TIED_EMBEDDINGS, self.tie_embeddings);
        ember_format::Hparams::from_metadata(&w)
    }

    /// `config.json` as transformers' `LlamaConfig` reads it.
    pub fn to_hf_json(&self) -> Value {
        json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.dim,
            "intermediate_size": self.ffn,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_size(),
            "max_position_embeddings": self.ctx,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": null,
            "hidden_act": "silu",
            "attention_bias": false,
            "attention_dropout": 0.0,
            "mlp_bias": false,
            "tie_word_embeddings": self.tie_embeddings,
            "initializer_range": 0.02,
            "torch_dtype": "float32",
            "use_cache": true,
        })
    }

    pub fn from_hf_json(v: &Value) -> Result<Self> {
        let get = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| TrainError::Format(format!("config.json: missing integer `{k}`")))
        };
        let n_heads = get("num_attention_heads")?;
        let rope_theta = v
            .get("rope_theta")
            .and_then(Value::as_f64)
            .or_else(|| {
                v.pointer("/rope_parameters/rope_theta")
                    .and_then(Value::as_f64)
            })
            .unwrap_or(10000.0);
        let cfg = ModelConfig {
            vocab_size: get("vocab_size")?,
            dim: get("hidden_size")?,
            n_layers: get("num_hidden_layers")?,
            n_heads,
            n_kv_heads: get("num_key_value_heads").unwrap_or(n_heads),
            ffn: get("intermediate_size")?,
            ctx: get("max_position_embeddings")?,
            norm_eps: v
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            tie_embeddings: v
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        if let Some(hd) = v.get("head_dim").and_then(Value::as_u64) {
            if hd as usize * n_heads != cfg.dim {
                return Err(TrainError::Format(format!(
                    "config.json: head_dim {hd} * heads {n_heads} != hidden_size {}",
                    cfg.dim
                )));
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 64,
            dim: 32,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            ffn: 64,
            ctx: 32,
            norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_embeddings: true,
        }
    }

    /// The trainer's shapes are checked by the record Ember loads models with: what it
    /// trains, the runtime runs.
    #[test]
    fn configs_are_checked_by_the_runtime_record() {
        let hp = tiny().hparams().unwrap();
        assert_eq!((hp.dim, hp.layers, hp.heads, hp.kv_heads), (32, 2, 4, 2));
        assert_eq!((hp.head_dim, hp.ffn_dim, hp.context_length), (8, 64, 32));
        tiny().validate().unwrap();
        let e = ModelConfig {
            norm_eps: 2.0,
            ..tiny()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("Ember could not run this model") && e.contains("norm epsilon"),
            "{e}"
        );
    }
}
