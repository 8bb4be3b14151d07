//! The model description the importers fill in and the writer turns into `model.*` and
//! `general.*` keys (docs/FORMAT.md, "Model conventions").

use ember_format::schema::{
    self, keys, Attention, Experts, LayerSpec, Need, Positions, Recurrent, Shape,
};
use ember_format::{Hparams, OwnedValue, Writer};

use crate::error::Result;

pub use ember_format::schema::Arch;

/// How the global layers' RoPE frequencies are scaled (HF `rope_scaling` /
/// `rope_parameters`, GGUF `rope.scaling.*` and `rope_freqs.weight`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f32,
    },
    /// Llama 3.1: long wavelengths divided by `factor`, a smooth ramp between.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_context: usize,
    },
    /// YaRN (Qwen, DeepSeek): frequencies blended by a ramp, cos and sin scaled by
    /// `attention_factor`.
    Yarn {
        factor: f32,
        original_context: usize,
        beta_fast: f32,
        beta_slow: f32,
        attention_factor: f32,
        truncate: bool,
    },
    /// Frequencies divided by these per-pair factors (GGUF `rope_freqs.weight`, which
    /// llama.cpp's converter writes for Llama 3.1 scaling).
    Factors(Vec<f32>),
    /// LongRoPE (Phi-3, Phi-4-mini): frequencies divided by per-pair factors, `short` for
    /// contexts up to `original_context`, `long` beyond; cos and sin scaled by
    /// `attention_factor` either way.
    LongRope {
        short: Vec<f32>,
        long: Vec<f32>,
        original_context: usize,
        attention_factor: f32,
    },
    /// Gemma 4's global layers: the first `pairs` frequencies of a full-head RoPE (divided
    /// by `factor`), the others 0 (those dimensions do not rotate).
    Proportional {
        pairs: usize,
        factor: f32,
    },
}

