//! The Redis LSH index: one Redis set per bucket (`<namespace>:<band>:<hash>`), members are the
//! documents' integer keys (stored compactly as Redis intsets). Inserts go in pipelined batches of
//! one server-side script call per document (`SADD` into each of its band buckets); queries ask
//! for the union of a document's buckets (`SUNION`, one command per document) or, for bucket
//! lists, `SMEMBERS`. Several worker processes may insert into one
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
    insert_sha: String,
}

/// Adds ARGV[1] to every set in KEYS: one call inserts a document into all its buckets.
const INSERT_SCRIPT: &str =
    "for i = 1, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end return #KEYS";

/// Loads [`INSERT_SCRIPT`] into the server's script cache; returns its SHA1 for `EVALSHA`.
fn load_insert_script(con: &mut redis::Connection) -> redis::RedisResult<String> {
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(INSERT_SCRIPT)
        .query(con)
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
        let insert_sha = load_insert_script(&mut con).map_err(|e| err("connect", e))?;
        Ok(Self {
            url: url.into(),
            namespace: namespace.into(),
            batch: batch.max(1),
            con,
            insert_sha,
        })
    }

    /// Sends one pipeline of script calls; reloads the script once if the server lost it
    /// (restart or `SCRIPT FLUSH`).
    fn exec_inserts(&mut self, calls: &[(u64, Vec<String>)]) -> Result<()> {
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            for (k, keys) in calls {
                pipe.cmd("EVALSHA")
                    .arg(&self.insert_sha)
                    .arg(keys.len())
                    .arg(keys)
                    .arg(*k as i64)
                    .ignore();
            }
            match pipe.exec(&mut self.con) {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 0 && e.code() == Some("NOSCRIPT") => {
                    self.insert_sha =
                        load_insert_script(&mut self.con).map_err(|e| self.err("insert", e))?;
                }
                Err(e) => return Err(self.err("insert", e)),
            }
        }
        Ok(())
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
        let per_pipe = (self.batch / b.max(1)).max(1);
        let mut calls = Vec::with_capacity(per_pipe);
        for (i, &k) in keys.iter().enumerate() {
            let ks = (0..b)
                .map(|j| self.key(j as u16, bands[i * b + j]))
                .collect();
            calls.push((k, ks));
            if calls.len() >= per_pipe {
                self.exec_inserts(&calls)?;
                calls.clear();
            }
        }
        if !calls.is_empty() {
            self.exec_inserts(&calls)?;
        }
        Ok(())
    }

    fn union_members(&mut self, docs: &[&[BucketKey]]) -> Option<Result<Vec<Vec<u64>>>> {
        let per_pipe = (self.batch / docs.first().map_or(1, |d| d.len().max(1))).max(1);
        let mut out = Vec::with_capacity(docs.len());
        for chunk in docs.chunks(per_pipe) {
            let mut pipe = redis::pipe();
            for probes in chunk {
                let mut c = redis::cmd("SUNION");
                for &(j, h) in *probes {
                    c.arg(self.key(j, h));
                }
                pipe.add_command(c);
            }
            let res: Vec<Vec<i64>> = match pipe.query(&mut self.con) {
                Ok(r) => r,
                Err(e) => return Some(Err(self.err("query", e))),
            };
            out.extend(res.into_iter().map(|mut v| {
                v.sort_unstable();
                v.into_iter().map(|x| x as u64).collect()
            }));
        }
        Some(Ok(out))
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
