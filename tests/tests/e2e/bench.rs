//! `yunmin bench merge|metrics|dedup|dedup-stages` on small inputs: each runs yunmin and its
//! real peers (NumPy, sacreBLEU and rouge-score, datasketch and rensa) and writes CSV rows
//! whose numbers agree between the two sides. (`bench parquet` and `bench ingest` are tested
//! with their phases.)

use std::path::Path;
use yunmin_core::report::Table;
use yunmin_tests::{python, text, yunmin_bin};

type Row = serde_json::Map<String, serde_json::Value>;

fn rows(path: &Path) -> Vec<Row> {
    let t = Table::read_csv(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (0..t.height()).map(|i| t.row(i).unwrap()).collect()
}

fn num(r: &Row, key: &str) -> f64 {
    r[key].as_f64().unwrap_or_else(|| panic!("{key} in {r:?}"))
}

fn bench(cwd: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new(yunmin_bin())
        .arg("bench")
        .args(args)
        .current_dir(cwd)
        .env("YUNMIN_PYTHON", python())
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const WORDS: [&str; 24] = [
    "서울",
    "시장",
    "경제",
    "정책",
    "발표",
    "학교",
    "학생",
    "선생님",
    "영화",
    "배우",
    "감독",
    "음악",
    "공연",
    "날씨",
    "비",
    "바람",
    "병원",
    "의사",
    "환자",
    "도서관",
    "책",
    "소설",
    "시인",
    "그림",
];

/// A text of `n` words drawn from a seeded walk over [`WORDS`].
fn words(seed: usize, n: usize) -> String {
    let mut x = seed as u64 * 2_654_435_761 + 1;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            WORDS[(x >> 33) as usize % WORDS.len()]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Two small corpora: short and long documents, every fifth a copy of the one before with one
/// word changed (a near-duplicate), so every tool has something to remove.
fn corpora(dir: &Path) -> std::path::PathBuf {
    let c = dir.join("corpora");
    std::fs::create_dir_all(&c).unwrap();
    for (domain, n_words) in [("news", 12), ("wiki", 160)] {
        let mut out = String::new();
        let mut prev = String::new();
        for i in 0..60 {
            let t = if i % 5 == 4 {
                format!("{prev} 끝")
            } else {
                words(i + n_words, n_words)
            };
            out.push_str(
                &serde_json::json!({"id": format!("{domain}-{i}"), "text": t, "domain": domain})
                    .to_string(),
            );
            out.push('\n');
            prev = t;
        }
        std::fs::write(c.join(format!("{domain}.jsonl")), out).unwrap();
    }
    c
}

/// `bench merge`: yunmin's merge and the NumPy reference on the same random checkpoint and
/// diffs and mergekit from the adapters (their outputs agree), the ceilings and the in-memory
/// sweep point, with peak memory.
#[test]
fn bench_merge_measures_yunmin_and_the_numpy_reference_on_the_same_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let out = bench(
        d.path(),
        &[
            "merge",
            "--dir",
            "m",
            "--layers",
            "1",
            "--hidden",
            "96",
            "--domains",
            "2",
            "--rank",
            "4",
            "--reps",
            "1",
            "--sweep-docs",
            "4",
            "--csv",
            "merge.csv",
        ],
    );
    assert!(out.contains("outputs agree"), "{out}");
    // The sweep point scores 2 domains × 4 documents of 128 tokens: 127 predictions each.
    assert!(
        out.contains("perplexity of 8 documents (1016 tokens)"),
        "{out}"
    );
    // The k-th agreement the bench reports (NumPy reference, then mergekit).
    let l2 = |k: usize| -> f64 {
        out.split("relative L2 difference ")
            .nth(k)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{out}"))
    };
    let worst = l2(1);
    assert!(worst < 1e-5, "{worst}");
    // mergekit from the base and the adapters: the same merged checkpoint.
    let mk = l2(2);
    assert!(out.contains("(mergekit)") && mk < 1e-5, "{out}");
    let r = rows(&d.path().join("merge.csv"));
    let find = |tool: &str, op: &str| {
        r.iter()
            .find(|x| x["tool"] == tool && x["operation"] == op)
            .unwrap_or_else(|| panic!("{tool} {op} in {r:?}"))
    };
    for (tool, op) in [
        ("yunmin", "merge_task_arithmetic"),
        ("numpy_reference", "merge_task_arithmetic"),
        ("mergekit", "merge_task_arithmetic_from_adapters"),
    ] {
        let m = find(tool, op);
        assert!(
            num(m, "seconds") > 0.0 && num(m, "peak_rss_mb") > 1.0,
            "{m:?}"
        );
    }
    assert!(num(find("yunmin", "in_memory_merge_point"), "gb_per_s") > 0.0);
    assert!(num(find("yunmin", "in_memory_sweep_point_2x4docs"), "seconds") > 0.0);
    assert!(num(find("yunmin", "diff_d1"), "seconds") > 0.0);
    assert!(r.iter().all(|x| num(x, "params") > 1e6), "{r:?}");
}

/// `bench metrics`: BLEU and ROUGE timed against sacreBLEU and rouge-score on the same pairs,
/// with both sides' scores equal.
#[test]
fn bench_metrics_scores_agree_with_sacrebleu_and_rouge_score() {
    let d = tempfile::tempdir().unwrap();
    let c = corpora(d.path());
    bench(
        d.path(),
        &[
            "metrics",
            "--corpora",
            c.to_str().unwrap(),
            "--files",
            "news.jsonl,wiki.jsonl",
            "--pairs",
            "120",
            "--repeats",
            "1",
            "--csv",
            "metrics.csv",
        ],
    );
    let r = rows(&d.path().join("metrics.csv"));
    assert!(r.len() >= 6, "BLEU 13a and char, four ROUGE types: {r:?}");
    for x in &r {
        assert!(num(x, "abs_diff") < 1e-6, "{x:?}");
        assert!(
            num(x, "rust_seconds") > 0.0 && num(x, "python_seconds") > 0.0,
            "{x:?}"
        );
    }
}

/// `bench dedup`: yunmin (in process and as a process) and both peers on the short, long and
/// mixed documents, each removing the planted near-duplicates, with the ratios filled in.
#[test]
fn bench_dedup_runs_yunmin_datasketch_and_rensa_on_each_mix() {
    let d = tempfile::tempdir().unwrap();
    let c = corpora(d.path());
    bench(
        d.path(),
        &[
            "dedup",
            "--corpora",
            c.to_str().unwrap(),
            "--docs",
            "120",
            "--short-max",
            "200",
            "--long-min",
            "300",
            "--csv",
            "dedup.csv",
            "--work",
            "w",
        ],
    );
    let r = rows(&d.path().join("dedup.csv"));
    for mix in ["short", "long", "corpora"] {
        for tool in ["yunmin-sign", "yunmin", "datasketch", "rensa"] {
            let x = r
                .iter()
                .find(|x| x["mix"] == mix && x["tool"] == tool)
                .unwrap_or_else(|| panic!("{mix} {tool} in {r:?}"));
            if tool == "yunmin-sign" {
                continue;
            }
            assert!(num(x, "removed") >= 10.0, "{x:?}");
            assert!(
                num(x, "seconds_with_start") > 0.0 && num(x, "peak_mib") > 1.0,
                "{x:?}"
            );
            if tool == "yunmin" {
                assert!(num(x, "x_datasketch") > 0.0 && num(x, "x_rensa_with_start") > 0.0);
            }
        }
    }
}

/// `bench dedup-stages`: MinHash, OPH and OPH-estimate stages beside datasketch's MinHashLSH
/// on the same sample, with the speed-up column filled in for the whole dedup.
#[test]
fn bench_dedup_stages_compares_each_hashing_with_datasketch() {
    let d = tempfile::tempdir().unwrap();
    let c = corpora(d.path());
    bench(
        d.path(),
        &[
            "dedup-stages",
            "--corpora",
            c.to_str().unwrap(),
            "--docs",
            "120",
            "--csv",
            "stages.csv",
        ],
    );
    let r = rows(&d.path().join("stages.csv"));
    for tool in ["yunmin", "yunmin-oph", "yunmin-oph-estimate", "datasketch"] {
        let x = r
            .iter()
            .find(|x| x["tool"] == tool && x["task"] == "dedup" && num(x, "threads") == 1.0)
            .unwrap_or_else(|| panic!("{tool} in {r:?}"));
        assert!(num(x, "removed") >= 20.0, "{x:?}");
        assert!(num(x, "speedup_vs_datasketch") > 0.0, "{x:?}");
    }
}

/// No benchmark reads outside the repository unless told: without `--corpora` or
/// `$YUNMIN_CORPORA` the corpora benchmarks stop with an error saying so.
#[test]
fn corpora_benchmarks_need_the_corpora_named() {
    let d = tempfile::tempdir().unwrap();
    for what in ["dedup", "dedup-stages", "metrics", "parquet"] {
        let o = std::process::Command::new(yunmin_bin())
            .args(["bench", what])
            .current_dir(d.path())
            .env("YUNMIN_PYTHON", python())
            .env_remove("YUNMIN_CORPORA")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{what}: {}", text(&o));
        assert!(
            text(&o).contains("--corpora is required"),
            "{what}: {}",
            text(&o)
        );
    }
}

/// `bench train` and `bench eval`: yunmin and PyTorch (+ PEFT) on the same transformers-written
/// checkpoint and tokens, a row each with tokens/s and the ratio, PyTorch's peak memory (and
/// yunmin's, a process of its own when training).
#[test]
fn bench_train_and_eval_measure_yunmin_beside_pytorch_on_one_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    bench(
        d.path(),
        &[
            "train",
            "--work",
            "w",
            "--rounds",
            "1",
            "--threads",
            "1",
            "--steps",
            "3",
            "--csv",
            "train.csv",
        ],
    );
    // The checkpoint and tokens the training run generated, one round on one thread.
    let given = |mode: &str, more: &[&str]| -> String {
        let mut args = vec![
            mode,
            "--work",
            "w",
            "--base",
            "w/base",
            "--tokens",
            "w/tokens.jsonl",
            "--rounds",
            "1",
            "--threads",
            "1",
        ];
        args.extend_from_slice(more);
        bench(d.path(), &args)
    };
    given("eval", &["--windows", "32", "--csv", "eval.csv"]);
    for (csv, mode, checkpoint) in [
        ("train.csv", "train", "pipeline"),
        ("eval.csv", "eval", "w/base"),
    ] {
        let r = rows(&d.path().join(csv));
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(
            r.iter()
                .all(|x| x["checkpoint"].as_str() == Some(checkpoint)),
            "{r:?}"
        );
        let (ours, peer) = (&r[0], &r[1]);
        assert_eq!(
            (ours["tool"].as_str(), peer["tool"].as_str()),
            (Some("yunmin"), Some("pytorch"))
        );
        assert!(
            r.iter()
                .all(|x| x["mode"] == mode && num(x, "tokens_per_s") > 0.0),
            "{r:?}"
        );
        let ratio = num(ours, "tokens_per_s") / num(peer, "tokens_per_s");
        assert!(
            (num(ours, "ratio_to_pytorch") - ratio).abs() < 1e-2,
            "{r:?}"
        );
        assert!(num(peer, "peak_rss_mib") > 50.0, "{r:?}");
        // Every row names the CPU it ran on (ratios depend on it).
        assert!(
            r.iter()
                .all(|x| x["cpu"].as_str().is_some_and(|c| !c.is_empty())),
            "{r:?}"
        );
        if mode == "train" {
            assert!(num(ours, "peak_rss_mib") > 1.0, "{r:?}");
        }
    }
    // Greedy generation on both sides from the same prompts: a row each, and the peer's row
    // says how far the tokens agree (both made 2 × 6 tokens, or the bench fails).
    given(
        "generate",
        &[
            "--prompts",
            "2",
            "--prompt-len",
            "8",
            "--new-tokens",
            "6",
            "--csv",
            "gen.csv",
        ],
    );
    let r = rows(&d.path().join("gen.csv"));
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(
        r.iter().all(|x| x["checkpoint"].as_str() == Some("w/base")),
        "{r:?}"
    );
    // A given checkpoint is never replaced by a generated one, and a flag it leaves unused is
    // an error naming it.
    let before = std::fs::read(d.path().join("w/base/model.safetensors")).unwrap();
    for (args, says) in [
        (vec!["--base", "w/base"], "--base and --tokens go together"),
        (
            vec![
                "--base",
                "w/base",
                "--tokens",
                "w/tokens.jsonl",
                "--shape",
                "135m",
            ],
            "--shape chooses the generated checkpoint",
        ),
        (
            vec![
                "--base",
                "w/base",
                "--tokens",
                "w/tokens.jsonl",
                "--steps",
                "3",
            ],
            "bench generate: --steps would be unused in this mode",
        ),
    ] {
        let o = std::process::Command::new(yunmin_bin())
            .args(["bench", "generate", "--work", "w"])
            .args(&args)
            .current_dir(d.path())
            .env("YUNMIN_PYTHON", python())
            .output()
            .unwrap();
        assert!(
            !o.status.success() && text(&o).contains(says),
            "{}",
            text(&o)
        );
    }
    assert!(before == std::fs::read(d.path().join("w/base/model.safetensors")).unwrap());
    assert!(
        r.iter().all(|x| x["mode"] == "generate"
            && num(x, "tokens_per_s") > 0.0
            && num(x, "batch") == 1.0
            && num(x, "seq_len") == 14.0),
        "{r:?}"
    );
    let note = r[1]["note"].as_str().unwrap_or_default().to_string();
    // The first greedy token of each prompt is the arg-max of one forward: the two
    // implementations of the same checkpoint must agree on it.
    let before_first_difference: usize = note
        .split(", ")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("note `{note}`"));
    assert!(
        note.ends_with("/12 tokens before the first difference") && before_first_difference >= 2,
        "{note}"
    );
    // The reference run's base shape, generated by transformers and scored by both sides.
    bench(
        d.path(),
        &[
            "eval",
            "--shape",
            "reference",
            "--work",
            "r",
            "--windows",
            "8",
            "--rounds",
            "1",
            "--threads",
            "1",
            "--csv",
            "ref.csv",
        ],
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("r/base/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            &cfg["hidden_size"],
            &cfg["num_attention_heads"],
            &cfg["vocab_size"]
        ),
        (
            &serde_json::json!(192),
            &serde_json::json!(6),
            &serde_json::json!(4000)
        )
    );
    let r = rows(&d.path().join("ref.csv"));
    assert!(
        r.len() == 2
            && r.iter()
                .all(|x| x["checkpoint"].as_str() == Some("reference")
                    && num(x, "tokens_per_s") > 0.0),
        "{r:?}"
    );
}
