//! The Llama decoder: embeddings, decoder layers (grouped-query attention with rotary
//! embeddings, SwiGLU MLP, pre-RMSNorm), final norm and the language-model head.

use super::ModelError;
use super::config::LlamaConfig;
use super::host_forward::HostLlama;
use super::layers::{LoraPair, Proj, RmsNorm, Rope, apply_rope};
use super::row_math::nll_of_row;
use crate::Result;
use burn::module::{Module, Param};
use burn::tensor::activation::{log_softmax, silu, softmax};
use burn::tensor::module::{attention, embedding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Self-attention with grouped key/value heads.
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection `[hidden, heads·head_dim]`.
    pub q_proj: Proj,
    /// Key projection `[hidden, kv_heads·head_dim]`.
    pub k_proj: Proj,
    /// Value projection `[hidden, kv_heads·head_dim]`.
    pub v_proj: Proj,
    /// Output projection `[heads·head_dim, hidden]`.
    pub o_proj: Proj,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// Sliding attention window (a query sees the last `window` positions, itself included);
    /// `None`: full causal attention.
    #[module(skip)]
    pub window: Option<usize>,
}

/// The SwiGLU feed-forward block: `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[hidden, intermediate]`.
    pub gate_proj: Proj,
    /// `[hidden, intermediate]`.
    pub up_proj: Proj,
    /// `[intermediate, hidden]`.
    pub down_proj: Proj,
}

/// One decoder layer (pre-norm residual attention and MLP).
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Attention.
    pub self_attn: Attention,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// MLP.
    pub mlp: Mlp,
}

/// A Llama causal language model.
#[derive(Module, Debug)]
pub struct Llama {
    /// Token embeddings `[vocab, hidden]`.
    pub embed_tokens: Param<Tensor<2>>,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final norm.
    pub norm: RmsNorm,
    /// Output head `[hidden, vocab]`; `None` when tied to the embeddings.
    pub lm_head: Option<Proj>,
    /// Rotary position embeddings.
    #[module(skip)]
    pub rope: Rope,
}

/// Cached keys and values of one layer, `[batch, kv_heads, len, head_dim]` (after rotary).
#[derive(Debug, Clone)]
struct LayerCache {
    k: Tensor<4>,
    v: Tensor<4>,
}

/// The key/value cache of an incremental decode.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    len: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Summed negative log-likelihood over predicted tokens and their count, so perplexity over
/// many batches is `exp(Σ nll / Σ count)` exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NllSum {
    /// Σ −log p(target).
    pub nll: f64,
    /// Number of predicted tokens.
    pub count: u64,
}

impl NllSum {
    /// Mean loss (nats/token).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.nll / self.count as f64
        }
    }

    /// Perplexity `exp(mean)`.
    pub fn perplexity(&self) -> f64 {
        self.mean().exp()
    }

    /// Adds another sum.
    pub fn add(&mut self, o: NllSum) {
        self.nll += o.nll;
        self.count += o.count;
    }
}

/// Next-token NLLs of a model in inference mode ([`Llama::scorer`]). On the host CPU
/// (`flex`, `ndarray`) the weights are copied once and batches run through the fused host
/// forward ([`HostLlama`]); on other devices through burn's graph with the loss fused into
/// the read of the logits.
#[derive(Debug)]
pub struct NllScorer {
    model: Llama,
    device: Device,
    host: Option<HostLlama>,
}

impl NllScorer {
    /// Next-token NLL (nats) of every predicted token of `windows` (all the same length).
    pub fn token_nlls(&self, windows: &[Vec<u32>]) -> Result<Vec<f32>> {
        match &self.host {
            Some(h) => {
                let (inp, tgt, b, len) = self.model.window_ids(windows)?;
                Ok(h.nlls(&inp, &tgt, b, len))
            }
            None => self.graph_token_nlls(windows),
        }
    }

    /// The same through burn's graph whatever the device (the reference the host forward is
    /// tested against).
    pub fn graph_token_nlls(&self, windows: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.model.fused_nlls(windows, &self.device)
    }
}

