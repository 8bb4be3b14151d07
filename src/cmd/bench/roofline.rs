//! The machine's limits, measured: memory read bandwidth (streaming a buffer much larger
//! than the caches) and peak f32 FMA and int8 dot-product throughput (register-only loops).

use std::time::Instant;

/// Bytes the bandwidth probe streams per read (beyond any plausible last-level cache).
const STREAM_BYTES: usize = 512 << 20;

/// The machine's read bandwidth, measured the way the GEMVs read: the same thread count,
/// each thread streaming its slice with the widest loads and software prefetch, in several
/// variants (1, 2 or 4 interleaved streams per thread, with and without prefetch; the best
/// variant of a round is that round's ceiling). Rounds are meant to be interleaved with the
/// kernel runs they are compared with, so both see the same machine (its bandwidth moves by
/// up to 2x between minutes on shared hosts); the spread of the rounds is reported.
pub struct BandwidthProbe {
    buf: Vec<u64>,
    threads: usize,
    rounds: Vec<f64>,
}

impl BandwidthProbe {
    pub fn new(threads: usize) -> BandwidthProbe {
        // Touched once so its pages exist.
        let buf = (0..STREAM_BYTES / 8).map(|i| i as u64).collect();
        BandwidthProbe {
            buf,
            threads: threads.max(1),
            rounds: Vec::new(),
        }
    }

    /// One round: GB/s of the best variant.
    pub fn measure(&mut self) -> f64 {
        let mut best = 0f64;
        for streams in [1, 2, 4] {
            for prefetch in [false, true] {
                best = best.max(self.read(streams, prefetch));
            }
        }
        self.rounds.push(best);
        best
    }

    fn read(&self, streams: usize, prefetch: bool) -> f64 {
        let start = Instant::now();
        std::thread::scope(|s| {
            let chunk = self.buf.len().div_ceil(self.threads);
            for part in self.buf.chunks(chunk) {
                s.spawn(move || std::hint::black_box(sum(part, streams, prefetch)));
            }
        });
        std::mem::size_of_val(self.buf.as_slice()) as f64 / start.elapsed().as_secs_f64() / 1e9
    }

    pub fn median(&self) -> f64 {
        super::median(&self.rounds)
    }

    /// (lowest, highest) round.
    pub fn spread(&self) -> (f64, f64) {
        let lo = self.rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.rounds.iter().copied().fold(0.0, f64::max);
        (lo, hi)
    }

    pub fn rounds(&self) -> &[f64] {
        &self.rounds
    }
}

/// Words per step of each stream: 256 bytes (four 512-bit or eight 256-bit loads).
const STEP: usize = 32;

/// Sum of `words` read as `streams` interleaved streams (the slice split in `streams`
/// parts, a 256-byte step from each in turn); the tail beyond whole steps is read plainly.
fn sum(words: &[u64], streams: usize, prefetch: bool) -> u64 {
    let steps = words.len() / (STEP * streams);
    let (body, tail) = words.split_at(steps * STEP * streams);
    let tail_sum = sum_scalar(tail);
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present.
            return tail_sum.wrapping_add(unsafe { sum_avx512(body, streams, prefetch) });
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present.
            return tail_sum.wrapping_add(unsafe { sum_avx2(body, streams, prefetch) });
        }
    }
    let _ = prefetch;
    tail_sum.wrapping_add(sum_scalar(body))
}

fn sum_scalar(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = words.chunks_exact(8);
    let rest = chunks
        .remainder()
        .iter()
        .fold(0u64, |x, &y| x.wrapping_add(y));
    for c in chunks {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(w);
        }
    }
    acc.iter().fold(rest, |x, &y| x.wrapping_add(y))
}

/// Generates a streaming sum over whole steps: `$load`/`$add` of `$lanes` u64 per vector.
macro_rules! stream_sum {
    ($name:ident, $features:literal, $vec:ty, $lanes:expr, $zero:expr, $load:ident, $add:ident, $store:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(words: &[u64], streams: usize, prefetch: bool) -> u64 {
            use core::arch::x86_64::*;
            const VECS: usize = STEP / $lanes;
            let per_stream = words.len() / streams;
            let mut acc: [$vec; VECS] = [$zero; VECS];
            for step in 0..per_stream / STEP {
                for s in 0..streams {
                    let at = s * per_stream + step * STEP;
                    let p = words[at..at + STEP].as_ptr();
                    if prefetch {
                        // 2 KiB ahead, as the group kernels prefetch; a prefetch past the
                        // end of the buffer is harmless (it never faults).
                        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(256) as *const i8);
                    }
                    for (k, a) in acc.iter_mut().enumerate() {
                        // SAFETY: p points at STEP u64; vector k covers lanes k·$lanes.. in bounds.
                        let v = unsafe { $load(p.add(k * $lanes) as *const _) };
                        *a = $add(*a, v);
                    }
                }
            }
            let mut out = [0u64; $lanes];
            let total = acc.iter().fold($zero, |x, &y| $add(x, y));
            // SAFETY: out holds $lanes u64.
            unsafe { $store(out.as_mut_ptr() as *mut _, total) };
            out.iter().fold(0u64, |x, &y| x.wrapping_add(y))
        }
    };
}

stream_sum!(
    sum_avx2,
    "avx2",
    __m256i,
    4,
    _mm256_setzero_si256(),
    _mm256_loadu_si256,
    _mm256_add_epi64,
    _mm256_storeu_si256
);
stream_sum!(
    sum_avx512,
    "avx512f",
    __m512i,
    8,
    _mm512_setzero_si512(),
    _mm512_loadu_si512,
    _mm512_add_epi64,
    _mm512_storeu_si512
);

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
