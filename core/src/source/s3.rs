//! S3 (and S3-compatible servers): listing with pagination, streaming object bodies with
//! ranged-GET resume after a dropped connection, and uploads of finished output files.
//!
//! Credentials and region come from the standard AWS chain (environment, profile, …); an
//! `endpoint_url` selects an S3-compatible server with path-style addressing. The client runs on
//! its own small tokio runtime; object bodies reach synchronous readers through bounded
//! channels, so an object is never buffered whole.

use super::{Location, ReadCounters, S3Url, SourceConfig, SourceError, SourceItem, is_input_name};
use crate::Result;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Bytes, BytesMut};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A connected S3 client with its runtime.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    endpoint: String,
    rt: Arc<tokio::runtime::Runtime>,
    cfg: SourceConfig,
    multipart: Multipart,
}

/// When and how [`S3Store::upload`] splits a file into a multipart upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multipart {
    /// Files of at least this many bytes go up in parts. Default 64 MiB.
    pub threshold: u64,
    /// Bytes per part (the last may be smaller), 5 MiB – 5 GiB as S3 requires. Default 16 MiB.
    pub part_size: u64,
}

impl Default for Multipart {
    fn default() -> Self {
        Self {
            threshold: 64 << 20,
            part_size: 16 << 20,
        }
    }
}

/// Smallest part S3 accepts (all but the last part of an upload).
const MIN_PART: u64 = 5 << 20;

/// Most parts one multipart upload may have (an S3 limit).
const MAX_PARTS: u64 = 10_000;

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

const PERMANENT_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
];

/// Turns an SDK error into a [`SourceError`] naming the URL and the endpoint.
fn sdk_err<E>(
    err: SdkError<E, HttpResponse>,
    url: &str,
    op: &'static str,
    endpoint: &str,
) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let chain = DisplayErrorContext(&err).to_string();
    let (url, endpoint) = (url.to_string(), endpoint.to_string());
    match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("").to_string();
            let message = e.message().unwrap_or("").to_string();
            let bucket = S3Url::parse(&url).map(|u| u.bucket).unwrap_or_default();
            if code == "NoSuchBucket" {
                SourceError::NoSuchBucket {
                    url,
                    bucket,
                    endpoint,
                }
            } else if code == "NoSuchKey" || (status == Some(404) && op != "ListObjectsV2") {
                SourceError::NoSuchKey { url, endpoint }
            } else if PERMANENT_CODES.contains(&code.as_str()) || status == Some(403) {
                let code = if code.is_empty() {
                    format!("HTTP {}", status.unwrap_or(403))
                } else {
                    code
                };
                SourceError::AccessDenied {
                    url,
                    endpoint,
                    code,
                    message,
                }
            } else {
                SourceError::S3 {
                    url,
                    op,
                    endpoint,
                    reason: format!("{code} {message} (HTTP {status:?}): {chain}"),
                }
            }
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => SourceError::Unreachable {
            url,
            endpoint,
            reason: chain,
        },
        _ => SourceError::S3 {
            url,
            op,
            endpoint,
            reason: chain,
        },
    }
}

fn is_permanent(e: &SourceError) -> bool {
    matches!(
        e,
        SourceError::NoSuchBucket { .. }
            | SourceError::NoSuchKey { .. }
            | SourceError::AccessDenied { .. }
    )
}

