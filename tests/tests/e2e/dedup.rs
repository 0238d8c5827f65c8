//! Near-duplicate removal end to end: the CLI single-process run, three worker processes sharing
//! a real redis-server (same kept set), Redis faults, bad input, and the Rhai pieces.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use yunmin_core::ingest::{Dataset, DatasetWriter, Document};
use yunmin_tests::redis::{RedisServer, free_port};
use yunmin_tests::{repo_root, text, write_script, yunmin, yunmin_bin};

const WORDS: &[&str] = &[
    "정부는",
    "국민의",
    "안전을",
    "위하여",
    "새로운",
    "정책을",
    "발표하였다",
    "시민들은",
    "이번",
    "결정에",
    "대해",
    "다양한",
    "의견을",
    "내놓았다",
    "전문가들은",
    "경제",
    "성장과",
    "일자리",
    "문제를",
    "지적했다",
    "법원은",
    "피고인의",
    "항소를",
    "기각하고",
    "원심을",
    "유지하였다",
    "영화의",
    "배우들이",
    "훌륭한",
    "연기를",
    "보여주었다",
    "음악과",
    "영상이",
    "아름답게",
    "어우러졌다",
    "학생들이",
    "도서관에서",
    "책을",
    "읽고",
    "토론을",
    "하였다",
    "지역",
    "사회의",
    "발전을",
    "위한",
    "계획이",
    "마련되었다",
];

fn doc(id: &str, text: String, domain: &str) -> Document {
    Document {
        id: id.into(),
        text,
        domain: domain.into(),
        source: "test".into(),
        extra: Default::default(),
    }
}

