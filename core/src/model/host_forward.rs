//! The inference forward of a [`Llama`] on the host CPU over plain `f32` buffers, for
//! next-token NLLs (perplexity, held-out loss, the merge sweep).
//!
//! burn's CPU backend runs every op of the graph as its own pass over a freshly allocated tensor;
//! at the sizes perplexity runs (thousands of positions, hidden widths in the hundreds) that
//! costs as much as the matrix products. Here one batch runs through buffers allocated once and
//! reused by every layer, the elementwise work is fused (RMSNorm in one pass per row, rotary in
//! place, SwiGLU in one pass, the residual adds folded into the products' accumulation), the
//! products go to the `gemm` crate (the kernels burn-flex uses) with strides instead of copies,
//! causal attention takes one head at a time through two products and a vectorised softmax,
//! and the output head is scored in row blocks (log-sum-exp minus the target's logit) so the
//! logits of a whole batch never exist at once.
//!
//! LoRA training on the CPU reuses this module's model copy ([`HostModel`]) and kernels
//! (`host_train`); pretraining and the GPU backends keep burn's graph. The forwards are held
//! equal by tests (`model::arch_tests`: every architecture option, within 1e-4 nats per token).

use super::ModelError;
use super::layers::{Proj, RmsNorm, Rope};
use super::llama::Llama;
use super::row_math::{exp_nonpositive, lanes_sum_of, nll_of_row, softmax};
use crate::Result;
use burn::tensor::Tensor;
use std::sync::Mutex;

/// Logit values scored per block of rows (4 MiB, so a block is read back from the cache it
/// was written to), unless that is fewer than [`LOGIT_ROWS`] rows.
const LOGIT_BLOCK: usize = 1 << 20;

/// The fewest rows of a logit block: fewer would make the head's product re-read its weights
/// for too little work.
const LOGIT_ROWS: usize = 256;

/// Rows of logits handled at once for `n` rows over a vocabulary of `v`.
pub(super) fn logit_rows(n: usize, v: usize) -> usize {
    (LOGIT_BLOCK / v).max(LOGIT_ROWS).clamp(1, n.max(1))
}

/// Query rows of one attention product.
const ATTN_BLOCK: usize = 64;

/// A model's weights copied to the host in the layout the kernels read, with the buffers
/// its batches reuse (freed with it).
#[derive(Debug)]
pub struct HostLlama {
    model: HostModel<Linear>,
    /// Buffers of finished batches, taken by the next (one set per thread at work).
    scratch: Mutex<Vec<Scratch>>,
}

/// The weights of a model on the host, each layer's projections as `P` (folded [`Linear`]s for
/// inference, the host trainer's frozen groups with their adapters for training).
#[derive(Debug)]
pub(super) struct HostModel<P> {
    pub(super) hidden: usize,
    pub(super) vocab: usize,
    /// `[vocab, hidden]`.
    pub(super) embed: Vec<f32>,
    pub(super) layers: Vec<HostLayer<P>>,
    pub(super) norm: Norm,
    /// Untied output head `[hidden, vocab]` (its base weight: the head never has an adapter
    /// where `P` keeps them apart); `None`: the embeddings, transposed.
    pub(super) head: Option<Vec<f32>>,
    pub(super) rope: Rope,
}

#[derive(Debug, Clone)]
pub(super) struct Norm {
    pub(super) weight: Vec<f32>,
    pub(super) eps: f32,
}

/// A projection `[in, out]` with an optional bias `[out]`.
#[derive(Debug, Clone)]
pub(super) struct Linear {
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    out: usize,
}

/// One decoder layer on the host; `P` as in [`HostModel`].
#[derive(Debug, Clone)]
pub(super) struct HostLayer<P> {
    pub(super) input_norm: Norm,
    pub(super) post_norm: Norm,
    /// q, k and v side by side: `[hidden, (heads + 2·kv_heads)·head_dim]`.
    pub(super) qkv: P,
    pub(super) o: P,
    /// gate and up side by side: `[hidden, 2·intermediate]`.
    pub(super) gate_up: P,
    pub(super) down: P,
    pub(super) heads: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
    pub(super) window: Option<usize>,
}

pub(super) fn host_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Input(format!("reading weights to the host: {e:?}")).into())
}

pub(super) fn norm_of(n: &RmsNorm) -> Result<Norm> {
    Ok(Norm {
        weight: host_values(n.weight.val())?,
        eps: n.eps as f32,
    })
}

