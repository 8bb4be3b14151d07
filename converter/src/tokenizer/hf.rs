//! Hugging Face `tokenizer.json` (the `tokenizers` library's serialization) plus
//! `tokenizer_config.json` (chat template, BOS/EOS names, `add_bos_token`) and, when present,
//! `chat_template.jinja` and `generation_config.json`'s `eos_token_id`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::{
    byte_level_decode, parse_byte_token, spm_decode, token_type, unicode_to_byte, Merges,
    TokenizerModel, TokenizerSpec, LSTRIP, RSTRIP,
};
use crate::bail;
use crate::error::{Context, Error, Result};

/// The GPT-2 pre-tokenizer regex, as HF writes it in a `Split` pre-tokenizer.
const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o's o200k split, as Phi-4-mini's tokenizer.json writes it.
const O200K_REGEX: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Reads `dir/tokenizer.json` and the optional companions.
pub fn from_hf_dir(dir: &Path) -> Result<TokenizerSpec> {
    let path = dir.join("tokenizer.json");
    let text = std::fs::read_to_string(&path).context(path.display())?;
    let json: Value = serde_json::from_str(&text).context(path.display())?;
    let config = read_json_opt(&dir.join("tokenizer_config.json"))?;
    let generation = read_json_opt(&dir.join("generation_config.json"))?;
    let jinja_path = dir.join("chat_template.jinja");
    let jinja = if jinja_path.is_file() {
        Some(std::fs::read_to_string(&jinja_path).context(jinja_path.display())?)
    } else {
        None
    };
    from_hf_json(&json, config.as_ref(), generation.as_ref(), jinja)
        .map_err(|e| Error(format!("{}: {e}", path.display())))
}

/// The same from strings: `tokenizer.json` and optionally `tokenizer_config.json` (for tests,
/// fuzzing, or files held in memory).
pub fn from_hf_str(tokenizer_json: &str, config_json: Option<&str>) -> Result<TokenizerSpec> {
    let json: Value = serde_json::from_str(tokenizer_json).context("tokenizer.json")?;
    let config: Option<Value> = match config_json {
        Some(c) => Some(serde_json::from_str(c).context("tokenizer_config.json")?),
        None => None,
    };
    from_hf_json(&json, config.as_ref(), None, None)
        .map_err(|e| Error(format!("tokenizer.json: {e}")))
}

fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).context(path.display())?;
    Ok(Some(serde_json::from_str(&text).context(path.display())?))
}

fn type_of(v: &Value) -> &str {
    v.get("type").and_then(Value::as_str).unwrap_or("?")
}

