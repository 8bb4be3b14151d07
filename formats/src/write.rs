//! Deterministic writer: metadata keys and tensor names are emitted in byte order, tensor
//! data 64-byte aligned, padding zeroed, so the same input gives byte-identical files.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, ShortName};
use crate::layout::*;
use crate::xxh64::Xxh64;
use crate::{DType, Layout};

/// An owned metadata value (see [`crate::Value`] for the borrowed form).
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    U8(Vec<u8>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    F32(Vec<f32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Str(String),
    BytesArray(Vec<Vec<u8>>),
}

impl OwnedValue {
    /// The value as the reader sees it (byte-string arrays, which have no borrowed form
    /// here, as None).
    pub fn as_value(&self) -> Option<crate::Value<'_>> {
        use crate::Value;
        Some(match self {
            OwnedValue::U8(v) => Value::U8(v),
            OwnedValue::I32(v) => Value::I32(v),
            OwnedValue::U32(v) => Value::U32(v),
            OwnedValue::F32(v) => Value::F32(v),
            OwnedValue::U64(v) => Value::U64(v),
            OwnedValue::I64(v) => Value::I64(v),
            OwnedValue::F64(v) => Value::F64(v),
            OwnedValue::Str(s) => Value::Str(s),
            OwnedValue::BytesArray(_) => return None,
        })
    }

    fn type_id(&self) -> u32 {
        match self {
            OwnedValue::U8(_) => VT_U8,
            OwnedValue::I32(_) => VT_I32,
            OwnedValue::U32(_) => VT_U32,
            OwnedValue::F32(_) => VT_F32,
            OwnedValue::U64(_) => VT_U64,
            OwnedValue::I64(_) => VT_I64,
            OwnedValue::F64(_) => VT_F64,
            OwnedValue::Str(_) => VT_STR,
            OwnedValue::BytesArray(_) => VT_BYTES_ARRAY,
        }
    }

    fn encode(&self, key: &str, out: &mut Vec<u8>) -> Result<(), Error> {
        fn put<T: bytemuck::Pod>(out: &mut Vec<u8>, v: &[T]) {
            out.extend_from_slice(bytemuck::cast_slice(v));
        }
        match self {
            OwnedValue::U8(v) => put(out, v),
            OwnedValue::I32(v) => put(out, v),
            OwnedValue::U32(v) => put(out, v),
            OwnedValue::F32(v) => put(out, v),
            OwnedValue::U64(v) => put(out, v),
            OwnedValue::I64(v) => put(out, v),
            OwnedValue::F64(v) => put(out, v),
            OwnedValue::Str(s) => out.extend_from_slice(s.as_bytes()),
            OwnedValue::BytesArray(items) => {
                let too_big = Error::BadValue {
                    key: ShortName::new(key.as_bytes()),
                };
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                let mut offset = 0u32;
                out.extend_from_slice(&0u32.to_le_bytes());
                for item in items {
                    let len = u32::try_from(item.len()).map_err(|_| too_big)?;
                    offset = offset.checked_add(len).ok_or(too_big)?;
                    out.extend_from_slice(&offset.to_le_bytes());
                }
                pad_to(out, 8);
                for item in items {
                    out.extend_from_slice(item);
                }
            }
        }
        Ok(())
    }
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

/// Columns from which a Q6_K head stays row-major ([`Writer::use_rows16`]).
pub const ROW_MAJOR_Q6K_HEAD_COLS: usize = 2048;

struct TensorEntry {
    dtype: DType,
    layout: Layout,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Builds a `.ember` file in memory and writes it out.
#[derive(Default)]
pub struct Writer {
    meta: BTreeMap<String, OwnedValue>,
    tensors: BTreeMap<String, TensorEntry>,
}

impl core::fmt::Debug for Writer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Writer({} keys, {} tensors)",
            self.meta.len(),
            self.tensors.len()
        )
    }
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) a metadata value.
    pub fn set(&mut self, key: &str, value: OwnedValue) {
        self.meta.insert(key.into(), value);
    }

    pub fn set_str(&mut self, key: &str, value: &str) {
        self.set(key, OwnedValue::Str(value.into()));
    }

    pub fn set_u32(&mut self, key: &str, value: u32) {
        self.set(key, OwnedValue::U32(alloc::vec![value]));
    }

    pub fn set_u64(&mut self, key: &str, value: u64) {
        self.set(key, OwnedValue::U64(alloc::vec![value]));
    }

    pub fn set_f32(&mut self, key: &str, value: f32) {
        self.set(key, OwnedValue::F32(alloc::vec![value]));
    }

    pub fn set_bool(&mut self, key: &str, value: bool) {
        self.set(key, OwnedValue::U8(alloc::vec![value as u8]));
    }

    pub fn get(&self, key: &str) -> Option<&OwnedValue> {
        self.meta.get(key)
    }

    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|k| k.as_str())
    }

    /// Adds a tensor; `data` must be exactly `dtype.tensor_bytes(shape)` bytes, row-major.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        data: Vec<u8>,
    ) -> Result<(), Error> {
        self.add_tensor_with_layout(name, dtype, Layout::RowMajor, shape, data)
    }

    /// Adds a tensor whose `data` is already arranged in `layout` (see
    /// [`crate::rows16::interleave`]); the layout must apply to dtype and shape.
    pub fn add_tensor_with_layout(
        &mut self,
        name: &str,
        dtype: DType,
        layout: Layout,
        shape: &[usize],
        data: Vec<u8>,
    ) -> Result<(), Error> {
        let short = ShortName::new(name.as_bytes());
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(Error::BadTensorName {
                index: self.tensors.len() as u64,
            });
        }
        if shape.is_empty()
            || shape.len() > MAX_DIMS
            || shape.iter().any(|&d| d == 0 || d as u64 > MAX_EXTENT)
        {
            return Err(Error::BadShape { name: short });
        }
        let expected = dtype
            .tensor_bytes(shape)
            .ok_or(Error::BadShape { name: short })?;
        if expected != data.len() {
            return Err(Error::SizeMismatch {
                name: short,
                dtype,
                expected: expected as u64,
                actual: data.len() as u64,
            });
        }
        if layout == Layout::Rows16 && !crate::rows16::supports(dtype, shape) {
            return Err(Error::LayoutMismatch {
                name: short,
                layout: layout.name(),
            });
        }
        if self.tensors.contains_key(name) {
            return Err(Error::Duplicate { name: short });
        }
        self.tensors.insert(
            name.into(),
            TensorEntry {
                dtype,
                layout,
                shape: shape.into(),
                data,
            },
        );
        Ok(())
    }

    /// Rearranges every tensor the rows16 layout applies to (block-quantized matrices
    /// with a multiple of 16 rows) into it; returns how many. Experts stacked by rows
    /// (`*_exps`, `model.expert_count` of them) take it only where each expert's rows are
    /// whole groups, so that one expert's rows can be read alone. Convolution kernels
    /// (read as f32 rows, never multiplied) stay row-major, and so does a Q6_K head of
    /// [`ROW_MAJOR_Q6K_HEAD_COLS`] columns or more: generation multiplies it by one token,
    /// where the Q6_K row dot outstreams the rows16 kernel on long rows and trails it on
    /// short ones (Zen 4, tokens/s alternating: a 151,936 x 2048 head, the Qwen3-30B-A3B
    /// shape, 36.8-37.2 row-major against 32.7-32.9 rows16 at 1 thread, 56.5-58.3 against
    /// 50.0-50.9 at 2; a 248,320 x 1024 head, Qwen3.5-0.8B's, 27-32 against 39-41 at 1).
    pub fn use_rows16(&mut self) -> usize {
        // The head: output.weight, or the token embedding where they are tied.
        let tied = matches!(
            self.meta.get(crate::schema::keys::TIED_EMBEDDINGS),
            Some(OwnedValue::U8(v)) if v.first() == Some(&1)
        );
        let long_q6k_head = |name: &str, t: &TensorEntry| {
            let head = name == crate::schema::OUTPUT || (tied && name == crate::schema::TOKEN_EMBD);
            head && t.dtype == DType::Q6K && t.shape[1] >= ROW_MAJOR_Q6K_HEAD_COLS
        };
        let experts = match self.meta.get(crate::schema::keys::EXPERT_COUNT) {
            Some(OwnedValue::U32(v)) => v.first().copied().unwrap_or(1).max(1) as usize,
            _ => 1,
        };
        let mut n = 0;
        for (name, t) in self.tensors.iter_mut() {
            let whole_experts = !name.ends_with("_exps.weight")
                || (t.shape[0] / experts).is_multiple_of(crate::rows16::GROUP);
            // Convolution kernels are read in f32 rows, not multiplied.
            let kernel =
                crate::schema::Role::of_tensor(name).is_some_and(crate::schema::Role::keeps_f32);
            if t.layout == Layout::RowMajor
                && !kernel
                && !long_q6k_head(name, t)
                && crate::rows16::supports(t.dtype, &t.shape)
                && whole_experts
            {
                let mut out = alloc::vec![0u8; t.data.len()];
                crate::rows16::interleave(t.dtype, t.shape[0], t.shape[1], &t.data, &mut out);
                t.data = out;
                t.layout = Layout::Rows16;
                n += 1;
            }
        }
        n
    }

    pub fn add_tensor_f32(
        &mut self,
        name: &str,
        shape: &[usize],
        data: &[f32],
    ) -> Result<(), Error> {
        self.add_tensor(name, DType::F32, shape, bytemuck::cast_slice(data).to_vec())
    }

    /// Serializes header, metadata and directory (everything before the tensor data),
    /// with the checksum field zero. Returns the bytes and the offset of each tensor.
    fn prefix(&self) -> Result<(Vec<u8>, u64), Error> {
        let mut meta = Vec::new();
        for (key, value) in &self.meta {
            if key.is_empty() || key.len() > MAX_NAME_LEN {
                return Err(Error::BadKey {
                    index: meta.len() as u64,
                });
            }
            let mut payload = Vec::new();
            value.encode(key, &mut payload)?;
            meta.extend_from_slice(&(key.len() as u32).to_le_bytes());
            meta.extend_from_slice(&value.type_id().to_le_bytes());
            meta.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            meta.extend_from_slice(key.as_bytes());
            pad_to(&mut meta, 8);
            meta.extend_from_slice(&payload);
            pad_to(&mut meta, 8);
        }
        let dir_len: usize = self
            .tensors
            .keys()
            .map(|n| DIR_ENTRY_FIXED + n.len().div_ceil(8) * 8)
            .sum();
        let meta_offset = HEADER_LEN as u64;
        let dir_offset = meta_offset + meta.len() as u64;
        let data_offset = (dir_offset + dir_len as u64).div_ceil(DATA_ALIGN) * DATA_ALIGN;

        let mut dir = Vec::with_capacity(dir_len);
        let mut offset = data_offset;
        for (name, t) in &self.tensors {
            dir.extend_from_slice(&(name.len() as u32).to_le_bytes());
            dir.extend_from_slice(&t.dtype.id().to_le_bytes());
            dir.extend_from_slice(&t.layout.id().to_le_bytes());
            dir.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for d in 0..MAX_DIMS {
                let v = t.shape.get(d).copied().unwrap_or(1) as u64;
                dir.extend_from_slice(&v.to_le_bytes());
            }
            dir.extend_from_slice(&offset.to_le_bytes());
            dir.extend_from_slice(&(t.data.len() as u64).to_le_bytes());
            dir.extend_from_slice(name.as_bytes());
            pad_to(&mut dir, 8);
            offset = (offset + t.data.len() as u64).div_ceil(DATA_ALIGN) * DATA_ALIGN;
        }
        let data_len = offset - data_offset;
        let file_len = offset;

        let mut out = Vec::with_capacity(data_offset as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
        out.extend_from_slice(&FORMAT_MINOR.to_le_bytes());
        out.extend_from_slice(&FLAG_CHECKSUM.to_le_bytes());
        for v in [
            file_len,
            0, // checksum, filled in last
            meta_offset,
            meta.len() as u64,
            self.meta.len() as u64,
            dir_offset,
            dir_len as u64,
            self.tensors.len() as u64,
            data_offset,
            data_len,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(&meta);
        out.extend_from_slice(&dir);
        out.resize(data_offset as usize, 0);
        Ok((out, file_len))
    }

    /// Feeds the whole file, checksum field zero, to `sink` in order.
    fn emit<E>(
        &self,
        prefix: &[u8],
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        sink(prefix)?;
        let zeros = [0u8; DATA_ALIGN as usize];
        for t in self.tensors.values() {
            sink(&t.data)?;
            let pad =
                (DATA_ALIGN as usize - t.data.len() % DATA_ALIGN as usize) % DATA_ALIGN as usize;
            sink(&zeros[..pad])?;
        }
        Ok(())
    }

    /// The whole file in memory.
    pub fn to_vec(&self) -> Vec<u8> {
        self.try_to_vec().expect("metadata validated on insert")
    }

    pub fn try_to_vec(&self) -> Result<Vec<u8>, Error> {
        let (prefix, file_len) = self.prefix()?;
        let mut out = Vec::with_capacity(file_len as usize);
        self.emit::<()>(&prefix, |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .ok();
        let sum = crate::checksum(&out);
        out[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
        Ok(out)
    }

    /// Writes the file to `w` (two passes over the tensors: checksum, then bytes).
    #[cfg(feature = "std")]
    pub fn write_to<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<u64> {
        let (mut prefix, file_len) = self
            .prefix()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut h = Xxh64::new(0);
        self.emit::<()>(&prefix, |b| {
            h.update(b);
            Ok(())
        })
        .ok();
        prefix[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&h.finish().to_le_bytes());
        self.emit(&prefix, |b| w.write_all(b))?;
        Ok(file_len)
    }

    /// Writes to a temporary file beside `path` and renames it into place when complete,
    /// so a failed write never leaves a half file under the final name.
    #[cfg(feature = "std")]
    pub fn write_file(&self, path: &std::path::Path) -> std::io::Result<u64> {
        use std::io::Write;
        let tmp = temp_path(path);
        let result = (|| {
            let file = std::fs::File::create(&tmp)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let n = self.write_to(&mut w)?;
            w.flush()?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, path)?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// `dir/.name.tmp-PID` beside the final path.
#[cfg(feature = "std")]
pub fn temp_path(path: &std::path::Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(std::format!(".{name}.tmp-{}", std::process::id()))
}
