//! Scale-out: the dedup phases as Ray tasks (`scripts/ray/yunmin_ray.py`) on a real Ray head
//! started here on 127.0.0.1, a real `redis-server` and the S3 test server. The results equal one
//! `yunmin dedup` process; a task killed mid-write is retried and leaves nothing half-written
//! in sight; large outputs reach S3 by multipart upload.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use yunmin_tests::redis::{RedisServer, free_port};
use yunmin_tests::s3::S3Server;
use yunmin_tests::{python, repo_root, text, yunmin, yunmin_bin};

/// A Ray head (`ray start --head`) with its own temporary directory; every process it started
/// carries a tag in its environment, and dropping the head kills exactly those processes.
struct RayHead {
    address: String,
    tag: String,
    _dir: tempfile::TempDir,
}

impl RayHead {
    fn start() -> Self {
        let ray = python().parent().expect("venv bin").join("ray");
        assert!(
            ray.exists(),
            "{} is missing: install scripts/python-requirements/ray.txt",
            ray.display()
        );
        // Ray's socket paths must stay short: a temporary directory directly under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("yr")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let port = free_port();
        let tag = format!("{}-{port}", std::process::id());
        let mut head = RayHead {
            address: format!("127.0.0.1:{port}"),
            tag,
            _dir: dir,
        };
        let o = Command::new(&ray)
            .args([
                "start",
                "--head",
                "--num-cpus",
                "2",
                "--disable-usage-stats",
            ])
            .args([
                "--port",
                &port.to_string(),
                "--node-ip-address",
                "127.0.0.1",
            ])
            // A small object store: the tasks pass paths, not data, and /dev/shm may be tiny.
            .args(["--object-store-memory", "200000000"])
            .args(["--include-dashboard", "false"])
            .args(["--dashboard-port", &free_port().to_string()])
            .args(["--ray-client-server-port", &free_port().to_string()])
            // Fixed default ports would collide with another head on this machine.
            .args(["--dashboard-agent-listen-port", &free_port().to_string()])
            .arg("--temp-dir")
            .arg(head._dir.path())
            .env("YUNMIN_RAY_HEAD", &head.tag)
            .env_remove("RAY_ADDRESS")
            .output()
            .expect("spawn ray start");
        if !o.status.success() {
            head.stop();
            panic!("ray start --head failed:\n{}", text(&o));
        }
        head
    }

    /// Kills every process whose environment carries this head's tag.
    fn stop(&mut self) {
        let want = format!("YUNMIN_RAY_HEAD={}", self.tag).into_bytes();
        let me = std::process::id().to_string();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                continue;
            }
            if let Ok(env) = std::fs::read(e.path().join("environ"))
                && env.split(|&b| b == 0).any(|v| v == want.as_slice())
            {
                let _ = Command::new("kill").args(["-9", &pid]).status();
            }
        }
    }
}

impl Drop for RayHead {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The driver (`python scripts/ray/yunmin_ray.py ARGS`) running this yunmin in its tasks.
fn driver_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(python());
    c.arg(repo_root().join("scripts/ray/yunmin_ray.py"))
        .args(args)
        .env("YUNMIN_BIN", yunmin_bin())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    c
}

/// Runs the driver against `head` with `env`.
fn driver(head: &RayHead, args: &[&str], env: &[(&'static str, String)]) -> Output {
    let mut c = driver_cmd(args);
    c.env("RAY_ADDRESS", &head.address);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("spawn the Ray driver")
}

/// `yunmin ARGS` in `cwd` whose engine "ray" calls reach `head` through the driver.
fn yunmin_on_ray(head: &RayHead, cwd: &Path, args: &[&str]) -> Output {
    Command::new(yunmin_bin())
        .args(args)
        .env("RAY_ADDRESS", &head.address)
        .env("YUNMIN_PYTHON", python())
        .env(
            "YUNMIN_RAY_DRIVER",
            repo_root().join("scripts/ray/yunmin_ray.py"),
        )
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .current_dir(cwd)
        .output()
        .expect("spawn yunmin")
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// The kept documents of a dataset directory, in order (all shard files concatenated).
fn kept_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for l in std::io::BufReader::new(std::fs::File::open(&f).unwrap()).lines() {
            out.push(l.unwrap());
        }
    }
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Asserts the reports and the kept documents under `got` equal those of the one-process run.
fn assert_same(single: &Path, got: &Path) {
    for f in ["candidates.json", "clusters.jsonl", "dedup_log.csv"] {
        assert!(
            read(&single.join(f)) == read(&got.join(f)),
            "{f} differs between {} and {}",
            single.display(),
            got.display()
        );
    }
    let (a, b) = (
        kept_lines(&single.join("data/deduped")),
        kept_lines(&got.join("data/deduped")),
    );
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len(), "kept documents");
    assert!(a == b, "kept documents differ");
    let stats = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&read(&p.join("data/deduped/dataset.json"))).unwrap()
    };
    assert_eq!(stats(single), stats(got));
}

