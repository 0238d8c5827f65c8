//! Union-find over verified pairs. Roots are always the smallest index of their set, so the
//! result does not depend on the order in which pairs arrive.

/// Disjoint sets over `0..n`.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    /// `n` singleton sets.
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    /// The root (smallest member) of `x`'s set, compressing the path.
    pub fn find(&mut self, x: usize) -> usize {
        let mut root = x;
        while self.parent[root] != root {
            root = self.parent[root];
        }
        let mut y = x;
        while self.parent[y] != root {
            let next = self.parent[y];
            self.parent[y] = root;
            y = next;
        }
        root
    }

    /// Merges the sets of `a` and `b`; returns whether they were separate.
    pub fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi] = lo;
        true
    }

    /// Sets with more than one member, each sorted, ordered by their smallest member.
    pub fn groups(&mut self) -> Vec<Vec<usize>> {
        let n = self.parent.len();
        let mut by_root: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for x in 0..n {
            let r = self.find(x);
            // The root is the smallest member, so it is seen before the others.
            if r != x {
                by_root.entry(r).or_insert_with(|| vec![r]).push(x);
            }
        }
        by_root.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitive_groups_independent_of_order() {
        let pairs = [(5, 3), (3, 1), (7, 8), (2, 2)];
        let mut a = UnionFind::new(10);
        for &(x, y) in &pairs {
            a.union(x, y);
        }
        let mut b = UnionFind::new(10);
        for &(x, y) in pairs.iter().rev() {
            b.union(y, x);
        }
        assert_eq!(a.groups(), vec![vec![1, 3, 5], vec![7, 8]]);
        assert_eq!(a.groups(), b.groups());
        assert_eq!(a.find(5), 1);
        assert!(!a.union(1, 5));
    }
}
