//! Every SIMD kernel against the scalar reference on random data at lengths that hit every
//! tail, and matmul results independent of the thread count.
//!
//! Levels this CPU cannot run are reported as `SKIPPED: kernel level X (this CPU lacks it)`;
//! set EMBER_REQUIRE_LEVELS=avx2,avx512 (scripts/test.sh does, per architecture) to make a
//! skipped level a failure. A kernel a level has no entry for by design (the prefill tiles
//! and multi-row kernels some levels do without) says `SKIPPED: ... none by design`, and a
//! SIMD level whose table entry is the scalar reference fails instead of comparing scalar
//! with scalar.

use ember_format::blocks::{f32_to_f16, quantize_row_ref};
use ember_format::{rows16, DType, Layout};
use ember_runtime::exec::{Executor, Serial};
use ember_runtime::kernels::matmul::matmul;
use ember_runtime::kernels::{ActQ8Buf, Kernels, Level, RowDot};
use ember_runtime::model::Matrix;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

const LENGTHS: [usize; 17] = [
    1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 67, 127, 129, 255, 1023,
];

/// The SIMD levels to compare, failing for required levels this machine lacks.
fn levels() -> Vec<Kernels> {
    let required: Vec<String> = std::env::var("EMBER_REQUIRE_LEVELS")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut out = Vec::new();
    for level in Level::ALL.into_iter().filter(|&l| l != Level::Scalar) {
        match Kernels::for_level(level) {
            Some(k) => out.push(k),
            None => {
                assert!(
                    !required.iter().any(|r| r == level.name()),
                    "required kernel level {} is not supported here",
                    level.name()
                );
                eprintln!("SKIPPED: kernel level {} (this CPU lacks it)", level.name());
            }
        }
    }
    out
}

/// Fails if a SIMD level's kernel is the scalar reference itself: comparing it with the
/// scalar kernel would pass without testing anything.
fn assert_not_scalar(k: &Kernels, what: &str, simd: usize, scalar: usize) {
    assert!(
        k.level == Level::Scalar || simd != scalar,
        "{} {what}: the table holds the scalar reference, so this test would compare scalar \
         with scalar (every dtype has a SIMD kernel at every level)",
        k.level.name()
    );
}

/// A kernel `k.level` has no entry for by design (not a CPU it cannot run on).
fn skipped_by_design(k: &Kernels, what: &str, instead: &str) {
    eprintln!(
        "SKIPPED: {what} at {}: none by design ({instead}; this CPU has the level)",
        k.level.name()
    );
}

/// A random row of `n` elements in `dtype` (n a multiple of the block length).
fn random_row(rng: &mut Rng, dtype: DType, n: usize) -> Vec<u8> {
    let x: Vec<f32> = (0..n).map(|_| rng.f32() * 2.0).collect();
    let mut out = vec![0u8; dtype.row_bytes(n).unwrap()];
    if !quantize_row_ref(dtype, &x, &mut out) {
        // K-quants: random quants and scales, with sane f16 super-block scales.
        for b in out.iter_mut() {
            *b = rng.next() as u8;
        }
        let bb = dtype.block_bytes();
        for blk in out.chunks_mut(bb) {
            let d = f32_to_f16(0.01 + rng.f32().abs() * 0.05).to_le_bytes();
            let m = f32_to_f16(rng.f32().abs() * 0.05).to_le_bytes();
            match dtype {
                DType::Q6K => blk[bb - 2..].copy_from_slice(&d),
                _ => {
                    blk[..2].copy_from_slice(&d);
                    blk[2..4].copy_from_slice(&m);
                }
            }
        }
    }
    out
}

#[test]
fn quantize_q8_is_bit_identical_to_scalar() {
    let mut rng = Rng(7);
    let scalar = Kernels::scalar();
    for k in levels() {
        for nb in [1usize, 2, 3, 7, 18] {
            let mut x: Vec<f32> = (0..32 * nb).map(|_| rng.f32() * 3.0).collect();
            x[0] = 0.0;
            if nb > 2 {
                // An all-zero block and exact halves.
                x[32..64].iter_mut().for_each(|v| *v = 0.0);
                x[64] = 127.0;
                x[65] = 0.5;
                x[66] = -1.5;
            }
            let run = |q: ember_runtime::kernels::QuantizeFn| {
                let (mut qs, mut d, mut s) = (vec![0i8; 32 * nb], vec![0f32; nb], vec![0f32; nb]);
                q(&x, &mut qs, &mut d, &mut s);
                (qs, d, s)
            };
            assert_not_scalar(
                &k,
                "quantize_q8",
                k.quantize_q8 as usize,
                scalar.quantize_q8 as usize,
            );
            assert_eq!(
                run(k.quantize_q8),
                run(scalar.quantize_q8),
                "{}",
                k.level.name()
            );
        }
    }
}

