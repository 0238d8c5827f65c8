//! Training, loading, saving and parallel encoding of byte-level BPE tokenizers.

use super::TextError;
use crate::ingest::{Dataset, Document};
use crate::run::{check_cancelled, spinner, write_atomic};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use tokenizers::AddedToken;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

/// The special tokens, in id order: `<s>` = 0, `</s>` = 1, `<pad>` = 2, `<unk>` = 3.
pub const SPECIAL_TOKENS: [&str; 4] = ["<s>", "</s>", "<pad>", "<unk>"];

/// How to train a tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizerConfig {
    /// Vocabulary size including the special tokens and the 256 byte symbols (default 8000;
    /// at least 300).
    pub vocab_size: usize,
    /// A merge must occur at least this often (default 2).
    pub min_frequency: u64,
    /// Special tokens, given ids 0, 1, 2, … in this order (default [`SPECIAL_TOKENS`]).
    pub special_tokens: Vec<String>,
    /// Fraction of documents used for training, chosen by a seeded hash of the id (default 1.0).
    pub sample: f64,
    /// At most this many documents (after sampling; 0 = no limit, the default).
    pub max_docs: usize,
    /// Seed for the sample (default 42).
    pub seed: u64,
    /// Training reads at most this many characters of each document (default 100 000), so a
    /// single huge document cannot dominate the word counts.
    pub max_chars: usize,
}

impl crate::config::Primitive for TokenizerConfig {
    const NAME: &'static str = "train_tokenizer";
    const OPTIONS: &'static [crate::config::OptionDoc] = {
        use crate::config::opt;
        &[
            opt(
                "vocab_size",
                "vocabulary size with the special tokens and the 256 byte symbols (at least 300)",
            ),
            opt("min_frequency", "a merge must occur at least this often"),
            opt(
                "special_tokens",
                "special tokens, given ids 0, 1, 2, … in this order",
            ),
            opt(
                "sample",
                "fraction of documents used, chosen by a seeded hash of the id",
            ),
            opt(
                "max_docs",
                "at most this many documents after sampling (0: no limit)",
            ),
            opt("seed", "seed of the sample (Rhai: the run's seed)"),
            opt(
                "max_chars",
                "characters read per document at most, so one huge document cannot dominate",
            ),
        ]
    };
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            vocab_size: 8000,
            min_frequency: 2,
            special_tokens: SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect(),
            sample: 1.0,
            max_docs: 0,
            seed: 42,
            max_chars: 100_000,
        }
    }
}

impl TokenizerConfig {
    fn check(&self) -> Result<()> {
        if self.vocab_size < 300 {
            return Err(TextError::Config(format!(
                "vocab_size must be at least 300 (256 byte symbols + special tokens), got {}",
                self.vocab_size
            ))
            .into());
        }
        if !(self.sample > 0.0 && self.sample <= 1.0) {
            return Err(TextError::Config(format!(
                "sample must be in (0, 1], got {}",
                self.sample
            ))
            .into());
        }
        if self.special_tokens.iter().any(|s| s.is_empty()) {
            return Err(TextError::Config(
                "special_tokens must not contain an empty string".into(),
            )
            .into());
        }
        Ok(())
    }
}

/// A summary of a tokenizer, for reports and manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// Where it was loaded from or saved to, if anywhere.
    pub path: Option<PathBuf>,
    /// Vocabulary size including special tokens.
    pub vocab_size: usize,
    /// Special tokens with their ids.
    pub special_tokens: Vec<(String, u32)>,
}

/// A byte-level BPE tokenizer (a Hugging Face `tokenizers::Tokenizer`).
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

/// Whether a document is in the training sample (seeded hash of its id).
fn sampled(id: &str, seed: u64, fraction: f64) -> bool {
    fraction >= 1.0
        || (xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed ^ 0x746f_6b65_6e69_7a65)
            as f64)
            < fraction * u64::MAX as f64
}

/// Streams the texts of a dataset's documents (shard order), stopping at the first error,
/// which is kept for the caller.
struct Texts<'a> {
    shards: std::vec::IntoIter<PathBuf>,
    current: Option<(PathBuf, std::io::Lines<BufReader<std::fs::File>>, usize)>,
    cfg: &'a TokenizerConfig,
    taken: usize,
    skipped: usize,
    error: &'a std::sync::Mutex<Option<Error>>,
    bar: indicatif::ProgressBar,
}

