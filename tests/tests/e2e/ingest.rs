//! Ingest: the bundled sample, an adversarial file where every line must land in exactly one
//! output with the right reason, the Rhai API, and S3 against a real S3 protocol server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use yunmin_tests::s3::{Cut, S3Server, credentials_env};
use yunmin_tests::{repo_root, text, write_script, yunmin, yunmin_bin};

fn run_env(cwd: &Path, args: &[&str], env: &[(&'static str, String)]) -> Output {
    Command::new(yunmin_bin())
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("spawn yunmin")
}

fn json(p: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn jsonl(p: &Path) -> Vec<serde_json::Value> {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    t.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn docs(run: &Path) -> Vec<serde_json::Value> {
    let dir = run.join("data/dedup_ready");
    let mut shards: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    shards.sort();
    shards.iter().flat_map(|p| jsonl(p)).collect()
}

fn rejects(run: &Path) -> Vec<serde_json::Value> {
    jsonl(&run.join("data/rejected/rejected.jsonl"))
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", text(o));
}

fn sample_dir() -> PathBuf {
    repo_root().join("data/sample/raw")
}

fn line_count(p: &Path) -> u64 {
    let b = std::fs::read(p).unwrap();
    let n = b.iter().filter(|c| **c == b'\n').count() as u64;
    n + u64::from(!b.is_empty() && *b.last().unwrap() != b'\n')
}

#[test]
fn sample_corpus_every_line_accounted_and_reruns_identical() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let sample = sample_dir();
    let args = [
        "ingest",
        "--input",
        sample.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    let o = yunmin(d.path(), &args);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("valid"),
        "summary line: {}",
        text(&o)
    );
    let report = json(&run.join("ingest_report.json"));
    let sources = report["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 4, "{report:#}");
    let mut valid = 0;
    for s in sources {
        let name = s["source"].as_str().unwrap();
        let lines = s["lines"].as_u64().unwrap();
        assert_eq!(lines, line_count(Path::new(name)), "{name}: lines read");
        assert_eq!(
            lines,
            s["valid"].as_u64().unwrap() + s["rejected"].as_u64().unwrap(),
            "{name}"
        );
        for r in [
            "invalid_json",
            "missing_text",
            "empty_text",
            "wrong_type",
            "empty_line",
            "not_object",
        ] {
            assert_eq!(s["reasons"][r], 1, "{name}: {r}: {s:#}");
        }
        valid += s["valid"].as_u64().unwrap();
    }
    let docs1 = docs(&run);
    assert_eq!(docs1.len() as u64, valid);
    assert!(valid > 3000, "a few thousand documents: {valid}");
    let domains: BTreeSet<&str> = docs1
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, BTreeSet::from(["chat", "law", "news", "reviews"]));
    for doc in &docs1 {
        let src = doc["source"].as_str().unwrap();
        assert!(
            src.ends_with(&format!("{}.jsonl", doc["domain"].as_str().unwrap())),
            "domain from line or file stem: {doc}"
        );
        assert!(!doc["text"].as_str().unwrap().trim().is_empty());
    }
    assert!(
        docs1.iter().any(|d| d.get("rating").is_some()),
        "extra fields are kept"
    );
    assert_eq!(rejects(&run).len(), 24);
    let preview = json(&run.join("sample_preview.json"));
    assert_eq!(preview.as_array().unwrap().len(), 5);
    let stats = json(&run.join("data/dedup_ready/dataset.json"));
    assert_eq!(stats["documents"].as_u64().unwrap(), valid);

    // Unchanged inputs: cached. Forced: identical outputs. Another seed: another preview.
    let o = yunmin(d.path(), &args);
    ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("cached"),
        "{}",
        text(&o)
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&yunmin(d.path(), &forced));
    assert_eq!(docs(&run), docs1);
    assert_eq!(json(&run.join("sample_preview.json")), preview);
    let mut seeded = forced.clone();
    seeded.extend(["--seed", "7"]);
    ok(&yunmin(d.path(), &seeded));
    assert_ne!(
        json(&run.join("sample_preview.json")),
        preview,
        "the preview follows the seed"
    );
}

#[test]
fn adversarial_lines_each_land_once_with_the_right_reason() {
    use base64::Engine as _;
    let d = tempfile::tempdir().unwrap();
    let big = {
        let mut v = b"{\"text\":\"".to_vec();
        v.extend(std::iter::repeat_n(b'a', 50 << 20));
        v.extend_from_slice(b"\"}");
        v
    };
    let deep = format!(
        "{{\"text\":\"deep\",\"n\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    // (line bytes, expected outcome: None = valid, Some(reason))
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        ("\u{feff}{\"text\":\"BOM으로 시작하는 줄\"}".into(), None),
        (
            b"{\"text\":\"\xff\xfe\xfd\"}".to_vec(),
            Some("invalid_utf8"),
        ),
        ("{\"text\":\"잘린 JSON".into(), Some("invalid_json")),
        (b"[1,2,3]".to_vec(), Some("not_object")),
        ("\"문자열\"".into(), Some("not_object")),
        (b"42".to_vec(), Some("not_object")),
        (b"{\"text\":123}".to_vec(), Some("wrong_type")),
        (b"".to_vec(), Some("empty_line")),
        ("{\"text\":\"CRLF로 끝나는 줄\"}\r".into(), None),
        (big.clone(), Some("too_large")),
        (b"{\"text\":\"NUL\x00byte\"}".to_vec(), Some("invalid_json")),
        (b"\x00\x00\x00".to_vec(), Some("invalid_json")),
        (deep.into_bytes(), Some("too_deep")),
        (b"{\"body\":\"no text\"}".to_vec(), Some("missing_text")),
        (b"{\"text\":\"   \"}".to_vec(), Some("empty_text")),
        (b"\r".to_vec(), Some("empty_line")),
        (
            b"{\"text\":\"a\",\"text\":\"b\"}".to_vec(),
            Some("duplicate_key"),
        ),
        (b"{\"text\":[\"list\"]}".to_vec(), Some("wrong_type")),
        (
            b"{\"text\":\"ok\",\"id\":{\"x\":1}}".to_vec(),
            Some("wrong_type"),
        ),
        (b"null".to_vec(), Some("not_object")),
        (
            "{\"text\":\"마지막 줄, 줄바꿈 없음\",\"domain\":\"끝\"}".into(),
            None,
        ),
    ];
    let mut file = Vec::new();
    for (i, (l, _)) in cases.iter().enumerate() {
        file.extend_from_slice(l);
        if i + 1 < cases.len() {
            file.push(b'\n');
        }
    }
    let input = d.path().join("adversarial.jsonl");
    std::fs::write(&input, &file).unwrap();
    let run = d.path().join("run");
    let o = yunmin(
        d.path(),
        &[
            "ingest",
            "--input",
            input.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
        ],
    );
    ok(&o);

    let src = input.to_str().unwrap();
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    for doc in docs(&run) {
        let id = doc["id"].as_str().unwrap();
        let line: u64 = id
            .strip_prefix(&format!("{src}:"))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            seen.insert(line, "valid".into()).is_none(),
            "line {line} twice"
        );
        assert_eq!(doc["source"], src);
    }
    for r in rejects(&run) {
        let line = r["line"].as_u64().unwrap();
        assert_eq!(r["source"], src);
        assert!(
            seen.insert(line, r["reason"].as_str().unwrap().into())
                .is_none(),
            "line {line} twice"
        );
        // Lossless: the raw bytes come back exactly.
        let raw: Vec<u8> = match (r.get("raw"), r.get("raw_b64")) {
            (Some(s), None) => s.as_str().unwrap().as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_str().unwrap())
                .unwrap(),
            _ => panic!("exactly one of raw / raw_b64: {r}"),
        };
        assert!(
            raw == cases[line as usize - 1].0,
            "line {line}: raw bytes differ"
        );
        assert_eq!(r["bytes"].as_u64().unwrap(), raw.len() as u64);
    }
    let got: Vec<(u64, String)> = seen.into_iter().collect();
    let want: Vec<(u64, String)> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, r))| (i as u64 + 1, r.unwrap_or("valid").to_string()))
        .collect();
    assert_eq!(got, want);
    let valid = docs(&run);
    assert_eq!(valid[0]["text"], "BOM으로 시작하는 줄");
    assert_eq!(valid[1]["text"], "CRLF로 끝나는 줄");
    assert_eq!(valid[2]["domain"], "끝");
    assert_eq!(
        valid[0]["domain"], "adversarial",
        "domain from the file stem"
    );
    let report = json(&run.join("ingest_report.json"));
    assert_eq!(report["totals"]["lines"], cases.len());
    assert_eq!(report["totals"]["valid"], 3);
    assert_eq!(report["totals"]["reasons"]["not_object"], 4);
    assert_eq!(report["totals"]["bytes"], file.len());
}

