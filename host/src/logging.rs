//! tracing: a human format on the terminal and, once a run root is known, a file layer
//! (`yunmin.log` in the run root).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

/// The per-run log file, attached after the run root is created.
#[derive(Clone, Default)]
pub struct RunLogFile(Arc<Mutex<Option<File>>>);

impl RunLogFile {
    /// Starts writing to `path` (appending).
    pub fn attach(&self, path: &Path) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        *self.0.lock().expect("log lock") = Some(f);
        Ok(())
    }
}

impl Write for RunLogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().expect("log lock").as_mut() {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().expect("log lock").as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// Installs the global subscriber; returns the run-file handle to attach later.
pub fn init(verbose: u8, quiet: bool) -> RunLogFile {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (_, 0) => "info",
        (_, 1) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,yunmin={level},yunmin_core={level},script={level}"
        ))
    });
    let file = RunLogFile::default();
    let f2 = file.clone();
    let file_layer = fmt::layer()
        .with_ansi(false)
        .with_writer(move || f2.clone());
    let term = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .compact();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(term)
        .with(file_layer)
        .try_init();
    file
}
