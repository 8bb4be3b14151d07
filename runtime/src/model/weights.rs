//! The model's tensors, borrowed from the file, checked against the config once at load.

use ember_format::schema::{
    self, Dims, Features, LayerFfn, LayerMixer, LayerSpec, Need, PerLayerInputs, Positions,
    Recurrent, Role, Shape, TensorName,
};
use ember_format::{DType, EmberFile, Layout, ShortName, TensorInfo};

use super::Config;
use crate::Error;

/// A weight matrix (rows, cols) in any dtype: rows contiguous (`cols` elements each), or in
/// groups of 16 interleaved rows (the rows16 layout, docs/FORMAT.md).
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    pub dtype: DType,
    /// Row-major, or rows16 (groups of 16 rows interleaved for the kernels).
    pub layout: Layout,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

impl<'a> Matrix<'a> {
    /// An empty matrix, a placeholder in caller-provided layer storage.
    pub const EMPTY: Matrix<'static> = Matrix {
        dtype: DType::F32,
        layout: Layout::RowMajor,
        rows: 0,
        cols: 0,
        data: &[],
    };

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows
    }

    /// Rows `first..first + n` as a matrix of their own: whole rows16 groups (`first` and
    /// `n` multiples of 16) or any rows of a row-major matrix.
    pub fn rows(&self, first: usize, n: usize) -> Matrix<'a> {
        let rb = self.row_bytes();
        debug_assert!(
            self.layout == Layout::RowMajor || (first.is_multiple_of(16) && n.is_multiple_of(16))
        );
        Matrix {
            rows: n,
            data: &self.data[first * rb..(first + n) * rb],
            ..*self
        }
    }

    /// Row `r`'s bytes (row-major matrices only: rows16 rows are not contiguous).
    pub fn row(&self, r: usize) -> &'a [u8] {
        debug_assert!(self.layout == Layout::RowMajor);
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }
}

/// A normalization's scale and (LayerNorm) shift, each (C).
#[derive(Clone, Copy, Debug)]
pub struct Norm<'a> {
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

#[derive(Clone, Copy, Debug)]
pub struct Linear<'a> {
    pub w: Matrix<'a>,
    pub b: Option<&'a [f32]>,
}

/// One block's tensors; which optional ones are present follows the architecture's
/// features and the layer's kinds (`ember_format::schema::{Features, LayerSpec}`), checked
/// at load.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    /// Pre-norm of the token mixer (absent with BlockNorms::Post).
    pub attn_norm: Option<Norm<'a>>,
    pub mixer: Mixer<'a>,
    /// Norm of the mixer's output (BlockNorms::Sandwich and Post).
    pub post_attn_norm: Option<Norm<'a>>,
    /// Pre-norm of the feed-forward (absent with BlockNorms::Post).
    pub ffn_norm: Option<Norm<'a>>,
    pub ffn: Ffn<'a>,
    /// Norm of the feed-forward's output (BlockNorms::Sandwich and Post).
    pub post_ffn_norm: Option<Norm<'a>>,
    /// The per-layer input branch (PerLayerInputs::Gated).
    pub per_layer: Option<PerLayerBranch<'a>>,
    /// Multiplies the residual stream at the end of the layer (LayerScale::Scalar).
    pub output_scale: Option<f32>,
}

/// A layer's token mixer (`LayerMixer`): attention, or the architecture's recurrent kind.
#[derive(Clone, Copy, Debug)]
pub enum Mixer<'a> {
    Attention(AttentionWeights<'a>),
    ShortConv(ShortConv<'a>),
    Mamba2(Mamba2<'a>),
    GatedDeltaNet(GatedDeltaNet<'a>),
}

#[derive(Clone, Copy, Debug)]
pub struct AttentionWeights<'a> {
    pub q: Linear<'a>,
    /// Absent where the layer reads another layer's keys and values (LayerKv::Shared).
    pub k: Option<Linear<'a>>,
    pub v: Option<Linear<'a>>,
    pub o: Linear<'a>,
    /// RMSNorm weights of queries and keys: per head (HS) or whole (NH·HS, KVH·HS).
    pub q_norm: Option<&'a [f32]>,
    pub k_norm: Option<&'a [f32]>,
}

/// A depthwise causal convolution: K taps per channel, kernel (channels, K) row-major.
#[derive(Clone, Copy, Debug)]
pub struct ConvKernel<'a> {
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub taps: usize,
}

/// LFM2's short convolution: in_proj (3C, C), kernel (C, K), out_proj (C, C).
#[derive(Clone, Copy, Debug)]
pub struct ShortConv<'a> {
    pub in_proj: Linear<'a>,
    pub conv: ConvKernel<'a>,
    pub out_proj: Linear<'a>,
}

