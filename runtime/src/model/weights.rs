//! The model's tensors, borrowed from the file, checked against the config once at load.

use ember_format::schema::{self, Dims, Features, Need, Positions, Role, Shape, TensorName};
use ember_format::{DType, EmberFile, Layout, ShortName, TensorInfo};

use super::config::Config;
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
/// features (`ember_format::schema::Features`), checked at load.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    pub attn_norm: Norm<'a>,
    pub q: Linear<'a>,
    pub k: Linear<'a>,
    pub v: Linear<'a>,
    pub o: Linear<'a>,
    /// Per-head RMSNorm weights (HS) of queries and keys (QkNorm::Rms).
    pub q_norm: Option<&'a [f32]>,
    pub k_norm: Option<&'a [f32]>,
    /// Norm of the attention's output (BlockNorms::Sandwich).
    pub post_attn_norm: Option<Norm<'a>>,
    pub ffn_norm: Norm<'a>,
    /// SwiGLU and GeGLU only.
    pub gate: Option<Linear<'a>>,
    pub up: Linear<'a>,
    pub down: Linear<'a>,
    /// Norm of the feed-forward's output (BlockNorms::Sandwich).
    pub post_ffn_norm: Option<Norm<'a>>,
}

/// The layers live in `L`: a `Vec` with an allocator, or a caller's slice without one.
#[derive(Clone, Debug)]
pub struct Weights<'a, L> {
    pub token_embd: Matrix<'a>,
    /// Learned positions (context, C).
    pub pos_embd: Option<Matrix<'a>>,
    /// RoPE inverse frequencies of global layers (HS/2), when a scaling applies.
    pub rope_inv_freq: Option<&'a [f32]>,
    pub layers: L,
    pub output_norm: Norm<'a>,
    /// (V, C); the token embedding when tied.
    pub output: Matrix<'a>,
}

struct Loader<'f, 'a> {
    file: &'f EmberFile<'a>,
    features: Features,
    dims: Dims,
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
        if self.features.weight(role) == Need::Absent {
            self.get(&name, Need::Absent)?;
            return Ok(None);
        }
        let Shape::Matrix(rows, cols) = role.shape(&self.dims) else {
            return Err(Error::TensorShape(name.short()));
        };
        let w = self.matrix(&name, rows, cols)?;
        let b = self.vector(
            &TensorName::layer(i, role, true),
            rows,
            self.features.bias(role),
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
        let len = role.bias_len(&self.dims);
        let weight = self.vector(
            &TensorName::layer(i, role, false),
            len,
            self.features.weight(role),
        )?;
        let bias = self.vector(
            &TensorName::layer(i, role, true),
            len,
            self.features.bias(role),
        )?;
        Ok(weight.map(|weight| Norm { weight, bias }))
    }

    fn required_norm(&self, i: usize, role: Role) -> Result<Norm<'a>, Error> {
        self.norm(i, role)?.ok_or(Error::MissingTensor(
            TensorName::layer(i, role, false).short(),
        ))
    }
}

impl Layer<'static> {
    /// A placeholder for caller-provided storage (`[Layer::EMPTY; N]`), overwritten by
    /// `Model::load_into`.
    pub const EMPTY: Layer<'static> = {
        const LIN: Linear<'static> = Linear {
            w: Matrix::EMPTY,
            b: None,
        };
        const NORM: Norm<'static> = Norm {
            weight: &[],
            bias: None,
        };
        Layer {
            attn_norm: NORM,
            q: LIN,
            k: LIN,
            v: LIN,
            o: LIN,
            q_norm: None,
            k_norm: None,
            post_attn_norm: None,
            ffn_norm: NORM,
            gate: None,
            up: LIN,
            down: LIN,
            post_ffn_norm: None,
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
        let l = Loader {
            file,
            features: cfg.features,
            dims: cfg.dims(),
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
                    cfg.head_dim / 2,
                    Need::Optional,
                )?,
            ),
        };
        for i in 0..cfg.layers {
            let layer = Layer {
                attn_norm: l.required_norm(i, Role::AttnNorm)?,
                q: l.required_linear(i, Role::AttnQ)?,
                k: l.required_linear(i, Role::AttnK)?,
                v: l.required_linear(i, Role::AttnV)?,
                o: l.required_linear(i, Role::AttnOutput)?,
                q_norm: l.norm(i, Role::AttnQNorm)?.map(|n| n.weight),
                k_norm: l.norm(i, Role::AttnKNorm)?.map(|n| n.weight),
                post_attn_norm: l.norm(i, Role::PostAttnNorm)?,
                ffn_norm: l.required_norm(i, Role::FfnNorm)?,
                gate: l.linear(i, Role::FfnGate)?,
                up: l.required_linear(i, Role::FfnUp)?,
                down: l.required_linear(i, Role::FfnDown)?,
                post_ffn_norm: l.norm(i, Role::PostFfnNorm)?,
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
        let output = if cfg.tied_embeddings {
            token_embd
        } else {
            l.matrix(&TensorName::new(&[schema::OUTPUT]), v, c)?
        };
        Ok(Weights {
            token_embd,
            pos_embd,
            rope_inv_freq,
            layers,
            output_norm,
            output,
        })
    }
}
