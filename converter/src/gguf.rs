//! A GGUF (v2, v3) reader for untrusted files.
//!
//! Layout (little-endian): `"GGUF"`, `u32 version`, `u64 tensor_count`, `u64 kv_count`,
//! the key/value pairs, the tensor infos (`name`, `u32 n_dims`, `u64 dims[n_dims]` innermost
//! first, `u32 ggml_type`, `u64 offset` relative to the data section), zero padding to
//! `general.alignment` (default 32), then the data section.
//!
//! Every offset, length and count is checked against the bytes that remain, so a corrupt file
//! gives an `Err`, never a panic or an allocation larger than the file can justify. Arrays are
//! kept as validated raw byte ranges and decoded on demand.

use std::collections::BTreeMap;

use ember_format::DType;

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;
/// Arrays of arrays deeper than this are rejected (real files nest at most once).
const MAX_ARRAY_DEPTH: u32 = 4;

// Value type ids.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STR: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

/// Bytes of a fixed-size scalar type, `None` for strings and arrays.
fn fixed_size(t: u32) -> Option<usize> {
    match t {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

/// ggml type names for the ids ember does not store, for error messages.
fn ggml_type_name(id: u32) -> &'static str {
    match id {
        4 => "q4_2 (removed)",
        5 => "q4_3 (removed)",
        9 => "q8_1",
        10 => "q2_k",
        11 => "q3_k",
        15 => "q8_k",
        16..=19 | 21 | 22 => "an i-quant (iq*; ember reads iq4_nl and iq4_xs)",
        24 => "i8",
        25 => "i16",
        26 => "i32",
        27 => "i64",
        28 => "f64",
        29 => "iq1_m",
        34 | 35 => "tq1_0/tq2_0",
        _ => "unknown",
    }
}

/// One metadata value. Strings and arrays borrow the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(&'a [u8]),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A validated array: `count` elements of `elem_type` encoded in `raw`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    pub elem_type: u32,
    pub count: u64,
    raw: &'a [u8],
}

impl<'a> Value<'a> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::F32(_) => "f32",
            Value::Bool(_) => "bool",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
        }
    }

    /// Any integer type whose value is non-negative and fits in a u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|v| u32::try_from(v).ok())
    }

    /// Any float or integer type, as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::Str(s) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl<'a> Array<'a> {
    pub fn len(&self) -> usize {
        self.count as usize // bounded by the file length at parse time
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The elements of a string array.
    pub fn strings(&self) -> Option<Vec<&'a [u8]>> {
        if self.elem_type != T_STR {
            return None;
        }
        let mut r = Reader::new(self.raw);
        (0..self.count)
            .map(|_| r.string().ok())
            .collect::<Option<Vec<_>>>()
    }

    fn fixed<const N: usize, T>(&self, ty: u32, f: impl Fn([u8; N]) -> T) -> Option<Vec<T>> {
        if self.elem_type != ty {
            return None;
        }
        Some(
            self.raw
                .chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunk of N")))
                .collect(),
        )
    }

    pub fn f32s(&self) -> Option<Vec<f32>> {
        self.fixed(T_F32, f32::from_le_bytes)
    }

    /// An i32 array (also accepts u32 and i8..i16 elements, widened).
    pub fn i32s(&self) -> Option<Vec<i32>> {
        match self.elem_type {
            T_I32 => self.fixed(T_I32, i32::from_le_bytes),
            T_U32 => self
                .fixed(T_U32, u32::from_le_bytes)?
                .into_iter()
                .map(|v| i32::try_from(v).ok())
                .collect(),
            T_I8 => self.fixed(T_I8, |b: [u8; 1]| i32::from(b[0] as i8)),
            T_U8 => self.fixed(T_U8, |b: [u8; 1]| i32::from(b[0])),
            T_I16 => self.fixed(T_I16, |b| i32::from(i16::from_le_bytes(b))),
            _ => None,
        }
    }

    /// A bool array (one byte each, 0 or 1).
    pub fn bools(&self) -> Option<Vec<bool>> {
        self.fixed(T_BOOL, |b: [u8; 1]| b[0])?
            .into_iter()
            .map(|b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })
            .collect()
    }

    /// Each element parsed as a [`Value`] (for display and tests; nested arrays stay raw).
    pub fn values(&self) -> Option<Vec<Value<'a>>> {
        let mut r = Reader::new(self.raw);
        (0..self.count)
            .map(|_| r.value(self.elem_type, 0).ok())
            .collect()
    }
}