#[test]
fn dots_match_scalar_for_every_dtype_and_tail() {
    let mut rng = Rng(42);
    let scalar = Kernels::scalar();
    for k in levels() {
        for dtype in DType::ALL {
            for &len in &LENGTHS {
                let n = if dtype.is_quantized() {
                    len * dtype.block_len() / 32 * 32
                } else {
                    len
                };
                let n = n.max(dtype.block_len());
                if n > 8192 {
                    continue;
                }
                let w = random_row(&mut rng, dtype, n);
                let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
                let (got, want) = match (k.row_dot(dtype), scalar.row_dot(dtype)) {
                    (RowDot::Quantized(f, ..), RowDot::Quantized(g, ..)) => {
                        assert_not_scalar(&k, &format!("{dtype} dot"), f as usize, g as usize);
                        let mut act_buf = ActQ8Buf::new(1, n);
                        let mut act = act_buf.view();
                        act.fill(scalar.quantize_q8, &x, 1, n);
                        let a = act.row(0);
                        (f(&w, a.qs, a.d, a.s), g(&w, a.qs, a.d, a.s))
                    }
                    (RowDot::Float(f, _), RowDot::Float(g, _)) => {
                        assert_not_scalar(&k, &format!("{dtype} dot"), f as usize, g as usize);
                        (f(&w, &x), g(&w, &x))
                    }
                    _ => panic!("levels disagree on how {dtype} is multiplied"),
                };
                // Same integer products; only the float summation order differs.
                let tol = 1e-5 * (n as f32).sqrt() * (want.abs() + 1.0) + 1e-5;
                assert!(
                    (got - want).abs() <= tol,
                    "{} {dtype} n={n}: {got} vs {want}",
                    k.level.name()
                );
            }
        }
    }
}

#[cfg(feature = "std")]
#[test]
fn matmul_is_bit_identical_for_any_thread_count() {
    use ember_runtime::pool::ThreadPool;
    let mut rng = Rng(3);
    let (rows, cols, t) = (301, 96, 5);
    let k = Kernels::for_level(Level::best()).unwrap();
    for dtype in [
        DType::F32,
        DType::F16,
        DType::Q8_0,
        DType::Q4_0,
        DType::Q4_1,
    ] {
        let data: Vec<u8> = (0..rows)
            .flat_map(|_| random_row(&mut rng, dtype, cols))
            .collect();
        let w = Matrix {
            dtype,
            layout: Layout::RowMajor,
            rows,
            cols,
            data: &data,
        };
        let x: Vec<f32> = (0..t * cols).map(|_| rng.f32()).collect();
        let bias: Vec<f32> = (0..rows).map(|_| rng.f32()).collect();
        let run = |exec: &dyn Executor| {
            let mut out = vec![0f32; t * rows];
            let mut act_buf = ActQ8Buf::new(t, cols);
            let mut act = act_buf.view();
            matmul(&k, exec, &w, Some(&bias), &x, t, &mut out, &mut act);
            out
        };
        let one = run(&Serial);
        for threads in [2, 3, 4] {
            assert_eq!(
                run(&ThreadPool::new(threads)),
                one,
                "{dtype} with {threads} threads"
            );
        }
        // And the result is right: compare a row with a plain dequantized dot.
        let mut row = vec![0f32; cols];
        ember_format::blocks::dequantize_row_ref(dtype, w.row(7), &mut row);
        let exact: f32 = row
            .iter()
            .zip(&x[cols..2 * cols])
            .map(|(a, b)| a * b)
            .sum::<f32>()
            + bias[7];
        let got = one[rows + 7];
        assert!(
            (got - exact).abs() < 0.02 * (exact.abs() + 1.0),
            "{dtype}: {got} vs {exact}"
        );
    }
}

#[test]
fn tiles_match_scalar_dots() {
    use ember_runtime::kernels::TILE;
    let mut rng = Rng(11);
    let scalar = Kernels::scalar();
    for k in levels() {
        for dtype in [
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q4Z,
            DType::F32,
            DType::F16,
            DType::BF16,
        ] {
            for &len in &[1usize, 2, 3, 5, 17, 18, 33] {
                let n = if dtype.is_quantized() { 32 * len } else { len };
                let rows: Vec<Vec<u8>> =
                    (0..TILE).map(|_| random_row(&mut rng, dtype, n)).collect();
                let row_bytes = rows[0].len();
                let w: Vec<u8> = rows.concat();
                let xs: Vec<Vec<f32>> = (0..TILE)
                    .map(|_| (0..n).map(|_| rng.f32()).collect())
                    .collect();
                let (got, want): (Vec<f32>, Vec<f32>) =
                    match (k.row_dot(dtype), scalar.row_dot(dtype)) {
                        (RowDot::Quantized(_, Some(tile), _), RowDot::Quantized(dot, ..)) => {
                            let mut act_buf = ActQ8Buf::new(TILE, n);
                            let mut act = act_buf.view();
                            let flat: Vec<f32> = xs.concat();
                            act.fill(scalar.quantize_q8, &flat, TILE, n);
                            let a = core::array::from_fn(|t| act.row(t));
                            let got = tile(&w, row_bytes, &a).concat();
                            let want = (0..TILE)
                                .flat_map(|r| (0..TILE).map(move |t| (r, t)))
                                .map(|(r, t)| dot(&rows[r], a[t].qs, a[t].d, a[t].s))
                                .collect();
                            (got, want)
                        }
                        (RowDot::Float(_, Some(tile)), RowDot::Float(dot, _)) => {
                            let x = core::array::from_fn(|t| xs[t].as_slice());
                            let got = tile(&w, row_bytes, &x).concat();
                            let want = (0..TILE)
                                .flat_map(|r| (0..TILE).map(move |t| (r, t)))
                                .map(|(r, t)| dot(&rows[r], &xs[t]))
                                .collect();
                            (got, want)
                        }
                        _ => {
                            if len == 1 {
                                skipped_by_design(
                                    &k,
                                    &format!("{dtype} prefill tile"),
                                    "prefill runs its SIMD row dots or rows16 group kernels",
                                );
                            }
                            continue;
                        }
                    };
                for (g, e) in got.iter().zip(&want) {
                    let tol = 1e-5 * (n as f32).sqrt() * (e.abs() + 1.0) + 1e-5;
                    assert!(
                        (g - e).abs() <= tol,
                        "{} {dtype} n={n}: {g} vs {e}",
                        k.level.name()
                    );
                }
            }
        }
    }
}

