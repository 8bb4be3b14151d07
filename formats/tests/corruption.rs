//! A hostile-input suite: every truncation, random byte flips, absurd dimensions, overlapping
//! and misaligned offsets. Each must give an `Err`, never a panic.
mod common;

use common::{sample_writer, Rng};
use ember_format::{layout, AlignedBytes, EmberFile, Error};

fn sample() -> Vec<u8> {
    sample_writer().to_vec()
}

/// Parse, then exercise every accessor, as `ember inspect --verify` does.
fn parse_and_walk(bytes: &[u8]) -> Result<(), Error> {
    let buf = AlignedBytes::from(bytes);
    let file = EmberFile::parse(&buf)?;
    for (_, v) in file.metadata() {
        if let Some(arr) = v.as_bytes_array() {
            for i in 0..=arr.len() {
                let _ = arr.get(i);
            }
        }
    }
    for t in file.tensors() {
        let _ = (t.shape(), t.as_f32(), t.data.len());
    }
    file.verify_checksum()
}

fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Rewrites the checksum so a structural error is reached rather than a checksum error.
fn reseal(bytes: &mut [u8]) {
    let sum = ember_format::checksum(bytes);
    put_u64(bytes, layout::CHECKSUM_AT, sum);
}

#[test]
fn every_truncation_is_an_error() {
    let full = sample();
    assert!(parse_and_walk(&full).is_ok());
    for len in 0..full.len() {
        let err = parse_and_walk(&full[..len]).expect_err("truncated file accepted");
        let _ = err.to_string();
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    let full = sample();
    let mut rng = Rng::new(7);
    for at in 0..full.len() {
        let mut bytes = full.clone();
        bytes[at] ^= 1 << rng.below(8);
        assert!(parse_and_walk(&bytes).is_err(), "flip at {at} not detected");
    }
}

#[test]
fn random_multi_byte_corruption_never_panics() {
    let full = sample();
    let mut rng = Rng::new(99);
    for _ in 0..3000 {
        let mut bytes = full.clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next_u64() as u8;
        }
        // Also reseal half of them so the structural checks, not the checksum, must catch it.
        if rng.below(2) == 0 {
            reseal(&mut bytes);
        }
        let _ = parse_and_walk(&bytes);
    }
}

fn dir_offset(bytes: &[u8]) -> usize {
    get_u64(bytes, 56) as usize
}

#[test]
fn absurd_dimensions_are_rejected() {
    let full = sample();
    let first_dims = dir_offset(&full) + 16;
    for v in [0u64, 1 << 41, u64::MAX, 1 << 32] {
        let mut bytes = full.clone();
        put_u64(&mut bytes, first_dims, v);
        reseal(&mut bytes);
        assert!(parse_and_walk(&bytes).is_err(), "dim {v} accepted");
    }
    // ndim 0 and 9
    for ndim in [0u32, 9] {
        let mut bytes = full.clone();
        let at = dir_offset(&full) + 12;
        bytes[at..at + 4].copy_from_slice(&ndim.to_le_bytes());
        reseal(&mut bytes);
        assert!(matches!(
            parse_and_walk(&bytes),
            Err(Error::BadShape { .. })
        ));
    }
}

#[test]
fn overlapping_and_misaligned_offsets_are_rejected() {
    let full = sample();
    let buf = AlignedBytes::from(full.as_slice());
    let file = EmberFile::parse(&buf).unwrap();
    let first = file.tensors().next().unwrap();
    // Entry 0 is "a.weight" (name 8 bytes): entry 1 starts 64 + 8 bytes later.
    let e0 = dir_offset(&full);
    let e1 = e0 + 64 + 8;
    for (entry, offset) in [
        (e1, first.offset),      // tensor 1 overlaps tensor 0
        (e0, first.offset + 8),  // misaligned
        (e0, 0),                 // inside the header
        (e0, full.len() as u64), // past the end
        (e0, u64::MAX - 63),     // overflow
    ] {
        let mut bytes = full.clone();
        put_u64(&mut bytes, entry + 48, offset);
        reseal(&mut bytes);
        assert!(
            matches!(parse_and_walk(&bytes), Err(Error::BadTensorOffset { .. })),
            "offset {offset} at entry {entry}"
        );
    }
}

#[test]
fn header_section_lengths_are_checked() {
    let full = sample();
    for field in [32usize, 40, 48, 56, 64, 72, 80, 88] {
        let original = get_u64(&full, field);
        for v in [
            u64::MAX,
            full.len() as u64 + 1,
            original + 1,
            original.wrapping_sub(8),
        ] {
            let mut bytes = full.clone();
            put_u64(&mut bytes, field, v);
            reseal(&mut bytes);
            assert!(parse_and_walk(&bytes).is_err(), "field {field} = {v}");
        }
    }
}

