//! Running independent pieces of model work (the shards of a training batch, evaluation batches)
//! on several threads with results in input order, so what they add up to does not depend on the
//! number of threads.

use std::sync::{Arc, Mutex};

/// Threads model work uses: rayon's thread count (`RAYON_NUM_THREADS`, else every core).
pub fn model_threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Worker `k`'s one-thread pool, created on first use and kept for the life of the process:
/// a training step calls [`map_ordered`] for every micro-batch, and fresh threads each time
/// would start with cold caches and fresh allocator arenas (page faults on every step).
/// `None` when the pool cannot be built (the work then runs on the calling thread).
fn worker_pool(k: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Vec<Arc<rayon::ThreadPool>>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    while pools.len() <= k {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "yunmin-model".into())
            .build()
            .ok()?;
        pools.push(Arc::new(pool));
    }
    Some(Arc::clone(&pools[k]))
}

/// `f(i, item)` for every item, on up to [`model_threads`] scoped threads (thread `k` takes items
/// `k`, `k + n`, …), results in item order. Dedicated threads rather than rayon tasks: a rayon
/// worker waiting inside a parallel matmul may start another task on the same thread, which would
/// interleave thread-local state (the dropout generator) between items.
pub fn map_ordered<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let n = model_threads().min(items.len());
    if n <= 1 {
        let run = || items.iter().enumerate().map(|(i, x)| f(i, x)).collect();
        // Outside a rayon pool (a command's main thread), the items run on a worker of the
        // global pool, so the kernels' parallel loops inside run in place on that worker
        // instead of handing every op to it and waiting (a context switch per op).
        return if rayon::current_thread_index().is_none() {
            rayon::scope(|_| run())
        } else {
            run()
        };
    }
    let f = &f;
    let mut parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|k| {
                s.spawn(move || {
                    let run = || {
                        (k..items.len())
                            .step_by(n)
                            .map(|i| (i, f(i, &items[i])))
                            .collect::<Vec<_>>()
                    };
                    // The kernels inside (burn-flex's rayon-parallel matrix products and
                    // elementwise ops) run on one thread of worker `k`'s own pool: the
                    // workers already share the cores, and nested pools would oversubscribe
                    // them.
                    match worker_pool(k) {
                        Some(pool) => pool.install(run),
                        None => run(),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for part in parts.drain(..) {
        for (i, r) in part {
            out[i] = Some(r);
        }
    }
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_item_order() {
        let items: Vec<usize> = (0..37).collect();
        let out = super::map_ordered(&items, |i, x| (i, x * 2));
        assert_eq!(out, items.iter().map(|&x| (x, x * 2)).collect::<Vec<_>>());
        assert!(super::map_ordered(&[] as &[u8], |_, x| *x).is_empty());
    }

    #[test]
    fn kernels_inside_a_worker_stay_on_its_thread() {
        // Run on a pool of 2 so that map_ordered starts two workers whatever the machine.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let seen = pool.install(|| {
            assert_eq!(super::model_threads(), 2);
            super::map_ordered(&[0u8; 6], |_, _| rayon::current_num_threads())
        });
        assert_eq!(
            seen,
            vec![1; 6],
            "each worker's rayon calls see a one-thread pool"
        );
    }
}