impl Attention {
    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<2>,
        sin: &Tensor<2>,
        cache: Option<&mut Option<LayerCache>>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let q = self
            .q_proj
            .forward(x.clone())
            .reshape([b, t, h, hd])
            .swap_dims(1, 2);
        let k = self
            .k_proj
            .forward(x.clone())
            .reshape([b, t, kvh, hd])
            .swap_dims(1, 2);
        let v = self
            .v_proj
            .forward(x)
            .reshape([b, t, kvh, hd])
            .swap_dims(1, 2);
        let q = apply_rope(q, cos, sin);
        let mut k = apply_rope(k, cos, sin);
        let mut v = v;
        let mut past = 0;
        if let Some(slot) = cache {
            if let Some(prev) = slot.take() {
                past = prev.k.dims()[2];
                k = Tensor::cat(vec![prev.k, k], 2);
                v = Tensor::cat(vec![prev.v, v], 2);
            }
            *slot = Some(LayerCache {
                k: k.clone(),
                v: v.clone(),
            });
        }
        let s = past + t;
        let rep = h / kvh;
        let (k, v) = if rep > 1 {
            let expand = |z: Tensor<4>| {
                z.unsqueeze_dim::<5>(2)
                    .repeat_dim(2, rep)
                    .reshape([b, h, s, hd])
            };
            (expand(k), expand(v))
        } else {
            (k, v)
        };
        // Inference from the first position, or one new token, without a sliding window that
        // cuts the keys: burn's fused attention kernel (causal when several queries), which
        // keeps the scores per head in cache instead of five passes over `[b, h, t, s]`.
        // Training keeps the explicit ops below (their gradients, and adapters bit-identical).
        if !q.is_autodiff() && (past == 0 || t == 1) && s <= self.window.unwrap_or(usize::MAX) {
            let attn = attention(
                q,
                k,
                v,
                None,
                None,
                AttentionModuleOptions {
                    scale: None,
                    softcap: None,
                    is_causal: t > 1,
                },
            );
            let out = attn.swap_dims(1, 2).reshape([b, t, h * hd]);
            return self.o_proj.forward(out);
        }
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt());
        // Causal (and, with a window, sliding) mask over absolute positions: query `past + i`
        // sees key `j` when `j ≤ past + i` and `j > past + i − window`.
        // Only a single new token that sees every key (all of them within the window) needs none.
        let window = self.window.unwrap_or(usize::MAX);
        let masked = |i: usize, j: usize| j > past + i || past + i - j >= window;
        let scores = if t > 1 || s > window {
            let mut m = Vec::with_capacity(t * s);
            for i in 0..t {
                for j in 0..s {
                    m.push(if masked(i, j) { f32::NEG_INFINITY } else { 0.0 });
                }
            }
            let mask = Tensor::<2>::from_data(TensorData::new(m, [t, s]), &scores.device());
            scores + mask.unsqueeze::<4>()
        } else {
            scores
        };
        let attn = softmax(scores, 3).matmul(v);
        let out = attn.swap_dims(1, 2).reshape([b, t, h * hd]);
        self.o_proj.forward(out)
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let g = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(g * self.up_proj.forward(x))
    }
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        cos: &Tensor<2>,
        sin: &Tensor<2>,
        cache: Option<&mut Option<LayerCache>>,
    ) -> Tensor<3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), cos, sin, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }
}

/// The short names of a decoder layer's projections (the modules LoRA can adapt), attention
/// then MLP.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Where a freshly built model's weights come from: a name in Hugging Face's layout and the
/// shape there (`[out, in]` for projections) in, row-major f32 values out.
pub type WeightSource<'a> = dyn FnMut(&str, &[usize]) -> Result<Vec<f32>> + 'a;

/// Every tensor of a model in Hugging Face naming and shape, in a stable order.
pub fn hf_tensor_shapes(cfg: &LlamaConfig) -> Vec<(String, Vec<usize>)> {
    let hs = cfg.hidden_size;
    let mut v = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, hs],
    )];
    let projections = layer_projections(cfg);
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        v.push((format!("{p}.input_layernorm.weight"), vec![hs]));
        for (i, (name, (out_f, in_f, bias))) in projections.iter().enumerate() {
            if i == 4 {
                v.push((format!("{p}.post_attention_layernorm.weight"), vec![hs]));
            }
            v.push((format!("{p}.{name}.weight"), vec![*out_f, *in_f]));
            if *bias {
                v.push((format!("{p}.{name}.bias"), vec![*out_f]));
            }
        }
    }
    v.push(("model.norm.weight".to_string(), vec![hs]));
    if !cfg.tie_word_embeddings {
        v.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, hs]));
    }
    v
}