#[test]
fn decode_row_groups_match_scalar_dots() {
    use ember_runtime::kernels::TILE;
    let mut rng = Rng(5);
    let scalar = Kernels::scalar();
    for k in levels() {
        for dtype in [
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q4Z,
            DType::Q5_0,
            DType::Q5_1,
        ] {
            let (RowDot::Quantized(_, _, Some(rows_fn)), RowDot::Quantized(dot, ..)) =
                (k.row_dot(dtype), scalar.row_dot(dtype))
            else {
                skipped_by_design(
                    &k,
                    &format!("{dtype} multi-row kernel"),
                    "decode runs its SIMD row dots or rows16 group kernels",
                );
                continue;
            };
            for nb in [1usize, 2, 3, 17, 18, 48] {
                let n = 32 * nb;
                let rows: Vec<Vec<u8>> =
                    (0..TILE).map(|_| random_row(&mut rng, dtype, n)).collect();
                let w = rows.concat();
                let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
                let mut buf = ActQ8Buf::new(1, n);
                let mut act = buf.view();
                act.fill(scalar.quantize_q8, &x, 1, n);
                let a = act.row(0);
                let got = rows_fn(&w, rows[0].len(), &a);
                for (r, g) in got.iter().enumerate() {
                    let e = dot(&rows[r], a.qs, a.d, a.s);
                    let tol = 1e-5 * (n as f32).sqrt() * (e.abs() + 1.0) + 1e-5;
                    assert!(
                        (g - e).abs() <= tol,
                        "{} {dtype} nb={nb} row {r}: {g} vs {e}",
                        k.level.name()
                    );
                }
            }
        }
    }
}

/// A random rows16 matrix: its row-major rows and the interleaved bytes.
fn random_rows16(rng: &mut Rng, dtype: DType, rows: usize, cols: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let row_major: Vec<Vec<u8>> = (0..rows).map(|_| random_row(rng, dtype, cols)).collect();
    let flat = row_major.concat();
    let mut inter = vec![0u8; flat.len()];
    rows16::interleave(dtype, rows, cols, &flat, &mut inter);
    (row_major, inter)
}