/// Projections sharing an input, side by side.
pub(super) struct Stacked {
    /// `[in, Σ out]`.
    pub(super) weight: Vec<f32>,
    /// A bias for all of them when any has one (zeros for the others).
    pub(super) bias: Option<Vec<f32>>,
    pub(super) din: usize,
    /// Each projection's width, in order.
    pub(super) outs: Vec<usize>,
}

/// The weights `weight_of` reads from `projs` (which share an input), side by side.
pub(super) fn stack_columns(
    projs: &[&Proj],
    weight_of: impl Fn(&Proj) -> Tensor<2>,
) -> Result<Stacked> {
    let din = projs[0].dims()[0];
    let outs: Vec<usize> = projs.iter().map(|p| p.dims()[1]).collect();
    let total: usize = outs.iter().sum();
    let mut weight = vec![0.0f32; din * total];
    let mut bias = projs
        .iter()
        .any(|p| p.bias.is_some())
        .then(|| vec![0.0f32; total]);
    let mut col = 0;
    for (p, &dout) in projs.iter().zip(&outs) {
        let w = host_values(weight_of(p))?;
        for r in 0..din {
            weight[r * total + col..r * total + col + dout]
                .copy_from_slice(&w[r * dout..(r + 1) * dout]);
        }
        if let (Some(all), Some(b)) = (bias.as_mut(), &p.bias) {
            all[col..col + dout].copy_from_slice(&host_values(b.val())?);
        }
        col += dout;
    }
    Ok(Stacked {
        weight,
        bias,
        din,
        outs,
    })
}

/// Projections sharing an input as one [`Linear`], adapters folded in.
fn side_by_side(projs: &[&Proj]) -> Result<Linear> {
    let st = stack_columns(projs, Proj::merged_weight)?;
    Ok(Linear {
        out: st.outs.iter().sum(),
        weight: st.weight,
        bias: st.bias,
    })
}

impl<P> HostModel<P> {
    /// Copies `model`'s weights to the host, each layer's q/k/v, o, gate/up and down through
    /// `project`.
    pub(super) fn of(model: &Llama, project: impl Fn(&[&Proj]) -> Result<P>) -> Result<Self> {
        let [vocab, hidden] = model.embed_tokens.shape().dims::<2>();
        let mut layers = Vec::with_capacity(model.layers.len());
        for l in &model.layers {
            let a = &l.self_attn;
            let m = &l.mlp;
            layers.push(HostLayer {
                input_norm: norm_of(&l.input_layernorm)?,
                post_norm: norm_of(&l.post_attention_layernorm)?,
                qkv: project(&[&a.q_proj, &a.k_proj, &a.v_proj])?,
                o: project(&[&a.o_proj])?,
                gate_up: project(&[&m.gate_proj, &m.up_proj])?,
                down: project(&[&m.down_proj])?,
                heads: a.heads,
                kv_heads: a.kv_heads,
                head_dim: a.head_dim,
                window: a.window,
            });
        }
        Ok(Self {
            hidden,
            vocab,
            embed: host_values(model.embed_tokens.val())?,
            layers,
            norm: norm_of(&model.norm)?,
            head: match &model.lm_head {
                Some(h) => Some(host_values(h.merged_weight())?),
                None => None,
            },
            rope: model.rope.clone(),
        })
    }

    /// The embeddings of `inputs` into `x` (`[n, hidden]`).
    pub(super) fn embed_into(&self, inputs: &[u32], x: &mut [f32]) {
        let d = self.hidden;
        for (row, &id) in x.chunks_exact_mut(d).zip(inputs) {
            let id = id as usize;
            row.copy_from_slice(&self.embed[id * d..(id + 1) * d]);
        }
    }

    /// The output head `[hidden, vocab]` as a view, and its transpose.
    pub(super) fn head_views(&self) -> (Mat<'_>, Mat<'_>) {
        let (d, v) = (self.hidden, self.vocab);
        match &self.head {
            Some(h) => (Mat::rows(h, v), Mat::transposed(h, v)),
            // The embeddings `[vocab, hidden]` are the head's transpose.
            None => (Mat::transposed(&self.embed, d), Mat::rows(&self.embed, d)),
        }
    }
}

