//! The similarity scheme: which shingles, how the two kinds combine, and the MinHash
//! permutations. It defines both the exact similarity used for verification and the signature
//! layout whose positions estimate it.
//!
//! - `union`: one set holding both kinds; one signature over it; similarity = its Jaccard.
//! - `mean`: one half-signature per kind (first half jamo, second half word); similarity =
//!   `w·J(jamo) + (1 − w)·J(word)`. LSH bands never straddle the halves.

use super::minhash::{MinHasher, estimate};
use super::params::BandRows;
use super::shingle::{
    ShingleSpec, Shingles, jaccard, normalize, shingles_of_normalized, token_count,
};
use crate::dedup::DedupError;
use serde::{Deserialize, Serialize};

/// How jamo and word shingles combine into one similarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// One set with both kinds (the default; see docs/dedup.md).
    #[default]
    Union,
    /// Separate signatures, weighted mean of the two Jaccards.
    Mean,
}

impl std::str::FromStr for Combine {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        match s {
            "union" => Ok(Combine::Union),
            "mean" => Ok(Combine::Mean),
            _ => Err(DedupError::Config(format!(
                "combine `{s}`: expected \"union\" or \"mean\""
            ))),
        }
    }
}

/// How signatures are computed from a shingle set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Hashing {
    /// `perms` independent universal permutations (classic MinHash).
    Minhash,
    /// One-permutation hashing with optimal densification: one pass over the shingles
    /// ([`super::oph`]); the same estimator, much cheaper on long documents. The default:
    /// equal precision and recall to MinHash on the planted evaluation, 1.6× faster signing.
    #[default]
    Oph,
}

impl std::str::FromStr for Hashing {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        match s {
            "minhash" => Ok(Hashing::Minhash),
            "oph" => Ok(Hashing::Oph),
            _ => Err(DedupError::Config(format!(
                "hashing `{s}`: expected \"minhash\" or \"oph\""
            ))),
        }
    }
}

/// A document reduced to what dedup needs.
#[derive(Debug, Clone)]
pub struct Shingled {
    /// The shingle sets.
    pub shingles: Shingles,
    /// Whitespace tokens of the normalised text.
    pub tokens: u32,
    /// Characters of the original text.
    pub chars: u32,
    /// Hash of the shingle sets: equal for documents identical after normalisation.
    pub content: u64,
}

/// What signing a text gives besides the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedText {
    /// Whitespace tokens of the normalised text.
    pub tokens: u32,
    /// Characters of the original text.
    pub chars: u32,
    /// Content hash (as [`Scheme::shingle_for_signing`]).
    pub content: u64,
    /// Signature positions filled by the shingles themselves (see [`Scheme::sign`]).
    pub bins: u32,
}

/// Shingle spec + combination + permutations.
#[derive(Debug, Clone)]
pub struct Scheme {
    spec: ShingleSpec,
    combine: Combine,
    jamo_weight: f64,
    hasher: MinHasher,
    hashing: Hashing,
}

impl Scheme {
    /// A scheme; `combine` is ignored (treated as union) when the spec has a single kind.
    pub fn new(
        spec: ShingleSpec,
        combine: Combine,
        jamo_weight: f64,
        perms: usize,
        seed: u64,
    ) -> Result<Self, DedupError> {
        let combine = if spec.jamo.is_some() && spec.word.is_some() {
            combine
        } else {
            Combine::Union
        };
        if perms < 2 {
            return Err(DedupError::Config(format!(
                "perms {perms}: need at least 2 permutations"
            )));
        }
        if !(0.0..=1.0).contains(&jamo_weight) {
            return Err(DedupError::Config(format!(
                "jamo_weight {jamo_weight}: must lie in [0, 1]"
            )));
        }
        Ok(Self {
            spec,
            combine,
            jamo_weight,
            hasher: MinHasher::new(perms, seed),
            hashing: Hashing::default(),
        })
    }

    /// The same scheme with signatures computed by `hashing`.
    pub fn with_hashing(mut self, hashing: Hashing) -> Self {
        self.hashing = hashing;
        self
    }

    /// How signatures are computed.
    pub fn hashing(&self) -> Hashing {
        self.hashing
    }

    /// The shingle spec.
    pub fn spec(&self) -> ShingleSpec {
        self.spec
    }

    /// The effective combination.
    pub fn combine(&self) -> Combine {
        self.combine
    }

    /// Weight of the jamo Jaccard in `mean`.
    pub fn jamo_weight(&self) -> f64 {
        self.jamo_weight
    }

    /// The permutations.
    pub fn hasher(&self) -> &MinHasher {
        &self.hasher
    }

    /// Signature length.
    pub fn perms(&self) -> usize {
        self.hasher.perms()
    }

