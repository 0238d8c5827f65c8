//! Shingles: text normalisation, Hangul jamo n-grams and word n-grams.
//!
//! Word n-grams are hashed with xxh3 over their bytes. A jamo n-gram is hashed from its
//! characters' code points: up to three 21-bit code points packed into one u64 (exact, no byte
//! hashing), then mixed with [`super::oph::mix`]; longer n-grams fold the mixer over their code
//! points.
//!
//! Normalisation is NFKC, lowercase, and every punctuation or symbol character replaced by a
//! space, with runs of whitespace collapsed to one space. Two shingle kinds come from it:
//!
//! - **jamo n-grams**: the normalised text with all whitespace removed, decomposed with NFD so
//!   every Hangul syllable becomes its conjoining jamo (`한` → `ᄒ ᅡ ᆫ`), cut into n-grams of
//!   characters. Other scripts pass through as characters. Removing whitespace makes these
//!   shingles blind to spacing (띄어쓰기) changes.
//! - **word n-grams**: n consecutive whitespace-separated words of the normalised text.
//!
//! A text with fewer than n units gets its whole normalised form as a single shingle, so short
//! documents still compare (and empty or whitespace-only texts all share the shingle of "").

use crate::dedup::DedupError;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Hash seed of jamo shingles (distinct from words so the two kinds never collide).
const JAMO_SEED: u64 = 0x6a61_6d6f;
/// Hash seed of word shingles.
const WORD_SEED: u64 = 0x776f_7264;

/// Which shingle kinds, with their n, parsed from `"jamo3+word5"`, `"word5"`, `"jamo3"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShingleSpec {
    /// n of jamo n-grams, if used.
    pub jamo: Option<usize>,
    /// n of word n-grams, if used.
    pub word: Option<usize>,
}

impl Default for ShingleSpec {
    /// `jamo3+word5`.
    fn default() -> Self {
        Self {
            jamo: Some(3),
            word: Some(5),
        }
    }
}

impl std::fmt::Display for ShingleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.jamo {
            parts.push(format!("jamo{n}"));
        }
        if let Some(n) = self.word {
            parts.push(format!("word{n}"));
        }
        f.write_str(&parts.join("+"))
    }
}

impl std::str::FromStr for ShingleSpec {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        let bad = || {
            DedupError::Config(format!(
                "shingles `{s}`: expected kinds joined by `+`, each `jamoN` or `wordN` (N ≥ 1), \
                 e.g. \"jamo3+word5\", \"word5\", \"jamo3\""
            ))
        };
        let mut spec = ShingleSpec {
            jamo: None,
            word: None,
        };
        for part in s.split('+').map(str::trim) {
            let (kind, n) = if let Some(n) = part.strip_prefix("jamo") {
                ("jamo", n)
            } else if let Some(n) = part.strip_prefix("word") {
                ("word", n)
            } else {
                return Err(bad());
            };
            let n: usize = if n.is_empty() {
                if kind == "jamo" { 3 } else { 5 }
            } else {
                n.parse().map_err(|_| bad())?
            };
            if n == 0 {
                return Err(bad());
            }
            let slot = if kind == "jamo" {
                &mut spec.jamo
            } else {
                &mut spec.word
            };
            if slot.is_some() {
                return Err(bad());
            }
            *slot = Some(n);
        }
        if spec.jamo.is_none() && spec.word.is_none() {
            return Err(bad());
        }
        Ok(spec)
    }
}

/// The shingle hashes of one document, each kind sorted and deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shingles {
    /// Jamo n-gram hashes (empty when the spec has no jamo kind).
    pub jamo: Vec<u64>,
    /// Word n-gram hashes (empty when the spec has no word kind).
    pub word: Vec<u64>,
}

impl Shingles {
    /// Both kinds as one sorted set (the kinds are hashed with different seeds).
    pub fn union(&self) -> std::borrow::Cow<'_, [u64]> {
        if self.word.is_empty() {
            return std::borrow::Cow::Borrowed(&self.jamo);
        }
        if self.jamo.is_empty() {
            return std::borrow::Cow::Borrowed(&self.word);
        }
        let mut v = Vec::with_capacity(self.jamo.len() + self.word.len());
        v.extend_from_slice(&self.jamo);
        v.extend_from_slice(&self.word);
        v.sort_unstable();
        v.dedup();
        std::borrow::Cow::Owned(v)
    }
}