#[test]
fn rhai_ingest_returns_a_dataset_handle_and_rejects_unknown_options() {
    let d = tempfile::tempdir().unwrap();
    let sample = sample_dir();
    let news = sample.join("news.jsonl");
    let s = write_script(
        d.path(),
        "ingest.rhai",
        &format!(
            "let ds = ingest([\"{}\", \"{}\"], #{{ shard_docs: 500, max_line_bytes: 100000 }});\n\
             print(`count=${{ds.count()}}`);\n\
             print(`domains=${{ds.domains()}}`);\n\
             print(`shards=${{ds.shards().len()}}`);\n\
             let r = ingest_report();\n\
             print(`rejected=${{r.totals.rejected}}`);\n\
             let again = dataset(\"data/dedup_ready\");\n\
             print(`again=${{again.count()}}`);\n",
            news.display(),
            sample.join("law.jsonl").display()
        ),
    );
    // Inputs named in the script itself (not in its params) need --allow-read.
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r0"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--allow-read"), "{}", text(&o));
    let o = yunmin(
        d.path(),
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            "r",
            "--allow-read",
            sample.to_str().unwrap(),
        ],
    );
    ok(&o);
    let out = String::from_utf8_lossy(&o.stdout);
    let count: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("count="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(count > 1500, "{out}");
    assert!(out.contains("domains=[\"law\", \"news\"]"), "{out}");
    assert!(
        out.contains("shards=4")
            && out.contains("rejected=12")
            && out.contains(&format!("again={count}")),
        "{out}"
    );
    assert!(
        d.path()
            .join("r/data/dedup_ready/part-00003.jsonl")
            .exists()
    );

    let s = write_script(
        d.path(),
        "typo.rhai",
        &format!(
            "let ds = ingest(\"{}\", #{{ max_line: 5 }});\n",
            news.display()
        ),
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown option `max_line`")
            && err.contains("max_line_bytes")
            && err.contains("typo.rhai:1:"),
        "{}",
        text(&o)
    );

    let o = yunmin(
        d.path(),
        &["ingest", "--input", "no/such/dir", "--out", "r3"],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no input files match no/such/dir"),
        "{}",
        text(&o)
    );
}