impl RopeScaling {
    pub fn name(&self) -> &'static str {
        match self {
            RopeScaling::None => "none",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::Llama3 { .. } | RopeScaling::Factors(_) => "llama3",
            RopeScaling::Yarn { .. } => "yarn",
            RopeScaling::Proportional { .. } => "proportional",
            RopeScaling::LongRope { .. } => "longrope",
        }
    }

    /// The scaled inverse frequencies (HS/2) for base `theta`, as transformers computes them;
    /// None when nothing is scaled.
    pub fn inv_freq(&self, theta: f32, head_dim: usize) -> Option<Vec<f32>> {
        let half = head_dim / 2;
        let base: Vec<f64> = (0..half)
            .map(|i| 1.0 / (theta as f64).powf((2 * i) as f64 / head_dim as f64))
            .collect();
        let out: Vec<f64> = match self {
            RopeScaling::None => return None,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / *factor as f64).collect(),
            RopeScaling::Factors(fs) | RopeScaling::LongRope { short: fs, .. } => {
                base.iter().zip(fs).map(|(f, d)| f / *d as f64).collect()
            }
            RopeScaling::Proportional { pairs, factor } => {
                // transformers computes these in f32: theta^(-2j/HS) / factor.
                let v = (0..half).map(|j| {
                    if j < *pairs {
                        (1.0 / theta.powf((2 * j) as f32 / head_dim as f32) / factor) as f64
                    } else {
                        0.0
                    }
                });
                v.collect()
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            } => {
                let (factor, low, high) = (
                    *factor as f64,
                    *low_freq_factor as f64,
                    *high_freq_factor as f64,
                );
                let old = *original_context as f64;
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            RopeScaling::Yarn {
                factor,
                original_context,
                beta_fast,
                beta_slow,
                truncate,
                ..
            } => {
                let dim = head_dim as f64;
                let base_t = theta as f64;
                let correction = |rotations: f64| {
                    dim * ((*original_context as f64) / (rotations * 2.0 * std::f64::consts::PI))
                        .ln()
                        / (2.0 * base_t.ln())
                };
                let (mut low, mut high) =
                    (correction(*beta_fast as f64), correction(*beta_slow as f64));
                if *truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let (low, mut high) = (low.max(0.0), high.min(dim - 1.0));
                if low == high {
                    high += 0.001;
                }
                base.iter()
                    .enumerate()
                    .map(|(i, &f)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        f / *factor as f64 * (1.0 - extrapolation) + f * extrapolation
                    })
                    .collect()
            }
        };
        Some(out.into_iter().map(|v| v as f32).collect())
    }

    pub fn attention_factor(&self) -> f32 {
        match self {
            RopeScaling::Yarn {
                attention_factor, ..
            }
            | RopeScaling::LongRope {
                attention_factor, ..
            } => *attention_factor,
            _ => 1.0,
        }
    }

    /// LongRoPE's factor on cos and sin when the source gives none (transformers):
    /// sqrt(1 + ln(factor) / ln(original context)), 1 where the context is not extended.
    pub fn longrope_attention_factor(factor: f64, original_context: usize) -> f32 {
        if factor <= 1.0 {
            1.0
        } else {
            (1.0 + factor.ln() / (original_context as f64).ln()).sqrt() as f32
        }
    }

    /// LongRoPE's frequencies for long contexts, and the context they start beyond.
    pub fn long_inv_freq(&self, theta: f32, rope_dim: usize) -> Option<(Vec<f32>, usize)> {
        let RopeScaling::LongRope {
            long,
            original_context,
            ..
        } = self
        else {
            return None;
        };
        let f = RopeScaling::Factors(long.clone()).inv_freq(theta, rope_dim)?;
        Some((f, *original_context))
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
    /// RoPE base (global layers).
    pub rope_theta: Option<f32>,
    /// RoPE base of local layers, where it differs.
    pub rope_theta_local: Option<f32>,
    pub rope_scaling: RopeScaling,
    pub tied_embeddings: bool,
    /// Window of local layers.
    pub sliding_window: Option<usize>,
    /// What each layer does (empty: every layer the default, [`LayerSpec::default_for`]).
    pub layers: Vec<LayerSpec>,
    /// Dimensions of each head RoPE rotates; None: all (HS).
    pub rope_dim: Option<usize>,
    /// Mixtures of experts: N, k, FE and whether the k weights are renormalised.
    pub experts: usize,
    pub experts_used: usize,
    pub expert_ffn_dim: usize,
    pub expert_weights_norm: bool,
    /// Multiplies q·k; None: 1/sqrt(HS).
    pub attention_scale: Option<f32>,
    pub final_logit_softcap: Option<f32>,
    /// HS of global layers where it differs from `head_dim` (local layers').
    pub head_dim_global: Option<usize>,
    /// F of layers that share keys and values, where it differs.
    pub ffn_dim_shared_kv: Option<usize>,
    /// P: per-layer input width (0: none).
    pub per_layer_dim: usize,
    /// Recurrent layers: K convolution taps; Mamba-2's H heads of P, N state, G groups.
    pub conv_kernel: usize,
    pub ssm_heads: usize,
    pub ssm_head_dim: usize,
    pub ssm_state: usize,
    pub ssm_groups: usize,
    /// Gated DeltaNet's value heads read key heads in llama.cpp's tiled order.
    pub ssm_tiled_heads: bool,
    /// Granite's muP multipliers: embeddings, block outputs, and the logits' divisor.
    pub embedding_scale: Option<f32>,
    pub residual_scale: Option<f32>,
    pub logits_divisor: Option<f32>,
}

fn u32_of(key: &str, v: usize) -> Result<u32> {
    match u32::try_from(v) {
        Ok(x) if x > 0 => Ok(x),
        _ => crate::bail!("model parameter {key} = {v} is out of range"),
    }
}

