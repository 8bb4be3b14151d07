//! A conversion plan: each output tensor names its source bytes and one layout operation.
//! Plans are built (and every shape checked) before any data is touched; the data is then
//! produced one tensor at a time, so peak memory is the output plus one tensor.

use std::ops::Range;

use ember_format::DType;

use crate::error::Result;
use crate::model::ModelConfig;
use crate::rope;

/// How an output tensor is made from its source bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op<'a> {
    /// Byte-for-byte.
    Copy,
    /// Source is a (rows, cols) float matrix stored (in, out) like HF's Conv1D; the output is
    /// the transpose of its columns `cols`: shape (cols.len(), rows).
    TransposeCols { rows: usize, cols: Range<usize> },
    /// Elements `range` of a 1-D float tensor (a slice of a fused bias).
    Slice(Range<usize>),
    /// Rows `rows` of a matrix of `of` rows in any dtype (a part of a fused projection).
    Rows { rows: Range<usize>, of: usize },
    /// The source followed by these tensors of the same dtype, by rows (experts' matrices
    /// stacked into one).
    Stack(Vec<&'a [u8]>),
    /// GGUF's interleaved RoPE rows back to HF's rotate-half order, `heads` heads.
    UnpermuteRope { heads: usize },
    /// 1 + w of a float vector of dtype `from`, as f32: Gemma's norms scale by (1 + w),
    /// which the runtime's RMSNorm takes folded (as GGUF files store them).
    AddOne { from: DType },
    /// -exp(v) of a float vector of dtype `from`, as f32: Mamba-2's A from HF's A_log.
    NegExp { from: DType },
    /// Values computed by the converter (the RoPE frequency table); `src` is unused.
    Values(Vec<f32>),
}

/// One output tensor.
#[derive(Clone, Debug)]
pub struct Planned<'a> {
    pub name: String,
    /// Output shape, row-major.
    pub shape: Vec<usize>,
    /// Element type of `src` (and of the output before quantization).
    pub dtype: DType,
    /// The source tensor's name, for error messages.
    pub src_name: String,
    pub src: &'a [u8],
    pub op: Op<'a>,
}

impl<'a> Planned<'a> {
    /// `name` copied from the source tensor `src_name`.
    pub fn copy(
        name: String,
        src_name: &str,
        shape: Vec<usize>,
        dtype: DType,
        src: &'a [u8],
    ) -> Self {
        Planned {
            name,
            shape,
            dtype,
            src_name: src_name.to_string(),
            src,
            op: Op::Copy,
        }
    }

    /// The RoPE frequency tables of a config (R/2 each): `rope.inv_freq` when a scaling
    /// applies, LongRoPE's `rope.inv_freq_long`.
    pub fn rope_tables(config: &ModelConfig) -> Vec<Self> {
        let mut out = Vec::new();
        if let Some(f) = config.rope_inv_freq() {
            out.push(Planned::values(ember_format::schema::ROPE_INV_FREQ, f));
        }
        if let Some((f, _)) = config.rope_long_inv_freq() {
            out.push(Planned::values(ember_format::schema::ROPE_INV_FREQ_LONG, f));
        }
        out
    }

