//! Criterion benches of the matmul kernels, per weight dtype, layout and CPU level, with
//! throughput in bytes of weights streamed (GEMV, decode) and in elements multiplied (GEMM,
//! prefill). Ids are `gemv/q4_0.rows16/avx512` (the converter's layout) and
//! `gemv/q4_0.row-major/avx512`.
//!
//!   cargo bench --bench kernels
//!   cargo bench --bench kernels -- 'gemv/q4_0.rows16'

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ember_format::blocks::quantize_row_ref;
use ember_format::{rows16, DType, Layout};
use ember_runtime::exec::Serial;
use ember_runtime::kernels::matmul::matmul;
use ember_runtime::kernels::{ActQ8Buf, Kernels, Level};
use ember_runtime::model::Matrix;

const DTYPES: [DType; 9] = [
    DType::Q4_0,
    DType::Q4K,
    DType::Q6K,
    DType::Q4_1,
    DType::Q4Z,
    DType::Q8_0,
    DType::F16,
    DType::BF16,
    DType::F32,
];

fn matrix(dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    let mut data = Vec::new();
    let mut row = vec![0u8; dtype.row_bytes(cols).unwrap()];
    for r in 0..rows {
        let x: Vec<f32> = (0..cols)
            .map(|i| (((i * 31 + r * 7) % 97) as f32 - 48.0) / 48.0)
            .collect();
        quantize_row_ref(dtype, &x, &mut row);
        data.extend_from_slice(&row);
    }
    data
}

fn bench(c: &mut Criterion, group: &str, rows: usize, cols: usize, tokens: usize) {
    let mut g = c.benchmark_group(group);
    g.sample_size(20);
    for dtype in DTYPES {
        let row_major = matrix(dtype, rows, cols);
        let mut interleaved = vec![0u8; row_major.len()];
        rows16::interleave(dtype, rows, cols, &row_major, &mut interleaved);
        let x: Vec<f32> = (0..tokens * cols)
            .map(|i| ((i % 13) as f32 - 6.0) / 6.0)
            .collect();
        let mut out = vec![0f32; tokens * rows];
        let mut act = ActQ8Buf::new(tokens, cols);
        if tokens == 1 {
            g.throughput(Throughput::Bytes(row_major.len() as u64));
        } else {
            g.throughput(Throughput::Elements((rows * cols * tokens) as u64));
        }
        for (layout, data) in [
            (Layout::Rows16, &interleaved),
            (Layout::RowMajor, &row_major),
        ] {
            let w = Matrix {
                dtype,
                layout,
                rows,
                cols,
                data,
            };
            let id = format!("{}.{}", dtype.name(), layout.name());
            for level in Level::ALL {
                let Some(k) = Kernels::for_level(level) else {
                    continue;
                };
                g.bench_with_input(BenchmarkId::new(&id, level.name()), &k, |b, k| {
                    b.iter(|| matmul(k, &Serial, &w, None, &x, tokens, &mut out, &mut act.view()))
                });
            }
        }
    }
    g.finish();
}

fn kernels(c: &mut Criterion) {
    // Decode: SmolLM2's FFN down-projection shape (its 1536 columns are whole K-quant
    // super-blocks), one token (weights stream from L2).
    bench(c, "gemv", 576, 1536, 1);
    // Prefill: the same matrix against 64 tokens.
    bench(c, "gemm", 576, 1536, 64);
}

criterion_group!(benches, kernels);
criterion_main!(benches);
