//! One-permutation hashing (OPH) with optimal densification: a MinHash-compatible signature in
//! one pass over the shingles instead of one pass per permutation.
//!
//! Each shingle hash is combined with the mixed seed; its high bits pick one of `k` bins and its
//! low 32 bits are the value; every bin keeps its minimum. Two sets agree in a non-empty bin with
//! probability equal to their Jaccard similarity, as with `k` independent permutations. Empty
//! bins (sets smaller than `k`, or unlucky ones) borrow the value of another bin chosen by a
//! seeded hash sequence of (bin, attempt) — the same sequence for every document, so the
//! borrowed values stay comparable ("optimal densification", Shrivastava 2017: the estimator
//! stays unbiased). Cost per document: O(shingles + k) instead of O(shingles · k).

/// SplitMix64's finaliser: a bijective 64-bit mixer.
#[inline(always)]
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fast range reduction of the high 32 bits of `x` to a bin in `0..k`.
#[inline(always)]
fn bin_of(x: u64, k: usize) -> usize {
    (((x >> 32) * k as u64) >> 32) as usize
}

/// An OPH signature being built one shingle hash at a time (the single-pass signer feeds it
/// while it walks the text). [`OphSketch::finish`] densifies the empty bins.
///
/// Shingle hashes are expected to be well mixed already (xxh3, or jamo n-grams through
/// [`mix`]), so a shingle's bin and value come from its hash xor the mixed seed, without
/// another mix. A bin still at `u32::MAX` counts as empty (a real minimum of `u32::MAX`, one
/// chance in 2³² per bin, is treated the same on every path).
pub struct OphSketch<'a> {
    out: &'a mut [u32],
    s: u64,
}

impl<'a> OphSketch<'a> {
    /// Starts a signature in `out` (one bin per element) under `seed`.
    pub fn new(seed: u64, out: &'a mut [u32]) -> Self {
        out.fill(u32::MAX);
        Self {
            out,
            s: mix(seed ^ 0x6f70_685f_7365_6564),
        }
    }

    /// Adds one shingle hash (repeats change nothing).
    #[inline(always)]
    pub fn push(&mut self, h: u64) {
        let k = self.out.len();
        let x = h ^ self.s;
        // The high 32 bits pick the bin; the low 32 bits are the value.
        let bin = bin_of(x, k);
        let v = x as u32;
        if let Some(b) = self.out.get_mut(bin)
            && v < *b
        {
            *b = v;
        }
    }

    /// Fills empty bins by optimal densification; returns how many bins were filled directly
    /// by shingles (all of them: the estimate has its full `k` independent-looking bins).
    pub fn finish(self) -> u32 {
        let k = self.out.len();
        let direct = self.out.iter().filter(|&&v| v != u32::MAX).count() as u32;
        if direct == 0 || direct as usize == k {
            return direct;
        }
        let src: Vec<u32> = self.out.to_vec();
        let filled = |j: usize| src[j] != u32::MAX;
        // Probe bins in a seeded order that depends only on (i, attempt): every document
        // borrows from the same sequence, so equal sets give equal signatures. The first
        // probes of every bin come from a per-thread table.
        let s = self.s;
        let probe = |i: usize, attempt: u64| bin_of(mix(s ^ (((i as u64) << 32) | attempt)), k);
        with_probes(s, k, probe, |table| {
            for i in 0..k {
                if filled(i) {
                    continue;
                }
                let first = table.and_then(|t| {
                    t[i * PROBES..(i + 1) * PROBES]
                        .iter()
                        .map(|&j| j as usize)
                        .find(|&j| filled(j))
                });
                let j = first.unwrap_or_else(|| {
                    let from = if table.is_some() { PROBES as u64 } else { 0 };
                    (from..)
                        .map(|attempt| probe(i, attempt))
                        .find(|&j| filled(j))
                        .expect("some bin is filled")
                });
                self.out[i] = src[j];
            }
        });
        direct
    }
}

/// Densification probes kept per bin in the table.
const PROBES: usize = 32;

/// Calls `f` with the table of the first [`PROBES`] probes of every bin for `(s, k)` (built on
/// first use in this thread; a few recent ones are kept), or `None` when `k` is too large for it.
fn with_probes<R>(
    s: u64,
    k: usize,
    probe: impl Fn(usize, u64) -> usize,
    f: impl FnOnce(Option<&[u16]>) -> R,
) -> R {
    type Tables = Vec<(u64, usize, Vec<u16>)>;
    thread_local! {
        static TABLES: std::cell::RefCell<Tables> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if k > 1 << 16 {
        return f(None);
    }
    TABLES.with_borrow_mut(|tables| {
        let at = match tables.iter().position(|t| t.0 == s && t.1 == k) {
            Some(at) => at,
            None => {
                if tables.len() >= 4 {
                    tables.remove(0);
                }
                let t = (0..k)
                    .flat_map(|i| (0..PROBES as u64).map(move |a| (i, a)))
                    .map(|(i, a)| probe(i, a) as u16)
                    .collect();
                tables.push((s, k, t));
                tables.len() - 1
            }
        };
        f(Some(&tables[at].2))
    })
}

/// Writes the OPH signature of `hashes` into `out` (one bin per element) under `seed`; returns
/// the number of bins filled directly (before densification). An empty set gives `u32::MAX`
/// everywhere.
pub fn sign_oph(hashes: &[u64], seed: u64, out: &mut [u32]) -> u32 {
    if out.is_empty() {
        return 0;
    }
    let mut sk = OphSketch::new(seed, out);
    for &h in hashes {
        sk.push(h);
    }
    sk.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::minhash::estimate;

    fn set(range: std::ops::Range<u64>) -> Vec<u64> {
        range
            .map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()))
            .collect()
    }

    fn sig(h: &[u64], seed: u64, k: usize) -> Vec<u32> {
        let mut out = vec![0; k];
        sign_oph(h, seed, &mut out);
        out
    }

    #[test]
    fn equal_sets_equal_signatures_and_order_does_not_matter() {
        let a = set(0..500);
        let mut b = a.clone();
        b.reverse();
        assert_eq!(sig(&a, 1, 128), sig(&b, 1, 128));
        assert_ne!(
            sig(&a, 1, 128),
            sig(&a, 2, 128),
            "the seed changes the signature"
        );
        assert_eq!(sig(&[], 1, 16), vec![u32::MAX; 16]);
    }

    #[test]
    fn densified_small_sets_have_no_empty_bins() {
        // 10 elements into 128 bins: most bins borrow.
        let s = sig(&set(0..10), 7, 128);
        assert!(s.iter().all(|&v| v != u32::MAX));
        let distinct: std::collections::BTreeSet<u32> = s.iter().copied().collect();
        assert!(distinct.len() <= 10);
    }

    #[test]
    fn estimate_is_close_to_jaccard_for_large_and_small_sets() {
        // Jaccard of 0..n and (n·(1−f))..(2n − n·(1−f)) style overlaps, averaged over seeds.
        for (n, overlap) in [(2000u64, 1600u64), (2000, 400), (60, 48), (30, 10)] {
            let a = set(0..n);
            let b = set(n - overlap..2 * n - overlap);
            let exact = overlap as f64 / (2 * n - overlap) as f64;
            let mean: f64 = (0..40)
                .map(|seed| estimate(&sig(&a, seed, 128), &sig(&b, seed, 128)))
                .sum::<f64>()
                / 40.0;
            assert!(
                (mean - exact).abs() < 0.03,
                "n {n} overlap {overlap}: exact {exact:.3} mean estimate {mean:.3}"
            );
        }
    }
}