/// The seven projections of a decoder layer, in Hugging Face naming and checkpoint order
/// (attention, then MLP): `(module, (out, in, has_bias))`.
fn layer_projections(cfg: &LlamaConfig) -> [(&'static str, (usize, usize, bool)); 7] {
    let (hs, is, hd) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim());
    let (qd, kd) = (cfg.num_attention_heads * hd, cfg.kv_heads() * hd);
    let b = cfg.biases();
    [
        ("self_attn.q_proj", (qd, hs, b.qkv)),
        ("self_attn.k_proj", (kd, hs, b.qkv)),
        ("self_attn.v_proj", (kd, hs, b.qkv)),
        ("self_attn.o_proj", (hs, qd, b.o)),
        ("mlp.gate_proj", (is, hs, b.mlp)),
        ("mlp.up_proj", (is, hs, b.mlp)),
        ("mlp.down_proj", (hs, is, b.mlp)),
    ]
}

/// Transposes a row-major `[rows, cols]` matrix.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// The projection `module` (`model.layers.0.self_attn.q_proj`): `module.weight` `[out, in]`,
/// and `module.bias` `[out]` when `bias`.
fn proj_from(
    src: &mut WeightSource<'_>,
    module: &str,
    (out_f, in_f, bias): (usize, usize, bool),
    device: &Device,
    trainable: bool,
) -> Result<Proj> {
    let w = src(&format!("{module}.weight"), &[out_f, in_f])?;
    let t = Tensor::<2>::from_data(
        TensorData::new(transpose(&w, out_f, in_f), [in_f, out_f]),
        device,
    );
    let b = if bias {
        let v = src(&format!("{module}.bias"), &[out_f])?;
        Some(Tensor::<1>::from_data(TensorData::new(v, [out_f]), device))
    } else {
        None
    };
    Ok(Proj::new(t, trainable).with_bias(b, trainable))
}

fn norm_from(
    src: &mut WeightSource<'_>,
    name: &str,
    n: usize,
    eps: f64,
    device: &Device,
    trainable: bool,
) -> Result<RmsNorm> {
    let w = src(name, &[n])?;
    Ok(RmsNorm::new(
        Tensor::from_data(TensorData::new(w, [n]), device),
        eps,
        trainable,
    ))
}

