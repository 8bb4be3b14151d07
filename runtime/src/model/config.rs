//! Hyperparameters read from a `.ember` file's `model.*` keys (docs/FORMAT.md).

use ember_format::EmberFile;

use crate::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama, Mistral, SmolLM, Qwen2 (biases optional): RMSNorm, RoPE, SwiGLU.
    Llama,
    /// GPT-2: LayerNorm, learned positions, GELU MLP, biases everywhere.
    Gpt2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    Rms,
    Layer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnKind {
    SwiGlu,
    Gelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    Rope,
    Learned,
}

/// Letters as in DESIGN.md: V vocab, C channels, L layers, NH/KVH heads, HS head size,
/// F feed-forward width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    pub arch: Architecture,
    pub vocab_size: usize,
    pub context_length: usize,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub norm: NormKind,
    pub norm_eps: f32,
    pub ffn: FfnKind,
    pub positions: Positions,
    pub rope_theta: f32,
    pub tied_embeddings: bool,
}

/// Sanity bounds that keep a corrupt file from requesting absurd buffers.
const MAX_DIM: usize = 1 << 16;
const MAX_LAYERS: usize = 1024;
const MAX_VOCAB: usize = 1 << 22;
const MAX_CONTEXT: usize = 1 << 22;

fn get_u32(file: &EmberFile, key: &'static str) -> Result<usize, Error> {
    file.get(key)
        .and_then(|v| v.as_u32())
        .map(|v| v as usize)
        .ok_or(Error::MissingKey(key))
}

fn get_str<'a>(file: &EmberFile<'a>, key: &'static str) -> Result<&'a str, Error> {
    file.get(key)
        .and_then(|v| v.as_str())
        .ok_or(Error::MissingKey(key))
}

impl Config {
    pub fn from_file(file: &EmberFile) -> Result<Config, Error> {
        let arch = match get_str(file, "general.architecture")? {
            "llama" | "qwen2" | "mistral" => Architecture::Llama,
            "gpt2" => Architecture::Gpt2,
            _ => return Err(Error::UnsupportedArchitecture),
        };
        let norm = match get_str(file, "model.norm")? {
            "rms" => NormKind::Rms,
            "layer" => NormKind::Layer,
            _ => return Err(Error::BadConfig("model.norm must be 'rms' or 'layer'")),
        };
        let ffn = match get_str(file, "model.ffn")? {
            "swiglu" => FfnKind::SwiGlu,
            "gelu" => FfnKind::Gelu,
            _ => return Err(Error::BadConfig("model.ffn must be 'swiglu' or 'gelu'")),
        };
        let positions = match get_str(file, "model.positions")? {
            "rope" => Positions::Rope,
            "learned" => Positions::Learned,
            _ => {
                return Err(Error::BadConfig(
                    "model.positions must be 'rope' or 'learned'",
                ))
            }
        };
        let rope_theta = match positions {
            Positions::Rope => file
                .get("model.rope_theta")
                .and_then(|v| v.as_f32())
                .ok_or(Error::MissingKey("model.rope_theta"))?,
            Positions::Learned => 0.0,
        };
        let cfg = Config {
            arch,
            vocab_size: get_u32(file, "model.vocab_size")?,
            context_length: get_u32(file, "model.context_length")?,
            dim: get_u32(file, "model.embedding_dim")?,
            layers: get_u32(file, "model.layer_count")?,
            heads: get_u32(file, "model.head_count")?,
            kv_heads: get_u32(file, "model.kv_head_count")?,
            head_dim: get_u32(file, "model.head_dim")?,
            ffn_dim: get_u32(file, "model.ffn_dim")?,
            norm,
            norm_eps: file
                .get("model.norm_eps")
                .and_then(|v| v.as_f32())
                .ok_or(Error::MissingKey("model.norm_eps"))?,
            ffn,
            positions,
            rope_theta,
            tied_embeddings: file
                .get("model.tied_embeddings")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), Error> {
        let in_range = |v: usize, max: usize| v > 0 && v <= max;
        if !in_range(self.dim, MAX_DIM)
            || !in_range(self.ffn_dim, 4 * MAX_DIM)
            || !in_range(self.head_dim, MAX_DIM)
            || !in_range(self.heads, MAX_DIM)
        {
            return Err(Error::BadConfig("dimensions must be between 1 and 65536"));
        }
        if !in_range(self.layers, MAX_LAYERS) {
            return Err(Error::BadConfig("layer count must be between 1 and 1024"));
        }
        if !in_range(self.vocab_size, MAX_VOCAB) || !in_range(self.context_length, MAX_CONTEXT) {
            return Err(Error::BadConfig("vocabulary or context size out of range"));
        }
        if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return Err(Error::BadConfig(
                "head count must be a multiple of the KV head count",
            ));
        }
        if self.positions == Positions::Rope && !self.head_dim.is_multiple_of(2) {
            return Err(Error::BadConfig("RoPE needs an even head size"));
        }
        if !(self.norm_eps >= 0.0 && self.norm_eps < 1.0) {
            return Err(Error::BadConfig("norm epsilon out of range"));
        }
        Ok(())
    }

    /// NH·HS: width of the attention's query projection.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// KVH·HS: width of each of K and V per position.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}
