//! Hyperparameters read from a `.ember` file's `model.*` keys (docs/FORMAT.md), with the
//! architecture's features from the schema (`ember_format::schema`).

use ember_format::schema::{
    keys, Arch, Attention, Dims, EmbedScale, Experts, Features, LayerFfn, LayerKv, LayerPositions,
    LayerSpec, PerLayerInputs, Positions,
};
use ember_format::EmberFile;

use crate::math::sqrt64;
use crate::Error;

/// Sanity bounds that keep a corrupt file from requesting absurd buffers.
const MAX_DIM: usize = 1 << 16;
const MAX_LAYERS: usize = 1024;
const MAX_VOCAB: usize = 1 << 22;
const MAX_CONTEXT: usize = 1 << 22;

/// A set of layers, one bit each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct LayerSet([u64; MAX_LAYERS / 64]);

impl LayerSet {
    fn contains(&self, layer: usize) -> bool {
        layer < MAX_LAYERS && self.0[layer / 64] >> (layer % 64) & 1 == 1
    }

    fn insert(&mut self, layer: usize) {
        self.0[layer / 64] |= 1 << (layer % 64);
    }

    /// Members among the first `layers`.
    fn count_before(&self, layers: usize) -> usize {
        let layers = layers.min(MAX_LAYERS);
        let full: usize = self.0[..layers / 64]
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum();
        let rest = match layers % 64 {
            0 => 0,
            r => (self.0[layers / 64] & ((1u64 << r) - 1)).count_ones() as usize,
        };
        full + rest
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// What each layer does ([`LayerSpec`]), as one bit set per non-default choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LayerKinds {
    local: LayerSet,
    no_positions: LayerSet,
    dense: LayerSet,
    experts: LayerSet,
    shared_kv: LayerSet,
}

impl LayerKinds {
    pub fn attention(&self, layer: usize) -> Attention {
        if self.local.contains(layer) {
            Attention::Local
        } else {
            Attention::Global
        }
    }

    /// Layer `layer`'s kinds.
    pub fn spec(&self, layer: usize) -> LayerSpec {
        LayerSpec {
            attention: self.attention(layer),
            positions: if self.no_positions.contains(layer) {
                LayerPositions::None
            } else {
                LayerPositions::Model
            },
            kv: if self.shared_kv.contains(layer) {
                LayerKv::Shared
            } else {
                LayerKv::Own
            },
            ffn: if self.experts.contains(layer) {
                LayerFfn::Experts
            } else {
                LayerFfn::Dense
            },
        }
    }

    /// Local layers among the first `layers`.
    pub fn local_before(&self, layers: usize) -> usize {
        self.local.count_before(layers)
    }

    pub fn any_local(&self) -> bool {
        !self.local.is_empty()
    }

    /// Layers among the first `layers` with their own keys and values of kind `kind`.
    pub fn own_kv_before(&self, layers: usize, kind: Attention) -> usize {
        (0..layers.min(MAX_LAYERS))
            .filter(|&l| !self.shared_kv.contains(l) && self.attention(l) == kind)
            .count()
    }

    pub fn any_experts(&self) -> bool {
        !self.experts.is_empty()
    }

    pub fn any_dense(&self) -> bool {
        !self.dense.is_empty()
    }
}

/// Reads a per-layer list of u8 codes (`key`), calling `set(layer, code)`; absent: nothing.
fn layer_codes(
    file: &EmberFile,
    key: &'static str,
    layers: usize,
    mut set: impl FnMut(usize, u8) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(v) = file.get(key) else {
        return Ok(());
    };
    let codes = v.as_bytes().ok_or(Error::MissingKey(key))?;
    if codes.len() != layers {
        return Err(Error::BadConfig(
            "a per-layer list (model.layer_*) needs one entry per layer",
        ));
    }
    codes.iter().enumerate().try_for_each(|(i, &c)| set(i, c))
}

/// Letters as in DESIGN.md: V vocab, C channels, L layers, NH/KVH heads, HS head size,
/// F feed-forward width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    pub arch: Arch,
    /// What the blocks do, from the architecture.
    pub features: Features,
    pub vocab_size: usize,
    pub context_length: usize,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub norm_eps: f32,
    /// RoPE base of global layers (frequencies from `rope.inv_freq` when the file has it).
    pub rope_theta: f32,
    /// RoPE base of local layers.
    pub rope_theta_local: f32,
    /// Multiplies RoPE's cos and sin (YaRN, LongRoPE); 1 otherwise.
    pub rope_attention_factor: f32,
    /// LongRoPE: sessions of more positions than this use `rope.inv_freq_long`.
    pub rope_long_context: Option<usize>,
    pub tied_embeddings: bool,
    /// Positions a local layer sees (the current one included); 0 when no layer is local.
    pub sliding_window: usize,
    pub layer_kinds: LayerKinds,
    /// Multiplies q·k before the softmax.
    pub attention_scale: f32,
    /// Multiplies token embeddings.
    pub embedding_scale: f32,
    /// Dimensions of each global layer's heads RoPE rotates (even, ≤ HS; local layers rotate
    /// all of theirs).
    pub rope_dim: usize,
    /// HS of global layers (`head_dim` is local layers').
    pub head_dim_global: usize,
    /// F of layers that share keys and values.
    pub ffn_dim_shared_kv: usize,
    /// P: each layer's per-layer input width (0: none).
    pub per_layer_dim: usize,
    /// Mixture of experts: N experts per layer, k used per token, each FE wide; the k
    /// weights renormalised to sum to 1. All 0 / false without experts.
    pub experts: usize,
    pub experts_used: usize,
    pub expert_ffn_dim: usize,
    pub expert_weights_norm: bool,
    /// logits = cap · tanh(logits / cap) when set.
    pub final_logit_softcap: Option<f32>,
}

