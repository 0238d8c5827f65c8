//! Parquet and Hugging Face dataset layouts: files written by pyarrow (row groups, a nested
//! struct, a null and a blank text, a dictionary column, binary text with invalid UTF-8, a
//! large-string column, a mistyped text column) mixed with JSONL, read locally and through the S3
//! test server; every row is a document or a reject with its file, row group and row. The `hf`
//! output layout is opened with `datasets.load_dataset`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use yunmin_tests::s3::S3Server;
use yunmin_tests::{python, text, yunmin_bin};

/// Writes the inputs under `argv[1]` and prints, per Parquet file, its rows and row groups as
/// pyarrow reads them, and the texts by id.
const MAKE: &str = r#"
import json, sys, os, pyarrow as pa, pyarrow.parquet as pq
root = sys.argv[1]
os.makedirs(f"{root}/in/kowiki/data", exist_ok=True)
meta_t = pa.struct([("domain", pa.string()), ("url", pa.string())])
def shard(n0, n, split):
    texts = [f"{split} 문서 {i}: 한국어 위키 본문입니다." for i in range(n0, n0 + n)]
    if n0 == 0:
        texts[3] = None
        texts[9] = "   "
    ids = list(range(n0, n0 + n))
    metas = [{"domain": "위키" if i % 2 else "백과", "url": f"https://ko.wikipedia.org/{i}"} for i in ids]
    tags = pa.array(["가" if i % 3 else "나" for i in ids]).dictionary_encode()
    return pa.table({"text": pa.array(texts, pa.string()), "id": pa.array(ids, pa.int64()),
                     "meta": pa.array(metas, meta_t), "tag": tags})
files = {
    "in/kowiki/data/train-00000-of-00002.parquet": (shard(0, 25, "train"), 7),
    "in/kowiki/data/train-00001-of-00002.parquet": (shard(25, 10, "train"), 4),
    "in/kowiki/data/test-00000-of-00001.parquet": (shard(100, 6, "test"), None),
}
bins = [f"바이너리 {i}".encode() for i in range(8)]
bins[2] = b"\xff\xfe broken"
files["in/bin.parquet"] = (pa.table({"text": pa.array(bins, pa.binary()),
    "id": pa.array([f"b{i}" for i in range(8)]),
    "meta": pa.array([{"domain": "bin", "url": None}] * 8, meta_t)}), 3)
files["in/ints.parquet"] = (pa.table({"text": pa.array([1, 2, None], pa.int64()),
    "id": ["i0", "i1", "i2"]}), None)
files["in/large.parquet"] = (pa.table({"text": pa.array([f"큰 문자열 {i}" for i in range(20)], pa.large_string()),
    "meta": pa.array([{"domain": "large", "url": "u"}] * 20, meta_t)}), 6)
def raw_strings(vals):
    # A string column holding bytes as given (invalid UTF-8 included), as a broken writer leaves it.
    offs = [0]
    for v in vals:
        offs.append(offs[-1] + len(v))
    return pa.Array.from_buffers(pa.string(), len(vals),
        [None, pa.array(offs, pa.int32()).buffers()[1], pa.py_buffer(b"".join(vals))])
files["in/badstr.parquet"] = (pa.table({
    "text": raw_strings(["좋은 문서".encode(), b"bad \xff text", "또 좋은 문서".encode(), "넷째 문서".encode()]),
    "id": ["s0", "s1", "s2", "s3"], "note": raw_strings([b"a", b"b", b"\xfe", b"d"]),
    "tag": pa.array([None, "m", "y", "z"], pa.string())}), None)
out = {}
for rel, (t, rg) in files.items():
    p = f"{root}/{rel}"
    pq.write_table(t, p, row_group_size=rg) if rg else pq.write_table(t, p)
    f = pq.ParquetFile(p)
    back = pq.read_table(p, columns=["id"] if "badstr" in rel else None)
    texts = {}
    if "badstr" not in rel and (pa.types.is_string(back.schema.field("text").type) or pa.types.is_large_string(back.schema.field("text").type)):
        ids = back.column("id").to_pylist() if "id" in back.column_names else list(range(back.num_rows))
        texts = {str(i): x for i, x in zip(ids, back.column("text").to_pylist()) if x and x.strip()}
    out[rel] = {"rows": f.metadata.num_rows, "row_groups": f.num_row_groups, "texts": texts,
                "row_group_rows": [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)]}