    /// A string identifying everything that changes signatures (stored in signature files).
    pub fn fingerprint(&self) -> String {
        let mut f = format!(
            "shingles={} combine={:?} jamo_weight={} perms={} seed={} hashes=v2",
            self.spec,
            self.combine,
            self.jamo_weight,
            self.perms(),
            self.hasher.seed()
        );
        if self.hashing == Hashing::Oph {
            f.push_str(" hashing=oph");
        }
        f
    }

    /// Normalises and shingles a text.
    pub fn shingle(&self, text: &str) -> Shingled {
        let norm = normalize(text);
        let shingles = shingles_of_normalized(&norm, &self.spec);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for x in shingles
            .jamo
            .iter()
            .chain([&u64::MAX])
            .chain(&shingles.word)
        {
            h.update(&x.to_le_bytes());
        }
        Shingled {
            tokens: token_count(&norm) as u32,
            chars: text.chars().count() as u32,
            content: h.digest(),
            shingles,
        }
    }

    /// The shingle sets of a text (sorted, deduplicated), as [`Scheme::shingle`] gives them;
    /// jamo-only specs take the one-pass walk.
    pub fn shingle_set(&self, text: &str) -> Shingles {
        if let (Some(n), None) = (self.spec.jamo, self.spec.word) {
            let mut jamo = Vec::with_capacity(text.len());
            if super::shingle::jamo_walk(text, n, |h| jamo.push(h)).is_some() {
                jamo.sort_unstable();
                jamo.dedup();
                return Shingles {
                    jamo,
                    word: Vec::new(),
                };
            }
        }
        self.shingle(text).shingles
    }

    /// What signing needs of a text: with OPH the shingles are left as multisets (no sort; the
    /// minimum per bin ignores repeats) and the content hash is an order-free sum over them;
    /// with MinHash this is [`Scheme::shingle`].
    pub fn shingle_for_signing(&self, text: &str) -> Shingled {
        if self.hashing != Hashing::Oph {
            return self.shingle(text);
        }
        let norm = normalize(text);
        let shingles = super::shingle::shingle_multisets(&norm, &self.spec);
        // Σ h over the jamo multiset (its hashes are already mixed) plus Σ mix(h) over the word
        // one, tagged apart: equal for texts that are identical after normalisation, whatever
        // the order of computation.
        let mix = super::oph::mix;
        let content = shingles
            .jamo
            .iter()
            .copied()
            .chain(shingles.word.iter().map(|&h| mix(h ^ 0x776f_7264)))
            .fold(0u64, u64::wrapping_add);
        Shingled {
            tokens: token_count(&norm) as u32,
            chars: text.chars().count() as u32,
            content,
            shingles,
        }
    }

    /// Writes the signature of `s` into `out` (length `perms`); returns how many positions were
    /// filled by the shingles themselves (all of them with MinHash; with OPH, the bins that were
    /// not densified).
    pub fn sign(&self, s: &Shingles, out: &mut [u32]) -> u32 {
        let p = self.perms();
        let seed = self.hasher.seed();
        match (self.combine, self.hashing) {
            (Combine::Union, Hashing::Minhash) => {
                self.hasher.sign_range(&s.union(), 0..p, out);
                p as u32
            }
            (Combine::Union, Hashing::Oph) => super::oph::sign_oph(&s.union(), seed, out),
            (Combine::Mean, Hashing::Minhash) => {
                let h = p / 2;
                self.hasher.sign_range(&s.jamo, 0..h, &mut out[..h]);
                self.hasher.sign_range(&s.word, h..p, &mut out[h..]);
                p as u32
            }
            (Combine::Mean, Hashing::Oph) => {
                let h = p / 2;
                super::oph::sign_oph(&s.jamo, seed, &mut out[..h])
                    + super::oph::sign_oph(&s.word, seed ^ 1, &mut out[h..])
            }
        }
    }

    /// Signs a text into `out` (length `perms`). With OPH over jamo n-grams alone (the default
    /// scheme) this is one pass over the text's characters — normalisation, jamo decomposition,
    /// n-gram hashes and binning together, no intermediate strings
    /// ([`super::shingle::jamo_walk`]); otherwise [`Scheme::shingle_for_signing`] then
    /// [`Scheme::sign`]. Both give the same signature and metadata.
    pub fn sign_text(&self, text: &str, out: &mut [u32]) -> SignedText {
        if let (Hashing::Oph, Some(n), None) = (self.hashing, self.spec.jamo, self.spec.word) {
            let mut content = 0u64;
            let mut sk = super::oph::OphSketch::new(self.hasher.seed(), out);
            if let Some(w) = super::shingle::jamo_walk(text, n, |h| {
                content = content.wrapping_add(h);
                sk.push(h);
            }) {
                return SignedText {
                    tokens: w.tokens,
                    chars: w.chars,
                    content,
                    bins: sk.finish(),
                };
            }
        }
        let s = self.shingle_for_signing(text);
        let bins = self.sign(&s.shingles, out);
        SignedText {
            tokens: s.tokens,
            chars: s.chars,
            content: s.content,
            bins,
        }
    }

