//! Line streaming over raw bytes: inputs are cut into chunks of whole lines without assuming
//! UTF-8 (each line is validated on its own later), with memory bounded on lines that never end.

use super::Compression;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A run of whole lines of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChunk {
    /// Index of the input in the resolved source list.
    pub source: usize,
    /// 1-based number of the first line in `data`.
    pub first_line: u64,
    /// Number of lines in `data`.
    pub lines: u64,
    /// The bytes: lines separated by `\n` (the last one may lack it at the end of the input).
    pub data: Vec<u8>,
    /// Set when `data` is the kept prefix of one line longer than the keep limit.
    pub oversize: Option<Oversize>,
}

/// A single line longer than the keep limit: only its first bytes are in the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// The line's full length in bytes (without the newline).
    pub total_bytes: u64,
}

impl LineChunk {
    /// The lines of the chunk (without the `\n` terminators), each with its line number.
    pub fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let data: &[u8] = &self.data;
        let body = data.strip_suffix(b"\n").unwrap_or(data);
        let n = if self.oversize.is_some() {
            1
        } else {
            self.lines as usize
        };
        let first = self.first_line;
        let mut it = body.split(|b| *b == b'\n');
        (0..n).map(move |i| (first + i as u64, it.next().unwrap_or(&[])))
    }
}

/// Counters of one input, shared with the reader thread.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Bytes read from storage (compressed size).
    pub raw_bytes: AtomicU64,
    /// Ranged-GET resumes after dropped connections (S3 only).
    pub resumes: AtomicU64,
}

/// A reader that counts the bytes passing through it.
pub struct CountingReader<R> {
    inner: R,
    counters: Arc<ReadCounters>,
}

impl<R: Read> CountingReader<R> {
    /// Wraps `inner`, adding to `counters.raw_bytes`.
    pub fn new(inner: R, counters: Arc<ReadCounters>) -> Self {
        Self { inner, counters }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counters
            .raw_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Wraps a reader with the decoder for `compression` (gzip members and zstd frames are read
/// to the end of the input).
pub fn decompress<'a>(
    r: impl Read + Send + 'a,
    compression: Compression,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    })
}

/// What [`chunk_lines`] read from one input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkTotals {
    /// Lines read.
    pub lines: u64,
    /// Decompressed bytes read (newlines included).
    pub bytes: u64,
}