/// Mamba-2: in_proj (2·H·P + 2·G·N + H, C), the convolution over x, B, C, dt's bias, A and
/// D (H each), the gated norm (H·P), out_proj (C, H·P).
#[derive(Clone, Copy, Debug)]
pub struct Mamba2<'a> {
    pub in_proj: Linear<'a>,
    pub conv: ConvKernel<'a>,
    pub dt_bias: &'a [f32],
    pub a: &'a [f32],
    pub d: &'a [f32],
    pub norm: &'a [f32],
    pub out_proj: Linear<'a>,
}

/// Gated DeltaNet: qkv (2·G·N + H·P, C) into the convolution (no bias), the output gate z
/// (H·P, C), β's and the decay's inputs (H, C), dt's bias and A (H), the gated norm (P),
/// out_proj (C, H·P).
#[derive(Clone, Copy, Debug)]
pub struct GatedDeltaNet<'a> {
    pub qkv: Linear<'a>,
    pub gate: Linear<'a>,
    pub beta: Linear<'a>,
    pub alpha: Linear<'a>,
    pub conv: ConvKernel<'a>,
    pub dt_bias: &'a [f32],
    pub a: &'a [f32],
    pub norm: &'a [f32],
    pub out_proj: Linear<'a>,
}

impl Mixer<'_> {
    /// Its projection matrices, for byte counts.
    pub fn matrices(&self) -> impl Iterator<Item = &Linear<'_>> {
        let (a, b, c, d, e) = match self {
            Mixer::Attention(w) => (Some(&w.q), w.k.as_ref(), w.v.as_ref(), Some(&w.o), None),
            Mixer::ShortConv(w) => (Some(&w.in_proj), None, None, Some(&w.out_proj), None),
            Mixer::Mamba2(w) => (Some(&w.in_proj), None, None, Some(&w.out_proj), None),
            Mixer::GatedDeltaNet(w) => (
                Some(&w.qkv),
                Some(&w.gate),
                Some(&w.beta),
                Some(&w.alpha),
                Some(&w.out_proj),
            ),
        };
        [a, b, c, d, e].into_iter().flatten()
    }
}

/// A layer's branch gated by its per-layer input: gate (P, C), proj (C, P), post_norm (C).
#[derive(Clone, Copy, Debug)]
pub struct PerLayerBranch<'a> {
    pub gate: Linear<'a>,
    pub proj: Linear<'a>,
    pub post_norm: Norm<'a>,
}

/// The per-layer embeddings: token_embd (V, L·P) read a row per token in place, model_proj
/// (L·P, C) of the embedded token, proj_norm (P).
#[derive(Clone, Copy, Debug)]
pub struct PerLayerEmbeddings<'a> {
    pub token_embd: Matrix<'a>,
    pub model_proj: Matrix<'a>,
    pub proj_norm: &'a [f32],
}

/// A layer's feed-forward weights.
#[derive(Clone, Copy, Debug)]
pub enum Ffn<'a> {
    Dense {
        /// SwiGLU and GeGLU only.
        gate: Option<Linear<'a>>,
        up: Linear<'a>,
        down: Linear<'a>,
    },
    Experts(Experts<'a>),
}

/// Routed experts: router (N, C); gate and up (N·FE, C), down (N·C, FE), expert e in rows
/// e·FE.. (down: e·C..).
#[derive(Clone, Copy, Debug)]
pub struct Experts<'a> {
    pub router: Matrix<'a>,
    pub gate: Matrix<'a>,
    pub up: Matrix<'a>,
    pub down: Matrix<'a>,
}

impl<'a> Experts<'a> {
    /// Expert `e`'s (gate, up, down).
    pub fn expert(&self, e: usize) -> (Matrix<'a>, Matrix<'a>, Matrix<'a>) {
        let n = self.router.rows;
        let (fe, c) = (self.gate.rows / n, self.down.rows / n);
        (
            self.gate.rows(e * fe, fe),
            self.up.rows(e * fe, fe),
            self.down.rows(e * c, c),
        )
    }
}