impl S3Store {
    /// Builds a client from the standard AWS chain plus `cfg.endpoint_url` / `cfg.region`.
    pub fn connect(cfg: &SourceConfig) -> Result<Self> {
        cfg.validate()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("yunmin-s3")
            .enable_all()
            .build()
            .map_err(|e| SourceError::Config(format!("cannot start the S3 runtime: {e}")))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(cfg.connect_timeout_s.max(1)))
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
        if let Some(e) = &cfg.endpoint_url {
            loader = loader.endpoint_url(e.clone());
        }
        if let Some(r) = &cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let sdk = rt.block_on(loader.load());
        let mut b = aws_sdk_s3::config::Builder::from(&sdk);
        if sdk.region().is_none() {
            b = b.region(aws_config::Region::new("us-east-1"));
        }
        let endpoint_env = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok();
        let endpoint = cfg.endpoint_url.clone().or(endpoint_env);
        if endpoint.is_some() {
            b = b.force_path_style(true);
        }
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = endpoint.unwrap_or_else(|| format!("AWS S3 ({region})"));
        Ok(Self {
            client: Client::from_conf(b.build()),
            endpoint,
            rt: Arc::new(rt),
            cfg: cfg.clone(),
            multipart: Multipart::default(),
        })
    }

    /// Sets when uploads go up in parts (see [`Multipart`]).
    pub fn with_multipart(mut self, m: Multipart) -> Result<Self> {
        if !(MIN_PART..=5 << 30).contains(&m.part_size) {
            return Err(SourceError::Config(format!(
                "multipart part size {} bytes: S3 requires 5 MiB – 5 GiB",
                m.part_size
            ))
            .into());
        }
        self.multipart = m;
        Ok(self)
    }

    /// The endpoint as shown in messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Lists the inputs under `url`: the object itself when the key names one, else every
    /// JSONL object (optionally `.gz`/`.zst`) whose key starts with the prefix, following
    /// continuation tokens page by page. Sorted by key.
    pub fn list(&self, url: &S3Url) -> Result<Vec<SourceItem>> {
        let shown = url.to_string();
        let mut token: Option<String> = None;
        let mut all = Vec::new();
        loop {
            let req = self
                .client
                .list_objects_v2()
                .bucket(&url.bucket)
                .prefix(&url.key)
                .max_keys(self.cfg.page_size)
                .set_continuation_token(token.clone());
            let resp = self
                .rt
                .block_on(req.send())
                .map_err(|e| sdk_err(e, &shown, "ListObjectsV2", &self.endpoint))?;
            for o in resp.contents() {
                if let Some(k) = o.key() {
                    all.push((
                        k.to_string(),
                        o.size().map(|s| s.max(0) as u64),
                        o.e_tag().map(String::from),
                    ));
                }
            }
            crate::run::check_cancelled()?;
            if resp.is_truncated() == Some(true) {
                match resp.next_continuation_token() {
                    Some(t) => token = Some(t.to_string()),
                    None => {
                        return Err(SourceError::S3 {
                            url: shown,
                            op: "ListObjectsV2",
                            endpoint: self.endpoint.clone(),
                            reason: "truncated listing without a continuation token".into(),
                        }
                        .into());
                    }
                }
            } else {
                break;
            }
        }
        let exact: Vec<_> = all
            .iter()
            .filter(|(k, _, _)| *k == url.key && !url.key.is_empty())
            .cloned()
            .collect();
        let chosen = if exact.is_empty() {
            all.into_iter()
                .filter(|(k, _, _)| is_input_name(k))
                .collect()
        } else {
            exact
        };
        let mut items: Vec<SourceItem> = chosen
            .into_iter()
            .map(|(k, size, etag)| {
                let u = url.with_key(k);
                SourceItem::new(u.to_string(), Location::S3(u), size, etag)
            })
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        if items.is_empty() {
            return Err(SourceError::NoMatch {
                pattern: format!("{shown} (endpoint {})", self.endpoint),
            }
            .into());
        }
        Ok(items)
    }

    /// Opens an object for streaming. Bytes arrive through a bounded channel; a body that breaks
    /// off is resumed with `Range: bytes=<offset>-` up to `retries` times in a row without progress.
    pub fn open(&self, url: &S3Url, etag: Option<String>, counters: Arc<ReadCounters>) -> S3Reader {
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(16);
        let job = Download {
            client: self.client.clone(),
            url: url.clone(),
            etag,
            retries: self.cfg.retries,
            endpoint: self.endpoint.clone(),
            counters,
        };
        self.rt.spawn(job.run(tx));
        S3Reader {
            rx,
            cur: Bytes::new(),
            ended: false,
        }
    }

    /// Reads bytes `start..start + len` of an object with one ranged GET (retried up to
    /// `retries` times when the connection fails), checked against the ETag when one is given.
    pub fn get_range(
        &self,
        url: &S3Url,
        etag: Option<&str>,
        start: u64,
        len: u64,
    ) -> Result<Bytes> {
        let shown = url.to_string();
        if len == 0 {
            return Ok(Bytes::new());
        }
        let mut fails = 0usize;
        loop {
            let mut req = self
                .client
                .get_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .range(format!("bytes={start}-{}", start + len - 1));
            if let Some(t) = etag {
                req = req.if_match(t);
            }
            let got = self.rt.block_on(async {
                let resp = req
                    .send()
                    .await
                    .map_err(|e| sdk_err(e, &shown, "GetObject", &self.endpoint))?;
                let body = resp.body.collect().await.map_err(|e| SourceError::S3 {
                    url: shown.clone(),
                    op: "GetObject",
                    endpoint: self.endpoint.clone(),
                    reason: DisplayErrorContext(&e).to_string(),
                })?;
                Ok::<Bytes, SourceError>(body.into_bytes())
            });
            let reason = match got {
                Ok(b) if b.len() as u64 == len => return Ok(b),
                Ok(b) => format!("range of {len} bytes at {start} returned {} bytes", b.len()),
                Err(e) if is_permanent(&e) => return Err(e.into()),
                Err(e) => e.to_string(),
            };
            fails += 1;
            if fails > self.cfg.retries {
                return Err(SourceError::ResumeExhausted {
                    url: shown,
                    endpoint: self.endpoint.clone(),
                    offset: start,
                    size: "?".into(),
                    attempts: fails - 1,
                    reason,
                }
                .into());
            }
            tracing::warn!("{shown}: ranged GET at byte {start} failed ({reason}); retrying");
            std::thread::sleep(Duration::from_millis(50 << fails.min(6)));
        }
    }

    /// Uploads local files to their URLs, `in_flight` at a time. Files of at least
    /// [`Multipart::threshold`] bytes go up as multipart uploads, completed only after every
    /// part arrived (aborted on failure), so an object is either absent or whole.
    pub fn upload(&self, files: &[(PathBuf, S3Url)]) -> Result<()> {
        use futures::StreamExt;
        let jobs = files
            .iter()
            .cloned()
            .map(|(path, url)| self.upload_one(path, url));
        let results: Vec<std::result::Result<(), SourceError>> = self.rt.block_on(
            futures::stream::iter(jobs)
                .buffer_unordered(self.cfg.in_flight)
                .collect(),
        );
        for r in results {
            r?;
        }
        Ok(())
    }

    async fn upload_one(&self, path: PathBuf, url: S3Url) -> std::result::Result<(), SourceError> {
        let upload_err = |reason: String| SourceError::Upload {
            path: path.clone(),
            url: url.to_string(),
            reason,
        };
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|e| upload_err(e.to_string()))?
            .len();
        if size < self.multipart.threshold {
            let body = ByteStream::from_path(&path)
                .await
                .map_err(|e| upload_err(e.to_string()))?;
            self.client
                .put_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .body(body)
                .send()
                .await
                .map_err(|e| sdk_err(e, &url.to_string(), "PutObject", &self.endpoint))?;
            return Ok(());
        }
        let part = self.multipart.part_size;
        let parts = size.div_ceil(part);
        if parts > MAX_PARTS {
            return Err(upload_err(format!(
                "{size} bytes in parts of {part} bytes make {parts} parts; S3 allows {MAX_PARTS}: raise the part size"
            )));
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key)
            .send()
            .await
            .map_err(|e| sdk_err(e, &url.to_string(), "CreateMultipartUpload", &self.endpoint))?;
        let id = created
            .upload_id()
            .ok_or_else(|| upload_err("the server returned no upload id".into()))?
            .to_string();
        let sent = self.upload_parts(&path, &url, &id, size, part).await;
        let done = match sent {
            Ok(completed) => self
                .client
                .complete_multipart_upload()
                .bucket(&url.bucket)
                .key(&url.key)
                .upload_id(&id)
                .multipart_upload(
                    aws_sdk_s3::types::CompletedMultipartUpload::builder()
                        .set_parts(Some(completed))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    sdk_err(
                        e,
                        &url.to_string(),
                        "CompleteMultipartUpload",
                        &self.endpoint,
                    )
                }),
            Err(e) => Err(e),
        };
        if done.is_err() {
            // Nothing became visible; free the parts the server holds.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&url.bucket)
                .key(&url.key)
                .upload_id(&id)
                .send()
                .await;
        }
        done
    }

    async fn upload_parts(
        &self,
        path: &Path,
        url: &S3Url,
        id: &str,
        size: u64,
        part: u64,
    ) -> std::result::Result<Vec<aws_sdk_s3::types::CompletedPart>, SourceError> {
        let mut completed = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let len = part.min(size - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(aws_sdk_s3::primitives::Length::Exact(len))
                .build()
                .await
                .map_err(|e| SourceError::Upload {
                    path: path.to_path_buf(),
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
            let r = self
                .client
                .upload_part()
                .bucket(&url.bucket)
                .key(&url.key)
                .upload_id(id)
                .part_number(number)
                .content_length(len as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| sdk_err(e, &url.to_string(), "UploadPart", &self.endpoint))?;
            completed.push(
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(r.e_tag().map(String::from))
                    .build(),
            );
            crate::run::check_cancelled().map_err(|e| SourceError::Upload {
                path: path.to_path_buf(),
                url: url.to_string(),
                reason: e.to_string(),
            })?;
            offset += len;
            number += 1;
        }
        Ok(completed)
    }

    /// Uploads every file under `dir` (recursively, hidden names skipped) to `dest/<relative path>`.
    pub fn upload_dir(&self, dir: &Path, dest: &S3Url) -> Result<usize> {
        let mut files = Vec::new();
        collect_files(dir, dir, dest, &mut files)?;
        self.upload(&files)?;
        Ok(files.len())
    }
}

fn join_key(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{rel}")
    } else {
        format!("{prefix}/{rel}")
    }
}

