//! A real S3 protocol server for tests and benchmarks: `s3s` + `s3s-fs` in process on
//! 127.0.0.1 (buckets are the directories under a root). Optionally cuts object bodies off
//! after a number of bytes, the way a dropped connection does, to exercise ranged-GET resume.

use bytes::Bytes;
use futures::Stream;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// Access key the test server accepts.
pub const ACCESS_KEY: &str = "yunmin-test-access";
/// Secret key the test server accepts.
pub const SECRET_KEY: &str = "yunmin-test-secret";

/// Cut the bodies of the first `times` GETs whose key contains `key_contains` after
/// `after_bytes` bytes.
#[derive(Debug, Clone)]
pub struct Cut {
    /// Substring of the keys affected.
    pub key_contains: String,
    /// Body bytes sent before the connection is dropped.
    pub after_bytes: usize,
    /// How many GETs are cut (later ones complete).
    pub times: usize,
}

/// Counters of what the server did.
#[derive(Debug, Default)]
pub struct Stats {
    /// GetObject requests.
    pub gets: AtomicUsize,
    /// GetObject requests with a Range header.
    pub ranged_gets: AtomicUsize,
    /// Bodies cut off.
    pub cuts: AtomicUsize,
    /// ListObjectsV2 requests.
    pub lists: AtomicUsize,
    /// UploadPart requests.
    pub parts: AtomicUsize,
    /// Multipart uploads completed.
    pub completed_multipart: AtomicUsize,
}

struct Flaky {
    inner: s3s_fs::FileSystem,
    cut: Option<Cut>,
    stats: Arc<Stats>,
}

struct CutStream {
    inner: StreamingBlob,
    left: usize,
    done: bool,
}

impl Stream for CutStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.left == 0 {
            self.done = true;
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection cut by the test server",
            ))));
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(mut b))) => {
                if b.len() > self.left {
                    b.truncate(self.left);
                }
                self.left -= b.len();
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[async_trait::async_trait]
impl S3 for Flaky {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.inner.head_object(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.inner.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.inner.list_objects(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.inner.get_bucket_location(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.inner.put_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.inner.delete_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.stats.parts.fetch_add(1, Ordering::SeqCst);
        self.inner.upload_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let r = self.inner.complete_multipart_upload(req).await;
        if r.is_ok() {
            self.stats
                .completed_multipart
                .fetch_add(1, Ordering::SeqCst);
        }
        r
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.stats.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list_objects_v2(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.stats.gets.fetch_add(1, Ordering::SeqCst);
        if req.input.range.is_some() {
            self.stats.ranged_gets.fetch_add(1, Ordering::SeqCst);
        }
        let key = req.input.key.clone();
        let mut resp = self.inner.get_object(req).await?;
        if let Some(cut) = &self.cut
            && key.contains(&cut.key_contains)
        {
            let n = self.stats.cuts.fetch_add(1, Ordering::SeqCst);
            if n < cut.times {
                if let Some(body) = resp.output.body.take() {
                    let s = CutStream {
                        inner: body,
                        left: cut.after_bytes,
                        done: false,
                    };
                    resp.output.body = Some(StreamingBlob::wrap(s));
                }
            } else {
                self.stats.cuts.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Ok(resp)
    }
}

/// A running server; stopped when dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Directory whose subdirectories are the buckets.
    pub root: PathBuf,
    /// What the server did.
    pub stats: Arc<Stats>,
    rt: Option<tokio::runtime::Runtime>,
}

impl S3Server {
    /// Serves `root` on 127.0.0.1 (port 0: any free port) with the test credentials.
    pub fn start(root: &Path, cut: Option<Cut>) -> Self {
        Self::start_on(root, 0, ACCESS_KEY, SECRET_KEY, cut).expect("start the S3 test server")
    }

    /// Serves `root` on `127.0.0.1:port` with the given credentials.
    pub fn start_on(
        root: &Path,
        port: u16,
        access: &str,
        secret: &str,
        cut: Option<Cut>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let stats = Arc::new(Stats::default());
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut b = s3s::service::S3ServiceBuilder::new(Flaky {
            inner: fs,
            cut,
            stats: stats.clone(),
        });
        b.set_auth(s3s::auth::SimpleAuth::from_single(
            access.to_string(),
            secret.to_string(),
        ));
        let service = b.build();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(Self {
            endpoint: format!("http://{addr}"),
            root: root.to_path_buf(),
            stats,
            rt: Some(rt),
        })
    }

    /// Writes an object directly into the served directory.
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let p = self.root.join(bucket).join(key);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("create bucket dir");
        std::fs::write(p, bytes).expect("write object");
    }

    /// Environment for a client of this server (credentials, region, no profile files).
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        credentials_env(ACCESS_KEY, SECRET_KEY)
    }
}

/// Environment variables giving an AWS client these credentials and nothing else from the machine.
pub fn credentials_env(access: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", access.to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        (
            "AWS_CONFIG_FILE",
            "/nonexistent/yunmin-aws-config".to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/yunmin-aws-credentials".to_string(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
    ]
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
