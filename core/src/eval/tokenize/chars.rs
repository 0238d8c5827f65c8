//! Character tokenizer: every non-whitespace character is a token (sacreBLEU's `char`, and the
//! ROUGE `char` tokenizer). Tokens are slices of the input.

use super::{Tokens, is_py_space};
use std::borrow::Cow;

/// One token per non-whitespace character of `text`.
pub fn char_tokens(text: &str) -> Tokens<'_> {
    let spans = text
        .char_indices()
        .filter(|(_, c)| !is_py_space(*c))
        .map(|(i, c)| i..i + c.len_utf8())
        .collect();
    Tokens::new(Cow::Borrowed(text), spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_space_char() {
        assert_eq!(char_tokens("한국 어!").to_vec(), ["한", "국", "어", "!"]);
        assert!(char_tokens(" \n").is_empty());
    }
}
