//! The runtime tokenizer loader against hand-built `.ember` metadata: a small valid byte-level
//! BPE, then a corruption suite (truncated arrays, out-of-range ids in every table, unsorted
//! tables, bad types, every truncation and random byte flips of the file). Errors, never
//! panics. (ember-runtime does not enable ember-format's writer, so this test writes the
//! few metadata entries itself, following docs/FORMAT.md.)

use ember_format::EmberFile;
use ember_runtime::tokenizer::{StreamDecoder, Tokenizer, TokenizerError};

#[derive(Clone, Debug)]
enum Val {
    U8(Vec<u8>),
    U32(Vec<u32>),
    Str(String),
    Bytes(Vec<Vec<u8>>),
}

fn pad8(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(8) {
        v.push(0);
    }
}

/// A metadata-only `.ember` file (docs/FORMAT.md), in u64 words so it is 8-byte aligned.
fn build(meta: &[(&str, Val)]) -> Vec<u64> {
    let mut meta: Vec<(&str, Val)> = meta.to_vec();
    meta.sort_by(|a, b| a.0.cmp(b.0));
    let mut m = Vec::new();
    for (key, val) in &meta {
        let (ty, mut value): (u32, Vec<u8>) = match val {
            Val::U8(v) => (0, v.clone()),
            Val::U32(v) => (2, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Val::Str(s) => (7, s.as_bytes().to_vec()),
            Val::Bytes(items) => {
                let mut out = (items.len() as u64).to_le_bytes().to_vec();
                let mut off = 0u32;
                out.extend(off.to_le_bytes());
                for it in items {
                    off += it.len() as u32;
                    out.extend(off.to_le_bytes());
                }
                pad8(&mut out);
                for it in items {
                    out.extend(it);
                }
                (8, out)
            }
        };
        m.extend((key.len() as u32).to_le_bytes());
        m.extend(ty.to_le_bytes());
        m.extend((value.len() as u64).to_le_bytes());
        m.extend(key.as_bytes());
        pad8(&mut m);
        pad8(&mut value);
        m.extend(value);
    }
    let meta_len = m.len() as u64;
    let dir_offset = 128 + meta_len;
    let data_offset = dir_offset.div_ceil(64) * 64;
    let mut f = vec![0u8; 128];
    f[..8].copy_from_slice(b"EMBERFMT");
    f[8..10].copy_from_slice(&1u16.to_le_bytes());
    let fields: [(usize, u64); 10] = [
        (16, data_offset),
        (32, 128),
        (40, meta_len),
        (48, meta.len() as u64),
        (56, dir_offset),
        (64, 0),
        (72, 0),
        (80, data_offset),
        (88, 0),
        (24, 0),
    ];
    for (at, v) in fields {
        f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    f.extend(m);
    f.resize(data_offset as usize, 0);
    f.chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn bytes(words: &[u64]) -> &[u8] {
    bytemuck::cast_slice(words)
}

/// A valid byte-level BPE: 256 byte tokens, merges he, ll, hell, hello, and `<|end|>`.
fn valid() -> Vec<(&'static str, Val)> {
    let mut tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    tokens.extend([
        b"he".to_vec(),
        b"ll".to_vec(),
        b"hell".to_vec(),
        b"hello".to_vec(),
        b"<|end|>".to_vec(),
    ]);
    let mut types = vec![1u8; 260];
    types.push(3);
    let mut index: Vec<u32> = (0..261).collect();
    index.sort_by(|&a, &b| tokens[a as usize].cmp(&tokens[b as usize]));
    let h = b'h' as u32;
    let e = b'e' as u32;
    let l = b'l' as u32;
    let o = b'o' as u32;
    let mut merges = [
        [h, e, 0, 256],
        [l, l, 1, 257],
        [256, 257, 2, 258],
        [258, o, 3, 259],
    ];
    merges.sort();
    vec![
        ("tokenizer.model", Val::Str("bpe".into())),
        ("tokenizer.pre", Val::Str("gpt2".into())),
        ("tokenizer.tokens", Val::Bytes(tokens)),
        ("tokenizer.token_types", Val::U8(types)),
        ("tokenizer.token_index", Val::U32(index)),
        ("tokenizer.byte_ids", Val::U32((0..256).collect())),
        ("tokenizer.merges", Val::U32(merges.concat())),
        ("tokenizer.special_ids", Val::U32(vec![260])),
        ("tokenizer.special_flags", Val::U8(vec![0])),
        ("tokenizer.eos_id", Val::U32(vec![260])),
        ("tokenizer.eog_ids", Val::U32(vec![260])),
        ("tokenizer.add_bos", Val::U8(vec![0])),
        ("tokenizer.chat_template", Val::Str("{{ x }}".into())),
    ]
}

fn with(key: &'static str, val: Option<Val>) -> Vec<(&'static str, Val)> {
    let mut m: Vec<_> = valid().into_iter().filter(|(k, _)| *k != key).collect();
    if let Some(v) = val {
        m.push((key, v));
    }
    m
}

fn load(meta: &[(&str, Val)]) -> Result<usize, TokenizerError> {
    let words = build(meta);
    let file = EmberFile::parse(bytes(&words)).expect("test file parses");
    Tokenizer::from_file(&file).map(|t| t.vocab_size())
}

#[test]
fn valid_file_encodes_and_decodes() {
    let words = build(&valid());
    let file = EmberFile::parse(bytes(&words)).unwrap();
    let tok = Tokenizer::from_file(&file).unwrap();
    assert_eq!(tok.vocab_size(), 261);
    let mut ids = Vec::new();
    tok.encode("hello<|end|> hello", &mut ids);
    assert_eq!(ids, [259, 260, b' ' as u32, 259]);
    let mut s = String::new();
    tok.decode(&ids, false, &mut s);
    assert_eq!(s, "hello<|end|> hello");
    assert_eq!(tok.token_id("hell"), Some(258));
    assert_eq!(tok.token_id("<|end|>"), Some(260));
    assert_eq!(tok.token_id("nope"), None);
    assert!(tok.is_eog(260) && !tok.is_eog(259));
    assert_eq!(tok.chat_template(), Some("{{ x }}"));
    assert_eq!(tok.bos_id(), None);
    assert_eq!(tok.token_bytes(9999), b"");
    ids.clear();
    tok.encode("", &mut ids);
    assert!(ids.is_empty());
}

/// `valid()` as an `spm-vocab` file: no merge table, `ranks` (or none) as `merge_ranks`.
fn spm_vocab(ranks: Option<Vec<u32>>) -> Vec<(&'static str, Val)> {
    let mut m = with("tokenizer.model", Some(Val::Str("spm-vocab".into())));
    m.retain(|(k, _)| *k != "tokenizer.merges");
    if let Some(r) = ranks {
        m.push(("tokenizer.merge_ranks", Val::U32(r)));
    }
    m
}

#[test]
fn spm_vocab_merges_the_concatenations_that_are_tokens() {
    // The table's ranks, one per result token: he 0, ll 1, hell 2, hello 3.
    let mut ranks = vec![u32::MAX; 261];
    ranks[256..260].copy_from_slice(&[0, 1, 2, 3]);
    let words = build(&spm_vocab(Some(ranks.clone())));
    let file = EmberFile::parse(bytes(&words)).unwrap();
    let tok = Tokenizer::from_file(&file).unwrap();
    let mut ids = Vec::new();
    tok.encode("hello hell he<|end|>", &mut ids);
    assert_eq!(ids, [259, b' ' as u32, 258, b' ' as u32, 256, 260]);
    // Lowest rank first: "hehell" merges he (0) twice, then ll (1), then he ll -> hell (2).
    ids.clear();
    tok.encode("hehell", &mut ids);
    assert_eq!(ids, [256, 258]);
    // A token without a rank is never a merge result.
    ranks[258] = u32::MAX;
    let words = build(&spm_vocab(Some(ranks)));
    let file = EmberFile::parse(bytes(&words)).unwrap();
    let tok = Tokenizer::from_file(&file).unwrap();
    ids.clear();
    tok.encode("hello", &mut ids);
    assert_eq!(ids, [256, 257, b'o' as u32]);
}

#[test]
fn spm_vocab_needs_its_ranks_and_no_table() {
    use TokenizerError::*;
    assert_eq!(
        load(&spm_vocab(None)).unwrap_err(),
        BadValue("tokenizer.merge_ranks")
    );
    assert_eq!(
        load(&spm_vocab(Some(vec![0; 260]))).unwrap_err(),
        BadValue("tokenizer.merge_ranks")
    );
    let mut both = spm_vocab(Some(vec![0; 261]));
    both.push(("tokenizer.merges", Val::U32(vec![104, 101, 0, 256])));
    assert_eq!(load(&both).unwrap_err(), BadValue("tokenizer.merges"));
}

#[test]
fn stream_decoder_utf8_boundaries() {
    let text = "é東🙂x";
    let b = text.as_bytes();
    // Every split of the bytes into two pushes, and one push per byte.
    for cut in 0..=b.len() {
        let mut d = StreamDecoder::new(false);
        let mut s = String::new();
        d.push(&b[..cut], |p| s.push_str(p));
        d.push(&b[cut..], |p| s.push_str(p));
        d.flush(|p| s.push_str(p));
        assert_eq!(s, text);
    }
    let mut d = StreamDecoder::new(true);
    let mut s = String::new();
    for byte in b" ab".iter().chain(b) {
        d.push(core::slice::from_ref(byte), |p| s.push_str(p));
    }
    assert_eq!(s, format!("ab{text}"));
    // Invalid bytes become U+FFFD, as from_utf8_lossy does; a dangling lead byte too.
    for input in [
        &[0xFFu8, b'a', 0xE6, 0x9D][..],
        &[0xE6, b'a'],
        &[0xF0, 0x9F, 0x99],
    ] {
        let mut d = StreamDecoder::new(false);
        let mut s = String::new();
        for byte in input {
            d.push(core::slice::from_ref(byte), |p| s.push_str(p));
        }
        d.flush(|p| s.push_str(p));
        assert_eq!(s, String::from_utf8_lossy(input), "{input:?}");
    }
}

#[test]
fn corruption_suite() {
    use TokenizerError::*;
    let oob = 261u32;
    let cases: Vec<(Vec<(&str, Val)>, TokenizerError)> = vec![
        (with("tokenizer.model", None), MissingKey("tokenizer.model")),
        (
            with("tokenizer.model", Some(Val::Str("unigram".into()))),
            Unsupported("tokenizer.model"),
        ),
        (
            with("tokenizer.model", Some(Val::U32(vec![1]))),
            BadValue("tokenizer.model"),
        ),
        (
            with("tokenizer.pre", Some(Val::Str("bert".into()))),
            Unsupported("tokenizer.pre"),
        ),
        (
            with("tokenizer.space_prefix", Some(Val::Str("sometimes".into()))),
            Unsupported("tokenizer.space_prefix"),
        ),
        (
            with("tokenizer.tokens", None),
            MissingKey("tokenizer.tokens"),
        ),
        (
            with("tokenizer.tokens", Some(Val::Bytes(vec![]))),
            BadValue("tokenizer.tokens"),
        ),
        (
            with("tokenizer.tokens", Some(Val::U8(vec![1, 2]))),
            BadValue("tokenizer.tokens"),
        ),
        // Truncated arrays.
        (
            with("tokenizer.token_types", Some(Val::U8(vec![1; 260]))),
            BadValue("tokenizer.token_types"),
        ),
        (
            with("tokenizer.byte_ids", Some(Val::U32((0..255).collect()))),
            BadValue("tokenizer.byte_ids"),
        ),
        (
            with("tokenizer.merges", Some(Val::U32(vec![104, 101, 0]))),
            BadValue("tokenizer.merges"),
        ),
        (
            with("tokenizer.special_flags", Some(Val::U8(vec![]))),
            BadValue("tokenizer.special_flags"),
        ),
        // Out-of-range ids in every table.
        (
            with("tokenizer.token_index", Some(Val::U32(vec![0, oob]))),
            IdOutOfRange {
                key: "tokenizer.token_index",
                index: 1,
            },
        ),
        (
            with("tokenizer.byte_ids", Some(Val::U32([oob; 256].to_vec()))),
            IdOutOfRange {
                key: "tokenizer.byte_ids",
                index: 0,
            },
        ),
        (
            with("tokenizer.merges", Some(Val::U32(vec![104, 101, 0, oob]))),
            IdOutOfRange {
                key: "tokenizer.merges",
                index: 0,
            },
        ),
        (
            with(
                "tokenizer.merges",
                Some(Val::U32(vec![1, 2, 0, 3, u32::MAX, 101, 0, 256])),
            ),
            IdOutOfRange {
                key: "tokenizer.merges",
                index: 1,
            },
        ),
        (
            with("tokenizer.special_ids", Some(Val::U32(vec![oob]))),
            IdOutOfRange {
                key: "tokenizer.special_ids",
                index: 0,
            },
        ),
        (
            with("tokenizer.eog_ids", Some(Val::U32(vec![5, oob]))),
            IdOutOfRange {
                key: "tokenizer.eog_ids",
                index: 1,
            },
        ),
        (
            with("tokenizer.eos_id", Some(Val::U32(vec![oob]))),
            IdOutOfRange {
                key: "tokenizer.eos_id",
                index: 0,
            },
        ),
        // Unsorted and duplicated binary-search tables.
        (
            with("tokenizer.token_index", Some(Val::U32(vec![5, 4]))),
            NotSorted {
                key: "tokenizer.token_index",
                index: 1,
            },
        ),
        (
            with("tokenizer.token_index", Some(Val::U32(vec![4, 4]))),
            NotSorted {
                key: "tokenizer.token_index",
                index: 1,
            },
        ),
        (
            with(
                "tokenizer.merges",
                Some(Val::U32(vec![108, 108, 1, 257, 104, 101, 0, 256])),
            ),
            NotSorted {
                key: "tokenizer.merges",
                index: 1,
            },
        ),
        (
            with(
                "tokenizer.merges",
                Some(Val::U32(vec![104, 101, 0, 256, 104, 101, 1, 257])),
            ),
            NotSorted {
                key: "tokenizer.merges",
                index: 1,
            },
        ),
        // Wrong scalar types and values.
        (
            with("tokenizer.add_bos", Some(Val::U8(vec![2]))),
            BadValue("tokenizer.add_bos"),
        ),
        (
            with("tokenizer.add_bos", Some(Val::U8(vec![1]))),
            MissingKey("tokenizer.bos_id"),
        ),
        (
            with("tokenizer.eos_id", Some(Val::U32(vec![]))),
            BadValue("tokenizer.eos_id"),
        ),
        (
            with("tokenizer.chat_template", Some(Val::U8(vec![]))),
            BadValue("tokenizer.chat_template"),
        ),
        (
            with("tokenizer.byte_ids", None),
            MissingKey("tokenizer.byte_ids"),
        ),
    ];
    for (meta, want) in cases {
        assert_eq!(load(&meta), Err(want));
        // Every error has a one-line message naming the key.
        assert!(want.to_string().contains("tokenizer"));
    }
    // An empty special token would match everywhere.
    let mut m = valid();
    if let Some((_, Val::Bytes(t))) = m.iter_mut().find(|(k, _)| *k == "tokenizer.tokens") {
        t[260].clear();
    }
    if let Some((_, Val::U32(ix))) = m.iter_mut().find(|(k, _)| *k == "tokenizer.token_index") {
        ix.retain(|&i| i != 260);
    }
    assert_eq!(
        load(&m),
        Err(TokenizerError::BadValue("tokenizer.special_ids"))
    );
}

#[test]
fn special_token_ending_inside_a_character_is_not_matched() {
    // Token 260 (special) damaged to the first byte of "é": valid metadata, must not split
    // the text inside the character.
    let mut m = valid();
    if let Some((_, Val::Bytes(t))) = m.iter_mut().find(|(k, _)| *k == "tokenizer.tokens") {
        t[260] = vec![0xC3];
    }
    if let Some((_, Val::U32(ix))) = m.iter_mut().find(|(k, _)| *k == "tokenizer.token_index") {
        ix.retain(|&i| i != 260);
    }
    let words = build(&m);
    let file = EmberFile::parse(bytes(&words)).unwrap();
    let tok = Tokenizer::from_file(&file).unwrap();
    let mut ids = Vec::new();
    tok.encode("é", &mut ids);
    assert_eq!(ids, [0xC3, 0xA9]);
}

/// Exercises a tokenizer that loaded from a damaged file: must not panic.
fn exercise(file: &EmberFile<'_>) {
    if let Ok(tok) = Tokenizer::from_file(file) {
        let mut ids = Vec::new();
        for text in [
            "hello<|end|> world",
            "",
            "  \n\t é🙂 'll 123",
            "<|end|><|end|>",
        ] {
            tok.encode(text, &mut ids);
        }
        ids.extend([0, 259, 260, u32::MAX, 100_000]);
        let mut s = String::new();
        tok.decode(&ids, true, &mut s);
        let _ = (tok.token_id("he"), tok.is_eog(7), tok.chat_template());
    }
}

#[test]
fn truncations_and_byte_flips_never_panic() {
    let words = build(&valid());
    let full = bytes(&words);
    for n in 0..full.len() {
        // Truncated files: the format reader rejects them (the prefix stays aligned).
        assert!(EmberFile::parse(&full[..n]).is_err());
    }
    // Byte flips in the metadata section. The format reader catches structural damage
    // (lengths, bytes[] offsets out of order); the tokenizer loader catches the rest.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut loaded = 0;
    for _ in 0..4000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut w = words.clone();
        let b: &mut [u8] = bytemuck::cast_slice_mut(&mut w);
        let at = 128 + (state as usize % (b.len() - 128));
        b[at] ^= 1 << ((state >> 40) % 8);
        if let Ok(file) = EmberFile::parse(b) {
            loaded += 1;
            exercise(&file);
        }
    }
    assert!(loaded > 0);
}

#[test]
fn bytes_array_offsets_out_of_order_are_rejected() {
    let words = build(&valid());
    let b = bytes(&words);
    // Find the tokens value: its offsets follow the u64 count (261).
    let needle = 261u64.to_le_bytes();
    let at = b
        .windows(8)
        .position(|w| w == needle)
        .expect("the tokens count");
    let mut w = words.clone();
    let m: &mut [u8] = bytemuck::cast_slice_mut(&mut w);
    // offsets[2] (the end of token 1) set below offsets[1].
    let off2 = at + 8 + 2 * 4;
    m[off2..off2 + 4].copy_from_slice(&0u32.to_le_bytes());
    if let Ok(file) = EmberFile::parse(m) {
        exercise(&file);
        panic!("decreasing bytes[] offsets were accepted");
    }
}