#[test]
fn errors_name_the_problem() {
    let mut bytes = sample();
    bytes[0] = b'X';
    assert_eq!(parse_and_walk(&bytes), Err(Error::BadMagic));
    let mut bytes = sample();
    // A byte of the last tensor's data (the file's last bytes are padding, checked at parse).
    let last = {
        let buf = AlignedBytes::from(bytes.as_slice());
        let file = EmberFile::parse(&buf).unwrap();
        let t = file.tensors().last().unwrap();
        t.offset as usize + t.data.len() - 1
    };
    bytes[last] ^= 0xFF;
    let msg = parse_and_walk(&bytes).unwrap_err().to_string();
    assert!(msg.contains("checksum"), "{msg}");
    let bytes = sample();
    let msg = parse_and_walk(&bytes[..bytes.len() / 2])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn unknown_dtype_and_layout_are_rejected() {
    let full = sample();
    let e0 = dir_offset(&full);
    let mut bytes = full.clone();
    bytes[e0 + 4..e0 + 8].copy_from_slice(&77u32.to_le_bytes());
    reseal(&mut bytes);
    assert!(matches!(
        parse_and_walk(&bytes),
        Err(Error::UnknownDtype { dtype: 77, .. })
    ));
    let mut bytes = full.clone();
    bytes[e0 + 8..e0 + 12].copy_from_slice(&5u32.to_le_bytes());
    reseal(&mut bytes);
    assert!(matches!(
        parse_and_walk(&bytes),
        Err(Error::UnknownLayout { layout: 5, .. })
    ));
    // rows16 is known, but not for the first tensor's dtype or shape.
    let mut bytes = full.clone();
    bytes[e0 + 8..e0 + 12].copy_from_slice(&1u32.to_le_bytes());
    reseal(&mut bytes);
    let err = parse_and_walk(&bytes).unwrap_err();
    assert!(
        matches!(err, Error::LayoutMismatch { .. }),
        "{err}: the sample's first tensor must not be rows16-eligible"
    );
}

#[test]
fn absurd_bytes_array_count_is_rejected() {
    // Found by fuzzing: a count whose offsets table length overflows.
    let full = sample();
    let key = b"tokenizer.tokens";
    let at = full.windows(key.len()).position(|w| w == key).unwrap();
    let value = at + key.len().div_ceil(8) * 8;
    for count in [0x3FFF_FFFF_FFFF_FFFEu64, u64::MAX, u64::MAX / 4, 1 << 40] {
        let mut bytes = full.clone();
        put_u64(&mut bytes, value, count);
        reseal(&mut bytes);
        assert!(parse_and_walk(&bytes).is_err(), "count {count:#x} accepted");
    }
}

/// Every padding byte docs/FORMAT.md says is zero (after a key, a value, a tensor name,
/// between the directory and the data, between tensors) is checked: a non-zero one is an
/// error even when the checksum was recomputed over it.
#[test]
fn non_zero_padding_is_rejected() {
    use ember_format::{Section, Writer};
    let mut w = Writer::new();
    w.set("abc", ember_format::OwnedValue::U8(vec![7]));
    w.set(
        "bytes",
        ember_format::OwnedValue::BytesArray(vec![b"x".to_vec(), b"y".to_vec()]),
    );
    w.add_tensor_f32("t", &[3], &[1.0, 2.0, 3.0]).unwrap();
    w.add_tensor_f32("u", &[1], &[4.0]).unwrap();
    let good = w.to_vec();
    let file_buf = AlignedBytes::from(good.as_slice());
    let file = EmberFile::parse(&file_buf).unwrap();
    let h = *file.header();
    let base = file_buf.as_ptr() as usize;
    let ts: Vec<_> = file.tensors().collect();
    let (t, u) = (&ts[0], &ts[1]);
    let t_end = t.offset as usize + t.data.len();
    let name_end = t.name.as_ptr() as usize - base + t.name.len();
    let key = layout::HEADER_LEN + layout::META_ENTRY_FIXED; // "abc", then 5 padding bytes
    let mut padding: Vec<(usize, Section)> = vec![
        (key + 3, Section::Metadata),
        (key + 4, Section::Metadata),
        (key + 8 + 1, Section::Metadata), // after the 1-byte value
        (key + 15, Section::Metadata),
        (name_end, Section::TensorDirectory),
        ((h.dir_offset + h.dir_len) as usize, Section::TensorData),
        (h.data_offset as usize - 1, Section::TensorData),
        (t_end, Section::TensorData),
        (u.offset as usize - 1, Section::TensorData),
    ];
    // bytes[] ["x", "y"]: u64 count, u32 offsets[3], then 4 padding bytes before the blob.
    let v = file.get("bytes").unwrap().as_bytes_array().unwrap();
    let blob = v.get(0).unwrap().as_ptr() as usize - base;
    padding.push((blob - 1, Section::Metadata));
    assert!((h.dir_offset + h.dir_len) < h.data_offset && t_end < u.offset as usize);
    for (at, section) in padding {
        assert_eq!(good[at], 0, "byte {at} is padding");
        let mut bad = good.clone();
        bad[at] = 0x20;
        reseal(&mut bad);
        let buf = AlignedBytes::from(bad.as_slice());
        assert_eq!(
            EmberFile::parse(&buf).err(),
            Some(Error::NonZeroPadding(section)),
            "padding byte {at}"
        );
    }
}