with open(f"{root}/in/mixed.jsonl", "w") as fh:
    for i in range(4):
        fh.write(json.dumps({"id": f"j{i}", "text": f"JSONL 문서 {i}", "meta": {"domain": "jsonl"}}, ensure_ascii=False) + "\n")
    fh.write(json.dumps({"id": "j-bad", "meta": {"domain": "jsonl"}}) + "\n")
print(json.dumps(out))
"#;

fn run(cwd: &Path, args: &[&str], env: &[(&'static str, String)]) -> Output {
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

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", text(o));
}

fn jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn docs(run: &Path) -> Vec<serde_json::Value> {
    let dir = run.join("data/dedup_ready");
    let mut shards: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    shards.sort();
    shards.iter().flat_map(|p| jsonl(p)).collect()
}

fn make_inputs(dir: &Path) -> serde_json::Value {
    let o = Command::new(python())
        .args(["-c", MAKE, dir.to_str().unwrap()])
        .output()
        .expect("run python");
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Per source (relative to `in/`): (lines, valid, rejected, split, reasons).
fn per_source(run: &Path, prefix: &str) -> BTreeMap<String, serde_json::Value> {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("ingest_report.json")).unwrap())
            .unwrap();
    r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["source"].as_str().unwrap();
            let rel = name.split_once(prefix).map(|x| x.1).unwrap_or(name);
            (rel.to_string(), s.clone())
        })
        .collect()
}