/// One tensor's info and its bytes inside the data section.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo<'a> {
    pub name: String,
    pub dtype: DType,
    /// Row-major shape, outermost first (GGUF stores dims innermost first).
    pub shape: Vec<usize>,
    /// Offset relative to the data section.
    pub offset: u64,
    pub data: &'a [u8],
}

/// A parsed GGUF file borrowing its bytes.
#[derive(Debug)]
pub struct GgufFile<'a> {
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    pub metadata: BTreeMap<String, Value<'a>>,
    /// In file order.
    pub tensors: Vec<TensorInfo<'a>>,
}

fn err(msg: impl Into<String>) -> Error {
    Error(format!("invalid GGUF: {}", msg.into()))
}

/// A bounds-checked cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| err("length overflows"))?;
        if n > self.remaining() {
            return Err(err(format!(
                "truncated: need {n} bytes at offset {}, {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N as u64)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<&'a [u8]> {
        let len = self.u64()?;
        self.take(len)
    }

    /// Parses one value of type `ty`; arrays are validated by walking their elements.
    fn value(&mut self, ty: u32, depth: u32) -> Result<Value<'a>> {
        Ok(match ty {
            T_U8 => Value::U8(self.array::<1>()?[0]),
            T_I8 => Value::I8(self.array::<1>()?[0] as i8),
            T_U16 => Value::U16(u16::from_le_bytes(self.array()?)),
            T_I16 => Value::I16(i16::from_le_bytes(self.array()?)),
            T_U32 => Value::U32(self.u32()?),
            T_I32 => Value::I32(i32::from_le_bytes(self.array()?)),
            T_F32 => Value::F32(f32::from_le_bytes(self.array()?)),
            T_BOOL => match self.array::<1>()?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(err(format!("bool value {b}"))),
            },
            T_STR => Value::Str(self.string()?),
            T_U64 => Value::U64(self.u64()?),
            T_I64 => Value::I64(i64::from_le_bytes(self.array()?)),
            T_F64 => Value::F64(f64::from_le_bytes(self.array()?)),
            T_ARRAY => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(err("arrays nested too deeply"));
                }
                let elem_type = self.u32()?;
                let count = self.u64()?;
                let start = self.pos;
                match fixed_size(elem_type) {
                    Some(size) => {
                        let bytes = count
                            .checked_mul(size as u64)
                            .ok_or_else(|| err("array length overflows"))?;
                        self.take(bytes)?;
                        if elem_type == T_BOOL {
                            let raw = &self.buf[start..self.pos];
                            if raw.iter().any(|&b| b > 1) {
                                return Err(err("bool array element not 0 or 1"));
                            }
                        }
                    }
                    None if elem_type == T_STR || elem_type == T_ARRAY => {
                        // Each element takes at least 8 bytes, so a huge count fails fast
                        // on truncation; nothing is allocated per element.
                        if count > (self.remaining() / 8) as u64 {
                            return Err(err(format!("array of {count} elements exceeds the file")));
                        }
                        for _ in 0..count {
                            self.value(elem_type, depth + 1)?;
                        }
                    }
                    None => return Err(err(format!("unknown array element type {elem_type}"))),
                }
                Value::Array(Array {
                    elem_type,
                    count,
                    raw: &self.buf[start..self.pos],
                })
            }
            _ => return Err(err(format!("unknown value type {ty}"))),
        })
    }
}

impl<'a> GgufFile<'a> {
    /// Parses and validates `bytes` as a GGUF file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let magic = r
            .take(4)
            .map_err(|_| err("file shorter than the GGUF magic"))?;
        if magic != MAGIC {
            return Err(Error("not a GGUF file (bad magic)".into()));
        }
        let version = r.u32()?;
        match version {
            2 | 3 => {}
            1 => return Err(err("GGUF version 1 is not supported (only 2 and 3)")),
            v if v.swap_bytes() <= 3 => return Err(err("big-endian GGUF files are not supported")),
            v => return Err(err(format!("unsupported GGUF version {v}"))),
        }
        let tensor_count = r.u64()?;
        let kv_count = r.u64()?;