impl Texts<'_> {
    fn fail(&mut self, e: Error) -> Option<String> {
        *self.error.lock().expect("error slot") = Some(e);
        None
    }
}

impl Iterator for Texts<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            if self.cfg.max_docs > 0 && self.taken >= self.cfg.max_docs {
                return None;
            }
            if self.current.is_none() {
                let shard = self.shards.next()?;
                match std::fs::File::open(&shard) {
                    Ok(f) => {
                        self.current =
                            Some((shard, BufReader::with_capacity(1 << 20, f).lines(), 0))
                    }
                    Err(e) => return self.fail(Error::io("open", &shard, e)),
                }
            }
            let (shard, lines, no) = self.current.as_mut().expect("open shard");
            let Some(line) = lines.next() else {
                self.current = None;
                continue;
            };
            *no += 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    let shard = shard.clone();
                    return self.fail(Error::io("read", shard, e));
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let doc: Document = match serde_json::from_str(&line) {
                Ok(d) => d,
                Err(e) => {
                    // The conversion rejects such rows with a reason; training only skips them.
                    self.skipped += 1;
                    tracing::debug!(
                        "{}:{no}: skipped for tokenizer training: {e}",
                        shard.display()
                    );
                    continue;
                }
            };
            if check_cancelled().is_err() {
                return self.fail(Error::Cancelled);
            }
            if !sampled(&doc.id, self.cfg.seed, self.cfg.sample) {
                continue;
            }
            self.taken += 1;
            self.bar.inc(1);
            let mut text = doc.text;
            if text.len() > self.cfg.max_chars {
                let cut = text
                    .char_indices()
                    .nth(self.cfg.max_chars)
                    .map(|(i, _)| i)
                    .unwrap_or(text.len());
                text.truncate(cut);
            }
            return Some(text);
        }
    }
}

fn tk_err(e: impl std::fmt::Display) -> Error {
    TextError::Encode(e.to_string()).into()
}

impl Tokenizer {
    /// Trains a byte-level BPE tokenizer on the texts of `dataset` (streamed; memory holds the
    /// word counts, not the corpus).
    pub fn train(dataset: &Dataset, cfg: &TokenizerConfig) -> Result<Self> {
        cfg.check()?;
        let specials: Vec<AddedToken> = cfg
            .special_tokens
            .iter()
            .map(|s| AddedToken::from(s.clone(), true))
            .collect();
        let trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(cfg.vocab_size)
            .min_frequency(cfg.min_frequency)
            .special_tokens(specials)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        let mut tk = tokenizers::Tokenizer::new(BPE::default());
        tk.with_normalizer(Some(NFC))
            .map_err(|e| TextError::Train(e.to_string()))?;
        tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tk.with_post_processor(Some(ByteLevel::new(false, true, true)));
        tk.with_decoder(Some(ByteLevel::default()));
        let error = std::sync::Mutex::new(None);
        let bar = spinner("tokenizer");
        let texts = Texts {
            shards: dataset.shards()?.into_iter(),
            current: None,
            cfg,
            taken: 0,
            skipped: 0,
            error: &error,
            bar: bar.clone(),
        };
        let mut texts = texts;
        let res = tk.train(&mut trainer, texts.by_ref()).map(|_| ());
        if texts.skipped > 0 {
            tracing::warn!(
                "tokenizer training skipped {} lines that are not documents",
                texts.skipped
            );
        }
        bar.finish_and_clear();
        if let Some(e) = error.into_inner().expect("error slot") {
            return Err(e);
        }
        res.map_err(|e| TextError::Train(e.to_string()))?;
        let out = Self {
            inner: tk,
            path: None,
        };
        if out.vocab_size() <= cfg.special_tokens.len() + 256 {
            return Err(TextError::Train(format!(
                "the dataset {} yielded no merges (vocabulary of {}); is it empty?",
                dataset.dir().display(),
                out.vocab_size()
            ))
            .into());
        }
        Ok(out)
    }