/// Every name under `dir` (recursively) that is not hidden.
fn visible_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            visible_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn ray_dedup_equals_one_process_on_the_sample_and_on_corpora_from_s3() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    let redis = RedisServer::start();
    let index = format!("{}/0", redis.url());
    let head = RayHead::start();

    // The bundled sample, ingested into 9 files so 4 index and write tasks all get some.
    let sample = repo_root().join("data/sample/raw");
    ok(yunmin(
        w,
        &[
            "ingest",
            "--input",
            sample.to_str().unwrap(),
            "--out",
            "ing",
            "--shard-docs",
            "400",
        ],
    ));
    let ds = w.join("ing/data/dedup_ready");
    ok(yunmin(
        w,
        &["dedup", "--input", ds.to_str().unwrap(), "--out", "single"],
    ));
    let o = ok(driver(
        &head,
        &[
            "dedup",
            "--input",
            ds.to_str().unwrap(),
            "--out",
            w.join("ray4").to_str().unwrap(),
            "--shards",
            "4",
            "--index",
            &index,
        ],
        &[],
    ));
    let log = text(&o);
    for phase in ["index", "verify", "merge", "write", "gather"] {
        assert!(log.contains(&format!("[{phase} ")), "{log}");
    }
    assert!(log.contains("dedup verify part 3/4"), "{log}");
    assert_same(&w.join("single"), &w.join("ray4"));
    assert_eq!(
        redis.command(&["DBSIZE"]),
        ":0\r\n",
        "the merge clears the index"
    );
    // A verify task against the cleared index refuses instead of finding no pairs.
    let o = yunmin(
        w,
        &[
            "dedup",
            "--input",
            ds.to_str().unwrap(),
            "--out",
            "ray4",
            "--index",
            &index,
            "--phase",
            "verify",
            "--shard",
            "0/4",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("lacks document"),
        "{}",
        text(&o)
    );

    // The same from a script: dedup(…, #{ engine: "ray" }) hands the phases to the cluster.
    let script = w.join("ray.rhai");
    std::fs::write(
        &script,
        format!(
            "let ds = dataset(\"{}\");\nlet r = dedup(ds, #{{ engine: \"ray\", shards: 3, index: \"{index}\" }});\nprint(`ray removed=${{r.removed}} kept=${{r.kept_count}}`);\n",
            ds.display()
        ),
    )
    .unwrap();
    let o = ok(yunmin_on_ray(
        &head,
        w,
        &[
            "run",
            script.to_str().unwrap(),
            "--out",
            w.join("rhai_ray").to_str().unwrap(),
        ],
    ));
    let single_kept = kept_lines(&w.join("single/data/deduped")).len();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("kept={single_kept}")),
        "{}",
        text(&o)
    );
    assert!(
        w.join("rhai_ray/dedup/verify/part-0002-of-0003.json")
            .exists()
    );
    assert_same(&w.join("single"), &w.join("rhai_ray"));

    // An unreachable Redis fails the index tasks with a message naming it, after Ray's retries.
    let dead = format!("redis://127.0.0.1:{}/0", free_port());
    let o = driver(
        &head,
        &[
            "dedup",
            "--input",
            ds.to_str().unwrap(),
            "--out",
            w.join("dead").to_str().unwrap(),
            "--shards",
            "2",
            "--index",
            &dead,
            "--max-retries",
            "1",
        ],
        &[],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("index failed after 1 retries") && err.contains(&dead),
        "{}",
        text(&o)
    );
    assert!(!w.join("dead/candidates.json").exists());

    // Tasks killed while writing (an index task, a write task): Ray retries them; the result
    // is the same and no half-written file is visible.
    let o = ok(driver(
        &head,
        &[
            "dedup",
            "--input",
            ds.to_str().unwrap(),
            "--out",
            w.join("killed").to_str().unwrap(),
            "--shards",
            "4",
            "--index",
            &index,
            "--kill-once",
            "index:2",
            "--kill-once",
            "write:1",
        ],
        &[],
    ));
    let killed = w.join("killed");
    for m in [".killed-index-2", ".killed-write-1"] {
        assert!(killed.join(m).exists(), "{m} was not killed:\n{}", text(&o));
    }
    // (A part of the sample is written in milliseconds, so the kill may land just after it;
    // the corpora run below asserts a kill in the middle of a write.)
    assert_same(&w.join("single"), &killed);
    let mut files = Vec::new();
    visible_files(&killed, &mut files);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            !name.contains(".tmp"),
            "half-written file in sight: {}",
            f.display()
        );
    }
    for part in std::fs::read_dir(killed.join("dedup/kept"))
        .unwrap()
        .flatten()
    {
        let n = part.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') {
            continue;
        }
        assert!(
            part.path().join("dataset.json").exists(),
            "{n}: a visible kept part without dataset.json is incomplete"
        );
    }

    // A few thousand documents of the shared corpora, served by the S3 test server; the
    // results go back to S3 by multipart upload.
    let srv = S3Server::start(&w.join("s3"), None);
    let env = srv.client_env();
    let corpora = repo_root().join("../shared/data/corpora");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&corpora)
        .unwrap_or_else(|e| panic!("{}: {e}", corpora.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.zst"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "corpora in {}", corpora.display());
    let mut total = 0;
    for p in &names {
        let r =
            std::io::BufReader::new(zstd::Decoder::new(std::fs::File::open(p).unwrap()).unwrap());
        let lines: Vec<String> = r.lines().take(600).map(|l| l.unwrap()).collect();
        total += lines.len();
        let mut enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
        enc.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
        srv.put(
            "corpora",
            &p.file_name().unwrap().to_string_lossy(),
            &enc.finish().unwrap(),
        );
    }
    assert!(total >= 3000, "{total} documents");
    std::fs::create_dir_all(w.join("s3/results")).unwrap();
    let single = Command::new(yunmin_bin())
        .args(["dedup", "--input", "s3://corpora/", "--out", "single_s3"])
        .args(["--endpoint-url", &srv.endpoint])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(w)
        .output()
        .unwrap();
    ok(single);
    let o = ok(driver(
        &head,
        &[
            "dedup",
            "--input",
            "s3://corpora/",
            "--endpoint-url",
            &srv.endpoint,
            "--out",
            "s3://results/run/",
            "--work",
            w.join("work_s3").to_str().unwrap(),
            "--shards",
            "4",
            "--shard-docs",
            "2000",
            "--index",
            &index,
            "--multipart-threshold-mib",
            "5",
            "--part-kib",
            "5120",
            "--kill-once",
            "write:1",
            "--kill-once",
            "verify:3",
        ],
        &env,
    ));
    assert!(text(&o).contains("[ingest "), "{}", text(&o));
    // Write part 1 holds the long precedents (megabytes): killed in the middle of writing.
    let work = w.join("work_s3");
    assert_eq!(
        read(&work.join(".killed-write-1")).trim(),
        "killed while running",
        "the write task finished before the kill"
    );
    assert!(work.join(".killed-verify-3").exists());
    let mut files = Vec::new();
    visible_files(&w.join("s3/results"), &mut files);
    visible_files(&work.join("data"), &mut files);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            !name.contains(".tmp"),
            "half-written file in sight: {}",
            f.display()
        );
    }
    assert_same(&w.join("single_s3"), &w.join("s3/results/run"));
    // Outputs of 5 MiB or more went up in parts (the first kept file holds the long
    // precedents).
    let mut files = Vec::new();
    visible_files(&w.join("s3/results/run"), &mut files);
    let big = files
        .iter()
        .filter(|f| std::fs::metadata(f).unwrap().len() >= 5 << 20)
        .count();
    assert!(big >= 1, "no output of 5 MiB or more");
    assert_eq!(srv.stats.completed_multipart.load(Ordering::SeqCst), big);
}

