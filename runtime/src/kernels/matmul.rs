//! out (T, rows) = x (T, cols) · Wᵀ for a weight matrix of any dtype, split by row ranges
//! over the executor's threads. Each output element is computed by one thread in a fixed
//! order, so results do not depend on the thread count.

use super::{
    ActQ8, GroupFloatFn, GroupFns, Kernels, RowDot, FLOAT_TOKENS, GROUP, GROUP_TOKENS, TILE,
};
use crate::exec::{Executor, SyncMutPtr};
use crate::model::Matrix;
use ember_format::Layout;

/// Rows per work unit at least: large enough to amortize claiming a part.
const MIN_ROWS_PER_PART: usize = 32;
/// Parts per thread: a few, so a thread that is descheduled mid-matmul (a busy machine)
/// leaves parts the others can take instead of all of them waiting for it.
const PARTS_PER_THREAD: usize = 4;

/// out[i·rows + r] = dot(W[r], x[i]) + bias[r] for i < t. `act` is scratch for the
/// quantized activations (T rows of at least `cols`). Rows16 matrices go to the group
/// kernels; row-major ones use the level's 4 × 4 tiles in prefill (t > 1) and its 4-row
/// kernels in decode where it has them, and the row dot for what is left.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    k: &Kernels,
    exec: &dyn Executor,
    w: &Matrix,
    bias: Option<&[f32]>,
    x: &[f32],
    t: usize,
    out: &mut [f32],
    act: &mut ActQ8,
) {
    let (rows, cols) = (w.rows, w.cols);
    assert!(x.len() >= t * cols && out.len() >= t * rows);
    if w.layout == Layout::Rows16 {
        return matmul_many(k, exec, [(w, bias, out)], x, t, act);
    }
    let dot = k.row_dot(w.dtype);
    if let RowDot::Quantized(..) = dot {
        act.fill(k.quantize_q8, x, t, cols);
    }
    let act: &ActQ8 = act;
    let parts = parts_for(exec, rows);
    let out_ptr = SyncMutPtr(out.as_mut_ptr());
    let row_bytes = w.row_bytes();
    let token = |i: usize| &x[i * cols..(i + 1) * cols];
    exec.run(parts, &|part| {
        // Row ranges start on tile boundaries so tiles never straddle two parts.
        let start = (rows * part / parts) / TILE * TILE;
        let end = if part + 1 == parts {
            rows
        } else {
            (rows * (part + 1) / parts) / TILE * TILE
        };
        let put = |r: usize, i: usize, v: f32| {
            let b = bias.map_or(0.0, |b| b[r]);
            // SAFETY: i·rows + r < t·rows <= out.len(), and each (i, r) is written by
            // exactly one part: parts own disjoint row ranges.
            unsafe { out_ptr.write(i * rows + r, v + b) };
        };
        // Decode (one token): groups of TILE rows at once where the level has a kernel.
        if let (1, RowDot::Quantized(_, _, Some(rows_fn))) = (t, dot) {
            let a = act.row(0);
            let grouped_end = start + (end - start) / TILE * TILE;
            for r in (start..grouped_end).step_by(TILE) {
                let v = rows_fn(
                    &w.data[r * row_bytes..(r + TILE) * row_bytes],
                    row_bytes,
                    &a,
                );
                for (dr, &x) in v.iter().enumerate() {
                    put(r + dr, 0, x);
                }
            }
            if let RowDot::Quantized(f, ..) = dot {
                for r in grouped_end..end {
                    put(r, 0, f(w.row(r), a.qs, a.d, a.s));
                }
            }
            return;
        }
        // Tiles: full groups of TILE rows × TILE tokens.
        let tiled_tokens = if t >= 2 { t / TILE * TILE } else { 0 };
        let has_tile = !matches!(dot, RowDot::Quantized(_, None, _) | RowDot::Float(_, None));
        let tiled_rows_end = if has_tile && tiled_tokens > 0 {
            start + (end - start) / TILE * TILE
        } else {
            start
        };
        // Tokens outer: the 4 tokens' activations stay in L1 while this part's weight rows
        // stream past (f32 activations are the larger operand; rows outer re-read them all
        // from L2 for every 4 rows).
        for i in (0..tiled_tokens).step_by(TILE) {
            for r in (start..tiled_rows_end).step_by(TILE) {
                let wr = &w.data[r * row_bytes..(r + TILE) * row_bytes];
                let tile = match dot {
                    RowDot::Quantized(_, Some(f), _) => {
                        f(wr, row_bytes, &core::array::from_fn(|j| act.row(i + j)))
                    }
                    RowDot::Float(_, Some(f)) => {
                        f(wr, row_bytes, &core::array::from_fn(|j| token(i + j)))
                    }
                    _ => unreachable!("tiled only when a tile exists"),
                };
                for (dr, row) in tile.iter().enumerate() {
                    for (di, &v) in row.iter().enumerate() {
                        put(r + dr, i + di, v);
                    }
                }
            }
        }
        // Everything else, one row dot at a time: rows outside full tiles (all tokens), and
        // the tiled rows' leftover tokens.
        for r in start..end {
            let first = if r < tiled_rows_end { tiled_tokens } else { 0 };
            let row = w.row(r);
            for i in first..t {
                let v = match dot {
                    RowDot::Quantized(f, ..) => {
                        let a = act.row(i);
                        f(row, a.qs, a.d, a.s)
                    }
                    RowDot::Float(f, _) => f(row, token(i)),
                };
                put(r, i, v);
            }
        }
    });
}