/// Cuts `reader` into [`LineChunk`]s of about `chunk_bytes`, calling `emit` for each in order
/// (`emit` returns false to stop early). A line longer than `keep_line_bytes` is delivered alone
/// as an [`Oversize`] chunk holding its first `keep_line_bytes` bytes. A final line without a
/// newline counts as a line; an empty input has none.
pub fn chunk_lines(
    mut reader: impl Read,
    source: usize,
    chunk_bytes: usize,
    keep_line_bytes: usize,
    mut emit: impl FnMut(LineChunk) -> bool,
) -> std::io::Result<ChunkTotals> {
    let chunk_bytes = chunk_bytes.max(1);
    let read_size = (chunk_bytes / 4).clamp(64 << 10, 1 << 20);
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + read_size);
    let mut next_line = 1u64;
    let mut totals = ChunkTotals::default();
    // Bytes of `buf` known to hold no newline (the partial last line), so rescans are linear.
    let mut scanned = 0usize;
    // When set, we are skipping the rest of an over-long line: (kept prefix, bytes so far).
    let mut skipping: Option<(Vec<u8>, u64)> = None;
    let mut rbuf = vec![0u8; read_size];
    loop {
        let n = loop {
            match reader.read(&mut rbuf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            break;
        }
        totals.bytes += n as u64;
        let mut data = &rbuf[..n];
        if let Some((_, total)) = skipping.as_mut() {
            match memchr::memchr(b'\n', data) {
                None => {
                    *total += n as u64;
                    continue;
                }
                Some(p) => {
                    *total += p as u64;
                    let (kept, total) = skipping.take().expect("skipping");
                    let c = LineChunk {
                        source,
                        first_line: next_line,
                        lines: 1,
                        data: kept,
                        oversize: Some(Oversize { total_bytes: total }),
                    };
                    next_line += 1;
                    totals.lines += 1;
                    if !emit(c) {
                        return Ok(totals);
                    }
                    data = &data[p + 1..];
                }
            }
        }
        buf.extend_from_slice(data);
        if buf.len() < chunk_bytes {
            continue;
        }
        match memchr::memrchr(b'\n', &buf[scanned..]) {
            Some(p) => {
                let cut = scanned + p + 1;
                let tail = buf[cut..].to_vec();
                buf.truncate(cut);
                let lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
                let mut next = Vec::with_capacity(chunk_bytes + read_size);
                next.extend_from_slice(&tail);
                let data = std::mem::replace(&mut buf, next);
                let c = LineChunk {
                    source,
                    first_line: next_line,
                    lines,
                    data,
                    oversize: None,
                };
                next_line += lines;
                totals.lines += lines;
                scanned = 0;
                if !emit(c) {
                    return Ok(totals);
                }
            }
            None => {
                scanned = buf.len();
                if buf.len() > keep_line_bytes {
                    let total = buf.len() as u64;
                    buf.truncate(keep_line_bytes);
                    let kept = std::mem::take(&mut buf);
                    buf = Vec::with_capacity(chunk_bytes + read_size);
                    scanned = 0;
                    skipping = Some((kept, total));
                }
            }
        }
    }
    if let Some((kept, total)) = skipping.take() {
        let c = LineChunk {
            source,
            first_line: next_line,
            lines: 1,
            data: kept,
            oversize: Some(Oversize { total_bytes: total }),
        };
        totals.lines += 1;
        emit(c);
        return Ok(totals);
    }
    if !buf.is_empty() {
        let mut lines = memchr::memchr_iter(b'\n', &buf).count() as u64;
        if buf.last() != Some(&b'\n') {
            lines += 1;
        }
        totals.lines += lines;
        emit(LineChunk {
            source,
            first_line: next_line,
            lines,
            data: buf,
            oversize: None,
        });
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line number, bytes, oversize total).
    type CollectedLine = (u64, Vec<u8>, Option<u64>);

    fn collect(input: &[u8], chunk: usize, keep: usize) -> (Vec<CollectedLine>, ChunkTotals) {
        let mut out = Vec::new();
        let t = chunk_lines(input, 0, chunk, keep, |c| {
            let over = c.oversize.map(|o| o.total_bytes);
            for (n, l) in c.lines() {
                out.push((n, l.to_vec(), over));
            }
            true
        })
        .unwrap();
        (out, t)
    }

    #[test]
    fn every_line_once_in_order_across_chunk_sizes() {
        let mut input = Vec::new();
        for i in 0..5000u32 {
            input.extend_from_slice(
                format!("line {i} {}\n", "x".repeat((i % 37) as usize)).as_bytes(),
            );
        }
        input.extend_from_slice(b"\n\xff\xfe no newline at end");
        for chunk in [1024, 4096, 100_000, 10 << 20] {
            let (lines, t) = collect(&input, chunk, 1 << 20);
            assert_eq!(lines.len(), 5002, "chunk {chunk}");
            assert_eq!(t.lines, 5002);
            assert_eq!(t.bytes, input.len() as u64);
            for (i, (n, l, _)) in lines.iter().enumerate().take(5000) {
                assert_eq!(*n, i as u64 + 1);
                assert!(l.starts_with(format!("line {i} ").as_bytes()));
            }
            assert_eq!(lines[5000].1, b"");
            assert_eq!(lines[5001].1, b"\xff\xfe no newline at end");
        }
        assert_eq!(collect(b"", 1024, 1024).0.len(), 0);
        assert_eq!(collect(b"\n", 1024, 1024).0, vec![(1, vec![], None)]);
    }

    #[test]
    fn over_long_lines_keep_a_prefix_and_count_once() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', 300_000));
        input.extend_from_slice(b"\nafter\n");
        input.extend(std::iter::repeat_n(b'b', 200_000));
        let (lines, t) = collect(&input, 2048, 10_000);
        assert_eq!(t.lines, 4);
        assert_eq!(lines.len(), 4);
        assert_eq!(
            (lines[0].0, lines[0].1.as_slice(), lines[0].2),
            (1, &b"short"[..], None)
        );
        assert_eq!(
            (lines[1].0, lines[1].1.len(), lines[1].2),
            (2, 10_000, Some(300_000))
        );
        assert_eq!((lines[2].0, lines[2].1.as_slice()), (3, &b"after"[..]));
        assert_eq!(
            (lines[3].0, lines[3].1.len(), lines[3].2),
            (4, 10_000, Some(200_000))
        );
    }

    #[test]
    fn gzip_and_zstd_round_trip() {
        let text = b"{\"text\":\"\xea\xb0\x80\"}\n{\"text\":\"b\"}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, text).unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&text[..], 3).unwrap();
        for (bytes, c) in [(gz, Compression::Gzip), (zs, Compression::Zstd)] {
            let mut out = Vec::new();
            decompress(&bytes[..], c)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, text);
        }
    }
}