    /// Loads a `tokenizer.json` (any Hugging Face tokenizer file works, not only ours).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TextError::Load {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(Self {
            inner,
            path: Some(path.to_path_buf()),
        })
    }

    /// Writes `tokenizer.json` atomically (compact JSON, loadable by Python `tokenizers` and
    /// `transformers.PreTrainedTokenizerFast(tokenizer_file=…)`) and remembers the path.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let json = self.inner.to_string(false).map_err(|e| TextError::Save {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        write_atomic(path, json.as_bytes())?;
        self.path = Some(path.to_path_buf());
        Ok(())
    }

    /// The file it was loaded from or last saved to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Vocabulary size including the special tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The special tokens of [`SPECIAL_TOKENS`] present in the vocabulary, with their ids.
    pub fn special_tokens(&self) -> Vec<(String, u32)> {
        SPECIAL_TOKENS
            .iter()
            .filter_map(|t| self.token_to_id(t).map(|id| (t.to_string(), id)))
            .collect()
    }

    /// Path, vocabulary size and special tokens.
    pub fn info(&self) -> TokenizerInfo {
        TokenizerInfo {
            path: self.path.clone(),
            vocab_size: self.vocab_size(),
            special_tokens: self.special_tokens(),
        }
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false).map_err(tk_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of many texts, encoded in parallel (rayon), in input order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        texts
            .par_iter()
            .with_min_len(16)
            .map(|t| self.encode(t))
            .collect()
    }

    /// The text of token ids (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tk_err)
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::DatasetWriter;

    fn korean_dataset(dir: &Path, n: usize) -> Dataset {
        let mut w = DatasetWriter::create(dir, 50).unwrap();
        let base = [
            "대한민국은 민주공화국이다.",
            "모든 국민은 법 앞에 평등하다.",
            "이 영화 정말 재미있어요 ㅎㅎ 강추합니다!",
            "법원은 원고의 청구를 기각한다.",
            "오늘 날씨가 좋아서 산책을 했습니다.",
        ];
        for i in 0..n {
            let text = format!(
                "{} {} 문서 번호 {i}",
                base[i % base.len()],
                base[(i * 7 + 3) % base.len()]
            );
            w.write(&Document {
                id: format!("d{i}"),
                text,
                domain: ["law", "movie"][i % 2].into(),
                source: "test".into(),
                extra: Default::default(),
            })
            .unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn trains_saves_loads_and_roundtrips_korean_deterministically() {
        let d = tempfile::tempdir().unwrap();
        let ds = korean_dataset(&d.path().join("ds"), 400);
        let cfg = TokenizerConfig {
            vocab_size: 400,
            ..Default::default()
        };
        let mut a = Tokenizer::train(&ds, &cfg).unwrap();
        let b = Tokenizer::train(&ds, &cfg).unwrap();
        assert_eq!(
            a.inner.to_string(false).unwrap(),
            b.inner.to_string(false).unwrap(),
            "deterministic"
        );
        assert_eq!(
            a.special_tokens(),
            vec![
                ("<s>".into(), 0),
                ("</s>".into(), 1),
                ("<pad>".into(), 2),
                ("<unk>".into(), 3)
            ]
        );
        assert!(
            a.vocab_size() > 260 && a.vocab_size() <= 400,
            "{}",
            a.vocab_size()
        );
        let text = "대한민국은 민주공화국이다. 😀 abc";
        let ids = a.encode(text).unwrap();
        assert!(
            ids.len() < text.len(),
            "merges shorten the byte sequence: {ids:?}"
        );
        assert_eq!(a.decode(&ids).unwrap(), text);
        let p = d.path().join("tok/tokenizer.json");
        a.save(&p).unwrap();
        let c = Tokenizer::load(&p).unwrap();
        assert_eq!(c.encode(text).unwrap(), ids);
        let batch = c.encode_batch(&["법원은", text, ""]).unwrap();
        assert_eq!(batch[1], ids);
        assert!(batch[2].is_empty());
    }

    #[test]
    fn sample_changes_with_seed_and_bad_config_is_rejected() {
        let d = tempfile::tempdir().unwrap();
        let ds = korean_dataset(&d.path().join("ds"), 200);
        let err = Tokenizer::train(
            &ds,
            &TokenizerConfig {
                vocab_size: 10,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("vocab_size"), "{err}");
        let n = (0..1000)
            .filter(|i| sampled(&format!("d{i}"), 1, 0.3))
            .count();
        assert!((250..350).contains(&n), "{n}");
        let same: Vec<bool> = (0..50).map(|i| sampled(&format!("d{i}"), 1, 0.5)).collect();
        let other: Vec<bool> = (0..50).map(|i| sampled(&format!("d{i}"), 2, 0.5)).collect();
        assert_ne!(same, other);
    }

    #[test]
    fn load_reports_the_path_on_garbage() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tokenizer.json");
        std::fs::write(&p, "{not json").unwrap();
        let err = Tokenizer::load(&p).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
    }
}