fn is_punct(c: char) -> bool {
    if c.is_alphanumeric() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    c.is_ascii_punctuation()
        || c.is_control()
        || (0xA1..=0xBF).contains(&u) // Latin-1 punctuation and symbols
        || u == 0xD7 || u == 0xF7
        || (0x2000..=0x2BFF).contains(&u) // general punctuation, arrows, math, shapes, dingbats
        || (0x3000..=0x303F).contains(&u) // CJK symbols and punctuation
        || (0x3200..=0x33FF).contains(&u) // enclosed CJK, compatibility squares
        || (0xFE10..=0xFE6F).contains(&u) // vertical, small and CJK compatibility forms
        || (0xFF00..=0xFF65).contains(&u) // full-width punctuation left after NFKC
        || (0x1F000..=0x1FAFF).contains(&u) // emoji and pictographs
        || u == 0xFFFD
        || u == 0xFE0F
        || u == 0x200D
}

/// A precomposed Hangul syllable (U+AC00–U+D7A3).
#[inline(always)]
fn is_syllable(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

/// Characters NFD leaves alone and that never reorder: starters (combining class 0) without a
/// canonical decomposition. ASCII, conjoining Hangul jamo (U+1100–U+11FF) and CJK unified
/// ideographs (U+4E00–U+9FFF) are decided without a table lookup.
#[inline(always)]
fn is_nfd_stable(c: char) -> bool {
    use unicode_normalization::{IsNormalized, char::canonical_combining_class, is_nfd_quick};
    c.is_ascii()
        || ('\u{1100}'..='\u{11FF}').contains(&c)
        || ('\u{4E00}'..='\u{9FFF}').contains(&c)
        || (!is_syllable(c)
            && canonical_combining_class(c) == 0
            && is_nfd_quick(std::iter::once(c)) == IsNormalized::Yes)
}

/// Whether `c` separates words after normalisation (whitespace, punctuation, symbols), with
/// the common cases — ASCII and Hangul syllables — decided without Unicode table lookups.
#[inline(always)]
fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        // Every ASCII character that is not a letter or digit is whitespace, punctuation or a
        // control character.
        !c.is_ascii_alphanumeric()
    } else if is_syllable(c) {
        false
    } else {
        c.is_whitespace() || is_punct(c)
    }
}

/// Whether `text` is certainly NFKC already: only ASCII and Hangul syllables (which never
/// compose with each other), or the Unicode quick check says so.
fn is_nfkc(text: &str) -> bool {
    // ASCII characters and syllables have combining class 0 and quick-check Yes, so they reset
    // the quick check's state: checking the runs between them separately is exact.
    text.split(|c: char| c.is_ascii() || is_syllable(c))
        .filter(|run| !run.is_empty())
        .all(|run| {
            unicode_normalization::is_nfkc_quick(run.chars())
                == unicode_normalization::IsNormalized::Yes
        })
}

/// NFKC, lowercase, punctuation and symbols to spaces, whitespace collapsed and trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    let mut push = |c: char| {
        if is_separator(c) {
            pending_space = !out.is_empty();
            return;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    };
    let mut lower = |c: char| {
        if c.is_ascii() {
            push(c.to_ascii_lowercase());
        } else if is_syllable(c) {
            push(c);
        } else {
            c.to_lowercase().for_each(&mut push);
        }
    };
    if is_nfkc(text) {
        text.chars().for_each(&mut lower);
    } else {
        nfkc_runs(text).chars().for_each(&mut lower);
    }
    out
}

/// NFKC of `text`, normalising only the runs of characters other than ASCII and Hangul
/// syllables, each together with the character before it. Exact: ASCII characters and
/// syllables are starters that NFKC leaves alone, so a run can only compose with the starter
/// just before it (`e` + U+0301, `가` + jongseong), never across the next stable character.
fn nfkc_runs(text: &str) -> String {
    let stable = |c: char| c.is_ascii() || is_syllable(c);
    let mut out = String::with_capacity(text.len() + 8);
    let mut last_stable: Option<usize> = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if stable(c) {
            last_stable = Some(out.len());
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let end = rest.find(stable).unwrap_or(rest.len());
        let mut seg = last_stable.map(|p| out.split_off(p)).unwrap_or_default();
        seg.push_str(&rest[..end]);
        out.extend(seg.nfkc());
        last_stable = None;
        rest = &rest[end..];
    }
    out
}

