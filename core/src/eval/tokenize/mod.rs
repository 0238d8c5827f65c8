//! Tokenizers for the text metrics. Each lives in its own file and returns [`Tokens`]: the
//! (possibly rewritten) text plus token spans into it, so tokens that are slices of the input
//! are never copied.
//!
//! | name | used by | rule |
//! |---|---|---|
//! | `13a` | BLEU | sacreBLEU's `tokenizer_13a` (mteval-v13a), ported regex for regex |
//! | `char` | BLEU, ROUGE | every non-whitespace character is a token (sacreBLEU `char`) |
//! | `none` | BLEU | split on whitespace only (sacreBLEU `none`) |
//! | `rouge` | ROUGE | rouge-score's default: lowercase, keep runs of `[a-z0-9]` (Hangul is deleted) |
//! | `whitespace` | ROUGE | Python `str.split()` |
//! | `hangul` | ROUGE | lowercase, keep runs of Unicode letters/digits (Hangul, Hanja, Latin, digits) |
//! | `jamo` | ROUGE | lowercase, Hangul syllables decomposed into jamo, every jamo/character a token |
//!
//! "Whitespace" everywhere means Python's `str.isspace()` ([`is_py_space`]), so splitting
//! agrees with sacreBLEU and rouge-score character for character.

mod chars;
mod hangul;
mod jamo;
mod pyspace;
mod rouge_default;
mod thirteen_a;
mod whitespace;

pub use chars::char_tokens;
pub use hangul::hangul_tokens;
pub use jamo::{decompose_hangul, jamo_tokens};
pub use pyspace::{is_py_space, py_rstrip};
pub use rouge_default::rouge_default_tokens;
pub use thirteen_a::{tokenize_13a, tokenize_13a_text};
pub use whitespace::whitespace_tokens;

use std::borrow::Cow;
use std::ops::Range;

/// Tokens of one text: the text they were cut from (borrowed when the tokenizer did not rewrite
/// it) and each token's byte range in it.
#[derive(Debug, Clone, Default)]
pub struct Tokens<'a> {
    text: Cow<'a, str>,
    spans: Vec<Range<usize>>,
}

impl<'a> Tokens<'a> {
    /// Tokens from a text and byte ranges into it (ranges must lie on char boundaries).
    pub fn new(text: Cow<'a, str>, spans: Vec<Range<usize>>) -> Self {
        Self { text, spans }
    }

    /// Splits `text` on Python whitespace ([`is_py_space`]), as `str.split()` does.
    pub fn split_whitespace(text: Cow<'a, str>) -> Self {
        let spans = runs(&text, |c| !is_py_space(c));
        Self { text, spans }
    }

    /// The same tokens owning their text.
    pub fn into_owned(self) -> Tokens<'static> {
        Tokens {
            text: Cow::Owned(self.text.into_owned()),
            spans: self.spans,
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `i`-th token.
    pub fn get(&self, i: usize) -> &str {
        &self.text[self.spans[i].clone()]
    }

    /// The tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.spans.iter().map(|r| &self.text[r.clone()])
    }

    /// The tokens as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }

    /// The tokens joined by single spaces (sacreBLEU's tokenized line).
    pub fn joined(&self) -> String {
        self.iter().collect::<Vec<_>>().join(" ")
    }
}

/// Byte ranges of the maximal runs of characters satisfying `keep`.
pub(crate) fn runs(text: &str, keep: impl Fn(char) -> bool) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (keep(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push(s..text.len());
    }
    spans
}

/// Lowercases like Python's `str.lower()` (full Unicode mapping, final sigma), borrowing when
/// nothing changes.
pub fn lower(text: &str) -> Cow<'_, str> {
    let unchanged = |c: char| {
        if c.is_ascii() {
            !c.is_ascii_uppercase()
        } else if ('\u{AC00}'..='\u{D7A3}').contains(&c) {
            true
        } else {
            let mut l = c.to_lowercase();
            l.len() == 1 && l.next() == Some(c)
        }
    };
    if text.chars().all(unchanged) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_whitespace_matches_python_split() {
        // Python: "a\x1cb\u3000c  d\n".split() == ['a', 'b', 'c', 'd']
        let t = Tokens::split_whitespace(Cow::Borrowed("a\x1cb\u{3000}c  d\n"));
        assert_eq!(t.to_vec(), ["a", "b", "c", "d"]);
        assert!(Tokens::split_whitespace(Cow::Borrowed("   ")).is_empty());
    }

    #[test]
    fn lower_borrows_when_unchanged() {
        assert!(matches!(lower("abc 한국어"), Cow::Borrowed(_)));
        assert_eq!(lower("ABC Σ"), "abc σ");
        assert_eq!(lower("ΟΔΟΣ"), "οδος");
    }
}