fn sample_news_zst() -> Vec<u8> {
    zstd::encode_all(
        &std::fs::read(sample_dir().join("news.jsonl")).unwrap()[..],
        3,
    )
    .unwrap()
}

fn texts(run: &Path) -> Vec<String> {
    docs(run)
        .iter()
        .map(|d| d["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn s3_pagination_zst_resume_upload_and_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let cut = Cut {
        key_contains: "cut/".into(),
        after_bytes: 64 * 1024,
        times: 3,
    };
    let srv = S3Server::start(&d.path().join("s3"), Some(cut));
    for i in 0..1005 {
        srv.put(
            "corpus",
            &format!("many/obj-{i:04}.jsonl"),
            format!("{{\"text\":\"문서 {i}\"}}\n{{\"text\":\"\"}}\n").as_bytes(),
        );
    }
    srv.put("corpus", "many/README.md", b"not an input");
    srv.put("corpus", "zst/news.jsonl.zst", &sample_news_zst());
    let mut big = String::new();
    for i in 0..6000 {
        big.push_str(&format!("{{\"id\":\"b{i}\",\"text\":\"긴 객체의 {i}번째 줄입니다. 연결이 끊겨도 이어 읽어야 합니다.\"}}\n"));
    }
    srv.put("corpus", "cut/big.jsonl", big.as_bytes());
    let local_big = d.path().join("big.jsonl");
    std::fs::write(&local_big, &big).unwrap();
    let env = srv.client_env();
    let ep = srv.endpoint.clone();
    let ingest = |input: &str, out: &str, extra: &[&str], env: &[(&'static str, String)]| {
        let mut a = vec![
            "ingest",
            "--input",
            input,
            "--out",
            out,
            "--endpoint-url",
            ep.as_str(),
        ];
        a.extend_from_slice(extra);
        run_env(d.path(), &a, env)
    };

    // More objects than one listing page (1000 keys): all 1005 read, README skipped.
    let o = ingest("s3://corpus/many/", "r-many", &[], &env);
    ok(&o);
    let rep = json(&d.path().join("r-many/ingest_report.json"));
    assert_eq!(rep["sources"].as_array().unwrap().len(), 1005);
    assert_eq!(
        (
            rep["totals"]["lines"].as_u64(),
            rep["totals"]["valid"].as_u64()
        ),
        (Some(2010), Some(1005))
    );
    assert_eq!(rep["totals"]["reasons"]["empty_text"], 1005);
    assert!(
        srv.stats.lists.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "paginated listing"
    );
    assert_eq!(
        rep["sources"][0]["source"],
        "s3://corpus/many/obj-0000.jsonl"
    );
    assert_eq!(
        docs(&d.path().join("r-many"))[0]["id"],
        "s3://corpus/many/obj-0000.jsonl:1"
    );

    // A .zst object gives exactly what the local plain file gives.
    ok(&ingest("s3://corpus/zst/", "r-zst", &[], &env));
    ok(&yunmin(
        d.path(),
        &[
            "ingest",
            "--input",
            sample_dir().join("news.jsonl").to_str().unwrap(),
            "--out",
            "r-news",
        ],
    ));
    assert_eq!(
        texts(&d.path().join("r-zst")),
        texts(&d.path().join("r-news"))
    );
    let rz = json(&d.path().join("r-zst/ingest_report.json"));
    assert!(
        rz["totals"]["input_bytes"].as_u64() < rz["totals"]["bytes"].as_u64(),
        "compressed bytes read: {rz:#}"
    );

    // Cut off mid-stream three times: resumed with ranged GETs, nothing lost or doubled.
    let o = ingest("s3://corpus/cut/big.jsonl", "r-cut", &[], &env);
    ok(&o);
    let rc = json(&d.path().join("r-cut/ingest_report.json"));
    assert_eq!(rc["totals"]["resumes"], 3, "{rc:#}");
    assert!(
        srv.stats
            .ranged_gets
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 3
    );
    ok(&yunmin(
        d.path(),
        &[
            "ingest",
            "--input",
            local_big.to_str().unwrap(),
            "--out",
            "r-local-big",
        ],
    ));
    assert_eq!(
        texts(&d.path().join("r-cut")),
        texts(&d.path().join("r-local-big"))
    );
    assert_eq!(rc["totals"]["valid"], 6000);

    // Outputs uploaded to S3.
    let o = ingest(
        &sample_dir().join("chat.jsonl").display().to_string(),
        "s3://corpus/out/run1",
        &["--work", "w"],
        &env,
    );
    ok(&o);
    let up = srv.root.join("corpus/out/run1");
    for f in [
        "data/dedup_ready/part-00000.jsonl",
        "data/dedup_ready/dataset.json",
        "data/rejected/rejected.jsonl",
        "sample_preview.json",
        "ingest_report.json",
    ] {
        assert!(up.join(f).is_file(), "uploaded {f}");
    }
    assert_eq!(
        std::fs::read(up.join("ingest_report.json")).unwrap(),
        std::fs::read(d.path().join("w/ingest_report.json")).unwrap()
    );

    // Wrong credentials, missing bucket, unreachable endpoint: clear errors naming the URL.
    let bad = credentials_env("yunmin-test-access", "wrong-secret");
    let o = ingest("s3://corpus/many/", "r-bad", &[], &bad);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("s3://corpus/many/") && e.contains("access denied") && e.contains(&ep),
        "{}",
        text(&o)
    );
    let o = ingest("s3://nope/x/", "r-nb", &[], &env);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("bucket `nope` does not exist") && e.contains(&ep),
        "{}",
        text(&o)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = format!("http://{closed}");
    let o = run_env(
        d.path(),
        &[
            "ingest",
            "--input",
            "s3://corpus/many/",
            "--out",
            "r-dead",
            "--endpoint-url",
            &dead,
        ],
        &env,
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("cannot reach S3 endpoint") && e.contains(&dead),
        "{}",
        text(&o)
    );
}

#[test]
fn s3_resume_gives_up_after_bounded_retries() {
    let d = tempfile::tempdir().unwrap();
    let cut = Cut {
        key_contains: "dead/".into(),
        after_bytes: 0,
        times: 1000,
    };
    let srv = S3Server::start(&d.path().join("s3"), Some(cut));
    srv.put(
        "corpus",
        "dead/x.jsonl",
        "{\"text\":\"가\"}\n".repeat(1000).as_bytes(),
    );
    let o = run_env(
        d.path(),
        &[
            "ingest",
            "--input",
            "s3://corpus/dead/",
            "--out",
            "r",
            "--endpoint-url",
            &srv.endpoint,
            "--retries",
            "2",
        ],
        &srv.client_env(),
    );
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("s3://corpus/dead/x.jsonl")
            && e.contains("2 ranged resumes in a row made no progress"),
        "{}",
        text(&o)
    );
    assert!(
        !d.path().join("r/data/dedup_ready").exists(),
        "no half output that looks complete"
    );
    // One first GET plus 2 ranged resumes; the AWS SDK may retry each failed request itself
    // (standard retry mode: at most 3 attempts), so the server sees between 3 and 9 GETs.
    let gets = srv.stats.gets.load(std::sync::atomic::Ordering::SeqCst);
    assert!((3..=9).contains(&gets), "unbounded retries: {gets} GETs");
}
