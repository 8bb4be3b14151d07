//! GGUF files as llama.cpp's convert_hf_to_gguf writes them, of the architectures in
//! `ember_format::schema::ARCHS` that name a GGUF architecture.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Context, Error, Result};
use crate::gguf::GgufFile;
use ember_format::schema::{
    Attention, Experts, LayerFfn, LayerKv, LayerMixer, LayerPositions, Recurrent, Role,
};
use ember_format::DType;

use crate::model::{Arch, ModelConfig, RopeScaling};
use crate::plan::{Op, Plan, Planned};

pub struct GgufSource {
    path: PathBuf,
    map: Mmap,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).context(format!("opening {}", path.display()))?;
        // SAFETY: read-only map that we only read. A concurrent writer could change the
        // bytes under us; the parser validates every offset against the map's length, so
        // that can give wrong data but not out-of-bounds access.
        let map = unsafe { Mmap::map(&file) }.context(format!("mapping {}", path.display()))?;
        Ok(GgufSource {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn parse(&self) -> Result<GgufFile<'_>> {
        GgufFile::parse(&self.map).map_err(|e| Error(format!("{}: {e}", self.path.display())))
    }

    pub fn plan(&self) -> Result<Plan<'_>> {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        plan(self.parse()?, &stem).map_err(|e| Error(format!("{}: {e}", self.path.display())))
    }
}