        // A key/value pair takes at least 8 (key len) + 4 (type) + 1 bytes.
        if kv_count > (r.remaining() / 13) as u64 {
            return Err(err(format!(
                "{kv_count} metadata entries cannot fit in the file"
            )));
        }
        let mut metadata = BTreeMap::new();
        for i in 0..kv_count {
            let key = r.string()?;
            let key = std::str::from_utf8(key)
                .map_err(|_| err(format!("metadata key {i} is not UTF-8")))?;
            if key.is_empty() {
                return Err(err(format!("metadata key {i} is empty")));
            }
            let ty = r.u32()?;
            let value = r
                .value(ty, 0)
                .map_err(|e| Error(format!("{e} (in metadata '{key}')")))?;
            if metadata.insert(key.to_string(), value).is_some() {
                return Err(err(format!("duplicate metadata key '{key}'")));
            }
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
            Some(v) => {
                return Err(err(format!(
                    "general.alignment must be a power-of-two u32, got {v:?}"
                )))
            }
        };

        // A tensor info takes at least 8 (name len) + 4 + 8 + 4 + 8 bytes.
        if tensor_count > (r.remaining() / 32) as u64 {
            return Err(err(format!(
                "{tensor_count} tensors cannot fit in the file"
            )));
        }
        struct Raw {
            name: String,
            dtype: DType,
            shape: Vec<usize>,
            offset: u64,
            size: u64,
        }
        let mut raws = Vec::with_capacity(tensor_count as usize);
        let mut names = std::collections::BTreeSet::new();
        for i in 0..tensor_count {
            let name = r.string()?;
            let name = std::str::from_utf8(name)
                .map_err(|_| err(format!("tensor {i}: name is not UTF-8")))?;
            if name.is_empty() {
                return Err(err(format!("tensor {i}: empty name")));
            }
            if !names.insert(name) {
                return Err(err(format!("duplicate tensor '{name}'")));
            }
            let n_dims = r.u32()? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(err(format!("tensor '{name}': {n_dims} dimensions")));
            }
            let mut shape = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = r.u64()?;
                let d = usize::try_from(d)
                    .ok()
                    .filter(|&d| d > 0 && d as u64 <= 1 << 40)
                    .ok_or_else(|| err(format!("tensor '{name}': dimension {d}")))?;
                shape.push(d);
            }
            shape.reverse(); // GGUF lists the innermost dimension first
            let type_id = r.u32()?;
            let dtype = DType::from_id(type_id).ok_or_else(|| {
                Error(format!(
                    "tensor '{name}' has ggml type {type_id} ({}), which ember does not support",
                    ggml_type_name(type_id)
                ))
            })?;
            let size = dtype.tensor_bytes(&shape).ok_or_else(|| {
                err(format!(
                    "tensor '{name}': shape {shape:?} is not whole {dtype} blocks or overflows"
                ))
            })? as u64;
            let offset = r.u64()?;
            if offset % alignment != 0 {
                return Err(err(format!(
                    "tensor '{name}': offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            raws.push(Raw {
                name: name.to_string(),
                dtype,
                shape,
                offset,
                size,
            });
        }

        let data_offset = (r.pos as u64)
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| err("data offset overflows"))?;
        let data_len = (bytes.len() as u64)
            .checked_sub(data_offset)
            .ok_or_else(|| err("truncated before the data section"))?;
        let data = &bytes[data_offset as usize..];

        // Tensors must lie inside the data section without overlapping.
        let mut spans: Vec<(u64, u64, &str)> = raws
            .iter()
            .map(|t| (t.offset, t.size, t.name.as_str()))
            .collect();
        spans.sort_unstable();
        let mut prev_end = 0u64;
        let mut prev_name = "";
        for &(offset, size, name) in &spans {
            let end = offset
                .checked_add(size)
                .ok_or_else(|| err(format!("tensor '{name}': extent overflows")))?;
            if end > data_len {
                return Err(err(format!(
                    "tensor '{name}' ends at data offset {end}, past the end of the file (data section is {data_len} bytes; truncated?)"
                )));
            }
            if offset < prev_end {
                return Err(err(format!("tensors '{prev_name}' and '{name}' overlap")));
            }
            prev_end = end;
            prev_name = name;
        }

        let tensors = raws
            .into_iter()
            .map(|t| TensorInfo {
                data: &data[t.offset as usize..(t.offset + t.size) as usize],
                name: t.name,
                dtype: t.dtype,
                shape: t.shape,
                offset: t.offset,
            })
            .collect();
        Ok(GgufFile {
            version,
            alignment,
            data_offset,
            metadata,
            tensors,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A required string value.
    pub fn str(&self, key: &str) -> Result<&'a str> {
        match self.get(key) {
            None => Err(Error(format!("GGUF metadata '{key}' is missing"))),
            Some(v) => v.as_str().ok_or_else(|| {
                Error(format!(
                    "GGUF metadata '{key}' should be a UTF-8 string, not {}",
                    v.type_name()
                ))
            }),
        }
    }

    /// An optional unsigned integer value that fits in u32.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_u32().map(Some).ok_or_else(|| {
                Error(format!(
                    "GGUF metadata '{key}' should be an unsigned integer below 2^32, not {v:?}"
                ))
            }),
        }
    }

    pub fn u32(&self, key: &str) -> Result<u32> {
        self.opt_u32(key)?
            .ok_or_else(|| Error(format!("GGUF metadata '{key}' is missing")))
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(|x| Some(x as f32)).ok_or_else(|| {
                Error(format!(
                    "GGUF metadata '{key}' should be a number, not {}",
                    v.type_name()
                ))
            }),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                Error(format!(
                    "GGUF metadata '{key}' should be a bool, not {}",
                    v.type_name()
                ))
            }),
        }
    }

    pub fn opt_array(&self, key: &str) -> Result<Option<Array<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_array().map(Some).ok_or_else(|| {
                Error(format!(
                    "GGUF metadata '{key}' should be an array, not {}",
                    v.type_name()
                ))
            }),
        }
    }
}

