//! indicatif progress bars for long native calls, hidden when stderr is not a terminal or when
//! the host turned them off (`--quiet`, tests).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns progress bars on or off for the whole process.
pub fn set_progress_enabled(on: bool) {
    ENABLED.store(on, Ordering::SeqCst);
}

/// Whether bars are drawn: enabled and stderr is a terminal.
pub fn progress_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn target() -> ProgressDrawTarget {
    if progress_enabled() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A bar over `len` items labelled `msg` (e.g. documents, bytes, steps).
pub fn progress_bar(len: u64, msg: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), target());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("static template"),
    );
    bar.set_message(msg.into());
    bar
}

/// A spinner for work of unknown length.
pub fn spinner(msg: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target());
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{elapsed_precise}] {spinner} {pos} ({per_sec})")
            .expect("static template"),
    );
    bar.set_message(msg.into());
    bar
}
