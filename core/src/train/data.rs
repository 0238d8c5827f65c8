//! Token input for training: documents as token-id sequences, packed into fixed windows and
//! split into training and held-out sets.

use super::TrainError;
use crate::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::Path;

/// Documents of one domain as token ids. The Parquet reader of the columnar module produces
/// the same shape (`Vec<Vec<u32>>` per domain).
#[derive(Debug, Clone, Default)]
pub struct TokenCorpus {
    /// Domain or corpus name (used in log and adapter names).
    pub name: String,
    /// One token sequence per document.
    pub docs: Vec<Vec<u32>>,
}

impl TokenCorpus {
    /// A corpus from sequences in memory.
    pub fn new(name: impl Into<String>, docs: Vec<Vec<u32>>) -> Self {
        Self {
            name: name.into(),
            docs,
        }
    }

    /// Total tokens.
    pub fn tokens(&self) -> usize {
        self.docs.iter().map(Vec::len).sum()
    }

    /// Largest token id, if any.
    pub fn max_id(&self) -> Option<u32> {
        self.docs.iter().flat_map(|d| d.iter().copied()).max()
    }

    /// Hex content hash of the sequences (document boundaries included, the name not): what
    /// a cached stage trained on in-memory tokens is keyed on.
    pub fn digest(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = Vec::new();
        for d in &self.docs {
            buf.clear();
            buf.extend_from_slice(&(d.len() as u64).to_le_bytes());
            buf.extend(d.iter().flat_map(|id| id.to_le_bytes()));
            h.update(&buf);
        }
        format!("{:032x}", h.digest128())
    }
}

fn ids_of(v: &serde_json::Value) -> Option<Vec<u32>> {
    let arr = match v {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => {
            return ["tokens", "input_ids", "ids"]
                .iter()
                .find_map(|k| o.get(*k))
                .and_then(ids_of);
        }
        _ => return None,
    };
    arr.iter()
        .map(|x| x.as_u64().and_then(|u| u32::try_from(u).ok()))
        .collect()
}

