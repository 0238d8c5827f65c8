//! LoRA training on the host CPU: the forward of a frozen [`Llama`] with its adapters and the
//! backward to the adapter factors only, over plain `f32` buffers.
//!
//! burn's autodiff on the CPU backend runs every op of the forward and of its backward as a pass
//! over a fresh tensor, recorded in a graph; for adapters on a frozen base most of that work
//! (gradients of every activation kept whole, a log-softmax of the vocabulary, masks and
//! broadcasts materialised) is bookkeeping. Here a shard of a micro-batch runs the forward of
//! [`super::host_forward`] keeping the activations the backward reads (per layer: its input,
//! the normed inputs, q/k/v after rotary, the attention probabilities, the gate/up
//! pre-activations, each adapter's `x·a` and dropout mask), then the backward by hand: the loss
//! gradient `softmax − one-hot` per block of rows, RMSNorm, SwiGLU, rotary and the causal
//! softmax in single passes, every product on the `gemm` crate with strided views. Only the
//! adapters' `a` and `b` get gradients; the base's weights are read, never differentiated.
//!
//! The result is deterministic (a fixed order of operations on every thread count) and equal to
//! the graph's gradients within float rounding (`model::arch_tests`: every architecture option,
//! with dropout); it is not bit-equal to the graph, whose order of operations differs.

use super::ModelError;
use super::host_forward::{
    HostLayer, HostModel, Mat, bias_rows, host_values, logit_rows, matmul, rms_norm, rope_rows,
    sized, softmax_rows, stack_columns, swiglu_rows, wide_kernels,
};
use super::layers::{Proj, dropout_values};
use super::llama::Llama;
use super::row_math::{exp_nonpositive, lanes_max, lanes_sum_of};
use crate::Result;
use burn::module::ParamId;
use std::sync::Mutex;

/// One projection's adapter, read from the model before each step.
#[derive(Debug)]
struct Factors {
    /// `[in, r]`.
    a: Vec<f32>,
    /// `[r, out]`.
    b: Vec<f32>,
    r: usize,
    scale: f32,
    dropout: f64,
    ids: [ParamId; 2],
}

/// One projection of a [`Group`]: its columns and its adapter.
#[derive(Debug)]
struct Member {
    offset: usize,
    out: usize,
    lora: Option<Factors>,
}

/// Projections that read the same input, their frozen weights side by side `[in, Σ out]`
/// (q/k/v; gate/up; o and down alone).
#[derive(Debug)]
struct Group {
    din: usize,
    total: usize,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    members: Vec<Member>,
}

/// What the backward of one adapter reads: its dropout mask and `dropout(x)·a`.
#[derive(Debug, Default)]
struct AdapterActs {
    mask: Option<Vec<f32>>,
    u: Vec<f32>,
}

/// The activations of one layer that its backward reads.
#[derive(Debug, Default)]
struct LayerActs {
    /// The layer's input (the residual stream).
    x_in: Vec<f32>,
    /// `input_norm(x_in)`.
    n1: Vec<f32>,
    /// q, k (after rotary) and v.
    qkv: Vec<f32>,
    /// Attention probabilities, `[seq, head, query, key]`.
    probs: Vec<f32>,
    /// The heads' outputs, the input of `o`.
    attn: Vec<f32>,
    /// The residual stream after attention.
    h: Vec<f32>,
    /// `post_norm(h)`.
    n2: Vec<f32>,
    /// Gate and up pre-activations.
    gu: Vec<f32>,
    /// `silu(gate) · up`, the input of `down`.
    act: Vec<f32>,
    adapters: [Vec<AdapterActs>; 4],
}

/// Buffers of one shard's forward and backward, reused by the next shard.
#[derive(Debug, Default)]
struct Scratch {
    layers: Vec<LayerActs>,
    x: Vec<f32>,
    y: Vec<f32>,
    dx: Vec<f32>,
    dy: Vec<f32>,
    logits: Vec<f32>,
    scores: Vec<f32>,
    dn: Vec<f32>,
    dact: Vec<f32>,
    dgu: Vec<f32>,
    dattn: Vec<f32>,
    dqkv: Vec<f32>,
}

