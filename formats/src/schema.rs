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
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::Llama,
        Arch::Qwen2,
        Arch::Qwen3,
        Arch::Gemma3,
        Arch::Gpt2,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3",
            Arch::Gpt2 => "gpt2",
        }
    }

    /// The architecture named `name` (`mistral`, written by older converters, is Llama).
    pub fn from_name(name: &str) -> Option<Arch> {
        if name == "mistral" {
            return Some(Arch::Llama);
        }
        Arch::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Names of every architecture, for error messages: "llama, qwen2, ...".
    pub const NAMES: &'static str = "llama, qwen2, qwen3, gemma3, gpt2";

    pub const fn features(self) -> Features {
        const LLAMA: Features = Features {
            norm: NormKind::Rms,
            ffn: FfnKind::SwiGlu,
            positions: Positions::Rope,
            qk_norm: QkNorm::None,
            block_norms: BlockNorms::Pre,
            embed_scale: EmbedScale::One,
            biases: Biases::Optional,
        };
        match self {
            Arch::Llama | Arch::Qwen2 => LLAMA,
            Arch::Qwen3 => Features {
                qk_norm: QkNorm::Rms,
                ..LLAMA
            },
            Arch::Gemma3 => Features {
                ffn: FfnKind::GeGlu,
                qk_norm: QkNorm::Rms,
                block_norms: BlockNorms::Sandwich,
                embed_scale: EmbedScale::SqrtDim,
                ..LLAMA
            },
            Arch::Gpt2 => Features {
                norm: NormKind::Layer,
                ffn: FfnKind::Gelu,
                positions: Positions::Learned,
                biases: Biases::All,
                ..LLAMA
            },
        }
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

/// Normalization of each query and key head (over HS) before RoPE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkNorm {
    None,
    Rms,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockNorms {
    /// x += attn(norm(x)); x += ffn(norm(x)).
    Pre,
    /// x += post_norm(attn(norm(x))); x += post_norm(ffn(norm(x))) (Gemma).
    Sandwich,
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
    /// YaRN's attention factor, multiplying cos and sin; absent: 1.
    pub const ROPE_ATTENTION_FACTOR: &str = "model.rope_attention_factor";
    /// Window of local layers in positions (the current one included).
    pub const SLIDING_WINDOW: &str = "model.sliding_window";
    /// u8 per layer: 0 global, 1 local ([`super::Attention::code`]); absent: all global.
    pub const LAYER_TYPES: &str = "model.layer_types";
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
pub const POS_EMBD: &str = "pos_embd.weight";
pub const OUTPUT_NORM: &str = "output_norm";
pub const OUTPUT: &str = "output.weight";
/// RoPE inverse frequencies of global layers (HS/2), f32, written when a RoPE scaling applies.
pub const ROPE_INV_FREQ: &str = "rope.inv_freq";

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
    pub const ALL: [Role; 13] = [
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
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
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
        )
    }

    /// Shape of the weight; a bias is (rows) of it.
    pub const fn shape(self, d: &Dims) -> Shape {
        let (c, q, kv, f) = (d.dim, d.heads * d.head_dim, d.kv_heads * d.head_dim, d.ffn);
        match self {
            Role::AttnNorm | Role::PostAttnNorm | Role::FfnNorm | Role::PostFfnNorm => {
                Shape::Vector(c)
            }
            Role::AttnQNorm | Role::AttnKNorm => Shape::Vector(d.head_dim),
            Role::AttnQ => Shape::Matrix(q, c),
            Role::AttnK | Role::AttnV => Shape::Matrix(kv, c),
            Role::AttnOutput => Shape::Matrix(c, q),
            Role::FfnGate | Role::FfnUp => Shape::Matrix(f, c),
            Role::FfnDown => Shape::Matrix(c, f),
        }
    }

    pub const fn bias_len(self, d: &Dims) -> usize {
        match self.shape(d) {
            Shape::Vector(n) => n,
            Shape::Matrix(rows, _) => rows,
        }
    }
}

impl Features {
    /// Whether blocks have `role`'s weight.
    pub const fn weight(&self, role: Role) -> Need {
        let has = match role {
            Role::AttnNorm
            | Role::AttnQ
            | Role::AttnK
            | Role::AttnV
            | Role::AttnOutput
            | Role::FfnNorm
            | Role::FfnUp
            | Role::FfnDown => true,
            Role::AttnQNorm | Role::AttnKNorm => match self.qk_norm {
                QkNorm::Rms => true,
                QkNorm::None => false,
            },
            Role::PostAttnNorm | Role::PostFfnNorm => match self.block_norms {
                BlockNorms::Sandwich => true,
                BlockNorms::Pre => false,
            },
            Role::FfnGate => match self.ffn {
                FfnKind::SwiGlu | FfnKind::GeGlu => true,
                FfnKind::Gelu => false,
            },
        };
        if has {
            Need::Required
        } else {
            Need::Absent
        }
    }

    /// Whether blocks have `role`'s bias.
    pub const fn bias(&self, role: Role) -> Need {
        if let Need::Absent = self.weight(role) {
            return Need::Absent;
        }
        match (role.is_norm(), self.norm, self.biases) {
            (true, NormKind::Layer, _) => Need::Required,
            (true, NormKind::Rms, _) => Need::Absent,
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

/// Calls `f(name, shape, need)` for every tensor a model of `arch` with these dimensions can
/// have, in file-independent order: embeddings, blocks, output. `tied`: the head reuses the
/// token embedding. The RoPE frequency table is optional wherever RoPE is used.
pub fn for_each_tensor(
    arch: Arch,
    d: &Dims,
    layers: usize,
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
            Shape::Vector(d.head_dim / 2),
            Need::Optional,
        ),
    }
    for layer in 0..layers {
        for role in Role::ALL {
            let w = ft.weight(role);
            if w != Need::Absent {
                f(TensorName::layer(layer, role, false), role.shape(d), w);
            }
            let b = ft.bias(role);
            if b != Need::Absent {
                f(
                    TensorName::layer(layer, role, true),
                    Shape::Vector(role.bias_len(d)),
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
        for a in Arch::ALL {
            assert_eq!(Arch::from_name(a.name()), Some(a));
            assert!(Arch::NAMES.contains(a.name()));
        }
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
        };
        let mut names = 0;
        let mut required = 0;
        for_each_tensor(Arch::Gemma3, &d, 1, true, |n, s, need| {
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
        // + rope table, 7 optional biases
        assert_eq!(names, required + 1 + 7);
        assert_eq!(
            TensorName::layer(12, Role::PostFfnNorm, false).as_str(),
            "blk.12.post_ffw_norm.weight"
        );
    }
}