#[test]
fn parquet_and_jsonl_every_row_accounted_with_row_group_and_row() {
    let d = tempfile::tempdir().unwrap();
    let expect = make_inputs(d.path());
    let o = run(
        d.path(),
        &[
            "ingest",
            "--input",
            "in",
            "--domain-field",
            "meta.domain",
            "--out",
            "run",
            "--batch-rows",
            "5",
        ],
        &[],
    );
    ok(&o);
    let run_dir = d.path().join("run");
    let sources = per_source(&run_dir, "in/");
    assert_eq!(sources.len(), 8, "{sources:?}");
    // valid + rejected = rows read = pyarrow's row count, per Parquet file.
    for (rel, e) in expect.as_object().unwrap() {
        let s = &sources[rel.strip_prefix("in/").unwrap()];
        assert_eq!(s["format"], "parquet");
        assert_eq!(s["lines"], e["rows"], "{rel}");
        assert_eq!(
            s["valid"].as_u64().unwrap() + s["rejected"].as_u64().unwrap(),
            e["rows"].as_u64().unwrap(),
            "{rel}"
        );
    }
    let m = &sources["mixed.jsonl"];
    assert_eq!(
        (m["format"].as_str(), m["lines"].as_u64()),
        (Some("jsonl"), Some(5))
    );
    let t0 = &sources["kowiki/data/train-00000-of-00002.parquet"];
    assert_eq!(t0["split"], "train");
    assert_eq!(
        sources["kowiki/data/test-00000-of-00001.parquet"]["split"],
        "test"
    );
    assert_eq!(
        t0["reasons"],
        serde_json::json!({"missing_text": 1, "empty_text": 1})
    );
    assert_eq!(
        sources["bin.parquet"]["reasons"],
        serde_json::json!({"invalid_utf8": 1})
    );
    // Invalid UTF-8 in a string column is the row's problem, in the text or in a kept field.
    assert_eq!(
        sources["badstr.parquet"]["reasons"],
        serde_json::json!({"invalid_utf8": 2})
    );
    assert_eq!(sources["badstr.parquet"]["valid"], 2);
    // Read again as bytes, the other string columns keep their values and nulls in place.
    let all = docs(&run_dir);
    let by_id = |id: &str| all.iter().find(|d| d["id"] == id).unwrap().clone();
    assert_eq!(
        (by_id("s0")["note"].clone(), by_id("s0")["tag"].clone()),
        (serde_json::json!("a"), serde_json::Value::Null)
    );
    assert_eq!(
        (by_id("s3")["note"].clone(), by_id("s3")["tag"].clone()),
        (serde_json::json!("d"), serde_json::json!("z"))
    );
    assert_eq!(
        sources["ints.parquet"]["reasons"],
        serde_json::json!({"wrong_type": 2, "missing_text": 1})
    );

    // Rejects name the file, row group and row (row groups of 7 rows: row 9 is in group 1).
    let rejects = jsonl(&run_dir.join("data/rejected/rejected.jsonl"));
    let find = |src: &str, row: u64| {
        rejects
            .iter()
            .find(|r| r["source"].as_str().unwrap().ends_with(src) && r["row"] == row)
            .unwrap_or_else(|| panic!("no reject {src} row {row}: {rejects:?}"))
            .clone()
    };
    let r = find("train-00000-of-00002.parquet", 3);
    assert_eq!(
        (r["row_group"].as_u64(), r["reason"].as_str()),
        (Some(0), Some("missing_text"))
    );
    let r = find("train-00000-of-00002.parquet", 9);
    assert_eq!(
        (r["row_group"].as_u64(), r["reason"].as_str()),
        (Some(1), Some("empty_text"))
    );
    let r = find("bin.parquet", 2);
    assert_eq!(
        (r["row_group"].as_u64(), r["reason"].as_str()),
        (Some(0), Some("invalid_utf8"))
    );
    assert!(r["raw_b64"].is_string(), "{r}");
    let r = find("badstr.parquet", 1);
    assert_eq!(r["reason"], "invalid_utf8");
    let r = find("badstr.parquet", 2);
    assert_eq!(r["reason"], "invalid_utf8");
    assert!(r["detail"].as_str().unwrap_or("").contains("`note`"), "{r}");
    let r = find("ints.parquet", 1);
    assert_eq!(
        (r["reason"].as_str(), r["raw"].as_str()),
        (Some("wrong_type"), Some("2"))
    );
    assert!(
        rejects
            .iter()
            .any(|r| r["line"] == 5 && r["reason"] == "missing_text")
    );

    // Documents: texts equal pyarrow's, domains from the nested struct, the split recorded, the
    // dictionary column and the struct kept as extras.
    let all = docs(&run_dir);
    assert_eq!(
        all.len() as u64,
        sources
            .values()
            .map(|s| s["valid"].as_u64().unwrap())
            .sum::<u64>()
    );
    for (rel, e) in expect.as_object().unwrap() {
        for (id, t) in e["texts"].as_object().unwrap() {
            let doc = all
                .iter()
                .find(|x| {
                    x["source"].as_str().unwrap().ends_with(rel.as_str())
                        && (x["id"] == id.as_str() || rel.ends_with("large.parquet"))
                        && x["text"] == *t
                })
                .unwrap_or_else(|| panic!("{rel}: no document with id {id} and text {t}"));
            assert!(doc["domain"].is_string());
        }
    }
    let d6 = all.iter().find(|x| x["id"] == "6").unwrap();
    assert_eq!(d6["domain"], "백과");
    assert_eq!(d6["split"], "train");
    assert_eq!(d6["tag"], "나");
    assert_eq!(d6["meta"]["url"], "https://ko.wikipedia.org/6");
    let b0 = all.iter().find(|x| x["id"] == "b0").unwrap();
    assert!(
        b0["meta"]["url"].is_null() && b0["meta"].get("url").is_some(),
        "{b0}"
    );
    let large = all.iter().find(|x| x["domain"] == "large").unwrap();
    assert!(
        large["id"].as_str().unwrap().ends_with("large.parquet:0"),
        "{large}"
    );
    let j = all.iter().find(|x| x["id"] == "j1").unwrap();
    assert_eq!(
        (j["domain"].as_str(), j["text"].as_str()),
        (Some("jsonl"), Some("JSONL 문서 1"))
    );

    // Projection: without extras only the mapped columns are read and written.
    let o = run(
        d.path(),
        &[
            "ingest",
            "-i",
            "in/kowiki",
            "-i",
            "in/large.parquet",
            "--text-field",
            "text",
            "--domain-field",
            "meta.domain",
            "--keep-extras",
            "false",
            "--out",
            "run2",
        ],
        &[],
    );
    ok(&o);
    let docs2 = docs(&d.path().join("run2"));
    assert_eq!(docs2.len(), 39 + 20);
    for x in &docs2 {
        let keys: Vec<&String> = x.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["id", "text", "domain", "source", "split"].contains(&k.as_str())),
            "{x}"
        );
    }

    // A mapped field that names nothing is a missing text, and a bad path is an error naming it.
    let o = run(
        d.path(),
        &[
            "ingest",
            "-i",
            "in/large.parquet",
            "--text-field",
            "body",
            "--out",
            "run3",
        ],
        &[],
    );
    ok(&o);
    let s = per_source(&d.path().join("run3"), "in/");
    assert_eq!(
        s["large.parquet"]["reasons"],
        serde_json::json!({"missing_text": 20})
    );
    let o = run(
        d.path(),
        &[
            "ingest",
            "-i",
            "in",
            "--text-field",
            "meta..x",
            "--out",
            "run4",
        ],
        &[],
    );
    assert!(
        !o.status.success() && text(&o).contains("text_field"),
        "{}",
        text(&o)
    );
}

