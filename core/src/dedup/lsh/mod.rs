//! LSH index: documents inserted under one bucket per band; buckets queried for their members.
//!
//! Backends implement [`LshIndex`]: [`memory::MemoryIndex`] (default) and
//! [`redis::RedisIndex`] (`redis://…`), which several worker processes can fill at once.

pub mod memory;
pub mod redis;

use super::params::BandRows;
use crate::Result;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// A bucket: band number and the hash of that band's signature rows.
pub type BucketKey = (u16, u64);

/// An LSH index backend.
pub trait LshIndex: Send {
    /// A short description for logs ("memory", "redis://host:port/0 ns=…").
    fn describe(&self) -> String;

    /// Inserts documents: `keys[i]` under the buckets `(j, bands[i·b + j])` for `j < b`.
    fn insert(&mut self, keys: &[u64], bands: &[u64]) -> Result<()>;

    /// Members of every probed bucket (same order as `probes`), sorted ascending.
    fn members(&mut self, probes: &[BucketKey]) -> Result<Vec<Vec<u64>>>;

    /// For each document (its buckets, one per band), the union of those buckets' members —
    /// one request per document instead of one per bucket. `None`: the backend has no cheaper
    /// way than [`LshIndex::members`] (the caller then queries buckets).
    fn union_members(&mut self, _docs: &[&[BucketKey]]) -> Option<Result<Vec<Vec<u64>>>> {
        None
    }

    /// Every bucket with two or more members, when the backend can list them without probes
    /// (the memory index); `None` otherwise. Equal to probing every inserted document's
    /// buckets when this process inserted everything the index holds.
    fn all_buckets(&mut self) -> Option<Vec<Vec<u64>>> {
        None
    }

    /// Removes everything this index stored.
    fn clear(&mut self) -> Result<()>;

    /// Frees this process's memory held for the index once it will not be queried again
    /// (the memory index empties itself; a server-side index keeps its keys).
    fn release(&mut self) {}
}

/// Band hashes of one signature: xxh3 of each band's rows (seeded by the band number).
pub fn band_hashes(sig: &[u32], offsets: &[usize], rows: usize, out: &mut Vec<u64>) {
    let mut buf = Vec::with_capacity(rows * 4);
    for (j, &o) in offsets.iter().enumerate() {
        buf.clear();
        for v in &sig[o..o + rows] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        out.push(xxh3_64_with_seed(&buf, j as u64));
    }
}

/// Opens the backend named by `spec`: `"memory"` or a `redis://…` URL, with keys under
/// `namespace`.
pub fn open(
    spec: &str,
    namespace: &str,
    bands: BandRows,
    batch: usize,
) -> Result<Box<dyn LshIndex>> {
    if spec == "memory" {
        Ok(Box::new(memory::MemoryIndex::new(bands.bands)))
    } else if spec.starts_with("redis://")
        || spec.starts_with("rediss://")
        || spec.starts_with("redis+unix://")
    {
        Ok(Box::new(redis::RedisIndex::connect(
            spec, namespace, batch,
        )?))
    } else {
        Err(super::DedupError::Config(format!(
            "index `{spec}`: expected \"memory\" or a redis://host:port URL"
        ))
        .into())
    }
}