/// A frozen model and its adapters on the host, for LoRA training steps on the CPU.
#[derive(Debug)]
pub struct HostLora {
    model: HostModel<Group>,
    scratch: Mutex<Vec<Scratch>>,
}

/// One shard's loss and adapter gradients.
#[derive(Debug)]
pub struct ShardGrads {
    /// The shard's summed NLL divided by the denominator it was given.
    pub loss: f64,
    /// `(parameter, shape, gradient)` of every adapter factor, in burn's layout.
    pub grads: Vec<(ParamId, [usize; 2], Vec<f32>)>,
}

fn frozen(p: &Proj) -> bool {
    !p.weight.val().is_require_grad() && p.bias.as_ref().is_none_or(|b| !b.val().is_require_grad())
}

/// The frozen weights of `projs` side by side, their adapters' shapes and ids (the factors'
/// values are read by [`HostLora::load_adapters`]).
fn group(projs: &[&Proj]) -> Result<Group> {
    let st = stack_columns(projs, |p| p.weight.val())?;
    let mut members = Vec::with_capacity(projs.len());
    let mut offset = 0;
    for (p, &out) in projs.iter().zip(&st.outs) {
        let lora = p.lora.as_ref().map(|l| Factors {
            a: Vec::new(),
            b: Vec::new(),
            r: l.a.shape().dims::<2>()[1],
            scale: l.scale as f32,
            dropout: l.dropout,
            ids: [l.a.id, l.b.id],
        });
        members.push(Member { offset, out, lora });
        offset += out;
    }
    Ok(Group {
        din: st.din,
        total: offset,
        weight: st.weight,
        bias: st.bias,
        members,
    })
}

impl HostLora {
    /// The host copy of `model`'s frozen weights, when what trains is adapters only (every
    /// base weight, bias and norm frozen, at least one adapter, no adapter on the output
    /// head); `None` otherwise (full training keeps burn's graph).
    pub fn of(model: &Llama) -> Result<Option<Self>> {
        let projs = model.projections();
        let adapters = projs.iter().any(|(_, p)| p.lora.is_some());
        let base_frozen = projs.iter().all(|(_, p)| frozen(p))
            && model
                .lm_head
                .as_ref()
                .is_none_or(|h| frozen(h) && h.lora.is_none())
            && !model.embed_tokens.val().is_require_grad()
            && !model.norm.weight.val().is_require_grad()
            && model.layers.iter().all(|l| {
                !l.input_layernorm.weight.val().is_require_grad()
                    && !l.post_attention_layernorm.weight.val().is_require_grad()
            });
        if !adapters || !base_frozen {
            return Ok(None);
        }
        let mut host = Self {
            model: HostModel::of(model, group)?,
            scratch: Mutex::new(Vec::new()),
        };
        host.load_adapters(model)?;
        Ok(Some(host))
    }

    /// Reads the current values of `model`'s adapter factors (after an optimizer step).
    pub fn load_adapters(&mut self, model: &Llama) -> Result<()> {
        let changed = || ModelError::Config("the model's adapters changed while training".into());
        // The groups hold the projections in `Llama::projections`' order: q, k, v | o |
        // gate, up | down, layer after layer.
        let members: Vec<&mut Member> = self
            .model
            .layers
            .iter_mut()
            .flat_map(|l| [&mut l.qkv, &mut l.o, &mut l.gate_up, &mut l.down])
            .flat_map(|g| g.members.iter_mut())
            .collect();
        let projs = model.projections();
        if members.len() != projs.len() {
            return Err(changed().into());
        }
        for (member, (_, p)) in members.into_iter().zip(projs) {
            match (member.lora.as_mut(), p.lora.as_ref()) {
                (Some(f), Some(l)) => {
                    f.a = host_values(l.a.val())?;
                    f.b = host_values(l.b.val())?;
                }
                (None, None) => {}
                _ => return Err(changed().into()),
            }
        }
        Ok(())
    }