/// Number of whitespace-separated tokens of the normalised text (the "most tokens" measure).
pub fn token_count(normalized: &str) -> usize {
    normalized.split(' ').filter(|w| !w.is_empty()).count()
}

/// Jamo n-gram hashes of normalised text (see the module docs), sorted and deduplicated.
pub fn jamo_shingles(normalized: &str, n: usize) -> Vec<u64> {
    sorted_set(jamo_hashes(normalized, n))
}

/// The jamo n-gram hashes in text order, repeats included (a multiset; enough for signatures).
pub fn jamo_hashes(normalized: &str, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(normalized.len());
    let mut w = JamoWindow::new(n);
    let mut f = |h| out.push(h);
    let chars = normalized.chars().filter(|c| *c != ' ');
    if normalized
        .chars()
        .all(|c| is_syllable(c) || is_nfd_stable(c))
    {
        // NFD leaves ASCII, conjoining jamo and CJK ideographs as they are (combining class 0,
        // no decomposition); a Hangul syllable decomposes arithmetically (Unicode §3.12).
        for c in chars {
            if is_syllable(c) {
                w.push_syllable(c as u32 - 0xAC00, &mut f);
            } else {
                w.push(c as u32, &mut f);
            }
        }
    } else {
        for c in chars.nfd() {
            w.push(c as u32, &mut f);
        }
    }
    w.finish(&mut f);
    out
}

/// Code point bits per character in a packed jamo n-gram.
const CODE_BITS: u32 = 21;

/// Hash of a jamo n-gram (or of a whole stream shorter than n) from its characters' code
/// points. Up to three characters are packed into one u64, `(c₀ << 42) | (c₁ << 21) | c₂`,
/// which is injective (code points are below 2²¹, and every shingle character is non-zero, so
/// shorter streams never pack like n-grams); the packed value is then mixed. Longer n-grams fold
/// the mixer over their code points.
#[inline(always)]
pub fn jamo_gram_hash(codes: &[u32]) -> u64 {
    if codes.len() <= 3 {
        let packed = codes
            .iter()
            .fold(0u64, |acc, &c| (acc << CODE_BITS) | u64::from(c));
        super::oph::mix(packed ^ JAMO_SEED)
    } else {
        codes.iter().fold(JAMO_SEED, |acc, &c| {
            super::oph::mix(acc.rotate_left(CODE_BITS) ^ u64::from(c))
        })
    }
}

/// The last n characters of the jamo stream, for hashing its n-grams without building it: a
/// packed u64 for n ≤ 3 (one shift and or per character), a ring of code points otherwise.
struct JamoWindow {
    n: usize,
    count: usize,
    packed: u64,
    mask: u64,
    ring: Vec<u32>,
    scratch: Vec<u32>,
}

impl JamoWindow {
    fn new(n: usize) -> Self {
        let mask = if n <= 3 {
            (1u64 << (CODE_BITS as usize * n)) - 1
        } else {
            u64::MAX
        };
        Self {
            n,
            count: 0,
            packed: 0,
            mask,
            ring: if n > 3 { vec![0; n] } else { Vec::new() },
            scratch: Vec::new(),
        }
    }

    /// Appends one character; once n are in the window, calls `f` with the n-gram's hash.
    #[inline(always)]
    fn push(&mut self, c: u32, f: &mut impl FnMut(u64)) {
        if self.n <= 3 {
            self.packed = ((self.packed << CODE_BITS) | u64::from(c)) & self.mask;
            self.count += 1;
            if self.count >= self.n {
                f(super::oph::mix(self.packed ^ JAMO_SEED));
            }
        } else {
            self.ring[self.count % self.n] = c;
            self.count += 1;
            if self.count >= self.n {
                let start = self.count % self.n;
                self.scratch.clear();
                self.scratch.extend_from_slice(&self.ring[start..]);
                self.scratch.extend_from_slice(&self.ring[..start]);
                f(jamo_gram_hash(&self.scratch));
            }
        }
    }

    /// Appends the conjoining jamo of the Hangul syllable with index `s` (code point − U+AC00):
    /// L, V and (unless `s` is a multiple of 28) T (Unicode §3.12).
    #[inline(always)]
    fn push_syllable(&mut self, s: u32, f: &mut impl FnMut(u64)) {
        self.push(0x1100 + s / 588, f);
        self.push(0x1161 + (s % 588) / 28, f);
        let t = s % 28;
        if t != 0 {
            self.push(0x11A7 + t, f);
        }
    }

