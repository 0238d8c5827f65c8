//! Peak resident memory of this process (Linux `/proc/self/status`), for reports and benchmarks.

/// Peak resident set size (`VmHWM`) in MiB, when the platform reports it.
pub fn peak_rss_mb() -> Option<f64> {
    crate::run::peak_rss_bytes(None).map(|b| b as f64 / (1 << 20) as f64)
}

/// Current resident set size (`VmRSS`) in MiB.
pub fn rss_mb() -> Option<f64> {
    crate::run::rss_bytes(None).map(|b| b as f64 / (1 << 20) as f64)
}

/// Resets the peak to the current RSS (`echo 5 > /proc/self/clear_refs`); returns whether it
/// worked, so a benchmark can measure phases of one process separately.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
