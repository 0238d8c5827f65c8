//! `logs/train_<name>.log` (one CSV row per logged step) and `summary.csv` (one row per
//! domain, replaced when a domain is retrained).

use crate::model::NllSum;
use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Header of a training log.
pub const LOG_HEADER: &str = "step,loss,lr,tokens_per_s,elapsed_s,heldout_loss,heldout_ppl";

/// An append-only training log.
#[derive(Debug)]
pub struct TrainLog {
    path: PathBuf,
    file: std::fs::File,
}

impl TrainLog {
    /// Opens `path`: appends when `resume` and it exists, else starts it with the header.
    pub fn open(path: &Path, resume: bool) -> Result<Self> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))?;
        }
        let append = resume && path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        if !append {
            writeln!(file, "{LOG_HEADER}").map_err(|e| Error::io("write", path, e))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends a row; held-out columns are empty when `eval` is `None`.
    pub fn row(
        &mut self,
        step: usize,
        loss: f64,
        lr: f64,
        tps: f64,
        elapsed: f64,
        eval: Option<NllSum>,
    ) -> Result<()> {
        let (hl, hp) = match eval {
            Some(e) => (format!("{:.6}", e.mean()), format!("{:.4}", e.perplexity())),
            None => (String::new(), String::new()),
        };
        writeln!(
            self.file,
            "{step},{loss:.6},{lr:.6e},{tps:.1},{elapsed:.2},{hl},{hp}"
        )
        .map_err(|e| Error::io("write", &self.path, e))?;
        self.file
            .flush()
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

/// Header of `summary.csv`. Times and speeds are not in it (they differ between reruns of
/// the same run); they are in `logs/train_<name>.log` and the run's manifest.
pub const SUMMARY_HEADER: &str = "domain,phase,steps,tokens,final_train_loss,heldout_loss,heldout_ppl,base_heldout_loss,base_heldout_ppl,output";

/// One `summary.csv` row.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SummaryRow {
    /// Domain (or `base` for pretraining).
    pub domain: String,
    /// `pretrain` or `lora`.
    pub phase: String,
    /// Optimizer steps.
    pub steps: usize,
    /// Training tokens.
    pub tokens: u64,
    /// Mean training loss over the last 10 steps.
    pub final_train_loss: f64,
    /// Held-out loss after training.
    pub heldout_loss: f64,
    /// Held-out perplexity after training.
    pub heldout_ppl: f64,
    /// Held-out loss before training (the base; NaN for pretraining from scratch).
    pub base_heldout_loss: f64,
    /// Held-out perplexity before training.
    pub base_heldout_ppl: f64,
    /// Wall time, seconds (not written to `summary.csv`).
    pub wall_s: f64,
    /// Training tokens per second (not written to `summary.csv`).
    pub tokens_per_s: f64,
    /// The checkpoint or adapter directory (relative to the run root).
    pub output: String,
}

impl SummaryRow {
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{:.6},{:.6},{:.4},{:.6},{:.4},{}",
            self.domain,
            self.phase,
            self.steps,
            self.tokens,
            self.final_train_loss,
            self.heldout_loss,
            self.heldout_ppl,
            self.base_heldout_loss,
            self.base_heldout_ppl,
            self.output
        )
    }
}

/// Writes `row` into `path`, replacing an earlier row of the same domain and phase (atomic).
pub fn upsert_summary(path: &Path, row: &SummaryRow) -> Result<()> {
    // Processes training adapters side by side update the same file: one at a time (an
    // advisory lock on a hidden sibling, released by the kernel if the process dies).
    let lock_path = path.with_file_name(".summary.csv.lock");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("open", &lock_path, e))?;
    lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
    let mut lines: Vec<String> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for l in text.lines().skip(1) {
            let mut it = l.split(',');
            if it.next() == Some(row.domain.as_str()) && it.next() == Some(row.phase.as_str()) {
                continue;
            }
            if !l.trim().is_empty() {
                lines.push(l.to_string());
            }
        }
    }
    lines.push(row.csv());
    lines.sort();
    let body = format!("{SUMMARY_HEADER}\n{}\n", lines.join("\n"));
    crate::run::write_atomic(path, body.as_bytes())
}
