//! GGUF import on small synthetic files built here: RoPE un-permutation (f32 and Q4_1 rows),
//! tied and untied heads, `same` keeping blocks byte for byte, and a corruption suite
//! (every truncation, byte flips, absurd counts and dims) that must give errors, not panics.
mod common;

use common::*;
use ember_convert::gguf::{GgufBuilder, GgufFile};
use ember_convert::{build_gguf_bytes, Recipe};
use ember_format::blocks::quantize_row_ref;
use ember_format::{DType, EmberFile};

// A tiny llama: C=32, NH=2, KVH=1, HS=16, F=64, L=1, V=40.
const C: usize = 32;
const NH: usize = 2;
const KVH: usize = 1;
const HS: usize = 16;
const F: usize = 64;
const V: usize = 40;

/// llama.cpp's convert_hf_to_gguf permutation, written from its numpy:
/// `w.reshape(n_head, 2, hd/2, ...).swapaxes(1, 2).reshape(w.shape)`.
fn hf_to_gguf_rows(src: &[u8], rows: usize, heads: usize) -> Vec<u8> {
    let rb = src.len() / rows;
    let hd = rows / heads;
    let mut out = vec![0u8; src.len()];
    for h in 0..heads {
        for a in 0..2 {
            for i in 0..hd / 2 {
                // numpy index (h, a, i) moves to (h, i, a).
                let from = h * hd + a * (hd / 2) + i;
                let to = h * hd + i * 2 + a;
                out[to * rb..(to + 1) * rb].copy_from_slice(&src[from * rb..(from + 1) * rb]);
            }
        }
    }
    out
}

fn encode(dtype: DType, vals: &[f32], cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; dtype.row_bytes(cols).unwrap() * (vals.len() / cols)];
    assert!(quantize_row_ref(dtype, vals, &mut out));
    out
}

type SynthTensor = (String, Vec<usize>, DType, Vec<f32>, Vec<u8>);

/// HF-order weights of the tiny model and the GGUF built from them.
struct Synthetic {
    /// (name, shape, dtype in the GGUF, HF-order values as stored (already rounded by the
    /// dtype), HF-order bytes)
    tensors: Vec<SynthTensor>,
    gguf: Vec<u8>,
}

