//! `yunmin bench parquet`: JSONL → Parquet conversion against pyarrow at the same codecs, the
//! text codec trade-off, and the training loader (the Parquet `tokens` projection against
//! parsing and tokenising JSONL, with pyarrow and polars reading the same files) — peers in
//! `scripts/bench/parquet_peers.py`.

mod suite;

pub use suite::{BenchRow, ParquetBenchArgs, bench, load_jsonl};

/// Runs `yunmin bench parquet`: the rows as a table, and the CSVs under `<out>/benchmark/`.
pub fn run(b: ParquetBenchArgs) -> anyhow::Result<()> {
    let rows = bench(&b)?;
    println!("{}", crate::peer::table(&rows)?);
    println!(
        "wrote {}",
        b.out
            .join("benchmark/{io_speed,convert_speed,codec_tradeoff}.csv")
            .display()
    );
    Ok(())
}
