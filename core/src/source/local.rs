//! Local inputs: files, directories (walked recursively) and glob patterns.

use super::{SourceError, SourceItem, is_input_name};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io("list", dir, e))?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_input_name(&name) {
            out.push(p);
        }
    }
    Ok(())
}

/// Expands one local input: a file is taken as is (any name), a directory yields its JSONL
/// files (`*.jsonl`, `*.ndjson`, `*.json`, each optionally `.gz`/`.zst`) recursively, a glob
/// yields the files it matches (directories among them are walked). Sorted by path.
pub fn expand_local(pattern: &str) -> Result<Vec<SourceItem>> {
    let mut files = Vec::new();
    if has_glob_chars(pattern) && !Path::new(pattern).exists() {
        let opts = glob::MatchOptions {
            require_literal_leading_dot: true,
            ..Default::default()
        };
        let paths = glob::glob_with(pattern, opts).map_err(|e| SourceError::BadGlob {
            pattern: pattern.into(),
            reason: e.to_string(),
        })?;
        for p in paths {
            let p = p.map_err(|e| Error::io("glob", e.path().to_path_buf(), e.into()))?;
            if p.is_dir() {
                walk(&p, &mut files)?;
            } else {
                files.push(p);
            }
        }
    } else {
        let p = Path::new(pattern);
        let meta = std::fs::metadata(p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::from(SourceError::NoMatch {
                    pattern: pattern.into(),
                })
            } else {
                Error::io("stat", p, e)
            }
        })?;
        if meta.is_dir() {
            walk(p, &mut files)?;
        } else {
            files.push(p.to_path_buf());
        }
    }
    if files.is_empty() {
        return Err(SourceError::NoMatch {
            pattern: pattern.into(),
        }
        .into());
    }
    files.sort();
    files.dedup();
    Ok(files.into_iter().map(SourceItem::local).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_dirs_and_globs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("sub")).unwrap();
        for f in [
            "a.jsonl",
            "b.jsonl.zst",
            "sub/c.jsonl.gz",
            "notes.md",
            ".hidden.jsonl",
        ] {
            std::fs::write(r.join(f), "").unwrap();
        }
        let names = |v: Vec<SourceItem>| {
            v.into_iter()
                .map(|s| {
                    s.name
                        .strip_prefix(&format!("{}/", r.display()))
                        .unwrap()
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(expand_local(r.to_str().unwrap()).unwrap()),
            ["a.jsonl", "b.jsonl.zst", "sub/c.jsonl.gz"]
        );
        assert_eq!(
            names(expand_local(&format!("{}/*.jsonl*", r.display())).unwrap()),
            ["a.jsonl", "b.jsonl.zst"]
        );
        assert_eq!(
            names(expand_local(&format!("{}/notes.md", r.display())).unwrap()),
            ["notes.md"]
        );
        let e = expand_local(&format!("{}/nothing-*.jsonl", r.display()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no input files match") && e.contains("nothing-*"),
            "{e}"
        );
        let e = expand_local(&format!("{}/missing.jsonl", r.display()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.jsonl"), "{e}");
    }
}