    /// Exact similarity of two shingled documents.
    pub fn exact(&self, a: &Shingles, b: &Shingles) -> f64 {
        match self.combine {
            Combine::Union => {
                if self.spec.jamo.is_none() {
                    jaccard(&a.word, &b.word)
                } else if self.spec.word.is_none() {
                    jaccard(&a.jamo, &b.jamo)
                } else {
                    jaccard(&a.union(), &b.union())
                }
            }
            Combine::Mean => {
                self.jamo_weight * jaccard(&a.jamo, &b.jamo)
                    + (1.0 - self.jamo_weight) * jaccard(&a.word, &b.word)
            }
        }
    }

    /// Signature estimate of the similarity.
    pub fn estimate(&self, a: &[u32], b: &[u32]) -> f64 {
        match self.combine {
            Combine::Union => estimate(a, b),
            Combine::Mean => {
                let h = self.perms() / 2;
                self.jamo_weight * estimate(&a[..h], &b[..h])
                    + (1.0 - self.jamo_weight) * estimate(&a[h..], &b[h..])
            }
        }
    }

    /// Whether bands must split evenly between the two half-signatures.
    pub fn split_bands(&self) -> bool {
        self.combine == Combine::Mean
    }

    /// Start offset of every band in the signature.
    pub fn band_offsets(&self, br: BandRows) -> Result<Vec<usize>, DedupError> {
        let p = self.perms();
        if br.bands == 0 || br.rows == 0 {
            return Err(DedupError::Config("bands and rows must be ≥ 1".into()));
        }
        if self.split_bands() {
            let h = p / 2;
            let half = br.bands.div_ceil(2);
            if half * br.rows > h {
                return Err(DedupError::Config(format!(
                    "bands {} × rows {}: with separate jamo/word signatures each half ({h} permutations) must hold \
                     {half} bands of {} rows",
                    br.bands, br.rows, br.rows
                )));
            }
            Ok((0..br.bands)
                .map(|j| {
                    if j < half {
                        j * br.rows
                    } else {
                        h + (j - half) * br.rows
                    }
                })
                .collect())
        } else {
            if br.bands * br.rows > p {
                return Err(DedupError::Config(format!(
                    "bands {} × rows {} = {} exceeds perms {p}",
                    br.bands,
                    br.rows,
                    br.bands * br.rows
                )));
            }
            Ok((0..br.bands).map(|j| j * br.rows).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oph_signs_multisets_like_sets() {
        let text = "대한민국 헌법 제1조 대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있다. 대한민국";
        for spec in ["jamo3", "jamo3+word5"] {
            let s = Scheme::new(spec.parse().unwrap(), Combine::Union, 0.5, 64, 9)
                .unwrap()
                .with_hashing(Hashing::Oph);
            let (fast, sorted) = (s.shingle_for_signing(text), s.shingle(text));
            assert!(
                fast.shingles.jamo.len() > sorted.shingles.jamo.len(),
                "repeats kept"
            );
            let (mut a, mut b) = (vec![0; 64], vec![0; 64]);
            s.sign(&fast.shingles, &mut a);
            s.sign(&sorted.shingles, &mut b);
            assert_eq!(
                a, b,
                "{spec}: repeats and order do not change the signature"
            );
            // Content: equal after normalisation, different otherwise.
            let same = s.shingle_for_signing("대한민국  헌법, 제1조 대한민국은 민주공화국이다 대한민국의 주권은 국민에게 있다 대한민국");
            assert_eq!(fast.content, same.content);
            assert_ne!(fast.content, s.shingle_for_signing("대한민국 헌법").content);
        }
    }

    #[test]
    fn one_pass_signing_equals_the_general_path() {
        let texts = [
            "대한민국 헌법 제1조 대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있다.",
            "ㅋㅋㅋ 진짜 재밌어요… 최고!!",
            "짧음",
            "",
            "Ｆｕｌｌ－ｗｉｄｔｈ ㈜ café",
        ];
        for spec in ["jamo3", "jamo4", "jamo3+word5"] {
            let s = Scheme::new(spec.parse().unwrap(), Combine::Union, 0.5, 128, 3)
                .unwrap()
                .with_hashing(Hashing::Oph);
            for t in texts {
                let (mut a, mut b) = (vec![0; 128], vec![0; 128]);
                let got = s.sign_text(t, &mut a);
                let sh = s.shingle_for_signing(t);
                let bins = s.sign(&sh.shingles, &mut b);
                assert_eq!(a, b, "{spec} {t:?}");
                assert_eq!(s.shingle_set(t), s.shingle(t).shingles, "{spec} {t:?}");
                assert_eq!(
                    (got.tokens, got.chars, got.content, got.bins),
                    (sh.tokens, sh.chars, sh.content, bins),
                    "{spec} {t:?}"
                );
            }
        }
    }
}