/// The pipeline on a tiny slice of the sample through `yunmin_ray.py pipeline`: dedup's phases,
/// one `yunmin train lora` task per adapter and one `yunmin metrics evaluate` task per model,
/// with one LoRA task's worker killed mid-training (Ray retries it). Every adapter and every
/// result table equals one `yunmin run` with the same seed; no half adapter, task list or
/// evaluation part is left; the adapters' stage keys do not depend on the engine.
#[test]
fn ray_pipeline_trains_adapters_and_evaluates_as_tasks_equal_to_one_process() {
    use super::pipeline::{TINY, stage_lines, tiny_input};
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    let input = w.join("input");
    tiny_input(&input, 60);
    let script = repo_root().join("scripts/pipeline.rhai");
    // More LoRA steps than the pipeline test, so the kill lands while the adapter trains.
    let mut sets: Vec<String> = vec![format!("input={}", input.display())];
    sets.extend(
        TINY.iter()
            .filter(|s| !s.starts_with("lora_steps="))
            .map(|s| s.to_string()),
    );
    sets.push("lora_steps=30".into());
    let args = |head: &[&str], extra: &[String]| -> Vec<String> {
        let mut a: Vec<String> = head.iter().map(|s| s.to_string()).collect();
        for s in sets.iter().chain(extra) {
            a.extend(["--set".to_string(), s.clone()]);
        }
        a
    };
    let local = w.join("local");
    let ray = w.join("ray");
    let a = args(
        &[
            "run",
            script.to_str().unwrap(),
            "--out",
            local.to_str().unwrap(),
        ],
        &[],
    );
    ok(yunmin(w, &a.iter().map(String::as_str).collect::<Vec<_>>()));

    let redis = RedisServer::start();
    let head = RayHead::start();
    let index = format!("index={}/0", redis.url());
    let a = args(
        &[
            "pipeline",
            "--script",
            script.to_str().unwrap(),
            "--out",
            ray.to_str().unwrap(),
        ],
        &["shards=2".into(), index.clone()],
    );
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = ok(driver(
        &head,
        &a,
        &[("YUNMIN_RAY_KILL_ONCE", "lora_law".into())],
    ));
    let log = text(&o);
    for t in [
        "[ingest_0000 ",
        "[ingest_0003 ",
        "[parquet_0000 ",
        "[parquet_0003 ",
        "[index ",
        "[lora_chat ",
        "[lora_mixed ",
        "[eval_base ",
        "[eval_merged ",
    ] {
        assert!(log.contains(t), "no task {t}:\n{log}");
    }
    // Killed while training, before any of its adapter existed; the retry wrote it whole.
    assert_eq!(
        read(&ray.join(".killed-lora_law")),
        "killed while running\noutput absent\n",
        "{log}"
    );
    for name in ["chat", "law", "news", "reviews", "mixed"] {
        let f = format!("models/lora_{name}/adapter_model.safetensors");
        assert!(
            std::fs::read(local.join(&f)).unwrap() == std::fs::read(ray.join(&f)).unwrap(),
            "{f} differs from the one-process run"
        );
    }
    let tables = [
        "results/eval_metrics.csv",
        "results/eval_generations.csv",
        "results/merge_sweep.csv",
        "results/perplexity_pivot.csv",
    ];
    for f in tables {
        assert_eq!(read(&local.join(f)), read(&ray.join(f)), "{f}");
    }
    // Ingest, one task per input file, joined: the same report, rejects, preview and
    // documents in order as one process.
    for f in [
        "ingest_report.json",
        "sample_preview.json",
        "data/rejected/rejected.jsonl",
        "data/dedup_ready/dataset.json",
    ] {
        assert_eq!(read(&local.join(f)), read(&ray.join(f)), "{f}");
    }
    let docs = |root: &Path| -> String {
        let dir = root.join("data/dedup_ready");
        let mut shards: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        shards.sort();
        shards.iter().map(|p| read(p)).collect()
    };
    assert_eq!(docs(&local), docs(&ray), "ingested documents");
    // Parquet, one task per domain, joined: the same files with the same rows and tokens, and
    // the same rejects.
    let pq_report = |root: &Path| -> serde_json::Value {
        let r: serde_json::Value =
            serde_json::from_str(&read(&root.join("data/parquet/parquet_report.json"))).unwrap();
        let files: serde_json::Map<String, serde_json::Value> = r["files"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, f)| (k.clone(), serde_json::json!([f["rows"], f["tokens"]])))
            .collect();
        serde_json::json!([
            files,
            r["domains"],
            r["docs_in"],
            r["rows_written"],
            r["rejected"]
        ])
    };
    assert_eq!(pq_report(&local), pq_report(&ray));
    assert_eq!(
        pq_report(&ray)[0].as_object().unwrap().len(),
        8,
        "train and heldout of 4 domains"
    );
    assert_eq!(
        read(&local.join("data/parquet/rejects.jsonl")),
        read(&ray.join("data/parquet/rejects.jsonl"))
    );
    assert!(!ray.join("parts").exists() && !ray.join("data/parts").exists());
    for dir in [ray.clone(), ray.join("models")] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(
                !n.contains(".tmp") && !n.starts_with(".ray-") && !n.starts_with(".evaluate-"),
                "left over: {}",
                e.path().display()
            );
        }
    }
    // The same root run locally: the adapters (and dedup) are cached, their keys being the same
    // whatever the engine; the evaluation, run here this time, gives the same tables.
    let before = stage_lines(&ray).len();
    let a = args(
        &[
            "run",
            script.to_str().unwrap(),
            "--out",
            ray.to_str().unwrap(),
        ],
        &[index],
    );
    ok(yunmin(w, &a.iter().map(String::as_str).collect::<Vec<_>>()));
    let again = stage_lines(&ray)[before..].to_vec();
    for s in [
        "ingest:data/dedup_ready",
        "to_parquet",
        "dedup",
        "lora_chat",
        "lora_law",
        "lora_mixed",
    ] {
        assert!(
            again.contains(&(s.to_string(), "cached".to_string())),
            "{s} not cached: {again:?}"
        );
    }
    assert!(
        again.contains(&("evaluate".into(), "ok".into())),
        "{again:?}"
    );
    for f in tables {
        assert_eq!(
            read(&local.join(f)),
            read(&ray.join(f)),
            "{f} after the local rerun"
        );
    }

    // An unreachable cluster: adapters not trained yet fail with a message naming it.
    let dead = format!("127.0.0.1:{}", free_port());
    let s = w.join("dead.rhai");
    std::fs::write(
        &s,
        "train_adapters(out_path(\"models/base\"), out_path(\"data/parquet\"), [\"law\"], #{ steps: 2, engine: \"ray\" });\n",
    )
    .unwrap();
    let o = Command::new(yunmin_bin())
        .args(["run", s.to_str().unwrap(), "--out", ray.to_str().unwrap()])
        .env("RAY_ADDRESS", &dead)
        .env("YUNMIN_PYTHON", python())
        .env(
            "YUNMIN_RAY_DRIVER",
            repo_root().join("scripts/ray/yunmin_ray.py"),
        )
        .current_dir(w)
        .output()
        .unwrap();
    assert!(
        !o.status.success()
            && text(&o).contains(&format!(
                "cannot reach the Ray cluster at RAY_ADDRESS={dead}"
            )),
        "{}",
        text(&o)
    );
}