fn synthetic(tied: bool, qk_dtype: DType) -> Synthetic {
    let mut rng = Rng(0x5eed);
    let mut specs: Vec<(String, Vec<usize>, DType)> =
        vec![("token_embd.weight".into(), vec![V, C], DType::F16)];
    specs.push(("blk.0.attn_norm.weight".into(), vec![C], DType::F32));
    specs.push(("blk.0.attn_q.weight".into(), vec![NH * HS, C], qk_dtype));
    specs.push(("blk.0.attn_k.weight".into(), vec![KVH * HS, C], qk_dtype));
    specs.push(("blk.0.attn_v.weight".into(), vec![KVH * HS, C], DType::Q8_0));
    specs.push((
        "blk.0.attn_output.weight".into(),
        vec![C, NH * HS],
        DType::Q4_0,
    ));
    specs.push(("blk.0.ffn_norm.weight".into(), vec![C], DType::F32));
    specs.push(("blk.0.ffn_gate.weight".into(), vec![F, C], DType::Q5_0));
    specs.push(("blk.0.ffn_up.weight".into(), vec![F, C], DType::Q5_1));
    specs.push(("blk.0.ffn_down.weight".into(), vec![C, F], DType::BF16));
    specs.push(("output_norm.weight".into(), vec![C], DType::F32));
    if !tied {
        specs.push(("output.weight".into(), vec![V, C], DType::Q8_0));
    }

    let mut b = GgufBuilder::new();
    b.str("general.architecture", "llama")
        .str("general.name", "synthetic")
        .u32("general.alignment", 32)
        .u32("llama.context_length", 64)
        .u32("llama.embedding_length", C as u32)
        .u32("llama.block_count", 1)
        .u32("llama.feed_forward_length", F as u32)
        .u32("llama.attention.head_count", NH as u32)
        .u32("llama.attention.head_count_kv", KVH as u32)
        .f32("llama.rope.freq_base", 500_000.0)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-6)
        .u32("llama.rope.dimension_count", HS as u32);
    // A byte-level BPE vocabulary: 36 single characters, 4 merges, V = 40 tokens.
    let mut tokens: Vec<String> = (b'a'..=b'z')
        .chain(b'0'..=b'9')
        .map(|c| (c as char).to_string())
        .collect();
    tokens.extend(["ab", "cd", "abcd", "<|end|>"].map(String::from));
    let types: Vec<i32> = (0..V).map(|i| if i == V - 1 { 3 } else { 1 }).collect();
    b.str("tokenizer.ggml.model", "gpt2")
        .str("tokenizer.ggml.pre", "gpt-2")
        .str_array("tokenizer.ggml.tokens", &tokens)
        .str_array("tokenizer.ggml.merges", &["a b", "c d", "ab cd"])
        .i32_array("tokenizer.ggml.token_type", &types)
        .u32("tokenizer.ggml.bos_token_id", V as u32 - 1)
        .u32("tokenizer.ggml.eos_token_id", V as u32 - 1)
        .bool("tokenizer.ggml.add_bos_token", false)
        .str("tokenizer.chat_template", "{{ messages }}");

    let mut tensors = Vec::new();
    for (name, shape, dtype) in specs {
        let cols = *shape.last().unwrap();
        let raw = rng.vec(shape.iter().product());
        let hf_bytes = encode(dtype, &raw, cols);
        let vals = to_f32(dtype, &shape, &hf_bytes);
        let stored = if name.contains("attn_q") {
            hf_to_gguf_rows(&hf_bytes, shape[0], NH)
        } else if name.contains("attn_k") {
            hf_to_gguf_rows(&hf_bytes, shape[0], KVH)
        } else {
            hf_bytes.clone()
        };
        b.tensor(&name, dtype, &shape, stored);
        tensors.push((name, shape, dtype, vals, hf_bytes));
    }
    Synthetic {
        tensors,
        gguf: b.build(),
    }
}

#[test]
fn f32_output_is_the_hf_order_weights() {
    for tied in [false, true] {
        for qk in [DType::F32, DType::Q4_1, DType::Q4K, DType::Q6K] {
            if qk.block_len() > C {
                continue; // rows of 32 cannot hold a 256-element K-quant block
            }
            let s = synthetic(tied, qk);
            let (w, sum) = build_gguf_bytes(&s.gguf, "synthetic.gguf", Recipe::F32).unwrap();
            let bytes = file_bytes(&w);
            let f = EmberFile::parse(&bytes).unwrap();
            for (name, shape, _, vals, _) in &s.tensors {
                let t = f.tensor(name).unwrap();
                assert_eq!(t.dtype, DType::F32, "{name}");
                assert_eq!(t.shape(), &shape[..], "{name}");
                assert_eq!(t.as_f32().unwrap(), &vals[..], "{name} ({qk})");
            }
            assert_eq!(f.tensor_count(), s.tensors.len());
            assert_eq!(sum.tensors, s.tensors.len());
            assert_eq!(meta_bool(&f, "model.tied_embeddings"), tied);
            assert_eq!(f.tensor("output.weight").is_some(), !tied);
            assert_eq!(meta_str(&f, "general.name"), "synthetic");
            assert_eq!(meta_str(&f, "general.source"), "synthetic.gguf");
            assert_eq!(meta_str(&f, "general.quantization"), "f32");
            assert_eq!(meta_u32(&f, "model.vocab_size"), V as u32);
            assert_eq!(meta_u32(&f, "model.context_length"), 64);
            assert_eq!(meta_u32(&f, "model.head_count"), NH as u32);
            assert_eq!(meta_u32(&f, "model.kv_head_count"), KVH as u32);
            assert_eq!(meta_u32(&f, "model.head_dim"), HS as u32);
            assert_eq!(meta_u32(&f, "model.ffn_dim"), F as u32);
            assert_eq!(meta_f32(&f, "model.rope_theta"), 500_000.0);
            assert_eq!(meta_f32(&f, "model.norm_eps"), 1e-6);
            assert_eq!(meta_str(&f, "tokenizer.chat_template"), "{{ messages }}");
        }
    }
}