impl HostLlama {
    /// Copies `model`'s weights (adapters folded in) to the host.
    pub fn of(model: &Llama) -> Result<Self> {
        Ok(Self {
            model: HostModel::of(model, side_by_side)?,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// Next-token NLL of every position of `b` sequences of `len` inputs (`inputs` row-major,
    /// ids checked by the caller) against `targets` (same layout).
    pub fn nlls(&self, inputs: &[u32], targets: &[u32], b: usize, len: usize) -> Vec<f32> {
        let spare = || self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = spare().pop().unwrap_or_default();
        let out = self.nlls_with(inputs, targets, b, len, &mut s);
        spare().push(s);
        out
    }

    fn nlls_with(
        &self,
        inputs: &[u32],
        targets: &[u32],
        b: usize,
        len: usize,
        s: &mut Scratch,
    ) -> Vec<f32> {
        let n = b * len;
        let m = &self.model;
        let d = m.hidden;
        debug_assert_eq!(inputs.len(), n);
        let mut x = std::mem::take(&mut s.x);
        let xs = sized(&mut x, n * d);
        m.embed_into(inputs, xs);
        let (cos, sin) = m.rope.table_values(0, len);
        for layer in &m.layers {
            layer.forward(xs, b, len, &cos, &sin, s);
        }
        rms_norm(xs, &mut s.h, d, &m.norm);
        s.x = x;
        self.score(targets, s)
    }

    /// NLLs of the final hidden states in `s.h` (`[n, hidden]`) against `targets`, in blocks
    /// of rows.
    fn score(&self, targets: &[u32], s: &mut Scratch) -> Vec<f32> {
        let (d, v) = (self.model.hidden, self.model.vocab);
        let n = targets.len();
        let rows = logit_rows(n, v);
        let logits = sized(&mut s.logits, rows * v);
        let (rhs, _) = self.model.head_views();
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(rows) {
            let m = rows.min(n - start);
            let lhs = Mat::rows(&s.h[start * d..(start + m) * d], d);
            matmul(&mut logits[..m * v], v, [m, v, d], lhs, rhs, false, 1.0);
            nll_rows(&logits[..m * v], v, &targets[start..start + m], &mut out);
        }
        out
    }
}

/// Buffers one batch reuses across layers (and the next batch: fresh pages cost as much as the
/// work).
#[derive(Debug, Default)]
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    logits: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    scores: Vec<f32>,
    gate_up: Vec<f32>,
    act: Vec<f32>,
}

pub(super) fn sized(buf: &mut Vec<f32>, n: usize) -> &mut [f32] {
    buf.resize(n, 0.0);
    &mut buf[..n]
}

impl HostLayer<Linear> {
    /// `x += attention(norm(x))`, then `x += mlp(norm(x))`, for `b` sequences of `len`.
    fn forward(
        &self,
        x: &mut [f32],
        b: usize,
        len: usize,
        cos: &[f32],
        sin: &[f32],
        s: &mut Scratch,
    ) {
        let n = b * len;
        let d = x.len() / n;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        rms_norm(x, &mut s.h, d, &self.input_norm);
        let w = self.qkv.out;
        let qkv = sized(&mut s.qkv, n * w);
        self.qkv.apply(qkv, &s.h, n, false);
        rope_rows(qkv, w, len, (h + kvh) * hd, cos, sin, false);
        let aw = h * hd;
        let attn = sized(&mut s.attn, n * aw);
        let scores = sized(&mut s.scores, ATTN_BLOCK.min(len) * len);
        let scale = 1.0 / (hd as f32).sqrt();
        let rep = h / kvh;
        for seq in 0..b {
            let base = seq * len * w;
            for head in 0..h {
                let g = head / rep;
                // Queries in blocks of rows; a block reads only the keys its rows see.
                for r0 in (0..len).step_by(ATTN_BLOCK) {
                    let r1 = (r0 + ATTN_BLOCK).min(len);
                    let k0 = first_key(self.window, r0);
                    let (m, keys) = (r1 - r0, r1 - k0);
                    let q = Mat::rows(&qkv[base + r0 * w + head * hd..], w);
                    // Keys read transposed: element (c, j) is key j's c-th value.
                    let kt = Mat::transposed(&qkv[base + k0 * w + (h + g) * hd..], w);
                    let sc = &mut scores[..m * keys];
                    matmul(sc, keys, [m, keys, hd], q, kt, false, scale);
                    softmax_rows(sc, keys, r0, k0, self.window);
                    let v = Mat::rows(&qkv[base + k0 * w + (h + kvh + g) * hd..], w);
                    let off = (seq * len + r0) * aw + head * hd;
                    let p = Mat::rows(sc, keys);
                    matmul(&mut attn[off..], aw, [m, hd, keys], p, v, false, 1.0);
                }
            }
        }
        self.o.apply(x, attn, n, true);
        rms_norm(x, &mut s.h, d, &self.post_norm);
        let i2 = self.gate_up.out;
        let gu = sized(&mut s.gate_up, n * i2);
        self.gate_up.apply(gu, &s.h, n, false);
        let inter = i2 / 2;
        let act = sized(&mut s.act, n * inter);
        swiglu_rows(act, gu, inter);
        self.down.apply(x, act, n, true);
    }
}

/// The first key query `i` sees under a sliding `window` (0 without one).
#[inline(always)]
pub(super) fn first_key(window: Option<usize>, i: usize) -> usize {
    window.map_or(0, |w| (i + 1).saturating_sub(w))
}

impl Linear {
    /// `out = x · W + bias` (`accumulate`: `out += …`) for `n` rows.
    fn apply(&self, out: &mut [f32], x: &[f32], n: usize, accumulate: bool) {
        let din = self.weight.len() / self.out;
        let w = Mat::rows(&self.weight, self.out);
        let dims = [n, self.out, din];
        matmul(out, self.out, dims, Mat::rows(x, din), w, accumulate, 1.0);
        if let Some(b) = &self.bias {
            bias_rows(&mut out[..n * self.out], b);
        }
    }
}

/// `out = x / sqrt(mean(x²) + eps) · weight`, row by row.
pub(super) fn rms_norm(x: &[f32], out: &mut Vec<f32>, d: usize, norm: &Norm) {
    let out = sized(out, x.len());
    rms_rows(x, out, d, &norm.weight, norm.eps);
}

/// Defines each `$name`, which runs the `#[inline(always)]` kernel `$kernel` compiled for
/// AVX2 + FMA when the CPU has them (detected once by std and cached), else for the build's
/// baseline. The kernels use IEEE operations only (no fused multiply-add: Rust does not
/// contract), so both give the same bits.
macro_rules! wide_kernels {
    ($(fn $name:ident = $kernel:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {$(
        #[doc = concat!("[`", stringify!($kernel), "`] on the widest vectors the CPU has.")]
        pub(super) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the features `wide` is compiled for were detected just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    )*};
}
pub(super) use wide_kernels;

wide_kernels! {
    fn rms_rows = rms_kernel(x: &[f32], out: &mut [f32], d: usize, weight: &[f32], eps: f32);
    fn rope_rows = rope_kernel(
        qkv: &mut [f32],
        w: usize,
        len: usize,
        rotated: usize,
        cos: &[f32],
        sin: &[f32],
        transpose: bool,
    );
    fn softmax_rows = softmax_kernel(
        scores: &mut [f32], keys: usize, r0: usize, k0: usize, window: Option<usize>,
    );
    fn swiglu_rows = swiglu_kernel(act: &mut [f32], gate_up: &[f32], inter: usize);
    fn nll_rows = nll_kernel(logits: &[f32], v: usize, targets: &[u32], out: &mut Vec<f32>);
    fn bias_rows = bias_kernel(out: &mut [f32], bias: &[f32]);
}

/// RMSNorm of every row of `x` (`d` wide) into `out`.
#[inline(always)]
fn rms_kernel(x: &[f32], out: &mut [f32], d: usize, weight: &[f32], eps: f32) {
    for (o, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let inv = 1.0 / (lanes_sum_of(row, |v| v * v) / d as f32 + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
            *o = v * inv * w;
        }
    }
}

/// Rotary embedding of the first `rotated` values (the query and key heads, `hd` each) of
/// every row of `qkv` (`w` wide; row `r` is position `r mod len`; `cos` and `sin` hold `hd`
/// values per position), in place; with `transpose`, the transposed rotation (what the
/// backward applies to gradients).
#[inline(always)]
fn rope_kernel(
    qkv: &mut [f32],
    w: usize,
    len: usize,
    rotated: usize,
    cos: &[f32],
    sin: &[f32],
    transpose: bool,
) {
    let hd = cos.len() / len;
    for (r, row) in qkv.chunks_exact_mut(w).enumerate() {
        let pos = r % len;
        let (c, sn) = (
            &cos[pos * hd..(pos + 1) * hd],
            &sin[pos * hd..(pos + 1) * hd],
        );
        for head in row[..rotated].chunks_exact_mut(hd) {
            if transpose {
                rotate_transposed(head, c, sn);
            } else {
                rotate(head, c, sn);
            }
        }
    }
}

/// Row-wise softmax of the scores of queries `r0..` against keys `k0..k0 + keys` (row-major,
/// `keys` per row) over the keys each query sees (itself and those before it, within the
/// window); the rest set to zero.
#[inline(always)]
fn softmax_kernel(scores: &mut [f32], keys: usize, r0: usize, k0: usize, window: Option<usize>) {
    for (r, row) in scores.chunks_exact_mut(keys).enumerate() {
        let i = r0 + r;
        let (lo, hi) = (first_key(window, i) - k0, i + 1 - k0);
        row[hi..].fill(0.0);
        row[..lo].fill(0.0);
        softmax(&mut row[lo..hi]);
    }
}

/// `silu(gate) · up` of every row of `gate_up` (`[gate | up]`, `2·inter` wide) into `act`.
#[inline(always)]
fn swiglu_kernel(act: &mut [f32], gate_up: &[f32], inter: usize) {
    for (a, row) in act
        .chunks_exact_mut(inter)
        .zip(gate_up.chunks_exact(2 * inter))
    {
        swiglu(a, &row[..inter], &row[inter..]);
    }
}

/// The NLL of each row of `logits` (`v` wide) at its target, appended to `out`.
#[inline(always)]
fn nll_kernel(logits: &[f32], v: usize, targets: &[u32], out: &mut Vec<f32>) {
    for (row, &t) in logits.chunks_exact(v).zip(targets) {
        out.push(nll_of_row(row, t as usize));
    }
}

/// Adds `bias` to every row of `out`.
#[inline(always)]
fn bias_kernel(out: &mut [f32], bias: &[f32]) {
    for row in out.chunks_exact_mut(bias.len()) {
        for (o, &b) in row.iter_mut().zip(bias) {
            *o += b;
        }
    }
}

/// Hugging Face's rotate-half rotary embedding of one head, in place.
#[inline(always)]
fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    let (a, b) = x.split_at_mut(half);
    for i in 0..half {
        let (x1, x2) = (a[i], b[i]);
        a[i] = x1 * cos[i] - x2 * sin[i];
        b[i] = x2 * cos[half + i] + x1 * sin[half + i];
    }
}

/// The transpose of [`rotate`] applied to one head's gradient, in place.
#[inline(always)]
fn rotate_transposed(g: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = g.len() / 2;
    let (a, b) = g.split_at_mut(half);
    for i in 0..half {
        let (g1, g2) = (a[i], b[i]);
        a[i] = g1 * cos[i] + g2 * sin[half + i];
        b[i] = g2 * cos[half + i] - g1 * sin[i];
    }
}

/// `out = silu(gate) · up`, `silu(g) = g · σ(g)` with `σ` from one exponential of `−|g|`.
#[inline(always)]
fn swiglu(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        let e = exp_nonpositive(-g.abs());
        let sig = if g >= 0.0 { 1.0 } else { e } / (1.0 + e);
        *o = g * sig * u;
    }
}

/// A strided read-only matrix: element `(r, c)` at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a> {
    pub(super) data: &'a [f32],
    pub(super) rs: isize,
    pub(super) cs: isize,
}

impl<'a> Mat<'a> {
    /// Row-major with `stride` values between rows.
    pub(super) fn rows(data: &'a [f32], stride: usize) -> Self {
        Self {
            data,
            rs: stride as isize,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `stride` values between rows: element `(r, c)`
    /// is the matrix's `(c, r)`.
    pub(super) fn transposed(data: &'a [f32], stride: usize) -> Self {
        Self::rows(data, stride).transpose()
    }

    /// The same elements as the transposed matrix: `(c, r)` of the result is `(r, c)` here.
    fn transpose(self) -> Self {
        Self {
            data: self.data,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Panics unless every element of an `r × c` matrix lies inside `data`.
    fn check(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            let last = (r - 1) as isize * self.rs + (c - 1) as isize * self.cs;
            assert!(
                self.rs >= 0 && self.cs >= 0 && (last as usize) < self.data.len(),
                "matrix view out of bounds"
            );
        }
    }
}

/// `dst[m × n] (row stride dst_rs) = scale · lhs[m × k] · rhs[k × n]`, or `+=` when
/// `accumulate`.
pub(super) fn matmul(
    dst: &mut [f32],
    dst_rs: usize,
    [m, n, k]: [usize; 3],
    lhs: Mat,
    rhs: Mat,
    accumulate: bool,
    scale: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    Mat::rows(&*dst, dst_rs).check(m, n);
    lhs.check(m, k);
    rhs.check(k, n);
    // The products of a batch are split over rayon's threads when it has more than one and
    // the product is large enough to gain (the evaluation's workers run with one).
    let parallelism = if rayon::current_num_threads() > 1 && m * n * k >= 1 << 21 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // A wide product whose right operand is a transposed view (the tied output head) runs as
    // its transpose, `dstᵀ = rhsᵀ · lhsᵀ`: gemm then writes its destination column by column
    // and reads the head row by row, 12–20 % faster on a 135M head block ([256, 576] ×
    // [576, 49,152]); each value's sum over `k` runs in the same order (the same bits).
    let (m, n, dst_cs, dst_rs, lhs, rhs) = if rhs.rs == 1 && rhs.cs != 1 && n >= WIDE {
        let (l, r) = (rhs.transpose(), lhs.transpose());
        (n, m, dst_rs as isize, 1, l, r)
    } else {
        (m, n, 1, dst_rs as isize, lhs, rhs)
    };
    // SAFETY: the views were checked to lie inside their slices above (a transposed view
    // reads the same elements); `dst` is exclusively borrowed and does not alias `lhs` or
    // `rhs` (shared borrows of other buffers).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs,
            lhs.rs,
            rhs.data.as_ptr(),
            rhs.cs,
            rhs.rs,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Output columns from which a product with a transposed right operand runs transposed.
const WIDE: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The kernels give the same bits whether compiled for the baseline or for AVX2 + FMA
    /// (where the CPU has them; elsewhere both calls run the baseline).
    #[test]
    fn wide_kernels_give_the_baseline_bits() {
        let vals: Vec<f32> = (0..1037)
            .map(|i| ((i * 7919 % 2003) as f32 - 1001.0) * 0.013)
            .collect();
        let (mut a, mut b) = (vec![0.0f32; 512], vec![0.0f32; 512]);
        swiglu_kernel(&mut a, &vals[..1024], 512);
        swiglu_rows(&mut b, &vals[..1024], 512);
        assert_eq!(bits(&a), bits(&b));
        let (mut a, mut b) = (vals[..1000].to_vec(), vals[..1000].to_vec());
        softmax_kernel(&mut a, 100, 40, 0, Some(30));
        softmax_rows(&mut b, 100, 40, 0, Some(30));
        assert_eq!(bits(&a), bits(&b));
        let w: Vec<f32> = vals[..100].iter().map(|x| x + 1.0).collect();
        let (mut a, mut b) = (vec![0.0f32; 1000], vec![0.0f32; 1000]);
        rms_kernel(&vals[..1000], &mut a, 100, &w, 1e-6);
        rms_rows(&vals[..1000], &mut b, 100, &w, 1e-6);
        assert_eq!(bits(&a), bits(&b));
        let targets = [3u32, 99, 0, 57, 12, 64, 5, 88, 1, 42];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        nll_kernel(&vals[..1000], 100, &targets, &mut a);
        nll_rows(&vals[..1000], 100, &targets, &mut b);
        assert_eq!(bits(&a), bits(&b));
    }

    /// A wide product with a transposed right operand (run as its transpose) gives the bits of
    /// the product run as written, with and without accumulation.
    #[test]
    fn transposed_wide_products_give_the_direct_bits() {
        let (m, n, k) = (300, WIDE + 76, 96);
        let vals = |len: usize, seed: usize| -> Vec<f32> {
            (0..len)
                .map(|i| (((i + seed) * 7919 % 2003) as f32 - 1001.0) * 1e-3)
                .collect()
        };
        let (x, head) = (vals(m * k, 1), vals(n * k, 2));
        let rhs = Mat::transposed(&head, k);
        for accumulate in [false, true] {
            let mut ours = vals(m * n, 3);
            let mut direct = ours.clone();
            matmul(
                &mut ours,
                n,
                [m, n, k],
                Mat::rows(&x, k),
                rhs,
                accumulate,
                0.5,
            );
            // SAFETY: `direct` holds m × n values, `x` m × k and `head` n × k, read as laid out.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    direct.as_mut_ptr(),
                    1,
                    n as isize,
                    accumulate,
                    x.as_ptr(),
                    1,
                    k as isize,
                    head.as_ptr(),
                    k as isize,
                    1,
                    1.0,
                    0.5,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            assert_eq!(bits(&ours), bits(&direct), "accumulate {accumulate}");
            let row = &x[..k];
            let want: f32 = (0..k).map(|c| row[c] * head[(n - 1) * k + c]).sum::<f32>() * 0.5;
            assert!(accumulate || (ours[n - 1] - want).abs() < 1e-5);
        }
    }
}
