//! The machine's limits, measured: memory read bandwidth (streaming a buffer much larger
//! than the caches) and peak f32 FMA and int8 dot-product throughput (register-only loops).

use std::time::Instant;

/// Bytes streamed per bandwidth measurement (beyond any plausible last-level cache).
const STREAM_BYTES: usize = 1 << 30;

/// Best-of-3 read bandwidth in GB/s with `threads` threads, each summing its own slice.
pub fn read_bandwidth(buf: &[u64], threads: usize) -> f64 {
    let mut best = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|s| {
            let chunk = buf.len().div_ceil(threads);
            for part in buf.chunks(chunk) {
                s.spawn(move || std::hint::black_box(sum(part)));
            }
        });
        let secs = start.elapsed().as_secs_f64();
        best = best.max(std::mem::size_of_val(buf) as f64 / secs / 1e9);
    }
    best
}

fn sum(words: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present.
        return unsafe { sum_avx2(words) };
    }
    sum_scalar(words)
}

fn sum_scalar(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in words.chunks_exact(8) {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(w);
        }
    }
    acc.iter().fold(0, |x, &y| x.wrapping_add(y))
}

/// 128 bytes per step in four independent adds, so the loop waits on memory, not on adds
/// (the scalar loop tops out below what the SIMD GEMVs stream).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(words: &[u64]) -> u64 {
    use core::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 4];
    let chunks = words.chunks_exact(16);
    let tail = sum_scalar(chunks.remainder());
    for c in chunks {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: c holds 16 u64; lanes 4k..4k+4 are in bounds.
            let v = unsafe { _mm256_loadu_si256(c.as_ptr().add(4 * k) as *const __m256i) };
            *a = _mm256_add_epi64(*a, v);
        }
    }
    let mut out = [0u64; 4];
    let total = _mm256_add_epi64(
        _mm256_add_epi64(acc[0], acc[1]),
        _mm256_add_epi64(acc[2], acc[3]),
    );
    // SAFETY: out holds 4 u64.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, total) };
    out.iter().fold(tail, |x, &y| x.wrapping_add(y))
}

/// A buffer for bandwidth tests, touched once so its pages exist.
pub fn stream_buffer() -> Vec<u64> {
    (0..STREAM_BYTES / 8).map(|i| i as u64).collect()
}

/// Peak throughput in G-operations/s on `threads` threads: (f32 FMA flops, int8 dot ops).
/// An FMA counts two flops; a u8 × i8 multiply-accumulate counts two ops.
pub fn peak_compute(threads: usize) -> (Option<f64>, Option<f64>) {
    let one = |f: PeakLoop| -> f64 {
        let iters = 20_000_000u64;
        let _ = f(iters / 10);
        let start = Instant::now();
        let ops = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || f(iters))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0.0))
                .sum::<f64>()
        });
        ops / start.elapsed().as_secs_f64() / 1e9
    };
    let (fma, int8) = peaks::select();
    (fma.map(one), int8.map(one))
}

/// A register-only loop that returns how many operations it performed.
type PeakLoop = fn(u64) -> f64;

#[cfg(target_arch = "x86_64")]
mod peaks {
    use super::PeakLoop;
    use core::arch::x86_64::*;

    /// Independent accumulators: enough to cover latency × ports (4-5 cycles × 2).
    const CHAINS: usize = 16;

    /// The widest loops this CPU runs: returns functions giving the ops performed.
    pub fn select() -> (Option<PeakLoop>, Option<PeakLoop>) {
        let avx512 = std::is_x86_feature_detected!("avx512f");
        let vnni = avx512 && std::is_x86_feature_detected!("avx512vnni");
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        let fma: Option<PeakLoop> = if avx512 {
            Some(fma512)
        } else if avx2 {
            Some(fma256)
        } else {
            None
        };
        let int8: Option<PeakLoop> = if vnni {
            Some(vnni512)
        } else if avx2 {
            Some(maddubs256)
        } else {
            None
        };
        (fma, int8)
    }

    /// A peak loop: CHAINS independent accumulators, each updated by `$step` (one
    /// instruction doing `$ops` operations) per iteration.
    macro_rules! chains {
        ($name:ident, $features:literal, $reg:ident, $init:expr, |$v:ident| $step:expr, $ops:expr) => {
            fn $name(n: u64) -> f64 {
                #[target_feature(enable = $features)]
                unsafe fn run(n: u64) -> f64 {
                    let mut a = [$init; CHAINS];
                    for _ in 0..n {
                        for $v in a.iter_mut() {
                            *$v = $step;
                            // SAFETY: an empty asm that only claims to change the accumulator
                            // (kept in a register), so the optimizer can neither fold the
                            // chain nor spill it to memory.
                            unsafe {
                                core::arch::asm!(
                                    "/* {0} */",
                                    inout($reg) * $v,
                                    options(nomem, nostack)
                                )
                            };
                        }
                    }
                    std::hint::black_box(&a);
                    (n * CHAINS as u64 * $ops) as f64
                }
                // SAFETY: chosen by `select` only when the CPU has these features.
                unsafe { run(n) }
            }
        };
    }

    chains!(
        fma512,
        "avx512f",
        zmm_reg,
        _mm512_set1_ps(1.0),
        |v| _mm512_fmadd_ps(*v, _mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-6)),
        16 * 2
    );
    chains!(
        fma256,
        "avx2,fma",
        ymm_reg,
        _mm256_set1_ps(1.0),
        |v| _mm256_fmadd_ps(*v, _mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-6)),
        8 * 2
    );
    chains!(
        vnni512,
        "avx512f,avx512vnni",
        zmm_reg,
        _mm512_setzero_si512(),
        |v| _mm512_dpbusd_epi32(*v, _mm512_set1_epi8(3), _mm512_set1_epi8(-2)),
        64 * 2
    );

    fn maddubs256(n: u64) -> f64 {
        // SAFETY: chosen by `select` only when AVX2 is present.
        unsafe { maddubs256_impl(n) }
    }

    /// The AVX2 int8 chain the kernels use: maddubs, madd, add.
    #[target_feature(enable = "avx2")]
    unsafe fn maddubs256_impl(n: u64) -> f64 {
        let mut a = [_mm256_setzero_si256(); 8];
        let (u, s, one) = (
            _mm256_set1_epi8(3),
            _mm256_set1_epi8(-2),
            _mm256_set1_epi16(1),
        );
        for _ in 0..n {
            for v in a.iter_mut() {
                let mut w = u;
                // SAFETY: as in `chains!`: makes each chain's operand opaque, so the
                // multiply is neither hoisted out of the loop nor shared between chains.
                unsafe { core::arch::asm!("/* {0} */", inout(ymm_reg) w, options(nomem, nostack)) };
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, s), one);
                *v = _mm256_add_epi32(*v, p);
            }
        }
        std::hint::black_box(&a);
        (n * 8 * 32 * 2) as f64
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod peaks {
    use super::PeakLoop;

    pub fn select() -> (Option<PeakLoop>, Option<PeakLoop>) {
        (None, None)
    }
}
