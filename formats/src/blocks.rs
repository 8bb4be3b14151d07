//! Block layouts of the quantized dtypes (ggml-identical) and their reference
//! quantizers and dequantizers. These are the specification the SIMD kernels are tested
//! against: plain loops, no unsafe.
//!
//! A block covers `block_len` consecutive elements of one row. Scales are IEEE f16 bits.
//!
//! The block structs are `repr(C, packed)`: alignment 1, so `bytemuck::cast_slice` turns any
//! byte slice of whole blocks into blocks, wherever it starts (a byte `Vec`, a tensor at any
//! offset, flash). Their fields are read by value (`blk.d`); only byte-array fields can be
//! borrowed.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::DType;

/// 32 elements: `x = d * q`, q in -127..=127.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; 32],
}

/// 32 elements: `x = d * (q - 8)`; byte j holds element j (low nibble) and j + 16 (high).
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; 16],
}

/// 32 elements: `x = d * q + m`, nibbles as in Q4_0.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; 16],
}

/// 32 elements: `x = d * (q - 16)`, q's fifth bit in `qh` (bit j for element j).
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// 32 elements: `x = d * q + m`, bits as in Q5_0.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// 256 elements in 8 sub-blocks of 32, each with a 6-bit scale and min packed in `scales`:
/// `x = d * sc * q - dmin * m`.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

/// Q4_K with a fifth bit per element in `qh`.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

/// 256 elements in 16 sub-blocks of 16 with signed 8-bit scales: `x = d * sc * (q - 32)`,
/// q 6 bits (4 in `ql`, 2 in `qh`).
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: u16,
}

/// IQ4_NL: 32 elements, `x = d * IQ4_GRID[nibble]`, nibbles as in Q4_0.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockIQ4NL {
    pub d: u16,
    pub qs: [u8; 16],
}

/// IQ4_XS: 256 elements in 8 sub-blocks of 32, `x = d * (ls - 32) * IQ4_GRID[nibble]` with the
/// 6-bit `ls` of sub-block ib = low 4 bits from `scales_l` (nibble ib of the 4 bytes), high 2
/// from `scales_h` (bits 2ib, 2ib + 1); sub-block ib's nibbles are `qs[16 ib..16 ib + 16]`.
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockIQ4XS {
    pub d: u16,
    pub scales_h: u16,
    pub scales_l: [u8; 4],
    pub qs: [u8; 128],
}

/// The 16 values of the IQ4 grid (ggml's `kvalues_iq4nl`).
pub const IQ4_GRID: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

impl BlockIQ4XS {
    /// The signed scale multiplier `ls - 32` of sub-block `ib` (0..8).
    #[inline]
    pub fn scale(&self, ib: usize) -> i32 {
        let lo = (self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
        let hi = ((self.scales_h >> (2 * ib)) & 3) as u8;
        (lo | (hi << 4)) as i32 - 32
    }
}

/// Ember's q4_z (not a ggml type): 32 elements, `x = d * (q - z / 8)`, nibbles as in Q4_0.
/// The scale and the zero point share one u16, `sd = d9 << 7 | z`: `d9` is the top nine
/// bits below the sign of the f16 encoding of `256 d` (5 exponent bits, 4 mantissa bits;
/// the 2^-8 shift moves f16's range down to where weight scales live, 2^-22 .. 248), `z`
/// in 0..=127 is the zero point in eighths. The same 4.5 bits per weight as Q4_0, but
/// affine like Q4_1, whose (d, m) pairs it represents to within ~1.5% of `d` (see
/// docs/QUANTIZATION.md).
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq)]
#[repr(C, packed)]
pub struct BlockQ4Z {
    pub sd: u16,
    pub qs: [u8; 16],
}

impl BlockQ4Z {
    /// The scale `d` and the zero point `z / 8`.
    #[inline]
    pub fn scale_zero(&self) -> (f32, f32) {
        q4z_scale_zero(self.sd)
    }
}

/// The q4_z scale shift: `d = f16(d9 << 6) * Q4Z_SHIFT`.
pub const Q4Z_SHIFT: f32 = 1.0 / 256.0;

