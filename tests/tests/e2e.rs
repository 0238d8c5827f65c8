//! End-to-end tests: the `yunmin` binary on scripts. One test binary links the whole graph once.

#[path = "e2e/eval.rs"]
mod eval;
#[path = "e2e/foundation.rs"]
mod foundation;
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/dedup.rs"]
mod dedup;
