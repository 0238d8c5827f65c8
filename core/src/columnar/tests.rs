//! Unit tests of the conversion, validation and readers on small Korean datasets.

use super::*;
use crate::ingest::{Dataset, DatasetWriter, Document};
use crate::text::{Tokenizer, TokenizerConfig};
use std::path::Path;

const TEXTS: [&str; 6] = [
    "대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.",
    "모든 국민은 법 앞에 평등하다. 누구든지 성별·종교 또는 사회적 신분에 의하여 차별을 받지 아니한다.",
    "이 영화 정말 재미있어요 ㅎㅎ 배우들 연기가 최고! 강추합니다 👍",
    "원고의 청구를 기각한다. 소송비용은 원고가 부담한다.",
    "오늘 날씨가 좋아서 한강에서 산책을 했습니다. 漢字도 섞어 봅니다.",
    "청원 제목: 미세먼지 대책을 마련해 주세요\n내용은 다음과 같습니다.",
];

fn doc(i: usize, domain: &str) -> Document {
    Document {
        id: format!("doc-{i}"),
        text: format!("{} ({i})", TEXTS[i % TEXTS.len()]),
        domain: domain.into(),
        source: "unit-test".into(),
        extra: Default::default(),
    }
}

fn dataset(dir: &Path, n: usize, domains: &[&str]) -> Dataset {
    let mut w = DatasetWriter::create(dir, 97).unwrap();
    for i in 0..n {
        w.write(&doc(i, domains[i % domains.len()])).unwrap();
    }
    w.finish().unwrap()
}

fn tokenizer(ds: &Dataset) -> Tokenizer {
    Tokenizer::train(
        ds,
        &TokenizerConfig {
            vocab_size: 400,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn converts_per_domain_with_codecs_schema_files_split_and_readable_tokens() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(&d.path().join("ds"), 1000, &["법률", "movie_reviews"]);
    let tok = tokenizer(&ds);
    let out = d.path().join("data/parquet");
    let cfg = ConvertConfig {
        heldout: 0.1,
        row_group_rows: 100,
        chunk_rows: 64,
        ..Default::default()
    };
    let rep = convert(&ds, &out, &cfg, Some(&tok)).unwrap();
    assert_eq!(rep.domains, ["movie_reviews", "법률"]);
    assert_eq!(rep.rows_written, 1000);
    assert_eq!(rep.rejected, 0);
    let held =
        rep.files["heldout/법률.parquet"].rows + rep.files["heldout/movie_reviews.parquet"].rows;
    assert!((50..150).contains(&held), "about 10% held out, got {held}");
    assert!(
        rep.files["법률.parquet"].row_groups >= 4,
        "row groups of ≤ 100 rows"
    );
    for f in [
        "schema.txt",
        "법률.schema.txt",
        "heldout/법률.schema.txt",
        "rejects.jsonl",
        "parquet_report.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Codecs, read back from the Parquet metadata.
    let (rows, codecs) = column_codecs(&out.join("법률.parquet")).unwrap();
    assert_eq!(rows, rep.files["법률.parquet"].rows);
    assert_eq!(codecs["text"], "BROTLI");
    assert_eq!(codecs["tokens.list.element"], "ZSTD");
    assert_eq!(codecs["id"], "ZSTD");
    assert_eq!(codecs["domain"], "ZSTD");
    // Tokens equal a fresh encoding of the texts, in input order, and the split is the hash.
    let set = ParquetSet::open(&out).unwrap();
    let train = set.read_tokens(Some("법률"), Split::Train).unwrap();
    let expected: Vec<Vec<u32>> = (0..1000)
        .step_by(2)
        .filter(|i| !is_heldout(&format!("doc-{i}"), 42, 0.1))
        .map(|i| tok.encode(&doc(i, "법률").text).unwrap())
        .collect();
    assert_eq!(train, expected);
    assert_eq!(
        set.files(Some("법률"), Split::All).unwrap().rows().unwrap(),
        500
    );
    assert!(
        set.files(Some("nope"), Split::Train)
            .unwrap_err()
            .to_string()
            .contains("domains: movie_reviews, 법률")
    );
    let v = validate(&out.join("heldout/법률.parquet")).unwrap();
    assert_eq!(v.rows, rep.files["heldout/법률.parquet"].rows);
    // Same input, same seed: identical files.
    let out2 = d.path().join("again");
    convert(&ds, &out2, &cfg, Some(&tok)).unwrap();
    assert_eq!(
        std::fs::read(out.join("법률.parquet")).unwrap(),
        std::fs::read(out2.join("법률.parquet")).unwrap()
    );
}

#[test]
fn validate_reports_schema_and_row_count_mismatches() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(&d.path().join("ds"), 50, &["news"]);
    let out = d.path().join("pq");
    convert(&ds, &out, &ConvertConfig::default(), None).unwrap();
    let file = out.join("news.parquet");
    validate(&file).unwrap();
    let schema = out.join("news.schema.txt");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        text.replace("source: utf8 not null", "source: int64 null"),
    )
    .unwrap();
    let err = validate(&file).unwrap_err().to_string();
    assert!(
        err.contains("field 4") && err.contains("source: int64 null"),
        "{err}"
    );
    std::fs::write(&schema, text).unwrap();
    let rp = out.join(REPORT_FILE);
    let mut rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rp).unwrap()).unwrap();
    let rows = rep["files"]["news.parquet"]["rows"].as_u64().unwrap();
    rep["files"]["news.parquet"]["rows"] = (rows + 1).into();
    std::fs::write(&rp, serde_json::to_string(&rep).unwrap()).unwrap();
    let err = validate(&file).unwrap_err().to_string();
    assert!(
        err.contains(&format!("file has {rows} rows"))
            && err.contains(&format!("says {}", rows + 1)),
        "{err}"
    );
}

