//! The in-memory LSH index: per band, a vector of `(bucket hash, document)` sorted on first
//! query, so memory is 16 bytes per document and band.

use super::{BucketKey, LshIndex};
use crate::Result;

/// In-process index.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    bands: Vec<Vec<(u64, u64)>>,
    sorted: bool,
}

impl MemoryIndex {
    /// An empty index with `bands` bands.
    pub fn new(bands: usize) -> Self {
        Self {
            bands: vec![Vec::new(); bands],
            sorted: true,
        }
    }

    /// Every bucket with at least two members, as sorted member lists (band order, then hash).
    pub fn multi_buckets(&mut self) -> Vec<Vec<u64>> {
        self.sort();
        let mut out = Vec::new();
        for band in &self.bands {
            for group in band.chunk_by(|a, b| a.0 == b.0) {
                if group.len() > 1 {
                    out.push(group.iter().map(|x| x.1).collect());
                }
            }
        }
        out
    }

    fn sort(&mut self) {
        if !self.sorted {
            use rayon::prelude::*;
            self.bands.par_iter_mut().for_each(|b| {
                b.sort_unstable();
                b.dedup();
            });
            self.sorted = true;
        }
    }
}

impl LshIndex for MemoryIndex {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn all_buckets(&mut self) -> Option<Vec<Vec<u64>>> {
        Some(self.multi_buckets())
    }

    fn release(&mut self) {
        let n = self.bands.len();
        self.bands = vec![Vec::new(); n];
        self.sorted = true;
    }

    fn insert(&mut self, keys: &[u64], bands: &[u64]) -> Result<()> {
        let b = self.bands.len();
        assert_eq!(bands.len(), keys.len() * b, "band hashes per document");
        for (i, &k) in keys.iter().enumerate() {
            for (j, band) in self.bands.iter_mut().enumerate() {
                band.push((bands[i * b + j], k));
            }
        }
        self.sorted = keys.is_empty() && self.sorted;
        Ok(())
    }

    fn members(&mut self, probes: &[BucketKey]) -> Result<Vec<Vec<u64>>> {
        self.sort();
        Ok(probes
            .iter()
            .map(|&(j, h)| {
                let band = &self.bands[j as usize];
                let start = band.partition_point(|x| x.0 < h);
                band[start..]
                    .iter()
                    .take_while(|x| x.0 == h)
                    .map(|x| x.1)
                    .collect()
            })
            .collect())
    }

    fn clear(&mut self) -> Result<()> {
        self.bands.iter_mut().for_each(Vec::clear);
        self.sorted = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_group_documents_sharing_a_band() {
        let mut m = MemoryIndex::new(2);
        m.insert(&[10, 11, 12], &[1, 2, 1, 3, 9, 3]).unwrap();
        assert_eq!(
            m.members(&[(0, 1), (1, 3), (1, 2), (0, 9)]).unwrap(),
            vec![vec![10, 11], vec![11, 12], vec![10], vec![12]]
        );
        assert_eq!(m.multi_buckets(), vec![vec![10, 11], vec![11, 12]]);
        m.clear().unwrap();
        assert!(m.multi_buckets().is_empty());
    }
}