/// Reads token sequences from a JSON file (an array of id arrays) or a JSONL file (one id array,
/// or an object with `tokens` / `input_ids` / `ids`, per line). Bad lines are errors with the
/// line number.
pub fn read_token_file(path: &Path) -> Result<Vec<Vec<u32>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let bad = |msg: String| {
        Error::from(TrainError::Input {
            path: path.display().to_string(),
            msg,
        })
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') && path.extension().is_none_or(|e| e != "jsonl") {
        let v: serde_json::Value = serde_json::from_str(trimmed).map_err(|e| bad(e.to_string()))?;
        let arr = v
            .as_array()
            .ok_or_else(|| bad("expected an array of token-id arrays".into()))?;
        return arr
            .iter()
            .enumerate()
            .map(|(i, x)| {
                ids_of(x).ok_or_else(|| {
                    bad(format!(
                        "element {i}: expected an array of non-negative token ids"
                    ))
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
        out.push(ids_of(&v).ok_or_else(|| {
            bad(format!(
                "line {}: expected an id array or an object with `tokens`",
                i + 1
            ))
        })?);
    }
    Ok(out)
}

/// Tokenizes the documents of a dataset (JSONL shards of `Document`s) with a
/// `tokenizer.json`, keeping only `domain` when given. Returns one corpus per domain, sorted.
pub fn tokenize_dataset(
    ds: &crate::ingest::Dataset,
    tokenizer: &Path,
    domain: Option<&str>,
) -> Result<Vec<TokenCorpus>> {
    let dir = ds.dir();
    let tok = tokenizers::Tokenizer::from_file(tokenizer).map_err(|e| TrainError::Input {
        path: tokenizer.display().to_string(),
        msg: e.to_string(),
    })?;
    let mut by: std::collections::BTreeMap<String, Vec<Vec<u32>>> = Default::default();
    ds.for_each(|d| {
        if domain.is_some_and(|want| want != d.domain) {
            return Ok(());
        }
        let enc = tok
            .encode(d.text.as_str(), false)
            .map_err(|e| TrainError::Input {
                path: dir.display().to_string(),
                msg: format!("document {}: {e}", d.id),
            })?;
        by.entry(d.domain.clone())
            .or_default()
            .push(enc.get_ids().to_vec());
        Ok(())
    })?;
    Ok(by
        .into_iter()
        .map(|(name, docs)| TokenCorpus { name, docs })
        .collect())
}

/// Packs documents (each followed by `eos` when given) into a stream and cuts it into
/// non-overlapping windows of `seq_len + 1` tokens (inputs plus shifted targets). The
/// remainder shorter than a window is dropped.
pub fn pack_windows(docs: &[Vec<u32>], seq_len: usize, eos: Option<u32>) -> Vec<Vec<u32>> {
    let w = seq_len + 1;
    let mut out = Vec::new();
    let mut cur = Vec::with_capacity(w);
    for d in docs {
        for &t in d.iter().chain(eos.as_ref()) {
            cur.push(t);
            if cur.len() == w {
                out.push(std::mem::replace(&mut cur, Vec::with_capacity(w)));
            }
        }
    }
    out
}

/// Training and held-out windows of one corpus.
#[derive(Debug, Clone)]
pub struct Split {
    /// Windows to train on.
    pub train: Vec<Vec<u32>>,
    /// Windows to evaluate on.
    pub heldout: Vec<Vec<u32>>,
    /// Tokens in the corpus.
    pub tokens: usize,
}

/// Packs `corpus` and splits it: a seeded shuffle of the windows, then `heldout_frac` of them
/// (at least one) held out. Errors when fewer than `batch` training windows remain.
pub fn split_windows(
    corpus: &TokenCorpus,
    seq_len: usize,
    eos: Option<u32>,
    heldout_frac: f64,
    batch: usize,
    seed: u64,
) -> Result<Split> {
    if seq_len == 0 || batch == 0 {
        return Err(TrainError::Config("seq_len and batch must be > 0".into()).into());
    }
    if !(0.0..1.0).contains(&heldout_frac) {
        return Err(
            TrainError::Config(format!("heldout must be in [0, 1), got {heldout_frac}")).into(),
        );
    }
    let mut windows = pack_windows(&corpus.docs, seq_len, eos);
    let n = windows.len();
    let n_held = ((n as f64 * heldout_frac).round() as usize).max(1);
    if n < batch + n_held {
        return Err(TrainError::TooFewTokens {
            domain: corpus.name.clone(),
            tokens: corpus.tokens(),
            windows: n,
            window: seq_len + 1,
            need: batch,
            heldout: n_held,
        }
        .into());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0001);
    windows.shuffle(&mut rng);
    let heldout = windows.split_off(n - n_held);
    Ok(Split {
        train: windows,
        heldout,
        tokens: corpus.tokens(),
    })
}

/// Deterministic batch order: epoch `e` visits the training windows in a permutation seeded by
/// `(seed, e)`, so the batch of any step is known without replaying earlier steps (resume).
#[derive(Debug)]
pub struct BatchOrder {
    n: usize,
    seed: u64,
    epoch: usize,
    perm: Vec<usize>,
}

impl BatchOrder {
    /// An order over `n` windows.
    pub fn new(n: usize, seed: u64) -> Self {
        Self {
            n,
            seed,
            epoch: usize::MAX,
            perm: Vec::new(),
        }
    }

    /// Window index at global sample position `pos`.
    pub fn index(&mut self, pos: usize) -> usize {
        let e = pos / self.n;
        if e != self.epoch {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ e as u64,
            );
            self.perm = (0..self.n).collect();
            self.perm.shuffle(&mut rng);
            self.epoch = e;
        }
        self.perm[pos % self.n]
    }
}

/// The training split of one domain (`Some(d)`) or of every domain (`None`) of a Parquet
/// directory, named `name`: what a script's `open_parquet(dir).domain(d)` (or `.train()`)
/// hands to `lora`, read by the same reader, so one process per adapter trains on the same
/// token windows as the script.
pub fn parquet_corpus(dir: &Path, domain: Option<&str>, name: &str) -> Result<TokenCorpus> {
    let set = crate::columnar::ParquetSet::open(dir)?;
    let docs = set.read_tokens(domain, crate::columnar::Split::Train)?;
    Ok(TokenCorpus::new(name, docs))
}
