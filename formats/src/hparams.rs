//! The hyperparameter record of a model, defined once: read from the `model.*` keys
//! (docs/FORMAT.md) of a `.ember` file or of a file being written, validated here alone, and
//! used by the converter (which checks what it writes with it), the runtime (its `Config`)
//! and the trainer. Field names follow DESIGN.md's letters: V `vocab_size`, C `dim`,
//! L `layers`, NH `heads`, KVH `kv_heads`, HS `head_dim`, F `ffn_dim`.

use core::fmt;

use crate::schema::{
    keys, Arch, Attention, Dims, EmbedScale, Experts, Features, LayerFfn, LayerKv, LayerMixer,
    LayerPositions, LayerSpec, PerLayerInputs, Positions, Recurrent,
};
use crate::{EmberFile, Value};

/// Why a set of `model.*` keys does not describe a model this format can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HparamsError {
    /// A required key is absent or has the wrong type.
    MissingKey(&'static str),
    /// `general.architecture` names no architecture of [`crate::schema::ARCHS`].
    UnsupportedArchitecture,
    /// `what` is `value`, outside `min..=max`.
    OutOfRange {
        what: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    /// `what` (`value`) is not a multiple of `of_what` (`of`).
    NotMultiple {
        what: &'static str,
        value: u64,
        of_what: &'static str,
        of: u64,
    },
    /// Values that contradict each other.
    Invalid(&'static str),
}

impl fmt::Display for HparamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HparamsError::MissingKey(k) => {
                write!(f, "model metadata lacks '{k}' (or it has the wrong type)")
            }
            HparamsError::UnsupportedArchitecture => write!(
                f,
                "unsupported general.architecture (this build runs {})",
                Arch::list(|a| core::slice::from_ref(&a.name))
            ),
            HparamsError::OutOfRange {
                what,
                value,
                min,
                max,
            } => write!(f, "{what} {value} is out of range ({min} to {max})"),
            HparamsError::NotMultiple {
                what,
                value,
                of_what,
                of,
            } => write!(f, "{what} {value} is not a multiple of {of_what} {of}"),
            HparamsError::Invalid(what) => f.write_str(what),
        }
    }
}

impl core::error::Error for HparamsError {}

type Error = HparamsError;

/// Where the keys are read from: a parsed file, or (with `write`) a file being written.
pub trait Metadata {
    fn value(&self, key: &str) -> Option<Value<'_>>;
}

impl Metadata for EmberFile<'_> {
    fn value(&self, key: &str) -> Option<Value<'_>> {
        self.get(key)
    }
}

#[cfg(feature = "write")]
impl Metadata for crate::Writer {
    fn value(&self, key: &str) -> Option<Value<'_>> {
        self.get(key).and_then(|v| v.as_value())
    }
}

