//! Zero-copy reader. `EmberFile::parse` validates every offset, length, shape and name once;
//! afterwards lookups only slice what was checked.

use crate::error::{Error, Section, ShortName};
use crate::layout::*;
use crate::xxh64::Xxh64;
use crate::{DType, Layout};

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn pad8(n: u64) -> Option<u64> {
    n.checked_add(7).map(|v| v & !7)
}

fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

// Sizes: a u64 from the file becomes a `usize` with `as` only after it was checked against
// the length of a slice (so it fits in `usize` on every target, 32-bit ones included);
// values not bounded that way (tensor extents) go through `usize::try_from`.

/// The fixed-size file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    pub flags: u32,
    pub file_len: u64,
    pub checksum: u64,
    pub meta_offset: u64,
    pub meta_len: u64,
    pub meta_count: u64,
    pub dir_offset: u64,
    pub dir_len: u64,
    pub tensor_count: u64,
    pub data_offset: u64,
    pub data_len: u64,
}

impl Header {
    fn read(b: &[u8]) -> Header {
        Header {
            major: u16::from_le_bytes([b[8], b[9]]),
            minor: u16::from_le_bytes([b[10], b[11]]),
            flags: u32_at(b, 12),
            file_len: u64_at(b, 16),
            checksum: u64_at(b, CHECKSUM_AT),
            meta_offset: u64_at(b, 32),
            meta_len: u64_at(b, 40),
            meta_count: u64_at(b, 48),
            dir_offset: u64_at(b, 56),
            dir_len: u64_at(b, 64),
            tensor_count: u64_at(b, 72),
            data_offset: u64_at(b, 80),
            data_len: u64_at(b, 88),
        }
    }

    pub fn has_checksum(&self) -> bool {
        self.flags & FLAG_CHECKSUM != 0
    }
}