/// `(d, z / 8)` of a packed q4_z `sd`.
#[inline]
pub fn q4z_scale_zero(sd: u16) -> (f32, f32) {
    (q4z_d(sd >> 7), (sd & 0x7F) as f32 * 0.125)
}

/// The 9-bit scale code nearest to `d` (>= 0), rounding in f16 bit space (so it is
/// monotone); `up` rounds up instead, so the code's scale is at least `d`.
pub fn q4z_code_d(d: f32, up: bool) -> u16 {
    const MAX: u16 = 0x1EF; // exponent 30, mantissa 1111: the largest finite
    if d.is_nan() || d <= 0.0 {
        return 0;
    }
    let d = d * 256.0;
    let bits = f32_to_f16(d);
    if bits >= 0x7C00 {
        return MAX;
    }
    let code = if up {
        let c = bits >> 6;
        if f16_to_f32(c << 6) < d {
            c + 1
        } else {
            c
        }
    } else {
        (bits + 32) >> 6
    };
    code.min(MAX)
}

/// The scale of a 9-bit code.
#[inline]
pub fn q4z_d(code: u16) -> f32 {
    f16_to_f32(code << 6) * Q4Z_SHIFT
}

const _: () = {
    assert!(core::mem::size_of::<BlockQ8_0>() == DType::Q8_0.block_bytes());
    assert!(core::mem::size_of::<BlockQ4_0>() == DType::Q4_0.block_bytes());
    assert!(core::mem::size_of::<BlockQ4_1>() == DType::Q4_1.block_bytes());
    assert!(core::mem::size_of::<BlockQ5_0>() == DType::Q5_0.block_bytes());
    assert!(core::mem::size_of::<BlockQ5_1>() == DType::Q5_1.block_bytes());
    assert!(core::mem::size_of::<BlockQ4K>() == DType::Q4K.block_bytes());
    assert!(core::mem::size_of::<BlockQ5K>() == DType::Q5K.block_bytes());
    assert!(core::mem::size_of::<BlockQ6K>() == DType::Q6K.block_bytes());
    assert!(core::mem::size_of::<BlockQ4Z>() == DType::Q4Z.block_bytes());
    assert!(core::mem::size_of::<BlockIQ4NL>() == DType::IQ4NL.block_bytes());
    assert!(core::mem::size_of::<BlockIQ4XS>() == DType::IQ4XS.block_bytes());
    // Alignment 1: a cast from bytes never depends on where the bytes start.
    assert!(core::mem::align_of::<BlockQ8_0>() == 1);
    assert!(core::mem::align_of::<BlockQ4_0>() == 1);
    assert!(core::mem::align_of::<BlockQ4_1>() == 1);
    assert!(core::mem::align_of::<BlockQ5_0>() == 1);
    assert!(core::mem::align_of::<BlockQ5_1>() == 1);
    assert!(core::mem::align_of::<BlockQ4K>() == 1);
    assert!(core::mem::align_of::<BlockQ5K>() == 1);
    assert!(core::mem::align_of::<BlockQ6K>() == 1);
    assert!(core::mem::align_of::<BlockQ4Z>() == 1);
    assert!(core::mem::align_of::<BlockIQ4NL>() == 1);
    assert!(core::mem::align_of::<BlockIQ4XS>() == 1);
};

#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

