//! Write-then-rename, so a killed run never leaves a half-written output that looks complete.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Puts the finished file `from` at `to` too: a hard link (no copy on one file system), else a
/// copy. `to`'s directory is created.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))?;
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| Error::io("copy", from, e))
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    let tmp = tmp_sibling(path);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))
}

/// A directory (or file) built under a temporary name and moved into place by [`commit`].
/// Dropped without commit, the temporary is removed.
///
/// [`commit`]: AtomicDir::commit
#[derive(Debug)]
pub struct AtomicDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicDir {
    /// Starts building `target`; write everything under [`AtomicDir::path`].
    pub fn new(target: impl Into<PathBuf>) -> Result<Self> {
        let target = target.into();
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("create directory", parent, e))?;
        }
        let tmp = tmp_sibling(&target);
        if tmp.exists() {
            remove_any(&tmp)?;
        }
        Ok(Self {
            tmp,
            target,
            committed: false,
        })
    }

    /// Where to write while building (a directory the caller may create, or a file path).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final location.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Replaces any previous `target` with the finished temporary.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            remove_any(&self.target)?;
        }
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io("rename", &self.tmp, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed && self.tmp.exists() {
            let _ = remove_any(&self.tmp);
        }
    }
}

fn remove_any(path: &Path) -> Result<()> {
    let res = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    res.map_err(|e| Error::io("remove", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_dir_leaves_nothing_and_commit_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        {
            let a = AtomicDir::new(&target).unwrap();
            std::fs::create_dir_all(a.path()).unwrap();
            std::fs::write(a.path().join("x"), "1").unwrap();
        }
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let a = AtomicDir::new(&target).unwrap();
        std::fs::create_dir_all(a.path()).unwrap();
        std::fs::write(a.path().join("x"), "2").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read_to_string(target.join("x")).unwrap(), "2");
    }
}
