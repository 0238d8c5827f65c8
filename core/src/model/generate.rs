//! Text generation with a key/value cache: greedy or temperature / top-k / top-p sampling.

use super::ModelError;
use super::llama::{KvCache, Llama};
use crate::Result;
use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerateConfig {
    /// New tokens to produce at most (default 64).
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy (default 0).
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens (0: all; default 0).
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set with probability ≥ `top_p` (1: all; default 1).
    pub top_p: f64,
    /// Seed of the sampler (default 42).
    pub seed: u64,
    /// Stop at this token (default: any of the model's `eos_token_id`s).
    pub eos_token_id: Option<u32>,
}

impl crate::config::Primitive for GenerateConfig {
    const NAME: &'static str = "generate";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt("max_new_tokens", "new tokens at most"),
            opt("temperature", "softmax temperature; 0 is greedy"),
            opt("top_k", "keep the k most likely tokens (0: all)"),
            opt("top_p", "nucleus probability mass (1: all)"),
            opt("seed", "seed of the sampler (Rhai: the run's seed)"),
            opt(
                "eos_token_id",
                "stop at this token (none: any of the model's eos_token_id)",
            ),
        ]
    };
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 42,
            eos_token_id: None,
        }
    }
}

/// Picks the next token from `logits` per the config.
pub fn sample(logits: &[f32], cfg: &GenerateConfig, rng: &mut impl Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 { (i, x) } else { best }
            })
            .0 as u32
    };
    if cfg.temperature <= 0.0 {
        return argmax();
    }
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if cfg.top_k > 0 {
        idx.truncate(cfg.top_k);
    }
    let max = logits[idx[0]] as f64;
    let mut probs: Vec<f64> = idx
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / cfg.temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if cfg.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            acc += p;
            if acc >= cfg.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        idx.truncate(keep);
        let t: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= t);
    }
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (p, i) in probs.iter().zip(&idx) {
        acc += p;
        if u < acc {
            return *i as u32;
        }
    }
    *idx.last().unwrap_or(&0) as u32
}

/// Continues `prompt` (token ids, at least one) and returns only the new tokens.
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    cfg: &GenerateConfig,
    default_eos: &[u32],
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(ModelError::Input("generate: the prompt has no tokens".into()).into());
    }
    model.check_tokens(prompt)?;
    let model = model.valid();
    let device = model.device();
    let eos: Vec<u32> = match cfg.eos_token_id {
        Some(e) => vec![e],
        None => default_eos.to_vec(),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut cache = KvCache::new();
    let mut out = Vec::new();
    let mut next_input: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    for _ in 0..cfg.max_new_tokens {
        crate::run::check_cancelled()?;
        let n = next_input.len();
        let x = Tensor::<2, Int>::from_data(
            TensorData::new(std::mem::take(&mut next_input), [1, n]),
            &device,
        );
        // Logits of the last position only (a prompt's other positions need none).
        let h = model.hidden(x, Some(&mut cache));
        let t = h.dims()[1];
        let logits = model.head(h.narrow(1, t - 1, 1));
        let v = logits.dims()[2];
        let vals = logits
            .reshape([v])
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let tok = sample(&vals, cfg, &mut rng);
        out.push(tok);
        if eos.contains(&tok) {
            break;
        }
        next_input = vec![tok as i64];
    }
    Ok(out)
}

/// Greedy continuation without the cache (recomputes the whole prefix each step); a reference
/// for tests of the cached path.
pub fn generate_uncached(model: &Llama, prompt: &[u32], max_new_tokens: usize) -> Result<Vec<u32>> {
    let model = model.valid();
    let device = model.device();
    let mut seq: Vec<u32> = prompt.to_vec();
    let cfg = GenerateConfig::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for _ in 0..max_new_tokens {
        let n = seq.len();
        let x = Tensor::<2, Int>::from_data(
            TensorData::new(seq.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, n]),
            &device,
        );
        let logits = model.forward(x, None);
        let [_, t, v] = logits.dims();
        let vals = logits
            .narrow(1, t - 1, 1)
            .reshape([v])
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        seq.push(sample(&vals, &cfg, &mut rng));
    }
    Ok(seq[prompt.len()..].to_vec())
}
