//! rouge-score's default tokenizer (`rouge_score.tokenize.tokenize` without a stemmer):
//! lowercase, replace every run of characters outside `[a-z0-9]` by a space, split. Every
//! Hangul (indeed every non-ASCII) character is deleted, so Korean text has no tokens.

use super::{Tokens, lower, runs};

/// Tokens as rouge-score's `DefaultTokenizer(use_stemmer=False)` produces them.
pub fn rouge_default_tokens(text: &str) -> Tokens<'_> {
    let text = lower(text);
    let spans = runs(&text, |c| c.is_ascii_lowercase() || c.is_ascii_digit());
    Tokens::new(text, spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_ascii_alnum() {
        assert_eq!(
            rouge_default_tokens("The cat's 2nd-best 한국어 hat!").to_vec(),
            ["the", "cat", "s", "2nd", "best", "hat"]
        );
        assert!(rouge_default_tokens("한국어 문장입니다.").is_empty());
        // Python: "İx".lower() == "i̇x" -> tokens ['i', 'x']
        assert_eq!(rouge_default_tokens("İx").to_vec(), ["i", "x"]);
    }
}