    /// A stream shorter than n characters is one shingle: the whole stream.
    fn finish(mut self, f: &mut impl FnMut(u64)) {
        if self.count < self.n {
            if self.n <= 3 {
                f(super::oph::mix(self.packed ^ JAMO_SEED));
            } else {
                self.scratch.clear();
                self.scratch.extend_from_slice(&self.ring[..self.count]);
                f(jamo_gram_hash(&self.scratch));
            }
        }
    }
}

/// A Hangul compatibility jamo (U+3131–U+318E: `ㅋ`, `ㅠ` …).
#[inline(always)]
fn is_compat_jamo(c: char) -> bool {
    ('\u{3131}'..='\u{318E}').contains(&c)
}

/// NFKC of a single non-ASCII character when it is all ASCII (`…` → `...`, `①` → `1`,
/// `Ａ` → `A`), for characters whose NFKC differs from themselves.
fn nfkc_ascii(c: char) -> Option<String> {
    if unicode_normalization::is_nfkc_quick(std::iter::once(c))
        == unicode_normalization::IsNormalized::Yes
    {
        return None;
    }
    let m: String = std::iter::once(c).nfkc().collect();
    m.is_ascii().then_some(m)
}

/// [`is_nfkc`] for [`jamo_walk`]: the characters the walk maps itself (compatibility jamo,
/// characters whose NFKC is ASCII) also end the runs that the quick check sees. A character that could compose with
/// one of them has quick-check "Maybe", so the runs' verdict stays exact.
fn is_nfkc_walk(text: &str) -> bool {
    text.split(|c: char| {
        c.is_ascii() || is_syllable(c) || is_compat_jamo(c) || nfkc_ascii(c).is_some()
    })
    .filter(|run| !run.is_empty())
    .all(|run| {
        unicode_normalization::is_nfkc_quick(run.chars())
            == unicode_normalization::IsNormalized::Yes
    })
}

/// NFKC of a single character that NFKC changes (`…` → `...`, `℃` → `°C`, `㈜` → `(주)`, `㉠` →
/// `ᄀ`, a CJK compatibility ideograph → its unified form), when the character can be normalised
/// on its own: a compatibility jamo, or a starter whose full compatibility decomposition starts
/// with a character that nothing before it composes with (quick check Yes, combining class 0). What follows cannot compose
/// with the result either unless it is a character the walk does not take (it then gives up)
/// or a jamo, whose compositions the jamo stream undoes.
fn nfkc_alone(c: char) -> Option<String> {
    use unicode_normalization::{IsNormalized, char::canonical_combining_class, is_nfkc_quick};
    if is_compat_jamo(c) {
        // One conjoining jamo, which may compose with its neighbours into a syllable in the
        // text's NFKC: the jamo stream decomposes that again.
        return Some(std::iter::once(c).nfkc().collect());
    }
    if canonical_combining_class(c) != 0 || is_nfkc_quick(std::iter::once(c)) != IsNormalized::No {
        return None;
    }
    let mut first = None;
    unicode_normalization::char::decompose_compatible(c, |d| {
        first.get_or_insert(d);
    });
    let first = first?;
    if canonical_combining_class(first) != 0
        || is_nfkc_quick(std::iter::once(first)) != IsNormalized::Yes
    {
        return None;
    }
    Some(std::iter::once(c).nfkc().collect())
}

/// [`walk_class`] of a character that only separates words.
const WALK_SEPARATOR: u32 = u32::MAX;

/// How [`jamo_walk`] treats a character other than ASCII and Hangul syllables, when that can
/// be decided from the character alone: `Some(WALK_SEPARATOR)` when its lowercase form is all
/// separators, `Some(code point)` of its lowercase form when that is one character the jamo
/// stream takes as it is, `None` for the rest (compatibility jamo, characters NFKC changes or
/// that may compose with a neighbour, lowercase forms NFD would change), which take the walk's
/// general branches. Results are cached per block of 256 code points.
#[inline(always)]
fn walk_class(c: char) -> Option<u32> {
    static BLOCKS: [std::sync::OnceLock<Box<[u32; 256]>>; 0x1100] =
        [const { std::sync::OnceLock::new() }; 0x1100];
    let u = c as u32;
    let block = BLOCKS[(u >> 8) as usize].get_or_init(|| {
        Box::new(std::array::from_fn(|i| {
            char::from_u32((u & !0xFF) | i as u32).map_or(0, classify_for_walk)
        }))
    });
    match block[(u & 0xFF) as usize] {
        0 => None,
        class => Some(class),
    }
}