impl Ffn<'_> {
    /// Bytes of the weights one token reads: all of a dense block; the router and `used`
    /// experts of a mixture.
    pub fn bytes_per_token(&self, used: usize) -> usize {
        match self {
            Ffn::Dense { gate, up, down } => {
                gate.as_ref().map_or(0, |g| g.w.data.len()) + up.w.data.len() + down.w.data.len()
            }
            Ffn::Experts(x) => {
                let n = x.router.rows.max(1);
                x.router.data.len()
                    + (x.gate.data.len() + x.up.data.len() + x.down.data.len()) / n * used
            }
        }
    }

    /// Bytes of all its weights.
    pub fn bytes(&self) -> usize {
        match self {
            Ffn::Dense { .. } => self.bytes_per_token(0),
            Ffn::Experts(x) => {
                x.router.data.len() + x.gate.data.len() + x.up.data.len() + x.down.data.len()
            }
        }
    }
}

/// The layers live in `L`: a `Vec` with an allocator, or a caller's slice without one.
#[derive(Clone, Debug)]
pub struct Weights<'a, L> {
    pub token_embd: Matrix<'a>,
    /// Learned positions (context, C).
    pub pos_embd: Option<Matrix<'a>>,
    /// RoPE inverse frequencies of global layers (R/2), when a scaling applies.
    pub rope_inv_freq: Option<&'a [f32]>,
    /// LongRoPE's frequencies for long sessions (R/2), with `model.rope_long_context`.
    pub rope_inv_freq_long: Option<&'a [f32]>,
    /// Per-layer embeddings (PerLayerInputs::Gated).
    pub per_layer: Option<PerLayerEmbeddings<'a>>,
    pub layers: L,
    pub output_norm: Norm<'a>,
    /// (V, C); the token embedding when tied.
    pub output: Matrix<'a>,
}

struct Loader<'f, 'a> {
    file: &'f EmberFile<'a>,
    features: Features,
    dims: Dims,
    /// The layer being loaded.
    spec: LayerSpec,
}