fn parts_for(exec: &dyn Executor, rows: usize) -> usize {
    if exec.threads() > 1 {
        (exec.threads() * PARTS_PER_THREAD)
            .min(rows / MIN_ROWS_PER_PART)
            .max(1)
    } else {
        1
    }
}

/// One matrix of a fused multiplication: weights, bias, output (T, rows).
pub type Product<'o, 'w> = (&'o Matrix<'w>, Option<&'o [f32]>, &'o mut [f32]);

/// Several matrices that share their input (attention's q, k, v; the FFN's gate and up),
/// in one dispatch over the threads with the input quantized once. Falls back to one
/// [`matmul`] each unless all are rows16 of one dtype.
pub fn matmul_many<const N: usize>(
    k: &Kernels,
    exec: &dyn Executor,
    products: [Product; N],
    x: &[f32],
    t: usize,
    act: &mut ActQ8,
) {
    let first = products[0].0;
    let fused = products.iter().all(|(w, ..)| {
        w.layout == Layout::Rows16 && w.dtype == first.dtype && w.cols == first.cols
    });
    let cols = first.cols;
    assert!(x.len() >= t * cols);
    match (k.group(first.dtype), k.group_float(first.dtype)) {
        (Some(g), _) if fused => {
            act.fill(k.quantize_q8, x, t, cols);
            matmul_rows16(Group::Quantized(g, act), exec, products, t);
        }
        (_, Some(f)) if fused => matmul_rows16(Group::Float(f, x, cols), exec, products, t),
        _ => {
            for (w, bias, out) in products {
                // A lone rows16 matrix always takes the fused path: no recursion.
                assert!(
                    w.layout == Layout::RowMajor || N > 1,
                    "rows16 {} has no kernel",
                    w.dtype
                );
                matmul(k, exec, w, bias, x, t, out, act);
            }
        }
    }
}

/// Parts to split `total` rows16 groups into: whole groups per part, twice as many parts as
/// for row-major matrices (a group is already a large unit, and finer parts leave less idle
/// time at the end of a decode step's short matmuls).
fn group_parts(exec: &dyn Executor, total: usize) -> usize {
    if exec.threads() > 1 {
        (exec.threads() * 2 * PARTS_PER_THREAD).min(total).max(1)
    } else {
        1
    }
}

