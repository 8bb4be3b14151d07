//! q4_z (Ember's own 4.5-bit type): through a file and back, and its reference quantizer's
//! error bounds.
use ember_format::blocks::{dequantize_row_ref, q4z_code_d, q4z_d, quantize_row_ref, BlockQ4Z};
use ember_format::{AlignedBytes, DType, EmberFile, Writer};

fn sample(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(7);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let u = (s as f32 / u32::MAX as f32) * 2.0 - 1.0;
            // Blocks of very different scales and offsets, some all-positive or all-negative.
            let block = (i / 32) as f32;
            u * 10f32.powf(block % 7.0 - 4.0) + (block % 3.0 - 1.0) * 0.01
        })
        .collect()
}

#[test]
fn q4_z_round_trips_through_a_file() {
    let (rows, cols) = (5, 96);
    let x = sample(rows * cols, 1);
    let mut q = vec![0u8; DType::Q4Z.tensor_bytes(&[rows, cols]).unwrap()];
    assert!(quantize_row_ref(DType::Q4Z, &x, &mut q));
    let mut w = Writer::new();
    w.add_tensor("w", DType::Q4Z, &[rows, cols], q.clone())
        .unwrap();
    let bytes = AlignedBytes::from(w.to_vec());
    let f = EmberFile::parse(&bytes).unwrap();
    let t = f.tensor("w").unwrap();
    assert_eq!(t.dtype, DType::Q4Z);
    assert_eq!(t.dtype.id(), 64);
    assert_eq!(t.data, &q[..]);
    let mut y = vec![0f32; rows * cols];
    dequantize_row_ref(DType::Q4Z, t.data, &mut y);
    // Each element within 0.6 of its block's step (half a step, the scale rounded up to
    // its 9-bit code, the zero point to an eighth).
    for (xb, yb) in x.chunks(32).zip(y.chunks(32)) {
        let (lo, hi) = xb
            .iter()
            .fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        let step = (hi - lo) / 15.0;
        for (a, b) in xb.iter().zip(yb) {
            assert!(
                (a - b).abs() <= 0.6 * step + 1e-7,
                "{a} vs {b} (step {step})"
            );
        }
    }
}

#[test]
fn q4_z_block_layout() {
    // sd = d9 << 7 | z; x = d (q - z / 8).
    let d9 = q4z_code_d(0.5, false);
    assert_eq!(d9 << 6, half::f16::from_f32(128.0).to_bits());
    assert_eq!(q4z_d(d9), 0.5);
    let mut qs = [0u8; 16];
    qs[0] = 0x3C; // element 0: 12, element 16: 3
    let b = BlockQ4Z {
        sd: (d9 << 7) | 20,
        qs,
    };
    let mut y = [0f32; 32];
    dequantize_row_ref(DType::Q4Z, bytemuck::bytes_of(&b), &mut y);
    assert_eq!(y[0], 0.5 * (12.0 - 2.5));
    assert_eq!(y[16], 0.5 * (3.0 - 2.5));
    assert_eq!(y[1], 0.5 * -2.5);
}