/// A metadata value, borrowed from the file. Scalars are arrays of length one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U8(&'a [u8]),
    I32(&'a [i32]),
    U32(&'a [u32]),
    F32(&'a [f32]),
    U64(&'a [u64]),
    I64(&'a [i64]),
    F64(&'a [f64]),
    Str(&'a str),
    BytesArray(BytesArray<'a>),
}

impl<'a> Value<'a> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8[]",
            Value::I32(_) => "i32[]",
            Value::U32(_) => "u32[]",
            Value::F32(_) => "f32[]",
            Value::U64(_) => "u64[]",
            Value::I64(_) => "i64[]",
            Value::F64(_) => "f64[]",
            Value::Str(_) => "str",
            Value::BytesArray(_) => "bytes[]",
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32([v]) => Some(*v),
            Value::U64([v]) => u32::try_from(*v).ok(),
            Value::I32([v]) => u32::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64([v]) => Some(*v),
            Value::U32([v]) => Some(*v as u64),
            _ => None,
        }
    }

    pub fn as_f32(&self) -> Option<f32> {
        match self {
            Value::F32([v]) => Some(*v),
            Value::F64([v]) => Some(*v as f32),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::U8([v]) if *v <= 1 => Some(*v == 1),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u32s(&self) -> Option<&'a [u32]> {
        match self {
            Value::U32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i32s(&self) -> Option<&'a [i32]> {
        match self {
            Value::I32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f32s(&self) -> Option<&'a [f32]> {
        match self {
            Value::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::U8(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bytes_array(&self) -> Option<BytesArray<'a>> {
        match self {
            Value::BytesArray(v) => Some(*v),
            _ => None,
        }
    }
}

/// An array of byte strings (a vocabulary, a merge list): `len` offsets into one blob,
/// so element `i` is found in O(1) without an allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BytesArray<'a> {
    offsets: &'a [u32],
    blob: &'a [u8],
}

impl<'a> BytesArray<'a> {
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let start = *self.offsets.get(i)? as usize;
        let end = *self.offsets.get(i + 1)? as usize;
        self.blob.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (offsets, blob) = (self.offsets, self.blob);
        offsets
            .windows(2)
            .map(move |w| &blob[w[0] as usize..w[1] as usize])
    }

    /// Total bytes of all elements.
    pub fn blob_len(&self) -> usize {
        self.blob.len()
    }
}

/// One tensor's directory entry and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub layout: Layout,
    shape: [usize; MAX_DIMS],
    ndim: usize,
    /// Absolute byte offset in the file.
    pub offset: u64,
    pub data: &'a [u8],
}

impl<'a> TensorInfo<'a> {
    /// Extents, outermost first (a matrix is `[rows, cols]`, rows contiguous).
    pub fn shape(&self) -> &[usize] {
        &self.shape[..self.ndim]
    }

    pub fn elements(&self) -> usize {
        self.shape().iter().product()
    }

    /// Zero-copy `f32` view of a row-major F32 tensor (the data is 64-byte aligned); `None`
    /// for other dtypes and for rows16 matrices, whose element order is not row-major.
    pub fn as_f32(&self) -> Option<&'a [f32]> {
        if self.dtype != DType::F32 || self.layout != Layout::RowMajor {
            return None;
        }
        bytemuck::try_cast_slice(self.data).ok()
    }
}

/// A validated `.ember` file borrowed from memory (an mmap, or `&'static` flash).
#[derive(Clone, Copy, Debug)]
pub struct EmberFile<'a> {
    bytes: &'a [u8],
    header: Header,
}

fn check_section(
    file_len: u64,
    offset: u64,
    len: u64,
    align: u64,
    section: Section,
) -> Result<(), Error> {
    let end = offset.checked_add(len).ok_or(Error::BadLayout(section))?;
    if !offset.is_multiple_of(align) || end > file_len {
        return Err(Error::BadLayout(section));
    }
    Ok(())
}

impl<'a> EmberFile<'a> {
    /// Validates `bytes` as a `.ember` file. Checks structure, not the checksum (that reads
    /// every byte; see [`EmberFile::verify_checksum`]). `bytes` must be 8-byte aligned.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let available = bytes.len() as u64;
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            if bytes.len() < 8 && MAGIC.starts_with(bytes) {
                return Err(Error::Truncated {
                    section: Section::Header,
                    needed: HEADER_LEN as u64,
                    available,
                });
            }
            return Err(Error::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated {
                section: Section::Header,
                needed: HEADER_LEN as u64,
                available,
            });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(8) {
            return Err(Error::MisalignedBuffer);
        }
        let h = Header::read(bytes);
        if h.major != FORMAT_MAJOR {
            return Err(Error::UnsupportedVersion {
                major: h.major,
                minor: h.minor,
            });
        }
        if h.flags & !KNOWN_FLAGS != 0 {
            return Err(Error::UnknownFlags(h.flags & !KNOWN_FLAGS));
        }
        if bytes[RESERVED_AT..HEADER_LEN].iter().any(|&b| b != 0) {
            return Err(Error::ReservedNotZero);
        }
        if h.file_len != available {
            if h.file_len > available {
                return Err(Error::Truncated {
                    section: Section::TensorData,
                    needed: h.file_len,
                    available,
                });
            }
            return Err(Error::LengthMismatch {
                header: h.file_len,
                actual: available,
            });
        }
        check_section(available, h.meta_offset, h.meta_len, 8, Section::Metadata)?;
        check_section(
            available,
            h.dir_offset,
            h.dir_len,
            8,
            Section::TensorDirectory,
        )?;
        check_section(
            available,
            h.data_offset,
            h.data_len,
            DATA_ALIGN,
            Section::TensorData,
        )?;
        // Sections are contiguous: header, metadata, directory, padding to 64, data to the end.
        if h.meta_offset != HEADER_LEN as u64 {
            return Err(Error::BadLayout(Section::Metadata));
        }
        if h.dir_offset != h.meta_offset + h.meta_len {
            return Err(Error::BadLayout(Section::TensorDirectory));
        }
        if h.data_offset != (h.dir_offset + h.dir_len).div_ceil(DATA_ALIGN) * DATA_ALIGN
            || h.data_offset + h.data_len != available
        {
            return Err(Error::BadLayout(Section::TensorData));
        }
        // The zero padding between the directory and the data (both ends checked above).
        if !all_zero(&bytes[(h.dir_offset + h.dir_len) as usize..h.data_offset as usize]) {
            return Err(Error::NonZeroPadding(Section::TensorData));
        }
        let file = EmberFile { bytes, header: h };
        file.validate_metadata()?;
        file.validate_tensors()?;
        Ok(file)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    fn section(&self, offset: u64, len: u64) -> &'a [u8] {
        // Bounds were checked in `parse`.
        &self.bytes[offset as usize..(offset + len) as usize]
    }

    fn validate_metadata(&self) -> Result<(), Error> {
        let mut prev: Option<&[u8]> = None;
        let mut it = MetaIter::new(self.section(self.header.meta_offset, self.header.meta_len));
        for index in 0..self.header.meta_count {
            let (key, value) = it.next_checked(index)?;
            if let Some(p) = prev {
                if p >= key.as_bytes() {
                    return Err(Error::KeysNotSorted {
                        key: ShortName::new(key.as_bytes()),
                    });
                }
            }
            prev = Some(key.as_bytes());
            let _ = value;
        }
        if !it.rest.is_empty() {
            return Err(Error::BadLayout(Section::Metadata));
        }
        Ok(())
    }

    fn validate_tensors(&self) -> Result<(), Error> {
        let mut it = self.raw_tensors();
        let mut prev_name: Option<&[u8]> = None;
        let mut prev_end = self.header.data_offset;
        let data_end = self.header.data_offset + self.header.data_len;
        for index in 0..self.header.tensor_count {
            let t = it.next_checked(index)?;
            let short = ShortName::new(t.name.as_bytes());
            if let Some(p) = prev_name {
                if p >= t.name.as_bytes() {
                    return Err(Error::TensorsNotSorted { name: short });
                }
            }
            prev_name = Some(t.name.as_bytes());
            let end = t
                .offset
                .checked_add(t.byte_len)
                .ok_or(Error::BadTensorOffset { name: short })?;
            if t.offset % DATA_ALIGN != 0 || t.offset < prev_end || end > data_end {
                return Err(Error::BadTensorOffset { name: short });
            }
            if !all_zero(&self.bytes[prev_end as usize..t.offset as usize]) {
                return Err(Error::NonZeroPadding(Section::TensorData));
            }
            prev_end = end;
        }
        if !it.rest.is_empty() {
            return Err(Error::BadLayout(Section::TensorDirectory));
        }
        if !all_zero(&self.bytes[prev_end as usize..data_end as usize]) {
            return Err(Error::NonZeroPadding(Section::TensorData));
        }
        Ok(())
    }

    /// Metadata entries in key order.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> + 'a {
        let mut it = MetaIter::new(self.section(self.header.meta_offset, self.header.meta_len));
        (0..self.header.meta_count).map_while(move |i| it.next_checked(i).ok())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn tensor_count(&self) -> usize {
        self.header.tensor_count as usize
    }

    /// Tensors in name order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo<'a>> + 'a {
        let mut it = self.raw_tensors();
        let bytes = self.bytes;
        (0..self.header.tensor_count).map_while(move |i| {
            let t = it.next_checked(i).ok()?;
            Some(TensorInfo {
                name: t.name,
                dtype: t.dtype,
                layout: t.layout,
                shape: t.shape,
                ndim: t.ndim,
                offset: t.offset,
                data: &bytes[t.offset as usize..(t.offset + t.byte_len) as usize],
            })
        })
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|t| t.name == name)
    }

    fn raw_tensors(&self) -> DirIter<'a> {
        DirIter {
            rest: self.section(self.header.dir_offset, self.header.dir_len),
        }
    }

    /// Recomputes the XXH64 checksum over the whole file (the checksum field read as zero).
    pub fn verify_checksum(&self) -> Result<(), Error> {
        let computed = checksum(self.bytes);
        if computed != self.header.checksum {
            return Err(Error::ChecksumMismatch {
                stored: self.header.checksum,
                computed,
            });
        }
        Ok(())
    }
}

