//! `yunmin bench metrics`: BLEU and ROUGE against sacreBLEU and rouge-score
//! (`scripts/bench/metrics_peers.py`) on corpus sentence pairs, speed and scores side by side.

mod suite;

pub use suite::{MetricsBenchArgs, corpus_pairs, make_pairs, read_texts, run_metrics_bench};

/// Runs `yunmin bench metrics`.
pub fn run(a: MetricsBenchArgs) -> anyhow::Result<()> {
    let t = run_metrics_bench(&a)?;
    println!("{t}");
    t.write_csv(&a.csv)?;
    println!("wrote {}", a.csv.display());
    Ok(())
}