    /// The summed next-token NLL of `windows` (`[batch, len+1]`, as [`Llama::shard_loss`]
    /// takes them; ids checked against `model`, the model this copy was made of) divided by
    /// `denom`, and the gradients of that loss with respect to every adapter factor. Dropout
    /// masks come from this thread's dropout generator ([`super::seed_dropout`]) in the
    /// graph's order.
    pub fn shard_grads(
        &self,
        model: &Llama,
        windows: &[Vec<u32>],
        denom: usize,
    ) -> Result<ShardGrads> {
        let (inputs, targets, b, len) = model.window_ids(windows)?;
        let spare = || self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = spare().pop().unwrap_or_default();
        let out = self.shard_grads_with(&inputs, &targets, b, len, denom, &mut s);
        spare().push(s);
        Ok(out)
    }

    fn shard_grads_with(
        &self,
        inputs: &[u32],
        targets: &[u32],
        b: usize,
        len: usize,
        denom: usize,
        s: &mut Scratch,
    ) -> ShardGrads {
        let n = b * len;
        let model = &self.model;
        let d = model.hidden;
        let x = sized(&mut s.x, n * d);
        model.embed_into(inputs, x);
        let (cos, sin) = model.rope.table_values(0, len);
        s.layers.resize_with(model.layers.len(), LayerActs::default);
        for (layer, acts) in model.layers.iter().zip(s.layers.iter_mut()) {
            layer.forward(x, b, len, &cos, &sin, acts);
        }
        // `s.x` is now the last layer's output.
        rms_norm(&s.x, &mut s.y, d, &model.norm);
        let dy = sized(&mut s.dy, n * d);
        let inv = 1.0 / denom.max(1) as f32;
        let loss = self.head_backward(&s.y, targets, inv, dy, &mut s.logits);
        let dx = sized(&mut s.dx, n * d);
        dx.fill(0.0);
        let norm = &model.norm;
        rms_back_rows(&s.x, dy, dx, d, &norm.weight, norm.eps);
        let mut per_layer = Vec::with_capacity(model.layers.len());
        for (layer, acts) in model.layers.iter().zip(&s.layers).rev() {
            let bufs = BackBufs {
                dn: &mut s.dn,
                dact: &mut s.dact,
                dgu: &mut s.dgu,
                dattn: &mut s.dattn,
                dqkv: &mut s.dqkv,
                dp: &mut s.scores,
            };
            per_layer.push(layer.backward(dx, b, len, &cos, &sin, acts, bufs));
        }
        let grads = per_layer.into_iter().rev().flatten().collect();
        ShardGrads {
            loss: f64::from(loss),
            grads,
        }
    }

    /// The loss of the final hidden states `y` against `targets` (summed NLL times `inv`) and
    /// its gradient with respect to `y` into `dy`, in blocks of rows.
    fn head_backward(
        &self,
        y: &[f32],
        targets: &[u32],
        inv: f32,
        dy: &mut [f32],
        logits: &mut Vec<f32>,
    ) -> f32 {
        let (d, v) = (self.model.hidden, self.model.vocab);
        let n = targets.len();
        let rows = logit_rows(n, v);
        let logits = sized(logits, rows * v);
        let (w, wt) = self.model.head_views();
        let mut loss = 0.0f64;
        for start in (0..n).step_by(rows) {
            let m = rows.min(n - start);
            let lhs = Mat::rows(&y[start * d..(start + m) * d], d);
            matmul(&mut logits[..m * v], v, [m, v, d], lhs, w, false, 1.0);
            let rows_t = &targets[start..start + m];
            loss_grad_rows(&mut logits[..m * v], v, rows_t, inv, &mut loss);
            let g = Mat::rows(&logits[..m * v], v);
            matmul(&mut dy[start * d..], d, [m, d, v], g, wt, false, 1.0);
        }
        (loss * f64::from(inv)) as f32
    }
}

/// The backward's gradient buffers, shared by the layers.
struct BackBufs<'a> {
    dn: &'a mut Vec<f32>,
    dact: &'a mut Vec<f32>,
    dgu: &'a mut Vec<f32>,
    dattn: &'a mut Vec<f32>,
    dqkv: &'a mut Vec<f32>,
    dp: &'a mut Vec<f32>,
}