/// 120 distinct base documents, a near-duplicate copy of every third (spacing change and a
/// particle swap), edge cases, spread over many shard files.
fn make_dataset(dir: &Path) -> (Dataset, BTreeSet<String>) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut docs = Vec::new();
    let mut copies = BTreeSet::new();
    for i in 0..120 {
        let n = 30 + next() % 30;
        let words: Vec<&str> = (0..n).map(|_| WORDS[next() % WORDS.len()]).collect();
        let domain = ["law", "news", "movie"][i % 3];
        let base = words.join(" ");
        docs.push(doc(&format!("d{i:03}"), base.clone(), domain));
        if i % 3 == 0 {
            // Join two words (spacing), swap a particle, add punctuation.
            let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
            let j = 3 + next() % 10;
            let joined = format!("{}{}", w[j], w[j + 1]);
            w[j] = joined;
            w.remove(j + 1);
            if let Some(k) = w.iter().position(|x| x.ends_with('을')) {
                w[k] = format!("{}를", w[k].trim_end_matches('을'));
            }
            let copy = format!("{}!", w.join(" "));
            let id = format!("d{i:03}-copy");
            copies.insert(id.clone());
            docs.push(doc(&id, copy, domain));
        }
    }
    // Edge cases: empty and whitespace-only (duplicates of each other after normalisation),
    // non-Hangul scripts, one enormous document.
    docs.push(doc("e-empty", String::new(), "edge"));
    docs.push(doc("e-space", " \n\t  ".into(), "edge"));
    docs.push(doc(
        "e-en",
        "The quick brown fox jumps over the lazy dog near the river bank today.".into(),
        "edge",
    ));
    docs.push(doc(
        "e-ja",
        "東京は日本の首都であり、多くの人々が暮らしている大都市です。".into(),
        "edge",
    ));
    docs.push(doc(
        "e-ar",
        "مرحبا بالعالم هذا نص عربي قصير للاختبار فقط".into(),
        "edge",
    ));
    let huge: String = (0..60_000)
        .map(|i| WORDS[(i * 7 + i / 13) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ");
    docs.push(doc("e-huge", huge, "edge"));
    copies.insert("e-space".into());
    let mut w = DatasetWriter::create(dir, 17).unwrap();
    for d in &docs {
        w.write(d).unwrap();
    }
    (w.finish().unwrap(), copies)
}

fn kept_ids(run: &Path) -> BTreeSet<String> {
    Dataset::open(run.join("data/deduped"))
        .unwrap()
        .read_all()
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn single_process_finds_planted_copies_and_three_redis_workers_agree() {
    let d = tempfile::tempdir().unwrap();
    let (ds, copies) = make_dataset(&d.path().join("in"));
    let all: BTreeSet<String> = ds.read_all().unwrap().into_iter().map(|d| d.id).collect();
    assert!(ds.shards().unwrap().len() >= 6);
    let input = ds.dir().to_str().unwrap();

    let single = d.path().join("single");
    let o = yunmin(
        d.path(),
        &["dedup", "--input", input, "--out", single.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let kept = kept_ids(&single);
    let removed: BTreeSet<String> = all.difference(&kept).cloned().collect();
    assert_eq!(
        removed, copies,
        "exactly the planted copies (and the whitespace-only twin) are removed"
    );
    let log = read(&single.join("dedup_log.csv"));
    assert!(
        log.starts_with("domain,before,after,removed,rate\n"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "total,{},{},{},",
            all.len(),
            kept.len(),
            removed.len()
        )),
        "{log}"
    );
    let cands: serde_json::Value =
        serde_json::from_str(&read(&single.join("candidates.json"))).unwrap();
    let pairs = cands.as_array().unwrap();
    assert!(pairs.len() >= copies.len());
    for p in pairs {
        assert!(
            p["exact"].as_f64().unwrap() >= 0.8 && p["estimated"].as_f64().is_some(),
            "{p}"
        );
    }
    let clusters = read(&single.join("clusters.jsonl"));
    assert_eq!(clusters.lines().count(), copies.len());
    assert!(
        single
            .join("dedup/signatures/shard-0000-of-0001.bin")
            .exists()
    );

    // Three workers insert into one redis-server at the same time, then one clustering step.
    let redis = RedisServer::start();
    let multi = d.path().join("multi");
    let workers: Vec<_> = (0..3)
        .map(|i| {
            Command::new(yunmin_bin())
                .current_dir(d.path())
                .args([
                    "dedup",
                    "--input",
                    input,
                    "--out",
                    multi.to_str().unwrap(),
                    "--index",
                    &redis.url(),
                ])
                .args(["--phase", "index", "--shard", &format!("{i}/3")])
                .output()
        })
        .collect();
    for w in workers {
        let o = w.unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    assert!(
        !multi.join("candidates.json").exists(),
        "index phase writes no final outputs"
    );
    let o = yunmin(
        d.path(),
        &[
            "dedup",
            "--input",
            input,
            "--out",
            multi.to_str().unwrap(),
            "--index",
            &redis.url(),
            "--phase",
            "cluster",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(kept_ids(&multi), kept);
    assert_eq!(read(&multi.join("clusters.jsonl")), clusters);
    assert_eq!(read(&multi.join("dedup_log.csv")), log);
    assert_eq!(
        read(&multi.join("candidates.json")),
        read(&single.join("candidates.json"))
    );
    assert_eq!(
        redis.command(&["DBSIZE"]),
        ":0\r\n",
        "the run's keys are removed after clustering"
    );

    // A rerun is the cached stage `dedup` (as in a script); other options or --force rerun.
    let rerun = |extra: &[&str]| {
        let o = yunmin(
            d.path(),
            &[
                &["dedup", "--input", input, "--out", single.to_str().unwrap()],
                extra,
            ]
            .concat(),
        );
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(kept_ids(&single), kept);
        String::from_utf8_lossy(&o.stdout).contains("(cached")
    };
    assert!(rerun(&[]), "an unchanged rerun answers from the cache");
    assert!(!rerun(&["--force"]));
    assert!(!rerun(&["--threshold", "0.85"]));
    assert!(rerun(&["--threshold", "0.85"]));
    let log = read(&single.join("pipeline_run.log"));
    assert!(log.contains("dedup"), "{log}");
}

#[test]
fn redis_unreachable_or_dying_gives_a_clear_error_and_no_outputs() {
    let d = tempfile::tempdir().unwrap();
    let (ds, _) = make_dataset(&d.path().join("in"));
    let input = ds.dir().to_str().unwrap();
    let url = format!("redis://127.0.0.1:{}", free_port());
    let out = d.path().join("r1");
    let o = yunmin(
        d.path(),
        &[
            "dedup",
            "--input",
            input,
            "--out",
            out.to_str().unwrap(),
            "--index",
            &url,
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&url) && err.contains("connect"),
        "{}",
        text(&o)
    );
    for p in [
        "candidates.json",
        "clusters.jsonl",
        "dedup_log.csv",
        "data/deduped",
    ] {
        assert!(
            !out.join(p).exists(),
            "{p} must not exist after a failed run"
        );
    }

    // The server dies after the workers inserted: the clustering step fails naming the URL.
    let mut redis = RedisServer::start();
    let out = d.path().join("r2");
    let o = yunmin(
        d.path(),
        &[
            "dedup",
            "--input",
            input,
            "--out",
            out.to_str().unwrap(),
            "--index",
            &redis.url(),
            "--phase",
            "index",
            "--shard",
            "0/1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let url = redis.url();
    redis.stop();
    let o = yunmin(
        d.path(),
        &[
            "dedup",
            "--input",
            input,
            "--out",
            out.to_str().unwrap(),
            "--index",
            &url,
            "--phase",
            "cluster",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&url),
        "{}",
        text(&o)
    );
    assert!(!out.join("dedup_log.csv").exists() && !out.join("data/deduped").exists());
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".tmp")),
        "no temporaries left: {names:?}"
    );

    // Cluster phase with a shard missing names it.
    let out = d.path().join("r3");
    let o = yunmin(
        d.path(),
        &[
            "dedup",
            "--input",
            input,
            "--out",
            out.to_str().unwrap(),
            "--phase",
            "index",
            "--shard",
            "1/2",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = yunmin(
        d.path(),
        &[
            "dedup",
            "--input",
            input,
            "--out",
            out.to_str().unwrap(),
            "--phase",
            "cluster",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shard 0/2"),
        "{}",
        text(&o)
    );
}

#[test]
fn rhai_dedup_and_pieces_agree_with_the_cli() {
    let d = tempfile::tempdir().unwrap();
    let (ds, copies) = make_dataset(&d.path().join("in"));
    let script = write_script(
        d.path(),
        "dd.rhai",
        &format!(
            r#"
let ds = dataset("{dir}");
let r = dedup(ds, #{{ threshold: 0.8, keep: "most_tokens" }});
print(`removed=${{r.removed}} bands=${{r.bands}}x${{r.rows}}`);
let kept = r.kept();
print(`kept_dir=${{kept.dir}}`);
r.log().write_csv("results/log.csv");
let s = shingles("아버지가 방에 들어가신다", #{{ shingles: "jamo3+word5" }});
print(`jamo=${{s.jamo.len()}} word=${{s.word.len()}}`);
let sigs = minhash(ds, #{{ perms: 128 }});
let ix = lsh_index(sigs, #{{ bands: 20, rows: 6 }});
let c = candidates(ix, #{{ threshold: 0.8 }});
let cl = clusters(c);
print(`pieces_clusters=${{cl.rows()}}`);
let by_path = clusters(candidates(lsh_index(minhash("{dir}", #{{ perms: 128 }}), #{{ bands: 20, rows: 6 }}), #{{ threshold: 0.8 }}));
print(`by_path_clusters=${{by_path.rows()}}`);
c.table().write_csv("results/pairs.csv");
let bad = dedup(ds, #{{ treshold: 0.5 }});
"#,
            dir = ds.dir().display()
        ),
    );
    let out = d.path().join("run");
    let o = yunmin(
        d.path(),
        &[
            "run",
            script.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            // The option typo at the end is caught at run time here (`yunmin check`, run
            // first by default, would stop it before the earlier calls).
            "--no-check",
        ],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("removed={}", copies.len())),
        "{}",
        text(&o)
    );
    assert!(stdout.contains("bands=20x6"), "{}", text(&o));
    // The script's shingles are core's: the same count of distinct jamo 3-grams, and one
    // word shingle (four words, fewer than five, hash as one).
    let spec = yunmin_core::dedup::shingle::ShingleSpec::default();
    let jamo = yunmin_core::dedup::shingle::shingles("아버지가 방에 들어가신다", &spec)
        .jamo
        .len();
    assert!(jamo > 0);
    assert!(
        stdout.contains(&format!("jamo={jamo} word=1")),
        "{}",
        text(&o)
    );
    assert!(
        stdout.contains(&format!("by_path_clusters={}", copies.len())),
        "{}",
        text(&o)
    );
    assert!(
        stdout.contains(&format!("pieces_clusters={}", copies.len())),
        "{}",
        text(&o)
    );
    assert!(out.join("results/log.csv").exists() && out.join("results/pairs.csv").exists());
    // The typo in the last call fails with the known keys and the script line.
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown option `treshold`")
            && err.contains("threshold")
            && err.contains("line 18"),
        "{}",
        text(&o)
    );
    // The CLI on the same dataset and settings removes the same documents in the same
    // clusters, with the same log.
    let cli = d.path().join("cli");
    let o = yunmin(
        d.path(),
        &[
            "dedup",
            "-q",
            "--input",
            ds.dir().to_str().unwrap(),
            "--out",
            cli.to_str().unwrap(),
            "--threshold",
            "0.8",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    for f in ["clusters.jsonl", "dedup_log.csv", "candidates.json"] {
        assert_eq!(
            std::fs::read_to_string(cli.join(f)).unwrap(),
            std::fs::read_to_string(out.join(f)).unwrap(),
            "{f}: the CLI and the script differ"
        );
    }
}

/// The Redis index inserts through a server-side script and queries unions per document: a
/// server that lost its scripts (`SCRIPT FLUSH`, as after a restart) is handled by reloading,
/// and the unions equal what bucket-by-bucket queries give.
#[test]
fn redis_index_survives_a_script_flush_and_unions_match_buckets() {
    use yunmin_core::dedup::lsh::{LshIndex, redis::RedisIndex};
    let srv = RedisServer::start();
    let mut idx = RedisIndex::connect(&srv.url(), "t", 64).unwrap();
    // Three documents, two bands: docs 1 and 2 share band 0, docs 2 and 3 share band 1.
    idx.insert(&[1, 2], &[10, 20, 10, 30]).unwrap();
    srv.command(&["SCRIPT", "FLUSH"]);
    idx.insert(&[3], &[40, 30]).unwrap();
    let docs: Vec<Vec<(u16, u64)>> = vec![
        vec![(0, 10), (1, 20)],
        vec![(0, 10), (1, 30)],
        vec![(0, 40), (1, 30)],
    ];
    let refs: Vec<&[(u16, u64)]> = docs.iter().map(Vec::as_slice).collect();
    let unions = idx.union_members(&refs).unwrap().unwrap();
    assert_eq!(unions, vec![vec![1, 2], vec![1, 2, 3], vec![2, 3]]);
    let buckets = idx.members(&[(0, 10), (1, 30), (0, 40)]).unwrap();
    assert_eq!(buckets, vec![vec![1, 2], vec![2, 3], vec![3]]);
    idx.clear().unwrap();
    assert_eq!(idx.members(&[(0, 10)]).unwrap(), vec![Vec::<u64>::new()]);
}

/// The planted evaluation on real corpora, with near-duplicates and hard negatives (40–50 % of
/// the words replaced): the default settings find the copies and keep every hard negative.
#[test]
fn planted_evaluation_finds_copies_and_keeps_hard_negatives() {
    let corpora = repo_root().join("../shared/data/corpora");
    assert!(corpora.exists(), "{} is missing", corpora.display());
    let d = tempfile::tempdir().unwrap();
    let s = write_script(
        d.path(),
        "q.rhai",
        &format!(
            r#"let set = dedup_eval_set(#{{ corpora: "{}", per_domain: 60, hard_fraction: 0.5, seed: 7 }});
let t = dedup_eval(set, #{{}}).filter("domain", "==", "all").filter("length", "==", "all");
let r = t.row(0);
print(`planted=${{r.planted}} recall=${{r.recall}} precision=${{r.precision}} hard=${{r.hard_negatives}} hard_removed=${{r.hard_removed}}`);
"#,
            corpora.display()
        ),
    );
    let o = yunmin(
        d.path(),
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            "r",
            "--allow-read",
            corpora.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let num = |k: &str| -> f64 {
        out.split(&format!("{k}="))
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {out}"))
    };
    assert!(num("planted") > 50.0 && num("hard") > 50.0, "{out}");
    assert_eq!(num("hard_removed"), 0.0, "{out}");
    assert!(num("precision") >= 0.99, "{out}");
    assert!(num("recall") >= 0.9, "{out}");
}
