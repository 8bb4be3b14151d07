//! out (T, rows) = x (T, cols) · Wᵀ for a weight matrix of any dtype, split by row ranges
//! over the executor's threads. Each output element is computed by one thread in a fixed
//! order, so results do not depend on the thread count.

use super::{ActQ8, GroupFns, Kernels, RowDot, GROUP, GROUP_TOKENS, TILE};
use crate::exec::{Executor, SyncMutPtr};
use crate::model::Matrix;
use ember_format::Layout;

/// Rows per work unit at least: large enough to amortize claiming a part.
const MIN_ROWS_PER_PART: usize = 32;
/// Parts per thread: a few, so a thread that is descheduled mid-matmul (a busy machine)
/// leaves parts the others can take instead of all of them waiting for it.
const PARTS_PER_THREAD: usize = 4;

/// out[i·rows + r] = dot(W[r], x[i]) + bias[r] for i < t. `act` is scratch for the
/// quantized activations (T rows of at least `cols`). Prefill (t > 1) uses the level's
/// 4 × 4 tiles where it has them; leftover rows and tokens use the row dot.
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
    let dot = k.row_dot(w.dtype);
    if let RowDot::Quantized(..) = dot {
        act.fill(k.quantize_q8, x, t, cols);
    }
    let act: &ActQ8 = act;
    let parts = parts_for(exec, rows);
    if let (Layout::Rows16, Some(g)) = (w.layout, k.group(w.dtype)) {
        return matmul_rows16(g, exec, w, bias, t, out, act, parts);
    }
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
        for r in (start..tiled_rows_end).step_by(TILE) {
            let wr = &w.data[r * row_bytes..(r + TILE) * row_bytes];
            for i in (0..tiled_tokens).step_by(TILE) {
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

/// A rows16 matrix: each part takes whole groups of 16 rows and streams each group once
/// against all T tokens (4 at a time, then one at a time), so the group's weights stay in
/// L1 while the tokens pass.
#[allow(clippy::too_many_arguments)]
fn matmul_rows16(
    g: GroupFns,
    exec: &dyn Executor,
    w: &Matrix,
    bias: Option<&[f32]>,
    t: usize,
    out: &mut [f32],
    act: &ActQ8,
    parts: usize,
) {
    let rows = w.rows;
    let groups = rows / GROUP;
    let group_bytes = w.data.len() / groups;
    let out_ptr = SyncMutPtr(out.as_mut_ptr());
    exec.run(parts, &|part| {
        let put = |r: usize, i: usize, v: f32| {
            let b = bias.map_or(0.0, |b| b[r]);
            // SAFETY: i·rows + r < t·rows <= out.len(), and each (i, r) is written by
            // exactly one part: parts own disjoint groups of rows.
            unsafe { out_ptr.write(i * rows + r, v + b) };
        };
        for gi in groups * part / parts..groups * (part + 1) / parts {
            let wg = &w.data[gi * group_bytes..(gi + 1) * group_bytes];
            let mut i = 0;
            while i + GROUP_TOKENS <= t {
                let o = (g.gemm)(wg, &core::array::from_fn(|j| act.row(i + j)));
                for (j, token) in o.iter().enumerate() {
                    for (r, &v) in token.iter().enumerate() {
                        put(gi * GROUP + r, i + j, v);
                    }
                }
                i += GROUP_TOKENS;
            }
            for i in i..t {
                for (r, &v) in (g.gemv)(wg, &act.row(i)).iter().enumerate() {
                    put(gi * GROUP + r, i, v);
                }
            }
        }
    });
}