#[test]
fn bad_rows_and_bad_domains_are_rejected_with_reasons_never_dropped() {
    let d = tempfile::tempdir().unwrap();
    let ds_dir = d.path().join("ds");
    std::fs::create_dir_all(&ds_dir).unwrap();
    let good = |id: &str, domain: &str| {
        serde_json::json!({"id": id, "text": "좋은 문서입니다", "domain": domain, "source": "s", "label": 1}).to_string()
    };
    let lines = [
        good("a", "법률"),
        r#"{"id": "b", "domain": "법률", "source": "s"}"#.to_string(),
        r#"{"id": "c", "text": 5, "domain": "법률", "source": "s"}"#.to_string(),
        "{not json".to_string(),
        "[1, 2]".to_string(),
        good("d", "../x"),
        good("e", "/etc"),
        good("f", ""),
        good("g", "영화 리뷰"),
        r#"{"id": "h", "text": "t", "domain": "법률", "source": "s", "label": "one"}"#.to_string(),
        String::new(),
    ];
    std::fs::write(ds_dir.join("part-00000.jsonl"), lines.join("\n")).unwrap();
    let ds = Dataset::open(&ds_dir).unwrap();
    let out = d.path().join("run/data/parquet");
    let cfg = ConvertConfig {
        heldout: 0.0,
        extras: vec![ExtraField {
            name: "label".into(),
            ty: "int64".into(),
        }],
        ..Default::default()
    };
    let rep = convert(&ds, &out, &cfg, None).unwrap();
    assert_eq!(rep.docs_in, 10);
    assert_eq!(rep.rows_written, 2);
    assert_eq!(rep.rejected, 8);
    assert_eq!(rep.rejected_by_category["domain"], 3);
    assert_eq!(rep.rejected_by_category["json"], 2);
    assert_eq!(rep.rejected_by_category["schema"], 3);
    assert_eq!(rep.domains, ["법률", "영화 리뷰"]);
    let rejects: Vec<serde_json::Value> = std::fs::read_to_string(out.join(REJECTS_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reason = |line: u64| {
        rejects.iter().find(|r| r["line"] == line).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        reason(2).contains("missing required field `text`"),
        "{}",
        reason(2)
    );
    assert!(
        reason(3).contains("`text` must be a string, got a number"),
        "{}",
        reason(3)
    );
    assert!(reason(4).contains("invalid JSON"), "{}", reason(4));
    assert!(reason(5).contains("JSON object"), "{}", reason(5));
    assert!(
        reason(6).contains("escape the output directory"),
        "{}",
        reason(6)
    );
    assert!(reason(8).contains("empty domain"), "{}", reason(8));
    assert!(
        reason(10).contains("`label` must be int64"),
        "{}",
        reason(10)
    );
    assert_eq!(
        rejects.iter().find(|r| r["line"] == 6).unwrap()["raw"],
        lines[5]
    );
    // Nothing was written outside the output directory.
    assert!(!d.path().join("run/data/x.parquet").exists() && !d.path().join("run/data/x").exists());
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"영화 리뷰.parquet".to_string()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with(".parquet")),
        "{names:?}"
    );
    // The extra column is declared in the schema.
    assert!(rep.schema.contains(&"label: int64 null".to_string()));
    // Undeclared fields are rejected when asked to.
    let strict = ConvertConfig {
        unknown_fields: UnknownFields::Reject,
        heldout: 0.0,
        ..Default::default()
    };
    let rep = convert(&ds, &d.path().join("strict"), &strict, None).unwrap();
    assert_eq!(
        rep.rejected_by_category.get("unknown_field").copied(),
        Some(6),
        "{:?}",
        rep.rejected_by_category
    );
}