/// The first `len` values of `x` times `mask` (into `buf`), or `x` itself without a mask.
fn dropout_of<'a>(
    x: &'a [f32],
    len: usize,
    mask: Option<&[f32]>,
    buf: &'a mut Vec<f32>,
) -> &'a [f32] {
    match mask {
        Some(mask) => {
            buf.clear();
            buf.extend(x[..len].iter().zip(mask).map(|(a, b)| a * b));
            buf
        }
        None => x,
    }
}

impl Group {
    /// `out = x · W + bias + Σ scale·dropout(x)·a·b` over `n` rows (`accumulate`: `out +=`),
    /// keeping what the adapters' backward reads in `acts`.
    fn forward(
        &self,
        x: &[f32],
        n: usize,
        out: &mut [f32],
        accumulate: bool,
        acts: &mut Vec<AdapterActs>,
    ) {
        let (din, total) = (self.din, self.total);
        let w = Mat::rows(&self.weight, total);
        matmul(
            out,
            total,
            [n, total, din],
            Mat::rows(x, din),
            w,
            accumulate,
            1.0,
        );
        if let Some(bias) = &self.bias {
            bias_rows(&mut out[..n * total], bias);
        }
        acts.clear();
        for m in &self.members {
            let Some(f) = &m.lora else { continue };
            let mask = (f.dropout > 0.0)
                .then(|| dropout_values(n * din, f.dropout))
                .flatten();
            let mut dropped = Vec::new();
            let input = dropout_of(x, n * din, mask.as_deref(), &mut dropped);
            let mut u = vec![0.0f32; n * f.r];
            let a = Mat::rows(&f.a, f.r);
            matmul(
                &mut u,
                f.r,
                [n, f.r, din],
                Mat::rows(input, din),
                a,
                false,
                1.0,
            );
            let b = Mat::rows(&f.b, m.out);
            let dst = &mut out[m.offset..];
            matmul(
                dst,
                total,
                [n, m.out, f.r],
                Mat::rows(&u, f.r),
                b,
                true,
                f.scale,
            );
            acts.push(AdapterActs { mask, u });
        }
    }

    /// Given `dout`, the gradient of the group's output (`[n, Σ out]`), writes the gradient of
    /// its input `x` into `dx` (`accumulate`: adds it) and returns the adapters' gradients.
    fn backward(
        &self,
        x: &[f32],
        n: usize,
        dout: &[f32],
        dx: &mut [f32],
        accumulate: bool,
        acts: &[AdapterActs],
    ) -> Vec<(ParamId, [usize; 2], Vec<f32>)> {
        let (din, total) = (self.din, self.total);
        let wt = Mat::transposed(&self.weight, total);
        matmul(
            dx,
            din,
            [n, din, total],
            Mat::rows(dout, total),
            wt,
            accumulate,
            1.0,
        );
        let mut grads = Vec::new();
        let mut tmp = Vec::new();
        for (m, act) in self.members.iter().filter(|m| m.lora.is_some()).zip(acts) {
            let Some(f) = &m.lora else { continue };
            let r = f.r;
            let dm = Mat::rows(&dout[m.offset..], total);
            // b: scale · uᵀ · dout
            let mut gb = vec![0.0f32; r * m.out];
            let ut = Mat::transposed(&act.u, r);
            matmul(&mut gb, m.out, [r, m.out, n], ut, dm, false, f.scale);
            // The gradient of u: scale · dout · bᵀ.
            let mut du = vec![0.0f32; n * r];
            let bt = Mat::transposed(&f.b, m.out);
            matmul(&mut du, r, [n, r, m.out], dm, bt, false, f.scale);
            // a: dropout(x)ᵀ · du
            let mut dropped = Vec::new();
            let input = dropout_of(x, n * din, act.mask.as_deref(), &mut dropped);
            let mut ga = vec![0.0f32; din * r];
            let xt = Mat::transposed(input, din);
            matmul(&mut ga, r, [din, r, n], xt, Mat::rows(&du, r), false, 1.0);
            // x: (du · aᵀ) ⊙ mask
            let at = Mat::transposed(&f.a, r);
            match &act.mask {
                None => matmul(dx, din, [n, din, r], Mat::rows(&du, r), at, true, 1.0),
                Some(mask) => {
                    let t = sized(&mut tmp, n * din);
                    matmul(t, din, [n, din, r], Mat::rows(&du, r), at, false, 1.0);
                    for ((d, &t), &k) in dx.iter_mut().zip(t.iter()).zip(mask) {
                        *d += t * k;
                    }
                }
            }
            grads.push((f.ids[0], [din, r], ga));
            grads.push((f.ids[1], [r, m.out], gb));
        }
        grads
    }
}

