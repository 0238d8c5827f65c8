//! Runs: the run directory, its manifest, the stage cache, the pipeline logs, cancellation and
//! progress bars. A leaf module: every pipeline module may use it.

mod atomic;
mod cache;
mod cancel;
mod confine;
mod context;
mod error;
mod hashing;
mod manifest;
mod peer;
mod progress;
mod stage_log;

pub use atomic::{AtomicDir, link_or_copy, write_atomic};
pub use cache::{StageCache, StageRecord};
pub use cancel::{check_cancelled, clear_cancelled, is_cancelled, request_cancel};
pub use confine::{PathPolicy, normalize};
pub use context::RunContext;
pub use error::RunError;
pub use hashing::{hash_json, hash_path, hash_str};
pub use manifest::{
    GitInfo, Manifest, RUN_RECORDS, StageEntry, compare_files, dependency_versions, run_files,
};
pub use peer::{peak_rss_bytes, python, rss_bytes};
pub use progress::{progress_bar, progress_enabled, set_progress_enabled, spinner};
pub use stage_log::{StageLog, StageStatus};