#[test]
fn parquet_through_s3_matches_local() {
    let d = tempfile::tempdir().unwrap();
    make_inputs(d.path());
    let srv = S3Server::start(&d.path().join("s3"), None);
    for rel in [
        "kowiki/data/train-00000-of-00002.parquet",
        "kowiki/data/train-00001-of-00002.parquet",
        "kowiki/data/test-00000-of-00001.parquet",
        "bin.parquet",
        "large.parquet",
        "badstr.parquet",
        "mixed.jsonl",
    ] {
        srv.put(
            "corpus",
            &format!("pq/{rel}"),
            &std::fs::read(d.path().join("in").join(rel)).unwrap(),
        );
    }
    std::fs::remove_file(d.path().join("in/ints.parquet")).unwrap();
    let env = srv.client_env();
    let args = |input: &str, out: &str| {
        vec![
            "ingest".to_string(),
            "--input".into(),
            input.into(),
            "--out".into(),
            out.into(),
            "--endpoint-url".into(),
            srv.endpoint.clone(),
            "--domain-field".into(),
            "meta.domain".into(),
        ]
    };
    for (input, out) in [("s3://corpus/pq/", "s3run"), ("in", "localrun")] {
        let a = args(input, out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(&run(d.path(), &a, &env));
    }
    let strip = |v: Vec<serde_json::Value>| {
        let mut v: Vec<String> = v
            .into_iter()
            .map(|mut x| {
                let s = x["source"].as_str().unwrap().to_string();
                let rel = s
                    .rsplit_once("pq/")
                    .or_else(|| s.rsplit_once("in/"))
                    .unwrap()
                    .1
                    .to_string();
                let id = x["id"].as_str().unwrap().replace(&s, &rel);
                x["source"] = rel.into();
                x["id"] = id.into();
                x.to_string()
            })
            .collect();
        v.sort();
        v
    };
    let s3 = strip(docs(&d.path().join("s3run")));
    assert_eq!(s3.len(), 23 + 10 + 6 + 7 + 20 + 2 + 4);
    assert_eq!(s3, strip(docs(&d.path().join("localrun"))));
    let s = per_source(&d.path().join("s3run"), "pq/");
    assert_eq!(
        s["kowiki/data/train-00001-of-00002.parquet"]["split"],
        "train"
    );
    assert_eq!(s["bin.parquet"]["rejected"], 1);
    assert_eq!(s["badstr.parquet"]["rejected"], 2);
}

#[test]
fn hf_layout_output_opens_in_datasets() {
    let d = tempfile::tempdir().unwrap();
    make_inputs(d.path());
    ok(&run(
        d.path(),
        &[
            "ingest",
            "-i",
            "in",
            "--domain-field",
            "meta.domain",
            "--out",
            "run",
        ],
        &[],
    ));
    ok(&run(
        d.path(),
        &[
            "parquet",
            "convert",
            "--dataset",
            "run/data/dedup_ready",
            "--out",
            ".",
            "--dir",
            "hf",
            "--no-tokens",
            "--layout",
            "hf",
            "--heldout",
            "0.3",
        ],
        &[],
    ));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("hf/parquet_report.json")).unwrap(),
    )
    .unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for (rel, f) in report["files"].as_object().unwrap() {
        assert!(rel.ends_with("-00000-of-00001.parquet"), "{rel}");
        *want
            .entry(f["split"].as_str().unwrap().to_string())
            .or_default() += f["rows"].as_u64().unwrap();
    }
    assert!(want["heldout"] > 0 && want["train"] > 0, "{want:?}");
    ok(&run(d.path(), &["parquet", "validate", "hf"], &[]));
    let script = r#"
import json, sys, datasets
out = sys.argv[1]
a = datasets.load_dataset("parquet", data_dir=out)
b = datasets.load_dataset(out)
c = datasets.load_dataset(out, "위키")
print(json.dumps({"data_dir": {k: v.num_rows for k, v in a.items()},
                  "card": {k: v.num_rows for k, v in b.items()},
                  "wiki": sorted(set(c["train"]["domain"]) | set(c["heldout"]["domain"])),
                  "columns": b["train"].column_names}))