fn as_bool(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// What the normalizer, pre-tokenizer and decoder say, reduced to the runtime's settings.
struct Pipeline {
    model: TokenizerModel,
    pre: &'static str,
    space_prefix: &'static str,
    strip_space: bool,
}

fn pre_tokenizer(pre: &Value, normalizer: &Value, decoder: &Value) -> Result<Pipeline> {
    // Normalizer: nothing, NFC (the runtime assumes NFC input, as llama.cpp does), or the
    // legacy Llama 2 pair Prepend("▁") + Replace(" ", "▁").
    let mut legacy_spm = false;
    match normalizer {
        Value::Null => {}
        n if type_of(n) == "NFC" => {}
        n if type_of(n) == "Sequence" => {
            let items = n
                .get("normalizers")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let is_prepend = |v: &Value| {
                type_of(v) == "Prepend" && v.get("prepend").and_then(Value::as_str) == Some("▁")
            };
            let is_replace = |v: &Value| {
                type_of(v) == "Replace"
                    && v.pointer("/pattern/String").and_then(Value::as_str) == Some(" ")
                    && v.get("content").and_then(Value::as_str) == Some("▁")
            };
            match items {
                [a, b] if is_prepend(a) && is_replace(b) => legacy_spm = true,
                [b] if is_replace(b) => {}
                _ => bail!("unsupported normalizer {n} in tokenizer.json"),
            }
            if !legacy_spm {
                // Replace alone: spaces are ▁ but nothing is prepended.
                return Ok(Pipeline {
                    model: TokenizerModel::Spm,
                    pre: "none",
                    space_prefix: "never",
                    strip_space: decoder_strips(decoder),
                });
            }
        }
        n => bail!("unsupported normalizer '{}' in tokenizer.json", type_of(n)),
    }
    if legacy_spm {
        if !pre.is_null() {
            bail!(
                "unsupported pre_tokenizer '{}' after the Llama normalizer in tokenizer.json",
                type_of(pre)
            );
        }
        return Ok(Pipeline {
            model: TokenizerModel::Spm,
            pre: "none",
            space_prefix: "legacy",
            strip_space: decoder_strips(decoder),
        });
    }
    let byte_level = |p: &'static str, v: &Value| Pipeline {
        model: TokenizerModel::ByteBpe,
        pre: p,
        space_prefix: if as_bool(v, "add_prefix_space") {
            "always"
        } else {
            "never"
        },
        strip_space: false,
    };
    match type_of(pre) {
        "ByteLevel" => {
            let use_regex = pre
                .get("use_regex")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            Ok(byte_level(if use_regex { "gpt2" } else { "none" }, pre))
        }
        "Metaspace" => {
            if pre.get("replacement").and_then(Value::as_str) != Some("▁") {
                bail!("unsupported Metaspace replacement in tokenizer.json (only ▁)");
            }
            let scheme = match pre.get("prepend_scheme").and_then(Value::as_str) {
                Some("first") => "first",
                Some("always") => "always",
                Some("never") => "never",
                Some(other) => {
                    bail!("unsupported Metaspace prepend_scheme '{other}' in tokenizer.json")
                }
                // Older files: add_prefix_space = true means always.
                None => {
                    if as_bool(pre, "add_prefix_space") {
                        "always"
                    } else {
                        "never"
                    }
                }
            };
            let split = pre.get("split").and_then(Value::as_bool).unwrap_or(true);
            Ok(Pipeline {
                model: TokenizerModel::Spm,
                pre: if split { "space-split" } else { "none" },
                space_prefix: scheme,
                strip_space: decoder_strips(decoder),
            })
        }
        "Sequence" => {
            let items = pre
                .get("pretokenizers")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            match items {
                [d, b]
                    if type_of(d) == "Digits"
                        && as_bool(d, "individual_digits")
                        && type_of(b) == "ByteLevel"
                        && b.get("use_regex").and_then(Value::as_bool).unwrap_or(true) =>
                {
                    Ok(byte_level("gpt2-digits", b))
                }
                [s, b] if type_of(s) == "Split" && type_of(b) == "ByteLevel" => {
                    if b.get("use_regex").and_then(Value::as_bool).unwrap_or(true) {
                        bail!("unsupported pre_tokenizer: Split followed by ByteLevel(use_regex=true) in tokenizer.json");
                    }
                    let regex = s.pointer("/pattern/Regex").and_then(Value::as_str);
                    let behavior = s.get("behavior").and_then(Value::as_str);
                    if behavior != Some("Isolated") || as_bool(s, "invert") {
                        bail!("unsupported Split pre_tokenizer (behavior {behavior:?}) in tokenizer.json");
                    }
                    let name = match regex {
                        Some(LLAMA3_REGEX) => "llama3",
                        Some(QWEN2_REGEX) => "qwen2",
                        Some(O200K_REGEX) => "o200k",
                        Some(GPT2_REGEX) => "gpt2",
                        other => bail!(
                            "unsupported pre-tokenizer regex {} in tokenizer.json",
                            other.unwrap_or("(none)")
                        ),
                    };
                    Ok(byte_level(name, b))
                }
                _ => bail!("unsupported pre_tokenizer sequence {pre} in tokenizer.json"),
            }
        }
        // No pre-tokenizer and no normalizer: the text is one piece of characters merged by
        // rank (`ember train --tokenizer char`: a BPE with no merges and a `Fuse` decoder).
        _ if pre.is_null() => Ok(Pipeline {
            model: TokenizerModel::Spm,
            pre: "none",
            space_prefix: "never",
            strip_space: decoder_strips(decoder),
        }),
        other => bail!("unsupported pre_tokenizer '{other}' in tokenizer.json"),
    }
}