#[test]
fn huge_document_empty_split_and_empty_dataset() {
    let d = tempfile::tempdir().unwrap();
    let mut w = DatasetWriter::create(d.path().join("ds"), 10).unwrap();
    let huge = "가나다라마바사 아자차카타파하. ".repeat(300_000); // ≈ 6 MB
    w.write(&Document {
        id: "huge".into(),
        text: huge.clone(),
        domain: "big".into(),
        source: "s".into(),
        extra: Default::default(),
    })
    .unwrap();
    w.write(&doc(1, "big")).unwrap();
    let ds = w.finish().unwrap();
    let tok = tokenizer(&ds);
    let cfg = ConvertConfig {
        chunk_mb: 1,
        heldout: 0.5,
        ..Default::default()
    };
    let out = d.path().join("pq");
    let rep = convert(&ds, &out, &cfg, Some(&tok)).unwrap();
    assert_eq!(rep.rows_written, 2);
    let all = ParquetSet::open(&out)
        .unwrap()
        .read_tokens(Some("big"), Split::All)
        .unwrap();
    assert!(
        all.iter().any(|t| t.len() > 100_000),
        "the huge document is tokenised in full"
    );
    assert_eq!(
        tok.decode(all.iter().max_by_key(|t| t.len()).unwrap())
            .unwrap(),
        huge
    );
    // A domain whose only document is held out still has an (empty) train file, and vice versa.
    let ds2 = dataset(&d.path().join("one"), 1, &["solo"]);
    let frac = 0.5;
    let held = is_heldout("doc-0", 42, frac);
    let rep = convert(
        &ds2,
        &d.path().join("one_pq"),
        &ConvertConfig {
            heldout: frac,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(rep.files["solo.parquet"].rows, if held { 0 } else { 1 });
    assert_eq!(
        rep.files["heldout/solo.parquet"].rows,
        if held { 1 } else { 0 }
    );
    validate(&d.path().join("one_pq/solo.parquet")).unwrap();
    validate(&d.path().join("one_pq/heldout/solo.parquet")).unwrap();
    // An empty dataset gives an output with a schema and a report but no files.
    let empty = DatasetWriter::create(d.path().join("empty"), 10)
        .unwrap()
        .finish()
        .unwrap();
    let rep = convert(
        &empty,
        &d.path().join("empty_pq"),
        &ConvertConfig::default(),
        None,
    )
    .unwrap();
    assert!(rep.files.is_empty() && rep.domains.is_empty());
    assert!(d.path().join("empty_pq/schema.txt").exists());
}

/// Every (id, text) of a conversion's training files, in file order.
fn texts(dir: &Path) -> Vec<(String, String)> {
    use arrow::array::AsArray;
    let mut rows = Vec::new();
    let set = ParquetSet::open(dir).unwrap();
    for p in set.report().paths(dir, None, "train") {
        let f = std::fs::File::open(&p).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let (id, text) = (
                b.column(0).as_string::<i32>(),
                b.column(1).as_string::<i32>(),
            );
            rows.extend((0..b.num_rows()).map(|i| (id.value(i).into(), text.value(i).into())));
        }
    }
    rows
}

#[test]
fn c_and_rust_brotli_encoders_write_the_same_rows_with_the_brotli_codec() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(&d.path().join("ds"), 3000, &["법률", "news"]);
    let mut out = Vec::new();
    for enc in [BrotliEncoder::C, BrotliEncoder::Rust] {
        let dir = d.path().join(format!("{enc:?}"));
        let cfg = ConvertConfig {
            brotli_encoder: enc,
            heldout: 0.0,
            row_group_rows: 700,
            ..Default::default()
        };
        convert(&ds, &dir, &cfg, None).unwrap();
        let (_, codecs) = column_codecs(&dir.join("법률.parquet")).unwrap();
        assert_eq!(codecs["text"], "BROTLI", "{enc:?}");
        assert_eq!(codecs["id"], "ZSTD", "{enc:?}");
        out.push(texts(&dir));
    }
    assert_eq!(out[0].len(), 3000);
    assert_eq!(out[0], out[1]);
    assert!("rust".parse::<BrotliEncoder>().unwrap() == BrotliEncoder::Rust);
    let err = "java".parse::<BrotliEncoder>().unwrap_err().to_string();
    assert!(err.contains("must be c or rust"), "{err}");
}

