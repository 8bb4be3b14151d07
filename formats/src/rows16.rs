//! The `rows16` layout (id 1): a block-quantized matrix stored in groups of 16 rows, each
//! group's blocks interleaved so that one 64-byte SIMD load carries the same 4 columns of
//! all 16 rows (one 32-bit lane per row) and the 16 rows' scales sit side by side.
//!
//! A group of 16 rows is stored contiguously, block column after block column: the matrix
//! `(rows, cols)` becomes `rows / 16` groups of `cols / B` tiles (B = 32 weights per block, 256
//! for the K-quant super-blocks Q4_K, Q5_K, Q6_K). A tile has exactly the
//! bytes of the 16 row-major blocks it replaces (16 × block_bytes), arranged as:
//!
//! - the blocks' u16 header fields, field by field, 16 rows each: `d[16]` (Q8_0, Q4_0),
//!   `d[16] m[16]` (Q4_1), `sd[16]` (Q4_Z), `d[16] qh_lo[16] qh_hi[16]` (Q5_0: the fifth bits
//!   of weights 0..16 and 16..32), `d[16] m[16] qh_lo[16] qh_hi[16]` (Q5_1);
//! - K-quants: Q4_K and Q5_K put `d`, `dmin` and their 12 scale bytes (6 fields) first;
//!   Q6_K has only `d` as a field; everything else (Q5_K's qh, then qs; Q6_K's ql, qh and 16
//!   scales) is chunked as below ([`Parts`]);
//! - the quant bytes in chunks of 4 bytes per row: chunk `a` is
//!   `qs[row 0][4a..4a+4], qs[row 1][4a..4a+4], ..., qs[row 15][4a..4a+4]` (64 bytes); Q4
//!   and Q5 types have 4 chunks (nibble byte i holds weights i and i + 16, as in the row-major block),
//!   Q8_0 has 8 chunks and stores each quant as `q + 128` (an unsigned byte, the operand
//!   VNNI's `dpbusd` wants; the kernels subtract `128 · Σx` per block).
//!
//! Float matrices (F32, F16, BF16) with a multiple of 16 rows are stored group by group,
//! each group column-major: element (r, k) of a group at index `k·16 + r`, so one load
//! carries column k of all 16 rows.
//!
//! Nothing is lost: [`interleave`] and [`block_of_row`] / [`dequantize_row`] are exact
//! inverses.

use crate::DType;

/// Rows per group.
pub const GROUP: usize = 16;

/// Weights per block of the 32-weight block types (K-quant super-blocks have 256).
pub const BLOCK: usize = 32;

/// Where a block type's bytes go in a tile: `head` bytes of u16 fields, then `quants` bytes
/// moved in 4-byte chunks, then `tail` bytes of u16 fields (Q6_K keeps its scale last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    pub head: usize,
    pub quants: usize,
    pub tail: usize,
}

impl Parts {
    const fn new(head: usize, quants: usize, tail: usize) -> Option<Parts> {
        Some(Parts { head, quants, tail })
    }

    /// Bytes of one block.
    pub const fn block_bytes(&self) -> usize {
        self.head + self.quants + self.tail
    }

    /// Where the quant chunks start in a tile (after all fields).
    pub const fn chunks_at(&self) -> usize {
        GROUP * (self.head + self.tail)
    }
}

/// The parts of each block type the layout takes.
pub const fn fields(dtype: DType) -> Option<Parts> {
    match dtype {
        DType::Q4_0 | DType::Q4Z => Parts::new(2, 16, 0),
        DType::Q4_1 => Parts::new(4, 16, 0),
        // d, then qh as two u16 fields (the fifth bits of weights 0..16 and 16..32).
        DType::Q5_0 => Parts::new(6, 16, 0),
        DType::Q5_1 => Parts::new(8, 16, 0),
        DType::Q8_0 => Parts::new(2, 32, 0),
        // d, dmin and the 12 bytes of 6-bit scales as fields; qs in chunks.
        DType::Q4K => Parts::new(16, 128, 0),
        // As Q4_K; qh (32 bytes) is chunked with qs: chunk k of it holds the fifth bits of
        // weights 4k..4k+4 of every sub-block.
        DType::Q5K => Parts::new(16, 160, 0),
        // ql, qh and the 16 i8 scales in chunks; d last.
        DType::Q6K => Parts::new(0, 208, 2),
        DType::IQ4NL => Parts::new(2, 16, 0),
        // d, scales_h and the 4 bytes of scales_l as fields; qs in chunks.
        DType::IQ4XS => Parts::new(8, 128, 0),
        _ => None,
    }
}

/// Bytes per element of the float types the layout takes (F32, F16, BF16).
pub const fn float_bytes(dtype: DType) -> Option<usize> {
    match dtype {
        DType::F32 => Some(4),
        DType::F16 | DType::BF16 => Some(2),
        _ => None,
    }
}

/// Whether a tensor of this dtype and shape can be stored as rows16: a matrix whose row
/// count is a multiple of 16, of a block type above or a float type.
pub fn supports(dtype: DType, shape: &[usize]) -> bool {
    shape.len() == 2
        && shape[0] > 0
        && shape[0].is_multiple_of(GROUP)
        && (float_bytes(dtype).is_some()
            || (fields(dtype).is_some() && shape[1].is_multiple_of(dtype.block_len())))
}