/// Plans the conversion of a parsed GGUF file; `stem` names the model when the file has no
/// `general.name`.
pub fn plan<'a>(g: GgufFile<'a>, stem: &str) -> Result<Plan<'a>> {
    let name = g.str("general.architecture")?;
    let Some(arch) = Arch::from_gguf(name) else {
        crate::bail!(
            "unsupported GGUF architecture '{name}' (supported: {})",
            Arch::list(|a| a.gguf)
        );
    };
    let info = arch.info();
    let key = |k: &str| format!("{name}.{k}");
    let moe = arch.features().experts == Experts::Routed;
    if !moe && g.opt_u32(&key("expert_count"))?.unwrap_or(0) > 0 {
        crate::bail!("mixture-of-experts {name} models are not supported");
    }
    let embedding_dim = g.u32(&key("embedding_length"))? as usize;
    let head_count = g.u32(&key("attention.head_count"))? as usize;
    // Hybrids list KV heads per layer, 0 for the recurrent ones (llama.cpp's n_head_kv_arr).
    let kv_key = key("attention.head_count_kv");
    let kv_per_layer: Option<Vec<usize>> = match g.get(&kv_key).and_then(|v| v.as_array()) {
        Some(a) => Some(
            a.i32s()
                .and_then(|v| v.into_iter().map(|x| usize::try_from(x).ok()).collect())
                .ok_or_else(|| Error(format!("GGUF metadata '{kv_key}' should list counts")))?,
        ),
        None => None,
    };
    let kv_head_count = match &kv_per_layer {
        Some(list) => {
            let mut attention = list.iter().copied().filter(|&n| n > 0);
            let first = attention.next().unwrap_or(head_count);
            if attention.any(|n| n != first) {
                crate::bail!("{kv_key}: layers with different KV head counts are not supported");
            }
            first
        }
        None => g.opt_u32(&kv_key)?.map_or(head_count, |v| v as usize),
    };
    // Gemma 4: key_length is the global layers' head, key_length_swa the local layers'.
    let head_dim_swa = g
        .opt_u32(&key("attention.key_length_swa"))?
        .map(|v| v as usize);
    let head_dim = match g.opt_u32(&key("attention.key_length"))? {
        Some(hd) => hd as usize,
        None => {
            if head_count == 0 || !embedding_dim.is_multiple_of(head_count) {
                crate::bail!(
                    "embedding_length {embedding_dim} is not a multiple of head_count {head_count}"
                );
            }
            embedding_dim / head_count
        }
    };
    if let Some(vd) = g.opt_u32(&key("attention.value_length"))? {
        if vd as usize != head_dim {
            crate::bail!("value_length {vd} differs from key_length {head_dim}: not supported");
        }
    }
    if let Some(vd) = g.opt_u32(&key("attention.value_length_swa"))? {
        if Some(vd as usize) != head_dim_swa {
            crate::bail!("value_length_swa {vd} differs from key_length_swa: not supported");
        }
    }
    for k in ["attn_logit_softcapping", "attention.logit_softcapping"] {
        if g.opt_f32(&key(k))?.is_some_and(|v| v != 0.0) {
            crate::bail!("attention logit soft-capping ({name}.{k}) is not supported");
        }
    }
    let embd = g
        .tensor("token_embd.weight")
        .ok_or_else(|| Error("missing tensor token_embd.weight".into()))?;
    let vocab_size = match g.opt_u32(&key("vocab_size"))? {
        Some(v) => v as usize,
        None => match g.opt_array("tokenizer.ggml.tokens")? {
            Some(a) => a.len(),
            None => embd.shape[0],
        },
    };
    let model_name = match g.get("general.name").and_then(|v| v.as_str()) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => stem.to_string(),
    };
    let mut config = ModelConfig::basic(arch, model_name);
    config.vocab_size = vocab_size;
    config.context_length = g.u32(&key("context_length"))? as usize;
    config.embedding_dim = embedding_dim;
    config.layer_count = g.u32(&key("block_count"))? as usize;
    config.head_count = head_count;
    config.kv_head_count = kv_head_count;
    config.head_dim = head_dim;
    config.ffn_dim = g.u32(&key("feed_forward_length"))? as usize;
    config.norm_eps = g
        .opt_f32(&key("attention.layer_norm_rms_epsilon"))?
        .unwrap_or(1e-5);
    config.rope_theta = Some(g.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0));
    config.rope_dim = g
        .opt_u32(&key("rope.dimension_count"))?
        .map(|rd| rd as usize)
        .filter(|&rd| rd != head_dim);
    if config.rope_dim.is_some() && arch.readable_by_format_1_3() {
        crate::bail!(
            "partial RoPE (rope.dimension_count {} of head size {head_dim}) is not supported for {name}",
            config.rope_dim.unwrap_or(0)
        );
    }
    config.tied_embeddings = g.tensor("output.weight").is_none();
    config.rope_scaling = rope_scaling(&g, name, config.context_length)?;
    if let Some(t) = g.tensor("rope_freqs.weight") {
        if config.rope_scaling != RopeScaling::None {
            crate::bail!("both rope.scaling keys and rope_freqs.weight: ambiguous RoPE scaling");
        }
        config.rope_scaling = RopeScaling::Factors(f32_vector(t)?);
    }
    // LongRoPE (Phi-3): per-pair factors for short and long contexts.
    match (
        g.tensor("rope_factors_short.weight"),
        g.tensor("rope_factors_long.weight"),
    ) {
        (None, None) => {}
        (Some(s), Some(l)) => {
            if config.rope_scaling != RopeScaling::None {
                crate::bail!("both rope.scaling keys and LongRoPE factors: ambiguous RoPE scaling");
            }
            let original = g
                .opt_u32(&key("rope.scaling.original_context_length"))?
                .map_or(config.context_length, |v| v as usize);
            let factor = config.context_length as f64 / original as f64;
            let attention_factor = match g.opt_f32(&key("rope.scaling.attn_factor"))? {
                Some(a) => a,
                None => RopeScaling::longrope_attention_factor(factor, original),
            };
            config.rope_scaling = RopeScaling::LongRope {
                short: f32_vector(s)?,
                long: f32_vector(l)?,
                original_context: original,
                attention_factor,
            };
        }
        _ => crate::bail!(
            "LongRoPE needs both rope_factors_short.weight and rope_factors_long.weight"
        ),
    }
    config.check_layer_count(g.tensors.len())?;
    let window = g
        .opt_u32(&key("attention.sliding_window"))?
        .filter(|&w| w > 0);
    match arch {
        Arch::Gemma4 => gemma4(&g, name, head_dim, head_dim_swa, window, &mut config)?,
        Arch::Gemma3 => {
            // The window comes with the file; the layer list does not: llama.cpp (and
            // transformers' default) make every sixth layer global.
            let Some(window) = window else {
                crate::bail!("{name}.attention.sliding_window is missing");
            };
            config.sliding_window = Some(window as usize);
            config.set_layers(|i, l| {
                if (i + 1) % GEMMA3_PATTERN != 0 {
                    l.attention = Attention::Local;
                }
                Ok(())
            })?;
            // Older files (the published 270M among them) lack the local base: 10,000 then,
            // as llama.cpp and transformers assume.
            config.rope_theta_local =
                Some(g.opt_f32(&key("rope.freq_base_swa"))?.unwrap_or(10_000.0));
            // llama.cpp: query_pre_attn_scalar is head_dim, except Gemma 3 27B (62 layers),
            // where it is hidden / heads.
            if config.layer_count == 62 {
                config.attention_scale =
                    Some((1.0 / ((embedding_dim / head_count) as f64).sqrt()) as f32);
            }
            if let Some(cap) = g.opt_f32(&key("final_logit_softcapping"))? {
                if cap > 0.0 {
                    config.final_logit_softcap = Some(cap);
                }
            }
        }
        _ => {
            if let Some(w) = window {
                crate::bail!("{name}.attention.sliding_window = {w}: sliding-window attention is supported for gemma3 only");
            }
        }
    }
    match arch.features().recurrent {
        Recurrent::None => {
            if kv_per_layer.as_ref().is_some_and(|l| l.contains(&0)) {
                crate::bail!("{kv_key}: layers without attention are not supported for {name}");
            }
        }
        recurrent => recurrent_config(&g, name, recurrent, kv_per_layer, &mut config)?,
    }
    if arch == Arch::SmolLm3 {
        // llama.cpp's rule (the files carry no list): every fourth layer has no positions.
        config.set_layers(|i, l| {
            if (i + 1) % SMOLLM3_NOPE_INTERVAL == 0 {
                l.positions = LayerPositions::None;
            }
            Ok(())
        })?;
    }
    if moe {
        config.experts = g.u32(&key("expert_count"))? as usize;
        config.experts_used = g.u32(&key("expert_used_count"))? as usize;
        config.expert_ffn_dim = g.u32(&key("expert_feed_forward_length"))? as usize;
        // llama.cpp renormalises Qwen3-MoE's top-k weights (norm_topk_prob) unless told.
        config.expert_weights_norm = g.opt_bool(&key("expert_weights_norm"))?.unwrap_or(true);
        if let Some(n) = g.opt_u32(&key("expert_shared_count"))?.filter(|&n| n > 0) {
            crate::bail!("{n} shared experts ({name}.expert_shared_count) are not supported");
        }
        // Dense layers have ffn_up where the others have experts.
        config.set_layers(|i, l| {
            if g.tensor(&format!("blk.{i}.ffn_up.weight")).is_some() {
                l.ffn = LayerFfn::Dense;
            }
            Ok(())
        })?;
    }
    let hp = config.validate()?;

    let (dims, ft) = (hp.dims(), arch.features());
    let specs = config.layer_specs();
    let mut tensors = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        if matches!(
            t.name.as_str(),
            "rope_freqs.weight" | "rope_factors_short.weight" | "rope_factors_long.weight"
        ) {
            continue; // folded into rope.inv_freq(_long) below
        }
        let tensor_name = ember_name(arch, &t.name);
        let role = tensor_name.rsplit('.').nth(1).unwrap_or("");
        // A fused tensor: its rows are the roles' rows, in order.
        if let Some((_, roles)) = info.gguf_fused.iter().find(|(n, _)| *n == role) {
            let layer: usize = t
                .name
                .split('.')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let spec = specs.get(layer).copied().unwrap_or(specs[0]);
            let sizes: Vec<usize> = roles
                .iter()
                .map(|r| r.bias_len(&dims, &ft, &spec))
                .collect();
            let total: usize = sizes.iter().sum();
            let of = t.shape.first().copied().unwrap_or(0);
            let is_bias = t.name.ends_with(".bias");
            // Phi-3's ffn_up is fused only where it has both halves.
            if of == total && (t.shape.len() == 2 || is_bias) {
                let mut first = 0;
                for (r, size) in roles.iter().zip(sizes) {
                    let mut shape = t.shape.clone();
                    shape[0] = size;
                    let prefix = t.name.rsplitn(3, '.').nth(2).unwrap_or("");
                    let suffix = if is_bias { "bias" } else { "weight" };
                    tensors.push(Planned {
                        name: format!("{prefix}.{}.{suffix}", r.name()),
                        shape,
                        dtype: t.dtype,
                        src_name: t.name.clone(),
                        src: t.data,
                        op: Op::Rows {
                            rows: first..first + size,
                            of,
                        },
                    });
                    first += size;
                }
                continue;
            }
        }
        // llama.cpp's converter interleaves Q/K rows for some architectures (RoPE in GPT-J
        // order); the others are in Hugging Face's order already.
        let op = match (info.gguf_rope_interleaved, role) {
            (true, "attn_q") => Op::UnpermuteRope { heads: head_count },
            (true, "attn_k") => Op::UnpermuteRope {
                heads: kv_head_count,
            },
            _ => Op::Copy,
        };
        // Experts: GGUF's (N, rows, cols) is our (N·rows, cols); A, D and norms (1, H)
        // are (H).
        let shape = match (role.ends_with("_exps"), &t.shape[..]) {
            (true, &[n, r, c]) => vec![n * r, c],
            (_, [_, _, ..]) if Role::of_tensor(&tensor_name).is_some_and(Role::keeps_f32) => {
                t.shape.iter().copied().filter(|&d| d != 1).collect()
            }
            _ => t.shape.clone(),
        };
        tensors.push(Planned {
            name: tensor_name,
            shape,
            dtype: t.dtype,
            src_name: t.name.clone(),
            src: t.data,
            op,
        });
    }
    tensors.extend(Planned::rope_tables(&config));
    let tokenizer = crate::tok::from_gguf(&g)?;
    Ok(Plan {
        config,
        tensors,
        tokenizer,
        source_names: Default::default(),
    })
}

