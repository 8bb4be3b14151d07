//! The model schema, defined once for the converter (which writes it) and the runtime (which
//! reads it): architecture names, what each architecture's blocks do, the `model.*` metadata
//! keys, and the tensors each architecture expects with their shapes. docs/FORMAT.md
//! ("Model conventions") and docs/ARCHITECTURES.md describe the same in prose.
//!
//! Adding an architecture: a variant of [`Arch`] with its [`Features`], one converter mapping
//! (HF and/or GGUF names to the roles below), and whatever new feature the forward pass must
//! implement. Every feature is an enum the forward pass matches exhaustively.

use core::fmt;

use crate::ShortName;

/// The architectures Ember runs. The name is `general.architecture` in a `.ember` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Llama 1/2/3.x, Mistral, SmolLM, TinyLlama (biases optional).
    Llama,
    /// Qwen2 / Qwen2.5: Llama blocks with Q/K/V biases.
    Qwen2,
    /// Qwen3: Llama blocks with per-head RMSNorm on Q and K before RoPE.
    Qwen3,
    /// Gemma 3 text: four norms per block, Q/K norms, GeGLU, scaled embeddings, sliding-window
    /// attention on local layers with their own RoPE base.
    Gemma3,
    /// GPT-2: LayerNorm, learned positions, GELU MLP, biases everywhere.
    Gpt2,
    /// SmolLM3: Llama blocks, some layers without positions (NoPE, `model.layer_positions`).
    SmolLm3,
    /// Phi-3 / Phi-4-mini: Llama blocks with partial RoPE (`model.rope_dim`); HF and GGUF fuse
    /// QKV and gate/up, which the converter splits.
    Phi3,
    /// OLMo 2: norms after attention and feed-forward instead of before, Q/K RMSNorm over the
    /// whole projection.
    Olmo2,
    /// Qwen3-MoE: Qwen3 attention, routed SwiGLU experts (top-k of N).
    Qwen3Moe,
    /// Gemma 4 text (E2B, E4B): Gemma 3's blocks with plain-w norms, an unweighted RMSNorm
    /// on values, attention scale 1, a larger head on global layers, per-layer embeddings
    /// gating a residual branch in every layer, a scalar per layer, and the last layers
    /// reusing earlier layers' keys and values.
    Gemma4,
    /// LFM2 / LFM2.5: short-convolution layers (`model.layer_mixer`) between GQA layers with
    /// per-head Q/K norms.
    Lfm2,
    /// Granite 4 hybrid: Mamba-2 layers between attention layers without positions, muP
    /// multipliers on embeddings, residuals, attention and logits.
    GraniteHybrid,
    /// Qwen3.5: Gated DeltaNet layers, and every fourth a gated attention layer (a sigmoid
    /// gate from the query projection on its output) with (1 + w) Q/K norms and partial RoPE.
    Qwen35,
}

/// One architecture as data: its names in each format, its features and where its Hugging
/// Face tensors go. Adding an architecture is adding a row to [`ARCHS`].
#[derive(Clone, Copy, Debug)]
pub struct ArchInfo {
    pub arch: Arch,
    /// `general.architecture` in a `.ember` file.
    pub name: &'static str,
    /// Hugging Face `model_type`s.
    pub hf: &'static [&'static str],
    /// GGUF `general.architecture`s.
    pub gguf: &'static [&'static str],
    pub features: Features,
    /// HF modules under `model.layers.N.` (weight and bias), in groups, and the roles they
    /// fill; a fused module lists its parts in row order; `*` in a name is an expert's
    /// index, whose matrices are stacked by rows into the role.
    pub hf_layer: &'static [HfModules],
    /// GGUF tensors (`blk.N.<name>.weight`) that fuse several roles by rows.
    pub gguf_fused: &'static [(&'static str, &'static [Role])],
    /// llama.cpp's converter interleaved the Q/K rows of this GGUF architecture (RoPE in
    /// GPT-J order); the importer restores Hugging Face's order.
    pub gguf_rope_interleaved: bool,
    /// Hugging Face stores the norms' w of (1 + w) (Gemma 2/3); the converter adds the 1,
    /// as GGUF files hold them.
    pub hf_norms_add_one: bool,
}

const LLAMA: Features = Features {
    norm: NormKind::Rms,
    ffn: FfnKind::SwiGlu,
    positions: Positions::Rope,
    qk_norm: QkNorm::None,
    block_norms: BlockNorms::Pre,
    embed_scale: EmbedScale::One,
    biases: Biases::Optional,
    experts: Experts::None,
    value_norm: ValueNorm::None,
    per_layer_inputs: PerLayerInputs::None,
    layer_scale: LayerScale::None,
    recurrent: Recurrent::None,
    attention_gate: AttentionGate::None,
};

use Role::*;

/// Groups of HF modules (under `model.layers.N.`) and the roles they fill, from which the
/// architectures' maps are put together. Llama's `post_attention_layernorm` is the
/// feed-forward's pre-norm.
pub type HfModules = &'static [(&'static str, &'static [Role])];

const LLAMA_NORMS: HfModules = &[
    ("input_layernorm", &[AttnNorm]),
    ("post_attention_layernorm", &[FfnNorm]),
];
/// Gemma's four norms: its `post_attention_layernorm` is the attention's post-norm.
const GEMMA_NORMS: HfModules = &[
    ("input_layernorm", &[AttnNorm]),
    ("post_attention_layernorm", &[PostAttnNorm]),
    ("pre_feedforward_layernorm", &[FfnNorm]),
    ("post_feedforward_layernorm", &[PostFfnNorm]),
];
/// OLMo 2's norms come after the attention and the feed-forward only.
const POST_NORMS: HfModules = &[
    ("post_attention_layernorm", &[PostAttnNorm]),
    ("post_feedforward_layernorm", &[PostFfnNorm]),
];
const QK_NORMS: HfModules = &[
    ("self_attn.q_norm", &[AttnQNorm]),
    ("self_attn.k_norm", &[AttnKNorm]),
];
const ATTENTION: HfModules = &[
    ("self_attn.q_proj", &[AttnQ]),
    ("self_attn.k_proj", &[AttnK]),
    ("self_attn.v_proj", &[AttnV]),
    ("self_attn.o_proj", &[AttnOutput]),
];
const DENSE_FFN: HfModules = &[
    ("mlp.gate_proj", &[FfnGate]),
    ("mlp.up_proj", &[FfnUp]),
    ("mlp.down_proj", &[FfnDown]),
];
/// Phi-3's fused projections.
const FUSED_ATTENTION: HfModules = &[
    ("self_attn.qkv_proj", &[AttnQ, AttnK, AttnV]),
    ("self_attn.o_proj", &[AttnOutput]),
];
const FUSED_FFN: HfModules = &[
    ("mlp.gate_up_proj", &[FfnGate, FfnUp]),
    ("mlp.down_proj", &[FfnDown]),
];
const EXPERTS: HfModules = &[
    ("mlp.gate", &[FfnGateInp]),
    ("mlp.experts.*.gate_proj", &[FfnGateExps]),
    ("mlp.experts.*.up_proj", &[FfnUpExps]),
    ("mlp.experts.*.down_proj", &[FfnDownExps]),
];
/// Gemma 4's per-layer input branch and output scale.
const PER_LAYER_BRANCH: HfModules = &[
    ("per_layer_input_gate", &[PerLayerGate]),
    ("per_layer_projection", &[PerLayerProj]),
    ("post_per_layer_input_norm", &[PerLayerPostNorm]),
    // A scalar buffer without a `.weight` suffix.
    ("layer_scalar", &[LayerOutputScale]),
];

