//! Columnar: `yunmin parquet convert|validate`, `yunmin tokenizer`, the Rhai `to_parquet`
//! handle, and interop — the files open in pyarrow, polars and duckdb with the declared schema
//! and per-column codecs, and Python `tokenizers` encodes exactly like the token column.

use std::path::{Path, PathBuf};
use std::process::Command;
use yunmin_core::ingest::{DatasetWriter, Document};
use yunmin_tests::{repo_root, text, write_script, yunmin};

const TEXTS: [&str; 5] = [
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
    "이 영화 정말 재미있어요 ㅎㅎ 배우들 연기가 최고! 강추합니다 👍",
    "원고의 청구를 기각한다. 소송비용은 원고가 부담한다. 判決 2024다12345",
    "오늘 날씨가 좋아서 한강에서 산책을 했습니다.",
    "청원 제목: 미세먼지 대책을 마련해 주세요\n내용은 다음과 같습니다.",
];

fn python() -> PathBuf {
    let p = std::env::var_os("YUNMIN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no Python for the interop tests: set YUNMIN_PYTHON or create {} with \
         `python3 -m venv .venv && .venv/bin/pip install -r scripts/python-requirements/columnar.txt`",
        p.display()
    );
    p
}

/// A dataset with two Unicode domains, one domain that would escape the output directory and
/// one row with a mistyped field.
fn dataset(dir: &Path, n: usize) -> PathBuf {
    let ds = dir.join("ds");
    let mut w = DatasetWriter::create(&ds, 64).unwrap();
    for i in 0..n {
        let domain = match i % 10 {
            9 => "../escape",
            d if d % 2 == 0 => "법률",
            _ => "영화 리뷰",
        };
        w.write(&Document {
            id: format!("doc-{i}"),
            text: format!("{} 문서 {i}", TEXTS[i % TEXTS.len()]),
            domain: domain.into(),
            source: "e2e".into(),
            extra: Default::default(),
        })
        .unwrap();
    }
    w.finish().unwrap();
    let bad = ds.join("part-99999.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"bad\", \"text\": 17, \"domain\": \"법률\", \"source\": \"e2e\"}\n",
    )
    .unwrap();
    ds
}

const INTEROP: &str = r#"
import json, sys
import pyarrow.parquet as pq, polars as pl, duckdb
from tokenizers import Tokenizer
path, tok_path = sys.argv[1], sys.argv[2]
f = pq.ParquetFile(path)
md = f.metadata
codecs = {}
for rg in range(md.num_row_groups):
    for c in range(md.num_columns):
        col = md.row_group(rg).column(c)
        codecs[col.path_in_schema] = col.compression
t = pq.read_table(path)
schema = {fld.name: str(fld.type) for fld in t.schema}
nullable = {fld.name: fld.nullable for fld in t.schema}
df = pl.read_parquet(path)
con = duckdb.connect()
n, s = con.execute("SELECT count(*), sum(n_tokens) FROM read_parquet(?)", [path]).fetchone()
tok = Tokenizer.from_file(tok_path)
texts = t.column("text").to_pylist()
tokens = t.column("tokens").to_pylist()
same = all(tok.encode(x, add_special_tokens=False).ids == y for x, y in zip(texts, tokens))
print(json.dumps({"codecs": codecs, "schema": schema, "nullable": nullable, "rows": t.num_rows,
                  "polars_rows": df.height, "polars_schema": {k: str(v) for k, v in df.schema.items()},
                  "duckdb_rows": n, "duckdb_tokens": int(s or 0), "tokens_match": same, "checked": len(texts),
                  "n_tokens_ok": all(len(y) == m for y, m in zip(tokens, t.column("n_tokens").to_pylist()))}))
"#;