impl Llama {
    /// Builds a model on `device`, asking `src` for every tensor (Hugging Face names and
    /// shapes). Parameters require gradients when `trainable`.
    pub fn build(
        cfg: &LlamaConfig,
        device: &Device,
        src: &mut WeightSource<'_>,
        trainable: bool,
    ) -> Result<Self> {
        cfg.validate()?;
        let (hs, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let emb = src("model.embed_tokens.weight", &[cfg.vocab_size, hs])?;
        let embed_tokens = Param::from_tensor(Tensor::from_data(
            TensorData::new(emb, [cfg.vocab_size, hs]),
            device,
        ))
        .set_require_grad(trainable);
        let projections = layer_projections(cfg);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let [q, k, v, o, gate, up, down] = projections.map(|(name, shape)| {
                proj_from(src, &format!("{p}.{name}"), shape, device, trainable)
            });
            let self_attn = Attention {
                q_proj: q?,
                k_proj: k?,
                v_proj: v?,
                o_proj: o?,
                heads: cfg.num_attention_heads,
                kv_heads: cfg.kv_heads(),
                head_dim: cfg.head_dim(),
                window: cfg.layer_window(l),
            };
            let mlp = Mlp {
                gate_proj: gate?,
                up_proj: up?,
                down_proj: down?,
            };
            layers.push(DecoderLayer {
                input_layernorm: norm_from(
                    src,
                    &format!("{p}.input_layernorm.weight"),
                    hs,
                    eps,
                    device,
                    trainable,
                )?,
                self_attn,
                post_attention_layernorm: norm_from(
                    src,
                    &format!("{p}.post_attention_layernorm.weight"),
                    hs,
                    eps,
                    device,
                    trainable,
                )?,
                mlp,
            });
        }
        let norm = norm_from(src, "model.norm.weight", hs, eps, device, trainable)?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(proj_from(
                src,
                "lm_head",
                (cfg.vocab_size, hs, false),
                device,
                trainable,
            )?)
        };
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rope: Rope::from_config(cfg),
        })
    }

    /// A randomly initialised model (`N(0, initializer_range)` weights, unit norms), reproducible
    /// from `seed` on every backend (the values are drawn on the host).
    pub fn init(cfg: &LlamaConfig, device: &Device, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let std = cfg.initializer_range as f32;
        let mut src = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let n: usize = shape.iter().product();
            Ok(if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else {
                normal_vec(&mut rng, n, std)
            })
        };
        Self::build(cfg, device, &mut src, true)
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.shape().dims::<2>()[0]
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.val().device()
    }

    /// Logits `[batch, len, vocab]` for token ids `[batch, len]`. With a cache, the tokens
    /// continue the cached positions and their keys/values are appended.
    pub fn forward(&self, tokens: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        self.head(self.hidden(tokens, cache))
    }

    /// The final hidden states `[batch, len, hidden]` (after the last norm) for token ids
    /// `[batch, len]`; [`Llama::head`] turns them into logits.
    pub fn hidden(&self, tokens: Tensor<2, Int>, cache: Option<&mut KvCache>) -> Tensor<3> {
        let [_, t] = tokens.dims();
        let start = cache.as_ref().map_or(0, |c| c.len);
        let device = tokens.device();
        let (cos, sin) = self.rope.tables(start, t, &device);
        let mut x = embedding(self.embed_tokens.val(), tokens);
        match cache {
            Some(c) => {
                if c.layers.len() != self.layers.len() {
                    c.layers = vec![None; self.layers.len()];
                }
                for (layer, slot) in self.layers.iter().zip(c.layers.iter_mut()) {
                    x = layer.forward(x, &cos, &sin, Some(slot));
                }
                c.len += t;
            }
            None => {
                for layer in &self.layers {
                    x = layer.forward(x, &cos, &sin, None);
                }
            }
        }
        self.norm.forward(x)
    }

    /// Logits `[batch, len, vocab]` of hidden states `[batch, len, hidden]`.
    pub fn head(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(h) => h.forward(x),
            None => {
                // Tied: a 2-D product with the embeddings' transposed view. (`linear` reshapes
                // the weight to the input's rank, which copies a transposed view whole: the
                // vocabulary × hidden matrix on every call.)
                let [b, t, d] = x.dims();
                let e = self.embed_tokens.val();
                let v = e.dims()[0];
                x.reshape([b * t, d])
                    .matmul(e.transpose())
                    .reshape([b, t, v])
            }
        }
    }

    /// Logits of one sequence, `[len][vocab]`, in inference mode.
    pub fn logits_of(&self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.check_tokens(ids)?;
        let m = self.valid();
        let d = m.device();
        let x = Tensor::<2, Int>::from_data(
            TensorData::new(
                ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [1, ids.len()],
            ),
            &d,
        );
        let v = m.vocab_size();
        let flat = m
            .forward(x, None)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        Ok(flat.chunks(v).map(<[f32]>::to_vec).collect())
    }

    /// Checks that every id is inside the vocabulary.
    pub fn check_tokens(&self, ids: &[u32]) -> Result<()> {
        let v = self.vocab_size();
        if let Some((i, id)) = ids.iter().enumerate().find(|(_, id)| **id as usize >= v) {
            return Err(ModelError::Input(format!(
                "token id {id} at position {i} is outside the vocabulary (size {v})"
            ))
            .into());
        }
        Ok(())
    }

    /// Inputs and targets of windows `[batch, len+1]` (inputs are the first `len` tokens of
    /// each window, targets the last `len`), row-major, with `batch` and `len`; every id
    /// checked against the vocabulary.
    pub(super) fn window_ids(
        &self,
        windows: &[Vec<u32>],
    ) -> Result<(Vec<u32>, Vec<u32>, usize, usize)> {
        let b = windows.len();
        let len = windows.first().map_or(0, |w| w.len()).saturating_sub(1);
        if b == 0 || len == 0 {
            return Err(
                ModelError::Input("loss: need at least one window of ≥ 2 tokens".into()).into(),
            );
        }
        let mut inp = Vec::with_capacity(b * len);
        let mut tgt = Vec::with_capacity(b * len);
        for w in windows {
            if w.len() != len + 1 {
                return Err(ModelError::Input(format!(
                    "loss: windows differ in length ({} vs {})",
                    w.len(),
                    len + 1
                ))
                .into());
            }
            self.check_tokens(w)?;
            inp.extend_from_slice(&w[..len]);
            tgt.extend_from_slice(&w[1..]);
        }
        Ok((inp, tgt, b, len))
    }

    /// [`Llama::window_ids`] with the inputs as a tensor `[batch, len]`.
    fn window_inputs(
        &self,
        windows: &[Vec<u32>],
        device: &Device,
    ) -> Result<(Tensor<2, Int>, Vec<u32>)> {
        let (inp, tgt, b, len) = self.window_ids(windows)?;
        let inp = inp.into_iter().map(i64::from).collect::<Vec<_>>();
        let inp = Tensor::<2, Int>::from_data(TensorData::new(inp, [b, len]), device);
        Ok((inp, tgt))
    }

    /// Log-probabilities of the targets of windows `[batch, len+1]` (inputs are the first
    /// `len`, targets the last `len`), shape `[batch, len, 1]`: the differentiable path.
    fn target_logp(&self, windows: &[Vec<u32>], device: &Device) -> Result<Tensor<3>> {
        let (inp, tgt) = self.window_inputs(windows, device)?;
        let [b, len] = inp.dims();
        let tgt = tgt.into_iter().map(i64::from).collect::<Vec<_>>();
        let tgt = Tensor::<2, Int>::from_data(TensorData::new(tgt, [b, len]), device);
        let logits = self.forward(inp, None);
        let logp = log_softmax(logits, 2);
        Ok(logp.gather(2, tgt.unsqueeze_dim::<3>(2)))
    }

    /// Next-token NLL of every target of `windows`, for inference: the logits are read once and
    /// each position's NLL is its log-sum-exp minus the target's logit, so no log-softmax
    /// tensor of the whole vocabulary is built (the largest single cost of an eval forward).
    fn fused_nlls(&self, windows: &[Vec<u32>], device: &Device) -> Result<Vec<f32>> {
        let (inp, tgt) = self.window_inputs(windows, device)?;
        let v = self.vocab_size();
        let logits = self
            .forward(inp, None)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| ModelError::Input(format!("logits: {e:?}")))?;
        Ok(logits
            .chunks_exact(v)
            .zip(&tgt)
            .map(|(row, &t)| nll_of_row(row, t as usize))
            .collect())
    }

    /// Summed next-token NLL of windows `[batch, len+1]` (inputs are the first `len`, targets
    /// the last `len`): the loss tensor (mean over tokens, for `backward`) and the count.
    pub fn loss(&self, windows: &[Vec<u32>], device: &Device) -> Result<(Tensor<1>, usize)> {
        let picked = self.target_logp(windows, device)?;
        let n = picked.dims().iter().product::<usize>();
        Ok((picked.sum().neg().div_scalar(n as f64), n))
    }

    /// The summed next-token NLL of `windows` divided by `denom` (the token count of the whole
    /// batch they are a shard of), for `backward`: shards' losses and gradients add up to the
    /// batch's mean.
    pub fn shard_loss(
        &self,
        windows: &[Vec<u32>],
        denom: usize,
        device: &Device,
    ) -> Result<Tensor<1>> {
        let picked = self.target_logp(windows, device)?;
        Ok(picked.sum().neg().div_scalar(denom.max(1) as f64))
    }

    /// Next-token NLL (nats) of every predicted token of `windows` (all the same length), in
    /// inference mode, window after window: the values an exact perplexity sums.
    pub fn token_nlls(&self, windows: &[Vec<u32>]) -> Result<Vec<f32>> {
        self.scorer()?.token_nlls(windows)
    }

    /// The inference-mode scorer of this model, to score many batches with one copy of the
    /// weights.
    pub fn scorer(&self) -> Result<NllScorer> {
        let model = self.valid();
        let device = model.device();
        let host = if super::is_host_cpu(&device) {
            Some(HostLlama::of(&model)?)
        } else {
            None
        };
        Ok(NllScorer {
            model,
            device,
            host,
        })
    }

    /// Exact summed NLL of `windows` in inference mode (no autodiff), in batches of `batch`.
    pub fn nll(&self, windows: &[Vec<u32>], batch: usize) -> Result<NllSum> {
        let scorer = self.scorer()?;
        let chunks: Vec<&[Vec<u32>]> = windows.chunks(batch.max(1)).collect();
        // Batches run in parallel; their sums are added in batch order (the same as one thread).
        let sums = super::parallel::map_ordered(&chunks, |_, chunk| -> Result<NllSum> {
            let nlls = scorer.token_nlls(chunk)?;
            Ok(NllSum {
                nll: nlls.iter().map(|&x| f64::from(x)).sum(),
                count: nlls.len() as u64,
            })
        });
        let mut out = NllSum::default();
        for s in sums {
            out.add(s?);
        }
        Ok(out)
    }

    /// Every projection with its Hugging Face module path (`model.layers.N.self_attn.q_proj`…),
    /// for adapters and merges.
    pub fn projections(&self) -> Vec<(String, &Proj)> {
        let mut v = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let a = &layer.self_attn;
            let m = &layer.mlp;
            for (n, p) in [
                ("self_attn.q_proj", &a.q_proj),
                ("self_attn.k_proj", &a.k_proj),
                ("self_attn.v_proj", &a.v_proj),
                ("self_attn.o_proj", &a.o_proj),
                ("mlp.gate_proj", &m.gate_proj),
                ("mlp.up_proj", &m.up_proj),
                ("mlp.down_proj", &m.down_proj),
            ] {
                v.push((format!("model.layers.{l}.{n}"), p));
            }
        }
        v
    }

    /// Mutable access to the projections, same order and names as [`Llama::projections`].
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Proj)> {
        let mut v = Vec::new();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let a = &mut layer.self_attn;
            let m = &mut layer.mlp;
            for (n, p) in [
                ("self_attn.q_proj", &mut a.q_proj),
                ("self_attn.k_proj", &mut a.k_proj),
                ("self_attn.v_proj", &mut a.v_proj),
                ("self_attn.o_proj", &mut a.o_proj),
                ("mlp.gate_proj", &mut m.gate_proj),
                ("mlp.up_proj", &mut m.up_proj),
                ("mlp.down_proj", &mut m.down_proj),
            ] {
                v.push((format!("model.layers.{l}.{n}"), p));
            }
        }
        v
    }

    /// Freezes every base parameter and attaches fresh LoRA factors to the projections whose
    /// short name (`q_proj`, `gate_proj`, …) is in `targets`. `a` is drawn like PEFT's default
    /// (uniform ±1/√in, from `seed`), `b` is zero, so the model's output is unchanged.
    pub fn attach_lora(
        self,
        rank: usize,
        alpha: f64,
        dropout: f64,
        targets: &[String],
        seed: u64,
    ) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        if rank == 0 {
            return Err(ModelError::Config("LoRA rank must be > 0".into()).into());
        }
        for t in targets {
            if !PROJECTIONS.contains(&t.as_str()) {
                return Err(ModelError::Config(format!(
                    "LoRA target `{t}` is unknown (known: {})",
                    PROJECTIONS.join(", ")
                ))
                .into());
            }
        }
        let mut model = self.no_grad();
        let device = model.device();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for (name, p) in model.projections_mut() {
            let short = name.rsplit('.').next().unwrap_or_default();
            if !targets.iter().any(|t| t == short) {
                continue;
            }
            let [din, dout] = p.dims();
            let bound = 1.0 / (din as f32).sqrt();
            let a: Vec<f32> = (0..din * rank)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            p.lora = Some(LoraPair {
                a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [din, rank]), &device)),
                b: Param::from_tensor(Tensor::zeros([rank, dout], &device)),
                scale: alpha / rank as f64,
                dropout,
            });
        }
        Ok(model)
    }

    /// Folds every attached adapter into its base weight (`W + scale·a·b`) and drops it.
    pub fn merge_lora(mut self) -> Self {
        for (_, p) in self.projections_mut() {
            if p.lora.is_some() {
                let w = p.merged_weight();
                let bias = p.bias.take().map(|b| b.val());
                *p = Proj::new(w, false).with_bias(bias, false);
            }
        }
        self
    }
}

/// `n` draws from `N(0, std²)` (Box–Muller), reproducible from the generator.
pub fn normal_vec(rng: &mut impl rand::Rng, n: usize, std: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push((r * th.cos()) as f32 * std);
        out.push((r * th.sin()) as f32 * std);
    }
    out.truncate(n);
    out
}