/// The uncached [`walk_class`] (0 for `None`).
fn classify_for_walk(c: char) -> u32 {
    use unicode_normalization::{IsNormalized, char::canonical_combining_class, is_nfkc_quick};
    if c.is_ascii()
        || is_syllable(c)
        || is_compat_jamo(c)
        || is_nfkc_quick(std::iter::once(c)) != IsNormalized::Yes
        || canonical_combining_class(c) != 0
    {
        return 0;
    }
    let lower: Vec<char> = c.to_lowercase().collect();
    if lower.iter().all(|&l| is_separator(l)) {
        WALK_SEPARATOR
    } else if let [l] = lower[..]
        && !is_syllable(l)
        && is_nfd_stable(l)
    {
        l as u32
    } else {
        0
    }
}

/// What one pass over a text found besides its shingles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Whitespace tokens of the normalised text.
    pub tokens: u32,
    /// Characters of the original text.
    pub chars: u32,
}

/// One pass over `text` doing normalisation, jamo decomposition and n-gram hashing together:
/// calls `f` with every jamo n-gram hash in text order (repeats kept; the same hashes as
/// [`jamo_hashes`] of [`normalize`]d text) without building any intermediate string. Returns
/// `None` — after possibly having called `f` — for the rare texts this pass does not handle
/// (a character that NFKC would change or NFD would decompose, other than Hangul syllables);
/// the caller then starts over with the general path.
pub fn jamo_walk(text: &str, n: usize, mut f: impl FnMut(u64)) -> Option<Walked> {
    let mut w = JamoWindow::new(n);
    let mut words = Words::default();
    let mut chars = 0u32;
    let mut nfkc: Option<bool> = None;
    for c in text.chars() {
        chars += 1;
        if walk_plain(c, false, &mut words, &mut w, &mut f) {
            // ASCII, a syllable, or a character NFKC leaves alone and that no neighbour
            // composes with from the left (quick check Yes, combining class 0).
        } else if let Some(m) = nfkc_alone(c) {
            // Its NFKC form (`…` → `...`, `ㅋ` → U+110F, `㈜` → `(주)`), character by character,
            // as the text's NFKC holds it.
            for x in m.chars() {
                if !walk_plain(x, true, &mut words, &mut w, &mut f) {
                    return None;
                }
            }
        } else {
            if !*nfkc.get_or_insert_with(|| is_nfkc_walk(text)) {
                return None;
            }
            for l in c.to_lowercase() {
                if is_separator(l) {
                    words.gap();
                } else if is_syllable(l) || !is_nfd_stable(l) {
                    return None;
                } else {
                    words.word();
                    w.push(l as u32, &mut f);
                }
            }
        }
    }
    w.finish(&mut f);
    Some(Walked {
        tokens: words.tokens,
        chars,
    })
}

/// Word counting of [`jamo_walk`]: a token starts at a word character after a separator.
#[derive(Default)]
struct Words {
    tokens: u32,
    in_word: bool,
}

impl Words {
    #[inline(always)]
    fn word(&mut self) {
        self.tokens += u32::from(!self.in_word);
        self.in_word = true;
    }

    #[inline(always)]
    fn gap(&mut self) {
        self.in_word = false;
    }
}

/// One character of [`jamo_walk`] that needs no normalisation of its own: ASCII (lowercased),
/// a syllable (decomposed), a character with a [`walk_class`], and with `jamo` a conjoining
/// jamo (from an NFKC form). False, having done nothing, for any other character.
#[inline(always)]
fn walk_plain(
    c: char,
    jamo: bool,
    words: &mut Words,
    w: &mut JamoWindow,
    f: &mut impl FnMut(u64),
) -> bool {
    if c.is_ascii() {
        if c.is_ascii_alphanumeric() {
            words.word();
            w.push(u32::from(c.to_ascii_lowercase()), f);
        } else {
            words.gap();
        }
    } else if is_syllable(c) {
        words.word();
        w.push_syllable(c as u32 - 0xAC00, f);
    } else if let Some(class) = walk_class(c) {
        if class == WALK_SEPARATOR {
            words.gap();
        } else {
            words.word();
            w.push(class, f);
        }
    } else if jamo && ('\u{1100}'..='\u{11FF}').contains(&c) {
        words.word();
        w.push(c as u32, f);
    } else {
        return false;
    }
    true
}

