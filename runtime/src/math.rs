//! Elementary functions in plain Rust, used by every build (std or not) so a microcontroller
//! and a laptop compute bit-identical results. Evaluated in f64, so the f32 results are
//! within an ulp of the correctly rounded value.

use core::f64::consts::{FRAC_PI_2, LN_2};

/// `e^x` in f64: x = k ln2 + r with |r| <= ln2 / 2, a Taylor polynomial for e^r, then 2^k.
pub fn exp64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.7 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    let k = round64(x / LN_2);
    // ln2 split so k * LN2_HI is exact for |k| < 2^11 (fdlibm's ln2_hi, ln2_lo).
    let ln2_hi = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    let ln2_lo = f64::from_bits(0x3DEA_39EF_3579_3C76);
    let r = (x - k * ln2_hi) - k * ln2_lo;
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=14 {
        term *= r / i as f64;
        sum += term;
    }
    scale2(sum, k as i32)
}

/// `x * 2^k` for results that may be subnormal or overflow.
fn scale2(x: f64, mut k: i32) -> f64 {
    let mut y = x;
    while k > 1000 {
        y *= f64::from_bits(((1023 + 1000) as u64) << 52);
        k -= 1000;
    }
    while k < -1000 {
        y *= f64::from_bits(((1023 - 1000) as u64) << 52);
        k += 1000;
    }
    y * f64::from_bits(((1023 + k) as u64) << 52)
}

/// Round half away from zero.
fn round64(x: f64) -> f64 {
    let t = trunc64(x);
    if (x - t).abs() >= 0.5 {
        t + x.signum()
    } else {
        t
    }
}

fn trunc64(x: f64) -> f64 {
    if x.abs() >= 4_503_599_627_370_496.0 {
        x
    } else {
        x as i64 as f64
    }
}

/// Natural logarithm in f64: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then the atanh series.
pub fn ln64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let (mut m, mut e) = if x < f64::MIN_POSITIVE {
        (x * (1u64 << 54) as f64, -54i32)
    } else {
        (x, 0)
    };
    let bits = m.to_bits();
    e += ((bits >> 52) & 0x7FF) as i32 - 1023;
    m = f64::from_bits((bits & !(0x7FFu64 << 52)) | (1023u64 << 52));
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut n = 1.0;
    while n < 40.0 {
        sum += term / n;
        term *= s2;
        n += 2.0;
    }
    2.0 * sum + e as f64 * LN_2
}

/// sin and cos of x in f64 (accurate for |x| up to ~1e6, far beyond any RoPE angle).
pub fn sincos64(x: f64) -> (f64, f64) {
    let k = round64(x / FRAC_PI_2);
    // pi/2 split in three 33-bit parts (Cody-Waite; fdlibm's pio2_1, pio2_2, pio2_2t).
    let p1 = f64::from_bits(0x3FF9_21FB_5440_0000);
    let p2 = f64::from_bits(0x3DD0_B461_1A60_0000);
    let p3 = f64::from_bits(0x3BA3_198A_2E03_7073);
    let r = ((x - k * p1) - k * p2) - k * p3;
    let r2 = r * r;
    // Taylor series to r^19 / r^18: error below 1e-17 for |r| <= pi/4.
    let (mut s, mut c) = (r, 1.0);
    let (mut ts, mut tc) = (r, 1.0);
    for i in 1..10 {
        let n = 2 * i;
        ts *= -r2 / ((n * (n + 1)) as f64);
        tc *= -r2 / (((n - 1) * n) as f64);
        s += ts;
        c += tc;
    }
    match (k as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// `e^x` in f32, within 2 ulp (0 below e^-87.3): x = n ln2 + r, a degree-6 polynomial for e^r (Cephes), then
/// 2^n through the exponent bits. Branch-free, so loops over it vectorize; the hot paths
/// (softmax, SiLU, GELU) call it millions of times per prompt.
#[inline(always)]
pub fn expf(x: f32) -> f32 {
    const HI: f32 = 88.376_26;
    const LO: f32 = -87.336_55;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting rounds to an integer
    let (nan, underflow) = (x.is_nan(), x < LO);
    let x = x.clamp(LO, HI);
    let shifted = x * core::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // ln2 in two parts so n * C1 is exact.
    let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n for n in [-126, 127]; the clamp keeps n in range (x = LO gives a subnormal-free
    // result just above zero, as close as f32 gets).
    // n as an integer from the low mantissa bits of `shifted` (integer arithmetic: a
    // float-to-int `as` cast is saturating, which compilers do not vectorize).
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    let out = y * scale;
    if nan {
        f32::NAN
    } else if underflow {
        0.0
    } else {
        out
    }
}

pub fn lnf(x: f32) -> f32 {
    ln64(x as f64) as f32
}

pub use ember_format::hparams::sqrt64;

pub fn sqrtf(x: f32) -> f32 {
    sqrt64(x as f64) as f32
}

/// tanh through `expf`: 1 - 2 / (e^{2x} + 1), with the odd Taylor term near zero where
/// that form cancels.
#[inline(always)]
pub fn tanhf(x: f32) -> f32 {
    if x.abs() < 0.004 {
        return x - x * x * x / 3.0;
    }
    1.0 - 2.0 / (expf(2.0 * x) + 1.0)
}

pub fn powf(base: f32, e: f32) -> f32 {
    exp64(e as f64 * ln64(base as f64)) as f32
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn matches_std_to_an_ulp() {
        let mut x = -80.0f32;
        while x < 80.0 {
            assert!(ulps(expf(x), x.exp()) <= 2, "exp {x}");
            let t = tanhf(x);
            // Absolute accuracy is what GELU needs: 1 + tanh(..) near zero.
            assert!(
                (t - x.tanh()).abs() <= 3e-7 + 4.0 * f32::EPSILON * x.tanh().abs(),
                "tanh {x}"
            );
            let a = x.abs() + 1e-3;
            assert!(ulps(lnf(a), a.ln()) <= 1, "ln {a}");
            assert!(ulps(sqrtf(a), a.sqrt()) <= 1, "sqrt {a}");
            x += 0.0137;
        }
        for i in 0..20000 {
            let x = i as f64 * 0.731;
            let (s, c) = sincos64(x);
            assert!(
                (s - x.sin()).abs() < 1e-12 && (c - x.cos()).abs() < 1e-12,
                "{x}"
            );
        }
        assert!(ulps(powf(10000.0, 0.375), 10000f32.powf(0.375)) <= 1);
        assert_eq!(expf(-1000.0), 0.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert!(lnf(0.0).is_infinite());
    }
}
