//! Building blocks: projections with optional LoRA adapters, RMSNorm and rotary embeddings in
//! Hugging Face's rotate-half layout.

use super::config::{LlamaConfig, RopeScaling};
use burn::module::{Module, Param};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use std::cell::RefCell;

/// SplitMix64: a tiny, fast generator for dropout masks (seeded per micro-batch). Its `k`-th
/// output is a pure function of the state and `k`, so a run of outputs is computed without a
/// chain from one to the next (vectorised).
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// The output of state `z`.
    #[inline(always)]
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[cfg(test)]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        Self::mix(self.0)
    }
}

thread_local! {
    static DROPOUT_RNG: RefCell<Option<SplitMix>> = const { RefCell::new(None) };
}

/// Seeds the LoRA dropout of forward passes on this thread (the trainer calls it before each
/// micro-batch with a seed derived from the run seed and the step), so dropout masks are drawn on
/// the host in a fixed order and training is bit-reproducible. Without a seed, dropout is off.
pub fn seed_dropout(seed: Option<u64>) {
    DROPOUT_RNG.with(|r| *r.borrow_mut() = seed.map(SplitMix));
}

/// `n` inverted-dropout factors (`0` or `1/(1-p)`) from this thread's dropout generator, when
/// a dropout seed is set: the graph's masks and the host trainer's come from here, in the same
/// order.
pub(super) fn dropout_values(n: usize, p: f64) -> Option<Vec<f32>> {
    DROPOUT_RNG.with(|r| {
        let mut r = r.borrow_mut();
        let rng = r.as_mut()?;
        let scale = (1.0 / (1.0 - p)) as f32;
        // Keep when a uniform 32-bit draw is ≥ p·2³²; two draws per 64-bit output.
        let cut = (p * 4_294_967_296.0) as u64;
        let mut v = vec![0.0f32; n.next_multiple_of(2)];
        dropout_fill(&mut v, rng.0, cut, scale);
        let outputs = (v.len() / 2) as u64;
        rng.0 = rng.0.wrapping_add(outputs.wrapping_mul(SplitMix::GAMMA));
        v.truncate(n);
        Some(v)
    })
}

super::host_forward::wide_kernels! {
    fn dropout_fill = dropout_kernel(v: &mut [f32], state: u64, cut: u64, scale: f32);
}

/// Fills `v` (pairs of values) from the SplitMix outputs after `state`, two 32-bit draws each:
/// `scale` where a draw is ≥ `cut`, else 0.
#[inline(always)]
fn dropout_kernel(v: &mut [f32], state: u64, cut: u64, scale: f32) {
    let keep = |u: u64| if u >= cut { scale } else { 0.0 };
    for (k, pair) in v.chunks_exact_mut(2).enumerate() {
        let z = SplitMix::mix(state.wrapping_add((k as u64 + 1).wrapping_mul(SplitMix::GAMMA)));
        pair[0] = keep(z & 0xFFFF_FFFF);
        pair[1] = keep(z >> 32);
    }
}

/// An inverted-dropout mask shaped like `x` ([`dropout_values`]), when a dropout seed is set.
fn dropout_mask<const D: usize>(x: &Tensor<D>, p: f64) -> Option<Tensor<D>> {
    let shape = x.shape();
    let v = dropout_values(shape.num_elements(), p)?;
    Some(Tensor::from_data(TensorData::new(v, shape), &x.device()))
}

/// A linear projection. `weight` is stored `[in, out]` (burn's layout; Hugging Face stores the
/// transpose `[out, in]`), with an optional bias `[out]`. With `lora`, the output adds
/// `scale · dropout(x) · a · b` (`a: [in, r]`, `b: [r, out]`); the base weight stays frozen.
#[derive(Module, Debug)]
pub struct Proj {
    /// The weight, `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// The bias `[out]`, for architectures that have one (qwen2's q/k/v, llama's
    /// `attention_bias` / `mlp_bias`).
    pub bias: Option<Param<Tensor<1>>>,
    /// The LoRA adapter, when one is attached.
    pub lora: Option<LoraPair>,
}

