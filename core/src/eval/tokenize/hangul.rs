//! Hangul-preserving word tokenizer, the ROUGE default here: lowercase, then every maximal run
//! of Unicode letters or digits (`char::is_alphanumeric`: Hangul syllables and jamo, Hanja,
//! Latin, digits …) is a token; punctuation, symbols and whitespace separate tokens. For ASCII
//! text it equals rouge-score's default tokenizer; for Korean it keeps the words (eojeol)
//! instead of deleting them.

use super::{Tokens, lower, runs};

/// Lowercased runs of letters and digits.
pub fn hangul_tokens(text: &str) -> Tokens<'_> {
    let text = lower(text);
    let spans = runs(&text, char::is_alphanumeric);
    Tokens::new(text, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_hangul_words_and_drops_punctuation() {
        assert_eq!(
            hangul_tokens("서울은 'Korea'의 수도(首都)다!").to_vec(),
            ["서울은", "korea", "의", "수도", "首都", "다"]
        );
        assert_eq!(
            hangul_tokens("The cat's hat").to_vec(),
            ["the", "cat", "s", "hat"]
        );
    }
}
