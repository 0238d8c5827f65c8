//! Where a script's file functions may read and write: the run root, plus directories the
//! user allows (`--allow-read`, `--allow-write`) and, for reading, the paths the script
//! declares in its parameters and its own directory. Paths are compared after making them
//! absolute and resolving `.`, `..` and symbolic links of the existing part, so `../` escapes
//! and links out of an allowed directory are refused.

use crate::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// The read and write roots of a run.
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    enforced: bool,
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
}

/// `p` absolute, `.`/`..` resolved lexically, then symbolic links resolved on the longest
/// prefix that exists.
pub fn normalize(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other.as_os_str()),
        }
    }
    let mut existing = lexical.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                existing = parent.to_path_buf();
            }
            _ => return lexical,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for n in rest.into_iter().rev() {
        out.push(n);
    }
    out
}

impl PathPolicy {
    /// No confinement (the primitives' own CLIs).
    pub fn open() -> Self {
        Self::default()
    }

    /// Reads and writes confined to `root` and the given extra directories.
    pub fn confined(root: &Path, read: &[PathBuf], write: &[PathBuf]) -> Self {
        let mut p = Self {
            enforced: true,
            read: Vec::new(),
            write: vec![normalize(root)],
        };
        p.read.extend(read.iter().map(|d| normalize(d)));
        p.write.extend(write.iter().map(|d| normalize(d)));
        p
    }

    /// Whether paths are checked at all.
    pub fn is_enforced(&self) -> bool {
        self.enforced
    }

    /// Also allows reading under `p` (a path the script declares).
    pub fn allow_read(&mut self, p: &Path) {
        if self.enforced {
            self.read.push(normalize(p));
        }
    }

    fn inside(p: &Path, dirs: &[PathBuf]) -> bool {
        dirs.iter().any(|d| p.starts_with(d))
    }

    fn is_remote(p: &Path) -> bool {
        p.to_string_lossy().contains("://")
    }

    /// `Ok` when `p` may be read (under an allowed read or write directory).
    pub fn check_read(&self, p: &Path) -> Result<()> {
        if !self.enforced || Self::is_remote(p) {
            return Ok(());
        }
        let n = normalize(p);
        if Self::inside(&n, &self.write) || Self::inside(&n, &self.read) {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "reading {} is outside the run root and the paths the script declares in params; \
             pass --allow-read DIR to allow it",
            n.display()
        )))
    }

    /// `Ok` when `p` may be written (under the run root or an `--allow-write` directory).
    pub fn check_write(&self, p: &Path) -> Result<()> {
        if !self.enforced || Self::is_remote(p) {
            return Ok(());
        }
        let n = normalize(p);
        if Self::inside(&n, &self.write) {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "writing {} is outside the run root; pass --allow-write DIR to allow it",
            n.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused_and_allowed_dirs_accepted() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("run");
        let data = d.path().join("data");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&data).unwrap();
        let mut p = PathPolicy::confined(&root, &[], &[]);
        assert!(p.check_write(&root.join("a/b.csv")).is_ok());
        assert!(p.check_read(&root.join("a/b.csv")).is_ok());
        let e = p.check_write(&root.join("../../../tmp/x.csv")).unwrap_err();
        assert!(e.to_string().contains("/tmp/x.csv"), "{e}");
        assert!(p.check_read(Path::new("/etc/hostname")).is_err());
        assert!(p.check_write(Path::new("/tmp/x")).is_err());
        assert!(p.check_read(&data.join("x.jsonl")).is_err());
        p.allow_read(&data);
        assert!(p.check_read(&data.join("x.jsonl")).is_ok());
        assert!(p.check_write(&data.join("x.jsonl")).is_err());
        // A link inside the run root that points out of it is an escape.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
            assert!(p.check_read(&root.join("etc/hostname")).is_err());
        }
        assert!(p.check_write(Path::new("s3://bucket/x")).is_ok());
        let open = PathPolicy::open();
        assert!(open.check_write(Path::new("/tmp/x")).is_ok());
    }
}
