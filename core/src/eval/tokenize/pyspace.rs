//! Python's notion of whitespace, which sacreBLEU's and rouge-score's `str.split()` use.

/// Whether `c` is whitespace for Python's `str.isspace()`: Unicode `White_Space` plus the
/// information separators U+001C–U+001F (bidirectional class B or S).
#[inline]
pub fn is_py_space(c: char) -> bool {
    if c.is_ascii() {
        matches!(
            c,
            '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x1c'..='\x1f' | ' '
        )
    } else {
        c.is_whitespace()
    }
}

/// `text.rstrip()` in Python: trailing [`is_py_space`] characters removed.
pub fn py_rstrip(text: &str) -> &str {
    text.trim_end_matches(is_py_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_set() {
        for c in [
            '\t', '\n', '\x0b', '\x0c', '\r', '\x1c', '\x1f', ' ', '\u{85}', '\u{a0}', '\u{3000}',
            '\u{2028}',
        ] {
            assert!(is_py_space(c), "{c:?}");
        }
        for c in ['a', '\u{200b}', '\x00', '\x1b', '가', '\u{feff}'] {
            assert!(!is_py_space(c), "{c:?}");
        }
        assert_eq!(py_rstrip("ab \x1c\n"), "ab");
    }
}