/// Whether the decoder strips one leading space (`Strip(" ", 1, 0)`, SentencePiece models).
fn decoder_strips(decoder: &Value) -> bool {
    let strip = |d: &Value| {
        type_of(d) == "Strip"
            && d.get("content").and_then(Value::as_str) == Some(" ")
            && d.get("start").and_then(Value::as_u64).unwrap_or(0) >= 1
    };
    match type_of(decoder) {
        "Sequence" => decoder
            .get("decoders")
            .and_then(Value::as_array)
            .is_some_and(|ds| ds.iter().any(strip)),
        "Metaspace" => true,
        _ => strip(decoder),
    }
}

/// A token name in tokenizer_config.json: a string or `{"content": ...}`.
fn token_name(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s),
        o => o.get("content").and_then(Value::as_str),
    }
}

/// The `TemplateProcessing` special tokens around a single sequence: (prefix, suffix).
fn template_tokens(pp: &Value) -> Result<(Vec<String>, Vec<String>)> {
    match type_of(pp) {
        _ if pp.is_null() => Ok((vec![], vec![])),
        "ByteLevel" => Ok((vec![], vec![])),
        "Sequence" => {
            let mut out = (vec![], vec![]);
            for p in pp
                .get("processors")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                let (a, b) = template_tokens(p)?;
                out.0.extend(a);
                out.1.extend(b);
            }
            Ok(out)
        }
        "TemplateProcessing" => {
            let mut prefix = vec![];
            let mut suffix = vec![];
            let mut seen_seq = false;
            for item in pp
                .get("single")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                if item.get("Sequence").is_some() {
                    seen_seq = true;
                } else if let Some(id) = item.pointer("/SpecialToken/id").and_then(Value::as_str) {
                    if seen_seq { &mut suffix } else { &mut prefix }.push(id.to_string());
                }
            }
            Ok((prefix, suffix))
        }
        other => bail!("unsupported post_processor '{other}' in tokenizer.json"),
    }
}