/// XXH64 of a whole file with its checksum field taken as zero.
pub fn checksum(file: &[u8]) -> u64 {
    let mut h = Xxh64::new(0);
    h.update(&file[..CHECKSUM_AT]);
    h.update(&[0u8; 8]);
    h.update(&file[CHECKSUM_AT + 8..]);
    h.finish()
}

struct MetaIter<'a> {
    rest: &'a [u8],
}

impl<'a> MetaIter<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    fn next_checked(&mut self, index: u64) -> Result<(&'a str, Value<'a>), Error> {
        let b = self.rest;
        if b.len() < META_ENTRY_FIXED {
            return Err(Error::BadLayout(Section::Metadata));
        }
        let key_len = u32_at(b, 0) as u64;
        let value_type = u32_at(b, 4);
        let value_len = u64_at(b, 8);
        if key_len == 0 || key_len > MAX_NAME_LEN as u64 {
            return Err(Error::BadKey { index });
        }
        let key_end = META_ENTRY_FIXED as u64 + key_len;
        let value_start = pad8(key_end).ok_or(Error::BadKey { index })?;
        let value_end = value_start
            .checked_add(value_len)
            .ok_or(Error::BadLayout(Section::Metadata))?;
        let entry_end = pad8(value_end).ok_or(Error::BadLayout(Section::Metadata))?;
        if entry_end > b.len() as u64 {
            return Err(Error::BadLayout(Section::Metadata));
        }
        let key = core::str::from_utf8(&b[META_ENTRY_FIXED..key_end as usize])
            .map_err(|_| Error::BadKey { index })?;
        let short = ShortName::new(key.as_bytes());
        if !all_zero(&b[key_end as usize..value_start as usize])
            || !all_zero(&b[value_end as usize..entry_end as usize])
        {
            return Err(Error::NonZeroPadding(Section::Metadata));
        }
        let raw = &b[value_start as usize..value_end as usize];
        let value = decode_value(value_type, raw, short)?;
        self.rest = &b[entry_end as usize..];
        Ok((key, value))
    }
}