/// Square root: Newton's method in f64 from a bit-level first guess (no libm in no_std).
pub fn sqrt64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 || x.is_infinite() {
        return x;
    }
    let mut y = f64::from_bits((x.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..6 {
        y = 0.5 * (y + x / y);
    }
    y
}

/// Most experts a token may use.
pub const MAX_EXPERTS_USED: usize = 64;

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

    fn remove(&mut self, layer: usize) {
        self.0[layer / 64] &= !(1 << (layer % 64));
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

/// What each layer does ([`LayerSpec`]), as one bit set per choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LayerKinds {
    local: LayerSet,
    no_positions: LayerSet,
    experts: LayerSet,
    shared_kv: LayerSet,
    recurrent: LayerSet,
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
            mixer: if self.recurrent.contains(layer) {
                LayerMixer::Recurrent
            } else {
                LayerMixer::Attention
            },
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

    /// Sets layer `layer`'s kinds (`layer` < 1024).
    pub fn set(&mut self, layer: usize, spec: LayerSpec) {
        let put = |set: &mut LayerSet, on: bool| {
            set.remove(layer);
            if on {
                set.insert(layer);
            }
        };
        put(&mut self.local, spec.attention == Attention::Local);
        put(
            &mut self.no_positions,
            spec.positions == LayerPositions::None,
        );
        put(&mut self.experts, spec.ffn == LayerFfn::Experts);
        put(&mut self.shared_kv, spec.kv == LayerKv::Shared);
        put(&mut self.recurrent, spec.mixer == LayerMixer::Recurrent);
    }

    /// Local layers among the first `layers`.
    pub fn local_before(&self, layers: usize) -> usize {
        self.local.count_before(layers)
    }

    pub fn any_local(&self) -> bool {
        !self.local.is_empty()
    }

    /// Attention layers among the first `layers` with their own keys and values of kind
    /// `kind`.
    pub fn own_kv_before(&self, layers: usize, kind: Attention) -> usize {
        (0..layers.min(MAX_LAYERS))
            .filter(|&l| self.has_own_kv(l) && self.attention(l) == kind)
            .count()
    }

    /// Whether layer `layer` keeps keys and values of its own: an attention layer that does
    /// not share another's.
    pub fn has_own_kv(&self, layer: usize) -> bool {
        !self.shared_kv.contains(layer) && !self.recurrent.contains(layer)
    }

    /// Recurrent layers among the first `layers`.
    pub fn recurrent_before(&self, layers: usize) -> usize {
        self.recurrent.count_before(layers)
    }

    pub fn any_recurrent(&self) -> bool {
        !self.recurrent.is_empty()
    }

    pub fn any_experts(&self) -> bool {
        !self.experts.is_empty()
    }
}

/// Sets one field of a layer's kinds from its code in a per-layer list; false for a code
/// it does not know.
type ApplyCode = fn(&mut LayerSpec, u8) -> bool;

/// Reads a per-layer list of u8 codes (`key`), calling `set(layer, code)`; absent: nothing.
fn layer_codes(
    file: &dyn Metadata,
    key: &'static str,
    layers: usize,
    mut set: impl FnMut(usize, u8) -> Result<(), Error>,
) -> Result<(), Error> {
    let Some(v) = file.value(key) else {
        return Ok(());
    };
    let codes = v.as_bytes().ok_or(Error::MissingKey(key))?;
    if codes.len() != layers {
        return Err(Error::Invalid(
            "a per-layer list (model.layer_*) needs one entry per layer",
        ));
    }
    codes.iter().enumerate().try_for_each(|(i, &c)| set(i, c))
}

/// Letters as in DESIGN.md: V vocab, C channels, L layers, NH/KVH heads, HS head size,
/// F feed-forward width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hparams {
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
    /// K: taps of the recurrent layers' convolution (0 without recurrent layers).
    pub conv_kernel: usize,
    /// Mamba-2: H heads of P channels, N state per group, G groups (0 otherwise).
    pub ssm_heads: usize,
    pub ssm_head_dim: usize,
    pub ssm_state: usize,
    pub ssm_groups: usize,
    /// Gated DeltaNet: value head j reads key head j mod G (true) or j / (H/G).
    pub ssm_tiled_heads: bool,
    /// Multiplies each block's output before the residual add (Granite's muP); 1 otherwise.
    pub residual_scale: f32,
    /// Divides the logits (Granite's `logits_scaling`); 1 otherwise.
    pub logits_divisor: f32,
}

fn get_u32(file: &dyn Metadata, key: &'static str) -> Result<usize, Error> {
    file.value(key)
        .and_then(|v| v.as_u32())
        .map(|v| v as usize)
        .ok_or(Error::MissingKey(key))
}

fn get_f32(file: &dyn Metadata, key: &'static str) -> Result<f32, Error> {
    file.value(key)
        .and_then(|v| v.as_f32())
        .ok_or(Error::MissingKey(key))
}

/// An optional f32 key: absent is None, present with another type is an error.
fn opt_f32(file: &dyn Metadata, key: &'static str) -> Result<Option<f32>, Error> {
    match file.value(key) {
        None => Ok(None),
        Some(v) => v.as_f32().map(Some).ok_or(Error::MissingKey(key)),
    }
}

