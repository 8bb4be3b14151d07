//! The model description the importers fill in and the writer turns into `model.*` and
//! `general.*` keys (docs/FORMAT.md, "Model conventions").

use ember_format::Writer;

use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama family: RMSNorm, SwiGLU, RoPE (also Mistral, Qwen2 with biases, SmolLM).
    Llama,
    /// GPT-2: LayerNorm with biases, GELU (tanh), learned positions.
    Gpt2,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Gpt2 => "gpt2",
        }
    }
}

/// Hyperparameters, in the names of docs/FORMAT.md: V, C, L, NH, KVH, HS, F.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub name: String,
    pub vocab_size: usize,
    pub context_length: usize,
    pub embedding_dim: usize,
    pub layer_count: usize,
    pub head_count: usize,
    pub kv_head_count: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub norm_eps: f32,
    /// RoPE base (Llama only).
    pub rope_theta: Option<f32>,
    pub tied_embeddings: bool,
}

fn u32_of(key: &str, v: usize) -> Result<u32> {
    match u32::try_from(v) {
        Ok(x) if x > 0 => Ok(x),
        _ => crate::bail!("model parameter {key} = {v} is out of range"),
    }
}

impl ModelConfig {
    /// Consistency checks shared by every importer.
    pub fn validate(&self) -> Result<()> {
        let c = self;
        for (k, v) in [
            ("vocab_size", c.vocab_size),
            ("context_length", c.context_length),
            ("embedding_dim", c.embedding_dim),
            ("layer_count", c.layer_count),
            ("head_count", c.head_count),
            ("kv_head_count", c.kv_head_count),
            ("head_dim", c.head_dim),
            ("ffn_dim", c.ffn_dim),
        ] {
            u32_of(k, v)?;
        }
        if !c.head_count.is_multiple_of(c.kv_head_count) {
            crate::bail!(
                "head count {} is not a multiple of the KV head count {}",
                c.head_count,
                c.kv_head_count
            );
        }
        if c.arch == Arch::Llama && !c.head_dim.is_multiple_of(2) {
            crate::bail!("RoPE needs an even head_dim, got {}", c.head_dim);
        }
        if !(c.norm_eps.is_finite() && c.norm_eps >= 0.0) {
            crate::bail!(
                "norm epsilon {} is not a finite non-negative number",
                c.norm_eps
            );
        }
        if let Some(t) = c.rope_theta {
            if !(t.is_finite() && t > 0.0) {
                crate::bail!("rope theta {t} is not a positive number");
            }
        }
        Ok(())
    }

    /// Each layer has tensors of its own, so a source with `n_tensors` tensors cannot have
    /// more layers than that: rejects absurd counts before anything is sized by them.
    pub fn check_layer_count(&self, n_tensors: usize) -> Result<()> {
        if self.layer_count > n_tensors {
            crate::bail!(
                "the config has {} layers but the checkpoint holds only {} tensors",
                self.layer_count,
                n_tensors
            );
        }
        Ok(())
    }

    /// Writes the `model.*` keys and `general.architecture` / `general.name`.
    pub fn write(&self, w: &mut Writer) -> Result<()> {
        let c = self;
        w.set_str("general.architecture", c.arch.name());
        w.set_str("general.name", &c.name);
        w.set_u32("model.vocab_size", u32_of("vocab_size", c.vocab_size)?);
        w.set_u32(
            "model.context_length",
            u32_of("context_length", c.context_length)?,
        );
        w.set_u32(
            "model.embedding_dim",
            u32_of("embedding_dim", c.embedding_dim)?,
        );
        w.set_u32("model.layer_count", u32_of("layer_count", c.layer_count)?);
        w.set_u32("model.head_count", u32_of("head_count", c.head_count)?);
        w.set_u32(
            "model.kv_head_count",
            u32_of("kv_head_count", c.kv_head_count)?,
        );
        w.set_u32("model.head_dim", u32_of("head_dim", c.head_dim)?);
        w.set_u32("model.ffn_dim", u32_of("ffn_dim", c.ffn_dim)?);
        w.set_f32("model.norm_eps", c.norm_eps);
        w.set_bool("model.tied_embeddings", c.tied_embeddings);
        match c.arch {
            Arch::Llama => {
                w.set_str("model.norm", "rms");
                w.set_str("model.ffn", "swiglu");
                w.set_str("model.positions", "rope");
                w.set_f32("model.rope_theta", c.rope_theta.unwrap_or(10_000.0));
            }
            Arch::Gpt2 => {
                w.set_str("model.norm", "layer");
                w.set_str("model.ffn", "gelu");
                w.set_str("model.positions", "learned");
            }
        }
        Ok(())
    }

    /// Every tensor the runtime expects, with its shape; `bool` is "required" (biases are
    /// optional). Importers check their sources against this list.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>, bool)> {
        let c = self;
        let (v, e, f) = (c.vocab_size, c.embedding_dim, c.ffn_dim);
        let q = c.head_count * c.head_dim;
        let kv = c.kv_head_count * c.head_dim;
        let gpt2 = c.arch == Arch::Gpt2;
        let mut out = vec![("token_embd.weight".to_string(), vec![v, e], true)];
        if gpt2 {
            out.push(("pos_embd.weight".into(), vec![c.context_length, e], true));
        }
        for n in 0..c.layer_count {
            let mut t = |name: &str, shape: Vec<usize>, required: bool| {
                out.push((format!("blk.{n}.{name}"), shape, required))
            };
            t("attn_norm.weight", vec![e], true);
            t("attn_norm.bias", vec![e], gpt2);
            t("attn_q.weight", vec![q, e], true);
            t("attn_q.bias", vec![q], gpt2);
            t("attn_k.weight", vec![kv, e], true);
            t("attn_k.bias", vec![kv], gpt2);
            t("attn_v.weight", vec![kv, e], true);
            t("attn_v.bias", vec![kv], gpt2);
            t("attn_output.weight", vec![e, q], true);
            t("attn_output.bias", vec![e], gpt2);
            t("ffn_norm.weight", vec![e], true);
            t("ffn_norm.bias", vec![e], gpt2);
            if !gpt2 {
                t("ffn_gate.weight", vec![f, e], true);
                t("ffn_gate.bias", vec![f], false);
            }
            t("ffn_up.weight", vec![f, e], true);
            t("ffn_up.bias", vec![f], gpt2);
            t("ffn_down.weight", vec![e, f], true);
            t("ffn_down.bias", vec![e], gpt2);
        }
        out.push(("output_norm.weight".into(), vec![e], true));
        out.push(("output_norm.bias".into(), vec![e], gpt2));
        if !c.tied_embeddings {
            out.push(("output.weight".into(), vec![v, e], true));
        }
        out
    }
}