impl<'f, 'a> Loader<'f, 'a> {
    fn find(&self, name: &TensorName) -> Option<TensorInfo<'a>> {
        self.file.tensor(name.as_str())
    }

    /// The tensor if the schema says `need` allows it: missing required ones and present
    /// absent ones (a feature this runtime would ignore) are errors.
    fn get(&self, name: &TensorName, need: Need) -> Result<Option<TensorInfo<'a>>, Error> {
        match (self.find(name), need) {
            (None, Need::Required) => Err(Error::MissingTensor(name.short())),
            (Some(_), Need::Absent) => Err(Error::UnexpectedTensor(name.short())),
            (t, _) => Ok(t),
        }
    }

    fn vector(
        &self,
        name: &TensorName,
        len: usize,
        need: Need,
    ) -> Result<Option<&'a [f32]>, Error> {
        let Some(t) = self.get(name, need)? else {
            return Ok(None);
        };
        if t.shape() != [len] {
            return Err(Error::TensorShape(name.short()));
        }
        t.as_f32()
            .map(Some)
            .ok_or(Error::TensorDtype(name.short(), t.dtype))
    }

    fn matrix(&self, name: &TensorName, rows: usize, cols: usize) -> Result<Matrix<'a>, Error> {
        let t = self
            .get(name, Need::Required)?
            .ok_or(Error::MissingTensor(name.short()))?;
        if t.shape() != [rows, cols] {
            return Err(Error::TensorShape(name.short()));
        }
        Ok(Matrix {
            dtype: t.dtype,
            layout: t.layout,
            rows,
            cols,
            data: t.data,
        })
    }

    /// Layer `i`'s linear `role`, when the architecture has it.
    fn linear(&self, i: usize, role: Role) -> Result<Option<Linear<'a>>, Error> {
        let name = TensorName::layer(i, role, false);
        if self.features.weight(role, &self.spec) == Need::Absent {
            self.get(&name, Need::Absent)?;
            self.get(&TensorName::layer(i, role, true), Need::Absent)?;
            return Ok(None);
        }
        let Shape::Matrix(rows, cols) = role.shape(&self.dims, &self.features, &self.spec) else {
            return Err(Error::TensorShape(name.short()));
        };
        let w = self.matrix(&name, rows, cols)?;
        let b = self.vector(
            &TensorName::layer(i, role, true),
            rows,
            self.features.bias(role, &self.spec),
        )?;
        Ok(Some(Linear { w, b }))
    }

    fn required_linear(&self, i: usize, role: Role) -> Result<Linear<'a>, Error> {
        self.linear(i, role)?.ok_or(Error::MissingTensor(
            TensorName::layer(i, role, false).short(),
        ))
    }

    /// Layer `i`'s norm `role`, when the architecture has it.
    fn norm(&self, i: usize, role: Role) -> Result<Option<Norm<'a>>, Error> {
        let len = role.bias_len(&self.dims, &self.features, &self.spec);
        let weight = self.vector(
            &TensorName::layer(i, role, false),
            len,
            self.features.weight(role, &self.spec),
        )?;
        let bias = self.vector(
            &TensorName::layer(i, role, true),
            len,
            self.features.bias(role, &self.spec),
        )?;
        Ok(weight.map(|weight| Norm { weight, bias }))
    }

    /// Layer `i`'s f32 parameter vector `role` (A, D, dt's bias, a norm), required.
    fn param(&self, i: usize, role: Role) -> Result<&'a [f32], Error> {
        let name = TensorName::layer(i, role, false);
        let len = role.bias_len(&self.dims, &self.features, &self.spec);
        self.vector(&name, len, Need::Required)?
            .ok_or(Error::MissingTensor(name.short()))
    }

    /// Layer `i`'s convolution kernel `role` (channels, K), f32 row-major, and its bias.
    fn kernel(&self, i: usize, role: Role) -> Result<ConvKernel<'a>, Error> {
        let name = TensorName::layer(i, role, false);
        let Shape::Matrix(rows, taps) = role.shape(&self.dims, &self.features, &self.spec) else {
            return Err(Error::TensorShape(name.short()));
        };
        let t = self
            .get(&name, Need::Required)?
            .ok_or(Error::MissingTensor(name.short()))?;
        if t.shape() != [rows, taps] {
            return Err(Error::TensorShape(name.short()));
        }
        let weight = t
            .as_f32()
            .ok_or(Error::TensorDtype(name.short(), t.dtype))?;
        let bias = self.vector(
            &TensorName::layer(i, role, true),
            rows,
            self.features.bias(role, &self.spec),
        )?;
        Ok(ConvKernel { weight, bias, taps })
    }

    /// Layer `i`'s token mixer, as its spec and the architecture say; every other mixer's
    /// tensors must be absent.
    fn mixer(&self, i: usize) -> Result<Mixer<'a>, Error> {
        // Each role is loaded where the layer has it and checked absent where not.
        let missing = |r: Role| Error::MissingTensor(TensorName::layer(i, r, false).short());
        let (q, o) = (
            self.linear(i, Role::AttnQ)?,
            self.linear(i, Role::AttnOutput)?,
        );
        let (k, v) = (self.linear(i, Role::AttnK)?, self.linear(i, Role::AttnV)?);
        let q_norm = self.norm(i, Role::AttnQNorm)?.map(|n| n.weight);
        let k_norm = self.norm(i, Role::AttnKNorm)?.map(|n| n.weight);
        for r in [
            Role::ShortConvIn,
            Role::ShortConvOut,
            Role::SsmIn,
            Role::SsmOut,
        ] {
            if self.features.weight(r, &self.spec) == Need::Absent {
                self.linear(i, r)?;
            }
        }
        for r in [
            Role::ShortConvKernel,
            Role::SsmConv,
            Role::SsmDtBias,
            Role::SsmA,
            Role::SsmD,
            Role::SsmNorm,
        ] {
            if self.features.weight(r, &self.spec) == Need::Absent {
                self.get(&TensorName::layer(i, r, false), Need::Absent)?;
                self.get(&TensorName::layer(i, r, true), Need::Absent)?;
            }
        }
        let recurrent = match self.spec.mixer {
            LayerMixer::Attention => {
                return Ok(Mixer::Attention(AttentionWeights {
                    q: q.ok_or(missing(Role::AttnQ))?,
                    k,
                    v,
                    o: o.ok_or(missing(Role::AttnOutput))?,
                    q_norm,
                    k_norm,
                }));
            }
            LayerMixer::Recurrent => self.features.recurrent,
        };
        match recurrent {
            Recurrent::None => Err(Error::BadConfig(
                "a recurrent layer in an architecture without recurrent layers",
            )),
            Recurrent::ShortConv => Ok(Mixer::ShortConv(ShortConv {
                in_proj: self.required_linear(i, Role::ShortConvIn)?,
                conv: self.kernel(i, Role::ShortConvKernel)?,
                out_proj: self.required_linear(i, Role::ShortConvOut)?,
            })),
            Recurrent::Mamba2 => Ok(Mixer::Mamba2(Mamba2 {
                in_proj: self.required_linear(i, Role::SsmIn)?,
                conv: self.kernel(i, Role::SsmConv)?,
                dt_bias: self.param(i, Role::SsmDtBias)?,
                a: self.param(i, Role::SsmA)?,
                d: self.param(i, Role::SsmD)?,
                norm: self.param(i, Role::SsmNorm)?,
                out_proj: self.required_linear(i, Role::SsmOut)?,
            })),
            Recurrent::GatedDeltaNet => Ok(Mixer::GatedDeltaNet(GatedDeltaNet {
                qkv: self.required_linear(i, Role::DeltaQkv)?,
                gate: self.required_linear(i, Role::DeltaGate)?,
                beta: self.required_linear(i, Role::DeltaBeta)?,
                alpha: self.required_linear(i, Role::DeltaAlpha)?,
                conv: self.kernel(i, Role::SsmConv)?,
                dt_bias: self.param(i, Role::SsmDtBias)?,
                a: self.param(i, Role::SsmA)?,
                norm: self.param(i, Role::SsmNorm)?,
                out_proj: self.required_linear(i, Role::SsmOut)?,
            })),
        }
    }

    /// Layer `i`'s feed-forward: dense or experts, as its spec says.
    fn ffn(&self, i: usize) -> Result<Ffn<'a>, Error> {
        let gate = self.linear(i, Role::FfnGate)?;
        let router = self.linear(i, Role::FfnGateInp)?;
        let experts =
            [Role::FfnGateExps, Role::FfnUpExps, Role::FfnDownExps].map(|r| self.linear(i, r));
        match self.spec.ffn {
            LayerFfn::Dense => Ok(Ffn::Dense {
                gate,
                up: self.required_linear(i, Role::FfnUp)?,
                down: self.required_linear(i, Role::FfnDown)?,
            }),
            LayerFfn::Experts => {
                self.linear(i, Role::FfnUp)?;
                self.linear(i, Role::FfnDown)?;
                let [g, u, d] = experts;
                let need = |l: Option<Linear<'a>>, r: Role| {
                    l.map(|l| l.w)
                        .ok_or(Error::MissingTensor(TensorName::layer(i, r, false).short()))
                };
                let x = Experts {
                    router: need(router, Role::FfnGateInp)?,
                    gate: need(g?, Role::FfnGateExps)?,
                    up: need(u?, Role::FfnUpExps)?,
                    down: need(d?, Role::FfnDownExps)?,
                };
                // Each expert's rows must be whole rows16 groups to be sliced out.
                let n = x.router.rows;
                for m in [&x.gate, &x.up, &x.down] {
                    if m.layout == Layout::Rows16 && !(m.rows / n).is_multiple_of(16) {
                        return Err(Error::BadConfig(
                            "rows16 expert matrices need expert widths that are multiples of 16",
                        ));
                    }
                }
                Ok(Ffn::Experts(x))
            }
        }
    }
}