impl HostLayer<Group> {
    /// `x += attention(norm(x))`, then `x += mlp(norm(x))`, keeping the activations in `a`.
    fn forward(
        &self,
        x: &mut [f32],
        b: usize,
        len: usize,
        cos: &[f32],
        sin: &[f32],
        a: &mut LayerActs,
    ) {
        let n = b * len;
        let d = x.len() / n;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        sized(&mut a.x_in, n * d).copy_from_slice(x);
        rms_norm(x, &mut a.n1, d, &self.input_norm);
        let w = self.qkv.total;
        let qkv = sized(&mut a.qkv, n * w);
        self.qkv.forward(&a.n1, n, qkv, false, &mut a.adapters[0]);
        rope_rows(qkv, w, len, (h + kvh) * hd, cos, sin, false);
        let aw = h * hd;
        let attn = sized(&mut a.attn, n * aw);
        let probs = sized(&mut a.probs, b * h * len * len);
        let scale = 1.0 / (hd as f32).sqrt();
        let rep = h / kvh;
        for seq in 0..b {
            let base = seq * len * w;
            for head in 0..h {
                let g = head / rep;
                let p = &mut probs[(seq * h + head) * len * len..][..len * len];
                let q = Mat::rows(&qkv[base + head * hd..], w);
                let kt = Mat::transposed(&qkv[base + (h + g) * hd..], w);
                matmul(p, len, [len, len, hd], q, kt, false, scale);
                softmax_rows(p, len, 0, 0, self.window);
                let v = Mat::rows(&qkv[base + (h + kvh + g) * hd..], w);
                let off = seq * len * aw + head * hd;
                matmul(
                    &mut attn[off..],
                    aw,
                    [len, hd, len],
                    Mat::rows(p, len),
                    v,
                    false,
                    1.0,
                );
            }
        }
        self.o.forward(attn, n, x, true, &mut a.adapters[1]);
        sized(&mut a.h, n * d).copy_from_slice(x);
        rms_norm(x, &mut a.n2, d, &self.post_norm);
        let i2 = self.gate_up.total;
        let gu = sized(&mut a.gu, n * i2);
        self.gate_up
            .forward(&a.n2, n, gu, false, &mut a.adapters[2]);
        let act = sized(&mut a.act, n * (i2 / 2));
        swiglu_rows(act, gu, i2 / 2);
        self.down.forward(act, n, x, true, &mut a.adapters[3]);
    }

