//! The Redis LSH index: one Redis set per bucket (`<namespace>:<band>:<hash>`), members are the
//! documents' integer keys (stored compactly as Redis intsets). Inserts (`SADD`) and queries
//! (`SMEMBERS`) go in pipelined batches. Several worker processes may insert into one
//! namespace at once: sets make inserts idempotent and order-free.

use super::{BucketKey, LshIndex};
use crate::Result;
use crate::dedup::DedupError;
use std::time::Duration;

/// A Redis-backed index.
pub struct RedisIndex {
    url: String,
    namespace: String,
    batch: usize,
    con: redis::Connection,
}

impl std::fmt::Debug for RedisIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisIndex")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl RedisIndex {
    /// Connects to `url` (errors name it) with keys under `namespace`, `batch` commands per
    /// pipeline.
    pub fn connect(url: &str, namespace: &str, batch: usize) -> Result<Self> {
        let err = |op: &'static str, e: redis::RedisError| DedupError::Redis {
            url: url.into(),
            op,
            msg: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(|e| err("connect", e))?;
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(5))
            .map_err(|e| err("connect", e))?;
        con.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| err("connect", e))?;
        con.set_write_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| err("connect", e))?;
        redis::cmd("PING")
            .query::<String>(&mut con)
            .map_err(|e| err("connect", e))?;
        Ok(Self {
            url: url.into(),
            namespace: namespace.into(),
            batch: batch.max(1),
            con,
        })
    }

    fn key(&self, band: u16, hash: u64) -> String {
        format!("{}:{band}:{hash:016x}", self.namespace)
    }

    fn err(&self, op: &'static str, e: redis::RedisError) -> crate::Error {
        DedupError::Redis {
            url: self.url.clone(),
            op,
            msg: e.to_string(),
        }
        .into()
    }
}

impl LshIndex for RedisIndex {
    fn describe(&self) -> String {
        format!("{} (namespace {})", self.url, self.namespace)
    }

    fn insert(&mut self, keys: &[u64], bands: &[u64]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let b = bands.len() / keys.len();
        let mut pipe = redis::pipe();
        let mut n = 0;
        for (i, &k) in keys.iter().enumerate() {
            for j in 0..b {
                pipe.cmd("SADD")
                    .arg(self.key(j as u16, bands[i * b + j]))
                    .arg(k as i64)
                    .ignore();
                n += 1;
                if n >= self.batch {
                    pipe.exec(&mut self.con)
                        .map_err(|e| self.err("insert", e))?;
                    pipe = redis::pipe();
                    n = 0;
                }
            }
        }
        if n > 0 {
            pipe.exec(&mut self.con)
                .map_err(|e| self.err("insert", e))?;
        }
        Ok(())
    }

    fn members(&mut self, probes: &[BucketKey]) -> Result<Vec<Vec<u64>>> {
        let mut out = Vec::with_capacity(probes.len());
        for chunk in probes.chunks(self.batch) {
            let mut pipe = redis::pipe();
            for &(j, h) in chunk {
                pipe.cmd("SMEMBERS").arg(self.key(j, h));
            }
            let res: Vec<Vec<i64>> = pipe
                .query(&mut self.con)
                .map_err(|e| self.err("query", e))?;
            out.extend(res.into_iter().map(|mut v| {
                v.sort_unstable();
                v.into_iter().map(|x| x as u64).collect()
            }));
        }
        Ok(out)
    }

    fn clear(&mut self) -> Result<()> {
        let pattern = format!("{}:*", self.namespace);
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(10_000)
                .query(&mut self.con)
                .map_err(|e| self.err("clear", e))?;
            if !keys.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&keys)
                    .exec(&mut self.con)
                    .map_err(|e| self.err("clear", e))?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}
