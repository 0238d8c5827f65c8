//! Exact n-gram counting shared by BLEU and ROUGE. Tokens of one segment are interned into
//! small integer ids; an n-gram (n ≤ 4) is packed into one integer with a lane per token
//! (id + 1, unused lanes 0), so n-grams of different orders never collide: a `u64` with 16-bit
//! lanes when the segment has fewer than 65 535 distinct tokens (always, for sentences), else a
//! `u128` with 32-bit lanes. Counting is a sort
//! plus run-length pass: exact, allocation-light and cache-friendly for sentence-sized inputs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small multiplicative hasher (the rustc "Fx" hash) for short token strings: interning maps
/// live for one segment and never see adversarial keys, so SipHash's cost buys nothing here.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Highest n-gram order a packed key can hold.
pub const MAX_ORDER: usize = 4;

/// Marks a token that is not in the vocabulary (n-grams containing it are skipped).
pub const UNKNOWN: u32 = u32::MAX;

/// Interns tokens of one segment into dense ids.
#[derive(Debug, Default)]
pub struct Vocab<'a> {
    map: FxHashMap<&'a str, u32>,
}

impl<'a> Vocab<'a> {
    /// An empty vocabulary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Id of `tok`, adding it if new.
    pub fn intern(&mut self, tok: &'a str) -> u32 {
        let n = self.map.len() as u32;
        *self.map.entry(tok).or_insert(n)
    }

    /// Id of `tok`, or [`UNKNOWN`].
    pub fn lookup(&self, tok: &str) -> u32 {
        self.map.get(tok).copied().unwrap_or(UNKNOWN)
    }

    /// Number of distinct tokens.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

/// An n-gram (n ≤ [`MAX_ORDER`]) packed into one integer: lane `j` holds `id + 1` of the
/// `j`-th token (0 = no token), so keys sort and compare cheaply. `u64` has 16-bit lanes (ids
/// below [`NgramKey::MAX_ID`]); `u128` has 32-bit lanes (any id).
pub trait NgramKey: Copy + Ord {
    /// Largest id the lanes hold.
    const MAX_ID: u32;
    /// The key of `ids` (1 ≤ len ≤ [`MAX_ORDER`]); `None` if one is [`UNKNOWN`] or too large.
    fn pack(ids: &[u32]) -> Option<Self>;
    /// Number of tokens in the key.
    fn order(self) -> usize;
}

impl NgramKey for u128 {
    const MAX_ID: u32 = u32::MAX - 1;
    #[inline]
    fn pack(ids: &[u32]) -> Option<u128> {
        let mut k = 0u128;
        for (j, &id) in ids.iter().enumerate() {
            if id == UNKNOWN {
                return None;
            }
            k |= ((id as u128) + 1) << (32 * j);
        }
        Some(k)
    }
    #[inline]
    fn order(self) -> usize {
        (0..MAX_ORDER)
            .take_while(|j| (self >> (32 * j)) as u32 != 0)
            .count()
    }
}

impl NgramKey for u64 {
    const MAX_ID: u32 = 0xFFFE;
    #[inline]
    fn pack(ids: &[u32]) -> Option<u64> {
        let mut k = 0u64;
        for (j, &id) in ids.iter().enumerate() {
            if id > Self::MAX_ID {
                return None;
            }
            k |= ((id as u64) + 1) << (16 * j);
        }
        Some(k)
    }
    #[inline]
    fn order(self) -> usize {
        (0..MAX_ORDER)
            .take_while(|j| (self >> (16 * j)) as u16 != 0)
            .count()
    }
}

/// Order of a packed key (number of non-empty lanes).
#[inline]
pub fn order<K: NgramKey>(key: K) -> usize {
    key.order()
}

/// Appends the keys of every n-gram of `ids` with `min_n ≤ n ≤ max_n`.
pub fn push_keys<K: NgramKey>(ids: &[u32], min_n: usize, max_n: usize, out: &mut Vec<K>) {
    for n in min_n..=max_n.min(ids.len()) {
        out.extend(ids.windows(n).filter_map(K::pack));
    }
}

/// Sorts `keys` and returns `(key, count)` runs, sorted by key.
pub fn count<K: NgramKey>(keys: &mut [K]) -> Vec<(K, u32)> {
    keys.sort_unstable();
    let mut out: Vec<(K, u32)> = Vec::with_capacity(keys.len());
    for &k in keys.iter() {
        match out.last_mut() {
            Some((last, c)) if *last == k => *c += 1,
            _ => out.push((k, 1)),
        }
    }
    out
}

/// Merges sorted count lists taking the maximum count per key (sacreBLEU's multi-reference
/// clipping counts).
pub fn max_merge<K: NgramKey>(a: &[(K, u32)], b: &[(K, u32)]) -> Vec<(K, u32)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push((a[i].0, a[i].1.max(b[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Calls `f(key, min(count_a, count_b))` for every key present in both sorted lists.
pub fn for_each_common<K: NgramKey>(a: &[(K, u32)], b: &[(K, u32)], mut f: impl FnMut(K, u32)) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                f(a[i].0, a[i].1.min(b[j].1));
                i += 1;
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_orders_and_counts() {
        assert_eq!(order(u128::pack(&[0]).unwrap()), 1);
        assert_eq!(order(u128::pack(&[5, 0, 7, 1]).unwrap()), 4);
        assert_ne!(u128::pack(&[0, 0]), u128::pack(&[0]));
        assert_eq!(u128::pack(&[1, UNKNOWN]), None);
        assert_eq!(order(u64::pack(&[5, 0, 7, 1]).unwrap()), 4);
        assert_ne!(u64::pack(&[0, 0]), u64::pack(&[0]));
        assert_eq!(u64::pack(&[1, 0xFFFF]), None, "too large for a 16-bit lane");
        assert_eq!(u64::pack(&[1, UNKNOWN]), None);
        let mut keys: Vec<u128> = Vec::new();
        push_keys(&[0, 1, 0, 1], 1, 2, &mut keys);
        let c = count(&mut keys);
        // unigrams 0×2, 1×2; bigrams (0,1)×2, (1,0)×1
        assert_eq!(c.len(), 4);
        assert_eq!(c.iter().map(|x| x.1).sum::<u32>(), 7);
        let m = max_merge::<u128>(&[(1, 2), (3, 1)], &[(1, 1), (2, 5)]);
        assert_eq!(m, vec![(1, 2), (2, 5), (3, 1)]);
        let mut common = Vec::new();
        for_each_common(&m, &[(2, 3), (3, 4)], |k, c| common.push((k, c)));
        assert_eq!(common, vec![(2, 3), (3, 1)]);
    }
}
