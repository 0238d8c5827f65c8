//! This machine's memory bandwidth, measured as a large `memcpy` (the ceiling a merge that
//! writes parameters can approach): bytes copied per second, one thread and all threads.

use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// Measured copy bandwidth.
#[derive(Debug, Clone, Serialize)]
pub struct Bandwidth {
    /// Buffer size, bytes.
    pub bytes: u64,
    /// Best of the repetitions, one thread, GB/s written (10⁹ bytes).
    pub single_gbs: f64,
    /// Best of the repetitions, rayon's threads, GB/s written.
    pub parallel_gbs: f64,
    /// Threads used for the parallel copy.
    pub threads: usize,
}

/// Copies a `bytes`-sized buffer `reps` times (pages touched beforehand) and reports the best.
pub fn memcpy_bandwidth(bytes: usize, reps: usize) -> Bandwidth {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    dst.par_chunks_mut(1 << 20).for_each(|c| c.fill(2));
    let mut single = f64::MAX;
    let mut parallel = f64::MAX;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        dst.copy_from_slice(&src);
        single = single.min(t.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
        let t = Instant::now();
        dst.par_chunks_mut(1 << 20)
            .zip(src.par_chunks(1 << 20))
            .for_each(|(d, s)| d.copy_from_slice(s));
        parallel = parallel.min(t.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
    }
    Bandwidth {
        bytes: bytes as u64,
        single_gbs: bytes as f64 / single / 1e9,
        parallel_gbs: bytes as f64 / parallel / 1e9,
        threads: rayon::current_num_threads(),
    }
}

/// Writes `bytes` to a new file at `path` in 4 MiB `write` calls, best of `reps`, and returns
/// GB/s: the page-cache ceiling for writing a checkpoint of that size. The file is removed.
pub fn file_write_bandwidth(
    path: &std::path::Path,
    bytes: usize,
    reps: usize,
) -> std::io::Result<f64> {
    use std::io::Write;
    let block = vec![1u8; 4 << 20];
    let mut best = f64::MAX;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let mut f = std::fs::File::create(path)?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(block.len());
            f.write_all(&block[..n])?;
            left -= n;
        }
        drop(f);
        best = best.min(t.elapsed().as_secs_f64());
        std::fs::remove_file(path)?;
    }
    Ok(bytes as f64 / best / 1e9)
}
