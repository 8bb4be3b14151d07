//! Byte layout constants of the `.ember` format (docs/FORMAT.md is the prose version).

/// First 8 bytes of every `.ember` file.
pub const MAGIC: [u8; 8] = *b"EMBERFMT";
/// Readers accept files of their major version with any minor version.
pub const FORMAT_MAJOR: u16 = 1;
/// Minor 1 added layout 1 (rows16); minor 2 lets rows16 take Q5_0 and Q5_1; minor 3 adds
/// the `spm-vocab` tokenizer (older readers refuse its model name).
pub const FORMAT_MINOR: u16 = 3;
/// Header flag: bytes 24..32 hold the XXH64 checksum of the file.
pub const FLAG_CHECKSUM: u32 = 1;
pub const KNOWN_FLAGS: u32 = FLAG_CHECKSUM;

pub const HEADER_LEN: usize = 128;
pub const CHECKSUM_AT: usize = 24;
/// Bytes 96..128 of the header are reserved and must be zero.
pub const RESERVED_AT: usize = 96;
/// Tensor data offsets are multiples of this (cache line, and every SIMD width).
pub const DATA_ALIGN: u64 = 64;

/// key_len u32, value_type u32, value_len u64; then key and value, each padded to 8.
pub const META_ENTRY_FIXED: usize = 16;
/// name_len u32, dtype u32, layout u32, ndim u32, dims u64[4], offset u64, byte_len u64;
/// then the name padded to 8.
pub const DIR_ENTRY_FIXED: usize = 64;
pub const MAX_DIMS: usize = 4;
pub const MAX_NAME_LEN: usize = 1024;
/// No single extent beyond 2^40 elements: bounds shape products long before overflow.
pub const MAX_EXTENT: u64 = 1 << 40;

pub const VT_U8: u32 = 0;
pub const VT_I32: u32 = 1;
pub const VT_U32: u32 = 2;
pub const VT_F32: u32 = 3;
pub const VT_U64: u32 = 4;
pub const VT_I64: u32 = 5;
pub const VT_F64: u32 = 6;
pub const VT_STR: u32 = 7;
pub const VT_BYTES_ARRAY: u32 = 8;
