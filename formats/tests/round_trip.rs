//! Write then read: every dtype, random shapes, every value type; output deterministic.
mod common;

use common::{random_tensor, sample_writer, Rng};
use ember_format::{AlignedBytes, DType, EmberFile, Value, Writer};

#[test]
fn every_dtype_with_random_shapes_round_trips() {
    let mut rng = Rng::new(42);
    let mut w = Writer::new();
    let mut expected = Vec::new();
    for (i, dtype) in DType::ALL.into_iter().enumerate() {
        for j in 0..4 {
            let ndim = 1 + rng.below(4) as usize;
            let mut shape: Vec<usize> = (0..ndim).map(|_| 1 + rng.below(5) as usize).collect();
            *shape.last_mut().unwrap() = dtype.block_len() * (1 + rng.below(3) as usize);
            let data = random_tensor(&mut rng, dtype, &shape);
            let name = format!("t{i:02}.{j}.{}", dtype.name());
            w.add_tensor(&name, dtype, &shape, data.clone()).unwrap();
            expected.push((name, dtype, shape, data));
        }
    }
    let bytes = AlignedBytes::from(w.to_vec());
    let file = EmberFile::parse(&bytes).unwrap();
    file.verify_checksum().unwrap();
    assert_eq!(file.tensor_count(), expected.len());
    for (name, dtype, shape, data) in &expected {
        let t = file.tensor(name).unwrap();
        assert_eq!(t.dtype, *dtype);
        assert_eq!(t.shape(), &shape[..]);
        assert_eq!(t.data, &data[..]);
        assert_eq!(t.offset % 64, 0);
    }
}

#[test]
fn every_value_type_round_trips() {
    let bytes = AlignedBytes::from(sample_writer().to_vec());
    let file = EmberFile::parse(&bytes).unwrap();
    assert_eq!(
        file.get("general.architecture").unwrap().as_str(),
        Some("llama")
    );
    assert_eq!(file.get("llama.block_count").unwrap().as_u32(), Some(2));
    assert_eq!(
        file.get("llama.rope.freq_base").unwrap().as_f32(),
        Some(10000.0)
    );
    assert_eq!(file.get("tokenizer.add_bos").unwrap().as_bool(), Some(true));
    assert_eq!(
        file.get("tokenizer.scores").unwrap().as_f32s(),
        Some(&[0.0, -1.5, 2.25][..])
    );
    assert_eq!(
        file.get("tokenizer.types").unwrap().as_i32s(),
        Some(&[1, -2, 3][..])
    );
    assert_eq!(file.get("x.u64"), Some(Value::U64(&[u64::MAX, 7])));
    assert_eq!(file.get("x.i64"), Some(Value::I64(&[-7])));
    assert_eq!(file.get("x.f64"), Some(Value::F64(&[0.5])));
    let toks = file
        .get("tokenizer.tokens")
        .unwrap()
        .as_bytes_array()
        .unwrap();
    assert_eq!(toks.len(), 3);
    assert_eq!(toks.get(0), Some(&b"<s>"[..]));
    assert_eq!(toks.get(1), Some(&b""[..]));
    assert_eq!(toks.get(2), Some(&b"hello"[..]));
    assert_eq!(toks.get(3), None);
    assert_eq!(toks.iter().count(), 3);
    assert!(file.get("missing").is_none());
    let keys: Vec<&str> = file.metadata().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn writing_is_deterministic_and_order_independent() {
    let a = sample_writer().to_vec();
    let b = sample_writer().to_vec();
    assert_eq!(a, b);
    // The same content added in another order gives the same bytes.
    let mut w1 = Writer::new();
    w1.set_u32("b", 1);
    w1.set_u32("a", 2);
    w1.add_tensor_f32("y", &[1], &[1.0]).unwrap();
    w1.add_tensor_f32("x", &[1], &[2.0]).unwrap();
    let mut w2 = Writer::new();
    w2.set_u32("a", 2);
    w2.set_u32("b", 1);
    w2.add_tensor_f32("x", &[1], &[2.0]).unwrap();
    w2.add_tensor_f32("y", &[1], &[1.0]).unwrap();
    assert_eq!(w1.to_vec(), w2.to_vec());
    let mut streamed = Vec::new();
    w1.write_to(&mut streamed).unwrap();
    assert_eq!(streamed, w1.to_vec());
}

#[test]
fn writer_rejects_bad_tensors() {
    let mut w = Writer::new();
    assert!(w
        .add_tensor("q", DType::Q4_0, &[2, 33], vec![0; 100])
        .is_err());
    assert!(w.add_tensor("q", DType::F32, &[2, 2], vec![0; 15]).is_err());
    assert!(w.add_tensor("", DType::F32, &[1], vec![0; 4]).is_err());
    assert!(w.add_tensor("q", DType::F32, &[], vec![]).is_err());
    assert!(w
        .add_tensor("q", DType::F32, &[1, 1, 1, 1, 1], vec![0; 4])
        .is_err());
    w.add_tensor("q", DType::F32, &[1], vec![0; 4]).unwrap();
    assert!(w.add_tensor("q", DType::F32, &[1], vec![0; 4]).is_err());
}

#[test]
fn empty_file_is_valid() {
    let bytes = AlignedBytes::from(Writer::new().to_vec());
    let file = EmberFile::parse(&bytes).unwrap();
    assert_eq!(file.tensor_count(), 0);
    assert_eq!(file.metadata().count(), 0);
    file.verify_checksum().unwrap();
}

#[test]
fn write_file_is_atomic() {
    let dir = std::env::temp_dir().join(format!("ember-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.ember");
    sample_writer().write_file(&path).unwrap();
    let bytes = AlignedBytes::from(std::fs::read(&path).unwrap());
    EmberFile::parse(&bytes).unwrap().verify_checksum().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}