fn from_hf_json(
    json: &Value,
    config: Option<&Value>,
    generation: Option<&Value>,
    jinja: Option<String>,
) -> Result<TokenizerSpec> {
    let model = json
        .get("model")
        .ok_or_else(|| Error("no \"model\" object".into()))?;
    let mtype = model.get("type").and_then(Value::as_str).unwrap_or(
        // Old files omit the type; BPE is recognized by its merges.
        if model.get("merges").is_some() {
            "BPE"
        } else {
            "?"
        },
    );
    if mtype != "BPE" {
        bail!("unsupported tokenizer model '{mtype}' in tokenizer.json");
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if model
            .get(key)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        {
            bail!("unsupported BPE option {key} in tokenizer.json");
        }
    }
    if model
        .get("dropout")
        .and_then(Value::as_f64)
        .is_some_and(|d| d > 0.0)
    {
        bail!("unsupported BPE dropout in tokenizer.json");
    }
    let null = Value::Null;
    let pipe = pre_tokenizer(
        json.get("pre_tokenizer").unwrap_or(&null),
        json.get("normalizer").unwrap_or(&null),
        json.get("decoder").unwrap_or(&null),
    )?;
    let byte_fallback = as_bool(model, "byte_fallback");

    // The vocabulary: a map text -> id, plus added tokens (which may extend it).
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| Error("model.vocab is not an object".into()))?;
    let added: &[Value] = json
        .get("added_tokens")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let max_entries = vocab.len() + added.len();
    let id_of = |v: &Value, what: &str| -> Result<u32> {
        let id = v
            .as_u64()
            .ok_or_else(|| Error(format!("{what}: id is not an integer")))?;
        // Ids index a dense table: allow a few holes, not a gigantic allocation.
        if id >= (max_entries as u64).saturating_mul(2).saturating_add(1024)
            || id >= u32::MAX as u64
        {
            bail!("{what}: id {id} is far beyond the {max_entries} vocabulary entries");
        }
        Ok(id as u32)
    };
    let mut slots: Vec<Option<(Vec<u8>, u8)>> = Vec::new();
    let mut put = |id: u32, bytes: Vec<u8>, ty: u8| {
        let i = id as usize;
        if slots.len() <= i {
            slots.resize(i + 1, None);
        }
        slots[i] = Some((bytes, ty));
    };
    let u2b = unicode_to_byte();
    let mut text_to_id: HashMap<&str, u32> = HashMap::with_capacity(vocab.len());
    for (text, v) in vocab {
        let id = id_of(v, &format!("vocab entry {text:?}"))?;
        text_to_id.insert(text.as_str(), id);
        let (bytes, ty) = match pipe.model {
            TokenizerModel::ByteBpe => (
                byte_level_decode(text, &u2b).unwrap_or_else(|| text.as_bytes().to_vec()),
                token_type::NORMAL,
            ),
            TokenizerModel::Spm => match parse_byte_token(text.as_bytes()) {
                Some(b) if byte_fallback => (vec![b], token_type::BYTE),
                _ => (spm_decode(text.as_bytes()), token_type::NORMAL),
            },
        };
        put(id, bytes, ty);
    }
    let mut specials = Vec::new();
    for (i, a) in added.iter().enumerate() {
        let what = format!("added_tokens[{i}]");
        let content = a
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| Error(format!("{what}: no content")))?;
        if content.is_empty() {
            bail!("{what}: empty content");
        }
        let id = id_of(a.get("id").unwrap_or(&null), &what)?;
        let special = as_bool(a, "special");
        put(
            id,
            content.as_bytes().to_vec(),
            if special {
                token_type::CONTROL
            } else {
                token_type::USER_DEFINED
            },
        );
        let flags = if as_bool(a, "lstrip") { LSTRIP } else { 0 }
            | if as_bool(a, "rstrip") { RSTRIP } else { 0 };
        specials.push((id, flags));
    }
    specials.sort_by_key(|s| s.0);
    specials.dedup_by_key(|s| s.0);
    let added_ids: HashMap<&str, u32> = added
        .iter()
        .filter_map(|a| Some((a.get("content")?.as_str()?, a.get("id")?.as_u64()? as u32)))
        .collect();
    let find = |name: &str| {
        added_ids
            .get(name)
            .or_else(|| text_to_id.get(name))
            .copied()
    };

    let mut tokens = Vec::with_capacity(slots.len());
    let mut types = Vec::with_capacity(slots.len());
    for s in slots {
        let (b, t) = s.unwrap_or((Vec::new(), token_type::UNUSED));
        tokens.push(b);
        types.push(t);
    }
    if tokens.is_empty() {
        bail!("the vocabulary is empty");
    }

    let unk_id = match model.get("unk_token").and_then(Value::as_str) {
        Some(name) => {
            let id = find(name)
                .ok_or_else(|| Error(format!("unk_token {name:?} is not in the vocabulary")))?;
            if types[id as usize] == token_type::NORMAL {
                types[id as usize] = token_type::UNKNOWN;
            }
            Some(id)
        }
        None => None,
    };

    // Merges: "a b" strings (older files) or ["a", "b"] pairs.
    let merge_list: &[Value] = model
        .get("merges")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut merges = Vec::with_capacity(merge_list.len());
    for (rank, m) in merge_list.iter().enumerate() {
        let (a, b) = match m {
            Value::String(s) => s
                .split_once(' ')
                .ok_or_else(|| Error(format!("merge {rank} {s:?} is not \"left right\"")))?,
            Value::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                (Some(a), Some(b)) => (a, b),
                _ => bail!("merge {rank} is not a pair of strings"),
            },
            _ => bail!("merge {rank} is neither a string nor a pair"),
        };
        let joined = format!("{a}{b}");
        let (Some(&l), Some(&r), Some(&res)) = (
            text_to_id.get(a),
            text_to_id.get(b),
            text_to_id.get(joined.as_str()),
        ) else {
            bail!("merge {rank} ({a:?} {b:?}) names a token that is not in the vocabulary");
        };
        merges.push([l, r, rank as u32, res]);
    }

    // BOS/EOS: the post-processor says what tokenizer(text) adds; tokenizer_config.json names
    // the tokens and may override add_bos_token / add_eos_token.
    let (prefix, suffix) = template_tokens(json.get("post_processor").unwrap_or(&null))?;
    if prefix.len() > 1 || suffix.len() > 1 {
        bail!("unsupported post_processor: more than one token around the text in tokenizer.json");
    }
    let cfg_id = |key: &str| -> Result<Option<u32>> {
        match token_name(config.and_then(|c| c.get(key))) {
            None => Ok(None),
            Some(name) => Ok(Some(find(name).ok_or_else(|| {
                Error(format!(
                    "tokenizer_config.json: {key} {name:?} is not in the vocabulary"
                ))
            })?)),
        }
    };
    let template_id = |names: &[String]| -> Result<Option<u32>> {
        match names.first() {
            None => Ok(None),
            Some(n) => Ok(Some(find(n).ok_or_else(|| {
                Error(format!(
                    "post_processor token {n:?} is not in the vocabulary"
                ))
            })?)),
        }
    };
    let mut bos_id = cfg_id("bos_token")?;
    let mut eos_id = cfg_id("eos_token")?;
    let pad_id = cfg_id("pad_token")?;
    let mut add_bos = false;
    if let Some(id) = template_id(&prefix)? {
        add_bos = true;
        bos_id = bos_id.or(Some(id));
    }
    let mut add_eos = false;
    if let Some(id) = template_id(&suffix)? {
        add_eos = true;
        eos_id = eos_id.or(Some(id));
    }
    if let Some(b) = config
        .and_then(|c| c.get("add_bos_token"))
        .and_then(Value::as_bool)
    {
        add_bos = b && bos_id.is_some();
    }
    if let Some(b) = config
        .and_then(|c| c.get("add_eos_token"))
        .and_then(Value::as_bool)
    {
        add_eos = b && eos_id.is_some();
    }

    let chat_template = match config.and_then(|c| c.get("chat_template")) {
        Some(Value::String(s)) => Some(s.clone()),
        // A list of named templates: take "default".
        Some(Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or(list.first())
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
    .or(jinja);

    // generation_config.json may list several end-of-generation ids.
    let vocab_len = tokens.len() as u64;
    let eog_ids: Vec<u32> = match generation.and_then(|g| g.get("eos_token_id")) {
        Some(Value::Number(n)) => n.as_u64().into_iter().collect::<Vec<_>>(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).collect(),
        _ => vec![],
    }
    .into_iter()
    .filter(|&id| id < vocab_len)
    .map(|id| id as u32)
    .collect();

    let mut spec = TokenizerSpec {
        model: pipe.model,
        pre: pipe.pre,
        space_prefix: pipe.space_prefix,
        tokens,
        types,
        merges: Merges::Table(merges),
        specials,
        bos_id,
        eos_id,
        unk_id,
        pad_id,
        add_bos,
        add_eos,
        eog_ids,
        ignore_merges: as_bool(model, "ignore_merges"),
        byte_fallback,
        fuse_unk: as_bool(model, "fuse_unk"),
        strip_space: pipe.strip_space,
        chat_template,
    };
    spec.find_eog();
    Ok(spec)
}