/// The two LoRA factors of one projection.
#[derive(Module, Debug)]
pub struct LoraPair {
    /// Down projection `[in, r]` (PEFT's `lora_A.weight` transposed).
    pub a: Param<Tensor<2>>,
    /// Up projection `[r, out]` (PEFT's `lora_B.weight` transposed).
    pub b: Param<Tensor<2>>,
    /// `lora_alpha / r`.
    pub scale: f64,
    /// Dropout probability on the adapter's input (training only).
    pub dropout: f64,
}

impl Proj {
    /// A projection from a weight in burn layout `[in, out]`.
    pub fn new(weight: Tensor<2>, trainable: bool) -> Self {
        Self {
            weight: Param::from_tensor(weight).set_require_grad(trainable),
            bias: None,
            lora: None,
        }
    }

    /// The same projection with a bias `[out]`.
    pub fn with_bias(mut self, bias: Option<Tensor<1>>, trainable: bool) -> Self {
        self.bias = bias.map(|b| Param::from_tensor(b).set_require_grad(trainable));
        self
    }

    /// `[in, out]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.shape().dims()
    }

    /// Applies the projection to `[.., in]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let base = linear(
            x.clone(),
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
        );
        match &self.lora {
            None => base,
            Some(l) => {
                let x = match (l.dropout > 0.0 && x.is_autodiff())
                    .then(|| dropout_mask(&x, l.dropout))
                    .flatten()
                {
                    Some(mask) => x * mask,
                    None => x,
                };
                let delta = linear(linear(x, l.a.val(), None), l.b.val(), None);
                base + delta.mul_scalar(l.scale)
            }
        }
    }

    /// The effective weight `[in, out]`: the base plus `scale · a · b` when an adapter is attached.
    pub fn merged_weight(&self) -> Tensor<2> {
        match &self.lora {
            None => self.weight.val(),
            Some(l) => self.weight.val() + l.a.val().matmul(l.b.val()).mul_scalar(l.scale),
        }
    }
}

/// Root-mean-square layer norm (`x / sqrt(mean(x²) + eps) · weight`), as Llama uses.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// Per-channel gain.
    pub weight: Param<Tensor<1>>,
    /// Epsilon inside the square root.
    pub eps: f64,
}

impl RmsNorm {
    /// A norm with the given gain.
    pub fn new(weight: Tensor<1>, eps: f64, trainable: bool) -> Self {
        Self {
            weight: Param::from_tensor(weight).set_require_grad(trainable),
            eps,
        }
    }

    /// Normalises the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let last = D - 1;
        let rms = (x.clone().square().mean_dim(last) + self.eps).sqrt();
        (x / rms) * self.weight.val().unsqueeze()
    }
}

/// Rotary position embeddings as transformers computes them: the inverse frequencies of
/// `rope_type` default, linear, dynamic (NTK) or llama3, in f32 like transformers.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// Per-head width (all of it is rotated).
    pub head_dim: usize,
    /// Rotary base.
    pub theta: f64,
    /// Frequency scaling, `None` for `default`.
    pub scaling: Option<RopeScaling>,
    /// `max_position_embeddings`: the reference length of dynamic scaling.
    pub max_position_embeddings: usize,
}

impl Rope {
    /// The rotary settings of a configuration.
    pub fn from_config(cfg: &LlamaConfig) -> Self {
        Self {
            head_dim: cfg.head_dim(),
            theta: cfg.rope_theta,
            scaling: cfg.rope_scaling.clone(),
            max_position_embeddings: cfg.max_position_embeddings,
        }
    }

    /// `1 / base^(2i/d)` in f32, as `torch.arange(0, d, 2).float() / d` and `base ** that`.
    fn default_inv_freq(&self, base: f32) -> Vec<f32> {
        let d = self.head_dim;
        (0..d / 2)
            .map(|i| 1.0f32 / base.powf((2 * i) as f32 / d as f32))
            .collect()
    }