/// LFM2: its pre-norms, attention and feed-forward under their own names.
const LFM2_LAYER: HfModules = &[
    ("operator_norm", &[AttnNorm]),
    ("ffn_norm", &[FfnNorm]),
    ("self_attn.q_layernorm", &[AttnQNorm]),
    ("self_attn.k_layernorm", &[AttnKNorm]),
    ("self_attn.q_proj", &[AttnQ]),
    ("self_attn.k_proj", &[AttnK]),
    ("self_attn.v_proj", &[AttnV]),
    ("self_attn.out_proj", &[AttnOutput]),
    ("conv.in_proj", &[ShortConvIn]),
    ("conv.conv", &[ShortConvKernel]),
    ("conv.out_proj", &[ShortConvOut]),
    ("feed_forward.w1", &[FfnGate]),
    ("feed_forward.w3", &[FfnUp]),
    ("feed_forward.w2", &[FfnDown]),
];
/// Granite 4's Mamba-2 mixer (A_log and dt_bias are bare parameters; the converter turns
/// A_log into A = -exp(A_log)) and its gate/up-fused feed-forward.
const MAMBA2: HfModules = &[
    ("mamba.in_proj", &[SsmIn]),
    ("mamba.conv1d", &[SsmConv]),
    ("mamba.dt_bias", &[SsmDtBias]),
    ("mamba.A_log", &[SsmA]),
    ("mamba.D", &[SsmD]),
    ("mamba.norm", &[SsmNorm]),
    ("mamba.out_proj", &[SsmOut]),
];
const GRANITE_FFN: HfModules = &[
    ("shared_mlp.input_linear", &[FfnGate, FfnUp]),
    ("shared_mlp.output_linear", &[FfnDown]),
];

/// Qwen3.5's Gated DeltaNet (A_log and dt_bias are bare parameters).
const GATED_DELTA_NET: HfModules = &[
    ("linear_attn.in_proj_qkv", &[DeltaQkv]),
    ("linear_attn.in_proj_z", &[DeltaGate]),
    ("linear_attn.in_proj_b", &[DeltaBeta]),
    ("linear_attn.in_proj_a", &[DeltaAlpha]),
    ("linear_attn.conv1d", &[SsmConv]),
    ("linear_attn.dt_bias", &[SsmDtBias]),
    ("linear_attn.A_log", &[SsmA]),
    ("linear_attn.norm", &[SsmNorm]),
    ("linear_attn.out_proj", &[SsmOut]),
];

const LLAMA_HF: &[HfModules] = &[LLAMA_NORMS, ATTENTION, DENSE_FFN];
const QWEN3_HF: &[HfModules] = &[LLAMA_NORMS, QK_NORMS, ATTENTION, DENSE_FFN];

/// Every architecture, one row each.
pub const ARCHS: &[ArchInfo] = &[
    ArchInfo {
        arch: Arch::Llama,
        name: "llama",
        hf: &["llama", "mistral"],
        gguf: &["llama"],
        features: LLAMA,
        hf_layer: LLAMA_HF,
        gguf_fused: &[],
        gguf_rope_interleaved: true,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Qwen2,
        name: "qwen2",
        hf: &["qwen2"],
        gguf: &["qwen2"],
        features: LLAMA,
        hf_layer: LLAMA_HF,
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Qwen3,
        name: "qwen3",
        hf: &["qwen3"],
        gguf: &["qwen3"],
        features: Features {
            qk_norm: QkNorm::Rms,
            ..LLAMA
        },
        hf_layer: QWEN3_HF,
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Gemma3,
        name: "gemma3",
        hf: &["gemma3_text"],
        gguf: &["gemma3"],
        features: Features {
            ffn: FfnKind::GeGlu,
            qk_norm: QkNorm::Rms,
            block_norms: BlockNorms::Sandwich,
            embed_scale: EmbedScale::SqrtDim,
            ..LLAMA
        },
        hf_layer: &[GEMMA_NORMS, QK_NORMS, ATTENTION, DENSE_FFN],
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: true,
    },
    ArchInfo {
        arch: Arch::Gpt2,
        name: "gpt2",
        hf: &["gpt2"],
        gguf: &[],
        features: Features {
            norm: NormKind::Layer,
            ffn: FfnKind::Gelu,
            positions: Positions::Learned,
            biases: Biases::All,
            ..LLAMA
        },
        // Conv1D weights and a fused c_attn: mapped by the converter's GPT-2 importer.
        hf_layer: &[],
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::SmolLm3,
        name: "smollm3",
        hf: &["smollm3"],
        gguf: &["smollm3"],
        features: LLAMA,
        hf_layer: LLAMA_HF,
        gguf_fused: &[],
        gguf_rope_interleaved: true,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Phi3,
        name: "phi3",
        hf: &["phi3"],
        gguf: &["phi3"],
        features: LLAMA,
        hf_layer: &[LLAMA_NORMS, FUSED_ATTENTION, FUSED_FFN],
        gguf_fused: &[
            ("attn_qkv", &[AttnQ, AttnK, AttnV]),
            ("ffn_up", &[FfnGate, FfnUp]),
        ],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Olmo2,
        name: "olmo2",
        hf: &["olmo2"],
        gguf: &["olmo2"],
        features: Features {
            qk_norm: QkNorm::RmsWhole,
            block_norms: BlockNorms::Post,
            ..LLAMA
        },
        hf_layer: &[POST_NORMS, QK_NORMS, ATTENTION, DENSE_FFN],
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Qwen3Moe,
        name: "qwen3moe",
        hf: &["qwen3_moe"],
        gguf: &["qwen3moe"],
        features: Features {
            qk_norm: QkNorm::Rms,
            experts: Experts::Routed,
            ..LLAMA
        },
        hf_layer: &[LLAMA_NORMS, QK_NORMS, ATTENTION, EXPERTS, DENSE_FFN],
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Gemma4,
        name: "gemma4",
        hf: &["gemma4_text"],
        gguf: &["gemma4"],
        features: Features {
            ffn: FfnKind::GeGlu,
            qk_norm: QkNorm::Rms,
            block_norms: BlockNorms::Sandwich,
            embed_scale: EmbedScale::SqrtDim,
            value_norm: ValueNorm::Rms,
            per_layer_inputs: PerLayerInputs::Gated,
            layer_scale: LayerScale::Scalar,
            ..LLAMA
        },
        hf_layer: &[
            GEMMA_NORMS,
            QK_NORMS,
            ATTENTION,
            DENSE_FFN,
            PER_LAYER_BRANCH,
        ],
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Lfm2,
        name: "lfm2",
        hf: &["lfm2"],
        gguf: &["lfm2"],
        features: Features {
            qk_norm: QkNorm::Rms,
            recurrent: Recurrent::ShortConv,
            ..LLAMA
        },
        hf_layer: &[LFM2_LAYER],
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::GraniteHybrid,
        name: "granitehybrid",
        hf: &["granitemoehybrid"],
        gguf: &["granitehybrid"],
        features: Features {
            recurrent: Recurrent::Mamba2,
            ..LLAMA
        },
        hf_layer: &[LLAMA_NORMS, ATTENTION, MAMBA2, GRANITE_FFN],
        gguf_fused: &[],
        gguf_rope_interleaved: true,
        hf_norms_add_one: false,
    },
    ArchInfo {
        arch: Arch::Qwen35,
        name: "qwen35",
        hf: &["qwen3_5_text"],
        gguf: &["qwen35"],
        features: Features {
            qk_norm: QkNorm::Rms,
            attention_gate: AttentionGate::Sigmoid,
            recurrent: Recurrent::GatedDeltaNet,
            ..LLAMA
        },
        hf_layer: &[LLAMA_NORMS, QK_NORMS, ATTENTION, GATED_DELTA_NET, DENSE_FFN],
        gguf_fused: &[],
        gguf_rope_interleaved: false,
        hf_norms_add_one: true,
    },
];

