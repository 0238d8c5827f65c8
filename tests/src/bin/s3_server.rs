//! `s3-server`: serves directories over the S3 protocol on 127.0.0.1 for benchmarks.
//!
//! ```text
//! s3-server --bucket NAME=DIR [--bucket NAME=DIR]… [--port 0] [--root DIR]
//! ```
//! Each bucket is a symlink to its directory inside the server root (a temporary directory
//! unless `--root` is given). Prints `endpoint http://127.0.0.1:PORT` and the credentials, then
//! serves until killed. Credentials: `yunmin-tests`' ACCESS_KEY / SECRET_KEY.

use std::path::PathBuf;
use yunmin_tests::s3::{ACCESS_KEY, S3Server, SECRET_KEY};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut buckets: Vec<(String, PathBuf)> = Vec::new();
    let mut root: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--port" => {
                port = val()
                    .parse()
                    .unwrap_or_else(|_| usage("--port must be a number"))
            }
            "--root" => root = Some(PathBuf::from(val())),
            "--bucket" => {
                let v = val();
                let (n, d) = v
                    .split_once('=')
                    .unwrap_or_else(|| usage("--bucket takes NAME=DIR"));
                let d = std::fs::canonicalize(d).unwrap_or_else(|e| usage(&format!("{d}: {e}")));
                buckets.push((n.to_string(), d));
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let tmp = tempfile::tempdir().expect("temporary root");
    let root = root.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root).expect("create root");
    for (name, dir) in &buckets {
        let link = root.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(dir, &link).expect("link bucket");
        }
    }
    let server =
        S3Server::start_on(&root, port, ACCESS_KEY, SECRET_KEY, None).expect("start server");
    println!("endpoint {}", server.endpoint);
    println!("AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY={SECRET_KEY}");
    use std::io::Write;
    std::io::stdout().flush().ok();
    loop {
        std::thread::park();
    }
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("error: {msg}");
    }
    eprintln!("usage: s3-server --bucket NAME=DIR [--bucket NAME=DIR]… [--port N] [--root DIR]");
    std::process::exit(2)
}