    /// The inverse frequencies for a forward pass whose last position is `seq_len - 1`
    /// (only dynamic scaling depends on it).
    pub fn inv_freq(&self, seq_len: usize) -> Vec<f32> {
        match &self.scaling {
            None => self.default_inv_freq(self.theta as f32),
            Some(RopeScaling::Linear { factor }) => self
                .default_inv_freq(self.theta as f32)
                .into_iter()
                .map(|f| f / *factor as f32)
                .collect(),
            Some(RopeScaling::Dynamic { factor }) => {
                // transformers: base · ((factor·L/max) − (factor−1))^(d/(d−2)), L ≥ max, in f32.
                let max = self.max_position_embeddings as f32;
                let l = (seq_len as f32).max(max);
                let factor = *factor as f32;
                let d = self.head_dim as f32;
                let base =
                    self.theta as f32 * ((factor * l / max) - (factor - 1.0)).powf(d / (d - 2.0));
                self.default_inv_freq(base)
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let (factor, low, high) = (
                    *factor as f32,
                    *low_freq_factor as f32,
                    *high_freq_factor as f32,
                );
                let old = *original_max_position_embeddings as f32;
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                self.default_inv_freq(self.theta as f32)
                    .into_iter()
                    .map(|f| {
                        let wavelen = (2.0 * std::f64::consts::PI) as f32 / f;
                        let scaled = if wavelen > low_wavelen { f / factor } else { f };
                        if wavelen < high_wavelen || wavelen > low_wavelen {
                            scaled
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * scaled / factor + smooth * scaled
                        }
                    })
                    .collect()
            }
        }
    }

    /// The tables `cos`, `sin` of shape `[len, head_dim]` for positions `start..start+len`, laid
    /// out as Hugging Face does (`emb = cat(freqs, freqs)`): the angle is the f32 product of
    /// position and frequency, its cosine and sine computed in f64 and rounded once.
    pub fn tables(&self, start: usize, len: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let hd = self.head_dim;
        let (cos, sin) = self.table_values(start, len);
        (
            Tensor::from_data(TensorData::new(cos, [len, hd]), device),
            Tensor::from_data(TensorData::new(sin, [len, hd]), device),
        )
    }

    /// [`Rope::tables`] as row-major host values.
    pub fn table_values(&self, start: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let inv = self.inv_freq(start + len);
        let hd = self.head_dim;
        let mut cos = Vec::with_capacity(len * hd);
        let mut sin = Vec::with_capacity(len * hd);
        for p in start..start + len {
            for _ in 0..2 {
                for f in &inv {
                    let a = (p as f32 * *f) as f64;
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
        (cos, sin)
    }
}

/// Applies rotary embeddings to `x: [batch, heads, len, head_dim]` with HF's rotate-half:
/// `x · cos + rotate_half(x) · sin`, `rotate_half([x1, x2]) = [-x2, x1]`.
pub fn apply_rope(x: Tensor<4>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<4> {
    let [_, _, _, hd] = x.dims();
    let half = hd / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone().unsqueeze::<4>() + rotated * sin.clone().unsqueeze::<4>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masks drawn in runs equal the generator's outputs one after another, across calls.
    #[test]
    fn dropout_runs_follow_the_sequential_generator() {
        let (p, cut, scale) = (
            0.3,
            (0.3f64 * 4_294_967_296.0) as u64,
            (1.0 / 0.7f64) as f32,
        );
        seed_dropout(Some(12345));
        let a = dropout_values(101, p).unwrap();
        let b = dropout_values(64, p).unwrap();
        seed_dropout(None);
        assert!(dropout_values(4, p).is_none());
        let mut g = SplitMix(12345);
        let mut want = Vec::new();
        for n in [101usize, 64] {
            let mut v = Vec::new();
            for _ in 0..n.div_ceil(2) {
                let z = g.next();
                for u in [z & 0xFFFF_FFFF, z >> 32] {
                    v.push(if u >= cut { scale } else { 0.0 });
                }
            }
            v.truncate(n);
            want.push(v);
        }
        assert_eq!(a, want[0]);
        assert_eq!(b, want[1]);
        let kept = a.iter().filter(|&&x| x > 0.0).count();
        assert!((50..=90).contains(&kept), "{kept} of 101 kept at p = 0.3");
    }
}