#[test]
fn rows16_groups_match_scalar_row_dots_at_every_level() {
    use ember_runtime::kernels::{GROUP, GROUP_TOKENS};
    let mut rng = Rng(16);
    let scalar = Kernels::scalar();
    // The reference itself is checked against the row-major dots, then each SIMD level.
    for k in std::iter::once(scalar).chain(levels()) {
        // Every block type the layout takes (a missing group kernel fails
        // every_dtype_has_a_simd_path_at_every_level).
        for dtype in DType::ALL
            .into_iter()
            .filter(|&d| rows16::fields(d).is_some())
        {
            let g = k.group(dtype).unwrap();
            let sg = scalar.group(dtype).unwrap();
            let what = format!("{dtype} rows16 group");
            assert_not_scalar(&k, &what, g.gemv as usize, sg.gemv as usize);
            assert_not_scalar(&k, &what, g.gemm as usize, sg.gemm as usize);
            let RowDot::Quantized(dot, ..) = scalar.row_dot(dtype) else {
                unreachable!()
            };
            let nbs: &[usize] = if dtype.block_len() == 32 {
                &[1, 2, 3, 17, 18, 48]
            } else {
                &[1, 2, 3, 6]
            };
            for &nb in nbs {
                let n = dtype.block_len() * nb;
                let (rows, w) = random_rows16(&mut rng, dtype, GROUP, n);
                let x: Vec<f32> = (0..GROUP_TOKENS * n).map(|_| rng.f32()).collect();
                let mut buf = ActQ8Buf::new(GROUP_TOKENS, n);
                let mut act = buf.view();
                act.fill(scalar.quantize_q8, &x, GROUP_TOKENS, n);
                let a: [_; GROUP_TOKENS] = core::array::from_fn(|t| act.row(t));
                let gemm = (g.gemm)(&w, &a);
                for t in 0..GROUP_TOKENS {
                    let gemv = (g.gemv)(&w, &a[t]);
                    assert_eq!(gemv, gemm[t], "{} {dtype}: gemv == gemm", k.level.name());
                    for r in 0..GROUP {
                        let e = dot(&rows[r], a[t].qs, a[t].d, a[t].s);
                        let got = gemm[t][r];
                        let tol = 1e-5 * (n as f32).sqrt() * (e.abs() + 1.0) + 1e-5;
                        assert!(
                            (got - e).abs() <= tol,
                            "{} {dtype} nb={nb} token {t} row {r}: {got} vs {e}",
                            k.level.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn rows16_float_groups_match_scalar_row_dots_at_every_level() {
    use ember_runtime::kernels::{FLOAT_TOKENS, GROUP};
    let mut rng = Rng(33);
    let scalar = Kernels::scalar();
    for k in std::iter::once(scalar).chain(levels()) {
        for dtype in DType::ALL
            .into_iter()
            .filter(|&d| scalar.group_float(d).is_some())
        {
            let f = k.group_float(dtype).unwrap();
            let sf = scalar.group_float(dtype).unwrap();
            assert_not_scalar(
                &k,
                &format!("{dtype} rows16 group"),
                f as usize,
                sf as usize,
            );
            let RowDot::Float(dot, _) = scalar.row_dot(dtype) else {
                unreachable!()
            };
            for cols in [1usize, 2, 3, 7, 16, 33, 576] {
                let (rows, w) = random_rows16(&mut rng, dtype, GROUP, cols);
                let x: Vec<Vec<f32>> = (0..FLOAT_TOKENS)
                    .map(|_| (0..cols).map(|_| rng.f32()).collect())
                    .collect();
                for n in 1..=FLOAT_TOKENS {
                    let xs: Vec<&[f32]> = x[..n].iter().map(|v| v.as_slice()).collect();
                    let mut out = vec![[0f32; GROUP]; n];
                    f(&w, &xs, &mut out);
                    for (t, o) in out.iter().enumerate() {
                        for r in 0..GROUP {
                            let e = dot(&rows[r], xs[t]);
                            let tol = 1e-5 * (cols as f32).sqrt() * (e.abs() + 1.0);
                            assert!(
                                (o[r] - e).abs() <= tol,
                                "{} {dtype} cols={cols} n={n} token {t} row {r}: {} vs {e}",
                                k.level.name(),
                                o[r]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn rows16_matmul_matches_row_major_for_any_thread_count() {
    use ember_runtime::pool::ThreadPool;
    let mut rng = Rng(61);
    // 7 tokens: one 4-token call and three single ones per group.
    let (rows, cols, t) = (80, 96, 7);
    for k in std::iter::once(Kernels::scalar()).chain(levels()) {
        for dtype in [
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4_1,
            DType::Q4Z,
            DType::F32,
            DType::F16,
            DType::BF16,
        ] {
            let (row_major, inter) = random_rows16(&mut rng, dtype, rows, cols);
            let flat = row_major.concat();
            let matrix = |layout, data| Matrix {
                dtype,
                layout,
                rows,
                cols,
                data,
            };
            let x: Vec<f32> = (0..t * cols).map(|_| rng.f32()).collect();
            let bias: Vec<f32> = (0..rows).map(|_| rng.f32()).collect();
            let run = |w: &Matrix, exec: &dyn Executor| {
                let mut out = vec![0f32; t * rows];
                let mut act_buf = ActQ8Buf::new(t, cols);
                let mut act = act_buf.view();
                matmul(&k, exec, w, Some(&bias), &x, t, &mut out, &mut act);
                out
            };
            let grouped = matrix(Layout::Rows16, &inter[..]);
            let one = run(&grouped, &Serial);
            for threads in [2, 3] {
                assert_eq!(run(&grouped, &ThreadPool::new(threads)), one, "{dtype}");
            }
            let want = run(&matrix(Layout::RowMajor, &flat[..]), &Serial);
            for (g, e) in one.iter().zip(&want) {
                let tol = 1e-5 * (cols as f32).sqrt() * (e.abs() + 1.0);
                assert!(
                    (g - e).abs() <= tol,
                    "{} {dtype}: {g} vs {e}",
                    k.level.name()
                );
            }
            // Embedding lookups read rows16 rows back exactly.
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            for r in [0, 17, rows - 1] {
                ember_runtime::kernels::dequantize_row(&grouped, r, &mut a);
                ember_format::blocks::dequantize_row_ref(dtype, &row_major[r], &mut b);
                assert_eq!(a, b);
            }
        }
    }
}

#[test]
fn attention_kernels_match_scalar() {
    const HS: [usize; 9] = [1, 3, 7, 16, 24, 33, 64, 80, 128];
    const N: [usize; 9] = [1, 2, 3, 5, 15, 16, 17, 33, 100];
    let mut rng = Rng(77);
    let scalar = Kernels::scalar();
    for k in levels() {
        for &hs in &HS {
            for &n in &N {
                // Rows of a wider KV cache, this head's vectors at a nonzero offset, and
                // exactly (n − 1)·stride + offset + hs floats so an overrun would be caught.
                let (stride, offset) = (2 * hs + 5, hs + 3);
                let len = (n - 1) * stride + offset + hs;
                let keys: Vec<f32> = (0..len).map(|_| rng.f32() * 2.0).collect();
                let values: Vec<f32> = (0..len).map(|_| rng.f32() * 2.0).collect();
                let q: Vec<f32> = (0..hs).map(|_| rng.f32() * 2.0).collect();
                let scale = 1.0 / (hs as f32).sqrt();
                let row = |v: &[f32], p: usize| -> Vec<f32> {
                    v[p * stride + offset..p * stride + offset + hs].to_vec()
                };
                let tol = |terms: f32, len: usize| 1e-6 * (len as f32).sqrt() * terms + 1e-7;
                let what = |name: &str| format!("{} {name} hs={hs} n={n}", k.level.name());

                let (mut got, mut want) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                assert_not_scalar(
                    &k,
                    "attn_scores",
                    k.attn_scores as usize,
                    scalar.attn_scores as usize,
                );
                assert_not_scalar(
                    &k,
                    "attn_values",
                    k.attn_values as usize,
                    scalar.attn_values as usize,
                );
                (k.attn_scores)(&q, &keys, stride, offset, scale, &mut got);
                (scalar.attn_scores)(&q, &keys, stride, offset, scale, &mut want);
                for p in 0..n {
                    let key = row(&keys, p);
                    let terms = key.iter().zip(&q).map(|(a, b)| (a * b).abs()).sum::<f32>();
                    let terms = terms * scale;
                    assert!(
                        (got[p] - want[p]).abs() <= tol(terms, hs),
                        "{} p={p}: {} vs {}",
                        what("attn_scores"),
                        got[p],
                        want[p]
                    );
                }

                // Weights of either sign, like scores before the softmax, to test the sum.
                let w: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
                let (mut got, mut want) = (vec![f32::NAN; hs], vec![f32::NAN; hs]);
                (k.attn_values)(&w, &values, stride, offset, &mut got);
                (scalar.attn_values)(&w, &values, stride, offset, &mut want);
                for d in 0..hs {
                    let terms: f32 = (0..n).map(|p| (w[p] * row(&values, p)[d]).abs()).sum();
                    assert!(
                        (got[d] - want[d]).abs() <= tol(terms, n),
                        "{} d={d}: {} vs {}",
                        what("attn_values"),
                        got[d],
                        want[d]
                    );
                }
            }
        }
    }
}

/// A GQA group's heads in one call (blocks of rows shared by the heads, one or two pieces of
/// a ring buffer, f32 or f16 rows) against softmax attention in f64 over the stored values,
/// head by head; each head's result is the same bits whether it shares the call or not.
/// Lengths cross the block size (16 KiB of floats: 16 rows of 256, 64 rows of 64).
#[test]
fn attention_heads_match_f64_attention_in_blocks_and_pieces() {
    use ember_format::blocks::f16_to_f32;
    use ember_runtime::kv_cache::{KvRows, KvType};
    let mut rng = Rng(91);
    let mut all = vec![Kernels::scalar()];
    all.extend(levels());
    for k in &all {
        for (hs, n) in [
            (7, 5),
            (64, 300),
            (256, 150),
            (256, 64),
            (33, 17),
            (3, 3000),
        ] {
            for (heads, kv) in [
                (1, KvType::F32),
                (3, KvType::F16),
                (4, KvType::F32),
                (4, KvType::F16),
            ] {
                for split in [0, n / 3, n - 1] {
                    // This KV head's rows, as the head-major cache holds them.
                    let (stride, offset) = (hs, 0);
                    let len = n * stride;
                    let keys: Vec<f32> = (0..len).map(|_| rng.f32() * 2.0).collect();
                    let values: Vec<f32> = (0..len).map(|_| rng.f32()).collect();
                    let q: Vec<f32> = (0..heads * hs).map(|_| rng.f32() * 2.0).collect();
                    let scale = 1.0 / (hs as f32).sqrt();
                    let half =
                        |v: &[f32]| -> Vec<u16> { v.iter().map(|&x| f32_to_f16(x)).collect() };
                    let (keys16, values16) = (half(&keys), half(&values));
                    // The values the cache holds, for the reference.
                    let (keys, values): (Vec<f32>, Vec<f32>) = match kv {
                        KvType::F32 => (keys, values),
                        KvType::F16 => (
                            keys16.iter().map(|&h| f16_to_f32(h)).collect(),
                            values16.iter().map(|&h| f16_to_f32(h)).collect(),
                        ),
                    };
                    let (kr, vr) = match kv {
                        KvType::F32 => (KvRows::F32(&keys), KvRows::F32(&values)),
                        KvType::F16 => (KvRows::F16(&keys16), KvRows::F16(&values16)),
                    };
                    // Pieces [split, n) then [0, split), as a ring buffer that wrapped.
                    let (k1, k2) = (kr.slice(split * stride..len), kr.slice(0..split * stride));
                    let (v1, v2) = (vr.slice(split * stride..len), vr.slice(0..split * stride));
                    let pieces = [(k1, v1), (k2, v2)];
                    let pieces = if split == 0 {
                        &pieces[..1]
                    } else {
                        &pieces[..]
                    };
                    let cap = n + 3;
                    let run = |q: &[f32]| {
                        let mut out = vec![f32::NAN; q.len()];
                        let mut tmp = vec![f32::NAN; hs];
                        let mut scores = vec![f32::NAN; q.len() / hs * cap];
                        ember_runtime::kernels::attention_heads(
                            k,
                            &mut out,
                            &mut tmp,
                            q,
                            pieces,
                            scale,
                            &mut scores,
                            cap,
                        );
                        out
                    };
                    let got = run(&q);
                    for j in 0..heads {
                        let qj = &q[j * hs..(j + 1) * hs];
                        let alone = run(qj);
                        assert_eq!(bits(&alone), bits(&got[j * hs..(j + 1) * hs]));
                        // Rows in the pieces' order: split.., then ..split.
                        let order: Vec<usize> = (split..n).chain(0..split).collect();
                        let row = |v: &[f32], p: usize| v[p * stride + offset..][..hs].to_vec();
                        let logits: Vec<f64> = order
                            .iter()
                            .map(|&p| {
                                let dot: f64 = row(&keys, p)
                                    .iter()
                                    .zip(qj)
                                    .map(|(&a, &b)| a as f64 * b as f64)
                                    .sum();
                                dot * scale as f64
                            })
                            .collect();
                        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                        let sum: f64 = e.iter().sum();
                        for d in 0..hs {
                            let want: f64 = order
                                .iter()
                                .zip(&e)
                                .map(|(&p, w)| w / sum * row(&values, p)[d] as f64)
                                .sum();
                            let g = got[j * hs + d] as f64;
                            assert!(
                                (g - want).abs() <= 2e-5,
                                "{} {kv:?} hs={hs} n={n} heads={heads} split={split} head {j} d={d}: {g} vs {want}",
                                k.level.name()
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Every dtype a `.ember` file can hold, in either layout, runs a SIMD kernel at every level
/// this CPU has (and scripts/test.sh requires): each entry of the level's table (one row per
/// dtype, generated from one list) is a function of its own, not the scalar reference.
#[test]
fn every_dtype_has_a_simd_path_at_every_level() {
    use ember_runtime::kernels::{DTypeKernels, KernelPath, MATMUL_DTYPES};
    // The format holds exactly the dtypes the kernels multiply.
    let mut formats: Vec<DType> = DType::ALL.to_vec();
    let mut kernels: Vec<DType> = MATMUL_DTYPES.to_vec();
    formats.sort_by_key(|d| d.name());
    kernels.sort_by_key(|d| d.name());
    assert_eq!(
        formats, kernels,
        "DType::ALL and the kernel table's dtypes differ"
    );

    let scalar = Kernels::scalar();
    for k in levels() {
        for (i, dtype) in MATMUL_DTYPES.into_iter().enumerate() {
            let what = format!("{} {dtype}", k.level.name());
            match (k.by_dtype[i], scalar.by_dtype[i]) {
                (
                    DTypeKernels::Quantized { dot, group, .. },
                    DTypeKernels::Quantized {
                        dot: sdot,
                        group: sgroup,
                        ..
                    },
                ) => {
                    assert_not_scalar(&k, &format!("{what} dot"), dot as usize, sdot as usize);
                    let (gemv, sgemv) = (group.gemv as usize, sgroup.gemv as usize);
                    assert_not_scalar(&k, &format!("{what} rows16 gemv"), gemv, sgemv);
                    let (gemm, sgemm) = (group.gemm as usize, sgroup.gemm as usize);
                    assert_not_scalar(&k, &format!("{what} rows16 gemm"), gemm, sgemm);
                }
                (
                    DTypeKernels::Float { dot, group, .. },
                    DTypeKernels::Float {
                        dot: sdot,
                        group: sgroup,
                        ..
                    },
                ) => {
                    assert_not_scalar(&k, &format!("{what} dot"), dot as usize, sdot as usize);
                    let (g, sg) = (group as usize, sgroup as usize);
                    assert_not_scalar(&k, &format!("{what} rows16 group"), g, sg);
                }
                _ => panic!("{what}: the entry's kind differs from the scalar table's"),
            }
            for layout in [Layout::RowMajor, Layout::Rows16] {
                assert_eq!(k.path(dtype, layout), KernelPath::Simd, "{what}");
            }
        }
    }
    assert_eq!(
        Kernels::scalar().path(DType::Q4K, Layout::RowMajor),
        KernelPath::Reference
    );
}

/// `bytes` copied to start `offset` bytes past an 8-byte aligned address inside `storage`.
fn at_offset<'a>(storage: &'a mut Vec<u64>, bytes: &[u8], offset: usize) -> &'a [u8] {
    storage.clear();
    storage.resize((offset + bytes.len()).div_ceil(8) + 1, 0);
    let all: &mut [u8] = bytemuck::cast_slice_mut(storage.as_mut_slice());
    all[offset..offset + bytes.len()].copy_from_slice(bytes);
    &all[offset..offset + bytes.len()]
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every kernel of every level (the scalar reference included) on weights that start 1 to 7
/// bytes past an 8-byte boundary, as a tensor at an odd flash offset or a byte buffer from an
/// allocator that does not align would give them: the result is bit-identical to the aligned
/// one. This stands in for Miri (which gives byte vectors alignment 1); there is no nightly
/// toolchain here to run it.
#[test]
fn kernels_read_weights_at_any_alignment() {
    use ember_runtime::kernels::{FLOAT_TOKENS, GROUP, GROUP_TOKENS, TILE};
    let mut rng = Rng(99);
    let scalar = Kernels::scalar();
    let mut storage = Vec::new();
    for k in std::iter::once(scalar).chain(levels()) {
        let name = k.level.name();
        for dtype in DType::ALL {
            // Floats: 67 elements, a SIMD body and a scalar tail; blocks: 3 (or 2 super-blocks).
            let n = if dtype.is_quantized() {
                (96 / dtype.block_len()).max(2) * dtype.block_len()
            } else {
                67
            };
            let rows: Vec<Vec<u8>> = (0..GROUP).map(|_| random_row(&mut rng, dtype, n)).collect();
            let flat = rows.concat();
            let row_bytes = rows[0].len();
            let xs: Vec<Vec<f32>> = (0..GROUP_TOKENS.max(TILE).max(FLOAT_TOKENS))
                .map(|_| (0..n).map(|_| rng.f32()).collect())
                .collect();
            let mut act_buf = ActQ8Buf::new(GROUP_TOKENS.max(TILE), n);
            let mut act = act_buf.view();
            act.fill(
                scalar.quantize_q8,
                &xs.concat()[..GROUP_TOKENS.max(TILE) * n],
                GROUP_TOKENS.max(TILE),
                n,
            );
            let a: Vec<_> = (0..GROUP_TOKENS.max(TILE)).map(|t| act.row(t)).collect();

            // Row dots, tiles and multi-row kernels on row-major rows.
            let row_major = |w: &[u8]| -> Vec<u32> {
                match k.row_dot(dtype) {
                    RowDot::Quantized(dot, tile, multi) => {
                        let mut out = vec![dot(&w[..row_bytes], a[0].qs, a[0].d, a[0].s)];
                        if let Some(tile) = tile {
                            let at: [_; TILE] = core::array::from_fn(|t| a[t]);
                            out.extend(tile(&w[..TILE * row_bytes], row_bytes, &at).concat());
                        }
                        if let Some(multi) = multi {
                            out.extend(multi(&w[..TILE * row_bytes], row_bytes, &a[0]));
                        }
                        bits(&out)
                    }
                    RowDot::Float(dot, tile) => {
                        let mut out = vec![dot(&w[..row_bytes], &xs[0])];
                        if let Some(tile) = tile {
                            let x: [&[f32]; TILE] = core::array::from_fn(|t| xs[t].as_slice());
                            out.extend(tile(&w[..TILE * row_bytes], row_bytes, &x).concat());
                        }
                        bits(&out)
                    }
                }
            };
            // The rows16 group kernels on the same rows, interleaved.
            let mut inter = vec![0u8; flat.len()];
            let grouped = rows16::supports(dtype, &[GROUP, n]);
            if grouped {
                rows16::interleave(dtype, GROUP, n, &flat, &mut inter);
            }
            let group = |w: &[u8]| -> Vec<u32> {
                if !grouped {
                    return Vec::new();
                }
                let mut out = Vec::new();
                if let Some(g) = k.group(dtype) {
                    out.extend((g.gemv)(w, &a[0]));
                    let at: [_; GROUP_TOKENS] = core::array::from_fn(|t| a[t]);
                    out.extend((g.gemm)(w, &at).concat());
                }
                if let Some(f) = k.group_float(dtype) {
                    let x: Vec<&[f32]> = xs[..FLOAT_TOKENS].iter().map(|v| v.as_slice()).collect();
                    let mut o = vec![[0f32; GROUP]; FLOAT_TOKENS];
                    f(w, &x, &mut o);
                    out.extend(o.concat());
                }
                bits(&out)
            };
            // Embedding rows read back (the runtime's dequantizer, either layout).
            let embed = |w: &[u8], layout: Layout| -> Vec<u32> {
                let m = Matrix {
                    dtype,
                    layout,
                    rows: GROUP,
                    cols: n,
                    data: w,
                };
                let mut row = vec![0f32; n];
                ember_runtime::kernels::dequantize_row(&m, GROUP - 1, &mut row);
                bits(&row)
            };

            let want = (
                row_major(&flat),
                group(&inter),
                embed(&flat, Layout::RowMajor),
            );
            let want_grouped = grouped.then(|| embed(&inter, Layout::Rows16));
            for offset in 1..8 {
                let w = at_offset(&mut storage, &flat, offset);
                assert_eq!(
                    row_major(w),
                    want.0,
                    "{name} {dtype} row-major at +{offset}"
                );
                assert_eq!(
                    embed(w, Layout::RowMajor),
                    want.2,
                    "{name} {dtype} row at +{offset}"
                );
                if grouped {
                    let w = at_offset(&mut storage, &inter, offset);
                    assert_eq!(group(w), want.1, "{name} {dtype} rows16 at +{offset}");
                    assert_eq!(
                        Some(embed(w, Layout::Rows16)),
                        want_grouped,
                        "{name} {dtype} rows16 row at +{offset}"
                    );
                }
            }
        }
    }
}

/// The elementwise functions (softmax, SwiGLU, GeGLU, GELU) at every level give the scalar
/// level's bits, at every tail length and over a wide range of inputs.
#[test]
fn elementwise_ops_are_bit_identical_to_scalar() {
    use ember_runtime::kernels::{GatedFn, VecFn};
    let mut rng = Rng(77);
    let scalar = Kernels::scalar();
    for k in levels() {
        for &n in &LENGTHS {
            let x: Vec<f32> = (0..n).map(|_| rng.f32() * 30.0).collect();
            let u: Vec<f32> = (0..n).map(|_| rng.f32() * 4.0).collect();
            let unary: [(&str, VecFn, VecFn); 2] = [
                ("softmax", k.softmax, scalar.softmax),
                ("gelu", k.gelu, scalar.gelu),
            ];
            for (name, f, reference) in unary {
                let (mut got, mut want) = (x.clone(), x.clone());
                f(&mut got);
                reference(&mut want);
                assert_eq!(bits(&got), bits(&want), "{} {name} n={n}", k.level.name());
            }
            let gated: [(&str, GatedFn, GatedFn); 2] = [
                ("swiglu", k.swiglu, scalar.swiglu),
                ("geglu", k.geglu, scalar.geglu),
            ];
            for (name, f, reference) in gated {
                let (mut got, mut want) = (x.clone(), x.clone());
                f(&mut got, &u);
                reference(&mut want, &u);
                assert_eq!(bits(&got), bits(&want), "{} {name} n={n}", k.level.name());
            }
        }
    }
}

/// An f16 KV cache's conversion: every one of the 65,536 f16 values (normal, subnormal,
/// zero, inf, NaN) as `half` converts it, at every level, at odd lengths too.
#[test]
fn f16_converts_exactly_at_every_level() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut levels_all = vec![Kernels::scalar()];
    levels_all.extend(levels());
    for k in &levels_all {
        for len in [all.len(), 1, 7, 33] {
            let mut dst = vec![f32::NAN; len];
            (k.f16_to_f32)(&all[all.len() - len..], &mut dst);
            for (&h, &got) in all[all.len() - len..].iter().zip(&dst) {
                let want = ember_format::blocks::f16_to_f32(h);
                assert!(
                    got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                    "{} len {len}: f16 {h:#06x} -> {got:e}, want {want:e}",
                    k.level.name()
                );
            }
        }
    }
}

/// The recurrent layers' state steps: every level gives the scalar reference's bits, at odd
/// and even widths; the reference matches the update written out in f64 (Mamba-2: decay,
/// then add dt·x ⊗ B, read with C; Gated DeltaNet in transformers' order: decay, read with
/// k, add β (v − S·k) ⊗ k, read with q).
#[test]
fn recurrent_state_steps_are_bit_identical_to_scalar_and_exact() {
    let mut rng = Rng(91);
    let scalar = Kernels::scalar();
    for (p, n) in [(1, 1), (3, 5), (7, 16), (16, 17), (33, 31), (64, 128)] {
        let state: Vec<f32> = (0..p * n).map(|_| rng.f32()).collect();
        let (x, v): (Vec<f32>, Vec<f32>) = (
            (0..p).map(|_| rng.f32()).collect(),
            (0..p).map(|_| rng.f32()).collect(),
        );
        let (b, c): (Vec<f32>, Vec<f32>) = (
            (0..n).map(|_| rng.f32()).collect(),
            (0..n).map(|_| rng.f32()).collect(),
        );
        let (decay, dt, d, beta) = (0.9f32, 0.3f32, 0.7f32, 0.6f32);

        // Mamba-2, in f64.
        let mut s64: Vec<f64> = state.iter().map(|&v| v as f64).collect();
        let mut y64 = vec![0f64; p];
        for i in 0..p {
            for j in 0..n {
                s64[i * n + j] =
                    s64[i * n + j] * decay as f64 + dt as f64 * x[i] as f64 * b[j] as f64;
                y64[i] += s64[i * n + j] * c[j] as f64;
            }
            y64[i] += d as f64 * x[i] as f64;
        }
        let (mut s_ref, mut y_ref) = (state.clone(), vec![0f32; p]);
        (scalar.ssm_step)(&mut s_ref, &x, &b, &c, decay, dt, d, &mut y_ref);
        for (got, want) in y_ref.iter().chain(&s_ref).zip(y64.iter().chain(&s64)) {
            assert!(
                (*got as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                "ssm p={p} n={n}"
            );
        }
        for k in levels() {
            let (mut s, mut y) = (state.clone(), vec![0f32; p]);
            (k.ssm_step)(&mut s, &x, &b, &c, decay, dt, d, &mut y);
            assert_eq!(
                (bits(&s), bits(&y)),
                (bits(&s_ref), bits(&y_ref)),
                "{} ssm p={p} n={n}",
                k.level.name()
            );
        }

        // Gated DeltaNet, in f64 (q is b, k is c).
        let mut s64: Vec<f64> = state.iter().map(|&v| v as f64 * decay as f64).collect();
        let mut o64 = vec![0f64; p];
        for i in 0..p {
            let kv: f64 = (0..n).map(|j| s64[i * n + j] * c[j] as f64).sum();
            let delta = (v[i] as f64 - kv) * beta as f64;
            for j in 0..n {
                s64[i * n + j] += c[j] as f64 * delta;
                o64[i] += s64[i * n + j] * b[j] as f64;
            }
        }
        let (mut s_ref, mut o_ref) = (state.clone(), vec![0f32; p]);
        (scalar.delta_step)(&mut s_ref, &b, &c, &v, decay, beta, &mut o_ref);
        for (got, want) in o_ref.iter().chain(&s_ref).zip(o64.iter().chain(&s64)) {
            assert!(
                (*got as f64 - want).abs() < 1e-4 * want.abs().max(1.0),
                "delta p={p} n={n}"
            );
        }
        for k in levels() {
            let (mut s, mut o) = (state.clone(), vec![0f32; p]);
            (k.delta_step)(&mut s, &b, &c, &v, decay, beta, &mut o);
            assert_eq!(
                (bits(&s), bits(&o)),
                (bits(&s_ref), bits(&o_ref)),
                "{} delta p={p} n={n}",
                k.level.name()
            );
        }
    }
}