impl ModelConfig {
    /// A config of `arch` with the optional features off (importers fill in the rest).
    #[allow(clippy::too_many_arguments)]
    pub fn basic(arch: Arch, name: String) -> ModelConfig {
        ModelConfig {
            arch,
            name,
            vocab_size: 0,
            context_length: 0,
            embedding_dim: 0,
            layer_count: 0,
            head_count: 0,
            kv_head_count: 0,
            head_dim: 0,
            ffn_dim: 0,
            norm_eps: 1e-5,
            rope_theta: None,
            rope_theta_local: None,
            rope_scaling: RopeScaling::None,
            tied_embeddings: false,
            sliding_window: None,
            layers: Vec::new(),
            rope_dim: None,
            experts: 0,
            experts_used: 0,
            expert_ffn_dim: 0,
            expert_weights_norm: false,
            attention_scale: None,
            final_logit_softcap: None,
            head_dim_global: None,
            ffn_dim_shared_kv: None,
            per_layer_dim: 0,
            conv_kernel: 0,
            ssm_heads: 0,
            ssm_head_dim: 0,
            ssm_state: 0,
            ssm_groups: 0,
            ssm_tiled_heads: false,
            embedding_scale: None,
            residual_scale: None,
            logits_divisor: None,
        }
    }

    /// HS of global layers.
    pub fn head_dim_global(&self) -> usize {
        self.head_dim_global.unwrap_or(self.head_dim)
    }

    /// R: the dimensions of each global layer's heads RoPE rotates.
    pub fn rope_dim(&self) -> usize {
        self.rope_dim.unwrap_or(self.head_dim_global())
    }

    /// Every layer's kinds (the defaults where `layers` is empty).
    pub fn layer_specs(&self) -> Vec<LayerSpec> {
        if self.layers.is_empty() {
            vec![LayerSpec::default_for(&self.arch.features()); self.layer_count]
        } else {
            self.layers.clone()
        }
    }

    /// The layers, each set by `f` from the defaults.
    pub fn set_layers(
        &mut self,
        mut f: impl FnMut(usize, &mut LayerSpec) -> Result<()>,
    ) -> Result<()> {
        let mut specs = self.layer_specs();
        for (i, s) in specs.iter_mut().enumerate() {
            f(i, s)?;
        }
        self.layers = specs;
        Ok(())
    }

    /// LongRoPE's frequencies for long contexts and where they start.
    pub fn rope_long_inv_freq(&self) -> Option<(Vec<f32>, usize)> {
        self.rope_scaling
            .long_inv_freq(self.rope_theta.unwrap_or(10_000.0), self.rope_dim())
    }

    /// The scaled RoPE frequencies of global layers, when a scaling applies.
    pub fn rope_inv_freq(&self) -> Option<Vec<f32>> {
        self.rope_scaling
            .inv_freq(self.rope_theta.unwrap_or(10_000.0), self.rope_dim())
    }