#[test]
fn convert_validate_and_read_from_pyarrow_polars_duckdb_and_python_tokenizers() {
    let py = python();
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), 300);
    let out = d.path().join("run/data/parquet");
    let args = [
        "-q",
        "parquet",
        "convert",
        "--dataset",
        ds.to_str().unwrap(),
        "--out",
        "run",
        "--vocab-size",
        "500",
        "--heldout",
        "0.1",
    ];
    let o = yunmin(d.path(), &args);
    assert!(o.status.success(), "{}", text(&o));
    // The run root's cache answers a rerun (tokenizer and conversion), as a script's would.
    let again = yunmin(d.path(), &args);
    let t = String::from_utf8_lossy(&again.stdout);
    assert!(
        t.contains("reused") && t.contains("(cached"),
        "{}",
        text(&again)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("31 rows rejected"),
        "30 escaping domains + 1 mistyped row: {}",
        text(&o)
    );
    let tok = d.path().join("run/data/tokenizer.json");
    assert!(
        tok.exists(),
        "the trained tokenizer is saved next to the output"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("parquet_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["rows_written"], 270);
    assert_eq!(report["rejected_by_category"]["domain"], 30);
    assert_eq!(report["rejected_by_category"]["schema"], 1);
    assert_eq!(report["domains"], serde_json::json!(["법률", "영화 리뷰"]));
    assert!(
        !d.path().join("run/data/escape.parquet").exists()
            && !d.path().join("run/escape.parquet").exists()
    );
    let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap();
    assert!(
        rejects.contains("would escape the output directory")
            && rejects.contains("`text` must be a string"),
        "{rejects}"
    );

    let o = yunmin(d.path(), &["parquet", "validate", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).matches("ok ").count(),
        4,
        "{}",
        text(&o)
    );

    let script = write_script(d.path(), "interop.py", INTEROP);
    for file in ["법률.parquet", "heldout/영화 리뷰.parquet"] {
        let p = out.join(file);
        let o = Command::new(&py)
            .arg(&script)
            .arg(&p)
            .arg(&tok)
            .output()
            .unwrap();
        assert!(o.status.success(), "{file}: {}", text(&o));
        let v: serde_json::Value =
            serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
        let rows = report["files"][file]["rows"].clone();
        assert_eq!(v["codecs"]["text"], "BROTLI", "{v}");
        assert_eq!(v["codecs"]["tokens.list.element"], "ZSTD", "{v}");
        for c in ["id", "domain", "source", "n_tokens"] {
            assert_eq!(v["codecs"][c], "ZSTD", "{c}: {v}");
        }
        assert_eq!(
            v["schema"],
            serde_json::json!({"id": "string", "text": "string", "domain": "dictionary<values=string, indices=int32, ordered=0>",
                               "source": "string", "tokens": "list<element: int32 not null>", "n_tokens": "int32"}),
            "{v}"
        );
        assert_eq!(v["nullable"]["text"], false);
        assert_eq!(v["rows"], rows);
        assert_eq!(v["polars_rows"], rows);
        assert_eq!(v["polars_schema"]["tokens"], "List(Int32)", "{v}");
        assert_eq!(v["duckdb_rows"], rows);
        assert_eq!(v["duckdb_tokens"], report["files"][file]["tokens"]);
        assert_eq!(
            v["tokens_match"], true,
            "Python tokenizers encodes like the tokens column: {v}"
        );
        assert_eq!(v["n_tokens_ok"], true);
        assert!(v["checked"].as_u64().unwrap() > 0);
    }

    // A tampered report makes validation fail with the mismatch named.
    let rp = out.join("parquet_report.json");
    let mut rep = report.clone();
    rep["files"]["법률.parquet"]["rows"] = 1.into();
    std::fs::write(&rp, rep.to_string()).unwrap();
    let o = yunmin(
        d.path(),
        &[
            "parquet",
            "validate",
            out.join("법률.parquet").to_str().unwrap(),
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("says 1"),
        "{}",
        text(&o)
    );

    // `yunmin tokenizer encode` agrees with the file.
    let o = yunmin(
        d.path(),
        &[
            "tokenizer",
            "encode",
            "--tokenizer",
            tok.to_str().unwrap(),
            "대한민국은 민주공화국이다.",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .split(' ')
            .all(|x| x.parse::<u32>().is_ok()),
        "{}",
        text(&o)
    );
}

#[test]
fn rhai_to_parquet_handle_domains_heldout_and_tokenizer() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), 200);
    let body = format!(
        r#"
let tok = train_tokenizer("{ds}", #{{ vocab_size: 400 }});
print(`vocab=${{tok.vocab_size}}`);
let pq = to_parquet("{ds}", "data/parquet", #{{ tokenizer: tok, heldout: 0.25, text: "zstd:5" }});
print(`domains=${{pq.domains()}}`);
print(`law_rows=${{pq.domain("법률").rows()}}`);
print(`heldout_files=${{pq.heldout().paths.len()}}`);
print(`rejected=${{pq.rejected}}`);
print(`validated=${{pq.validate()}}`);
let ids = tok.encode("대한민국");
print(`roundtrip=${{tok.decode(ids)}}`);
let again = load_tokenizer("data/tokenizer.json");
print(`same=${{again.encode("대한민국") == ids}}`);
"#,
        ds = ds.display()
    );
    let s = write_script(d.path(), "pq.rhai", &body);
    let run = d.path().join("run");
    let o = yunmin(
        d.path(),
        &["run", s.to_str().unwrap(), "--out", run.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("domains=[\"법률\", \"영화 리뷰\"]"), "{out}");
    assert!(
        out.contains("heldout_files=2")
            && out.contains("rejected=21")
            && out.contains("validated=4"),
        "{out}"
    );
    assert!(
        out.contains("roundtrip=대한민국") && out.contains("same=true"),
        "{out}"
    );
    let law: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("law_rows="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(law > 50 && law < 90, "{out}");
    let (_, codecs) =
        yunmin_core::columnar::column_codecs(&run.join("data/parquet/법률.parquet")).unwrap();
    assert_eq!(codecs["text"], "ZSTD", "the text codec option is applied");
    // A rerun hits the stage cache.
    let o = yunmin(
        d.path(),
        &["run", s.to_str().unwrap(), "--out", run.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let log = std::fs::read_to_string(run.join("pipeline_run.log")).unwrap();
    assert!(
        log.lines()
            .rev()
            .take(3)
            .any(|l| l.contains("stage=to_parquet") && l.contains("status=cached")),
        "{log}"
    );

    // Unknown options and bad codecs are errors naming the problem.
    let s = write_script(
        d.path(),
        "bad.rhai",
        &format!(
            "to_parquet(\"{}\", \"x\", #{{ txet: \"zstd\" }});",
            ds.display()
        ),
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r2"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown option `txet`"),
        "{}",
        text(&o)
    );
    let s = write_script(
        d.path(),
        "bad2.rhai",
        &format!(
            "to_parquet(\"{}\", \"x\", #{{ text: \"gzip\", tokenizer: false }});",
            ds.display()
        ),
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r3"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown codec `gzip`"),
        "{}",
        text(&o)
    );
    let s = write_script(
        d.path(),
        "bad3.rhai",
        &format!(
            "to_parquet(\"{}\", \"x\", #{{ brotli_encoder: \"java\", tokenizer: false }});",
            ds.display()
        ),
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r4"]);
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("option `brotli_encoder` = \"java\"")
            && String::from_utf8_lossy(&o.stderr).contains("`rust`"),
        "{}",
        text(&o)
    );
}

/// One CSV of `yunmin parquet bench` as rows of JSON values.
fn bench_rows(path: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let t = yunmin_core::report::Table::read_csv(path).unwrap();
    (0..t.height()).map(|i| t.row(i).unwrap()).collect()
}

fn num(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {row:?}"))
}

#[test]
fn parquet_bench_runs_pyarrow_and_polars_side_by_side_and_accounts_for_every_document() {
    let d = tempfile::tempdir().unwrap();
    let corpora = d.path().join("corpora");
    std::fs::create_dir_all(&corpora).unwrap();
    let lines = |domain: &str| -> String {
        (0..120)
            .map(|i| {
                serde_json::json!({
                    "id": format!("{domain}-{i}"),
                    "text": format!("{} {domain} {i}", TEXTS[i % TEXTS.len()]),
                    "domain": domain,
                    "source": "bench",
                })
                .to_string()
                    + "\n"
            })
            .collect()
    };
    std::fs::write(corpora.join("law.jsonl"), lines("law")).unwrap();
    std::fs::write(
        corpora.join("news.jsonl.zst"),
        zstd::encode_all(lines("news").as_bytes(), 3).unwrap(),
    )
    .unwrap();
    let py = yunmin_tests::python();
    let out = d.path().join("out");
    let o = yunmin(
        d.path(),
        &[
            "bench",
            "parquet",
            "--corpora",
            corpora.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--vocab-size",
            "400",
            "--sweep-docs",
            "40",
            "--rounds",
            "2",
            "--python",
            py.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let dir = out.join("benchmark");

    // Conversion: a median row per engine over 2 rounds each, every document converted.
    let conv = bench_rows(&dir.join("convert_speed.csv"));
    let find = |bench: &str, engine: &str, variant: &str| {
        conv.iter()
            .filter(|r| r["bench"] == bench && r["engine"] == engine)
            .filter(|r| r["variant"].as_str().unwrap().contains(variant))
            .cloned()
            .collect::<Vec<_>>()
    };
    let ours = find("convert", "yunmin", "no tokens, median of 2");
    let peer = find("convert", "pyarrow", "median of 2");
    assert_eq!((ours.len(), peer.len()), (1, 1), "{conv:?}");
    assert_eq!(find("convert_round", "yunmin", "round").len(), 4);
    let rust = find("convert", "yunmin", "rust brotli encoder, median of 2");
    assert_eq!(rust.len(), 1, "{conv:?}");
    assert_eq!(num(&rust[0], "docs"), 240.0);
    assert_eq!(find("convert_round", "pyarrow", "round").len(), 2);
    for r in [&ours[0], &peer[0]] {
        assert_eq!(num(r, "docs"), 240.0, "{r:?}");
        assert!(
            num(r, "seconds") > 0.0 && num(r, "bytes_out") > 0.0,
            "{r:?}"
        );
    }
    // The ratio is pyarrow's median seconds over ours (the CSV rounds seconds to 1 ms).
    let (ps, os) = (num(&peer[0], "seconds"), num(&ours[0], "seconds"));
    let rounding = 0.001 / ps + 0.001 / os;
    assert!(
        (num(&ours[0], "ratio") / (ps / os) - 1.0).abs() <= rounding,
        "{ours:?} {peer:?}"
    );
    let tokenised = find("convert", "yunmin", "tokenised");
    assert_eq!(tokenised.len(), 1);
    assert!(num(&tokenised[0], "tokens") > 240.0);

    // Loader: the Parquet token column holds exactly the tokens of parsing and tokenising the
    // JSONL, and pyarrow and polars read the same counts from the same files.
    let load = bench_rows(&dir.join("io_speed.csv"));
    assert_eq!(load.len(), 4, "{load:?}");
    for r in &load {
        assert_eq!(num(r, "docs"), 240.0, "{r:?}");
        assert_eq!(num(r, "tokens"), num(&tokenised[0], "tokens"), "{r:?}");
    }

    // Codec table: one row per text codec, sizes from the Parquet metadata.
    let codecs = bench_rows(&dir.join("codec_tradeoff.csv"));
    assert_eq!(codecs.len(), 8, "{codecs:?}");
    let size = |v: &str| {
        num(
            codecs
                .iter()
                .find(|r| r["variant"] == format!("text {v}"))
                .unwrap(),
            "bytes_out",
        )
    };
    assert!(size("none") > size("zstd:3") && size("zstd:3") > size("brotli:9"));
    let default = codecs
        .iter()
        .find(|r| r["variant"] == "text brotli:5")
        .unwrap();
    assert_eq!(
        num(default, "ratio"),
        1.0,
        "ratios are relative to the default text codec"
    );
}

#[test]
fn convert_flags_from_a_config_give_back_that_config() {
    use yunmin_core::columnar::{BrotliEncoder, ConvertConfig, ExtraField, Layout, UnknownFields};
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), 30);
    // Every field away from its default: the flags must carry each one.
    let cfg = ConvertConfig {
        text: "zstd:7".into(),
        tokens: "brotli:2".into(),
        other: "snappy".into(),
        brotli_encoder: BrotliEncoder::Rust,
        row_group_rows: 777,
        row_group_mb: 3,
        dictionary: false,
        statistics: "page".into(),
        heldout: 0.25,
        seed: 9,
        extras: vec![ExtraField::parse("label:int64").unwrap()],
        unknown_fields: UnknownFields::Reject,
        chunk_rows: 11,
        chunk_mb: 2,
        buffer_mb: 5,
        layout: Layout::Hf,
        domains: vec!["영화 리뷰".into()],
    };
    assert_ne!(cfg, ConvertConfig::default());
    let out = d.path().join("run/pq");
    let mut args = vec![
        "parquet".to_string(),
        "convert".into(),
        "--no-tokens".into(),
        "--dataset".into(),
        ds.display().to_string(),
        "--out".into(),
        d.path().join("run").display().to_string(),
        "--dir".into(),
        "pq".into(),
    ];
    args.extend(cfg.cli_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = yunmin(d.path(), &args);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("parquet_report.json")).unwrap()).unwrap();
    let back: ConvertConfig = serde_json::from_value(report["config"].clone()).unwrap();
    assert_eq!(back, cfg);
}

/// `yunmin tokenizer train` writes into its run root, as the script's `train_tokenizer` does
/// (`--file` relative to it), and answers a rerun from the stage cache; the script takes the
/// same `file` option.
#[test]
fn tokenizer_train_is_the_cached_stage_in_a_run_root() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), 120);
    let args = [
        "tokenizer",
        "train",
        "--dataset",
        ds.to_str().unwrap(),
        "--out",
        "run",
        "--vocab-size",
        "400",
    ];
    let o = yunmin(d.path(), &args);
    assert!(o.status.success(), "{}", text(&o));
    let file = d.path().join("run/data/tokenizer.json");
    let first = std::fs::read(&file).unwrap();
    let o = yunmin(d.path(), &args);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(cached"),
        "{}",
        text(&o)
    );
    let o = yunmin(
        d.path(),
        &[&args[..], &["--force", "--file", "t.json"]].concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(d.path().join("run/t.json")).unwrap(), first);
    let script = write_script(
        d.path(),
        "t.rhai",
        &format!(
            "let t = train_tokenizer(\"{}\", #{{ vocab_size: 400, file: \"tok/x.json\" }}); print(`v=${{t.vocab_size}}`);",
            ds.display()
        ),
    );
    let o = yunmin(d.path(), &["run", script.to_str().unwrap(), "--out", "s"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(d.path().join("s/tok/x.json")).unwrap(), first);
}