fn collect_files(
    root: &Path,
    dir: &Path,
    dest: &S3Url,
    out: &mut Vec<(PathBuf, S3Url)>,
) -> Result<()> {
    if dir.is_file() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((dir.to_path_buf(), dest.with_key(join_key(&dest.key, &name))));
        return Ok(());
    }
    for e in std::fs::read_dir(dir).map_err(|e| crate::Error::io("list", dir, e))? {
        let p = e.map_err(|e| crate::Error::io("list", dir, e))?.path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if p.is_dir() {
            collect_files(root, &p, dest, out)?;
        } else {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((p.clone(), dest.with_key(join_key(&dest.key, &rel))));
        }
    }
    Ok(())
}

enum Piece {
    Data(Bytes),
    End,
    Fail(SourceError),
}

struct Download {
    client: Client,
    url: S3Url,
    etag: Option<String>,
    retries: usize,
    endpoint: String,
    counters: Arc<ReadCounters>,
}

impl Download {
    async fn run(self, tx: tokio::sync::mpsc::Sender<Piece>) {
        let shown = self.url.to_string();
        let mut offset = 0u64;
        let mut size: Option<u64> = None;
        let mut fails = 0usize;
        loop {
            let mut req = self
                .client
                .get_object()
                .bucket(&self.url.bucket)
                .key(&self.url.key);
            if offset > 0 {
                req = req.range(format!("bytes={offset}-"));
                if let Some(t) = &self.etag {
                    req = req.if_match(t.clone());
                }
            }
            let before = offset;
            let reason = match req.send().await {
                Err(e) => {
                    let se = sdk_err(e, &shown, "GetObject", &self.endpoint);
                    if is_permanent(&se)
                        || offset == 0 && !matches!(se, SourceError::Unreachable { .. })
                    {
                        let _ = tx.send(Piece::Fail(se)).await;
                        return;
                    }
                    se.to_string()
                }
                Ok(resp) => {
                    let len = resp.content_length().map(|l| l.max(0) as u64);
                    if let Some(l) = len {
                        size.get_or_insert(before + l);
                    }
                    let mut body = resp.body;
                    let end = len.map(|l| before + l);
                    // Small body frames are gathered into pieces of FLUSH_BYTES: fewer channel
                    // hand-offs between the runtime and the reading thread.
                    let mut pending = BytesMut::new();
                    let outcome = loop {
                        match body.next().await {
                            Some(Ok(b)) => {
                                offset += b.len() as u64;
                                pending.extend_from_slice(&b);
                                if pending.len() >= FLUSH_BYTES
                                    && tx
                                        .send(Piece::Data(pending.split().freeze()))
                                        .await
                                        .is_err()
                                {
                                    return;
                                }
                            }
                            Some(Err(e)) => break Err(DisplayErrorContext(&e).to_string()),
                            None if end.is_none_or(|e| offset >= e) => break Ok(()),
                            None => {
                                break Err(format!(
                                    "body ended at byte {offset} before its length {}",
                                    end.unwrap_or(0)
                                ));
                            }
                        }
                    };
                    // Every byte received is delivered; a resume starts after them.
                    if !pending.is_empty() && tx.send(Piece::Data(pending.freeze())).await.is_err()
                    {
                        return;
                    }
                    match outcome {
                        Ok(()) => {
                            let _ = tx.send(Piece::End).await;
                            return;
                        }
                        Err(reason) => reason,
                    }
                }
            };
            if offset > before {
                fails = 0;
            }
            fails += 1;
            if fails > self.retries {
                let err = SourceError::ResumeExhausted {
                    url: shown,
                    endpoint: self.endpoint.clone(),
                    offset,
                    size: size.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
                    attempts: fails - 1,
                    reason,
                };
                let _ = tx.send(Piece::Fail(err)).await;
                return;
            }
            self.counters.resumes.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "{shown}: connection dropped at byte {offset} ({reason}); resuming with a ranged GET"
            );
            tokio::time::sleep(Duration::from_millis(50 << fails.min(6))).await;
        }
    }
}

/// Size of the pieces an object body is handed to the reading thread in.
const FLUSH_BYTES: usize = 256 * 1024;

/// A synchronous reader over an object body streamed by the runtime.
pub struct S3Reader {
    rx: tokio::sync::mpsc::Receiver<Piece>,
    cur: Bytes,
    ended: bool,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => self.cur = b,
                Some(Piece::End) => self.ended = true,
                Some(Piece::Fail(e)) => return Err(std::io::Error::other(e)),
                None => {
                    return Err(std::io::Error::other(
                        "the S3 download task stopped unexpectedly",
                    ));
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}
