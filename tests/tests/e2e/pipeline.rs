//! The whole pipeline (`scripts/pipeline.rhai`) on a tiny slice of the bundled sample with a
//! tiny model: a deliberately failing stage exits non-zero and writes `pipeline_errors.log`;
//! the rerun resumes (finished stages cached) and every artifact exists and is well formed,
//! `models/merged/` included. The same pipeline on a base written by transformers
//! (`--set base=DIR`): no tokenizer training or pretraining, Parquet ids from its tokenizer,
//! a merged checkpoint transformers loads with the same logits, and caching keyed on the base.
//! Its notebook and the committed `results/summarize_eval.ipynb` are validated and executed by a
//! real kernel (`scripts/interop/run_notebook.py`) to the tables they store.

use std::io::{BufRead, Write};
use std::path::Path;
use yunmin_tests::{python, repo_root, text, yunmin};

/// The first `n` lines of every sample domain file, plus one malformed line.
pub(super) fn tiny_input(dir: &Path, n: usize) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let mut lines = 0;
    for d in ["chat", "law", "news", "reviews"] {
        let src = repo_root().join(format!("data/sample/raw/{d}.jsonl"));
        let f = std::io::BufReader::new(std::fs::File::open(src).unwrap());
        let mut out = std::fs::File::create(dir.join(format!("{d}.jsonl"))).unwrap();
        for l in f.lines().take(n) {
            writeln!(out, "{}", l.unwrap()).unwrap();
            lines += 1;
        }
    }
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("news.jsonl"))
        .unwrap();
    writeln!(out, "{{\"id\": \"broken\", \"text\": ").unwrap();
    lines + 1
}

/// `--set` values of a pipeline run small enough for a test.
pub(super) const TINY: &[&str] = &[
    "vocab_size=400",
    "heldout=0.2",
    "layers=2",
    "dim=32",
    "heads=4",
    "kv_heads=2",
    "ffn=64",
    "seq_len=32",
    "batch=4",
    "pretrain_steps=12",
    "lora_steps=4",
    "eval_docs=6",
    "val_docs=6",
    "prompts=2",
    "prompt_tokens=6",
    "max_new_tokens=6",
    "merge_scales=0.5,1.0",
];