/// Ember's name of GGUF tensor `name`: llama.cpp's Mamba parameters `blk.N.ssm_a` and
/// `ssm_d` have no suffix and dt's bias is `ssm_dt.bias`; LFM2's last norm is
/// `token_embd_norm`; Qwen3.5's feed-forward pre-norm is `post_attention_norm`.
fn ember_name(arch: Arch, name: &str) -> String {
    if arch == Arch::Lfm2 && name == "token_embd_norm.weight" {
        return "output_norm.weight".into();
    }
    if arch == Arch::Qwen35 {
        if let Some(layer) = name.strip_suffix(".post_attention_norm.weight") {
            return format!("{layer}.{}.weight", Role::FfnNorm.name());
        }
    }
    if let Some(layer) = name.strip_suffix(".ssm_dt.bias") {
        return format!("{layer}.{}.weight", Role::SsmDtBias.name());
    }
    if name.starts_with("blk.") && (name.ends_with(".ssm_a") || name.ends_with(".ssm_d")) {
        return format!("{name}.weight");
    }
    name.to_string()
}

/// Recurrent hybrids: which layers are recurrent (a KV head count of 0, or llama.cpp's
/// `recurrent_layers` flags) and the mixer's sizes.
fn recurrent_config(
    g: &GgufFile<'_>,
    name: &str,
    recurrent: Recurrent,
    kv_per_layer: Option<Vec<usize>>,
    config: &mut ModelConfig,
) -> Result<()> {
    let key = |k: &str| format!("{name}.{k}");
    let layers = config.layer_count;
    // Which layers are recurrent: a KV head count of 0 (LFM2, Granite), Qwen3.5's flags, or
    // its interval.
    let recurrent_layers: Vec<bool> = match (kv_per_layer, g.opt_array(&key("attention.recurrent_layers"))?) {
        (Some(kv), _) => kv.iter().map(|&n| n == 0).collect(),
        (None, Some(flags)) => flags.bools().ok_or_else(|| {
            Error(format!("{name}.attention.recurrent_layers should be a list of bools"))
        })?,
        (None, None) => match g.opt_u32(&key("full_attention_interval"))? {
            Some(0) => crate::bail!("{name}.full_attention_interval must be positive"),
            Some(n) => (0..layers).map(|i| (i + 1) % n as usize != 0).collect(),
            None => crate::bail!("{name}: no per-layer KV head counts or recurrent_layers say which layers are recurrent"),
        },
    };
    if recurrent_layers.len() != layers {
        crate::bail!(
            "{name}: the recurrent layers are listed for {} layers of {layers}",
            recurrent_layers.len()
        );
    }
    config.set_layers(|i, l| {
        if recurrent_layers[i] {
            l.mixer = LayerMixer::Recurrent;
        }
        Ok(())
    })?;
    match recurrent {
        Recurrent::None => {}
        Recurrent::ShortConv => {
            config.conv_kernel = g.u32(&key("shortconv.l_cache"))? as usize;
        }
        Recurrent::GatedDeltaNet | Recurrent::Mamba2 => {
            // Mamba-2: state_size is N, group_count G, time_step_rank the heads H and
            // inner_size H·P. Gated DeltaNet: the key heads' size and number, the value
            // heads' number and their total width.
            config.conv_kernel = g.u32(&key("ssm.conv_kernel"))? as usize;
            config.ssm_state = g.u32(&key("ssm.state_size"))? as usize;
            config.ssm_groups = g.u32(&key("ssm.group_count"))? as usize;
            config.ssm_heads = g.u32(&key("ssm.time_step_rank"))? as usize;
            let inner = g.u32(&key("ssm.inner_size"))? as usize;
            if config.ssm_heads == 0 || !inner.is_multiple_of(config.ssm_heads) {
                crate::bail!(
                    "{name}.ssm.inner_size {inner} is not a multiple of ssm.time_step_rank {}",
                    config.ssm_heads
                );
            }
            config.ssm_head_dim = inner / config.ssm_heads;
        }
    }
    if recurrent == Recurrent::GatedDeltaNet {
        // llama.cpp's converter reorders the value heads so that head j reads key head
        // j mod G.
        config.ssm_tiled_heads = true;
        if g.opt_u32(&key("nextn_predict_layers"))?.unwrap_or(0) > 0 {
            crate::bail!("{name}: files with multi-token-prediction layers (nextn_predict_layers) are not supported; convert with --no-mtp");
        }
    }
    // Granite 4's muP multipliers and positions.
    if recurrent == Recurrent::Mamba2 {
        for (k, slot) in [
            ("embedding_scale", &mut config.embedding_scale),
            ("residual_scale", &mut config.residual_scale),
            ("logit_scale", &mut config.logits_divisor),
        ] {
            *slot = g.opt_f32(&key(k))?.filter(|&v| v != 0.0 && v != 1.0);
        }
        if let Some(s) = g.opt_f32(&key("attention.scale"))?.filter(|&s| s != 0.0) {
            config.attention_scale = Some(s);
        }
        // llama.cpp runs RoPE in Granite 4's attention only where the converter marked
        // it (position_embedding_type "rope").
        if !g.opt_bool(&key("rope.scaling.finetuned"))?.unwrap_or(true) {
            config.set_layers(|_, l| {
                l.positions = LayerPositions::None;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// Gemma 4: the layer pattern as a list, the local layers' head size and RoPE, KV sharing
/// in the last layers, per-layer inputs. (The global layers' partial RoPE comes as
/// `rope_freqs.weight`, read with the other scalings.)
fn gemma4(
    g: &GgufFile<'_>,
    name: &str,
    head_dim: usize,
    head_dim_swa: Option<usize>,
    window: Option<u32>,
    config: &mut ModelConfig,
) -> Result<()> {
    let key = |k: &str| format!("{name}.{k}");
    let layers = config.layer_count;
    let Some(window) = window else {
        crate::bail!("{name}.attention.sliding_window is missing");
    };
    config.sliding_window = Some(window as usize);
    let pattern = match g.get(&key("attention.sliding_window_pattern")) {
        Some(crate::gguf::Value::Array(a)) => a.bools().ok_or_else(|| {
            Error(format!(
                "{name}.attention.sliding_window_pattern: not booleans"
            ))
        })?,
        Some(_) => crate::bail!("{name}.attention.sliding_window_pattern is not an array"),
        None => crate::bail!("{name}.attention.sliding_window_pattern is missing"),
    };
    if pattern.len() != layers {
        crate::bail!(
            "{name}.attention.sliding_window_pattern has {} entries for {layers} layers",
            pattern.len()
        );
    }
    // key_length is the global head; local layers have key_length_swa.
    let local = head_dim_swa.unwrap_or(head_dim);
    config.head_dim = local;
    config.head_dim_global = Some(head_dim).filter(|&h| h != local);
    if let Some(rd) = g.opt_u32(&key("rope.dimension_count_swa"))? {
        if rd as usize != local {
            crate::bail!(
                "partial RoPE on local layers (rope.dimension_count_swa {rd}) is not supported"
            );
        }
    }
    if let Some(rd) = g.opt_u32(&key("rope.dimension_count"))? {
        if rd as usize != head_dim {
            crate::bail!(
                "rope.dimension_count {rd} differs from the global head {head_dim}: not supported"
            );
        }
    }
    config.rope_dim = None;
    config.rope_theta_local = Some(g.opt_f32(&key("rope.freq_base_swa"))?.unwrap_or(10_000.0));
    let shared = g.opt_u32(&key("attention.shared_kv_layers"))?.unwrap_or(0) as usize;
    if shared > layers {
        crate::bail!("{name}.attention.shared_kv_layers {shared} exceeds the {layers} layers");
    }
    // Double-wide feed-forwards on the shared layers come as a per-layer list.
    if let Some(crate::gguf::Value::Array(a)) = g.get(&key("feed_forward_length")) {
        let widths = a
            .i32s()
            .ok_or_else(|| Error(format!("{name}.feed_forward_length: not integers")))?;
        if widths.len() != layers || widths.iter().any(|&w| w <= 0) {
            crate::bail!("{name}.feed_forward_length: one positive width per layer expected");
        }
        let first = widths[0] as usize;
        let last = widths[layers - 1] as usize;
        for (i, &w) in widths.iter().enumerate() {
            let want = if i >= layers - shared { last } else { first };
            if w as usize != want {
                crate::bail!(
                    "{name}.feed_forward_length: layer {i}'s width {w} is not one per kind"
                );
            }
        }
        config.ffn_dim = first;
        config.ffn_dim_shared_kv = Some(last).filter(|&l| l != first);
    }
    if let Some(crate::gguf::Value::Array(_)) = g.get(&key("attention.head_count_kv")) {
        crate::bail!("per-layer KV head counts ({name}.attention.head_count_kv) are not supported");
    }
    config.set_layers(|i, l| {
        if pattern[i] {
            l.attention = Attention::Local;
        }
        if i >= layers - shared {
            l.kv = LayerKv::Shared;
        }
        Ok(())
    })?;
    config.per_layer_dim = g.u32(&key("embedding_length_per_layer_input"))? as usize;
    // llama.cpp: the q and k norms stand in for 1/sqrt(HS).
    config.attention_scale = Some(1.0);
    if let Some(cap) = g
        .opt_f32(&key("final_logit_softcapping"))?
        .filter(|&c| c > 0.0)
    {
        config.final_logit_softcap = Some(cap);
    }
    Ok(())
}

/// An f32 vector tensor's values.
fn f32_vector(t: &crate::gguf::TensorInfo<'_>) -> Result<Vec<f32>> {
    if t.dtype != DType::F32 || t.shape.len() != 1 {
        crate::bail!("{} must be an f32 vector", t.name);
    }
    Ok(t.data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// SmolLM3's NoPE layers in GGUF files: every fourth (llama.cpp's `n_no_rope_layer_step`).
const SMOLLM3_NOPE_INTERVAL: usize = 4;

/// Gemma 3's layer pattern: five local layers, then one global.
const GEMMA3_PATTERN: usize = 6;

/// `{arch}.rope.scaling.*`: none, linear or yarn.
fn rope_scaling(g: &GgufFile<'_>, arch: &str, context: usize) -> Result<RopeScaling> {
    let key = |k: &str| format!("{arch}.rope.scaling.{k}");
    let ty = match g.get(&key("type")) {
        None => return Ok(RopeScaling::None),
        Some(v) => v
            .as_str()
            .ok_or_else(|| Error(format!("{} is not a string", key("type"))))?,
    };
    let factor = g.opt_f32(&key("factor"))?;
    match (ty, factor) {
        ("none", _) => Ok(RopeScaling::None),
        (_, Some(f)) if f == 1.0 || f == 0.0 => Ok(RopeScaling::None),
        ("linear", Some(factor)) => Ok(RopeScaling::Linear { factor }),
        ("yarn", Some(factor)) => {
            let original = g
                .opt_u32(&key("original_context_length"))?
                .map_or(context, |v| v as usize);
            let mscale = |s: f32| 0.1 * (s as f64).ln() + 1.0;
            Ok(RopeScaling::Yarn {
                factor,
                original_context: original,
                beta_fast: g.opt_f32(&key("yarn_beta_fast"))?.unwrap_or(32.0),
                beta_slow: g.opt_f32(&key("yarn_beta_slow"))?.unwrap_or(1.0),
                attention_factor: g
                    .opt_f32(&key("attn_factor"))?
                    .unwrap_or(mscale(factor) as f32),
                truncate: true,
            })
        }
        (ty, Some(_)) => crate::bail!(
            "RoPE scaling type '{ty}' is not supported (supported: linear, yarn, llama3)"
        ),
        (ty, None) => crate::bail!("RoPE scaling '{ty}' without {}", key("factor")),
    }
}