impl Arch {
    /// This architecture's row of [`ARCHS`].
    pub fn info(self) -> &'static ArchInfo {
        match ARCHS.iter().find(|i| i.arch == self) {
            Some(i) => i,
            None => unreachable!("every architecture has a row in ARCHS"),
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The architecture named `name` (`mistral`, written by older converters, is Llama).
    pub fn from_name(name: &str) -> Option<Arch> {
        if name == "mistral" {
            return Some(Arch::Llama);
        }
        ARCHS.iter().find(|a| a.name == name).map(|a| a.arch)
    }

    /// The architecture of a Hugging Face `model_type`.
    pub fn from_hf(model_type: &str) -> Option<Arch> {
        ARCHS
            .iter()
            .find(|a| a.hf.contains(&model_type))
            .map(|a| a.arch)
    }

    /// The architecture of a GGUF `general.architecture`.
    pub fn from_gguf(name: &str) -> Option<Arch> {
        ARCHS
            .iter()
            .find(|a| a.gguf.contains(&name))
            .map(|a| a.arch)
    }

    /// Every name of `names(row)` over all rows, for error messages: "llama, qwen2, ...".
    pub fn list<F: Fn(&'static ArchInfo) -> &'static [&'static str]>(names: F) -> ListNames<F> {
        ListNames(names)
    }

    pub fn features(self) -> Features {
        self.info().features
    }

    /// Whether readers of format 1.3 and before know this architecture's name. Those
    /// readers ignore the keys of later features (per-layer lists, `model.rope_dim`, ...),
    /// so files of these architectures must not need them: newer features come with a
    /// newer architecture name, which older readers refuse.
    pub fn readable_by_format_1_3(self) -> bool {
        matches!(
            self,
            Arch::Llama | Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma3 | Arch::Gpt2
        )
    }
}

/// Displays a list of architecture names (see [`Arch::list`]).
pub struct ListNames<F>(F);

impl<F: Fn(&'static ArchInfo) -> &'static [&'static str]> fmt::Display for ListNames<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for a in ARCHS {
            for n in (self.0)(a) {
                if !first {
                    f.write_str(", ")?;
                }
                first = false;
                f.write_str(n)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an architecture's blocks do. Each field is matched exhaustively by the forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub norm: NormKind,
    pub ffn: FfnKind,
    pub positions: Positions,
    pub qk_norm: QkNorm,
    pub block_norms: BlockNorms,
    pub embed_scale: EmbedScale,
    pub biases: Biases,
    pub experts: Experts,
    pub value_norm: ValueNorm,
    pub per_layer_inputs: PerLayerInputs,
    pub layer_scale: LayerScale,
    pub recurrent: Recurrent,
    pub attention_gate: AttentionGate,
}

/// A gate on the attention's output, before the output projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionGate {
    None,
    /// Qwen3.5: the query projection is (2·NH·HS, C), each head's query followed by its
    /// gate; out = Wo · (attention ⊙ sigmoid(gate)).
    Sigmoid,
}

/// The recurrent token mixer of an architecture's recurrent layers ([`LayerMixer`]), whose
/// state (a few past inputs and, for the SSMs, a matrix per head) lives in the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recurrent {
    None,
    /// LFM2: b, c, x = in_proj·x; y = out_proj(c ⊙ conv_K(b ⊙ x)), a depthwise causal
    /// convolution of K taps per channel.
    ShortConv,
    /// Mamba-2 (Granite 4): z, xBC, dt = in_proj·x; xBC = silu(conv_K(xBC) + bias);
    /// per head h: S = exp(dt·A)·S + dt·x_h ⊗ B_g, y_h = S·C_g + D·x_h;
    /// y = out_proj(rmsnorm_groups(y ⊙ silu(z))).
    Mamba2,
    /// Gated DeltaNet (Qwen3.5): q, k, v = silu(conv_K(qkv·x)) with G key heads of N and H
    /// value heads of P; q, k L2-normalised; per value head, S (P, N) decays by
    /// exp(A·softplus(alpha·x + dt_bias)), then S += β (v − S·k) ⊗ k, o = S·q/√N, β =
    /// sigmoid(beta·x); y = out_proj(rmsnorm(o) ⊙ silu(gate·x)).
    GatedDeltaNet,
}

/// Normalization of values before attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueNorm {
    None,
    /// RMSNorm of each head (HS) without a weight (Gemma 4).
    Rms,
}

/// Per-layer inputs (Gemma 4's per-layer embeddings): a table (V, L·P) looked up per token,
/// plus a projection of the embedded token, give each layer a P-wide input that gates a
/// residual branch after its feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerLayerInputs {
    None,
    /// x += post_norm(proj(gelu_tanh(gate·x) ⊙ input_l)).
    Gated,
}

/// A learned scalar multiplying the whole residual stream at the end of each layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerScale {
    None,
    Scalar,
}

