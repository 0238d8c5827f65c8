//! End-to-end tests: the `yunmin` binary on scripts. One test binary links the whole graph once.

#[path = "e2e/bench.rs"]
mod bench;
#[path = "e2e/eval.rs"]
mod eval;
#[path = "e2e/foundation.rs"]
mod foundation;
#[path = "e2e/hf_interop.rs"]
mod hf_interop;
#[path = "e2e/ingest.rs"]
mod ingest;
#[path = "e2e/ingest_parquet.rs"]
mod ingest_parquet;
#[path = "e2e/merge.rs"]
mod merge;
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/reproduce.rs"]
mod reproduce;
#[path = "e2e/scale_out.rs"]
mod scale_out;

#[path = "e2e/columnar.rs"]
mod columnar;
#[path = "e2e/dedup.rs"]
mod dedup;
#[path = "e2e/model.rs"]
mod model;
#[path = "e2e/pipeline.rs"]
mod pipeline;