#[test]
fn train_adapters_and_evaluate_engine_options_are_checked() {
    let d = tempfile::tempdir().unwrap();
    for (call, want) in [
        (
            "train_adapters(\"b\", \"p\", [\"law\"], #{ engine: \"spark\" })",
            "train_adapters: option `engine` is `spark`",
        ),
        (
            "train_adapters(\"b\", \"p\", [\"law\"], #{ stepz: 3 })",
            "stepz",
        ),
        (
            "train_adapters(\"b\", \"p\", [\"law\"], #{ out: \"x\" })",
            "`out`",
        ),
        (
            "train_adapters(\"b\", \"p\", [\"law\"], #{ mixed: 3 })",
            "option `mixed` must be a map",
        ),
        (
            "train_adapters(\"b\", \"p\", [\"law\"], #{ mixed: #{ stepz: 3 } })",
            "stepz",
        ),
        (
            "evaluate(#{}, #{}, #{ engine: \"spark\" })",
            "evaluate: option `engine` is `spark`",
        ),
    ] {
        let script = d.path().join("e.rhai");
        std::fs::write(&script, format!("{call};\n")).unwrap();
        let o = yunmin(
            d.path(),
            &[
                "run",
                script.to_str().unwrap(),
                "--no-check",
                "--out",
                d.path().join("run").to_str().unwrap(),
            ],
        );
        assert!(
            !o.status.success() && text(&o).contains(want),
            "{call}: {}",
            text(&o)
        );
    }
}

