//! Shared test helpers: a tiny deterministic RNG and a sample file.
#![allow(dead_code)]

use ember_format::{blocks, DType, OwnedValue, Writer};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Random data of `dtype` for `shape`, made by quantizing random floats where a reference
/// quantizer exists, or random bytes for the K types (any bytes are valid blocks).
pub fn random_tensor(rng: &mut Rng, dtype: DType, shape: &[usize]) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let bytes = dtype.tensor_bytes(shape).unwrap();
    let mut out = vec![0u8; bytes];
    let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    if !blocks::quantize_row_ref(dtype, &x, &mut out) {
        for b in &mut out {
            *b = rng.next_u64() as u8;
        }
    }
    out
}

/// A small file with every value type and a few tensors.
pub fn sample_writer() -> Writer {
    let mut w = Writer::new();
    w.set_str("general.architecture", "llama");
    w.set_u32("llama.block_count", 2);
    w.set_f32("llama.rope.freq_base", 10000.0);
    w.set_bool("tokenizer.add_bos", true);
    w.set("tokenizer.scores", OwnedValue::F32(vec![0.0, -1.5, 2.25]));
    w.set("tokenizer.types", OwnedValue::I32(vec![1, -2, 3]));
    w.set("x.u64", OwnedValue::U64(vec![u64::MAX, 7]));
    w.set("x.i64", OwnedValue::I64(vec![-7]));
    w.set("x.f64", OwnedValue::F64(vec![0.5]));
    w.set(
        "tokenizer.tokens",
        OwnedValue::BytesArray(vec![b"<s>".to_vec(), vec![], b"hello".to_vec()]),
    );
    let mut rng = Rng::new(1);
    w.add_tensor(
        "a.weight",
        DType::Q8_0,
        &[3, 64],
        random_tensor(&mut rng, DType::Q8_0, &[3, 64]),
    )
    .unwrap();
    w.add_tensor_f32("b.norm", &[5], &[1.0, 2.0, 3.0, 4.0, 5.0])
        .unwrap();
    w.add_tensor(
        "c.weight",
        DType::F16,
        &[2, 3],
        random_tensor(&mut rng, DType::F16, &[2, 3]),
    )
    .unwrap();
    w
}
