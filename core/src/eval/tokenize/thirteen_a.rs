//! sacreBLEU's `13a` tokenizer (mteval-v13a.pl, as in `sacrebleu/tokenizers/tokenizer_13a.py`
//! and `tokenizer_re.py` of sacreBLEU 2.x), ported step for step:
//!
//! 1. remove `<skipped>`, join `-\n` hyphenations, newlines become spaces;
//! 2. if the line has `&`: `&quot;` → `"`, `&amp;` → `&`, `&lt;` → `<`, `&gt;` → `>` (in that
//!    order, each over the whole line);
//! 3. pad with a space on each side, then the four regex substitutions of `TokenizerRegexp`:
//!    - `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 ` (ASCII punctuation except `'`, `,`, `-`, `.`),
//!    - `([^0-9])([\.,])` → `\1 \2 ` (period/comma not preceded by a digit),
//!    - `([\.,])([^0-9])` → ` \1 \2` (period/comma not followed by a digit),
//!    - `([0-9])(-)` → `\1 \2 ` (dash after a digit);
//! 4. split on whitespace.
//!
//! Each two-character pattern is applied as Python's `re.sub` does: leftmost match first, then
//! the scan resumes after the match (matches never overlap).

use super::Tokens;
use std::borrow::Cow;

#[inline]
fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

#[inline]
fn is_punct_13a(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// Applies a fixed two-character regex `(A)(B)` with `re.sub` semantics.
fn sub2(
    s: &str,
    a: impl Fn(char) -> bool,
    b: impl Fn(char) -> bool,
    repl: impl Fn(&mut String, char, char),
) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4 + 4);
    let mut it = s.chars().peekable();
    while let Some(x) = it.next() {
        if a(x)
            && let Some(&y) = it.peek()
            && b(y)
        {
            it.next();
            repl(&mut out, x, y);
            continue;
        }
        out.push(x);
    }
    out
}

/// The 13a-tokenized line, tokens separated by runs of whitespace (not yet split).
pub fn tokenize_13a_text(line: &str) -> String {
    let mut line: Cow<'_, str> = Cow::Borrowed(line);
    for (from, to) in [("<skipped>", ""), ("-\n", ""), ("\n", " ")] {
        if line.contains(from) {
            line = Cow::Owned(line.replace(from, to));
        }
    }
    if line.contains('&') {
        for (from, to) in [
            ("&quot;", "\""),
            ("&amp;", "&"),
            ("&lt;", "<"),
            ("&gt;", ">"),
        ] {
            if line.contains(from) {
                line = Cow::Owned(line.replace(from, to));
            }
        }
    }
    // ' {line} ' then the first substitution (pad punctuation with spaces).
    let mut s = String::with_capacity(line.len() * 2 + 2);
    s.push(' ');
    for c in line.chars() {
        if is_punct_13a(c) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    s.push(' ');
    let is_pc = |c: char| c == '.' || c == ',';
    let s = sub2(
        &s,
        |c| !is_digit(c),
        is_pc,
        |o, x, y| {
            o.push(x);
            o.push(' ');
            o.push(y);
            o.push(' ');
        },
    );
    let s = sub2(
        &s,
        is_pc,
        |c| !is_digit(c),
        |o, x, y| {
            o.push(' ');
            o.push(x);
            o.push(' ');
            o.push(y);
        },
    );
    sub2(
        &s,
        is_digit,
        |c| c == '-',
        |o, x, y| {
            o.push(x);
            o.push(' ');
            o.push(y);
            o.push(' ');
        },
    )
}

/// Tokens of `line` under sacreBLEU's `13a` tokenizer.
pub fn tokenize_13a(line: &str) -> Tokens<'static> {
    Tokens::split_whitespace(Cow::Owned(tokenize_13a_text(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> String {
        tokenize_13a(s).joined()
    }

    // Expected strings produced by sacrebleu 2.6.0's Tokenizer13a.
    #[test]
    fn matches_sacrebleu_examples() {
        assert_eq!(
            tok("Hello, world! It's 3.14 and 1,000 items."),
            "Hello , world ! It's 3.14 and 1,000 items ."
        );
        assert_eq!(tok("a..b"), "a . . b");
        assert_eq!(
            tok("x-ray 10-20 &amp;lt; &quot;q&quot;"),
            "x-ray 10 - 20 < \" q \""
        );
        assert_eq!(
            tok("state-of-the-art<skipped> end-\nline"),
            "state-of-the-art endline"
        );
        assert_eq!(
            tok("오늘은 날씨가 좋네요. 그렇죠?"),
            "오늘은 날씨가 좋네요 . 그렇죠 ?"
        );
        assert_eq!(tok(""), "");
    }
}