/// Older files name the block kinds in keys; they must agree with the architecture.
fn check_legacy(file: &dyn Metadata, key: &'static str, expected: &str) -> Result<(), Error> {
    match file.value(key).map(|v| v.as_str()) {
        None => Ok(()),
        Some(Some(v)) if v == expected => Ok(()),
        Some(_) => Err(Error::Invalid(
            "model.norm/ffn/positions disagree with general.architecture",
        )),
    }
}

impl Hparams {
    /// The record of a parsed `.ember` file.
    pub fn from_file(file: &EmberFile) -> Result<Hparams, Error> {
        Hparams::from_metadata(file)
    }

    /// The record of any key source, validated.
    pub fn from_metadata(file: &dyn Metadata) -> Result<Hparams, Error> {
        let name = file
            .value(keys::ARCHITECTURE)
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
        // The per-layer lists below are sized by this.
        if layers == 0 || layers > MAX_LAYERS {
            return Err(Error::OutOfRange {
                what: "layer count",
                value: layers as u64,
                min: 1,
                max: MAX_LAYERS as u64,
            });
        }
        // Every layer the default, then each per-layer list's changes.
        let moe = features.experts == Experts::Routed;
        let mut layer_kinds = LayerKinds::default();
        let default = LayerSpec::default_for(&features);
        (0..layers).for_each(|i| layer_kinds.set(i, default));
        let lists: [(&'static str, &'static str, ApplyCode); 5] = [
            (
                keys::LAYER_MIXER,
                "unknown mixer kind in model.layer_mixer",
                |l, c| LayerMixer::from_code(c).map(|m| l.mixer = m).is_some(),
            ),
            (
                keys::LAYER_TYPES,
                "unknown layer type in model.layer_types",
                |l, c| Attention::from_code(c).map(|a| l.attention = a).is_some(),
            ),
            (
                keys::LAYER_POSITIONS,
                "unknown position kind in model.layer_positions",
                |l, c| {
                    LayerPositions::from_code(c)
                        .map(|p| l.positions = p)
                        .is_some()
                },
            ),
            (keys::LAYER_KV, "unknown kind in model.layer_kv", |l, c| {
                LayerKv::from_code(c).map(|k| l.kv = k).is_some()
            }),
            (
                keys::LAYER_FFN,
                "unknown feed-forward kind in model.layer_ffn",
                |l, c| LayerFfn::from_code(c).map(|f| l.ffn = f).is_some(),
            ),
        ];
        for (key, what, apply) in lists {
            layer_codes(file, key, layers, |i, c| {
                let mut spec = layer_kinds.spec(i);
                if !apply(&mut spec, c) {
                    return Err(Error::Invalid(what));
                }
                layer_kinds.set(i, spec);
                Ok(())
            })?;
        }
        if features.recurrent == Recurrent::None && layer_kinds.any_recurrent() {
            return Err(Error::Invalid(
                "model.layer_mixer names recurrent layers in an architecture without them",
            ));
        }
        if !moe && layer_kinds.any_experts() {
            return Err(Error::Invalid(
                "unknown feed-forward kind in model.layer_ffn",
            ));
        }
        let opt_u32 = |key: &'static str| match file.value(key) {
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
        let sliding_window = match file.value(keys::SLIDING_WINDOW) {
            Some(_) => get_u32(file, keys::SLIDING_WINDOW)?,
            None => 0,
        };
        let embedding_scale = match (opt_f32(file, keys::EMBEDDING_SCALE)?, features.embed_scale) {
            (Some(s), _) => s,
            (None, EmbedScale::One) => 1.0,
            (None, EmbedScale::SqrtDim) => sqrt64(dim as f64) as f32,
        };
        let recurrent = features.recurrent != Recurrent::None;
        let ssm = matches!(
            features.recurrent,
            Recurrent::Mamba2 | Recurrent::GatedDeltaNet
        );
        let need = |on: bool, key: &'static str| if on { get_u32(file, key) } else { Ok(0) };
        let final_logit_softcap = opt_f32(file, keys::FINAL_LOGIT_SOFTCAP)?;
        let cfg = Hparams {
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
                .value(keys::TIED_EMBEDDINGS)
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
                .value(keys::EXPERT_WEIGHTS_NORM)
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            conv_kernel: need(recurrent, keys::CONV_KERNEL)?,
            ssm_heads: need(ssm, keys::SSM_HEADS)?,
            ssm_head_dim: need(ssm, keys::SSM_HEAD_DIM)?,
            ssm_state: need(ssm, keys::SSM_STATE_DIM)?,
            ssm_groups: need(ssm, keys::SSM_GROUPS)?,
            ssm_tiled_heads: file
                .value(keys::SSM_TILED_HEADS)
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            residual_scale: opt_f32(file, keys::RESIDUAL_SCALE)?.unwrap_or(1.0),
            logits_divisor: opt_f32(file, keys::LOGITS_DIVISOR)?.unwrap_or(1.0),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every check a model's hyperparameters must pass, with the offending values.
    pub fn validate(&self) -> Result<(), Error> {
        let range = |what, v: usize, min: usize, max: usize| {
            if v >= min && v <= max {
                Ok(())
            } else {
                Err(Error::OutOfRange {
                    what,
                    value: v as u64,
                    min: min as u64,
                    max: max as u64,
                })
            }
        };
        range("embedding size", self.dim, 1, MAX_DIM)?;
        range("feed-forward width", self.ffn_dim, 1, 4 * MAX_DIM)?;
        range("head size", self.head_dim, 1, MAX_DIM)?;
        range("global layers' head size", self.head_dim_global, 1, MAX_DIM)?;
        range(
            "feed-forward width of layers sharing keys and values",
            self.ffn_dim_shared_kv,
            1,
            4 * MAX_DIM,
        )?;
        range("head count", self.heads, 1, MAX_DIM)?;
        range("KV head count", self.kv_heads, 1, MAX_DIM)?;
        range("layer count", self.layers, 1, MAX_LAYERS)?;
        range("vocabulary size", self.vocab_size, 1, MAX_VOCAB)?;
        range("context length", self.context_length, 1, MAX_CONTEXT)?;
        range("sliding window", self.sliding_window, 0, MAX_CONTEXT)?;
        if self.features.per_layer_inputs == PerLayerInputs::Gated {
            range("per-layer input width", self.per_layer_dim, 1, MAX_DIM)?;
            range(
                "per-layer inputs (layers x width)",
                self.per_layer_dim * self.layers,
                1,
                4 * MAX_DIM,
            )?;
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(Error::NotMultiple {
                what: "head count",
                value: self.heads as u64,
                of_what: "the KV head count",
                of: self.kv_heads as u64,
            });
        }
        if self.features.positions == Positions::Rope {
            range("rotated dimensions", self.rope_dim, 2, self.head_dim_global)?;
            for (what, v) in [
                ("rotated dimensions", self.rope_dim),
                ("head size", self.head_dim),
            ] {
                if !v.is_multiple_of(2) {
                    return Err(Error::NotMultiple {
                        what,
                        value: v as u64,
                        of_what: "RoPE's pairs,",
                        of: 2,
                    });
                }
            }
        }
        if self.features.experts == Experts::Routed {
            range("expert count", self.experts, 1, 4096)?;
            range(
                "experts used per token",
                self.experts_used,
                1,
                self.experts.min(MAX_EXPERTS_USED),
            )?;
            range("expert width", self.expert_ffn_dim, 1, 4 * MAX_DIM)?;
        }
        if !(self.norm_eps >= 0.0 && self.norm_eps < 1.0) {
            return Err(Error::Invalid("norm epsilon out of range (0 to 1)"));
        }
        let finite_pos = |v: f32| v.is_finite() && v > 0.0;
        if self.features.positions == Positions::Rope
            && !(finite_pos(self.rope_theta) && finite_pos(self.rope_theta_local))
        {
            return Err(Error::Invalid("RoPE base must be a positive number"));
        }
        if !(finite_pos(self.attention_scale) && finite_pos(self.rope_attention_factor)) {
            return Err(Error::Invalid(
                "attention scale and RoPE attention factor must be positive numbers",
            ));
        }
        if !(finite_pos(self.embedding_scale)
            && finite_pos(self.residual_scale)
            && finite_pos(self.logits_divisor))
        {
            return Err(Error::Invalid(
                "embedding scale, residual scale and logits divisor must be positive numbers",
            ));
        }
        match self.features.recurrent {
            Recurrent::None => {}
            Recurrent::ShortConv => range("convolution taps", self.conv_kernel, 1, 64)?,
            Recurrent::Mamba2 | Recurrent::GatedDeltaNet => {
                range("convolution taps", self.conv_kernel, 1, 64)?;
                range("SSM heads", self.ssm_heads, 1, MAX_DIM)?;
                range("SSM head size", self.ssm_head_dim, 1, MAX_DIM)?;
                range("SSM state size", self.ssm_state, 1, 1024)?;
                range("SSM groups", self.ssm_groups, 1, self.ssm_heads)?;
                range(
                    "SSM inner width (heads x head size)",
                    self.ssm_heads * self.ssm_head_dim,
                    1,
                    4 * MAX_DIM,
                )?;
                if !self.ssm_heads.is_multiple_of(self.ssm_groups) {
                    return Err(Error::NotMultiple {
                        what: "SSM heads",
                        value: self.ssm_heads as u64,
                        of_what: "the SSM groups",
                        of: self.ssm_groups as u64,
                    });
                }
            }
        }
        if let Some(cap) = self.final_logit_softcap {
            if !finite_pos(cap) {
                return Err(Error::Invalid("final logit soft-cap must be positive"));
            }
        }
        if self.layer_kinds.any_local() && self.sliding_window == 0 {
            return Err(Error::Invalid("local layers need a sliding window > 0"));
        }
        for i in 0..self.layers {
            let kind = self.layer_kinds.attention(i);
            let spec = self.layer(i);
            if spec.mixer == LayerMixer::Recurrent
                && (spec.kv == LayerKv::Shared || spec.attention == Attention::Local)
            {
                return Err(Error::Invalid(
                    "a recurrent layer has no keys and values to share or window",
                ));
            }
            if spec.kv == LayerKv::Shared && self.layer_kinds.own_kv_before(i, kind) == 0 {
                return Err(Error::Invalid(
                    "a layer shares keys and values with no earlier layer of its kind",
                ));
            }
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
                .find(|&l| self.layer_kinds.has_own_kv(l) && self.attention(l) == kind)
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
            conv_kernel: self.conv_kernel,
            ssm_heads: self.ssm_heads,
            ssm_head_dim: self.ssm_head_dim,
            ssm_state: self.ssm_state,
            ssm_groups: self.ssm_groups,
        }
    }

    /// Floats of one recurrent layer's state: the convolution's last K - 1 inputs
    /// ((K-1) × channels) and, for Mamba-2, a (P, N) matrix per head.
    pub fn recurrent_state_floats(&self) -> usize {
        let conv =
            self.conv_kernel.saturating_sub(1) * self.dims().conv_channels(self.features.recurrent);
        let ssm = match self.features.recurrent {
            Recurrent::None | Recurrent::ShortConv => 0,
            Recurrent::Mamba2 | Recurrent::GatedDeltaNet => {
                self.ssm_heads * self.ssm_head_dim * self.ssm_state
            }
        };
        conv + ssm
    }

    /// Widths of a recurrent layer's activations: its input projection's rows, its
    /// convolution's channels, its output projection's columns (0, 0, 0 without).
    pub fn recurrent_widths(&self) -> (usize, usize, usize) {
        let d = self.dims();
        let ch = d.conv_channels(self.features.recurrent);
        match self.features.recurrent {
            Recurrent::None => (0, 0, 0),
            Recurrent::ShortConv => (3 * self.dim, ch, self.dim),
            Recurrent::Mamba2 => {
                let hp = self.ssm_heads * self.ssm_head_dim;
                (hp + ch + self.ssm_heads, ch, hp)
            }
            // z, β's and the decay's inputs; q, k, v convolved; the heads' outputs.
            Recurrent::GatedDeltaNet => {
                let hp = self.ssm_heads * self.ssm_head_dim;
                (hp + 2 * self.ssm_heads, ch, hp)
            }
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

#[cfg(all(test, feature = "write"))]
mod tests {
    use super::*;
    use crate::{OwnedValue, Writer};

    /// The keys of a 4-layer LFM2 whose third layer is attention.
    fn lfm2() -> Writer {
        let mut w = Writer::new();
        w.set_str(keys::ARCHITECTURE, "lfm2");
        for (k, v) in [
            (keys::VOCAB_SIZE, 32),
            (keys::CONTEXT_LENGTH, 64),
            (keys::EMBEDDING_DIM, 16),
            (keys::LAYER_COUNT, 4),
            (keys::HEAD_COUNT, 2),
            (keys::KV_HEAD_COUNT, 1),
            (keys::HEAD_DIM, 8),
            (keys::FFN_DIM, 32),
            (keys::CONV_KERNEL, 3),
        ] {
            w.set_u32(k, v);
        }
        w.set_f32(keys::NORM_EPS, 1e-5);
        w.set_f32(keys::ROPE_THETA, 1e6);
        w.set(keys::LAYER_MIXER, OwnedValue::U8(alloc::vec![1, 1, 0, 1]));
        w
    }

    #[test]
    fn recurrent_layers_are_read_and_checked() {
        let hp = Hparams::from_metadata(&lfm2()).unwrap();
        assert_eq!(hp.layer(1).mixer, LayerMixer::Recurrent);
        assert_eq!(hp.layer(2).mixer, LayerMixer::Attention);
        assert_eq!(hp.layer_kinds.recurrent_before(4), 3);
        assert!(!hp.layer_kinds.has_own_kv(0) && hp.layer_kinds.has_own_kv(2));
        // (K - 1) · C floats of convolution window per recurrent layer.
        assert_eq!(hp.recurrent_state_floats(), 2 * 16);

        let mut w = lfm2();
        w.set(keys::LAYER_MIXER, OwnedValue::U8(alloc::vec![1, 0, 1]));
        assert_eq!(
            Hparams::from_metadata(&w),
            Err(Error::Invalid(
                "a per-layer list (model.layer_*) needs one entry per layer"
            ))
        );
        let mut w = lfm2();
        w.set(keys::LAYER_MIXER, OwnedValue::U8(alloc::vec![1, 2, 0, 1]));
        assert_eq!(
            Hparams::from_metadata(&w),
            Err(Error::Invalid("unknown mixer kind in model.layer_mixer"))
        );
        let mut w = lfm2();
        w.set_u32(keys::CONV_KERNEL, 0);
        assert!(matches!(
            Hparams::from_metadata(&w),
            Err(Error::OutOfRange {
                what: "convolution taps",
                ..
            })
        ));
        // A recurrent layer has no window, and llama has no recurrent layers.
        let mut w = lfm2();
        w.set_u32(keys::SLIDING_WINDOW, 8);
        w.set(keys::LAYER_TYPES, OwnedValue::U8(alloc::vec![1, 0, 0, 0]));
        assert_eq!(
            Hparams::from_metadata(&w),
            Err(Error::Invalid(
                "a recurrent layer has no keys and values to share or window"
            ))
        );
        let mut w = lfm2();
        w.set_str(keys::ARCHITECTURE, "llama");
        assert_eq!(
            Hparams::from_metadata(&w),
            Err(Error::Invalid(
                "model.layer_mixer names recurrent layers in an architecture without them"
            ))
        );
    }
}