/// Bytes of one tile (16 blocks).
pub fn tile_bytes(dtype: DType) -> Option<usize> {
    fields(dtype).map(|p| GROUP * p.block_bytes())
}

/// Bytes of the largest block the layout takes (Q6_K's 210, rounded up to even).
pub const MAX_BLOCK_BYTES: usize = 210;

/// Bias added to Q8_0 quant bytes in this layout (as u8: `q + 128`).
const Q8_BIAS: u8 = 0x80;

/// Byte `k` of row `r`'s block (in row-major block order) ↔ its position in the tile.
fn tile_pos(p: Parts, r: usize, k: usize) -> usize {
    let field = |f: usize, byte: usize| f * 2 * GROUP + 2 * r + byte;
    if k < p.head {
        field(k / 2, k % 2)
    } else if k < p.head + p.quants {
        let i = k - p.head;
        p.chunks_at() + (i / 4) * 4 * GROUP + 4 * r + i % 4
    } else {
        let j = k - p.head - p.quants;
        field(p.head / 2 + j / 2, j % 2)
    }
}

/// Whether block byte `k` is a Q8_0 quant, stored `q + 128`.
fn biased(dtype: DType, p: Parts, k: usize) -> bool {
    dtype == DType::Q8_0 && k >= p.head && k < p.head + p.quants
}

/// Rearranges a row-major matrix (`src`, rows × cols of `dtype` blocks) into rows16
/// (`dst`, same length). Panics if the layout does not apply (see [`supports`]) or the
/// lengths are wrong: callers check first.
pub fn interleave(dtype: DType, rows: usize, cols: usize, src: &[u8], dst: &mut [u8]) {
    assert!(supports(dtype, &[rows, cols]));
    if let Some(e) = float_bytes(dtype) {
        // Floats: each group column-major, element (r, k) at (k·16 + r).
        assert!(src.len() == rows * cols * e && dst.len() == src.len());
        for (from, to) in src
            .chunks_exact(GROUP * cols * e)
            .zip(dst.chunks_exact_mut(GROUP * cols * e))
        {
            for r in 0..GROUP {
                for k in 0..cols {
                    let (a, b) = ((r * cols + k) * e, (k * GROUP + r) * e);
                    to[b..b + e].copy_from_slice(&from[a..a + e]);
                }
            }
        }
        return;
    }
    let parts = fields(dtype).expect("rows16 dtype");
    let bb = parts.block_bytes();
    let nb = cols / dtype.block_len();
    assert!(src.len() == rows * nb * bb && dst.len() == src.len());
    for g in 0..rows / GROUP {
        for b in 0..nb {
            let tile = &mut dst[(g * nb + b) * GROUP * bb..][..GROUP * bb];
            for r in 0..GROUP {
                let block = &src[((g * GROUP + r) * nb + b) * bb..][..bb];
                for (k, &byte) in block.iter().enumerate() {
                    let v = if biased(dtype, parts, k) {
                        byte ^ Q8_BIAS
                    } else {
                        byte
                    };
                    tile[tile_pos(parts, r, k)] = v;
                }
            }
        }
    }
}

/// Row `r` (0..16) of a tile, as the row-major block it came from (the first
/// `block_bytes` bytes of `out`).
pub fn block_of_row(dtype: DType, tile: &[u8], r: usize, out: &mut [u8]) {
    let parts = fields(dtype).expect("rows16 dtype");
    let bb = parts.block_bytes();
    assert!(r < GROUP && tile.len() >= GROUP * bb && out.len() >= bb);
    for (k, o) in out[..bb].iter_mut().enumerate() {
        let v = tile[tile_pos(parts, r, k)];
        *o = if biased(dtype, parts, k) {
            v ^ Q8_BIAS
        } else {
            v
        };
    }
}

/// Dequantizes row `r` of a rows16 matrix with `cols` columns into `dst` (cols values).
pub fn dequantize_row(dtype: DType, data: &[u8], cols: usize, r: usize, dst: &mut [f32]) {
    if let Some(e) = float_bytes(dtype) {
        let group = &data[(r / GROUP) * GROUP * cols * e..][..GROUP * cols * e];
        let mut one = [0u8; 4];
        for (k, d) in dst[..cols].iter_mut().enumerate() {
            let at = (k * GROUP + r % GROUP) * e;
            one[..e].copy_from_slice(&group[at..at + e]);
            let mut v = [0f32];
            crate::blocks::dequantize_row_ref(dtype, &one[..e], &mut v);
            *d = v[0];
        }
        return;
    }
    let tb = tile_bytes(dtype).expect("rows16 dtype");
    let bl = dtype.block_len();
    let nb = cols / bl;
    let (g, rr) = (r / GROUP, r % GROUP);
    // Plain bytes: the block structs have alignment 1.
    let mut buf = [0u8; MAX_BLOCK_BYTES];
    let block: &mut [u8] = &mut buf;
    let bb = tb / GROUP;
    for b in 0..nb {
        let tile = &data[(g * nb + b) * tb..][..tb];
        block_of_row(dtype, tile, rr, block);
        crate::blocks::dequantize_row_ref(dtype, &block[..bb], &mut dst[b * bl..(b + 1) * bl]);
    }
}