/// A rows16 kernel and its input: quantized activations, or f32 tokens (T, cols).
#[derive(Clone, Copy)]
enum Group<'a, 'b> {
    Quantized(GroupFns, &'a ActQ8<'b>),
    Float(GroupFloatFn, &'a [f32], usize),
}

/// Rows16 matrices: the parts split the groups of all N matrices, in order, and each group
/// is streamed once against all T tokens (a few at a time) while its weights sit in L1.
fn matmul_rows16<const N: usize>(g: Group, exec: &dyn Executor, products: [Product; N], t: usize) {
    // Per matrix: (weights, bias, output, bytes per group, first global group).
    let mut total = 0;
    let mats = products.map(|(w, bias, out)| {
        assert!(out.len() >= t * w.rows && w.rows % GROUP == 0);
        let groups = w.rows / GROUP;
        let m = (
            w,
            bias,
            SyncMutPtr(out.as_mut_ptr()),
            w.data.len() / groups.max(1),
            total,
        );
        total += groups;
        m
    });
    let parts = group_parts(exec, total);
    exec.run(parts, &|part| {
        for global in total * part / parts..total * (part + 1) / parts {
            // The matrix holding this group: the last one starting at or before it.
            let Some(&(w, bias, out, group_bytes, first)) =
                mats.iter().rev().find(|m| m.4 <= global)
            else {
                continue;
            };
            let (gi, rows) = (global - first, w.rows);
            let put = |i: usize, o: &[f32; GROUP]| {
                for (r, &v) in o.iter().enumerate() {
                    let r = gi * GROUP + r;
                    let b = bias.map_or(0.0, |b| b[r]);
                    // SAFETY: i·rows + r < t·rows <= out.len(), and each (i, r) is written
                    // by exactly one part: parts own disjoint groups.
                    unsafe { out.write(i * rows + r, v + b) };
                }
            };
            let wg = &w.data[gi * group_bytes..(gi + 1) * group_bytes];
            match g {
                Group::Quantized(g, act) => {
                    let mut i = 0;
                    while i + GROUP_TOKENS <= t {
                        let o = (g.gemm)(wg, &core::array::from_fn(|j| act.row(i + j)));
                        for (j, o) in o.iter().enumerate() {
                            put(i + j, o);
                        }
                        i += GROUP_TOKENS;
                    }
                    for i in i..t {
                        put(i, &(g.gemv)(wg, &act.row(i)));
                    }
                }
                Group::Float(f, x, cols) => {
                    let mut o = [[0f32; GROUP]; FLOAT_TOKENS];
                    for i in (0..t).step_by(FLOAT_TOKENS) {
                        let n = FLOAT_TOKENS.min(t - i);
                        let xs: [&[f32]; FLOAT_TOKENS] = core::array::from_fn(|j| {
                            let tok = (i + j).min(t - 1);
                            &x[tok * cols..(tok + 1) * cols]
                        });
                        f(wg, &xs[..n], &mut o[..n]);
                        for (j, o) in o[..n].iter().enumerate() {
                            put(i + j, o);
                        }
                    }
                }
            }
        }
    });
}

/// Most matrices [`matvec_rows16_each`] takes in one dispatch.
pub const MAX_EACH: usize = 128;

/// One token through several rows16 matrices of one block dtype, each with its own input:
/// `out_j (rows_j) = W_j · x_{row_j}`, where the inputs are rows of `act` (quantized by the
/// caller). One dispatch over the threads for all of them: decode's chosen experts, whose
/// 2k or k small products would otherwise each pay a dispatch. Returns false, computing
/// nothing, where it does not apply (another layout or a float dtype, more than
/// [`MAX_EACH`] matrices); the caller then multiplies them one by one.
pub fn matvec_rows16_each(
    k: &Kernels,
    exec: &dyn Executor,
    items: &mut [(&Matrix, usize, &mut [f32])],
    act: &ActQ8,
) -> bool {
    let Some(first) = items.first() else {
        return true;
    };
    let dtype = first.0.dtype;
    let (Some(g), true) = (
        k.group(dtype),
        items.len() <= MAX_EACH
            && items.iter().all(|(w, _, out)| {
                w.layout == Layout::Rows16
                    && w.dtype == dtype
                    && w.rows % GROUP == 0
                    && out.len() >= w.rows
            }),
    ) else {
        return false;
    };
    // Per matrix: (weights, input row, output, bytes per group, first global group).
    let mut mats = [(
        &Matrix::EMPTY,
        0usize,
        SyncMutPtr(core::ptr::null_mut()),
        0usize,
        0usize,
    ); MAX_EACH];
    let mut total = 0;
    for (m, (w, row, out)) in mats.iter_mut().zip(items.iter_mut()) {
        let groups = w.rows / GROUP;
        *m = (
            *w,
            *row,
            SyncMutPtr(out.as_mut_ptr()),
            w.data.len() / groups.max(1),
            total,
        );
        total += groups;
    }
    let mats = &mats[..items.len()];
    let parts = group_parts(exec, total);
    exec.run(parts, &|part| {
        for global in total * part / parts..total * (part + 1) / parts {
            let Some(&(w, row, out, group_bytes, first)) =
                mats.iter().rev().find(|m| m.4 <= global)
            else {
                continue;
            };
            let gi = global - first;
            let wg = &w.data[gi * group_bytes..(gi + 1) * group_bytes];
            let o = (g.gemv)(wg, &act.row(row));
            for (r, &v) in o.iter().enumerate() {
                // SAFETY: gi·GROUP + r < rows <= out.len() (checked above), and each group
                // of each matrix is written by exactly one part.
                unsafe { out.write(gi * GROUP + r, v) };
            }
        }
    });
    true
}