    /// Checks the config with the one validator, ember-format's [`Hparams`] (the record
    /// the runtime loads files with), on the keys [`ModelConfig::write`] puts in the file;
    /// then what only the import has: the per-layer list's length and the RoPE scaling's
    /// tables. Returns the record.
    pub fn validate(&self) -> Result<Hparams> {
        let c = self;
        if !c.layers.is_empty() && c.layers.len() != c.layer_count {
            crate::bail!(
                "a per-layer list of {} entries for {} layers",
                c.layers.len(),
                c.layer_count
            );
        }
        let mut w = Writer::new();
        c.write(&mut w)?;
        if c.arch.readable_by_format_1_3() {
            if let Some(k) = keys::SINCE_1_4.iter().find(|k| w.get(k).is_some()) {
                crate::bail!(
                    "a {} model needing {k}: a feature older readers of '{}' files would ignore",
                    c.arch,
                    c.arch
                );
            }
        }
        let hp = Hparams::from_metadata(&w)
            .map_err(|e| crate::Error(format!("invalid model configuration: {e}")))?;
        let rd = hp.rope_dim;
        if let RopeScaling::LongRope {
            short,
            long,
            original_context,
            attention_factor,
        } = &c.rope_scaling
        {
            let ok =
                |f: &Vec<f32>| f.len() == rd / 2 && f.iter().all(|v| v.is_finite() && *v > 0.0);
            if !ok(short) || !ok(long) {
                crate::bail!(
                    "LongRoPE needs {} positive short and long factors, got {} and {}",
                    rd / 2,
                    short.len(),
                    long.len()
                );
            }
            u32_of("original_max_position_embeddings", *original_context)?;
            if !(attention_factor.is_finite() && *attention_factor > 0.0) {
                crate::bail!("LongRoPE attention factor {attention_factor} is not positive");
            }
        }
        if let RopeScaling::Factors(f) = &c.rope_scaling {
            if f.len() != rd / 2 || f.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                crate::bail!(
                    "rope_freqs.weight needs {} positive factors, got {}",
                    rd / 2,
                    f.len()
                );
            }
        }
        Ok(hp)
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
        w.set_str(keys::ARCHITECTURE, c.arch.name());
        w.set_str(keys::NAME, &c.name);
        for (key, name, v) in [
            (keys::VOCAB_SIZE, "vocab_size", c.vocab_size),
            (keys::CONTEXT_LENGTH, "context_length", c.context_length),
            (keys::EMBEDDING_DIM, "embedding_dim", c.embedding_dim),
            (keys::LAYER_COUNT, "layer_count", c.layer_count),
            (keys::HEAD_COUNT, "head_count", c.head_count),
            (keys::KV_HEAD_COUNT, "kv_head_count", c.kv_head_count),
            (keys::HEAD_DIM, "head_dim", c.head_dim),
            (keys::FFN_DIM, "ffn_dim", c.ffn_dim),
        ] {
            w.set_u32(key, u32_of(name, v)?);
        }
        w.set_f32(keys::NORM_EPS, c.norm_eps);
        w.set_bool(keys::TIED_EMBEDDINGS, c.tied_embeddings);
        match c.arch.features().positions {
            Positions::Rope => {
                let theta = c.rope_theta.unwrap_or(10_000.0);
                w.set_f32(keys::ROPE_THETA, theta);
                if let Some(local) = c.rope_theta_local.filter(|&l| l != theta) {
                    w.set_f32(keys::ROPE_THETA_LOCAL, local);
                }
                if c.rope_scaling != RopeScaling::None {
                    w.set_str(keys::ROPE_SCALING, c.rope_scaling.name());
                }
                if let Some((_, from)) = c.rope_long_inv_freq() {
                    w.set_u32(keys::ROPE_LONG_CONTEXT, u32_of("rope_long_context", from)?);
                }
                let factor = c.rope_scaling.attention_factor();
                if factor != 1.0 {
                    w.set_f32(keys::ROPE_ATTENTION_FACTOR, factor);
                }
            }
            Positions::Learned => {}
        }
        if let Some(window) = c.sliding_window {
            if c.layers.iter().any(|l| l.attention == Attention::Local) {
                w.set_u32(keys::SLIDING_WINDOW, u32_of("sliding_window", window)?);
                let codes = c.layers.iter().map(|l| l.attention.code()).collect();
                w.set(keys::LAYER_TYPES, OwnedValue::U8(codes));
            }
        }
        // Per-layer lists only where some layer differs from the default.
        let default = LayerSpec::default_for(&c.arch.features());
        if c.layers.iter().any(|l| l.positions != default.positions) {
            let codes = c.layers.iter().map(|l| l.positions.code()).collect();
            w.set(keys::LAYER_POSITIONS, OwnedValue::U8(codes));
        }
        if c.layers.iter().any(|l| l.kv != default.kv) {
            let codes = c.layers.iter().map(|l| l.kv.code()).collect();
            w.set(keys::LAYER_KV, OwnedValue::U8(codes));
        }
        if let Some(hg) = c.head_dim_global.filter(|&hg| hg != c.head_dim) {
            w.set_u32(keys::HEAD_DIM_GLOBAL, u32_of("head_dim_global", hg)?);
        }
        if let Some(f) = c.ffn_dim_shared_kv.filter(|&f| f != c.ffn_dim) {
            w.set_u32(keys::FFN_DIM_SHARED_KV, u32_of("ffn_dim_shared_kv", f)?);
        }
        if c.per_layer_dim > 0 {
            w.set_u32(
                keys::PER_LAYER_INPUT_DIM,
                u32_of("per_layer_input_dim", c.per_layer_dim)?,
            );
        }
        if c.layers.iter().any(|l| l.mixer != default.mixer) {
            let codes = c.layers.iter().map(|l| l.mixer.code()).collect();
            w.set(keys::LAYER_MIXER, OwnedValue::U8(codes));
        }
        let recurrent = c.arch.features().recurrent;
        if recurrent != Recurrent::None {
            w.set_u32(keys::CONV_KERNEL, u32_of("conv_kernel", c.conv_kernel)?);
        }
        if matches!(recurrent, Recurrent::Mamba2 | Recurrent::GatedDeltaNet) {
            for (key, name, v) in [
                (keys::SSM_HEADS, "ssm_heads", c.ssm_heads),
                (keys::SSM_HEAD_DIM, "ssm_head_dim", c.ssm_head_dim),
                (keys::SSM_STATE_DIM, "ssm_state_dim", c.ssm_state),
                (keys::SSM_GROUPS, "ssm_groups", c.ssm_groups),
            ] {
                w.set_u32(key, u32_of(name, v)?);
            }
        }
        if c.ssm_tiled_heads {
            w.set_bool(keys::SSM_TILED_HEADS, true);
        }
        for (key, v) in [
            (keys::EMBEDDING_SCALE, c.embedding_scale),
            (keys::RESIDUAL_SCALE, c.residual_scale),
            (keys::LOGITS_DIVISOR, c.logits_divisor),
        ] {
            if let Some(v) = v {
                w.set_f32(key, v);
            }
        }
        if c.layers.iter().any(|l| l.ffn != default.ffn) {
            let codes = c.layers.iter().map(|l| l.ffn.code()).collect();
            w.set(keys::LAYER_FFN, OwnedValue::U8(codes));
        }
        if let Some(rd) = c.rope_dim.filter(|&rd| rd != c.head_dim) {
            w.set_u32(keys::ROPE_DIM, u32_of("rope_dim", rd)?);
        }
        if c.arch.features().experts == Experts::Routed {
            w.set_u32(keys::EXPERT_COUNT, u32_of("expert_count", c.experts)?);
            w.set_u32(
                keys::EXPERT_USED_COUNT,
                u32_of("expert_used_count", c.experts_used)?,
            );
            w.set_u32(
                keys::EXPERT_FFN_DIM,
                u32_of("expert_ffn_dim", c.expert_ffn_dim)?,
            );
            w.set_bool(keys::EXPERT_WEIGHTS_NORM, c.expert_weights_norm);
        }
        if let Some(s) = c.attention_scale {
            w.set_f32(keys::ATTENTION_SCALE, s);
        }
        if let Some(cap) = c.final_logit_softcap {
            w.set_f32(keys::FINAL_LOGIT_SOFTCAP, cap);
        }
        Ok(())
    }

    /// Every tensor the runtime expects, with its shape; `bool` is "required" (biases are
    /// optional). Importers check their sources against this list (ember_format::schema).
    pub fn expected_tensors(&self) -> Result<Vec<(String, Vec<usize>, bool)>> {
        let hp = self.validate()?;
        let specs: Vec<_> = (0..hp.layers).map(|i| hp.layer(i)).collect();
        let mut out = Vec::new();
        schema::for_each_tensor(
            self.arch,
            &hp.dims(),
            &specs,
            self.tied_embeddings,
            |name, shape, need| {
                let shape = match shape {
                    Shape::Vector(n) => vec![n],
                    Shape::Matrix(r, c) => vec![r, c],
                };
                out.push((name.as_str().to_string(), shape, need == Need::Required));
            },
        );
        Ok(out)
    }
}