/// A minimal GGUF writer for tests and fuzz seeds (not used for conversion). The `raw_*`
/// methods and the `*_override` fields write fields unchecked, to build corrupt files.
#[derive(Debug, Default)]
pub struct GgufBuilder {
    kv: Vec<(String, u32, Vec<u8>)>,
    tensors: Vec<RawTensor>,
    pub alignment: u64,
    pub version: u32,
    pub tensor_count_override: Option<u64>,
    pub kv_count_override: Option<u64>,
}

#[derive(Debug)]
struct RawTensor {
    name: String,
    type_id: u32,
    /// Innermost first, as stored.
    dims: Vec<u64>,
    offset: Option<u64>,
    data: Vec<u8>,
}

impl GgufBuilder {
    pub fn new() -> Self {
        GgufBuilder {
            alignment: DEFAULT_ALIGNMENT,
            version: 3,
            ..Default::default()
        }
    }

    fn enc_str(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    }

    /// A key with a value of type id `ty` encoded as `bytes`, unchecked.
    pub fn raw_kv(&mut self, key: &str, ty: u32, bytes: Vec<u8>) -> &mut Self {
        self.kv.push((key.into(), ty, bytes));
        self
    }

    pub fn u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.raw_kv(key, T_U32, v.to_le_bytes().to_vec())
    }

    pub fn i32(&mut self, key: &str, v: i32) -> &mut Self {
        self.raw_kv(key, T_I32, v.to_le_bytes().to_vec())
    }

    pub fn f32(&mut self, key: &str, v: f32) -> &mut Self {
        self.raw_kv(key, T_F32, v.to_le_bytes().to_vec())
    }

    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.raw_kv(key, T_BOOL, vec![v as u8])
    }

    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        let mut b = Vec::new();
        Self::enc_str(&mut b, v.as_bytes());
        self.raw_kv(key, T_STR, b)
    }

    fn array_header(elem: u32, n: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&elem.to_le_bytes());
        b.extend_from_slice(&(n as u64).to_le_bytes());
        b
    }

    pub fn str_array<S: AsRef<[u8]>>(&mut self, key: &str, items: &[S]) -> &mut Self {
        let mut b = Self::array_header(T_STR, items.len());
        for s in items {
            Self::enc_str(&mut b, s.as_ref());
        }
        self.raw_kv(key, T_ARRAY, b)
    }

    pub fn f32_array(&mut self, key: &str, items: &[f32]) -> &mut Self {
        let mut b = Self::array_header(T_F32, items.len());
        for x in items {
            b.extend_from_slice(&x.to_le_bytes());
        }
        self.raw_kv(key, T_ARRAY, b)
    }

    pub fn i32_array(&mut self, key: &str, items: &[i32]) -> &mut Self {
        let mut b = Self::array_header(T_I32, items.len());
        for x in items {
            b.extend_from_slice(&x.to_le_bytes());
        }
        self.raw_kv(key, T_ARRAY, b)
    }

    /// Adds a tensor with a row-major `shape`; `data` must be `dtype.tensor_bytes(shape)`.
    pub fn tensor(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        data: Vec<u8>,
    ) -> &mut Self {
        assert_eq!(dtype.tensor_bytes(shape), Some(data.len()), "{name}");
        let dims = shape.iter().rev().map(|&d| d as u64).collect();
        self.raw_tensor(name, dtype.id(), dims, None, data)
    }

    /// A tensor info written as given (`dims` innermost first); `offset` `None` places the
    /// data after the previous tensor.
    pub fn raw_tensor(
        &mut self,
        name: &str,
        type_id: u32,
        dims: Vec<u64>,
        offset: Option<u64>,
        data: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push(RawTensor {
            name: name.into(),
            type_id,
            dims,
            offset,
            data,
        });
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let align = self.alignment.max(1) as usize;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        let tc = self
            .tensor_count_override
            .unwrap_or(self.tensors.len() as u64);
        let kc = self.kv_count_override.unwrap_or(self.kv.len() as u64);
        out.extend_from_slice(&tc.to_le_bytes());
        out.extend_from_slice(&kc.to_le_bytes());
        for (k, t, v) in &self.kv {
            Self::enc_str(&mut out, k.as_bytes());
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(v);
        }
        let mut offset = 0usize;
        for t in &self.tensors {
            Self::enc_str(&mut out, t.name.as_bytes());
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            out.extend_from_slice(&t.offset.unwrap_or(offset as u64).to_le_bytes());
            offset = (offset + t.data.len()).next_multiple_of(align);
        }
        out.resize(out.len().next_multiple_of(align), 0);
        for t in &self.tensors {
            out.extend_from_slice(&t.data);
            out.resize(out.len().next_multiple_of(align), 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut b = GgufBuilder::new();
        b.str("general.architecture", "llama")
            .u32("llama.block_count", 1)
            .str_array("tokenizer.ggml.tokens", &["a", "b", "c"])
            .f32_array("tokenizer.ggml.scores", &[0.0, -1.0, -2.0])
            .tensor("x", DType::F32, &[2, 3], vec![0; 24]);
        b.build()
    }

    #[test]
    fn parses_what_the_builder_writes() {
        let bytes = sample();
        let g = GgufFile::parse(&bytes).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.str("general.architecture").unwrap(), "llama");
        assert_eq!(g.u32("llama.block_count").unwrap(), 1);
        let toks = g.opt_array("tokenizer.ggml.tokens").unwrap().unwrap();
        assert_eq!(toks.strings().unwrap(), vec![b"a", b"b", b"c"]);
        let t = g.tensor("x").unwrap();
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data.len(), 24);
        assert_eq!(g.data_offset % 32, 0);
    }

    #[test]
    fn huge_array_count_does_not_allocate() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        GgufBuilder::enc_str(&mut bytes, b"k");
        bytes.extend_from_slice(&T_ARRAY.to_le_bytes());
        bytes.extend_from_slice(&T_STR.to_le_bytes());
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        bytes.extend_from_slice(&[0; 64]);
        assert!(GgufFile::parse(&bytes).is_err());
        // Same with u8 elements (checked multiplication, then bounds).
        let n = bytes.len();
        bytes[n - 64 - 12..n - 64 - 8].copy_from_slice(&T_U64.to_le_bytes());
        assert!(GgufFile::parse(&bytes).is_err());
    }
}