fn cast<T: bytemuck::Pod>(raw: &[u8], key: ShortName) -> Result<&[T], Error> {
    bytemuck::try_cast_slice(raw).map_err(|_| Error::BadValue { key })
}

fn decode_value(value_type: u32, raw: &[u8], key: ShortName) -> Result<Value<'_>, Error> {
    Ok(match value_type {
        VT_U8 => Value::U8(raw),
        VT_I32 => Value::I32(cast(raw, key)?),
        VT_U32 => Value::U32(cast(raw, key)?),
        VT_F32 => Value::F32(cast(raw, key)?),
        VT_U64 => Value::U64(cast(raw, key)?),
        VT_I64 => Value::I64(cast(raw, key)?),
        VT_F64 => Value::F64(cast(raw, key)?),
        VT_STR => Value::Str(core::str::from_utf8(raw).map_err(|_| Error::BadValue { key })?),
        VT_BYTES_ARRAY => Value::BytesArray(decode_bytes_array(raw, key)?),
        other => {
            return Err(Error::UnknownValueType {
                key,
                value_type: other,
            })
        }
    })
}

/// `u64 count; u32 offsets[count + 1]; pad to 8; blob`. Offsets start at 0, never
/// decrease, and the last equals the blob length.
fn decode_bytes_array(raw: &[u8], key: ShortName) -> Result<BytesArray<'_>, Error> {
    let bad = Error::BadValue { key };
    if raw.len() < 8 {
        return Err(bad);
    }
    let count = u64_at(raw, 0);
    let offsets_len = count
        .checked_add(1)
        .and_then(|n| n.checked_mul(4))
        .ok_or(bad)?;
    let blob_start = offsets_len.checked_add(8).and_then(pad8).ok_or(bad)?;
    if blob_start > raw.len() as u64 {
        return Err(bad);
    }
    if !all_zero(&raw[8 + offsets_len as usize..blob_start as usize]) {
        return Err(Error::NonZeroPadding(Section::Metadata));
    }
    let offsets: &[u32] = cast(&raw[8..8 + offsets_len as usize], key)?;
    let blob = &raw[blob_start as usize..];
    if offsets[0] != 0 || *offsets.last().unwrap_or(&0) as usize != blob.len() {
        return Err(bad);
    }
    if offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(bad);
    }
    Ok(BytesArray { offsets, blob })
}

