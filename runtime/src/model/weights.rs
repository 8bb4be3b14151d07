//! The model's tensors, borrowed from the file, checked against the config once at load.

use ember_format::{DType, EmberFile, Layout, ShortName, TensorInfo};

use super::config::{Config, FfnKind, NormKind, Positions};
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

#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    pub attn_norm: Norm<'a>,
    pub q: Linear<'a>,
    pub k: Linear<'a>,
    pub v: Linear<'a>,
    pub o: Linear<'a>,
    pub ffn_norm: Norm<'a>,
    /// SwiGLU only.
    pub gate: Option<Linear<'a>>,
    pub up: Linear<'a>,
    pub down: Linear<'a>,
}

/// The layers live in `L`: a `Vec` with an allocator, or a caller's slice without one.
#[derive(Clone, Debug)]
pub struct Weights<'a, L> {
    pub token_embd: Matrix<'a>,
    /// Learned positions (context, C).
    pub pos_embd: Option<Matrix<'a>>,
    pub layers: L,
    pub output_norm: Norm<'a>,
    /// (V, C); the token embedding when tied.
    pub output: Matrix<'a>,
}

struct Loader<'f, 'a> {
    file: &'f EmberFile<'a>,
}

/// Tensor names are short ("blk.29.ffn_down.weight"): format them without allocating.
struct Name {
    buf: [u8; 64],
    len: usize,
}

impl Name {
    fn new(parts: &[&str]) -> Name {
        let mut n = Name {
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

    /// `blk.{i}.{what}{suffix}`.
    fn layer(i: usize, what: &str, suffix: &str) -> Name {
        let mut digits = [0u8; 20];
        let mut k = digits.len();
        let mut v = i;
        loop {
            k -= 1;
            digits[k] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let num = core::str::from_utf8(&digits[k..]).unwrap_or("0");
        Name::new(&["blk.", num, ".", what, suffix])
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    fn short(&self) -> ShortName {
        ShortName::new(&self.buf[..self.len])
    }
}

impl<'f, 'a> Loader<'f, 'a> {
    fn find(&self, name: &Name) -> Option<TensorInfo<'a>> {
        self.file.tensor(name.as_str())
    }

    fn require(&self, name: &Name) -> Result<TensorInfo<'a>, Error> {
        self.find(name).ok_or(Error::MissingTensor(name.short()))
    }

    fn vector(&self, name: &Name, len: usize) -> Result<&'a [f32], Error> {
        let t = self.require(name)?;
        if t.shape() != [len] {
            return Err(Error::TensorShape(name.short()));
        }
        t.as_f32().ok_or(Error::TensorDtype(name.short(), t.dtype))
    }

    fn optional_vector(&self, name: &Name, len: usize) -> Result<Option<&'a [f32]>, Error> {
        match self.find(name) {
            Some(_) => self.vector(name, len).map(Some),
            None => Ok(None),
        }
    }

    fn matrix(&self, name: &Name, rows: usize, cols: usize) -> Result<Matrix<'a>, Error> {
        let t = self.require(name)?;
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

    fn linear(&self, i: usize, what: &str, rows: usize, cols: usize) -> Result<Linear<'a>, Error> {
        let w = self.matrix(&Name::layer(i, what, ".weight"), rows, cols)?;
        let b = self.optional_vector(&Name::layer(i, what, ".bias"), rows)?;
        Ok(Linear { w, b })
    }

    fn norm(&self, name: &str, kind: NormKind, dim: usize) -> Result<Norm<'a>, Error> {
        let weight = self.vector(&Name::new(&[name, ".weight"]), dim)?;
        let bias = match kind {
            NormKind::Layer => Some(self.vector(&Name::new(&[name, ".bias"]), dim)?),
            NormKind::Rms => None,
        };
        Ok(Norm { weight, bias })
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
            ffn_norm: NORM,
            gate: None,
            up: LIN,
            down: LIN,
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
        let l = Loader { file };
        let (c, v) = (cfg.dim, cfg.vocab_size);
        let token_embd = l.matrix(&Name::new(&["token_embd.weight"]), v, c)?;
        let pos_embd = match cfg.positions {
            Positions::Learned => {
                Some(l.matrix(&Name::new(&["pos_embd.weight"]), cfg.context_length, c)?)
            }
            Positions::Rope => None,
        };
        for i in 0..cfg.layers {
            let (qd, kvd, f) = (cfg.q_dim(), cfg.kv_dim(), cfg.ffn_dim);
            let norm = |what: &str| -> Result<Norm<'a>, Error> {
                let weight = l.vector(&Name::layer(i, what, ".weight"), c)?;
                let bias = match cfg.norm {
                    NormKind::Layer => Some(l.vector(&Name::layer(i, what, ".bias"), c)?),
                    NormKind::Rms => None,
                };
                Ok(Norm { weight, bias })
            };
            let layer = Layer {
                attn_norm: norm("attn_norm")?,
                q: l.linear(i, "attn_q", qd, c)?,
                k: l.linear(i, "attn_k", kvd, c)?,
                v: l.linear(i, "attn_v", kvd, c)?,
                o: l.linear(i, "attn_output", c, qd)?,
                ffn_norm: norm("ffn_norm")?,
                gate: match cfg.ffn {
                    FfnKind::SwiGlu => Some(l.linear(i, "ffn_gate", f, c)?),
                    FfnKind::Gelu => None,
                },
                up: l.linear(i, "ffn_up", f, c)?,
                down: l.linear(i, "ffn_down", c, f)?,
            };
            store(&mut layers, i, layer);
        }
        let output_norm = l.norm("output_norm", cfg.norm, c)?;
        let output = if cfg.tied_embeddings {
            token_embd
        } else {
            l.matrix(&Name::new(&["output.weight"]), v, c)?
        };
        Ok(Weights {
            token_embd,
            pos_embd,
            layers,
            output_norm,
            output,
        })
    }
}