fn run(cwd: &Path, input: &Path, extra: &[&str]) -> std::process::Output {
    let script = repo_root().join("scripts/pipeline.rhai");
    let mut args: Vec<String> = vec![
        "run".into(),
        script.to_string_lossy().into(),
        "--out".into(),
        "run".into(),
        "--set".into(),
        format!("input={}", input.display()),
    ];
    for s in TINY {
        args.push("--set".into());
        args.push(s.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    yunmin(cwd, &a)
}

/// `stage=<name>\t…\tstatus=<status>` lines of pipeline_run.log, in order.
pub(super) fn stage_lines(root: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(root.join("pipeline_run.log"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f = |k: &str| {
                l.split('\t')
                    .find_map(|x| x.strip_prefix(k))
                    .map(str::to_string)
            };
            Some((f("stage=")?, f("status=")?))
        })
        .collect()
}

fn check_notebook(path: &Path) {
    let nb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(nb["nbformat"], 4);
    let cells = nb["cells"].as_array().unwrap();
    let code: Vec<_> = cells.iter().filter(|c| c["cell_type"] == "code").collect();
    assert!(code.len() >= 5, "comparison tables, plots and the sweep");
    for c in &code {
        assert!(
            !c["outputs"].as_array().unwrap().is_empty(),
            "a code cell without outputs: {}",
            c["source"]
        );
    }
    let pngs = code
        .iter()
        .flat_map(|c| c["outputs"].as_array().unwrap())
        .filter(|o| o["data"]["image/png"].is_string())
        .count();
    assert!(
        pngs >= 3,
        "perplexity, ROUGE and sweep plots embedded, got {pngs}"
    );
    let check = std::process::Command::new(python())
        .args([
            "-c",
            "import nbformat,sys; nb=nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb)",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(check.status.success(), "nbformat: {}", text(&check));
    // A real kernel runs every cell, in the notebook's directory, to the stored tables.
    super::report::assert_notebook_runs(path);
}

#[test]
fn pipeline_fails_cleanly_resumes_and_writes_every_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    let lines = tiny_input(&input, 60);
    let root = tmp.path().join("run");

    // 1. A stage that fails: non-zero exit, the error chain in pipeline_errors.log.
    let o = run(tmp.path(), &input, &["--fail-at", "evaluate"]);
    assert!(!o.status.success(), "{}", text(&o));
    let errors = std::fs::read_to_string(root.join("pipeline_errors.log")).unwrap();
    assert!(errors.contains("failing on purpose"), "{errors}");
    let first = stage_lines(&root);
    assert!(
        first.contains(&("evaluate".into(), "failed".into())),
        "{first:?}"
    );
    assert!(
        first.contains(&("pretrain".into(), "ok".into())),
        "{first:?}"
    );
    assert!(!root.join("results/eval_metrics.csv").exists());

    // 2. The rerun resumes: finished stages are cached, the failed one and later ones run.
    let o = run(tmp.path(), &input, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let second: Vec<_> = stage_lines(&root).split_off(first.len());
    for s in [
        "pretrain",
        "lora_chat",
        "lora_mixed",
        "diffs",
        "merge_search",
        "save_merged",
    ] {
        assert!(
            second.contains(&(s.into(), "cached".into())),
            "{s} should be cached: {second:?}"
        );
    }
    for s in ["evaluate", "report"] {
        assert!(second.contains(&(s.into(), "ok".into())), "{s}: {second:?}");
    }
    // A fail point inside a cached phase does not fire: `--fail-at lora` and `--fail-at
    // pretrain` stop only before an adapter or the base is trained.
    for at in ["lora", "pretrain"] {
        let o = run(tmp.path(), &input, &["--fail-at", at]);
        assert!(o.status.success(), "{at}: {}", text(&o));
    }

    // 3. Artifacts of every phase.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("ingest_report.json")).unwrap()).unwrap();
    let t = &report["totals"];
    assert_eq!(t["lines"], lines as u64);
    assert_eq!(
        t["valid"].as_u64().unwrap() + t["rejected"].as_u64().unwrap(),
        lines as u64
    );
    let rejected = std::fs::read_to_string(root.join("data/rejected/rejected.jsonl")).unwrap();
    assert_eq!(
        rejected.lines().count() as u64,
        t["rejected"].as_u64().unwrap()
    );
    assert!(
        rejected
            .lines()
            .any(|l| l.contains("news.jsonl\",\"line\":61,\"reason\":\"invalid_json\"")),
        "the appended broken line is quarantined with its line number: {rejected}"
    );
    let preview: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("sample_preview.json")).unwrap()).unwrap();
    assert_eq!(preview.as_array().map(Vec::len), Some(5));
    let domains = ["chat", "law", "news", "reviews"];
    for d in domains {
        for f in [
            format!("data/parquet/{d}.parquet"),
            format!("data/parquet/heldout/{d}.parquet"),
            format!("models/lora_{d}/adapter_config.json"),
            format!("diffs/{d}/index.json"),
        ] {
            assert!(root.join(&f).exists(), "{f}");
        }
    }
    // Every seed artifact, parsed where it is JSON.
    for f in [
        "candidates.json",
        "data/parquet/parquet_report.json",
        "diff_stats/law_summary.json",
        "data/tokenizer.json",
    ] {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join(f)).unwrap())
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(v.is_object() || v.is_array(), "{f}");
    }
    for l in std::fs::read_to_string(root.join("clusters.jsonl"))
        .unwrap()
        .lines()
    {
        serde_json::from_str::<serde_json::Value>(l).expect("clusters.jsonl line");
    }
    let summary = std::fs::read_to_string(root.join("summary.csv")).unwrap();
    assert_eq!(
        summary.lines().count(),
        1 + 1 + 4 + 1,
        "header, base, 4 domains, mixed"
    );
    for d in ["base", "chat", "law", "news", "reviews", "mixed"] {
        let log = std::fs::read_to_string(root.join(format!("logs/train_{d}.log"))).unwrap();
        assert!(log.lines().count() >= 2, "logs/train_{d}.log has steps");
    }
    for f in [
        "dedup_log.csv",
        "data/parquet/schema.txt",
        "data/deduped",
        "models/base/config.json",
        "models/base/model.safetensors",
        "models/lora_mixed/adapter_model.safetensors",
        "models/merged/config.json",
        "models/merged/model.safetensors",
        "models/merged/tokenizer.json",
        "results/merge_sweep.csv",
        "results/eval_generations.csv",
        "results/ppl_by_domain.png",
        "results/merge_sweep.png",
        "results/merge_search.csv",
        "results/merge_search.png",
        "eval/eval_prompt_comparison.md",
        "manifest.json",
    ] {
        assert!(root.join(f).exists(), "{f}");
    }

    // Metrics: one row per model × (domain + overall), finite perplexities above 1.
    let csv = std::fs::read_to_string(root.join("results/eval_metrics.csv")).unwrap();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = rows.map(|l| l.split(',').collect()).collect();
    let models: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[col("model")]).collect();
    let want: std::collections::BTreeSet<&str> = [
        "base",
        "merged",
        "mixing",
        "lora_chat",
        "lora_law",
        "lora_news",
        "lora_reviews",
    ]
    .into();
    assert_eq!(models, want);
    assert_eq!(rows.len(), want.len() * (domains.len() + 1));
    for r in &rows {
        let ppl: f64 = r[col("perplexity")].parse().unwrap();
        assert!(ppl.is_finite() && ppl > 1.0, "perplexity {ppl} in {r:?}");
        let rl: f64 = r[col("rougeL")].parse().unwrap();
        assert!((0.0..=1.0).contains(&rl));
    }
    // The merge is not the base: their perplexities differ.
    let overall = |m: &str| -> f64 {
        rows.iter()
            .find(|r| r[col("model")] == m && r[col("domain")] == "overall")
            .unwrap()[col("perplexity")]
        .parse()
        .unwrap()
    };
    assert_ne!(overall("base"), overall("merged"));

    // The CLI scores the same documents the same way: `yunmin metrics perplexity` on the base,
    // on the base + law adapter and on the saved models/merged/ equals the evaluation table's
    // rows (so the evaluated merge is the saved checkpoint).
    for (model, dir, adapter) in [
        ("base", "models/base", None),
        ("lora_law", "models/base", Some("models/lora_law")),
        ("merged", "models/merged", None),
    ] {
        let out = tmp.path().join(format!("ppl_{model}.csv"));
        let mut args = vec![
            "metrics".to_string(),
            "perplexity".into(),
            "--model".into(),
            root.join(dir).to_string_lossy().into(),
            "--parquet".into(),
            root.join("data/parquet").to_string_lossy().into(),
            "--max-docs".into(),
            "6".into(),
            "--seq-len".into(),
            "32".into(),
            "--table".into(),
            out.to_string_lossy().into(),
        ];
        if let Some(a) = adapter {
            args.push("--adapter".into());
            args.push(root.join(a).to_string_lossy().into());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = yunmin(tmp.path(), &a);
        assert!(o.status.success(), "{}", text(&o));
        let cli = std::fs::read_to_string(&out).unwrap();
        let mut n = 0;
        for line in cli.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let (domain, ppl): (&str, f64) = (f[0], f[4].parse().unwrap());
            let want: f64 = rows
                .iter()
                .find(|r| r[col("model")] == model && r[col("domain")] == domain)
                .unwrap()[col("perplexity")]
            .parse()
            .unwrap();
            assert!(
                (ppl - want).abs() <= 1e-9 * want,
                "{model}/{domain}: CLI {ppl} vs evaluate {want}"
            );
            n += 1;
        }
        assert_eq!(n, domains.len() + 1);
    }

    check_notebook(&root.join("results/summarize_eval.ipynb"));
    let md = std::fs::read_to_string(root.join("results/report.md")).unwrap();
    for s in [
        "## Metrics summary",
        "report/ppl_by_domain.png",
        "## Limitations",
        "lora_law",
    ] {
        assert!(md.contains(s), "report.md lacks {s}");
    }
    // With adapters to train (more steps), `--fail-at lora` stops before the first one.
    let o = run(
        tmp.path(),
        &input,
        &["--set", "lora_steps=5", "--fail-at", "lora"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("failing on purpose before training lora_"),
        "{}",
        text(&o)
    );
}