/// `n` distinct documents of about 5 KB of random Hangul each, as JSONL.
fn random_docs(path: &Path, n: usize) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = String::new();
    for i in 0..n {
        let text: String = (0..1700)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from_u32(0xAC00 + (x % 2000) as u32).unwrap()
            })
            .collect();
        out.push_str(
            &serde_json::json!({"id": format!("r{i}"), "text": text, "domain": "random"})
                .to_string(),
        );
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn ray_driver_names_an_unreachable_cluster() {
    let d = tempfile::tempdir().unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let o = driver_cmd(&["dedup", "--input", "in", "--out"])
        .arg(d.path().join("out"))
        .args(["--shards", "2", "--index", "redis://127.0.0.1:1/0"])
        .env("RAY_ADDRESS", &dead)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "cannot reach the Ray cluster at RAY_ADDRESS={dead}"
        )),
        "{}",
        text(&o)
    );
    // Options the driver does not know are refused by name.
    let o = driver_cmd(&["dedup", "--input", "in", "--out", "o", "--shards", "2"])
        .args(["--index", "redis://127.0.0.1:1/0", "--shard", "3"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--shard"),
        "{}",
        text(&o)
    );
}

#[test]
fn ray_pipeline_names_an_unreachable_cluster_and_refuses_another_engine() {
    let d = tempfile::tempdir().unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let o = driver_cmd(&["pipeline", "--out"])
        .arg(d.path().join("run"))
        .env("RAY_ADDRESS", &dead)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "cannot reach the Ray cluster at RAY_ADDRESS={dead}"
        )),
        "{}",
        text(&o)
    );
    assert!(
        !d.path().join("run").exists(),
        "nothing runs without a cluster"
    );
    for bad in [["--set", "engine=local"], ["--set", "lora_steps"]] {
        let o = driver_cmd(&["pipeline"]).args(bad).output().unwrap();
        assert!(!o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("--set {}", bad[1])),
            "{}",
            text(&o)
        );
    }
}