/// A placeholder linear layer.
const LIN: Linear<'static> = Linear {
    w: Matrix::EMPTY,
    b: None,
};

impl Layer<'static> {
    /// A placeholder for caller-provided storage (`[Layer::EMPTY; N]`), overwritten by
    /// `Model::load_into`.
    pub const EMPTY: Layer<'static> = {
        Layer {
            attn_norm: None,
            mixer: Mixer::Attention(AttentionWeights {
                q: LIN,
                k: None,
                v: None,
                o: LIN,
                q_norm: None,
                k_norm: None,
            }),
            post_attn_norm: None,
            ffn_norm: None,
            ffn: Ffn::Dense {
                gate: None,
                up: LIN,
                down: LIN,
            },
            post_ffn_norm: None,
            per_layer: None,
            output_scale: None,
        }
    };
}

impl<'a, L> Weights<'a, L> {
    /// Loads every tensor, handing each layer to `store(index, layer)`; `layers` becomes
    /// the storage the caller filled.
    pub fn load_with(
        file: &EmberFile<'a>,
        cfg: &Config,
        layers: L,
        mut store: impl FnMut(&mut L, usize, Layer<'a>),
    ) -> Result<Weights<'a, L>, Error> {
        let mut layers = layers;
        let mut l = Loader {
            file,
            features: cfg.features,
            dims: cfg.dims(),
            spec: cfg.layer(0),
        };
        let (c, v) = (cfg.dim, cfg.vocab_size);
        let token_embd = l.matrix(&TensorName::new(&[schema::TOKEN_EMBD]), v, c)?;
        let (pos_embd, rope_inv_freq) = match cfg.features.positions {
            Positions::Learned => (
                Some(l.matrix(&TensorName::new(&[schema::POS_EMBD]), cfg.context_length, c)?),
                None,
            ),
            Positions::Rope => (
                None,
                l.vector(
                    &TensorName::new(&[schema::ROPE_INV_FREQ]),
                    cfg.rope_dim / 2,
                    Need::Optional,
                )?,
            ),
        };
        for i in 0..cfg.layers {
            l.spec = cfg.layer(i);
            let layer = Layer {
                attn_norm: l.norm(i, Role::AttnNorm)?,
                mixer: l.mixer(i)?,
                post_attn_norm: l.norm(i, Role::PostAttnNorm)?,
                ffn_norm: l.norm(i, Role::FfnNorm)?,
                ffn: l.ffn(i)?,
                post_ffn_norm: l.norm(i, Role::PostFfnNorm)?,
                per_layer: match (
                    l.linear(i, Role::PerLayerGate)?,
                    l.linear(i, Role::PerLayerProj)?,
                    l.norm(i, Role::PerLayerPostNorm)?,
                ) {
                    (Some(gate), Some(proj), Some(post_norm)) => Some(PerLayerBranch {
                        gate,
                        proj,
                        post_norm,
                    }),
                    _ => None,
                },
                output_scale: l
                    .vector(
                        &TensorName::layer(i, Role::LayerOutputScale, false),
                        1,
                        cfg.features.weight(Role::LayerOutputScale, &l.spec),
                    )?
                    .map(|v| v[0]),
            };
            store(&mut layers, i, layer);
        }
        let output_norm = Norm {
            weight: l
                .vector(
                    &TensorName::new(&[schema::OUTPUT_NORM, ".weight"]),
                    c,
                    Need::Required,
                )?
                .ok_or(Error::MissingTensor(ShortName::new(b"output_norm.weight")))?,
            bias: l.vector(
                &TensorName::new(&[schema::OUTPUT_NORM, ".bias"]),
                c,
                cfg.features.output_norm_bias(),
            )?,
        };
        let rope_inv_freq_long = match cfg.rope_long_context {
            None => {
                l.get(
                    &TensorName::new(&[schema::ROPE_INV_FREQ_LONG]),
                    Need::Absent,
                )?;
                None
            }
            Some(_) => l.vector(
                &TensorName::new(&[schema::ROPE_INV_FREQ_LONG]),
                cfg.rope_dim / 2,
                Need::Required,
            )?,
        };
        let per_layer = match cfg.features.per_layer_inputs {
            PerLayerInputs::None => None,
            PerLayerInputs::Gated => {
                let lp = cfg.layers * cfg.per_layer_dim;
                let name = TensorName::new(&[schema::PER_LAYER_PROJ_NORM]);
                Some(PerLayerEmbeddings {
                    token_embd: l.matrix(
                        &TensorName::new(&[schema::PER_LAYER_TOKEN_EMBD]),
                        v,
                        lp,
                    )?,
                    model_proj: l.matrix(
                        &TensorName::new(&[schema::PER_LAYER_MODEL_PROJ]),
                        lp,
                        c,
                    )?,
                    proj_norm: l
                        .vector(&name, cfg.per_layer_dim, Need::Required)?
                        .ok_or(Error::MissingTensor(name.short()))?,
                })
            }
        };
        let output = if cfg.tied_embeddings {
            token_embd
        } else {
            l.matrix(&TensorName::new(&[schema::OUTPUT]), v, c)?
        };
        Ok(Weights {
            token_embd,
            pos_embd,
            rope_inv_freq,
            rope_inv_freq_long,
            per_layer,
            layers,
            output_norm,
            output,
        })
    }
}
