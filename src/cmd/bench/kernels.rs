//! Kernel throughput against the roofline: GEMV (one token, weights streamed from memory)
//! in GB/s against measured read bandwidth, and GEMM (a prompt's worth of tokens against a
//! cache-resident matrix) in GOP/s against measured peak compute.

use std::time::Instant;

use ember_format::blocks::{f32_to_f16, quantize_row_ref};
use ember_format::{rows16, DType, Layout};
use ember_runtime::exec::Executor;
use ember_runtime::kernels::matmul::matmul;
use ember_runtime::kernels::{ActQ8Buf, Kernels, Level, MATMUL_DTYPES};
use ember_runtime::model::Matrix;
use serde_json::json;

use super::roofline::{peak_compute, BandwidthProbe};
use super::{median, Args};
use crate::cmd::CmdResult;

/// GEMV matrices: 512 MiB of weights, beyond the last-level cache.
const GEMV_BYTES: usize = 512 << 20;
/// GEMM: a 1536 x 1024 matrix against 64 tokens (1024 columns: whole 256-weight
/// super-blocks, so every dtype runs; SmolLM2's FFN is 1536 x 576).
const GEMM_SHAPE: (usize, usize, usize) = (1536, 1024, 64);

/// A matrix of `dtype` with `cols` columns and about `bytes` bytes of plausible values.
fn matrix_data(dtype: DType, rows: usize, cols: usize) -> Vec<u8> {
    let x: Vec<f32> = (0..cols)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    let mut row = vec![0u8; dtype.row_bytes(cols).unwrap_or(0)];
    if !quantize_row_ref(dtype, &x, &mut row) {
        // No reference quantizer (K-quants, IQ4): patterned quants with f16 scales of 0.1
        // where each block keeps them (the kernels' speed does not depend on the values).
        for (i, b) in row.iter_mut().enumerate() {
            *b = (i * 37 + 11) as u8;
        }
        let scale = f32_to_f16(0.1).to_le_bytes();
        let bb = dtype.block_bytes();
        for block in row.chunks_mut(bb) {
            match dtype {
                DType::Q6K => block[bb - 2..].copy_from_slice(&scale),
                _ => {
                    block[..2].copy_from_slice(&scale);
                    block[2..4].copy_from_slice(&scale);
                }
            }
        }
    }
    let mut data = Vec::with_capacity(row.len() * rows);
    for _ in 0..rows {
        data.extend_from_slice(&row);
    }
    data
}

fn time_matmul(k: &Kernels, exec: &dyn Executor, w: &Matrix, t: usize, reps: usize) -> f64 {
    let x: Vec<f32> = (0..t * w.cols)
        .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
        .collect();
    let mut out = vec![0f32; t * w.rows];
    let mut act = ActQ8Buf::new(t, w.cols);
    let mut act = act.view();
    matmul(k, exec, w, None, &x, t, &mut out, &mut act);
    let mut secs = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        matmul(k, exec, w, None, &x, t, &mut out, &mut act);
        secs.push(start.elapsed().as_secs_f64());
    }
    median(&secs)
}