/// Sorted and deduplicated.
fn sorted_set(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Word n-gram hashes of normalised text (words are separated by single spaces there), sorted
/// and deduplicated.
pub fn word_shingles(normalized: &str, n: usize) -> Vec<u64> {
    sorted_set(word_hashes(normalized, n))
}

/// The word n-gram hashes in text order, repeats included.
pub fn word_hashes(normalized: &str, n: usize) -> Vec<u64> {
    let bytes = normalized.as_bytes();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut in_word = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' {
            if in_word {
                ends.push(i);
                in_word = false;
            }
        } else if !in_word {
            starts.push(i);
            in_word = true;
        }
    }
    if in_word {
        ends.push(bytes.len());
    }
    let words = starts.len();
    if words < n {
        vec![xxh3_64_with_seed(bytes, WORD_SEED)]
    } else {
        (0..=words - n)
            .map(|i| xxh3_64_with_seed(&bytes[starts[i]..ends[i + n - 1]], WORD_SEED))
            .collect()
    }
}

/// Shingles of already normalised text.
pub fn shingles_of_normalized(normalized: &str, spec: &ShingleSpec) -> Shingles {
    Shingles {
        jamo: spec
            .jamo
            .map(|n| jamo_shingles(normalized, n))
            .unwrap_or_default(),
        word: spec
            .word
            .map(|n| word_shingles(normalized, n))
            .unwrap_or_default(),
    }
}

/// Shingle hashes of already normalised text as multisets (text order, repeats kept): what a
/// signature needs, without the sort.
pub fn shingle_multisets(normalized: &str, spec: &ShingleSpec) -> Shingles {
    Shingles {
        jamo: spec
            .jamo
            .map(|n| jamo_hashes(normalized, n))
            .unwrap_or_default(),
        word: spec
            .word
            .map(|n| word_hashes(normalized, n))
            .unwrap_or_default(),
    }
}

/// Normalises `text` and computes its shingles.
pub fn shingles(text: &str, spec: &ShingleSpec) -> Shingles {
    shingles_of_normalized(&normalize(text), spec)
}