/// Whether feed-forward blocks may be mixtures of experts (which layers are: the
/// [`LayerSpec`]s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Experts {
    None,
    /// A router picks the top k of N SwiGLU experts per token; their outputs are summed,
    /// weighted by the softmax of the router's logits (renormalised over the k when
    /// `model.expert_weights_norm`).
    Routed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// x / rms(x) · w (Gemma's (1 + w) is folded into w by the converter).
    Rms,
    /// (x - mean) / std · w + b.
    Layer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfnKind {
    /// down(silu(gate·x) ⊙ up·x).
    SwiGlu,
    /// down(gelu_tanh(gate·x) ⊙ up·x).
    GeGlu,
    /// down(gelu_tanh(up·x)).
    Gelu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positions {
    Rope,
    Learned,
}

/// Normalization of queries and keys before RoPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkNorm {
    None,
    /// RMSNorm of each head (over HS), one weight (HS) shared by the heads.
    Rms,
    /// RMSNorm over the whole projection (NH·HS, KVH·HS), before it is split into heads.
    RmsWhole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockNorms {
    /// x += attn(norm(x)); x += ffn(norm(x)).
    Pre,
    /// x += post_norm(attn(norm(x))); x += post_norm(ffn(norm(x))) (Gemma).
    Sandwich,
    /// x += post_norm(attn(x)); x += post_norm(ffn(x)) (OLMo 2).
    Post,
}

/// What token embeddings are multiplied by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedScale {
    One,
    /// sqrt(C), in f32 (Gemma).
    SqrtDim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Biases {
    /// Any linear layer may have a bias (Qwen2's Q/K/V, Llama's `attention_bias`).
    Optional,
    /// Every linear layer and norm has one (GPT-2).
    All,
}

/// The attention of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attention {
    /// Every earlier position.
    Global,
    /// The last `window` positions, the current one included (Gemma's local layers).
    Local,
}