#[test]
fn first_and_last_row_groups_are_cut_small_and_keep_every_row_in_order() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    // About 9 MB of text in two domains: with 1 MiB row groups the start ramps up and the end of
    // the input (the last 2 row groups per thread) is cut evenly.
    let d = tempfile::tempdir().unwrap();
    let mut w = DatasetWriter::create(d.path().join("ds"), 400).unwrap();
    let mut want: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for i in 0..3000usize {
        let domain = if i.is_multiple_of(3) {
            "법률"
        } else {
            "news"
        };
        let text = format!("{} {i}", TEXTS[i % TEXTS.len()].repeat(1 + i % 40));
        want.entry(domain.into())
            .or_default()
            .push((format!("doc-{i}"), text.clone()));
        w.write(&Document {
            id: format!("doc-{i}"),
            text,
            domain: domain.into(),
            source: "unit-test".into(),
            extra: Default::default(),
        })
        .unwrap();
    }
    let ds = w.finish().unwrap();
    let out = d.path().join("pq");
    let cfg = ConvertConfig {
        heldout: 0.0,
        row_group_mb: 1,
        row_group_rows: 500,
        chunk_mb: 1,
        ..Default::default()
    };
    let rep = convert(&ds, &out, &cfg, None).unwrap();
    assert_eq!(rep.rows_written, 3000);
    // Input order within each domain, every row once.
    let got = texts(&out);
    let mut by_domain: std::collections::BTreeMap<String, Vec<(String, String)>> =
        Default::default();
    for (id, text) in got {
        let n: usize = id.trim_start_matches("doc-").parse().unwrap();
        let domain = if n.is_multiple_of(3) {
            "법률"
        } else {
            "news"
        };
        by_domain.entry(domain.into()).or_default().push((id, text));
    }
    assert_eq!(by_domain, want);
    // Row groups never exceed the row bound, and the file holds several.
    for f in rep.files.keys() {
        let r = SerializedFileReader::new(std::fs::File::open(out.join(f)).unwrap()).unwrap();
        let rgs = r.metadata().row_groups();
        assert!(rgs.len() >= 2, "{f}: {} row groups", rgs.len());
        assert!(rgs.iter().all(|rg| rg.num_rows() <= 500), "{f}");
        assert_eq!(
            rgs.iter().map(|rg| rg.num_rows() as u64).sum::<u64>(),
            rep.files[f].rows
        );
        assert_eq!(rgs.len(), rep.files[f].row_groups, "{f}");
    }
}

#[test]
fn opening_a_missing_or_foreign_directory_says_what_a_parquet_set_is() {
    let tmp = tempfile::tempdir().unwrap();
    let e = ParquetSet::open(tmp.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Parquet set directory") && e.contains("nope"),
        "{e}"
    );
    let e = ParquetSet::open(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("not a Parquet set") && e.contains(REPORT_FILE),
        "{e}"
    );
}

/// Every row of every file of a conversion: file → (id, text, tokens) in order.
fn all_rows(dir: &Path) -> std::collections::BTreeMap<String, Vec<(String, String, Vec<i32>)>> {
    use arrow::array::AsArray;
    let set = ParquetSet::open(dir).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for rel in set.report().files.keys() {
        let f = std::fs::File::open(dir.join(rel)).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        let mut rows = Vec::new();
        for b in r {
            let b = b.unwrap();
            let (id, text) = (
                b.column(0).as_string::<i32>(),
                b.column(1).as_string::<i32>(),
            );
            let tokens = b
                .column_by_name("tokens")
                .map(|c| c.as_list::<i32>().clone());
            for i in 0..b.num_rows() {
                let t = tokens.as_ref().map_or(Vec::new(), |l| {
                    let v = l.value(i);
                    let v = v.as_primitive::<arrow::datatypes::Int32Type>();
                    (0..v.len()).map(|j| v.value(j)).collect()
                });
                rows.push((id.value(i).to_string(), text.value(i).to_string(), t));
            }
        }
        out.insert(rel.clone(), rows);
    }
    out
}

