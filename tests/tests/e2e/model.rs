//! Models and training through the binary: `yunmin train pretrain|lora`, `yunmin generate`, the
//! Rhai functions, and resuming a killed pretraining run.

use std::path::Path;
use std::process::Command;
use yunmin_tests::{text, write_script, yunmin, yunmin_bin};

/// A learnable synthetic corpus: `next = (a·prev + b) mod 37`, one JSON id array per line.
fn corpus(path: &Path, docs: usize, len: usize, a: u32, b: u32) {
    let mut s = String::new();
    for d in 0..docs {
        let mut x = (d as u32 * 7 + 3) % 37;
        let mut ids = Vec::new();
        for _ in 0..len {
            ids.push(x.to_string());
            x = (a * x + b) % 37;
        }
        s.push_str(&format!("[{}]\n", ids.join(",")));
    }
    std::fs::write(path, s).unwrap();
}

const TINY: &str = r#"{"layers":2,"hidden":32,"heads":4,"kv_heads":2,"intermediate":64,"vocab_size":40,
  "seq_len":16,"batch":4,"lr":0.01,"warmup_steps":3,"eval_every":0,"eval_windows":0,"log_every":5,
  "checkpoint_every":0}"#;

#[test]
fn cli_pretrain_lora_generate() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    corpus(&p.join("base.jsonl"), 40, 60, 3, 1);
    corpus(&p.join("news.jsonl"), 30, 60, 5, 2);
    std::fs::write(p.join("tiny.json"), TINY).unwrap();
    let pre = [
        "-q",
        "train",
        "pretrain",
        "--tokens",
        "base.jsonl",
        "--config",
        "tiny.json",
        "--steps",
        "30",
    ];
    let o = yunmin(p, &pre);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("pretrained"),
        "{}",
        text(&o)
    );
    assert!(p.join("models/base/model.safetensors").exists());
    // The same pretraining again is the cached stage `pretrain`; --force retrains, the same.
    let base_weights = std::fs::read(p.join("models/base/model.safetensors")).unwrap();
    let o = yunmin(p, &pre);
    assert!(text(&o).contains("pretrain: cached"), "{}", text(&o));
    let o = yunmin(p, &[&pre[..], &["--force"]].concat());
    assert!(
        o.status.success() && text(&o).contains("pretrained"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(p.join("models/base/model.safetensors")).unwrap(),
        base_weights
    );
    // Other options are another key: trained again.
    let o = yunmin(
        p,
        &[&pre[..], &["--model-dir", "models/base_b", "--lr", "0.02"]].concat(),
    );
    assert!(text(&o).contains("pretrained"), "{}", text(&o));
    let lora = [
        "-q",
        "train",
        "lora",
        "--base",
        "models/base",
        "--tokens",
        "news.jsonl",
        "--steps",
        "10",
        "--batch",
        "4",
        "--seq-len",
        "16",
        "--rank",
        "4",
    ];
    let o = yunmin(p, &lora);
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.join("models/lora_news/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["peft_type"], "LORA");
    assert!(
        p.join("models/lora_news/adapter_model.safetensors")
            .exists()
    );
    // The same adapter again is the cached stage `lora_news`; --force retrains it, the same.
    let weights = std::fs::read(p.join("models/lora_news/adapter_model.safetensors")).unwrap();
    let o = yunmin(p, &lora);
    assert!(text(&o).contains("lora news: cached"), "{}", text(&o));
    let o = yunmin(p, &[&lora[..], &["--force"]].concat());
    assert!(
        o.status.success() && !text(&o).contains("cached"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read(p.join("models/lora_news/adapter_model.safetensors")).unwrap(),
        weights
    );
    assert!(p.join("logs/train_news.log").exists());
    // A misspelt key in a --config file is an error naming it, not a default used instead;
    // so is a value of the wrong type on the command line.
    std::fs::write(p.join("bad.json"), r#"{"rnak": 4}"#).unwrap();
    let o = yunmin(
        p,
        &[
            "-q",
            "train",
            "lora",
            "--base",
            "models/base",
            "--tokens",
            "news.jsonl",
        ]
        .iter()
        .chain(&["--config", "bad.json", "--out", "models/lora_bad"])
        .copied()
        .collect::<Vec<_>>(),
    );
    assert!(
        !o.status.success()
            && text(&o).contains("unknown option `rnak`")
            && text(&o).contains("did you mean `rank`"),
        "{}",
        text(&o)
    );
    let o = yunmin(
        p,
        &[
            "-q",
            "train",
            "pretrain",
            "--tokens",
            "base.jsonl",
            "--hidden",
            "wide",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("--hidden") && text(&o).contains("integer"),
        "{}",
        text(&o)
    );
    assert!(!p.join("models/lora_bad").exists());
    let summary = std::fs::read_to_string(p.join("summary.csv")).unwrap();
    assert!(
        summary.contains("\nbase,pretrain,30,") && summary.contains("\nnews,lora,10,"),
        "{summary}"
    );
    let o = yunmin(
        p,
        &[
            "-q",
            "generate",
            "--model",
            "models/base",
            "--ids",
            "3,10,31",
            "--max-new-tokens",
            "5",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let ids: Vec<u32> = String::from_utf8_lossy(&o.stdout)
        .trim()
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 5);
    let o = yunmin(
        p,
        &[
            "-q",
            "generate",
            "--model",
            "models/base",
            "--adapter",
            "models/lora_news",
            "--ids",
            "3",
            "--max-new-tokens",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Too little data for one batch: a clear error naming the domain.
    corpus(&p.join("tiny_domain.jsonl"), 1, 20, 5, 2);
    let o = yunmin(
        p,
        &[
            "-q",
            "train",
            "lora",
            "--base",
            "models/base",
            "--tokens",
            "tiny_domain.jsonl",
            "--steps",
            "2",
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("domain `tiny_domain`: 20 tokens"),
        "{}",
        text(&o)
    );
}

/// Raw JSONL documents of two domains with Korean-like words from a small vocabulary.
fn raw_docs(path: &Path, per_domain: usize) {
    let words = [
        "법원", "판결", "원고", "피고", "영화", "배우", "감독", "장면", "재미", "계약",
    ];
    let mut s = String::new();
    for (k, domain) in ["law", "movie"].iter().enumerate() {
        for i in 0..per_domain {
            let text: Vec<&str> = (0..40)
                .map(|j| words[(i * 3 + j * (k + 2)) % 5 + 5 * k])
                .collect();
            s.push_str(&format!(
                "{{\"doc_id\": \"{domain}-{i}\", \"content\": \"{}\", \"meta\": {{\"d\": \"{domain}\"}}}}\n",
                text.join(" ")
            ));
        }
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn cli_trains_on_raw_documents_through_a_tokenizer() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    raw_docs(&p.join("raw.jsonl"), 40);
    std::fs::write(p.join("tiny.json"), TINY.replace("\"vocab_size\":40,", "")).unwrap();
    // The same --input and field flags as ingest, dedup and parquet convert.
    let fields = [
        "--input",
        "raw.jsonl",
        "--text-field",
        "content",
        "--id-field",
        "doc_id",
        "--domain-field",
        "meta.d",
        "--out",
        "run",
    ];
    let o = yunmin(
        p,
        &[
            &["-q", "tokenizer", "train", "--vocab-size", "300"][..],
            &fields[..],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let tok = p.join("run/data/tokenizer.json");
    assert!(tok.exists(), "{}", text(&o));
    let tok = tok.to_str().unwrap();
    // Every domain's documents at once is refused without --domain; one domain trains.
    let pre = [
        &[
            "-q",
            "train",
            "pretrain",
            "--config",
            "tiny.json",
            "--steps",
            "6",
            "--tokenizer",
            tok,
        ][..],
        &fields[..],
    ]
    .concat();
    let o = yunmin(p, &pre);
    assert!(
        !o.status.success() && text(&o).contains("[law, movie]") && text(&o).contains("--domain"),
        "{}",
        text(&o)
    );
    let o = yunmin(p, &[&pre[..], &["--domain", "law"]].concat());
    assert!(
        o.status.success() && text(&o).contains("pretrained"),
        "{}",
        text(&o)
    );
    let base = p.join("run/models/base");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("config.json")).unwrap()).unwrap();
    let vocab = cfg["vocab_size"].as_u64().unwrap();
    assert!(
        (256..=300).contains(&vocab),
        "the tokenizer's vocabulary: {cfg}"
    );
    assert!(base.join("tokenizer.json").exists());
    // The documents were ingested into the run root.
    assert!(p.join("run/ingest").is_dir());
    let lora = [
        &[
            "-q",
            "train",
            "lora",
            "--base",
            base.to_str().unwrap(),
            "--steps",
            "4",
            "--batch",
            "4",
            "--seq-len",
            "16",
            "--rank",
            "2",
            "--tokenizer",
            tok,
            "--domain",
            "movie",
        ][..],
        &fields[..],
    ]
    .concat();
    let o = yunmin(p, &lora);
    assert!(
        o.status.success() && text(&o).contains("lora movie:"),
        "{}",
        text(&o)
    );
    assert!(
        p.join("run/models/lora_movie/adapter_model.safetensors")
            .exists()
    );
    let o = yunmin(p, &lora);
    assert!(text(&o).contains("lora movie: cached"), "{}", text(&o));
    // Documents without a tokenizer: an error that says what is missing.
    let o = yunmin(
        p,
        &[
            &[
                "-q",
                "train",
                "lora",
                "--base",
                base.to_str().unwrap(),
                "--domain",
                "law",
            ][..],
            &fields[..],
        ]
        .concat(),
    );
    assert!(
        !o.status.success() && text(&o).contains("--tokenizer"),
        "{}",
        text(&o)
    );
    // No training data at all: clap names the choices.
    let o = yunmin(p, &["-q", "train", "pretrain", "--steps", "2"]);
    assert!(
        !o.status.success() && text(&o).contains("--tokens"),
        "{}",
        text(&o)
    );
    // Flags that the data given would leave unused are errors naming them, not ignored: the
    // field mapping with an already ingested dataset (as --dataset or as --input) or with
    // token ids, and --tokenizer with token ids for an adapter (it keeps its base's).
    std::fs::write(p.join("ids.json"), "[[1,2,3,4,5,6,7,8,9,10,11,12]]").unwrap();
    let ingested = p.join("run/ingest/data/dedup_ready");
    let ingested = ingested.to_str().unwrap();
    let b = base.to_str().unwrap();
    let lora_on = |data: &[&str]| -> Vec<String> {
        let mut a = vec!["-q", "train", "lora", "--base", b, "--domain", "law"];
        a.extend_from_slice(data);
        a.iter().map(|s| s.to_string()).collect()
    };
    for (args, flag, why) in [
        (
            lora_on(&[
                "--dataset",
                ingested,
                "--tokenizer",
                tok,
                "--text-field",
                "content",
            ]),
            "--text-field does not apply",
            "already ingested",
        ),
        (
            lora_on(&[
                "--input",
                ingested,
                "--tokenizer",
                tok,
                "--id-field",
                "x",
                "--domain-field",
                "y",
            ]),
            "--id-field, --domain-field do not apply",
            "already ingested",
        ),
        (
            lora_on(&["--tokens", "ids.json", "--tokenizer", tok]),
            "--tokenizer does not apply",
            "--tokens",
        ),
        (
            lora_on(&[
                "--tokens",
                "ids.json",
                "--endpoint-url",
                "http://127.0.0.1:9",
            ]),
            "--endpoint-url does not apply",
            "--tokens",
        ),
        (
            [
                "-q",
                "train",
                "pretrain",
                "--tokens",
                "ids.json",
                "--text-field",
                "content",
            ]
            .map(String::from)
            .to_vec(),
            "--text-field does not apply",
            "--tokens",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = yunmin(p, &args);
        assert!(
            !o.status.success() && text(&o).contains(flag) && text(&o).contains(why),
            "{args:?}: {}",
            text(&o)
        );
    }
    // The same documents without the stray flag train.
    let o = yunmin(
        p,
        &lora_on(&[
            "--dataset",
            ingested,
            "--tokenizer",
            tok,
            "--steps",
            "2",
            "--batch",
            "2",
            "--seq-len",
            "8",
            "--rank",
            "2",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn rhai_pretrain_lora_generate() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    corpus(&p.join("base.jsonl"), 40, 60, 3, 1);
    corpus(&p.join("law.jsonl"), 30, 60, 5, 2);
    let script = write_script(
        p,
        "m.rhai",
        &format!(
            r#"
let base = pretrain(tokens("{b}"), #{{ layers: 2, hidden: 32, heads: 4, kv_heads: 2, intermediate: 64, vocab_size: 40,
    seq_len: 16, batch: 4, steps: 20, lr: 0.01, eval_every: 0, checkpoint_every: 0 }});
let a = lora(base, tokens("{l}", "law"), #{{ rank: 4, alpha: 8, steps: 10, batch: 4, seq_len: 16 }});
print(`adapter=${{a.dir}} r=${{a.rank}} ppl=${{a.stats.stats.heldout.nll}}`);
let again = load_model("models/base");
let out = generate(again, [3, 10, 31], #{{ max_new_tokens: 4 }});
print(`gen=${{out.len()}}`);
let merged = with_adapter(again, load_adapter("models/lora_law"));
save(merged, "models/merged_law");
// A model or adapter is taken as a handle or as its directory alike, here too.
let by_dir = generate("models/base", [3, 10, 31], #{{ max_new_tokens: 4 }});
let m2 = with_adapter(again, "models/lora_law");
let same_fold = generate(m2, [3, 10, 31], #{{ max_new_tokens: 4 }}) == generate(merged, [3, 10, 31], #{{ max_new_tokens: 4 }});
print(`by_dir=${{by_dir == out}} same_fold=${{same_fold}}`);
// A base or adapter is taken as a handle or as its directory alike.
let b = lora("models/base", tokens("{l}", "law"), #{{ rank: 4, alpha: 8, steps: 10, batch: 4, seq_len: 16, model_dir: "models/lora_law_path" }});
let d1 = diff(again, a, #{{ domain: "law" }});
let d2 = diff("models/base", "models/lora_law_path", #{{ domain: "law_path" }});
print(`diffs=${{d1.l2}}/${{d2.l2}}`);
// The summary's macro perplexities are the means of the domains' rows.
let r = evaluate(#{{ base: base }}, #{{ law: tokens("{l}"), news: tokens("{b}") }}, #{{ prompts: 0 }});
let s = r.summary.row(0);
let law = r.metrics.filter("domain", "==", "law").row(0).perplexity;
let news = r.metrics.filter("domain", "==", "news").row(0).perplexity;
let ov = r.metrics.filter("domain", "==", "overall").row(0).perplexity;
let geo_ok = (s.macro_geometric_perplexity - (law * news).sqrt()).abs() < 1e-9 * law;
let ari_ok = (s.macro_arithmetic_perplexity - (law + news) / 2.0).abs() < 1e-9 * law;
print(`summary=${{s.model}} domains=${{s.domains}} geo_ok=${{geo_ok}} ari_ok=${{ari_ok}} overall_ok=${{s.perplexity == ov}} distinct=${{law != news}}`);
lora(base, tokens("{l}", "law"), #{{ rnak: 4 }});
"#,
            b = p.join("base.jsonl").display(),
            l = p.join("law.jsonl").display()
        ),
    );
    let o = yunmin(
        p,
        &[
            "run",
            script.to_str().unwrap(),
            "--out",
            p.join("run").to_str().unwrap(),
            // The option typo is meant to fail at run time, after the earlier calls.
            "--no-check",
        ],
    );
    let t = text(&o);
    assert!(!o.status.success(), "the misspelt option must fail: {t}");
    assert!(
        t.contains("unknown option `rnak`") && t.contains("rank"),
        "{t}"
    );
    assert!(t.contains("gen=4"), "{t}");
    assert!(t.contains("by_dir=true same_fold=true"), "{t}");
    assert!(
        t.contains("summary=base domains=2 geo_ok=true ari_ok=true overall_ok=true distinct=true"),
        "{t}"
    );
    assert!(
        p.join("run/models/lora_law/adapter_model.safetensors")
            .exists(),
        "{t}"
    );
    assert!(p.join("run/models/merged_law/config.json").exists(), "{t}");
    assert_eq!(
        std::fs::read(p.join("run/models/lora_law/adapter_model.safetensors")).unwrap(),
        std::fs::read(p.join("run/models/lora_law_path/adapter_model.safetensors")).unwrap(),
        "the same training from a handle and from the directory"
    );
    let diffs = t
        .lines()
        .find_map(|l| l.strip_prefix("diffs="))
        .unwrap_or_else(|| panic!("{t}"));
    let (a, b) = diffs.split_once('/').unwrap();
    assert_eq!(a, b, "{t}");
}

#[test]
fn rhai_pretrain_is_a_cached_stage() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    corpus(&p.join("base.jsonl"), 40, 60, 3, 1);
    let script = write_script(
        p,
        "pre.rhai",
        &format!(
            r#"let m = pretrain(tokens("{}"), #{{ layers: 2, hidden: 32, heads: 4, kv_heads: 2, intermediate: 64,
    vocab_size: 40, seq_len: 16, batch: 4, steps: 8, eval_every: 0, checkpoint_every: 0 }});
print(`gen=${{generate(m, [3, 10], #{{ max_new_tokens: 3 }})}}`);"#,
            p.join("base.jsonl").display()
        ),
    );
    let run = |extra: &[&str]| {
        yunmin(
            p,
            &[
                &["run", script.to_str().unwrap(), "--out", "run"][..],
                extra,
            ]
            .concat(),
        )
    };
    let stages = || std::fs::read_to_string(p.join("run/pipeline_run.log")).unwrap_or_default();
    // Not trained yet: the fail point fires before training.
    let o = run(&["--fail-at", "pretrain"]);
    assert!(
        !o.status.success() && text(&o).contains("failing on purpose before training"),
        "{}",
        text(&o)
    );
    assert!(!p.join("run/models/base").exists());
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let generated = text(&o)
        .lines()
        .find(|l| l.starts_with("gen="))
        .unwrap()
        .to_string();
    assert!(
        stages().contains("stage=pretrain\t") && stages().contains("status=ok"),
        "{}",
        stages()
    );
    let weights = std::fs::read(p.join("run/models/base/model.safetensors")).unwrap();
    // Trained: cached, the fail point does not fire, the model is loaded from its checkpoint.
    let o = run(&["--fail-at", "pretrain"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&generated), "{}", text(&o));
    let last = stages()
        .lines()
        .rfind(|l| l.contains("stage=pretrain\t"))
        .unwrap()
        .to_string();
    assert!(last.contains("status=cached"), "{}", stages());
    // --force retrains to the same weights.
    let o = run(&["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    let last = stages()
        .lines()
        .rfind(|l| l.contains("stage=pretrain\t"))
        .unwrap()
        .to_string();
    assert!(last.contains("status=ok"), "{}", stages());
    assert_eq!(
        std::fs::read(p.join("run/models/base/model.safetensors")).unwrap(),
        weights
    );
}

#[test]
fn killed_pretraining_resumes_to_the_same_weights() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    corpus(&p.join("base.jsonl"), 60, 60, 3, 1);
    std::fs::write(
        p.join("tiny.json"),
        TINY.replace("\"checkpoint_every\":0", "\"checkpoint_every\":5"),
    )
    .unwrap();
    let args = [
        "-q",
        "train",
        "pretrain",
        "--tokens",
        "base.jsonl",
        "--config",
        "tiny.json",
        "--steps",
        "60",
    ];
    // Uninterrupted reference in its own root.
    let o = yunmin(p, &[&args[..], &["--out", "ref"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    // Killed once a resumable checkpoint exists, then run again.
    let mut child = Command::new(yunmin_bin())
        .args([&args[..], &["--out", "killed"]].concat())
        .current_dir(p)
        .spawn()
        .unwrap();
    let state = p.join("killed/models/base.resume/state.json");
    let t0 = std::time::Instant::now();
    while !state.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(state.exists(), "no checkpoint appeared");
    assert!(
        !p.join("killed/models/base/model.safetensors").exists(),
        "the run finished before it was killed"
    );
    let o = yunmin(p, &[&args[..], &["--out", "killed"]].concat());
    assert!(o.status.success(), "{}", text(&o));
    let a = std::fs::read(p.join("ref/models/base/model.safetensors")).unwrap();
    let b = std::fs::read(p.join("killed/models/base/model.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the uninterrupted run");
    assert!(!p.join("killed/models/base.resume").exists());
}
