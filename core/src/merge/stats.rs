//! Statistics of diff tensors: L2 norm, max, min, mean and (population) standard deviation,
//! accumulated in f64 over parallel chunks and combined exactly (Chan et al.'s pairwise update),
//! so per-tensor and overall figures agree with NumPy's float64 results.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

const CHUNK: usize = 1 << 16;

/// Summary statistics of one tensor, or of many tensors pooled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TensorStats {
    /// Number of elements.
    pub numel: u64,
    /// √Σx².
    pub l2: f64,
    /// Largest element.
    pub max: f64,
    /// Smallest element.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation (NumPy's default `ddof=0`).
    pub std: f64,
}

/// Running moments that can be merged.
#[derive(Debug, Clone, Copy)]
pub struct Moments {
    n: f64,
    mean: f64,
    m2: f64,
    sumsq: f64,
    min: f64,
    max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Self {
            n: 0.0,
            mean: 0.0,
            m2: 0.0,
            sumsq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Moments {
    /// Moments of a slice (single pass over a cache-sized chunk, then its deviations).
    pub fn of_chunk(x: &[f32]) -> Self {
        if x.is_empty() {
            return Self::default();
        }
        let (mut s, mut sq, mut lo, mut hi) = (0.0f64, 0.0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &v in x {
            let v = v as f64;
            s += v;
            sq += v * v;
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let n = x.len() as f64;
        let mean = s / n;
        let m2 = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
        Self {
            n,
            mean,
            m2,
            sumsq: sq,
            min: lo,
            max: hi,
        }
    }

    /// Moments of a whole tensor, in parallel.
    pub fn of(x: &[f32]) -> Self {
        x.par_chunks(CHUNK)
            .map(Self::of_chunk)
            .reduce(Self::default, Self::merge)
    }

    /// Pooled moments of two disjoint sets.
    pub fn merge(a: Self, b: Self) -> Self {
        if a.n == 0.0 {
            return b;
        }
        if b.n == 0.0 {
            return a;
        }
        let n = a.n + b.n;
        let d = b.mean - a.mean;
        Self {
            n,
            mean: a.mean + d * b.n / n,
            m2: a.m2 + b.m2 + d * d * a.n * b.n / n,
            sumsq: a.sumsq + b.sumsq,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        }
    }

    /// The statistics.
    pub fn stats(&self) -> TensorStats {
        if self.n == 0.0 {
            return TensorStats {
                numel: 0,
                l2: 0.0,
                max: 0.0,
                min: 0.0,
                mean: 0.0,
                std: 0.0,
            };
        }
        TensorStats {
            numel: self.n as u64,
            l2: self.sumsq.sqrt(),
            max: self.max,
            min: self.min,
            mean: self.mean,
            std: (self.m2 / self.n).max(0.0).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_equals_direct() {
        let x: Vec<f32> = (0..200_001)
            .map(|i| ((i * 37 % 1001) as f32 - 500.0) / 77.0)
            .collect();
        let direct = {
            let n = x.len() as f64;
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            (
                mean,
                var.sqrt(),
                x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt(),
            )
        };
        let s = Moments::of(&x).stats();
        assert!((s.mean - direct.0).abs() < 1e-12);
        assert!((s.std - direct.1).abs() < 1e-10);
        assert!((s.l2 - direct.2).abs() < 1e-8);
        let (a, b) = x.split_at(12345);
        let p = Moments::merge(Moments::of(a), Moments::of(b)).stats();
        assert!((p.std - s.std).abs() < 1e-10);
        assert_eq!(s.max, (500.0f32 / 77.0) as f64);
    }
}