#[test]
fn gguf_v2_reads_like_v3() {
    let s = synthetic(true, DType::F32);
    let mut v2 = s.gguf.clone();
    v2[4..8].copy_from_slice(&2u32.to_le_bytes());
    let (w3, _) = build_gguf_bytes(&s.gguf, "synthetic.gguf", Recipe::F32).unwrap();
    let (w2, _) = build_gguf_bytes(&v2, "synthetic.gguf", Recipe::F32).unwrap();
    assert_eq!(w2.to_vec(), w3.to_vec());
}

#[test]
fn same_keeps_blocks_byte_for_byte_in_hf_row_order() {
    let s = synthetic(true, DType::Q4_1);
    let (w, sum) = build_gguf_bytes(&s.gguf, "synthetic.gguf", Recipe::Same).unwrap();
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    assert_eq!(meta_str(&f, "general.quantization"), "same");
    for (name, _, dtype, _, hf_bytes) in &s.tensors {
        let t = f.tensor(name).unwrap();
        assert_eq!(t.dtype, *dtype, "{name}");
        assert_eq!(t.data, &hf_bytes[..], "{name}");
    }
    assert!(sum.bits_per_weight() < 32.0);
}

#[test]
fn requantizing_a_quantized_gguf() {
    let s = synthetic(false, DType::Q4_1);
    let (w, _) = build_gguf_bytes(&s.gguf, "synthetic.gguf", Recipe::Q8_0).unwrap();
    let bytes = file_bytes(&w);
    let f = EmberFile::parse(&bytes).unwrap();
    for (name, shape, dtype, vals, _) in &s.tensors {
        let t = f.tensor(name).unwrap();
        if shape.len() == 1 {
            assert_eq!(t.dtype, DType::F32);
            continue;
        }
        assert_eq!(t.dtype, DType::Q8_0, "{name}");
        if *dtype == DType::Q8_0 {
            // Already the target type: copied, not requantized.
            assert_eq!(tensor_f32(&f, name).1, *vals, "{name}");
        } else {
            // Dequantized exactly, then quantized once by the error-minimizing search: no
            // worse than ggml's reference quantizer.
            let reference = to_f32(DType::Q8_0, shape, &encode(DType::Q8_0, vals, shape[1]));
            let got = tensor_f32(&f, name).1;
            let err = |y: &[f32]| -> f64 {
                y.iter()
                    .zip(vals)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum()
            };
            assert!(err(&got) <= err(&reference), "{name}");
        }
    }
}

#[test]
fn other_architectures_and_missing_keys_are_clear_errors() {
    let mut b = GgufBuilder::new();
    b.str("general.architecture", "bert");
    let e = build_gguf_bytes(&b.build(), "x.gguf", Recipe::F32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unsupported GGUF architecture 'bert' (supported: llama, qwen2, qwen3, gemma3, smollm3, phi3, olmo2, qwen3moe, gemma4, lfm2, granitehybrid, qwen35)"),
        "{e}"
    );

    let mut b = GgufBuilder::new();
    b.str("general.architecture", "llama");
    let e = build_gguf_bytes(&b.build(), "x.gguf", Recipe::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("llama.embedding_length"), "{e}");

    // A missing tensor is named.
    let s = synthetic(true, DType::F32);
    let g = GgufFile::parse(&s.gguf).unwrap();
    let mut b = GgufBuilder::new();
    copy_kv(&g, &mut b);
    for t in g.tensors.iter().filter(|t| t.name != "blk.0.ffn_up.weight") {
        b.tensor(&t.name, t.dtype, &t.shape, t.data.to_vec());
    }
    let e = build_gguf_bytes(&b.build(), "x.gguf", Recipe::F32)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "missing tensor blk.0.ffn_up.weight");

    // A wrong shape is named.
    let mut b = GgufBuilder::new();
    copy_kv(&g, &mut b);
    for t in &g.tensors {
        if t.name == "blk.0.ffn_gate.weight" {
            b.tensor(&t.name, DType::F32, &[F / 2, C], vec![0; F / 2 * C * 4]);
        } else {
            b.tensor(&t.name, t.dtype, &t.shape, t.data.to_vec());
        }
    }
    let e = build_gguf_bytes(&b.build(), "x.gguf", Recipe::F32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("blk.0.ffn_gate.weight") && e.contains("[32, 32]") && e.contains("[64, 32]"),
        "{e}"
    );

    // An unsupported ggml type is named.
    let mut b = GgufBuilder::new();
    b.str("general.architecture", "llama").raw_tensor(
        "token_embd.weight",
        10,
        vec![256, 4],
        None,
        vec![0; 4 * 84],
    );
    let e = GgufFile::parse(&b.build()).unwrap_err().to_string();
    assert!(e.contains("token_embd.weight") && e.contains("q2_k"), "{e}");
}

