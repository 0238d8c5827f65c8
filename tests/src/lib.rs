//! Helpers shared by the end-to-end tests: locating the `yunmin` binary and running it.

pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The `yunmin` binary: `$YUNMIN_BIN`, else `yunmin` next to the test executable's directory
/// (`target/<profile>/yunmin`). The test command builds it before running the tests.
pub fn yunmin_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("YUNMIN_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = profile_dir.join("yunmin");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p yunmin` first",
        bin.display()
    );
    bin
}

/// Runs `yunmin args…` in `cwd` and returns its output (never panics on a non-zero exit).
pub fn yunmin(cwd: &Path, args: &[&str]) -> Output {
    Command::new(yunmin_bin())
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("spawn yunmin")
}

/// stdout and stderr of an output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `body` to `dir/name` and returns the path.
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write script");
    p
}

/// The Python interpreter with the test peers installed: `$YUNMIN_PYTHON`, else the repo's
/// `.venv` (created by `scripts/test.sh`). Panics with instructions when neither exists.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("YUNMIN_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python peers: run `bash scripts/test.sh` (it creates .venv with scripts/python-requirements/*.txt)"
    );
    venv
}

pub mod s3;