impl Attention {
    /// The value of this kind in [`keys::LAYER_TYPES`].
    pub const fn code(self) -> u8 {
        match self {
            Attention::Global => 0,
            Attention::Local => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<Attention> {
        match c {
            0 => Some(Attention::Global),
            1 => Some(Attention::Local),
            _ => None,
        }
    }
}

/// Where a layer's positions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerPositions {
    /// The model's scheme (RoPE or learned).
    Model,
    /// None (NoPE: SmolLM3's every fourth layer).
    None,
}

impl LayerPositions {
    /// The value of this kind in [`keys::LAYER_POSITIONS`].
    pub const fn code(self) -> u8 {
        match self {
            LayerPositions::Model => 0,
            LayerPositions::None => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<LayerPositions> {
        match c {
            0 => Some(LayerPositions::Model),
            1 => Some(LayerPositions::None),
            _ => None,
        }
    }
}

/// A layer's feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerFfn {
    /// The model's [`FfnKind`] with width F.
    Dense,
    /// Routed SwiGLU experts of width `model.expert_ffn_dim` ([`Experts::Routed`] models).
    Experts,
}

impl LayerFfn {
    /// The value of this kind in [`keys::LAYER_FFN`].
    pub const fn code(self) -> u8 {
        match self {
            LayerFfn::Dense => 0,
            LayerFfn::Experts => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<LayerFfn> {
        match c {
            0 => Some(LayerFfn::Dense),
            1 => Some(LayerFfn::Experts),
            _ => None,
        }
    }
}

/// A layer's token mixer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerMixer {
    /// Attention over the KV cache ([`Attention`] says which positions).
    Attention,
    /// The architecture's [`Recurrent`] mixer over a constant-size state.
    Recurrent,
}

impl LayerMixer {
    /// The value of this kind in [`keys::LAYER_MIXER`].
    pub const fn code(self) -> u8 {
        match self {
            LayerMixer::Attention => 0,
            LayerMixer::Recurrent => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<LayerMixer> {
        match c {
            0 => Some(LayerMixer::Attention),
            1 => Some(LayerMixer::Recurrent),
            _ => None,
        }
    }
}

/// Where a layer's keys and values come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKv {
    /// Its own projections, kept in its own cache.
    Own,
    /// The cache of the last earlier layer of the same attention kind that has its own
    /// (Gemma 4's last `num_kv_shared_layers`); the layer has no K/V tensors.
    Shared,
}

impl LayerKv {
    /// The value of this kind in [`keys::LAYER_KV`].
    pub const fn code(self) -> u8 {
        match self {
            LayerKv::Own => 0,
            LayerKv::Shared => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<LayerKv> {
        match c {
            0 => Some(LayerKv::Own),
            1 => Some(LayerKv::Shared),
            _ => None,
        }
    }
}

/// What one layer does: its token mixer, its positions, where its keys and values come
/// from, and its feed-forward block. Stored per layer in `model.layer_types`,
/// `model.layer_positions`, `model.layer_kv` and `model.layer_ffn`, each absent where every
/// layer takes the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    pub mixer: LayerMixer,
    pub attention: Attention,
    pub positions: LayerPositions,
    pub kv: LayerKv,
    pub ffn: LayerFfn,
}

impl LayerSpec {
    /// The default layer of a model with these features: global attention, the model's
    /// positions, experts where the model has them.
    pub const fn default_for(ft: &Features) -> LayerSpec {
        LayerSpec {
            mixer: LayerMixer::Attention,
            attention: Attention::Global,
            positions: LayerPositions::Model,
            kv: LayerKv::Own,
            ffn: match ft.experts {
                Experts::None => LayerFfn::Dense,
                Experts::Routed => LayerFfn::Experts,
            },
        }
    }
}

/// Metadata keys (docs/FORMAT.md has the types and meanings).
pub mod keys {
    pub const ARCHITECTURE: &str = "general.architecture";
    pub const NAME: &str = "general.name";
    pub const VOCAB_SIZE: &str = "model.vocab_size";
    pub const CONTEXT_LENGTH: &str = "model.context_length";
    pub const EMBEDDING_DIM: &str = "model.embedding_dim";
    pub const LAYER_COUNT: &str = "model.layer_count";
    pub const HEAD_COUNT: &str = "model.head_count";
    pub const KV_HEAD_COUNT: &str = "model.kv_head_count";
    pub const HEAD_DIM: &str = "model.head_dim";
    pub const FFN_DIM: &str = "model.ffn_dim";
    pub const NORM_EPS: &str = "model.norm_eps";
    pub const TIED_EMBEDDINGS: &str = "model.tied_embeddings";
    /// RoPE base of global layers.
    pub const ROPE_THETA: &str = "model.rope_theta";
    /// RoPE base of local (sliding-window) layers; absent: the global base.
    pub const ROPE_THETA_LOCAL: &str = "model.rope_theta_local";
    /// How the global layers' frequencies were scaled (`none`, `linear`, `llama3`, `yarn`):
    /// informational, the frequencies themselves are the tensor [`super::ROPE_INV_FREQ`].
    pub const ROPE_SCALING: &str = "model.rope_scaling";
    /// LongRoPE: sessions longer than this many positions use `rope.inv_freq_long`.
    pub const ROPE_LONG_CONTEXT: &str = "model.rope_long_context";
    /// YaRN's and LongRoPE's attention factor, multiplying cos and sin; absent: 1.
    pub const ROPE_ATTENTION_FACTOR: &str = "model.rope_attention_factor";
    /// Window of local layers in positions (the current one included).
    pub const SLIDING_WINDOW: &str = "model.sliding_window";
    /// u8 per layer: 0 global, 1 local ([`super::Attention::code`]); absent: all global.
    pub const LAYER_TYPES: &str = "model.layer_types";
    /// u8 per layer: 0 the model's positions, 1 none ([`super::LayerPositions::code`]);
    /// absent: every layer has the model's.
    pub const LAYER_POSITIONS: &str = "model.layer_positions";
    /// u8 per layer: 0 dense, 1 experts ([`super::LayerFfn::code`]); absent: experts in
    /// every layer of a mixture-of-experts model, dense in the others.
    pub const LAYER_FFN: &str = "model.layer_ffn";
    /// u8 per layer: 0 own keys and values, 1 shared ([`super::LayerKv::code`]); absent: all
    /// own.
    pub const LAYER_KV: &str = "model.layer_kv";
    /// Head size of global layers where it differs from `model.head_dim` (local layers').
    pub const HEAD_DIM_GLOBAL: &str = "model.head_dim_global";
    /// Feed-forward width of layers with shared keys and values where it differs from
    /// `model.ffn_dim` (Gemma 4's double-wide MLP).
    pub const FFN_DIM_SHARED_KV: &str = "model.ffn_dim_shared_kv";
    /// P: width of each layer's input from the per-layer embeddings.
    pub const PER_LAYER_INPUT_DIM: &str = "model.per_layer_input_dim";
    /// u8 per layer: 0 attention, 1 the architecture's recurrent mixer
    /// ([`super::LayerMixer::code`]); absent: all attention.
    pub const LAYER_MIXER: &str = "model.layer_mixer";
    /// K: taps of the recurrent layers' causal convolution (K - 1 past inputs are state).
    pub const CONV_KERNEL: &str = "model.conv_kernel";
    /// Mamba-2: H heads of P channels, state N per group, G groups of B/C. Gated
    /// DeltaNet: H value heads of P, G key heads of N.
    pub const SSM_HEADS: &str = "model.ssm_heads";
    pub const SSM_HEAD_DIM: &str = "model.ssm_head_dim";
    pub const SSM_STATE_DIM: &str = "model.ssm_state_dim";
    pub const SSM_GROUPS: &str = "model.ssm_groups";
    /// Gated DeltaNet: value head j reads key head j mod G (llama.cpp's order) where true,
    /// j / (H/G) (Hugging Face's) where absent or false.
    pub const SSM_TILED_HEADS: &str = "model.ssm_tiled_heads";
    /// Multiplies token embeddings; absent: the architecture's (1, or sqrt(C) for Gemma).
    pub const EMBEDDING_SCALE: &str = "model.embedding_scale";
    /// Multiplies each block's output before it joins the residual stream; absent: 1.
    pub const RESIDUAL_SCALE: &str = "model.residual_scale";
    /// Divides the logits (Granite's `logits_scaling`); absent: 1.
    pub const LOGITS_DIVISOR: &str = "model.logits_divisor";
    /// The keys of features added after format 1.3, whose readers ignore them: only files
    /// of architectures those readers do not know may hold them
    /// ([`super::Arch::readable_by_format_1_3`]).
    pub const SINCE_1_4: &[&str] = &[
        LAYER_POSITIONS,
        LAYER_FFN,
        LAYER_KV,
        ROPE_DIM,
        EXPERT_COUNT,
        EXPERT_USED_COUNT,
        EXPERT_FFN_DIM,
        EXPERT_WEIGHTS_NORM,
        HEAD_DIM_GLOBAL,
        FFN_DIM_SHARED_KV,
        PER_LAYER_INPUT_DIM,
        ROPE_LONG_CONTEXT,
        LAYER_MIXER,
        CONV_KERNEL,
        SSM_HEADS,
        SSM_HEAD_DIM,
        SSM_STATE_DIM,
        SSM_GROUPS,
        SSM_TILED_HEADS,
        EMBEDDING_SCALE,
        RESIDUAL_SCALE,
        LOGITS_DIVISOR,
    ];
    /// Dimensions of each head that RoPE rotates (the first ones, in rotate-half pairs);
    /// absent: all HS.
    pub const ROPE_DIM: &str = "model.rope_dim";
    /// Mixture-of-experts models: experts per layer (N), experts used per token (k), each
    /// expert's feed-forward width, and whether the k weights are renormalised to sum to 1.
    pub const EXPERT_COUNT: &str = "model.expert_count";
    pub const EXPERT_USED_COUNT: &str = "model.expert_used_count";
    pub const EXPERT_FFN_DIM: &str = "model.expert_ffn_dim";
    pub const EXPERT_WEIGHTS_NORM: &str = "model.expert_weights_norm";
    /// Multiplies q·k; absent: 1/sqrt(HS).
    pub const ATTENTION_SCALE: &str = "model.attention_scale";
    /// logits = cap · tanh(logits / cap); absent: none.
    pub const FINAL_LOGIT_SOFTCAP: &str = "model.final_logit_softcap";
    /// Written by converters before 0.2 and still accepted: `rms`/`layer`, `swiglu`/`gelu`,
    /// `rope`/`learned`. They follow from the architecture.
    pub const LEGACY_NORM: &str = "model.norm";
    pub const LEGACY_FFN: &str = "model.ffn";
    pub const LEGACY_POSITIONS: &str = "model.positions";
}

pub const TOKEN_EMBD: &str = "token_embd.weight";
/// Per-layer embeddings (V, L·P), their projection from the embedded token (L·P, C) and the
/// norm (P) of that projection.
pub const PER_LAYER_TOKEN_EMBD: &str = "per_layer_token_embd.weight";
pub const PER_LAYER_MODEL_PROJ: &str = "per_layer_model_proj.weight";
pub const PER_LAYER_PROJ_NORM: &str = "per_layer_proj_norm.weight";
pub const POS_EMBD: &str = "pos_embd.weight";
pub const OUTPUT_NORM: &str = "output_norm";
pub const OUTPUT: &str = "output.weight";
/// RoPE inverse frequencies of global layers (HS/2), f32, written when a RoPE scaling applies.
pub const ROPE_INV_FREQ: &str = "rope.inv_freq";
/// LongRoPE's frequencies for long contexts (R/2), used instead of [`ROPE_INV_FREQ`] by a
/// session whose capacity exceeds `model.rope_long_context`.
pub const ROPE_INV_FREQ_LONG: &str = "rope.inv_freq_long";

/// The tensors of one block, named `blk.N.<role>.weight` (and `.bias`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnOutput,
    AttnQNorm,
    AttnKNorm,
    PostAttnNorm,
    FfnNorm,
    FfnGate,
    FfnUp,
    FfnDown,
    PostFfnNorm,
    /// The router (N, C).
    FfnGateInp,
    /// Experts' gate, up (N·FE, C) and down (N·C, FE) matrices, stacked by rows: expert e
    /// is rows e·FE..(e+1)·FE (down: e·C..(e+1)·C), as GGUF's 3-D `ffn_*_exps` tensors.
    FfnGateExps,
    FfnUpExps,
    FfnDownExps,
    /// Per-layer input branch: gate (P, C), projection back (C, P), its norm (C).
    PerLayerGate,
    PerLayerProj,
    PerLayerPostNorm,
    /// The layer's output scale (1).
    LayerOutputScale,
    /// LFM2's short convolution: in_proj (3C, C) to b, c, x; the kernel (C, K), f32;
    /// out_proj (C, C).
    ShortConvIn,
    ShortConvKernel,
    ShortConvOut,
    /// Mamba-2: in_proj (2·H·P + 2·G·N + H, C) to z, xBC, dt; the convolution over xBC
    /// (H·P + 2·G·N, K) with its bias, f32; dt's bias, A (= -exp(A_log)) and D, each (H);
    /// the gated norm (H·P); out_proj (C, H·P).
    SsmIn,
    SsmConv,
    SsmDtBias,
    SsmA,
    SsmD,
    SsmNorm,
    SsmOut,
    /// Gated DeltaNet: the convolved projection to q, k, v (2·G·N + H·P, C), the output
    /// gate z (H·P, C), β's and the decay's inputs (H, C) each. With it: SsmConv, SsmA,
    /// SsmDtBias, SsmNorm (P, shared by the heads) and SsmOut.
    DeltaQkv,
    DeltaGate,
    DeltaBeta,
    DeltaAlpha,
}

/// Whether an architecture has a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
    Absent,
}

/// The sizes the tensor shapes follow from (letters as in DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub vocab: usize,
    pub context: usize,
    /// C
    pub dim: usize,
    /// NH
    pub heads: usize,
    /// KVH
    pub kv_heads: usize,
    /// HS
    pub head_dim: usize,
    /// F
    pub ffn: usize,
    /// N experts per layer (0: none)
    pub experts: usize,
    /// FE: each expert's feed-forward width
    pub expert_ffn: usize,
    /// R: dimensions of each global layer's heads RoPE rotates (HS unless partial; local
    /// layers rotate all of theirs)
    pub rope_dim: usize,
    /// HS of global layers
    pub head_dim_global: usize,
    /// F of layers that share keys and values
    pub ffn_shared_kv: usize,
    /// P: per-layer input width (0: none)
    pub per_layer: usize,
    /// K: recurrent layers' convolution taps (0: none)
    pub conv_kernel: usize,
    /// Mamba-2's H heads of P channels, N state per group, G groups (0: none)
    pub ssm_heads: usize,
    pub ssm_head_dim: usize,
    pub ssm_state: usize,
    pub ssm_groups: usize,
}

impl Dims {
    /// Channels of the recurrent layers' convolution: C (short convolution), H·P + 2·G·N
    /// (Mamba-2's x, B and C; Gated DeltaNet's q, k and v).
    pub const fn conv_channels(&self, r: Recurrent) -> usize {
        match r {
            Recurrent::None => 0,
            Recurrent::ShortConv => self.dim,
            Recurrent::Mamba2 | Recurrent::GatedDeltaNet => {
                self.ssm_heads * self.ssm_head_dim + 2 * self.ssm_groups * self.ssm_state
            }
        }
    }
}

/// A tensor's shape: a vector (n) or a matrix (rows, cols).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Vector(usize),
    Matrix(usize, usize),
}

impl Shape {
    pub fn dims(&self) -> ([usize; 2], usize) {
        match *self {
            Shape::Vector(n) => ([n, 0], 1),
            Shape::Matrix(r, c) => ([r, c], 2),
        }
    }
}

impl Role {
    pub const ALL: [Role; 35] = [
        Role::AttnNorm,
        Role::AttnQ,
        Role::AttnK,
        Role::AttnV,
        Role::AttnOutput,
        Role::AttnQNorm,
        Role::AttnKNorm,
        Role::PostAttnNorm,
        Role::FfnNorm,
        Role::FfnGate,
        Role::FfnUp,
        Role::FfnDown,
        Role::PostFfnNorm,
        Role::FfnGateInp,
        Role::FfnGateExps,
        Role::FfnUpExps,
        Role::FfnDownExps,
        Role::PerLayerGate,
        Role::PerLayerProj,
        Role::PerLayerPostNorm,
        Role::LayerOutputScale,
        Role::ShortConvIn,
        Role::ShortConvKernel,
        Role::ShortConvOut,
        Role::SsmIn,
        Role::SsmConv,
        Role::SsmDtBias,
        Role::SsmA,
        Role::SsmD,
        Role::SsmNorm,
        Role::SsmOut,
        Role::DeltaQkv,
        Role::DeltaGate,
        Role::DeltaBeta,
        Role::DeltaAlpha,
    ];

