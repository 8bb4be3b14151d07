//! Reference rows16 kernels: each row's blocks are rebuilt in row-major form and met with the
//! reference block dot, block by block, so the result is the row-major reference's sum.
// Rows and tokens index several arrays at once.
#![allow(clippy::needless_range_loop)]

use super::{check, GROUP, GROUP_TOKENS};
use crate::kernels::dot::scalar as dot;
use crate::kernels::{ActRow, DotQ8Fn};
use ember_format::{rows16, DType};

/// One group against T tokens by rebuilding each row's block and meeting it with the
/// reference row dot `f`.
fn group_with<const T: usize>(
    dtype: DType,
    f: DotQ8Fn,
    w: &[u8],
    a: &[ActRow; T],
) -> [[f32; GROUP]; T] {
    let nb = check(dtype, w, a);
    let tb = w.len() / nb.max(1);
    let bb = tb / GROUP;
    // Activation blocks (of 32) per weight block.
    let per = dtype.block_len() / 32;
    let mut out = [[0f32; GROUP]; T];
    // Plain bytes: the block structs have alignment 1.
    let mut buf = [0u8; rows16::MAX_BLOCK_BYTES];
    let block: &mut [u8] = &mut buf;
    for b in 0..nb {
        let tile = &w[b * tb..(b + 1) * tb];
        let acts = per * b..per * (b + 1);
        for r in 0..GROUP {
            rows16::block_of_row(dtype, tile, r, block);
            for t in 0..T {
                let x = &a[t];
                out[t][r] += f(
                    &block[..bb],
                    &x.qs[32 * acts.start..32 * acts.end],
                    &x.d[acts.clone()],
                    &x.s[acts.clone()],
                );
            }
        }
    }
    out
}

macro_rules! reference {
    ($gemv:ident, $gemm:ident, $dtype:expr, $dot:path) => {
        pub fn $gemv(w: &[u8], a: &ActRow) -> [f32; GROUP] {
            group_with::<1>($dtype, $dot, w, &[*a])[0]
        }

        pub fn $gemm(w: &[u8], a: &[ActRow; GROUP_TOKENS]) -> [[f32; GROUP]; GROUP_TOKENS] {
            group_with($dtype, $dot, w, a)
        }
    };
}

reference!(gemv_q8_0, gemm_q8_0, DType::Q8_0, dot::dot_q8_0);
reference!(gemv_q4_0, gemm_q4_0, DType::Q4_0, dot::dot_q4_0);
reference!(gemv_q4_1, gemm_q4_1, DType::Q4_1, dot::dot_q4_1);
reference!(gemv_q4_z, gemm_q4_z, DType::Q4Z, dot::dot_q4_z);
reference!(gemv_q5_0, gemm_q5_0, DType::Q5_0, dot::dot_q5_0);
reference!(gemv_q5_1, gemm_q5_1, DType::Q5_1, dot::dot_q5_1);
reference!(gemv_q4_k, gemm_q4_k, DType::Q4K, dot::dot_q4_k);
reference!(gemv_q5_k, gemm_q5_k, DType::Q5K, dot::dot_q5_k);
reference!(gemv_q6_k, gemm_q6_k, DType::Q6K, dot::dot_q6_k);
reference!(gemv_iq4_nl, gemm_iq4_nl, DType::IQ4NL, dot::dot_iq4_nl);
reference!(gemv_iq4_xs, gemm_iq4_xs, DType::IQ4XS, dot::dot_iq4_xs);

/// Reference float groups: each element converted and multiplied in column order.
fn float_with(dtype: DType, w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]) {
    let cols = super::check_float(dtype, w, x, out);
    let e = w.len() / (GROUP * cols.max(1));
    let mut col = [0f32; GROUP];
    for o in out.iter_mut() {
        *o = [0.0; GROUP];
    }
    for k in 0..cols {
        ember_format::blocks::dequantize_row_ref(
            dtype,
            &w[k * GROUP * e..(k + 1) * GROUP * e],
            &mut col,
        );
        for (o, xt) in out.iter_mut().zip(x) {
            for r in 0..GROUP {
                o[r] += col[r] * xt[k];
            }
        }
    }
}

pub fn group_f32(w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]) {
    float_with(DType::F32, w, x, out)
}

pub fn group_f16(w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]) {
    float_with(DType::F16, w, x, out)
}

pub fn group_bf16(w: &[u8], x: &[&[f32]], out: &mut [[f32; GROUP]]) {
    float_with(DType::BF16, w, x, out)
}