    /// Turns `dx`, the gradient of the layer's output, into the gradient of its input, and
    /// returns the gradients of its adapters (q, k, v, o, gate, up, down order).
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        dx: &mut [f32],
        b: usize,
        len: usize,
        cos: &[f32],
        sin: &[f32],
        a: &LayerActs,
        s: BackBufs,
    ) -> Vec<(ParamId, [usize; 2], Vec<f32>)> {
        let n = b * len;
        let d = dx.len() / n;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        // MLP: x_out = h + down(silu(gate(n2)) · up(n2)), n2 = post_norm(h).
        let i2 = self.gate_up.total;
        let inter = i2 / 2;
        let dact = sized(s.dact, n * inter);
        let g_down = self
            .down
            .backward(&a.act, n, dx, dact, false, &a.adapters[3]);
        let dgu = sized(s.dgu, n * i2);
        swiglu_back_rows(dgu, dact, &a.gu, inter);
        let dn = sized(s.dn, n * d);
        let g_gate_up = self
            .gate_up
            .backward(&a.n2, n, dgu, dn, false, &a.adapters[2]);
        let pn = &self.post_norm;
        rms_back_rows(&a.h, dn, dx, d, &pn.weight, pn.eps);
        // Attention: h = x_in + o(attention(rotary(qkv(n1)))), n1 = input_norm(x_in).
        let aw = h * hd;
        let dattn = sized(s.dattn, n * aw);
        let g_o = self
            .o
            .backward(&a.attn, n, dx, dattn, false, &a.adapters[1]);
        let w = self.qkv.total;
        let dqkv = sized(s.dqkv, n * w);
        dqkv.fill(0.0);
        let dp = sized(s.dp, len * len);
        let scale = 1.0 / (hd as f32).sqrt();
        let rep = h / kvh;
        let qkv = &a.qkv;
        for seq in 0..b {
            let base = seq * len * w;
            for head in 0..h {
                let g = head / rep;
                let p = &a.probs[(seq * h + head) * len * len..][..len * len];
                let pt = Mat::transposed(p, len);
                let d_o = Mat::rows(&dattn[seq * len * aw + head * hd..], aw);
                let (qc, kc, vc) = (head * hd, (h + g) * hd, (h + kvh + g) * hd);
                // v: += pᵀ · dO
                matmul(
                    &mut dqkv[base + vc..],
                    w,
                    [len, hd, len],
                    pt,
                    d_o,
                    true,
                    1.0,
                );
                // dP = dO · vᵀ, then dS = p ⊙ (dP − rowsum(dP ⊙ p)) · scale in place.
                let vt = Mat::transposed(&qkv[base + vc..], w);
                matmul(dp, len, [len, len, hd], d_o, vt, false, 1.0);
                softmax_back_rows(dp, p, len, scale);
                // q: dS · k; k: += dSᵀ · q
                let k = Mat::rows(&qkv[base + kc..], w);
                matmul(
                    &mut dqkv[base + qc..],
                    w,
                    [len, hd, len],
                    Mat::rows(dp, len),
                    k,
                    true,
                    1.0,
                );
                let dst = Mat::transposed(dp, len);
                let q = Mat::rows(&qkv[base + qc..], w);
                matmul(&mut dqkv[base + kc..], w, [len, hd, len], dst, q, true, 1.0);
            }
        }
        rope_rows(dqkv, w, len, (h + kvh) * hd, cos, sin, true);
        let dn = sized(s.dn, n * d);
        let g_qkv = self.qkv.backward(&a.n1, n, dqkv, dn, false, &a.adapters[0]);
        let inp = &self.input_norm;
        rms_back_rows(&a.x_in, dn, dx, d, &inp.weight, inp.eps);
        [g_qkv, g_o, g_gate_up, g_down]
            .into_iter()
            .flatten()
            .collect()
    }
}

wide_kernels! {
    fn rms_back_rows = rms_back_kernel(
        x: &[f32], dy: &[f32], dx: &mut [f32], d: usize, weight: &[f32], eps: f32,
    );
    fn swiglu_back_rows = swiglu_back_kernel(
        dgu: &mut [f32], dact: &[f32], gate_up: &[f32], inter: usize,
    );
    fn softmax_back_rows = softmax_back_kernel(ds: &mut [f32], p: &[f32], len: usize, scale: f32);
    fn loss_grad_rows = loss_grad_kernel(
        logits: &mut [f32], v: usize, targets: &[u32], inv: f32, sum: &mut f64,
    );
}