    /// The name inside `blk.N.<name>.weight` (GGUF's names).
    pub const fn name(self) -> &'static str {
        match self {
            Role::AttnNorm => "attn_norm",
            Role::AttnQ => "attn_q",
            Role::AttnK => "attn_k",
            Role::AttnV => "attn_v",
            Role::AttnOutput => "attn_output",
            Role::AttnQNorm => "attn_q_norm",
            Role::AttnKNorm => "attn_k_norm",
            Role::PostAttnNorm => "post_attention_norm",
            Role::FfnNorm => "ffn_norm",
            Role::FfnGate => "ffn_gate",
            Role::FfnUp => "ffn_up",
            Role::FfnDown => "ffn_down",
            Role::PostFfnNorm => "post_ffw_norm",
            Role::FfnGateInp => "ffn_gate_inp",
            Role::FfnGateExps => "ffn_gate_exps",
            Role::FfnUpExps => "ffn_up_exps",
            Role::FfnDownExps => "ffn_down_exps",
            Role::PerLayerGate => "inp_gate",
            Role::PerLayerProj => "proj",
            Role::PerLayerPostNorm => "post_norm",
            Role::LayerOutputScale => "layer_output_scale",
            Role::ShortConvIn => "shortconv.in_proj",
            Role::ShortConvKernel => "shortconv.conv",
            Role::ShortConvOut => "shortconv.out_proj",
            Role::SsmIn => "ssm_in",
            Role::SsmConv => "ssm_conv1d",
            Role::SsmDtBias => "ssm_dt_bias",
            Role::SsmA => "ssm_a",
            Role::SsmD => "ssm_d",
            Role::SsmNorm => "ssm_norm",
            Role::SsmOut => "ssm_out",
            Role::DeltaQkv => "attn_qkv",
            Role::DeltaGate => "attn_gate",
            Role::DeltaBeta => "ssm_beta",
            Role::DeltaAlpha => "ssm_alpha",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The role of a layer tensor `blk.N.<role>.weight` (or `.bias`).
    pub fn of_tensor(name: &str) -> Option<Role> {
        let rest = name.strip_prefix("blk.")?;
        let (_, rest) = rest.split_once('.')?;
        let role = rest
            .strip_suffix(".weight")
            .or_else(|| rest.strip_suffix(".bias"))?;
        Role::from_name(role)
    }

    pub const fn is_norm(self) -> bool {
        matches!(
            self,
            Role::AttnNorm
                | Role::AttnQNorm
                | Role::AttnKNorm
                | Role::PostAttnNorm
                | Role::FfnNorm
                | Role::PostFfnNorm
                | Role::PerLayerPostNorm
                | Role::SsmNorm
        )
    }

    /// Small tensors the runtime reads elementwise in f32 whatever the recipe: norms,
    /// biases and the recurrent layers' parameters (convolution kernels, A, D, dt's bias).
    pub const fn keeps_f32(self) -> bool {
        self.is_norm()
            || matches!(
                self,
                Role::ShortConvKernel
                    | Role::SsmConv
                    | Role::SsmDtBias
                    | Role::SsmA
                    | Role::SsmD
                    | Role::LayerOutputScale
            )
    }

    /// Shape of the weight in a layer `l` of a model with features `ft`; a bias is (rows)
    /// of it.
    pub const fn shape(self, d: &Dims, ft: &Features, l: &LayerSpec) -> Shape {
        let hs = match l.attention {
            Attention::Global => d.head_dim_global,
            Attention::Local => d.head_dim,
        };
        let f = match l.kv {
            LayerKv::Own => d.ffn,
            LayerKv::Shared => d.ffn_shared_kv,
        };
        let (c, q, kv) = (d.dim, d.heads * hs, d.kv_heads * hs);
        let (n, fe, p) = (d.experts, d.expert_ffn, d.per_layer);
        let (h, hp, gn) = (
            d.ssm_heads,
            d.ssm_heads * d.ssm_head_dim,
            d.ssm_groups * d.ssm_state,
        );
        let conv = d.conv_channels(ft.recurrent);
        match self {
            Role::AttnNorm
            | Role::PostAttnNorm
            | Role::FfnNorm
            | Role::PostFfnNorm
            | Role::PerLayerPostNorm => Shape::Vector(c),
            Role::AttnQNorm => match ft.qk_norm {
                QkNorm::RmsWhole => Shape::Vector(q),
                QkNorm::Rms | QkNorm::None => Shape::Vector(hs),
            },
            Role::AttnKNorm => match ft.qk_norm {
                QkNorm::RmsWhole => Shape::Vector(kv),
                QkNorm::Rms | QkNorm::None => Shape::Vector(hs),
            },
            Role::AttnQ => match ft.attention_gate {
                AttentionGate::None => Shape::Matrix(q, c),
                AttentionGate::Sigmoid => Shape::Matrix(2 * q, c),
            },
            Role::AttnK | Role::AttnV => Shape::Matrix(kv, c),
            Role::AttnOutput => Shape::Matrix(c, q),
            Role::FfnGate | Role::FfnUp => Shape::Matrix(f, c),
            Role::FfnDown => Shape::Matrix(c, f),
            Role::FfnGateInp => Shape::Matrix(n, c),
            Role::FfnGateExps | Role::FfnUpExps => Shape::Matrix(n * fe, c),
            Role::FfnDownExps => Shape::Matrix(n * c, fe),
            Role::PerLayerGate => Shape::Matrix(p, c),
            Role::PerLayerProj => Shape::Matrix(c, p),
            Role::LayerOutputScale => Shape::Vector(1),
            Role::ShortConvIn => Shape::Matrix(3 * c, c),
            Role::ShortConvKernel | Role::SsmConv => Shape::Matrix(conv, d.conv_kernel),
            Role::ShortConvOut => Shape::Matrix(c, c),
            Role::SsmIn => Shape::Matrix(2 * hp + 2 * gn + h, c),
            Role::SsmDtBias | Role::SsmA | Role::SsmD => Shape::Vector(h),
            Role::SsmNorm => match ft.recurrent {
                Recurrent::GatedDeltaNet => Shape::Vector(d.ssm_head_dim),
                _ => Shape::Vector(hp),
            },
            Role::SsmOut => Shape::Matrix(c, hp),
            Role::DeltaQkv => Shape::Matrix(conv, c),
            Role::DeltaGate => Shape::Matrix(hp, c),
            Role::DeltaBeta | Role::DeltaAlpha => Shape::Matrix(h, c),
        }
    }

    pub const fn bias_len(self, d: &Dims, ft: &Features, l: &LayerSpec) -> usize {
        match self.shape(d, ft, l) {
            Shape::Vector(n) => n,
            Shape::Matrix(rows, _) => rows,
        }
    }
}

impl Features {
    /// Whether a layer `l` has `role`'s weight.
    pub const fn weight(&self, role: Role, l: &LayerSpec) -> Need {
        let dense = matches!(l.ffn, LayerFfn::Dense);
        let pre_norms = !matches!(self.block_norms, BlockNorms::Post);
        let attention = matches!(l.mixer, LayerMixer::Attention);
        let own_kv = attention && matches!(l.kv, LayerKv::Own);
        let recurrent = match l.mixer {
            LayerMixer::Attention => Recurrent::None,
            LayerMixer::Recurrent => self.recurrent,
        };
        let has = match role {
            Role::AttnQ | Role::AttnOutput => attention,
            Role::AttnK | Role::AttnV => own_kv,
            Role::AttnQNorm => {
                attention
                    && match self.qk_norm {
                        QkNorm::Rms | QkNorm::RmsWhole => true,
                        QkNorm::None => false,
                    }
            }
            Role::AttnNorm | Role::FfnNorm => pre_norms,
            Role::FfnUp | Role::FfnDown => dense,
            Role::AttnKNorm => {
                own_kv
                    && match self.qk_norm {
                        QkNorm::Rms | QkNorm::RmsWhole => true,
                        QkNorm::None => false,
                    }
            }
            Role::PostAttnNorm | Role::PostFfnNorm => match self.block_norms {
                BlockNorms::Sandwich | BlockNorms::Post => true,
                BlockNorms::Pre => false,
            },
            Role::FfnGate => {
                dense
                    && match self.ffn {
                        FfnKind::SwiGlu | FfnKind::GeGlu => true,
                        FfnKind::Gelu => false,
                    }
            }
            Role::FfnGateInp | Role::FfnGateExps | Role::FfnUpExps | Role::FfnDownExps => !dense,
            Role::PerLayerGate | Role::PerLayerProj | Role::PerLayerPostNorm => {
                matches!(self.per_layer_inputs, PerLayerInputs::Gated)
            }
            Role::LayerOutputScale => matches!(self.layer_scale, LayerScale::Scalar),
            Role::ShortConvIn | Role::ShortConvKernel | Role::ShortConvOut => {
                matches!(recurrent, Recurrent::ShortConv)
            }
            Role::SsmIn | Role::SsmD => matches!(recurrent, Recurrent::Mamba2),
            Role::SsmConv | Role::SsmDtBias | Role::SsmA | Role::SsmNorm | Role::SsmOut => {
                matches!(recurrent, Recurrent::Mamba2 | Recurrent::GatedDeltaNet)
            }
            Role::DeltaQkv | Role::DeltaGate | Role::DeltaBeta | Role::DeltaAlpha => {
                matches!(recurrent, Recurrent::GatedDeltaNet)
            }
        };
        if has {
            Need::Required
        } else {
            Need::Absent
        }
    }

