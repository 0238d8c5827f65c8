//! What every side-by-side benchmark needs to run a Python peer and compare memory: one way of
//! finding the interpreter and one reader of a process's resident memory.

use std::path::{Path, PathBuf};

/// The Python that runs peers: `explicit`, else `$YUNMIN_PYTHON`, else `.venv/bin/python` (the
/// test command's environment) when it exists. `None` when there is none.
pub fn python(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("YUNMIN_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Some(PathBuf::from(".venv/bin/python")).filter(|p| p.exists())
}

/// A `kB` field of `/proc/<pid>/status` (this process when `pid` is `None`), in bytes.
fn status_bytes(pid: Option<u32>, key: &str) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".into(),
    };
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set (`VmHWM`) of process `pid` (this process when `None`) in bytes, when the
/// platform reports it (Linux). A child's own high-water mark, unlike `ru_maxrss`, which a
/// child inherits from its parent across fork + exec.
pub fn peak_rss_bytes(pid: Option<u32>) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Current resident set (`VmRSS`) of process `pid` (this process when `None`) in bytes.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_python_wins_and_memory_is_read_from_proc() {
        assert_eq!(
            python(Some(Path::new("/opt/py"))),
            Some(PathBuf::from("/opt/py"))
        );
        // Each read parses its own line of /proc/self/status: a touched 64 MiB block shows in
        // VmRSS. Other tests of this process allocate and free at the same time, so a few
        // tries are allowed for one undisturbed one.
        let grew = (0..5).any(|_| {
            let before = rss_bytes(None).expect("Linux reports VmRSS");
            let block = vec![1u8; 64 << 20];
            let during = rss_bytes(None).expect("Linux reports VmRSS");
            let peak = peak_rss_bytes(None).expect("Linux reports VmHWM");
            assert!(
                peak + (1 << 20) >= during,
                "peak {peak} below the current {during}"
            );
            drop(std::hint::black_box(block));
            during > before + (32 << 20)
        });
        assert!(grew, "VmRSS never showed a 64 MiB block");
        assert!(peak_rss_bytes(Some(std::process::id())).is_some());
    }
}