"#;
    let o = Command::new(python())
        .args(["-c", script, d.path().join("hf").to_str().unwrap()])
        .env("HF_DATASETS_CACHE", d.path().join("hf_cache"))
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let got: serde_json::Value = serde_json::from_slice(
        o.stdout
            .rsplit(|b| *b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(got["data_dir"], serde_json::json!({"train": want["train"]}));
    assert_eq!(
        got["card"],
        serde_json::json!({"train": want["train"], "heldout": want["heldout"]})
    );
    assert_eq!(got["wiki"], serde_json::json!(["위키"]));
    assert_eq!(
        got["columns"],
        serde_json::json!(["id", "text", "domain", "source"])
    );

    // Read back: the layout's own shards are recognised as splits of their domain.
    ok(&run(
        d.path(),
        &["ingest", "-i", "hf", "--out", "back"],
        &[],
    ));
    let s = per_source(&d.path().join("back"), "hf/");
    assert_eq!(s["위키/heldout-00000-of-00001.parquet"]["split"], "heldout");
    let back = docs(&d.path().join("back"));
    assert_eq!(back.len() as u64, want["train"] + want["heldout"]);
    assert!(
        back.iter()
            .all(|x| x["orig_source"].is_string() && x["split"].is_string())
    );
}

#[test]
fn dedup_and_parquet_convert_take_raw_inputs() {
    let d = tempfile::tempdir().unwrap();
    make_inputs(d.path());
    let o = run(
        d.path(),
        &[
            "parquet",
            "convert",
            "-i",
            "in/large.parquet",
            "-i",
            "in/mixed.jsonl",
            "--domain-field",
            "meta.domain",
            "--no-tokens",
            "--out",
            "pq",
        ],
        &[],
    );
    ok(&o);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("pq/data/parquet/parquet_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["rows_written"], 24);
    assert_eq!(report["domains"], serde_json::json!(["jsonl", "large"]));
    let o = run(
        d.path(),
        &[
            "dedup",
            "-i",
            "in/kowiki",
            "--domain-field",
            "meta.domain",
            "--out",
            "dd",
        ],
        &[],
    );
    ok(&o);
    let s = per_source(&d.path().join("dd/ingest"), "in/");
    assert_eq!(s.len(), 3);
    assert!(text(&o).contains("39 documents"), "{}", text(&o));
}

/// `yunmin bench ingest --pyarrow`: a row for the ingest and one for pyarrow reading the same
/// files, both counting every row and timed as whole commands too; reruns instead of answering
/// from the cache; has no parts.
#[test]
fn bench_ingest_writes_a_row_for_the_ingest_and_for_pyarrow() {
    let d = tempfile::tempdir().unwrap();
    make_inputs(d.path());
    let py = [("YUNMIN_PYTHON", python().display().to_string())];
    let args = [
        "bench",
        "ingest",
        "--input",
        "in/kowiki",
        "--out",
        "run",
        "--csv",
        "b.csv",
        "--label",
        "wiki",
        "--pyarrow",
        // Given to the whole-command child as well.
        "--batch-rows",
        "7",
    ];
    ok(&run(d.path(), &args, &py));
    let o = run(d.path(), &args, &py);
    ok(&o);
    assert!(!text(&o).contains("cached"), "{}", text(&o));
    let csv = std::fs::read_to_string(d.path().join("b.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let col = |name: &str| rows[0].iter().position(|c| *c == name).unwrap();
    let (label, lines, mb, peak) = (col("label"), col("lines"), col("mb"), col("peak_rss_mb"));
    assert_eq!(rows.len(), 5, "a header and two rows per run: {csv}");
    for (r, want) in rows[1..]
        .iter()
        .zip(["wiki", "wiki pyarrow-read"].repeat(2))
    {
        assert_eq!(r[label], want);
        // 25 + 10 + 6 rows in the three shards, each counted by both readers.
        assert_eq!(r[lines], "41", "{csv}");
        assert!(r[mb].parse::<f64>().unwrap() > 0.0, "{csv}");
        assert!(r[peak].parse::<f64>().unwrap() > 1.0, "{csv}");
        // Both also timed as whole commands, process start to exit.
        assert!(r[col("command_s")].parse::<f64>().unwrap() > 0.0, "{csv}");
        assert!(
            r[col("command_peak_mb")].parse::<f64>().unwrap() > 1.0,
            "{csv}"
        );
    }
    // The whole-command ingest ran with the bench's options into its own run root.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("run/command/ingest_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["totals"]["lines"], 41, "{report}");
    assert_eq!(
        report["totals"]["valid"], 39,
        "two rows without text: {report}"
    );
    let o = run(d.path(), &[&args[..], &["--part", "0/2"]].concat(), &py);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("unexpected argument '--part'"),
        "{}",
        text(&o)
    );
}