    /// Whether a layer `l` has `role`'s bias (experts and routers have none).
    pub const fn bias(&self, role: Role, l: &LayerSpec) -> Need {
        if let Need::Absent = self.weight(role, l) {
            return Need::Absent;
        }
        let expert = matches!(
            role,
            Role::FfnGateInp
                | Role::FfnGateExps
                | Role::FfnUpExps
                | Role::FfnDownExps
                | Role::PerLayerGate
                | Role::PerLayerProj
                | Role::LayerOutputScale
                | Role::SsmDtBias
                | Role::SsmA
                | Role::SsmD
        );
        match (role.is_norm(), self.norm, self.biases) {
            (true, NormKind::Layer, _) => Need::Required,
            (true, NormKind::Rms, _) => Need::Absent,
            (false, _, _) if expert => Need::Absent,
            (false, _, Biases::All) => Need::Required,
            (false, _, Biases::Optional) => Need::Optional,
        }
    }

    /// The output norm's bias.
    pub const fn output_norm_bias(&self) -> Need {
        match self.norm {
            NormKind::Layer => Need::Required,
            NormKind::Rms => Need::Absent,
        }
    }
}

/// A tensor name built without allocating: `blk.{layer}.{role}.weight` and the like.
#[derive(Clone, Copy)]
pub struct TensorName {
    buf: [u8; 64],
    len: usize,
}

impl TensorName {
    /// The concatenation of `parts` (cut at 64 bytes).
    pub fn new(parts: &[&str]) -> TensorName {
        let mut n = TensorName {
            buf: [0; 64],
            len: 0,
        };
        for p in parts {
            let b = p.as_bytes();
            let take = b.len().min(64 - n.len);
            n.buf[n.len..n.len + take].copy_from_slice(&b[..take]);
            n.len += take;
        }
        n
    }

