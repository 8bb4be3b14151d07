//! The rows16 layout: interleaving is exact and invertible, dequantized rows equal the
//! row-major ones, and the writer and reader accept it only where it applies.
mod common;

use common::{random_tensor, Rng};
use ember_format::{blocks, rows16, AlignedBytes, DType, EmberFile, Error, Layout, Writer};

/// Every block type the layout takes.
fn types() -> impl Iterator<Item = DType> {
    DType::ALL
        .into_iter()
        .filter(|&d| rows16::fields(d).is_some())
}

#[test]
fn interleave_round_trips_and_dequantizes_like_row_major() {
    let mut rng = Rng::new(16);
    for dtype in types() {
        // Blocks per row: 1, 3, 10 (of 32 weights, or of 256 for K-quants).
        let bl = dtype.block_len();
        for (rows, cols) in [(16, bl), (32, 3 * bl), (48, 10 * bl)] {
            let src = random_tensor(&mut rng, dtype, &[rows, cols]);
            let mut dst = vec![0u8; src.len()];
            rows16::interleave(dtype, rows, cols, &src, &mut dst);
            assert_ne!(src, dst, "{dtype:?}: the layout moves bytes");
            let bb = dtype.tensor_bytes(&[1, bl]).unwrap();
            let tb = rows16::tile_bytes(dtype).unwrap();
            assert_eq!(tb, 16 * bb);
            let nb = cols / bl;
            let mut block = [0u8; rows16::MAX_BLOCK_BYTES];
            let (mut want, mut got) = (vec![0f32; cols], vec![0f32; cols]);
            for r in 0..rows {
                for b in 0..nb {
                    let tile = &dst[((r / 16) * nb + b) * tb..][..tb];
                    rows16::block_of_row(dtype, tile, r % 16, &mut block);
                    assert_eq!(
                        &block[..bb],
                        &src[(r * nb + b) * bb..][..bb],
                        "{dtype:?} {rows}x{cols} row {r} block {b}"
                    );
                }
                let row = &src[r * nb * bb..(r + 1) * nb * bb];
                blocks::dequantize_row_ref(dtype, row, &mut want);
                rows16::dequantize_row(dtype, &dst, cols, r, &mut got);
                assert_eq!(
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn float_groups_are_column_major_and_round_trip() {
    let mut rng = Rng::new(17);
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let e = rows16::float_bytes(dtype).unwrap();
        for (rows, cols) in [(16, 1), (16, 7), (48, 100)] {
            let src = random_tensor(&mut rng, dtype, &[rows, cols]);
            let mut dst = vec![0u8; src.len()];
            rows16::interleave(dtype, rows, cols, &src, &mut dst);
            let (mut want, mut got) = (vec![0f32; cols], vec![0f32; cols]);
            for r in 0..rows {
                for k in 0..cols {
                    let a = (r * cols + k) * e;
                    let b = ((r / 16) * 16 * cols + k * 16 + r % 16) * e;
                    assert_eq!(src[a..a + e], dst[b..b + e], "{dtype:?} ({r}, {k})");
                }
                blocks::dequantize_row_ref(
                    dtype,
                    &src[r * cols * e..(r + 1) * cols * e],
                    &mut want,
                );
                rows16::dequantize_row(dtype, &dst, cols, r, &mut got);
                assert_eq!(
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn a_tile_puts_sixteen_rows_of_four_columns_in_one_chunk() {
    // Q4_0: row r's block has scale 0x0100 + r and nibble bytes 16r + i.
    let (rows, cols) = (16, 32);
    let mut src = Vec::new();
    for r in 0..rows as u8 {
        src.extend_from_slice(&(0x0100u16 + r as u16).to_le_bytes());
        src.extend((0..16u8).map(|i| r.wrapping_mul(16).wrapping_add(i)));
    }
    let mut dst = vec![0u8; src.len()];
    rows16::interleave(DType::Q4_0, rows, cols, &src, &mut dst);
    for r in 0..16 {
        assert_eq!(
            &dst[2 * r..2 * r + 2],
            &(0x0100u16 + r as u16).to_le_bytes()
        );
    }
    for a in 0..4 {
        for r in 0..16 {
            let at = 32 + 64 * a + 4 * r;
            let want: Vec<u8> = (0..4).map(|i| (16 * r + 4 * a + i) as u8).collect();
            assert_eq!(&dst[at..at + 4], &want[..], "chunk {a} row {r}");
        }
    }
}

#[test]
fn writer_and_reader_check_where_the_layout_applies() {
    let mut rng = Rng::new(5);
    let data = random_tensor(&mut rng, DType::Q4_1, &[32, 64]);
    let mut inter = vec![0u8; data.len()];
    rows16::interleave(DType::Q4_1, 32, 64, &data, &mut inter);
    let mut w = Writer::new();
    w.add_tensor_with_layout("m", DType::Q4_1, Layout::Rows16, &[32, 64], inter.clone())
        .unwrap();
    for (dtype, shape) in [
        (DType::Q4_1, [24, 64]),
        (DType::F16, [8, 64]),
        (DType::Q6K, [24, 256]),
        (DType::BF16, [20, 4]),
    ] {
        let bytes = vec![0u8; dtype.tensor_bytes(&shape).unwrap()];
        let err = w
            .add_tensor_with_layout("x", dtype, Layout::Rows16, &shape, bytes)
            .unwrap_err();
        assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
    }
    let buf = AlignedBytes::from(w.to_vec());
    let file = EmberFile::parse(&buf).unwrap();
    let t = file.tensor("m").unwrap();
    assert_eq!((t.layout, t.data), (Layout::Rows16, &inter[..]));
    assert_eq!(Layout::from_id(1), Some(Layout::Rows16));
    assert_eq!(Layout::Rows16.name(), "rows16");
}

/// `use_rows16` interleaves block-quantized matrices, but not a Q6_K head (output.weight,
/// or token_embd.weight where tied) of `ROW_MAJOR_Q6K_HEAD_COLS` columns or more, nor a
/// convolution kernel.
#[test]
fn the_writer_keeps_long_q6_k_heads_and_kernels_row_major() {
    let mut rng = Rng::new(9);
    let long = ember_format::ROW_MAJOR_Q6K_HEAD_COLS;
    for (tied, cols) in [(false, 256), (true, 256), (false, long), (true, long)] {
        let mut w = Writer::new();
        w.set_bool("model.tied_embeddings", tied);
        for name in [
            "output.weight",
            "token_embd.weight",
            "blk.0.ffn_down.weight",
        ] {
            let data = random_tensor(&mut rng, DType::Q6K, &[16, cols]);
            w.add_tensor(name, DType::Q6K, &[16, cols], data).unwrap();
        }
        let q4 = random_tensor(&mut rng, DType::Q4_0, &[32, 64]);
        w.add_tensor("output_q4", DType::Q4_0, &[32, 64], q4)
            .unwrap();
        w.add_tensor_f32("blk.0.shortconv.conv.weight", &[16, 3], &[0.5; 48])
            .unwrap();
        w.use_rows16();
        let buf = AlignedBytes::from(w.to_vec());
        let file = EmberFile::parse(&buf).unwrap();
        let layout = |n: &str| file.tensor(n).unwrap().layout;
        // A long-row Q6_K head stays row-major (the row dot is the faster there), as the
        // head or as the tied embedding; a short-row one goes to rows16 (its kernel
        // outstreams the row dot there), and so does any other matrix.
        let head = if cols >= long {
            Layout::RowMajor
        } else {
            Layout::Rows16
        };
        let embd = if tied { head } else { Layout::Rows16 };
        let what = format!("tied {tied}, {cols} columns");
        assert_eq!(layout("output.weight"), head, "{what}");
        assert_eq!(layout("token_embd.weight"), embd, "{what}");
        assert_eq!(layout("blk.0.ffn_down.weight"), Layout::Rows16, "{what}");
        assert_eq!(layout("output_q4"), Layout::Rows16);
        assert_eq!(layout("blk.0.shortconv.conv.weight"), Layout::RowMajor);
    }
}
