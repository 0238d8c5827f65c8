//! Choosing the document each cluster keeps.

use super::signatures::DocMeta;
use crate::dedup::DedupError;
use serde::{Deserialize, Serialize};

/// Which member of a cluster is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Most whitespace tokens of the normalised text (the default); ties → smallest id.
    #[default]
    MostTokens,
    /// Most characters; ties → smallest id.
    Longest,
    /// The first in dataset order.
    First,
    /// The smallest id (string order).
    SmallestId,
}

impl std::str::FromStr for Keep {
    type Err = DedupError;
    fn from_str(s: &str) -> Result<Self, DedupError> {
        match s {
            "most_tokens" => Ok(Keep::MostTokens),
            "longest" => Ok(Keep::Longest),
            "first" => Ok(Keep::First),
            "smallest_id" => Ok(Keep::SmallestId),
            _ => Err(DedupError::Config(format!(
                "keep `{s}`: expected one of most_tokens, longest, first, smallest_id"
            ))),
        }
    }
}

/// The member of `members` (indices into `docs`) that `keep` selects.
pub fn representative(members: &[usize], docs: &[DocMeta], keep: Keep) -> usize {
    let by_id = |a: &usize, b: &usize| {
        docs[*b]
            .id
            .cmp(&docs[*a].id)
            .then(docs[*b].key.cmp(&docs[*a].key))
    };
    let pick = match keep {
        Keep::MostTokens => members
            .iter()
            .max_by(|a, b| docs[**a].tokens.cmp(&docs[**b].tokens).then(by_id(a, b))),
        Keep::Longest => members
            .iter()
            .max_by(|a, b| docs[**a].chars.cmp(&docs[**b].chars).then(by_id(a, b))),
        Keep::First => members.iter().min_by_key(|a| docs[**a].key),
        Keep::SmallestId => members.iter().max_by(|a, b| by_id(a, b)),
    };
    *pick.expect("non-empty cluster")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(key: u64, id: &str, tokens: u32, chars: u32) -> DocMeta {
        DocMeta {
            key,
            id: id.into(),
            domain: "d".into(),
            tokens,
            chars,
            content: 0,
            bins: 0,
        }
    }

    #[test]
    fn most_tokens_then_smallest_id() {
        let docs = vec![
            doc(0, "c", 5, 10),
            doc(1, "b", 7, 12),
            doc(2, "a", 7, 11),
            doc(3, "z", 2, 99),
        ];
        let all = [0, 1, 2, 3];
        assert_eq!(
            representative(&all, &docs, Keep::MostTokens),
            2,
            "tie on 7 tokens → id a"
        );
        assert_eq!(representative(&all, &docs, Keep::Longest), 3);
        assert_eq!(representative(&all, &docs, Keep::First), 0);
        assert_eq!(representative(&all, &docs, Keep::SmallestId), 2);
        assert_eq!(representative(&[0, 1], &docs, Keep::MostTokens), 1);
        assert!(
            "most"
                .parse::<Keep>()
                .unwrap_err()
                .to_string()
                .contains("most_tokens")
        );
    }
}