    /// `blk.{layer}.{role}.weight` or `.bias`.
    pub fn layer(layer: usize, role: Role, bias: bool) -> TensorName {
        let mut digits = [0u8; 20];
        let mut k = digits.len();
        let mut v = layer;
        loop {
            k -= 1;
            digits[k] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let num = core::str::from_utf8(&digits[k..]).unwrap_or("0");
        let suffix = if bias { ".bias" } else { ".weight" };
        TensorName::new(&["blk.", num, ".", role.name(), suffix])
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    pub fn short(&self) -> ShortName {
        ShortName::new(&self.buf[..self.len])
    }
}

impl fmt::Display for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TensorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Calls `f(name, shape, need)` for every tensor a model of `arch` with these dimensions and
/// `layers` can have, in file-independent order: embeddings, blocks, output. `tied`: the head
/// reuses the token embedding. The RoPE frequency table is optional wherever RoPE is used.
pub fn for_each_tensor(
    arch: Arch,
    d: &Dims,
    layers: &[LayerSpec],
    tied: bool,
    mut f: impl FnMut(TensorName, Shape, Need),
) {
    let ft = arch.features();
    f(
        TensorName::new(&[TOKEN_EMBD]),
        Shape::Matrix(d.vocab, d.dim),
        Need::Required,
    );
    match ft.positions {
        Positions::Learned => f(
            TensorName::new(&[POS_EMBD]),
            Shape::Matrix(d.context, d.dim),
            Need::Required,
        ),
        Positions::Rope => f(
            TensorName::new(&[ROPE_INV_FREQ]),
            Shape::Vector(d.rope_dim / 2),
            Need::Optional,
        ),
    }
    if let Positions::Rope = ft.positions {
        f(
            TensorName::new(&[ROPE_INV_FREQ_LONG]),
            Shape::Vector(d.rope_dim / 2),
            Need::Optional,
        );
    }
    if let PerLayerInputs::Gated = ft.per_layer_inputs {
        let lp = layers.len() * d.per_layer;
        f(
            TensorName::new(&[PER_LAYER_TOKEN_EMBD]),
            Shape::Matrix(d.vocab, lp),
            Need::Required,
        );
        f(
            TensorName::new(&[PER_LAYER_MODEL_PROJ]),
            Shape::Matrix(lp, d.dim),
            Need::Required,
        );
        f(
            TensorName::new(&[PER_LAYER_PROJ_NORM]),
            Shape::Vector(d.per_layer),
            Need::Required,
        );
    }
    for (layer, spec) in layers.iter().enumerate() {
        for role in Role::ALL {
            let w = ft.weight(role, spec);
            if w != Need::Absent {
                f(
                    TensorName::layer(layer, role, false),
                    role.shape(d, &ft, spec),
                    w,
                );
            }
            let b = ft.bias(role, spec);
            if b != Need::Absent {
                f(
                    TensorName::layer(layer, role, true),
                    Shape::Vector(role.bias_len(d, &ft, spec)),
                    b,
                );
            }
        }
    }
    f(
        TensorName::new(&[OUTPUT_NORM, ".weight"]),
        Shape::Vector(d.dim),
        Need::Required,
    );
    let b = ft.output_norm_bias();
    if b != Need::Absent {
        f(
            TensorName::new(&[OUTPUT_NORM, ".bias"]),
            Shape::Vector(d.dim),
            b,
        );
    }
    if !tied {
        f(
            TensorName::new(&[OUTPUT]),
            Shape::Matrix(d.vocab, d.dim),
            Need::Required,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in ARCHS {
            assert_eq!(Arch::from_name(a.name), Some(a.arch));
            assert_eq!(a.arch.info().name, a.name);
            for h in a.hf {
                assert_eq!(Arch::from_hf(h), Some(a.arch));
            }
            for g in a.gguf {
                assert_eq!(Arch::from_gguf(g), Some(a.arch));
            }
        }
        assert_eq!(
            std::format!("{}", Arch::list(|a| core::slice::from_ref(&a.name))),
            "llama, qwen2, qwen3, gemma3, gpt2, smollm3, phi3, olmo2, qwen3moe, gemma4, lfm2, granitehybrid, qwen35"
        );
        for r in Role::ALL {
            assert_eq!(Role::from_name(r.name()), Some(r));
        }
        assert_eq!(Arch::from_name("mistral"), Some(Arch::Llama));
        assert_eq!(Arch::from_name("bert"), None);
    }

    #[test]
    fn gemma3_has_four_norms_and_qk_norms() {
        let d = Dims {
            vocab: 10,
            context: 8,
            dim: 4,
            heads: 2,
            kv_heads: 1,
            head_dim: 6,
            ffn: 8,
            experts: 0,
            expert_ffn: 0,
            rope_dim: 6,
            head_dim_global: 6,
            ffn_shared_kv: 8,
            per_layer: 0,
            conv_kernel: 0,
            ssm_heads: 0,
            ssm_head_dim: 0,
            ssm_state: 0,
            ssm_groups: 0,
        };
        let mut names = 0;
        let mut required = 0;
        let spec = LayerSpec::default_for(&Arch::Gemma3.features());
        for_each_tensor(Arch::Gemma3, &d, &[spec], true, |n, s, need| {
            names += 1;
            if need == Need::Required {
                required += 1;
            }
            if n.as_str() == "blk.0.attn_q_norm.weight" {
                assert_eq!(s, Shape::Vector(6));
            }
        });
        // token_embd, 6 norms, q k v o gate up down, output_norm
        assert_eq!(required, 1 + 6 + 7 + 1);
        // + two rope tables (scaled, LongRoPE's long), 7 optional biases
        assert_eq!(names, required + 2 + 7);
        assert_eq!(
            TensorName::layer(12, Role::PostFfnNorm, false).as_str(),
            "blk.12.post_ffw_norm.weight"
        );
    }
}