fn get_u32(file: &EmberFile, key: &'static str) -> Result<usize, Error> {
    file.get(key)
        .and_then(|v| v.as_u32())
        .map(|v| v as usize)
        .ok_or(Error::MissingKey(key))
}

fn get_f32(file: &EmberFile, key: &'static str) -> Result<f32, Error> {
    file.get(key)
        .and_then(|v| v.as_f32())
        .ok_or(Error::MissingKey(key))
}

/// An optional f32 key: absent is None, present with another type is an error.
fn opt_f32(file: &EmberFile, key: &'static str) -> Result<Option<f32>, Error> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => v.as_f32().map(Some).ok_or(Error::MissingKey(key)),
    }
}

/// Older files name the block kinds in keys; they must agree with the architecture.
fn check_legacy(file: &EmberFile, key: &'static str, expected: &str) -> Result<(), Error> {
    match file.get(key).map(|v| v.as_str()) {
        None => Ok(()),
        Some(Some(v)) if v == expected => Ok(()),
        Some(_) => Err(Error::BadConfig(
            "model.norm/ffn/positions disagree with general.architecture",
        )),
    }
}

impl Config {
    pub fn from_file(file: &EmberFile) -> Result<Config, Error> {
        let name = file
            .get(keys::ARCHITECTURE)
            .and_then(|v| v.as_str())
            .ok_or(Error::MissingKey(keys::ARCHITECTURE))?;
        let arch = Arch::from_name(name).ok_or(Error::UnsupportedArchitecture)?;
        let features = arch.features();
        // Files of the first architectures may name their block kinds (0.1 converters).
        let legacy = match arch {
            Arch::Gpt2 => Some(("layer", "gelu", "learned")),
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 => Some(("rms", "swiglu", "rope")),
            _ => None,
        };
        if let Some((norm, ffn, pos)) = legacy {
            check_legacy(file, keys::LEGACY_NORM, norm)?;
            check_legacy(file, keys::LEGACY_FFN, ffn)?;
            check_legacy(file, keys::LEGACY_POSITIONS, pos)?;
        }
        let rope_theta = match features.positions {
            Positions::Rope => get_f32(file, keys::ROPE_THETA)?,
            Positions::Learned => 0.0,
        };
        let head_dim = get_u32(file, keys::HEAD_DIM)?;
        let ffn_dim = get_u32(file, keys::FFN_DIM)?;
        let dim = get_u32(file, keys::EMBEDDING_DIM)?;
        let layers = get_u32(file, keys::LAYER_COUNT)?;
        if layers > MAX_LAYERS {
            return Err(Error::BadConfig("layer count must be between 1 and 1024"));
        }
        let mut layer_kinds = LayerKinds::default();
        layer_codes(file, keys::LAYER_TYPES, layers, |i, c| {
            match Attention::from_code(c) {
                Some(Attention::Local) => layer_kinds.local.insert(i),
                Some(Attention::Global) => {}
                None => return Err(Error::BadConfig("unknown layer type in model.layer_types")),
            }
            Ok(())
        })?;
        layer_codes(file, keys::LAYER_POSITIONS, layers, |i, c| {
            match LayerPositions::from_code(c) {
                Some(LayerPositions::None) => layer_kinds.no_positions.insert(i),
                Some(LayerPositions::Model) => {}
                None => {
                    return Err(Error::BadConfig(
                        "unknown position kind in model.layer_positions",
                    ))
                }
            }
            Ok(())
        })?;
        let moe = features.experts == Experts::Routed;
        if moe {
            (0..layers).for_each(|i| layer_kinds.experts.insert(i));
        }
        layer_codes(file, keys::LAYER_FFN, layers, |i, c| {
            match LayerFfn::from_code(c) {
                Some(LayerFfn::Dense) => {
                    layer_kinds.dense.insert(i);
                    layer_kinds.experts.0[i / 64] &= !(1 << (i % 64));
                }
                Some(LayerFfn::Experts) if moe => {}
                _ => {
                    return Err(Error::BadConfig(
                        "unknown feed-forward kind in model.layer_ffn",
                    ))
                }
            }
            Ok(())
        })?;
        if !moe {
            (0..layers).for_each(|i| layer_kinds.dense.insert(i));
        }
        layer_codes(file, keys::LAYER_KV, layers, |i, c| {
            match LayerKv::from_code(c) {
                Some(LayerKv::Shared) => layer_kinds.shared_kv.insert(i),
                Some(LayerKv::Own) => {}
                None => return Err(Error::BadConfig("unknown kind in model.layer_kv")),
            }
            Ok(())
        })?;
        // A shared layer reads the cache of an earlier layer of its kind with its own.
        for i in 0..layers {
            let kind = layer_kinds.attention(i);
            if layer_kinds.shared_kv.contains(i) && layer_kinds.own_kv_before(i, kind) == 0 {
                return Err(Error::BadConfig(
                    "a layer shares keys and values with no earlier layer of its kind",
                ));
            }
        }
        let opt_u32 = |key: &'static str| match file.get(key) {
            None => Ok(None),
            Some(_) => get_u32(file, key).map(Some),
        };
        let head_dim_global = opt_u32(keys::HEAD_DIM_GLOBAL)?.unwrap_or(head_dim);
        let (experts, experts_used, expert_ffn_dim) = if moe {
            (
                get_u32(file, keys::EXPERT_COUNT)?,
                get_u32(file, keys::EXPERT_USED_COUNT)?,
                get_u32(file, keys::EXPERT_FFN_DIM)?,
            )
        } else {
            (0, 0, 0)
        };
        let sliding_window = match file.get(keys::SLIDING_WINDOW) {
            Some(_) => get_u32(file, keys::SLIDING_WINDOW)?,
            None => 0,
        };
        if layer_kinds.any_local() && sliding_window == 0 {
            return Err(Error::BadConfig(
                "local layers need model.sliding_window > 0",
            ));
        }
        let embedding_scale = match features.embed_scale {
            EmbedScale::One => 1.0,
            EmbedScale::SqrtDim => sqrt64(dim as f64) as f32,
        };
        let final_logit_softcap = opt_f32(file, keys::FINAL_LOGIT_SOFTCAP)?;
        let cfg = Config {
            arch,
            features,
            vocab_size: get_u32(file, keys::VOCAB_SIZE)?,
            context_length: get_u32(file, keys::CONTEXT_LENGTH)?,
            dim,
            layers,
            heads: get_u32(file, keys::HEAD_COUNT)?,
            kv_heads: get_u32(file, keys::KV_HEAD_COUNT)?,
            head_dim,
            ffn_dim,
            norm_eps: get_f32(file, keys::NORM_EPS)?,
            rope_theta,
            rope_theta_local: opt_f32(file, keys::ROPE_THETA_LOCAL)?.unwrap_or(rope_theta),
            rope_attention_factor: opt_f32(file, keys::ROPE_ATTENTION_FACTOR)?.unwrap_or(1.0),
            rope_long_context: opt_u32(keys::ROPE_LONG_CONTEXT)?,
            tied_embeddings: file
                .get(keys::TIED_EMBEDDINGS)
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            sliding_window,
            layer_kinds,
            attention_scale: match opt_f32(file, keys::ATTENTION_SCALE)? {
                Some(s) => s,
                None => 1.0 / sqrt64(head_dim as f64) as f32,
            },
            embedding_scale,
            final_logit_softcap,
            rope_dim: opt_u32(keys::ROPE_DIM)?.unwrap_or(head_dim_global),
            head_dim_global,
            ffn_dim_shared_kv: opt_u32(keys::FFN_DIM_SHARED_KV)?.unwrap_or(ffn_dim),
            per_layer_dim: match features.per_layer_inputs {
                PerLayerInputs::Gated => get_u32(file, keys::PER_LAYER_INPUT_DIM)?,
                PerLayerInputs::None => 0,
            },
            experts,
            experts_used,
            expert_ffn_dim,
            expert_weights_norm: file
                .get(keys::EXPERT_WEIGHTS_NORM)
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
            || !in_range(self.head_dim_global, MAX_DIM)
            || !in_range(self.ffn_dim_shared_kv, 4 * MAX_DIM)
            || self.per_layer_dim > MAX_DIM
            || (self.features.per_layer_inputs == PerLayerInputs::Gated
                && (self.per_layer_dim == 0 || self.per_layer_dim * self.layers > 4 * MAX_DIM))
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
        if self.features.positions == Positions::Rope
            && (!self.rope_dim.is_multiple_of(2)
                || self.rope_dim == 0
                || self.rope_dim > self.head_dim_global
                || !self.head_dim.is_multiple_of(2))
        {
            return Err(Error::BadConfig(
                "RoPE needs an even number of rotated dimensions, at most the head size",
            ));
        }
        if self.features.experts == Experts::Routed
            && (!in_range(self.experts, 1 << 12)
                || !in_range(
                    self.experts_used,
                    self.experts.min(super::forward::MAX_EXPERTS_USED),
                )
                || !in_range(self.expert_ffn_dim, 4 * MAX_DIM))
        {
            return Err(Error::BadConfig(
                "experts: need 1 to 4096 experts, 1 to min(N, 64) used per token, a width of 1 to 262144",
            ));
        }
        if !(self.norm_eps >= 0.0 && self.norm_eps < 1.0) {
            return Err(Error::BadConfig("norm epsilon out of range"));
        }
        let finite_pos = |v: f32| v.is_finite() && v > 0.0;
        if self.features.positions == Positions::Rope
            && !(finite_pos(self.rope_theta) && finite_pos(self.rope_theta_local))
        {
            return Err(Error::BadConfig("RoPE base must be a positive number"));
        }
        if !(finite_pos(self.attention_scale) && finite_pos(self.rope_attention_factor)) {
            return Err(Error::BadConfig(
                "attention scale and RoPE attention factor must be positive numbers",
            ));
        }
        if let Some(cap) = self.final_logit_softcap {
            if !finite_pos(cap) {
                return Err(Error::BadConfig("final logit soft-cap must be positive"));
            }
        }
        if self.sliding_window > MAX_CONTEXT {
            return Err(Error::BadConfig("sliding window out of range"));
        }
        Ok(())
    }