#[test]
fn one_conversion_per_domain_gathered_equals_one_conversion() {
    let d = tempfile::tempdir().unwrap();
    let ds_dir = d.path().join("ds");
    std::fs::create_dir_all(&ds_dir).unwrap();
    let mut lines: Vec<String> = Vec::new();
    for i in 0..120 {
        let dm = ["법률", "news", "영화 리뷰"][i % 3];
        lines.push(serde_json::to_string(&doc(i, dm)).unwrap());
        match i % 17 {
            3 => lines.push("{not json".into()),
            5 => lines.push(format!(
                r#"{{"id": "x{i}", "text": 5, "domain": "news", "source": "s"}}"#
            )),
            7 => lines.push(serde_json::to_string(&doc(1000 + i, "../bad")).unwrap()),
            _ => {}
        }
    }
    for (n, chunk) in lines.chunks(50).enumerate() {
        std::fs::write(
            ds_dir.join(format!("part-{n:05}.jsonl")),
            chunk.join("\n") + "\n",
        )
        .unwrap();
    }
    let ds = Dataset::open(&ds_dir).unwrap();
    let tok = tokenizer(&dataset(&d.path().join("good"), 60, &["a"]));
    for layout in [Layout::Flat, Layout::Hf] {
        let cfg = ConvertConfig {
            heldout: 0.3,
            chunk_rows: 16,
            layout,
            ..Default::default()
        };
        let one = d.path().join(format!("{layout:?}/one"));
        let r1 = convert(&ds, &one, &cfg, Some(&tok)).unwrap();
        assert!(r1.rejected >= 8, "{:?}", r1.rejected_by_category);
        let domains = ["../bad", "news", "법률", "영화 리뷰"];
        let out = d.path().join(format!("{layout:?}/parts/pq"));
        let parts: Vec<std::path::PathBuf> = (0..domains.len())
            .map(|i| part_dir(&out, i, domains.len()))
            .collect();
        for (dm, p) in domains.iter().zip(&parts) {
            let c = ConvertConfig {
                domains: vec![dm.to_string()],
                ..cfg.clone()
            };
            convert(&ds, p, &c, Some(&tok)).unwrap();
        }
        let r2 = gather(&ds, &parts, &out, &cfg).unwrap();
        assert_eq!(
            (
                &r1.domains,
                r1.docs_in,
                r1.rows_written,
                r1.tokens_written,
                r1.rejected
            ),
            (
                &r2.domains,
                r2.docs_in,
                r2.rows_written,
                r2.tokens_written,
                r2.rejected
            )
        );
        assert_eq!(r1.rejected_by_category, r2.rejected_by_category);
        assert_eq!(r1.docs_in, lines.len() as u64);
        assert_eq!(all_rows(&one), all_rows(&out));
        assert_eq!(all_rows(&out).len(), 6);
        for f in [REJECTS_FILE, "schema.txt"] {
            assert_eq!(
                std::fs::read_to_string(one.join(f)).unwrap(),
                std::fs::read_to_string(out.join(f)).unwrap(),
                "{f}"
            );
        }
        if layout == Layout::Hf {
            assert_eq!(
                std::fs::read_to_string(one.join("README.md")).unwrap(),
                std::fs::read_to_string(out.join("README.md")).unwrap()
            );
        }
        let read_back = ParquetSet::open(&out).unwrap();
        assert_eq!(read_back.report().config, cfg);
        // A listed domain without documents is an error naming it.
        let c = ConvertConfig {
            domains: vec!["news".into(), "없음".into()],
            ..cfg.clone()
        };
        let e = convert(&ds, &d.path().join("x"), &c, Some(&tok))
            .unwrap_err()
            .to_string();
        assert!(e.contains("없음") && e.contains("no documents"), "{e}");
        // Parts converted with other options are refused.
        let other = ConvertConfig {
            heldout: 0.1,
            ..cfg.clone()
        };
        let e = gather(&ds, &parts, &d.path().join("y"), &other)
            .unwrap_err()
            .to_string();
        assert!(e.contains("other options"), "{e}");
        // A reject whose shard is not one of the dataset's cannot be put in order: refused.
        let rej = parts
            .iter()
            .map(|p| p.join(REJECTS_FILE))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .expect("a part with rejects");
        let text = std::fs::read_to_string(&rej).unwrap();
        let shard = serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap())
            .unwrap()["shard"]
            .as_str()
            .unwrap()
            .to_string();
        std::fs::write(&rej, text.replace(&shard, "/elsewhere/part-77777.jsonl")).unwrap();
        let e = gather(&ds, &parts, &d.path().join("z"), &cfg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("names no shard"), "{e}");
    }
}