#[test]
fn dedup_engine_options_are_checked() {
    let d = tempfile::tempdir().unwrap();
    // The input inside the run root, which scripts may always read.
    let sample = d.path().join("run/news.jsonl");
    std::fs::create_dir_all(d.path().join("run")).unwrap();
    std::fs::copy(repo_root().join("data/sample/raw/news.jsonl"), &sample).unwrap();
    for (opts, want) in [
        ("engine: \"spark\"", "option `engine` is `spark`"),
        ("shards: 2", "option `shards` needs engine \"ray\""),
        (
            "engine: \"ray\", shards: 0",
            "option `shards` must be an integer ≥ 1",
        ),
        ("engine: \"ray\"", "`index` must be redis://"),
    ] {
        let script = d.path().join("e.rhai");
        std::fs::write(
            &script,
            format!(
                "let ds = ingest(\"{}\", #{{}});\ndedup(ds, #{{ {opts} }});\n",
                sample.display()
            ),
        )
        .unwrap();
        let o = yunmin(
            d.path(),
            &[
                "run",
                script.to_str().unwrap(),
                "--out",
                d.path().join("run").to_str().unwrap(),
            ],
        );
        assert!(
            !o.status.success() && text(&o).contains(want),
            "{opts}: {}",
            text(&o)
        );
    }
}