    /// The largest NH·HS over the layers: width of the attention's query projection.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim.max(self.head_dim_global)
    }

    /// The largest KVH·HS over the layers: width of each of K and V per position.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim.max(self.head_dim_global)
    }

    /// The largest feed-forward width over the dense layers.
    pub fn max_ffn_dim(&self) -> usize {
        self.ffn_dim.max(self.ffn_dim_shared_kv)
    }

    /// HS of layer `layer`.
    pub fn head_dim_of(&self, layer: usize) -> usize {
        match self.attention(layer) {
            Attention::Global => self.head_dim_global,
            Attention::Local => self.head_dim,
        }
    }

    /// KVH·HS of layer `layer`.
    pub fn kv_dim_of(&self, layer: usize) -> usize {
        self.kv_heads * self.head_dim_of(layer)
    }

    /// The layer whose cache layer `layer` reads: itself, or for a layer that shares keys and
    /// values the last earlier layer of its kind with its own (checked at load).
    pub fn kv_source(&self, layer: usize) -> usize {
        let kind = self.attention(layer);
        match self.layer(layer).kv {
            LayerKv::Own => layer,
            LayerKv::Shared => (0..layer)
                .rev()
                .find(|&l| self.layer(l).kv == LayerKv::Own && self.attention(l) == kind)
                .unwrap_or(layer),
        }
    }

    /// The sizes tensor shapes follow from.
    pub fn dims(&self) -> Dims {
        Dims {
            vocab: self.vocab_size,
            context: self.context_length,
            dim: self.dim,
            heads: self.heads,
            kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            ffn: self.ffn_dim,
            experts: self.experts,
            expert_ffn: self.expert_ffn_dim,
            rope_dim: self.rope_dim,
            head_dim_global: self.head_dim_global,
            ffn_shared_kv: self.ffn_dim_shared_kv,
            per_layer: self.per_layer_dim,
        }
    }

    /// The attention of layer `layer`.
    pub fn attention(&self, layer: usize) -> Attention {
        self.layer_kinds.attention(layer)
    }

    /// What layer `layer` does.
    pub fn layer(&self, layer: usize) -> LayerSpec {
        self.layer_kinds.spec(layer)
    }
}