#[inline]
pub fn f32_to_f16(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Round to nearest even, as PyTorch and `half` do; NaN stays NaN.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// C's `roundf` (half away from zero) without libm.
#[inline]
fn roundf(x: f32) -> f32 {
    let a = x.abs();
    if a >= 8_388_608.0 {
        return x;
    }
    let t = a as u32 as f32;
    let r = if a - t >= 0.5 { t + 1.0 } else { t };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

/// Bytes of `src` reinterpreted as blocks (alignment 1, so any start works). Panics if the
/// length is not whole blocks, which parse-time validation rules out.
fn blocks<B: Pod>(src: &[u8]) -> &[B] {
    bytemuck::cast_slice(src)
}

fn blocks_mut<B: Pod>(dst: &mut [u8]) -> &mut [B] {
    bytemuck::cast_slice_mut(dst)
}

/// Dequantizes one row (or several whole rows) of `dtype` into `dst`.
/// `src.len()` must equal `dtype.row_bytes(dst.len())`.
pub fn dequantize_row_ref(dtype: DType, src: &[u8], dst: &mut [f32]) {
    assert_eq!(
        Some(src.len()),
        dtype.row_bytes(dst.len()),
        "dequantize: size mismatch"
    );
    match dtype {
        DType::F32 => {
            for (y, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 => {
            for (y, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *y = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        DType::BF16 => {
            for (y, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *y = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        DType::Q8_0 => {
            for (b, y) in blocks::<BlockQ8_0>(src)
                .iter()
                .zip(dst.chunks_exact_mut(32))
            {
                let d = f16_to_f32(b.d);
                for (y, &q) in y.iter_mut().zip(&b.qs) {
                    *y = q as f32 * d;
                }
            }
        }
        DType::Q4_0 => {
            for (b, y) in blocks::<BlockQ4_0>(src)
                .iter()
                .zip(dst.chunks_exact_mut(32))
            {
                let d = f16_to_f32(b.d);
                for j in 0..16 {
                    y[j] = ((b.qs[j] & 0x0F) as i32 - 8) as f32 * d;
                    y[j + 16] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        DType::Q4_1 => {
            for (b, y) in blocks::<BlockQ4_1>(src)
                .iter()
                .zip(dst.chunks_exact_mut(32))
            {
                let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
                for j in 0..16 {
                    y[j] = (b.qs[j] & 0x0F) as f32 * d + m;
                    y[j + 16] = (b.qs[j] >> 4) as f32 * d + m;
                }
            }
        }
        DType::Q4Z => {
            for (b, y) in blocks::<BlockQ4Z>(src).iter().zip(dst.chunks_exact_mut(32)) {
                let (d, z) = b.scale_zero();
                for j in 0..16 {
                    y[j] = d * ((b.qs[j] & 0x0F) as f32 - z);
                    y[j + 16] = d * ((b.qs[j] >> 4) as f32 - z);
                }
            }
        }
        DType::Q5_0 => {
            for (b, y) in blocks::<BlockQ5_0>(src)
                .iter()
                .zip(dst.chunks_exact_mut(32))
            {
                let d = f16_to_f32(b.d);
                let qh = u32::from_le_bytes(b.qh);
                for j in 0..16 {
                    let h0 = ((qh >> j) << 4) & 0x10;
                    let h1 = (qh >> (j + 12)) & 0x10;
                    y[j] = (((b.qs[j] & 0x0F) as u32 | h0) as i32 - 16) as f32 * d;
                    y[j + 16] = (((b.qs[j] >> 4) as u32 | h1) as i32 - 16) as f32 * d;
                }
            }
        }
        DType::Q5_1 => {
            for (b, y) in blocks::<BlockQ5_1>(src)
                .iter()
                .zip(dst.chunks_exact_mut(32))
            {
                let (d, m) = (f16_to_f32(b.d), f16_to_f32(b.m));
                let qh = u32::from_le_bytes(b.qh);
                for j in 0..16 {
                    let h0 = ((qh >> j) << 4) & 0x10;
                    let h1 = (qh >> (j + 12)) & 0x10;
                    y[j] = ((b.qs[j] & 0x0F) as u32 | h0) as f32 * d + m;
                    y[j + 16] = ((b.qs[j] >> 4) as u32 | h1) as f32 * d + m;
                }
            }
        }
        DType::Q4K => {
            for (b, y) in blocks::<BlockQ4K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(256))
            {
                let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
                for (c, y) in y.chunks_exact_mut(64).enumerate() {
                    let q = &b.qs[32 * c..32 * c + 32];
                    let (sc1, m1) = scale_min_k4(2 * c, &b.scales);
                    let (sc2, m2) = scale_min_k4(2 * c + 1, &b.scales);
                    let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                    let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                    for l in 0..32 {
                        y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
                        y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
                    }
                }
            }
        }
        DType::Q5K => {
            for (b, y) in blocks::<BlockQ5K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(256))
            {
                let (d, dmin) = (f16_to_f32(b.d), f16_to_f32(b.dmin));
                for (c, y) in y.chunks_exact_mut(64).enumerate() {
                    let ql = &b.qs[32 * c..32 * c + 32];
                    let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
                    let (sc1, m1) = scale_min_k4(2 * c, &b.scales);
                    let (sc2, m2) = scale_min_k4(2 * c + 1, &b.scales);
                    let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                    let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                    for l in 0..32 {
                        let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
                        let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
                        y[l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
                        y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
                    }
                }
            }
        }
        DType::IQ4NL => {
            for (b, y) in blocks::<BlockIQ4NL>(src)
                .iter()
                .zip(dst.chunks_exact_mut(32))
            {
                let d = f16_to_f32(b.d);
                for j in 0..16 {
                    y[j] = d * IQ4_GRID[(b.qs[j] & 0x0F) as usize] as f32;
                    y[j + 16] = d * IQ4_GRID[(b.qs[j] >> 4) as usize] as f32;
                }
            }
        }
        DType::IQ4XS => {
            for (b, y) in blocks::<BlockIQ4XS>(src)
                .iter()
                .zip(dst.chunks_exact_mut(256))
            {
                let d = f16_to_f32(b.d);
                for (ib, y) in y.chunks_exact_mut(32).enumerate() {
                    let dl = d * b.scale(ib) as f32;
                    let qs = &b.qs[16 * ib..16 * ib + 16];
                    for j in 0..16 {
                        y[j] = dl * IQ4_GRID[(qs[j] & 0x0F) as usize] as f32;
                        y[j + 16] = dl * IQ4_GRID[(qs[j] >> 4) as usize] as f32;
                    }
                }
            }
        }
        DType::Q6K => {
            for (b, y) in blocks::<BlockQ6K>(src)
                .iter()
                .zip(dst.chunks_exact_mut(256))
            {
                let d = f16_to_f32(b.d);
                for (half_idx, y) in y.chunks_exact_mut(128).enumerate() {
                    let ql = &b.ql[64 * half_idx..64 * half_idx + 64];
                    let qh = &b.qh[32 * half_idx..32 * half_idx + 32];
                    let sc = &b.scales[8 * half_idx..8 * half_idx + 8];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * sc[is] as f32 * q1 as f32;
                        y[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
                        y[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
                        y[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
                    }
                }
            }
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K block.
#[inline]
pub fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Quantizes `src` (whole blocks) into `dst` with ggml's reference rounding, for the
/// types that have a simple reference quantizer: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
/// Q5_1, Q4Z. Returns false for other types (K-quants are the converter's job; the
/// converter also has better, searching quantizers for the others).
pub fn quantize_row_ref(dtype: DType, src: &[f32], dst: &mut [u8]) -> bool {
    assert_eq!(
        Some(dst.len()),
        dtype.row_bytes(src.len()),
        "quantize: size mismatch"
    );
    match dtype {
        DType::F32 => {
            for (b, x) in dst.chunks_exact_mut(4).zip(src) {
                b.copy_from_slice(&x.to_le_bytes());
            }
        }
        DType::F16 => {
            for (b, &x) in dst.chunks_exact_mut(2).zip(src) {
                b.copy_from_slice(&f32_to_f16(x).to_le_bytes());
            }
        }
        DType::BF16 => {
            for (b, &x) in dst.chunks_exact_mut(2).zip(src) {
                b.copy_from_slice(&f32_to_bf16(x).to_le_bytes());
            }
        }
        DType::Q8_0 => quantize_blocks(dst, src, quantize_q8_0_ref),
        DType::Q4_0 => quantize_blocks(dst, src, quantize_q4_0_ref),
        DType::Q4_1 => quantize_blocks(dst, src, quantize_q4_1_ref),
        DType::Q5_0 => quantize_blocks(dst, src, quantize_q5_0_ref),
        DType::Q5_1 => quantize_blocks(dst, src, quantize_q5_1_ref),
        DType::Q4Z => quantize_blocks(dst, src, quantize_q4_z_ref),
        DType::Q4K | DType::Q5K | DType::Q6K | DType::IQ4NL | DType::IQ4XS => return false,
    }
    true
}

/// Quantizes `src` into consecutive blocks of 32 with `quantize`.
fn quantize_blocks<B: Pod>(dst: &mut [u8], src: &[f32], quantize: fn(&[f32; 32]) -> B) {
    for (b, x) in blocks_mut::<B>(dst).iter_mut().zip(src.chunks_exact(32)) {
        *b = quantize(x.try_into().expect("32 elements"));
    }
}

/// The element of largest magnitude, with its sign (ggml's choice for symmetric types).
fn signed_absmax(x: &[f32]) -> f32 {
    let mut best = 0.0f32;
    for &v in x {
        if v.abs() > best.abs() {
            best = v;
        }
    }
    best
}

fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

pub fn quantize_q8_0_ref(x: &[f32; 32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    BlockQ8_0 {
        d: f32_to_f16(d),
        qs: core::array::from_fn(|j| roundf(x[j] * id) as i8),
    }
}

pub fn quantize_q4_0_ref(x: &[f32; 32]) -> BlockQ4_0 {
    let d = signed_absmax(x) / -8.0;
    let id = inverse(d);
    let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
    BlockQ4_0 {
        d: f32_to_f16(d),
        qs: core::array::from_fn(|j| q(x[j]) | (q(x[j + 16]) << 4)),
    }
}

pub fn quantize_q4_1_ref(x: &[f32; 32]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let q = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
    BlockQ4_1 {
        d: f32_to_f16(d),
        m: f32_to_f16(min),
        qs: core::array::from_fn(|j| q(x[j]) | (q(x[j + 16]) << 4)),
    }
}

/// Min/max q4_z: the range is widened to include 0, `d` rounded up so it covers the range.
pub fn quantize_q4_z_ref(x: &[f32; 32]) -> BlockQ4Z {
    let (min, max) = min_max(x);
    let (min, max) = (min.min(0.0), max.max(0.0));
    let code = q4z_code_d((max - min) / 15.0, true);
    let d = q4z_d(code);
    let id = inverse(d);
    let z = roundf(-min * id * 8.0).clamp(0.0, 127.0);
    let zf = z * 0.125;
    let q = |v: f32| roundf(v * id + zf).clamp(0.0, 15.0) as u8;
    BlockQ4Z {
        sd: (code << 7) | z as u16,
        qs: core::array::from_fn(|j| q(x[j]) | (q(x[j + 16]) << 4)),
    }
}

pub fn quantize_q5_0_ref(x: &[f32; 32]) -> BlockQ5_0 {
    let d = signed_absmax(x) / -16.0;
    let id = inverse(d);
    let q = |v: f32| ((v * id + 16.5) as i8).min(31) as u8;
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let (q0, q1) = (q(x[j]), q(x[j + 16]));
        qs[j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
    }
    BlockQ5_0 {
        d: f32_to_f16(d),
        qh: qh.to_le_bytes(),
        qs,
    }
}

pub fn quantize_q5_1_ref(x: &[f32; 32]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let q = |v: f32| ((v - min) * id + 0.5) as u8;
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let (q0, q1) = (q(x[j]), q(x[j + 16]));
        qs[j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
        qh |= (((q0 & 0x10) >> 4) as u32) << j;
        qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
    }
    BlockQ5_1 {
        d: f32_to_f16(d),
        m: f32_to_f16(min),
        qh: qh.to_le_bytes(),
        qs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seed: u32) -> [f32; 256] {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        core::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
    }

    #[test]
    fn roundf_matches_c() {
        for (x, r) in [
            (0.5, 1.0),
            (-0.5, -1.0),
            (1.49, 1.0),
            (2.5, 3.0),
            (-2.5, -3.0),
            (0.0, 0.0),
        ] {
            assert_eq!(roundf(x), r, "{x}");
        }
        assert_eq!(roundf(0.499_999_97), 0.0);
    }

    #[test]
    fn simple_types_round_trip_within_their_step() {
        // Worst-case error per element is half a quantization step (plus f16 scale error).
        for (dtype, levels) in [
            (DType::Q8_0, 254.0),
            (DType::Q4_0, 15.0),
            (DType::Q4_1, 15.0),
            (DType::Q4Z, 15.0),
            (DType::Q5_0, 31.0),
            (DType::Q5_1, 31.0),
            (DType::F16, 4096.0),
            (DType::BF16, 256.0),
        ] {
            for seed in 0..8 {
                let x = sample(seed);
                let mut q = [0u8; 256 * 4];
                let n = dtype.row_bytes(256).unwrap();
                assert!(quantize_row_ref(dtype, &x, &mut q[..n]));
                let mut y = [0f32; 256];
                dequantize_row_ref(dtype, &q[..n], &mut y);
                let step = 2.0 / levels;
                // Q4_0/Q5_0 map the signed extreme to -8 (-16): the opposite extreme may
                // clip by up to one step.
                let slack = if matches!(dtype, DType::Q4_0 | DType::Q5_0) {
                    1.01
                } else if dtype == DType::Q4Z {
                    // d is rounded up to a 9-bit code (< 6.25% larger) and the zero point
                    // to an eighth (an offset of at most d / 16).
                    0.6
                } else {
                    0.51
                };
                for (a, b) in x.iter().zip(&y) {
                    assert!((a - b).abs() <= step * slack + 1e-3, "{dtype}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn q4z_scale_codes() {
        assert_eq!(q4z_code_d(0.0, false), 0);
        assert_eq!(q4z_code_d(-1.0, true), 0);
        assert_eq!(q4z_code_d(f32::NAN, true), 0);
        assert_eq!(q4z_d(q4z_code_d(1e9, false)), 63488.0 / 256.0);
        // Powers of two and 4-bit mantissas are exact.
        for d in [1.0f32, 0.5, 0.0625, 1.5, 0.001953125 * 1.9375] {
            assert_eq!(q4z_d(q4z_code_d(d, false)), d);
            assert_eq!(q4z_d(q4z_code_d(d, true)), d);
        }
        let mut prev = 0.0;
        for code in 0..0x1EF {
            let d = q4z_d(code);
            assert!(d > prev || code == 0);
            prev = d;
            // Nearest: within half a step (< 3.2% of d) for normal scales; up: >= d.
            let x = d * 1.02;
            assert!(q4z_d(q4z_code_d(x, true)) >= x);
            if d > 1e-6 {
                let back = q4z_d(q4z_code_d(x, false));
                assert!((back - x).abs() <= 0.032 * x, "{x} {back}");
            }
        }
        let b = BlockQ4Z {
            sd: (q4z_code_d(0.25, false) << 7) | 60,
            qs: [0x9F; 16],
        };
        let mut y = [0f32; 32];
        dequantize_row_ref(DType::Q4Z, bytemuck::bytes_of(&b), &mut y);
        assert_eq!(y[0], 0.25 * (15.0 - 7.5));
        assert_eq!(y[16], 0.25 * (9.0 - 7.5));
    }

    #[test]
    fn q4k_and_q6k_dequantize_hand_made_blocks() {
        // Q4_K: sub-block 0 scale 2 min 1 with d=1, dmin=0.5; every nibble 3 -> 2*3 - 0.5.
        let mut b = BlockQ4K::zeroed();
        b.d = f32_to_f16(1.0);
        b.dmin = f32_to_f16(0.5);
        b.scales[0] = 2;
        b.scales[4] = 1;
        b.qs = [0x33; 128];
        let mut y = [0f32; 256];
        dequantize_row_ref(DType::Q4K, bytemuck::bytes_of(&b), &mut y);
        assert_eq!(y[0], 5.5);
        assert_eq!(y[31], 5.5);
        assert_eq!(y[32], 0.0); // sub-block 1 has scale 0, min 0

        // Q6_K: all q = 33 (ql nibble 1, qh bits 2) -> d * sc * 1.
        let mut b = BlockQ6K::zeroed();
        b.d = f32_to_f16(0.25);
        b.scales = [4; 16];
        b.ql = [0x11; 128];
        b.qh = [0xAA; 64];
        dequantize_row_ref(DType::Q6K, bytemuck::bytes_of(&b), &mut y);
        assert!(y.iter().all(|&v| v == 1.0), "{:?}", &y[..8]);
    }
}
