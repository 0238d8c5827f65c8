//! The fixed set of reasons a line is rejected.

use serde::{Deserialize, Serialize};

/// Why a line was rejected. Every line read is either a document or exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Empty or whitespace-only line.
    EmptyLine,
    /// Longer than `max_line_bytes`.
    TooLarge,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not valid JSON (syntax error, truncated, trailing characters, lone surrogates, NUL bytes).
    InvalidJson,
    /// JSON nested deeper than the parser's limit (128 levels).
    TooDeep,
    /// Valid JSON but not an object (array, string, number, boolean, null).
    NotObject,
    /// The object has no `text` key.
    MissingText,
    /// `text` is empty or whitespace only.
    EmptyText,
    /// `text`, `id` or `domain` has the wrong JSON type (e.g. `text` is a number).
    WrongType,
    /// A key appears twice in the object (one of the values would be lost).
    DuplicateKey,
}

impl RejectReason {
    /// Every reason, in report order.
    pub const ALL: [RejectReason; 10] = [
        RejectReason::EmptyLine,
        RejectReason::TooLarge,
        RejectReason::InvalidUtf8,
        RejectReason::InvalidJson,
        RejectReason::TooDeep,
        RejectReason::NotObject,
        RejectReason::MissingText,
        RejectReason::EmptyText,
        RejectReason::WrongType,
        RejectReason::DuplicateKey,
    ];

    /// The snake_case name used in reports and reject files.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::EmptyLine => "empty_line",
            RejectReason::TooLarge => "too_large",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::TooDeep => "too_deep",
            RejectReason::NotObject => "not_object",
            RejectReason::MissingText => "missing_text",
            RejectReason::EmptyText => "empty_text",
            RejectReason::WrongType => "wrong_type",
            RejectReason::DuplicateKey => "duplicate_key",
        }
    }

    /// Position in [`RejectReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_and_index() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }
}