pub fn run(args: &Args, threads: usize) -> CmdResult {
    let levels: Vec<Kernels> = Level::ALL
        .into_iter()
        .filter_map(Kernels::for_level)
        .collect();
    let exec = ember_runtime::pool::executor(threads);
    if !args.json {
        eprintln!("measuring memory bandwidth and peak compute ...");
    }
    let mut probe = BandwidthProbe::new(threads);
    probe.measure();
    let (fma_peak, int8_peak) = peak_compute(threads);

    let mut rows_out = Vec::new();
    let chosen = |d: &DType| args.dtypes.is_empty() || args.dtypes.contains(d);
    for dtype in MATMUL_DTYPES.into_iter().filter(chosen) {
        // A probe round between dtypes: the bandwidth and the GEMVs see the same machine.
        probe.measure();
        let cols = 4096;
        let rows = GEMV_BYTES / dtype.row_bytes(cols).unwrap_or(1) / 16 * 16;
        let (gr, gc, gt) = GEMM_SHAPE;
        // Row-major, and the converter's rows16 layout where it applies.
        let mut layouts = vec![(
            Layout::RowMajor,
            matrix_data(dtype, rows, cols),
            matrix_data(dtype, gr, gc),
        )];
        if rows16::supports(dtype, &[rows, cols]) {
            let (big, small) = (&layouts[0].1, &layouts[0].2);
            let mut big16 = vec![0u8; big.len()];
            rows16::interleave(dtype, rows, cols, big, &mut big16);
            let mut small16 = vec![0u8; small.len()];
            rows16::interleave(dtype, gr, gc, small, &mut small16);
            layouts.push((Layout::Rows16, big16, small16));
        }
        for (layout, big, small) in &layouts {
            for k in &levels {
                let w = Matrix {
                    dtype,
                    layout: *layout,
                    rows,
                    cols,
                    data: big,
                };
                let secs = time_matmul(k, &*exec, &w, 1, args.reps.max(3));
                let gemv_gbs = big.len() as f64 / secs / 1e9;
                let w = Matrix {
                    dtype,
                    layout: *layout,
                    rows: gr,
                    cols: gc,
                    data: small,
                };
                let secs = time_matmul(k, &*exec, &w, gt, args.reps.max(3));
                let gemm_gops = 2.0 * (gr * gc * gt) as f64 / secs / 1e9;
                let peak = if dtype.is_quantized() {
                    int8_peak
                } else {
                    fma_peak
                };
                rows_out.push(json!({
                    "dtype": dtype.name(),
                    "layout": layout.name(),
                    "level": k.level.name(),
                    "gemv_gb_s": gemv_gbs,
                    "gemv_gb_s_vs_bandwidth": gemv_gbs,
                    "gemm_gop_s": gemm_gops,
                    "gemm_pct_of_peak": peak.map(|p| 100.0 * gemm_gops / p),
                }));
            }
        }
    }
    probe.measure();
    let bw = probe.median();
    let (bw_lo, bw_hi) = probe.spread();
    for r in &mut rows_out {
        let gbs = r["gemv_gb_s_vs_bandwidth"].take().as_f64().unwrap_or(0.0);
        let obj = r.as_object_mut().expect("a row object");
        obj.remove("gemv_gb_s_vs_bandwidth");
        obj.insert("gemv_pct_of_bandwidth".into(), json!(100.0 * gbs / bw));
    }
    if args.json {
        let out = json!({
            "threads": threads,
            "read_bandwidth_gb_s": bw,
            "read_bandwidth_rounds_gb_s": probe.rounds(),
            "fma_peak_gflop_s": fma_peak,
            "int8_peak_gop_s": int8_peak,
            "kernels": rows_out,
        });
        println!("{out}");
        return Ok(());
    }
    let fmt_peak = |p: Option<f64>| p.map_or("not measured".to_string(), |v| format!("{v:.0}"));
    println!("{threads} threads: read bandwidth {bw:.1} GB/s (median of {} rounds between the kernels, {bw_lo:.1}-{bw_hi:.1}), f32 FMA peak {} GFLOP/s, int8 peak {} GOP/s", probe.rounds().len(), fmt_peak(fma_peak), fmt_peak(int8_peak));
    println!("GEMV: {} MiB matrix x 1 token (memory-bound); GEMM: {}x{} matrix x {} tokens (compute-bound)", GEMV_BYTES >> 20, GEMM_SHAPE.0, GEMM_SHAPE.1, GEMM_SHAPE.2);
    println!(
        "{:<6} {:<9} {:<7} {:>10} {:>10} {:>11} {:>9}",
        "dtype", "layout", "level", "GEMV GB/s", "% of BW", "GEMM GOP/s", "% of peak"
    );
    for r in &rows_out {
        println!(
            "{:<6} {:<9} {:<7} {:>10.1} {:>9.0}% {:>11.1} {:>8}",
            r["dtype"].as_str().unwrap_or(""),
            r["layout"].as_str().unwrap_or(""),
            r["level"].as_str().unwrap_or(""),
            r["gemv_gb_s"].as_f64().unwrap_or(0.0),
            r["gemv_pct_of_bandwidth"].as_f64().unwrap_or(0.0),
            r["gemm_gop_s"].as_f64().unwrap_or(0.0),
            r["gemm_pct_of_peak"]
                .as_f64()
                .map_or("-".to_string(), |p| format!("{p:.0}%")),
        );
    }
    Ok(())
}
