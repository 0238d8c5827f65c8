//! Cooperative cancellation: Ctrl-C sets a flag that long native loops poll between items.

use std::sync::atomic::{AtomicBool, Ordering};

static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Asks every running native call to stop at its next safe point.
pub fn request_cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Clears a previous cancellation request (tests, or a host that keeps running).
pub fn clear_cancelled() {
    CANCELLED.store(false, Ordering::SeqCst);
}

/// Whether cancellation was requested.
pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::Relaxed)
}

/// Returns [`crate::Error::Cancelled`] once cancellation was requested; call it in long loops.
pub fn check_cancelled() -> crate::Result<()> {
    if is_cancelled() {
        Err(crate::Error::Cancelled)
    } else {
        Ok(())
    }
}