/// Adds to `dx` the gradient of `y = x / sqrt(mean(x²) + eps) · weight` given `dy`, row by row:
/// `dxₖ += r·wₖ·dyₖ − xₖ·r³·Σⱼ(dyⱼ·wⱼ·xⱼ)/d` with `r = 1/sqrt(mean(x²) + eps)`.
#[inline(always)]
fn rms_back_kernel(x: &[f32], dy: &[f32], dx: &mut [f32], d: usize, weight: &[f32], eps: f32) {
    let rows = x.chunks_exact(d).zip(dy.chunks_exact(d));
    for ((xr, gr), dr) in rows.zip(dx.chunks_exact_mut(d)) {
        let r = 1.0 / (lanes_sum_of(xr, |v| v * v) / d as f32 + eps).sqrt();
        let mut acc = [0.0f32; 8];
        let (xc, gc, wc) = (
            xr.chunks_exact(8),
            gr.chunks_exact(8),
            weight.chunks_exact(8),
        );
        let mut rest = 0.0f32;
        for ((&xv, &gv), &wv) in xc
            .remainder()
            .iter()
            .zip(gc.remainder())
            .zip(wc.remainder())
        {
            rest += gv * wv * xv;
        }
        for ((xs, gs), ws) in xc.zip(gc).zip(wc) {
            for i in 0..8 {
                acc[i] += gs[i] * ws[i] * xs[i];
            }
        }
        let dot = acc.iter().sum::<f32>() + rest;
        let c = r * r * r * dot / d as f32;
        for (((o, &xv), &gv), &wv) in dr.iter_mut().zip(xr).zip(gr).zip(weight) {
            *o += r * wv * gv - xv * c;
        }
    }
}

/// The gradient of `silu(gate) · up` (`gate_up`: `[gate | up]` rows) given `dact`, into `dgu`:
/// `d gate = dact · up · σ(1 + gate·(1 − σ))`, `d up = dact · gate · σ`.
#[inline(always)]
fn swiglu_back_kernel(dgu: &mut [f32], dact: &[f32], gate_up: &[f32], inter: usize) {
    let rows = dgu
        .chunks_exact_mut(2 * inter)
        .zip(gate_up.chunks_exact(2 * inter));
    for ((dr, gr), da) in rows.zip(dact.chunks_exact(inter)) {
        let (dg, du) = dr.split_at_mut(inter);
        let (gate, up) = gr.split_at(inter);
        for i in 0..inter {
            let g = gate[i];
            let e = exp_nonpositive(-g.abs());
            let sig = if g >= 0.0 { 1.0 } else { e } / (1.0 + e);
            dg[i] = da[i] * up[i] * sig * (1.0 + g * (1.0 - sig));
            du[i] = da[i] * g * sig;
        }
    }
}

/// The gradient of a row softmax given the gradient of its output (`ds`, in place) and its
/// output `p`: `p ⊙ (ds − Σ ds ⊙ p) · scale`, row by row (`len` wide).
#[inline(always)]
fn softmax_back_kernel(ds: &mut [f32], p: &[f32], len: usize, scale: f32) {
    for (dr, pr) in ds.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
        let mut acc = [0.0f32; 8];
        let (dc, pc) = (dr.chunks_exact(8), pr.chunks_exact(8));
        let mut rest = 0.0f32;
        for (&dv, &pv) in dc.remainder().iter().zip(pc.remainder()) {
            rest += dv * pv;
        }
        for (ds8, ps8) in dc.zip(pc) {
            for i in 0..8 {
                acc[i] += ds8[i] * ps8[i];
            }
        }
        let dot = acc.iter().sum::<f32>() + rest;
        for (dv, &pv) in dr.iter_mut().zip(pr) {
            *dv = pv * (*dv - dot) * scale;
        }
    }
}

/// For each row of `logits` (`v` wide): adds its NLL at its target to `sum`, and replaces the
/// row by the gradient of `inv · NLL`, `inv · (softmax − one-hot)`.
#[inline(always)]
fn loss_grad_kernel(logits: &mut [f32], v: usize, targets: &[u32], inv: f32, sum: &mut f64) {
    for (row, &t) in logits.chunks_exact_mut(v).zip(targets) {
        let t = t as usize;
        let max = lanes_max(row);
        let target = row[t];
        for x in row.iter_mut() {
            *x = exp_nonpositive(*x - max);
        }
        let total = lanes_sum_of(row, |x| x);
        *sum += f64::from(total.ln() + max - target);
        let k = inv / total;
        for x in row.iter_mut() {
            *x *= k;
        }
        row[t] -= inv;
    }
}
