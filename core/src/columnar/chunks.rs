//! Bounded chunks of input lines: at most `max_rows` lines and about `max_bytes` bytes (a single
//! longer line makes a chunk of its own), each line remembered with its shard and line number.

use crate::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

/// Where a line of a chunk sits: its shard, 1-based line number and byte range in the chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineRef {
    pub shard: usize,
    pub line: u64,
    pub start: usize,
    pub end: usize,
}

/// Non-blank lines, each followed by `\n` in `buf`.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub buf: Vec<u8>,
    pub lines: Vec<LineRef>,
    /// Bytes read from the shards for this chunk (blank lines and line ends included).
    pub raw_bytes: u64,
}

impl Chunk {
    /// The bytes of line `i` (without its newline).
    pub fn line(&self, i: usize) -> &[u8] {
        let l = self.lines[i];
        &self.buf[l.start..l.end]
    }
}

/// Reads the shards in order, chunk by chunk.
pub(crate) struct ChunkReader {
    pub shards: Vec<PathBuf>,
    next_shard: usize,
    cur: Option<(usize, BufReader<File>, u64)>,
    max_rows: usize,
    max_bytes: usize,
    /// Chunks returned so far: the first ones are smaller (see [`FIRST_CHUNK_BYTES`]).
    chunks: u32,
}

/// The first chunk holds at most this many bytes, each next one twice as many up to the
/// configured size: the encoders downstream get work sooner.
const FIRST_CHUNK_BYTES: usize = 1 << 20;

impl ChunkReader {
    pub fn new(shards: Vec<PathBuf>, max_rows: usize, max_bytes: usize) -> Self {
        Self {
            shards,
            next_shard: 0,
            cur: None,
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
            chunks: 0,
        }
    }

    /// The next chunk, or `None` at the end of the last shard.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let mut c = Chunk::default();
        // Doubling stops well before the shift could overflow.
        let ramp = match self.chunks {
            n @ 0..16 => FIRST_CHUNK_BYTES << n,
            _ => usize::MAX,
        };
        let max_bytes = ramp.min(self.max_bytes);
        self.chunks = self.chunks.saturating_add(1);
        while c.lines.len() < self.max_rows && c.buf.len() < max_bytes {
            if self.cur.is_none() {
                if self.next_shard >= self.shards.len() {
                    break;
                }
                let p = &self.shards[self.next_shard];
                let f = File::open(p).map_err(|e| Error::io("open", p, e))?;
                self.cur = Some((self.next_shard, BufReader::with_capacity(1 << 20, f), 0));
                self.next_shard += 1;
            }
            let (si, r, no) = self.cur.as_mut().expect("open shard");
            let start = c.buf.len();
            let n = r
                .read_until(b'\n', &mut c.buf)
                .map_err(|e| Error::io("read", &self.shards[*si], e))?;
            if n == 0 {
                self.cur = None;
                continue;
            }
            *no += 1;
            c.raw_bytes += n as u64;
            let mut end = c.buf.len();
            while end > start && matches!(c.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if c.buf[start..end].iter().all(|b| b.is_ascii_whitespace()) {
                c.buf.truncate(start);
                continue;
            }
            c.buf.truncate(end);
            c.buf.push(b'\n');
            c.lines.push(LineRef {
                shard: *si,
                line: *no,
                start,
                end,
            });
        }
        Ok(if c.raw_bytes == 0 { None } else { Some(c) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_row_and_byte_bounds_and_keep_line_numbers() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("part-00000.jsonl");
        let b = d.path().join("part-00001.jsonl");
        std::fs::write(&a, "l1\n\n  \nl4\r\nl5").unwrap();
        std::fs::write(&b, format!("{}\nm2\n", "x".repeat(100))).unwrap();
        let mut r = ChunkReader::new(vec![a, b], 2, 50);
        let c1 = r.next_chunk().unwrap().unwrap();
        assert_eq!(c1.lines.iter().map(|l| l.line).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(c1.line(1), b"l4");
        let c2 = r.next_chunk().unwrap().unwrap();
        assert_eq!(
            c2.lines
                .iter()
                .map(|l| (l.shard, l.line))
                .collect::<Vec<_>>(),
            [(0, 5), (1, 1)]
        );
        assert_eq!(c2.line(1).len(), 100, "a long line is one chunk's end");
        let c3 = r.next_chunk().unwrap().unwrap();
        assert_eq!(c3.line(0), b"m2");
        assert!(r.next_chunk().unwrap().is_none());
    }
}