struct RawTensor<'a> {
    name: &'a str,
    dtype: DType,
    layout: Layout,
    shape: [usize; MAX_DIMS],
    ndim: usize,
    offset: u64,
    byte_len: u64,
}

struct DirIter<'a> {
    rest: &'a [u8],
}

impl<'a> DirIter<'a> {
    fn next_checked(&mut self, index: u64) -> Result<RawTensor<'a>, Error> {
        let b = self.rest;
        if b.len() < DIR_ENTRY_FIXED {
            return Err(Error::BadLayout(Section::TensorDirectory));
        }
        let name_len = u32_at(b, 0) as usize;
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(Error::BadTensorName { index });
        }
        let entry_end = pad8(DIR_ENTRY_FIXED as u64 + name_len as u64).unwrap_or(u64::MAX);
        if entry_end > b.len() as u64 {
            return Err(Error::BadLayout(Section::TensorDirectory));
        }
        let name_bytes = &b[DIR_ENTRY_FIXED..DIR_ENTRY_FIXED + name_len];
        let name = core::str::from_utf8(name_bytes).map_err(|_| Error::BadTensorName { index })?;
        if !all_zero(&b[DIR_ENTRY_FIXED + name_len..entry_end as usize]) {
            return Err(Error::NonZeroPadding(Section::TensorDirectory));
        }
        let short = ShortName::new(name_bytes);
        let dtype_id = u32_at(b, 4);
        let dtype = DType::from_id(dtype_id).ok_or(Error::UnknownDtype {
            name: short,
            dtype: dtype_id,
        })?;
        let layout_id = u32_at(b, 8);
        let layout = Layout::from_id(layout_id).ok_or(Error::UnknownLayout {
            name: short,
            layout: layout_id,
        })?;
        let ndim = u32_at(b, 12) as usize;
        if ndim == 0 || ndim > MAX_DIMS {
            return Err(Error::BadShape { name: short });
        }
        let mut shape = [1usize; MAX_DIMS];
        for (d, slot) in shape.iter_mut().enumerate() {
            let v = u64_at(b, 16 + 8 * d);
            if d < ndim {
                if v == 0 || v > MAX_EXTENT {
                    return Err(Error::BadShape { name: short });
                }
                // MAX_EXTENT is 2^40: on a 32-bit target `as` would truncate an extent
                // the 64-bit reader rejects to one that might fit, giving another shape.
                *slot = usize::try_from(v).map_err(|_| Error::BadShape { name: short })?;
            } else if v != 1 {
                return Err(Error::BadShape { name: short });
            }
        }
        let offset = u64_at(b, 48);
        let byte_len = u64_at(b, 56);
        let expected = dtype
            .tensor_bytes(&shape[..ndim])
            .ok_or(Error::BadShape { name: short })? as u64;
        if expected != byte_len {
            return Err(Error::SizeMismatch {
                name: short,
                dtype,
                expected,
                actual: byte_len,
            });
        }
        if layout == Layout::Rows16 && !crate::rows16::supports(dtype, &shape[..ndim]) {
            return Err(Error::LayoutMismatch {
                name: short,
                layout: layout.name(),
            });
        }
        self.rest = &b[entry_end as usize..];
        Ok(RawTensor {
            name,
            dtype,
            layout,
            shape,
            ndim,
            offset,
            byte_len,
        })
    }
}