#[test]
fn dedup_upload_goes_up_in_parts_and_a_failed_upload_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    let srv = S3Server::start(&w.join("s3"), None);
    std::fs::create_dir_all(w.join("s3/out")).unwrap();
    // About 12 MB of kept documents in one file: three parts of 5 MiB (the S3 minimum).
    let input = w.join("random.jsonl");
    random_docs(&input, 2400);
    let dedup = |out: &str, dest: &str, part_kib: &str| {
        Command::new(yunmin_bin())
            .args(["dedup", "--input", input.to_str().unwrap(), "--out", out])
            .args(["--upload", dest, "--endpoint-url", &srv.endpoint])
            .args(["--multipart-threshold-mib", "5", "--part-kib", part_kib])
            .envs(srv.client_env())
            .current_dir(w)
            .output()
            .unwrap()
    };
    // A part size under the S3 minimum is refused before any work.
    let o = dedup("run0", "s3://out/run0/", "64");
    assert!(
        !o.status.success() && text(&o).contains("part size") && !w.join("run0").exists(),
        "{}",
        text(&o)
    );
    ok(dedup("run", "s3://out/run/", "5120"));
    // Every output arrived whole: the same bytes as the local files.
    let mut files = Vec::new();
    visible_files(&w.join("run/data/deduped"), &mut files);
    for f in ["candidates.json", "clusters.jsonl", "dedup_log.csv"] {
        files.push(w.join("run").join(f));
    }
    let mut big = 0;
    let mut expect_parts = 0;
    for f in &files {
        let rel = f.strip_prefix(w.join("run")).unwrap();
        let local = std::fs::read(f).unwrap();
        if local.len() >= 5 << 20 {
            big += 1;
            expect_parts += local.len().div_ceil(5 << 20);
        }
        assert!(
            std::fs::read(w.join("s3/out/run").join(rel))
                .unwrap_or_else(|e| panic!("{}: {e}", rel.display()))
                == local,
            "{} differs in S3",
            rel.display()
        );
    }
    assert!(big >= 1, "some output spans several parts");
    assert_eq!(srv.stats.completed_multipart.load(Ordering::SeqCst), big);
    assert_eq!(srv.stats.parts.load(Ordering::SeqCst), expect_parts);

    // Credentials the server refuses: a clear error naming the destination, no object.
    let o = Command::new(yunmin_bin())
        .args(["dedup", "--input", input.to_str().unwrap(), "--out", "run2"])
        .args([
            "--upload",
            "s3://out/run2/",
            "--endpoint-url",
            &srv.endpoint,
        ])
        .envs(yunmin_tests::s3::credentials_env("wrong", "wrong"))
        .current_dir(w)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("s3://out/run2/"), "{}", text(&o));
    assert!(!w.join("s3/out/run2").exists());
}

#[test]
fn scale_out_doc_manifests_parse_and_name_the_driver() {
    let doc = read(&repo_root().join("docs/scale-out.md"));
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in doc.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => cur = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 2, "{} yaml blocks", blocks.len());
    let check = r#"
import json, shlex, sys, yaml
sys.path.insert(0, sys.argv[1])
import yunmin_ray
kinds = {}
for text in json.load(sys.stdin):
    for d in yaml.safe_load_all(text):
        if d.get("kind") == "RayJob":
            spec = d["spec"]
            assert "yunmin_ray.py dedup" in spec["entrypoint"], spec["entrypoint"]
            # The driver accepts the manifest's arguments.
            a = yunmin_ray.parse_args(shlex.split(spec["entrypoint"])[2:])
            assert a.shards >= 1 and a.out.startswith("s3://") and a.work
            groups = spec["rayClusterSpec"]["workerGroupSpecs"]
            assert groups and groups[0]["replicas"] >= 1
            kinds["RayJob"] = 1
        elif "cluster_name" in d:
            assert d["head_node_type"] in d["available_node_types"]
            assert any("yunmin" in c for c in d.get("setup_commands", []))
            kinds["ray up"] = 1
print(sorted(kinds))
"#;
    let mut c = Command::new(python())
        .args(["-c", check])
        .arg(repo_root().join("scripts/ray"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&blocks).unwrap().as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "['RayJob', 'ray up']"
    );
}
