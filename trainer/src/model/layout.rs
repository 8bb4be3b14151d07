//! One flat parameter buffer (llm.c style) and where each HF tensor lives in it.
//!
//! q|k|v and gate|up are stored next to each other so each pair is one GEMM:
//! rows of q_proj, then k_proj, then v_proj form a ((NH + 2 KVH) HS, C) matrix.
use super::ModelConfig;

/// One named tensor inside the flat buffer.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
    /// AdamW weight decay applies to 2-D weights only, not to norms.
    pub decay: bool,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Offsets of one layer's tensors.
#[derive(Clone, Copy, Debug)]
pub struct LayerOffsets {
    pub ln1: usize,
    /// (QKV, C): q_proj, k_proj, v_proj rows back to back.
    pub wqkv: usize,
    /// (C, NH HS)
    pub wo: usize,
    pub ln2: usize,
    /// (2F, C): gate_proj then up_proj.
    pub wgu: usize,
    /// (C, F)
    pub wd: usize,
}

#[derive(Clone, Debug)]
pub struct Layout {
    pub specs: Vec<ParamSpec>,
    pub layers: Vec<LayerOffsets>,
    /// (V, C)
    pub wte: usize,
    /// (C)
    pub lnf: usize,
    /// (V, C); equals `wte` when embeddings are tied.
    pub wlm: usize,
    pub n_params: usize,
}

impl Layout {
    pub fn new(cfg: &ModelConfig) -> Self {
        let (v, c, f, hs) = (cfg.vocab_size, cfg.dim, cfg.ffn, cfg.head_size());
        let (nh, kvh) = (cfg.n_heads, cfg.n_kv_heads);
        let mut specs = Vec::new();
        let mut off = 0usize;
        let mut push = |name: String, shape: Vec<usize>, decay: bool| -> usize {
            let at = off;
            off += shape.iter().product::<usize>();
            specs.push(ParamSpec {
                name,
                shape,
                offset: at,
                decay,
            });
            at
        };
        let wte = push("model.embed_tokens.weight".into(), vec![v, c], true);
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let p = format!("model.layers.{i}");
            let ln1 = push(format!("{p}.input_layernorm.weight"), vec![c], false);
            let wqkv = push(
                format!("{p}.self_attn.q_proj.weight"),
                vec![nh * hs, c],
                true,
            );
            push(
                format!("{p}.self_attn.k_proj.weight"),
                vec![kvh * hs, c],
                true,
            );
            push(
                format!("{p}.self_attn.v_proj.weight"),
                vec![kvh * hs, c],
                true,
            );
            let wo = push(
                format!("{p}.self_attn.o_proj.weight"),
                vec![c, nh * hs],
                true,
            );
            let ln2 = push(
                format!("{p}.post_attention_layernorm.weight"),
                vec![c],
                false,
            );
            let wgu = push(format!("{p}.mlp.gate_proj.weight"), vec![f, c], true);
            push(format!("{p}.mlp.up_proj.weight"), vec![f, c], true);
            let wd = push(format!("{p}.mlp.down_proj.weight"), vec![c, f], true);
            layers.push(LayerOffsets {
                ln1,
                wqkv,
                wo,
                ln2,
                wgu,
                wd,
            });
        }
        let lnf = push("model.norm.weight".into(), vec![c], false);
        let wlm = if cfg.tie_embeddings {
            wte
        } else {
            push("lm_head.weight".into(), vec![v, c], true)
        };
        Layout {
            specs,
            layers,
            wte,
            lnf,
            wlm,
            n_params: off,
        }
    }

    pub fn find(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}