    /// An f32 vector computed by the converter, as tensor `name`.
    fn values(name: &str, inv_freq: Vec<f32>) -> Self {
        Planned {
            name: name.to_string(),
            shape: vec![inv_freq.len()],
            dtype: DType::F32,
            src_name: "(RoPE scaling)".to_string(),
            src: &[],
            op: Op::Values(inv_freq),
        }
    }

    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The output bytes in `self.dtype`.
    pub fn materialize(&self) -> Result<Vec<u8>> {
        let want = self.dtype.tensor_bytes(&self.shape);
        let out = match &self.op {
            Op::Copy => self.src.to_vec(),
            Op::TransposeCols { rows, cols } => {
                let es = self.dtype.block_bytes();
                let n_cols = self.src.len() / es / rows;
                transpose_cols(self.src, es, *rows, n_cols, cols.clone())
            }
            Op::Slice(r) => {
                let es = self.dtype.block_bytes();
                self.src[r.start * es..r.end * es].to_vec()
            }
            Op::Rows { rows, of } => {
                let rb = self.src.len() / of.max(&1);
                self.src[rows.start * rb..rows.end * rb].to_vec()
            }
            Op::Stack(rest) => {
                let mut v = self.src.to_vec();
                rest.iter().for_each(|r| v.extend_from_slice(r));
                v
            }
            Op::UnpermuteRope { heads } => {
                let row_bytes = self.src.len() / self.shape[0];
                rope::unpermute_rows(self.src, row_bytes, self.shape[0], *heads)
            }
            Op::AddOne { from } => self.float_map(*from, |x| x + 1.0)?,
            Op::NegExp { from } => self.float_map(*from, |x| -x.exp())?,
            Op::Values(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        if Some(out.len()) != want {
            crate::bail!(
                "tensor {} (from {}): produced {} bytes, expected {:?} for {} {:?}",
                self.name,
                self.src_name,
                out.len(),
                want,
                self.dtype,
                self.shape
            );
        }
        Ok(out)
    }
}

impl Planned<'_> {
    /// `f` of every element of a float source of dtype `from`, as f32 bytes.
    fn float_map(&self, from: DType, f: impl Fn(f32) -> f32) -> Result<Vec<u8>> {
        let n = self.elements();
        let mut v = vec![0f32; n];
        if from.tensor_bytes(&[n]) != Some(self.src.len()) || from.is_quantized() {
            crate::bail!("tensor {}: cannot transform {from} data", self.src_name);
        }
        ember_format::blocks::dequantize_row_ref(from, self.src, &mut v);
        Ok(v.into_iter().flat_map(|x| f(x).to_le_bytes()).collect())
    }
}

/// `src`: (rows, n_cols) of `es`-byte elements; returns the transpose of columns `cols`:
/// (cols.len(), rows).
pub fn transpose_cols(
    src: &[u8],
    es: usize,
    rows: usize,
    n_cols: usize,
    cols: Range<usize>,
) -> Vec<u8> {
    let mut out = vec![0u8; cols.len() * rows * es];
    for (oc, c) in cols.enumerate() {
        for r in 0..rows {
            let s = (r * n_cols + c) * es;
            let d = (oc * rows + r) * es;
            out[d..d + es].copy_from_slice(&src[s..s + es]);
        }
    }
    out
}

/// Everything needed to write one `.ember` file.
pub struct Plan<'a> {
    pub config: ModelConfig,
    pub tensors: Vec<Planned<'a>>,
    pub tokenizer: crate::tok::Tokenizer,
    /// Output name → the source's own name where they differ, for error messages.
    pub source_names: std::collections::HashMap<String, String>,
}

impl Plan<'_> {
    /// Checks that the planned tensors are exactly the ones the runtime expects (required
    /// ones present, optional ones allowed), with the expected shapes.
    pub fn check_against_config(&self) -> Result<()> {
        // Each layer needs tensors of its own: rule out absurd layer counts (from a corrupt
        // file) before listing the expected tensors.
        self.config.check_layer_count(self.tensors.len())?;
        let expected = self.config.expected_tensors()?;
        let mut planned = std::collections::HashMap::with_capacity(self.tensors.len());
        for t in &self.tensors {
            if planned.insert(t.name.as_str(), t).is_some() {
                crate::bail!("tensor {} appears twice", t.name);
            }
        }
        for (name, shape, required) in &expected {
            match planned.remove(name.as_str()) {
                Some(t) if &t.shape != shape => crate::bail!(
                    "tensor {} (from {}) has shape {:?}, expected {:?} from the model config",
                    name,
                    t.src_name,
                    t.shape,
                    shape
                ),
                Some(_) => {}
                None if *required => match self.source_names.get(name) {
                    Some(src) => crate::bail!("missing tensor {name} ({src} in the checkpoint)"),
                    None => crate::bail!("missing tensor {name}"),
                },
                None => {}
            }
        }
        // In file order, so the first unexpected tensor is reported.
        if let Some(t) = self
            .tensors
            .iter()
            .find(|t| planned.contains_key(t.name.as_str()))
        {
            crate::bail!(
                "unexpected tensor {} (from {}): not part of a {} model with this config",
                t.name,
                t.src_name,
                self.config.arch.name()
            );
        }
        Ok(())
    }
}