/// Copies every key of `g` into `b` (re-encoded through the public accessors).
fn copy_kv(g: &GgufFile<'_>, b: &mut GgufBuilder) {
    copy_kv_except(g, b, &[]);
}

/// Copies every key of `g` but `skip` into `b`.
fn copy_kv_except(g: &GgufFile<'_>, b: &mut GgufBuilder, skip: &[&str]) {
    use ember_convert::gguf::Value;
    for (k, v) in &g.metadata {
        if skip.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::U32(x) => {
                b.u32(k, *x);
            }
            Value::F32(x) => {
                b.f32(k, *x);
            }
            Value::Bool(x) => {
                b.bool(k, *x);
            }
            Value::Str(_) => {
                b.str(k, v.as_str().unwrap());
            }
            Value::Array(a) => {
                if let Some(s) = a.strings() {
                    b.str_array(k, &s);
                } else if let Some(x) = a.i32s() {
                    b.i32_array(k, &x);
                } else {
                    b.f32_array(k, &a.f32s().unwrap());
                }
            }
            other => panic!("{k}: {other:?}"),
        }
    }
}

/// Parsing and converting must never panic; returns whether the parse succeeded.
fn try_all(bytes: &[u8]) -> bool {
    match GgufFile::parse(bytes) {
        Ok(g) => {
            // Walk every accessor.
            for v in g.metadata.values() {
                let _ = (v.as_u64(), v.as_f64(), v.as_str(), v.as_bool());
                if let Some(a) = v.as_array() {
                    let _ = (a.strings(), a.f32s(), a.i32s(), a.values());
                }
            }
            let _ = build_gguf_bytes(bytes, "fuzz.gguf", Recipe::Same);
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let s = synthetic(true, DType::Q4_1);
    let g = GgufFile::parse(&s.gguf).unwrap();
    // The last tensor ends at the end of the file, so every cut loses bytes that matter.
    let end = g
        .tensors
        .iter()
        .map(|t| t.offset + t.data.len() as u64)
        .max()
        .unwrap();
    assert_eq!(g.data_offset + end, s.gguf.len() as u64);
    for len in 0..s.gguf.len() {
        let cut = &s.gguf[..len];
        assert!(GgufFile::parse(cut).is_err(), "truncated to {len} parsed");
        assert!(build_gguf_bytes(cut, "t.gguf", Recipe::F32).is_err());
    }
}

#[test]
fn byte_flips_never_panic() {
    let s = synthetic(false, DType::Q4_1);
    let data_offset = GgufFile::parse(&s.gguf).unwrap().data_offset as usize;
    let mut ok = 0;
    let mut bad = 0;
    let mut buf = s.gguf.clone();
    for i in 0..buf.len() {
        // Every header byte; a sample of the data section (only values live there).
        if i >= data_offset && i % 61 != 0 {
            continue;
        }
        for mask in [0x01u8, 0x80, 0xFF] {
            buf[i] ^= mask;
            if try_all(&buf) {
                ok += 1;
            } else {
                bad += 1;
            }
            buf[i] ^= mask;
        }
    }
    eprintln!("byte flips: {ok} parsed, {bad} rejected");
    assert!(bad > 0 && ok > 0);
}

#[test]
fn absurd_counts_dims_and_offsets_are_errors() {
    let base = || {
        let mut b = GgufBuilder::new();
        b.str("general.architecture", "llama");
        b
    };
    let expect_err = |bytes: Vec<u8>, needle: &str| {
        let e = GgufFile::parse(&bytes).unwrap_err().to_string();
        assert!(e.contains(needle), "expected '{needle}' in: {e}");
    };

    let mut b = base();
    b.tensor_count_override = Some(1 << 60);
    expect_err(b.build(), "cannot fit");
    let mut b = base();
    b.kv_count_override = Some(u64::MAX);
    expect_err(b.build(), "cannot fit");

    // A key whose length is 2^63.
    let mut bytes = base().build();
    bytes[24..32].copy_from_slice(&(1u64 << 63).to_le_bytes());
    expect_err(bytes, "truncated");

    // Array counts of 2^60 (strings) and 2^62 (u64: the byte count overflows).
    for (elem, count) in [(8u32, 1u64 << 60), (10, 1 << 62), (9, 1 << 61)] {
        let mut v = elem.to_le_bytes().to_vec();
        v.extend_from_slice(&count.to_le_bytes());
        let mut b = base();
        b.raw_kv("big", 9, v);
        assert!(GgufFile::parse(&b.build()).is_err());
    }
    // Arrays nested past the depth limit.
    let mut v = Vec::new();
    for _ in 0..16 {
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    let mut b = base();
    b.raw_kv("deep", 9, v);
    expect_err(b.build(), "nested");
    // Unknown value type, bool 2.
    let mut b = base();
    b.raw_kv("odd", 13, vec![0; 8]);
    expect_err(b.build(), "unknown value type 13");
    let mut b = base();
    b.raw_kv("flag", 7, vec![2]);
    expect_err(b.build(), "bool");
    // Duplicate keys.
    let mut b = base();
    b.u32("k", 1).u32("k", 2);
    expect_err(b.build(), "duplicate metadata key 'k'");

    let t32 = |b: &mut GgufBuilder, name: &str, dims: Vec<u64>, offset: Option<u64>| {
        b.raw_tensor(name, 0, dims, offset, vec![0; 128]);
    };
    // Dims: zero, 2^62 (size overflows), five of them.
    for dims in [
        vec![0, 4],
        vec![1 << 40, 1 << 40, 1 << 40],
        vec![1; 5],
        vec![],
    ] {
        let mut b = base();
        t32(&mut b, "t", dims, None);
        assert!(GgufFile::parse(&b.build()).is_err());
    }
    // Offsets: misaligned, past the end, 2^64 - 32 (overflow), overlapping.
    let mut b = base();
    t32(&mut b, "t", vec![8], Some(4));
    expect_err(b.build(), "not a multiple of the alignment");
    let mut b = base();
    t32(&mut b, "t", vec![32], Some(64));
    expect_err(b.build(), "past the end");
    let mut b = base();
    t32(&mut b, "t", vec![8], Some(u64::MAX - 31));
    expect_err(b.build(), "overflows");
    let mut b = base();
    t32(&mut b, "a", vec![16], Some(0));
    t32(&mut b, "b", vec![16], Some(32));
    expect_err(b.build(), "overlap");
    // Duplicate tensor names, bad alignment values.
    let mut b = base();
    t32(&mut b, "a", vec![8], None);
    t32(&mut b, "a", vec![8], None);
    expect_err(b.build(), "duplicate tensor 'a'");
    for align in [0u32, 3, 48] {
        let mut b = base();
        b.u32("general.alignment", align);
        expect_err(b.build(), "general.alignment");
    }
    // A block-quantized row that is not whole blocks.
    let mut b = base();
    b.raw_tensor("q", DType::Q4_0.id(), vec![33, 1], None, vec![0; 64]);
    expect_err(b.build(), "blocks");
    // Versions and magic.
    let mut b = base();
    b.version = 1;
    expect_err(b.build(), "version 1");
    b.version = 3u32.swap_bytes();
    expect_err(b.build(), "big-endian");
    b.version = 4;
    expect_err(b.build(), "version 4");
    expect_err(b"GGML\x03\0\0\0".to_vec(), "not a GGUF file");
}

#[test]
fn a_gguf_file_on_disk_converts_and_detects() {
    let s = synthetic(true, DType::Q4_1);
    let dir = temp_dir("gguf");
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, &s.gguf).unwrap();
    assert_eq!(
        ember_convert::detect(&path).unwrap().0,
        ember_convert::InputKind::Gguf
    );
    let (w, sum) = ember_convert::build(&path, None, false).unwrap();
    assert_eq!(sum.recipe, Recipe::Same, "GGUF defaults to same");
    assert_eq!(w.tensor_names().count(), s.tensors.len());
    // A truncated file on disk: one clear line naming the file.
    std::fs::write(&path, &s.gguf[..s.gguf.len() - 1]).unwrap();
    let e = ember_convert::build(&path, None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tiny.gguf") && e.contains("truncated"), "{e}");
    assert!(!e.contains('\n'));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Regenerates the committed fuzz seeds (fuzz/seeds/*):
/// `cargo test -p ember-convert --test gguf -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    use ember_format::{OwnedValue, Writer};
    let root = repo_root().join("fuzz/seeds");
    let gguf_dir = root.join("gguf_parse");
    let ember_dir = root.join("ember_parse");
    std::fs::create_dir_all(&gguf_dir).unwrap();
    std::fs::create_dir_all(&ember_dir).unwrap();

    let s = synthetic(true, DType::Q4_1);
    std::fs::write(gguf_dir.join("synthetic_llama.gguf"), &s.gguf).unwrap();
    let mut b = GgufBuilder::new();
    b.str("general.architecture", "llama")
        .u32("general.alignment", 64)
        .f32_array("a", &[1.0, 2.0])
        .tensor("t", DType::Q8_0, &[1, 32], vec![0; 34]);
    std::fs::write(gguf_dir.join("minimal.gguf"), b.build()).unwrap();

    let (w, _) = build_gguf_bytes(&s.gguf, "synthetic.gguf", Recipe::Same).unwrap();
    std::fs::write(ember_dir.join("synthetic_llama.ember"), w.to_vec()).unwrap();
    let mut w = Writer::new();
    w.set_str("s", "text");
    w.set("i", OwnedValue::I32(vec![-1, 2]));
    w.set("u", OwnedValue::U32(vec![7]));
    w.set("f", OwnedValue::F32(vec![0.5]));
    w.set("q", OwnedValue::U64(vec![1 << 40]));
    w.set("j", OwnedValue::I64(vec![-3]));
    w.set("d", OwnedValue::F64(vec![2.5]));
    w.set_bool("b", true);
    w.set(
        "a",
        OwnedValue::BytesArray(vec![b"x".to_vec(), vec![], b"yz".to_vec()]),
    );
    w.add_tensor_f32("v", &[3], &[1.0, 2.0, 3.0]).unwrap();
    w.add_tensor("m", DType::Q4_0, &[2, 32], vec![1; 36])
        .unwrap();
    std::fs::write(ember_dir.join("small.ember"), w.to_vec()).unwrap();
}

/// A mixture-of-experts GGUF with impossible expert counts: one clear error each.
#[test]
fn bad_expert_counts_are_clear_errors() {
    let Some(dir) = common::shared_fixture("tiny-qwen3moe") else {
        eprintln!("SKIPPED: bad_expert_counts_are_clear_errors: ../shared/fixtures absent");
        return;
    };
    let bytes = std::fs::read(dir.join("model-f32.gguf")).unwrap();
    let g = GgufFile::parse(&bytes).unwrap();
    for (key, value, want) in [
        (
            "qwen3moe.expert_count",
            0,
            "expert_count = 0 is out of range",
        ),
        (
            "qwen3moe.expert_used_count",
            9,
            "experts used per token 9 is out of range (1 to 8)",
        ),
        ("qwen3moe.expert_count", 4, "blk.0.ffn_gate_inp.weight"),
    ] {
        let mut b = GgufBuilder::new();
        copy_kv_except(&g, &mut b, &[key]);
        b.u32(key, value);
        for t in &g.tensors {
            b.tensor(&t.name, t.dtype, &t.shape, t.data.to_vec());
        }
        let e = build_gguf_bytes(&b.build(), "x.gguf", Recipe::F32)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{key} = {value}: {e}");
    }
}
