//! out (T, rows) = x (T, cols) · Wᵀ for a weight matrix of any dtype, split by row ranges
//! over the executor's threads. Each output element is computed by one thread in a fixed
//! order, so results do not depend on the thread count.

use super::{ActQ8, Kernels, RowDot};
use crate::exec::{Executor, SyncMutPtr};
use crate::model::Matrix;

/// Rows per work unit: large enough to amortize dispatch, small enough to balance.
const MIN_ROWS_PER_THREAD: usize = 16;

/// out[i·rows + r] = dot(W[r], x[i]) + bias[r] for i < t. `act` is scratch for the
/// quantized activations (T rows of at least `cols`).
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
    if let RowDot::Quantized(_) = dot {
        act.fill(k.quantize_q8, x, t, cols);
    }
    let act: &ActQ8 = act;
    let out_ptr = SyncMutPtr(out.as_mut_ptr());
    let threads = exec
        .threads()
        .min(rows.div_ceil(MIN_ROWS_PER_THREAD))
        .max(1);
    exec.run(threads, &|part| {
        let start = rows * part / threads;
        let end = rows * (part + 1) / threads;
        for r in start..end {
            let row = w.row(r);
            let b = bias.map_or(0.0, |b| b[r]);
            for i in 0..t {
                let v = match dot {
                    RowDot::Quantized(f) => {
                        let a = act.row(i);
                        f(row, a.qs, a.d, a.s)
                    }
                    RowDot::Float(f) => f(row, &x[i * cols..(i + 1) * cols]),
                };
                // SAFETY: i·rows + r < t·rows <= out.len(), and each (i, r) is written by
                // exactly one part: parts own disjoint row ranges.
                unsafe { out_ptr.write(i * rows + r, v + b) };
            }
        }
    });
}
