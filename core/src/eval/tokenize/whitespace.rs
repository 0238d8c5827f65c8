//! Whitespace tokenizer: Python's `str.split()`. Tokens are slices of the input; case is kept.

use super::Tokens;
use std::borrow::Cow;

/// Splits `text` on Python whitespace.
pub fn whitespace_tokens(text: &str) -> Tokens<'_> {
    Tokens::split_whitespace(Cow::Borrowed(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_runs_of_space() {
        assert_eq!(
            whitespace_tokens("  오늘은\t날씨가 Good.\n").to_vec(),
            ["오늘은", "날씨가", "Good."]
        );
    }
}
