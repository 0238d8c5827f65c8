//! Jamo tokenizer: lowercase, decompose every precomposed Hangul syllable into its conjoining
//! jamo (initial, medial, optional final — the arithmetic of Unicode §3.12, equal to NFD on
//! Hangul), then every non-whitespace character is a token. Two syllables that share a
//! consonant or vowel get partial credit, which suits an agglutinative script.

use super::{Tokens, is_py_space, lower};
use std::borrow::Cow;

const S_BASE: u32 = 0xAC00;
const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const V_COUNT: u32 = 21;
const T_COUNT: u32 = 28;
const N_COUNT: u32 = V_COUNT * T_COUNT;
const S_COUNT: u32 = 19 * N_COUNT;

/// `text` with Hangul syllables decomposed into conjoining jamo; other characters unchanged.
pub fn decompose_hangul(text: &str) -> Cow<'_, str> {
    let is_syllable = |c: char| (S_BASE..S_BASE + S_COUNT).contains(&(c as u32));
    if !text.chars().any(is_syllable) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 3);
    for c in text.chars() {
        if is_syllable(c) {
            let s = c as u32 - S_BASE;
            let l = L_BASE + s / N_COUNT;
            let v = V_BASE + (s % N_COUNT) / T_COUNT;
            let t = s % T_COUNT;
            out.extend([l, v].into_iter().filter_map(char::from_u32));
            if t != 0 {
                out.extend(char::from_u32(T_BASE + t));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One token per jamo or other non-whitespace character.
pub fn jamo_tokens(text: &str) -> Tokens<'_> {
    let text = match lower(text) {
        Cow::Borrowed(t) => decompose_hangul(t),
        Cow::Owned(t) => Cow::Owned(decompose_hangul(&t).into_owned()),
    };
    let spans = text
        .char_indices()
        .filter(|(_, c)| !is_py_space(*c))
        .map(|(i, c)| i..i + c.len_utf8())
        .collect();
    Tokens::new(text, spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    #[test]
    fn decomposition_equals_nfd_on_hangul() {
        let s = "한국어 값 가 힣";
        assert_eq!(decompose_hangul(s), s.nfd().collect::<String>());
        assert_eq!(
            jamo_tokens("각 A").to_vec(),
            ["\u{1100}", "\u{1161}", "\u{11a8}", "a"]
        );
    }
}