/// |a ∩ b| / |a ∪ b| of two sorted, deduplicated hash sets (1.0 when both are empty).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The normalisation by definition, without fast paths.
    fn normalize_reference(text: &str) -> String {
        let mut out = String::new();
        let mut pending_space = false;
        for c in text.nfkc().flat_map(char::to_lowercase) {
            if c.is_whitespace() || is_punct(c) {
                pending_space = !out.is_empty();
                continue;
            }
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn run_wise_nfkc_equals_whole_text_nfkc() {
        use rand::{Rng, SeedableRng};
        let pool: Vec<char> =
            "aZ9 .가각힣ㄱㄳㅏㅋㅠ\u{1100}\u{1161}\u{11A8}\u{301}\u{327}\u{308}ﬁ½①㈜Ａ漢\u{F900}é"
                .chars()
                .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..3000 {
            let n = rng.random_range(0..12);
            let t: String = (0..n)
                .map(|_| pool[rng.random_range(0..pool.len())])
                .collect();
            assert_eq!(nfkc_runs(&t), t.nfkc().collect::<String>(), "{t:?}");
        }
    }

    #[test]
    fn fast_paths_equal_the_definition() {
        let texts = [
            "대한민국 헌법 제1조 ① 대한민국은 민주공화국이다.",
            "ABC def, 123! 한국어  텍스트\t\n끝",
            "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ ㈜ 가나다 ㎏ …",
            "가\u{11A8} 조합형 자모 \u{1100}\u{1161}\u{11AB}",
            "Café naïve ÉCOLE Σίσυφος İstanbul ß",
            "ㅋㅋㅋ 재밌다 ㅠㅠ ㄳ 가ㄳ 漢字만 \u{F900}",
            "ㄱㅏ 가\u{11A8}ㅋ cafe\u{301} e\u{301}\u{327} ﬁ ½ ①② ㈜ 가ㅏ",
            "漢字 混用 文章 — “인용” 『책』 😀👍 ❤\u{FE0F}",
            "",
            "   ",
        ];
        for t in texts {
            let n = normalize(t);
            assert_eq!(n, normalize_reference(t), "{t:?}");
            let want: String = n.chars().filter(|c| *c != ' ').nfd().collect();
            let got = jamo_shingles(&n, 1);
            let mut by_def: Vec<u64> = want.chars().map(|c| jamo_gram_hash(&[c as u32])).collect();
            if by_def.is_empty() {
                by_def.push(jamo_gram_hash(&[]));
            }
            by_def.sort_unstable();
            by_def.dedup();
            assert_eq!(got, by_def, "jamo of {t:?}");
        }
    }

    #[test]
    fn one_pass_walk_equals_normalise_then_shingle() {
        let texts = [
            "대한민국 헌법 제1조 ① 대한민국은 민주공화국이다.",
            "ABC def, 123! 한국어  텍스트\t\n끝",
            "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ ㈜ 가나다 ㎏ …",
            "“인용” 『책』 ‘따옴표’ · 가운뎃점 — 대시 ㅋㅋㅋ ㅠㅠ 東京 漢字",
            "café Ünïcödé ΑΒΓ Привет 😀👍 좋아요",
            "온도 25℃, ㈜한국 ㎛ ㈎항 ㉮목 ㉠ㅏ ㉡ 金 \u{FEFF}본문 µm Δx αβ の",
            "㉠\u{1161}\u{11A8} ℃\u{301} ㈜\u{327} Ω\u{2126}Å 金\u{F90A}",
            "",
            " \n ",
            "가",
            "가나",
            "ab",
            "!!!",
        ];
        for n in [1, 3, 4] {
            for t in texts {
                let norm = normalize(t);
                let mut got = Vec::new();
                match jamo_walk(t, n, |h| got.push(h)) {
                    Some(w) => {
                        assert_eq!(got, jamo_hashes(&norm, n), "n {n}: {t:?}");
                        assert_eq!(w.tokens as usize, token_count(&norm), "{t:?}");
                        assert_eq!(w.chars as usize, t.chars().count(), "{t:?}");
                    }
                    // Only texts that need NFKC or NFD may take the general path.
                    None => assert!(
                        !is_nfkc(t) || norm.chars().any(|c| !is_syllable(c) && !is_nfd_stable(c)),
                        "{t:?}"
                    ),
                }
            }
        }
        // The common Korean text takes the one-pass path.
        assert!(jamo_walk("대한민국 헌법 제1조, “인용”… ㅋㅋ ㅠㅠ", 3, |_| ()).is_some());
        // Random texts over characters that interact under NFKC (compatibility jamo composing
        // into syllables, combining marks, conjoining jamo, full-width forms).
        use rand::{Rng, SeedableRng};
        let pool: Vec<char> =
            "aZ9 .,가각힣ㄱㄳㅏㅋㅠㆍ\u{1100}\u{1161}\u{11A8}\u{301}\u{327}\u{338}ﬁ½①㈜㎡Ａａ漢…‥·“é=<\
             ℃㎛㈎㉮㉠金\u{FEFF}µΔαの\u{302E}\u{F90A}\u{2126}Å"
                .chars()
                .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut walked = 0;
        for _ in 0..5000 {
            let len = rng.random_range(0..10);
            let t: String = (0..len)
                .map(|_| pool[rng.random_range(0..pool.len())])
                .collect();
            let mut got = Vec::new();
            if let Some(w) = jamo_walk(&t, 3, |h| got.push(h)) {
                let norm = normalize(&t);
                assert_eq!(got, jamo_hashes(&norm, 3), "{t:?}");
                assert_eq!(w.tokens as usize, token_count(&norm), "{t:?}");
                walked += 1;
            }
        }
        assert!(walked > 1000, "{walked}");
    }

    /// The one-pass walk against the general path on every document of the shared corpora
    /// (`YUNMIN_CORPORA=../shared/data/corpora cargo test -p yunmin-core --lib walk_equals -- --ignored`).
    #[test]
    #[ignore]
    fn walk_equals_the_general_path_on_the_corpora() {
        let dir = std::env::var("YUNMIN_CORPORA").unwrap_or("../../shared/data/corpora".into());
        let (mut walked, mut all) = (0, 0);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let f = std::fs::File::open(&p).unwrap();
            let text = std::io::read_to_string(zstd::Decoder::new(f).unwrap()).unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let t = v["text"].as_str().unwrap();
                all += 1;
                let mut got = Vec::new();
                if let Some(w) = jamo_walk(t, 3, |h| got.push(h)) {
                    let norm = normalize(t);
                    assert_eq!(got, jamo_hashes(&norm, 3), "{t:?}");
                    assert_eq!(w.tokens as usize, token_count(&norm), "{t:?}");
                    walked += 1;
                }
            }
        }
        eprintln!("{walked} of {all} documents walked in one pass");
        assert!(all > 0);
    }

    #[test]
    fn normalizes_width_case_punctuation_and_spaces() {
        assert_eq!(
            normalize("  ＡＢＣ，  한국어！！ 텍스트…\t\n"),
            "abc 한국어 텍스트"
        );
        assert_eq!(normalize("「서울」·부산 ㈜"), "서울 부산 주");
        assert_eq!(normalize(" \n\t "), "");
        assert_eq!(normalize("좋아요😀👍"), "좋아요");
    }

    #[test]
    fn jamo_trigrams_decompose_syllables_and_ignore_spacing() {
        // 한국 → ᄒ ᅡ ᆫ ᄀ ᅮ ᆨ: 6 jamo, 4 trigrams.
        assert_eq!(jamo_shingles("한국", 3).len(), 4);
        let spaced = jamo_shingles(&normalize("아버지가 방에 들어가신다"), 3);
        let unspaced = jamo_shingles(&normalize("아버지가방에 들어 가신다"), 3);
        assert_eq!(
            spaced, unspaced,
            "spacing changes must not change jamo shingles"
        );
        // A particle swap (가 → 는) changes only the trigrams around it.
        let swapped = jamo_shingles(&normalize("아버지는 방에 들어가신다"), 3);
        let j = jaccard(&spaced, &swapped);
        assert!(j > 0.6 && j < 1.0, "{j}");
    }

    #[test]
    fn word_ngrams_and_short_text_fallback() {
        let n = normalize("오늘은 날씨가 정말 좋아서 공원에 산책을 갔다");
        assert_eq!(word_shingles(&n, 5).len(), 3);
        // Fewer than n words: the whole text is one shingle, equal for equal texts.
        assert_eq!(word_shingles("최고의 영화", 5).len(), 1);
        assert_eq!(
            word_shingles("최고의 영화", 5),
            word_shingles(&normalize("최고의   영화!"), 5)
        );
        assert_ne!(
            word_shingles("최고의 영화", 5),
            word_shingles("최악의 영화", 5)
        );
        assert_eq!(jamo_shingles("a", 3).len(), 1);
        // Empty and whitespace-only texts all share one shingle.
        let spec = ShingleSpec::default();
        assert_eq!(shingles("", &spec), shingles(" \n ", &spec));
        assert_eq!(shingles("", &spec).jamo.len(), 1);
    }

    #[test]
    fn non_hangul_scripts_produce_character_shingles() {
        let spec: ShingleSpec = "jamo3".parse().unwrap();
        for t in [
            "The quick brown fox",
            "東京は日本の首都です",
            "Привет мир",
            "مرحبا بالعالم",
        ] {
            let s = shingles(t, &spec);
            assert!(s.jamo.len() > 3, "{t}");
            assert!(s.word.is_empty());
        }
    }

    #[test]
    fn spec_parsing() {
        assert_eq!(
            "jamo3+word5".parse::<ShingleSpec>().unwrap(),
            ShingleSpec::default()
        );
        assert_eq!(
            "word5".parse::<ShingleSpec>().unwrap(),
            ShingleSpec {
                jamo: None,
                word: Some(5)
            }
        );
        assert_eq!("jamo4".parse::<ShingleSpec>().unwrap().to_string(), "jamo4");
        for bad in ["", "char3", "jamo0", "word5+word3", "jamox"] {
            let e = bad.parse::<ShingleSpec>().unwrap_err().to_string();
            assert!(e.contains("jamoN"), "{bad}: {e}");
        }
    }

    #[test]
    fn jaccard_of_sets() {
        assert_eq!(jaccard(&[1, 2, 3], &[2, 3, 4]), 0.5);
        assert_eq!(jaccard(&[], &[]), 1.0);
        assert_eq!(jaccard(&[1], &[]), 0.0);
    }
}