/// Writes a tiny Llama checkpoint with transformers (random init, `seed`) into `out`, with a
/// byte-level BPE tokenizer trained by the `tokenizers` package on the texts under `input`
/// (`tokenizer.json`, `tokenizer_config.json`); prints the vocabulary size.
const MAKE_BASE: &str = r#"
import glob, json, sys
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

inp, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = []
for f in sorted(glob.glob(inp + "/*.jsonl")):
    for line in open(f, encoding="utf-8"):
        try:
            t = json.loads(line)["text"]
        except Exception:
            continue
        if isinstance(t, str):
            texts.append(t)
tok = Tokenizer(models.BPE())
tok.normalizer = normalizers.NFC()
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(texts, trainers.BpeTrainer(
    vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
torch.manual_seed(seed)
cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=128, bos_token_id=1, eos_token_id=2)
LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
fast.save_pretrained(out)
print(tok.get_vocab_size())
"#;

/// Checks every row of a Parquet file against a tokenizer (`tokens` = the ids of `text`, no
/// special tokens); prints the first row's first 16 ids as JSON.
const CHECK_TOKENS: &str = r#"
import json, sys
import pyarrow.parquet as pq
from tokenizers import Tokenizer

tok = Tokenizer.from_file(sys.argv[1])
t = pq.read_table(sys.argv[2], columns=["text", "tokens"]).to_pylist()
assert t, "no rows"
for r in t:
    ids = tok.encode(r["text"], add_special_tokens=False).ids
    assert r["tokens"] == ids, (r["text"][:60], r["tokens"][:12], ids[:12])
print(json.dumps(t[0]["tokens"][:16]))
"#;

/// Loads a checkpoint with transformers, computes the logits of the ids, and compares them with
/// `yunmin generate --dump-logits` output; prints the largest difference.
const CHECK_LOGITS: &str = r#"
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
AutoTokenizer.from_pretrained(sys.argv[1])
ids = json.loads(sys.argv[2])
with torch.no_grad():
    hf = model(torch.tensor([ids])).logits[0]
ours = torch.tensor(json.load(open(sys.argv[3])), dtype=torch.float32)
assert hf.shape == ours.shape, (tuple(hf.shape), tuple(ours.shape))
assert torch.isfinite(hf).all() and torch.isfinite(ours).all()
diff = (hf - ours).abs().max().item()
print(diff)
assert diff <= 1e-4, f"max |transformers - yunmin| = {diff}"
"#;

fn py(args: &[&std::ffi::OsStr]) -> String {
    let o = std::process::Command::new(python())
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "python: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn make_base(input: &Path, out: &Path, seed: u32) -> usize {
    py(&[
        "-c".as_ref(),
        MAKE_BASE.as_ref(),
        input.as_os_str(),
        out.as_os_str(),
        seed.to_string().as_ref(),
    ])
    .lines()
    .last()
    .unwrap()
    .parse()
    .unwrap()
}

#[test]
fn pipeline_on_a_given_base_skips_pretraining_and_saves_a_loadable_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    tiny_input(&input, 60);
    let base = tmp.path().join("hf_base");
    let vocab = make_base(&input, &base, 0);
    assert!(vocab > 259, "tokenizer vocabulary {vocab}");
    let root = tmp.path().join("run");

    // A missing tokenizer.json or config.json is an error naming it, before any stage runs.
    for (dir, have, missing) in [
        (
            "no_tokenizer",
            ["config.json", "model.safetensors"],
            "tokenizer.json",
        ),
        (
            "no_config",
            ["tokenizer.json", "model.safetensors"],
            "config.json",
        ),
    ] {
        let broken = tmp.path().join(dir);
        std::fs::create_dir_all(&broken).unwrap();
        for f in have {
            std::fs::copy(base.join(f), broken.join(f)).unwrap();
        }
        let o = run(
            tmp.path(),
            &input,
            &["--set", &format!("base={}", broken.display()) as &str],
        );
        assert!(!o.status.success(), "{}", text(&o));
        let want = broken.join(missing).display().to_string();
        assert!(text(&o).contains(&want), "names {want}: {}", text(&o));
        assert!(
            !root.join("ingest_report.json").exists(),
            "no work before the check"
        );
    }

    // The pipeline on the given base (given relative to the working directory).
    let t = std::time::Instant::now();
    let o = run(tmp.path(), &input, &["--set", "base=hf_base"]);
    assert!(o.status.success(), "{}", text(&o));
    eprintln!(
        "pipeline on a given base: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let stages = stage_lines(&root);
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    for s in ["pretrain", "train_tokenizer"] {
        assert!(!names.contains(&s), "{s} ran: {names:?}");
    }
    for s in [
        "to_parquet",
        "lora_law",
        "lora_mixed",
        "diffs",
        "merge_search",
        "save_merged",
        "evaluate",
        "report",
    ] {
        assert!(stages.contains(&(s.into(), "ok".into())), "{s}: {stages:?}");
    }
    assert!(!root.join("models/base").exists());
    assert!(!root.join("data/tokenizer.json").exists());
    let summary = std::fs::read_to_string(root.join("summary.csv")).unwrap();
    assert_eq!(
        summary.lines().count(),
        1 + 4 + 1,
        "header, 4 domains, mixed"
    );
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("models/lora_law/adapter_config.json")).unwrap(),
    )
    .unwrap();
    let base_abs = std::fs::canonicalize(&base).unwrap();
    let named = std::fs::canonicalize(cfg["base_model_name_or_path"].as_str().unwrap()).unwrap();
    assert_eq!(
        named, base_abs,
        "the adapters are trained on the given base"
    );
    let report = std::fs::read_to_string(root.join("results/report.md")).unwrap();
    assert!(report.contains("given, not trained here"), "{report}");

    // The Parquet token ids are the given tokenizer's.
    let ids = py(&[
        "-c".as_ref(),
        CHECK_TOKENS.as_ref(),
        base.join("tokenizer.json").as_os_str(),
        root.join("data/parquet/law.parquet").as_os_str(),
    ]);
    let n: Vec<u32> = serde_json::from_str(&ids).unwrap();
    assert!(
        n.len() >= 4 && n.iter().all(|&i| (i as usize) < vocab),
        "{ids}"
    );

    // models/merged/ is a full checkpoint with the base's tokenizer; transformers loads it and
    // its logits equal yunmin's.
    let merged = root.join("models/merged");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(merged.join(f).exists(), "models/merged/{f}");
    }
    assert_eq!(
        std::fs::read(merged.join("tokenizer.json")).unwrap(),
        std::fs::read(base.join("tokenizer.json")).unwrap()
    );
    let dump = tmp.path().join("logits.json");
    let ids_arg = n.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let o = yunmin(
        tmp.path(),
        &[
            "generate",
            "--model",
            &merged.to_string_lossy(),
            "--ids",
            &ids_arg,
            "--dump-logits",
            &dump.to_string_lossy(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let diff = py(&[
        "-c".as_ref(),
        CHECK_LOGITS.as_ref(),
        merged.as_os_str(),
        ids.as_ref(),
        dump.as_os_str(),
    ]);
    eprintln!("models/merged: transformers vs yunmin logits, max difference {diff}");

    // Caching: the same base reruns nothing; another base with the same tokenizer keeps the
    // Parquet files and reruns every model stage.
    let o = run(tmp.path(), &input, &["--set", "base=hf_base"]);
    assert!(o.status.success(), "{}", text(&o));
    let third: Vec<_> = stage_lines(&root).split_off(stages.len());
    assert!(
        third.iter().all(|(_, st)| st == "cached"),
        "an unchanged rerun: {third:?}"
    );
    let other = tmp.path().join("hf_base2");
    make_base(&input, &other, 1);
    assert_eq!(
        std::fs::read(other.join("tokenizer.json")).unwrap(),
        std::fs::read(base.join("tokenizer.json")).unwrap(),
        "the same tokenizer"
    );
    let before = stage_lines(&root).len();
    let o = run(tmp.path(), &input, &["--set", "base=hf_base2"]);
    assert!(o.status.success(), "{}", text(&o));
    let fourth: Vec<_> = stage_lines(&root).split_off(before);
    assert!(
        fourth.contains(&("to_parquet".into(), "cached".into())),
        "{fourth:?}"
    );
    for s in [
        "lora_chat",
        "lora_law",
        "lora_news",
        "lora_reviews",
        "lora_mixed",
        "diffs",
        "merge_search",
        "save_merged",
        "evaluate",
    ] {
        assert!(
            fourth.contains(&(s.into(), "ok".into())),
            "{s} reruns: {fourth:?}"
        );
    }
}

/// Runs an experiment script from the repository on the finished pipeline run; returns the
/// CSV it wrote (header, rows).
fn experiment(
    cwd: &Path,
    script: &str,
    sets: &[String],
    csv: &str,
) -> (Vec<String>, Vec<Vec<String>>) {
    let path = repo_root().join(script);
    let mut args = vec![
        "run".to_string(),
        path.to_string_lossy().into(),
        "--out".into(),
        "exp".into(),
    ];
    for s in sets {
        args.push("--set".into());
        args.push(s.clone());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = yunmin(cwd, &a);
    assert!(o.status.success(), "{script}: {}", text(&o));
    let body = std::fs::read_to_string(cwd.join("exp").join(csv)).unwrap();
    let mut lines = body
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    let header = lines.next().unwrap();
    (header, lines.collect())
}

#[test]
fn experiments_rerun_from_a_pipeline_run() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("input");
    tiny_input(&input, 60);
    let o = run(tmp.path(), &input, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let root = tmp.path().join("run");

    // DEM merges at two weights vs data mixing vs base, per domain and overall.
    let (h, rows) = experiment(
        tmp.path(),
        "experiments/dem_vs_mixing.rhai",
        &[
            // Relative to the working directory, as a researcher types it.
            "run=run".to_string(),
            "scales=0.5,1.0".into(),
            "eval_docs=4".into(),
            "prompts=1".into(),
        ],
        "results/dem_vs_mixing.csv",
    );
    assert_eq!(h, ["model", "domain", "perplexity", "bleu", "rougeL"]);
    assert_eq!(rows.len(), 4 * 5, "4 models × (4 domains + overall)");
    let models: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(models, ["base", "dem_0.5", "dem_1.0", "mixing"].into());

    // The 5 × 5 weight grid over two domains with per-domain held-out perplexity.
    let (h, rows) = experiment(
        tmp.path(),
        "experiments/merge_sweep.rhai",
        &[
            format!("models={}", root.join("models").display()),
            format!("parquet={}", root.join("data/parquet").display()),
            "domains=chat,law".into(),
            "eval_docs=4".into(),
            "out=results/sweep.csv".into(),
        ],
        "results/sweep.csv",
    );
    assert_eq!(rows.len(), 25);
    for c in [
        "w_chat",
        "w_law",
        "ppl_chat",
        "ppl_law",
        "ppl_macro_geometric",
        "ppl_macro_arithmetic",
        "ppl_overall",
        "l2_from_base",
    ] {
        assert!(h.iter().any(|x| x == c), "{c} in {h:?}");
    }
    let col = |c: &str| h.iter().position(|x| x == c).unwrap();
    let at = |a: &str, b: &str| {
        rows.iter()
            .find(|r| r[col("w_chat")] == a && r[col("w_law")] == b)
            .unwrap()
    };
    // Weight 0 is the base: no distance; any other point moves the weights and the perplexity.
    let zero = at("0.0", "0.0");
    assert_eq!(zero[col("l2_from_base")].parse::<f64>().unwrap(), 0.0);
    let one = at("1.0", "0.0");
    assert!(one[col("l2_from_base")].parse::<f64>().unwrap() > 0.0);
    assert_ne!(zero[col("ppl_chat")], one[col("ppl_chat")]);
}

#[test]
fn committed_results_notebook_is_valid_and_has_outputs() {
    check_notebook(&repo_root().join("results/summarize_eval.ipynb"));
    let report = std::fs::read_to_string(repo_root().join("docs/report.md")).unwrap();
    for f in ["report/manifest.json", "report/ppl_by_domain.png"] {
        assert!(report.contains(f), "docs/report.md links {f}");
        assert!(repo_root().join("docs").join(f).exists(), "docs/{f}");
    }
}
