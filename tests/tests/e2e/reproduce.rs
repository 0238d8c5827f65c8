//! Reproducible and safe-to-share scripts: stage keys that cannot go stale, output hashes with
//! `yunmin verify` and `yunmin rerun --verify`, the static `check`, confinement and limits.

use std::path::Path;
use yunmin_tests::{repo_root, text, write_script, yunmin};

/// Status of each run of stage `name` in `pipeline_run.log`, in order.
fn statuses(run: &Path, name: &str) -> Vec<String> {
    let log = std::fs::read_to_string(run.join("pipeline_run.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.split_whitespace().any(|w| w == format!("stage={name}")))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("status="))
                .map(str::to_string)
        })
        .collect()
}

const STAGED: &str = r#"let p = params(#{ n: 3 });
let law_scale = 1.0;
fn helper(x) { x * 2.0 }
let r = stage("s", #{ n: p.n }, || {
    write_text("out.txt", `scaled ${helper(law_scale)}`);
    #{ v: helper(law_scale) + 0.1 + 0.2, third: 1.0 / 3.0, file: out_path("out.txt") }
});
print(`v=${r.v} third=${r.third}`);
"#;

fn run_ok(dir: &Path, script: &Path) -> String {
    let o = yunmin(dir, &["run", script.to_str().unwrap(), "--out", "run"]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn stage_keys_follow_code_captures_and_called_functions_not_comments() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let s = write_script(d.path(), "s.rhai", STAGED);
    let fresh = run_ok(d.path(), &s);
    // A comment and blank lines anywhere change nothing; floats read back bit-exact.
    let moved = format!(
        "// notes\n\n{}",
        STAGED.replace("fn helper", "\n// twice\nfn helper")
    );
    let s = write_script(d.path(), "s.rhai", &moved);
    let cached = run_ok(d.path(), &s);
    assert_eq!(fresh, cached, "cached values print the same");
    assert!(fresh.contains("third=0.3333333333333333"), "{fresh}");
    // A captured value, a called function and the body each rerun the stage.
    let s = write_script(d.path(), "s.rhai", &STAGED.replace("1.0;", "2.0;"));
    run_ok(d.path(), &s);
    assert_eq!(
        std::fs::read_to_string(run.join("out.txt")).unwrap(),
        "scaled 4.0"
    );
    let s = write_script(d.path(), "s.rhai", &STAGED.replace("x * 2.0", "x * 3.0"));
    run_ok(d.path(), &s);
    let s = write_script(d.path(), "s.rhai", &STAGED.replace("+ 0.1", "+ 0.5"));
    run_ok(d.path(), &s);
    // Back to the first settings: its key is still kept, and its output restored.
    let s = write_script(d.path(), "s.rhai", STAGED);
    assert_eq!(run_ok(d.path(), &s), fresh);
    assert_eq!(
        std::fs::read_to_string(run.join("out.txt")).unwrap(),
        "scaled 2.0"
    );
    assert_eq!(
        statuses(&run, "s"),
        ["ok", "cached", "ok", "ok", "ok", "cached"],
        "{}",
        std::fs::read_to_string(run.join("pipeline_run.log")).unwrap()
    );
    // The manifest records the content hash of the stage's output file.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let st = m["stages"].as_array().unwrap().last().unwrap();
    assert!(st["outputs"]["out.txt"].is_string(), "{st}");
    assert!(m["files"]["out.txt"].is_string(), "{m}");

    // A capture that cannot be hashed is refused before the body runs.
    let s = write_script(
        d.path(),
        "t.rhai",
        "let t = timestamp();\nstage(\"t\", #{}, || { write_text(\"ran.txt\", \"x\"); t.elapsed });\n",
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "run2"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("captured variable `t`"), "{}", text(&o));
    assert!(
        !d.path().join("run2/ran.txt").exists(),
        "the body must not run"
    );
}

#[test]
fn verify_and_rerun_prove_what_a_run_produced() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("in.txt"), "first").unwrap();
    let s = write_script(
        d.path(),
        "r.rhai",
        r#"let p = params(#{ rows: 5, label: "007", seed: 7, input: "in.txt" });
stage("table", #{ rows: p.rows }, || {
    let t = table();
    for i in 0..p.rows { t.push(#{ i: i, x: i.to_float() / 7.0, label: p.label }); }
    t.write_csv("results/t.csv");
    #{ csv: out_path("results/t.csv") }
});
write_text("results/note.txt", `seed ${seed()} label ${p.label} input ${read_text(p.input)}`);
"#,
    );
    let o = yunmin(
        d.path(),
        &["run", s.to_str().unwrap(), "--out", "a", "--set", "rows=9"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = yunmin(d.path(), &["verify", "a"]);
    assert!(o.status.success(), "{}", text(&o));
    // The rerun takes the recorded parameters (a string that looks like a number stays one).
    let o = yunmin(d.path(), &["rerun", "a", "--out", "b", "--verify"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("reproduces"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(d.path().join("b/results/note.txt")).unwrap(),
        "seed 7 label 007 input first"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("b/results/t.csv"))
            .unwrap()
            .lines()
            .count(),
        10
    );
    // Drift in a run directory is found and named.
    std::fs::write(d.path().join("a/results/t.csv"), "i\n1\n").unwrap();
    std::fs::write(d.path().join("a/results/extra.txt"), "x").unwrap();
    let o = yunmin(d.path(), &["verify", "a"]);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("changed  results/t.csv") && out.contains("new      results/extra.txt"),
        "{out}"
    );
    // A rerun whose input changed does not reproduce the recorded run, and says which file.
    std::fs::write(d.path().join("in.txt"), "second").unwrap();
    let o = yunmin(d.path(), &["rerun", "b", "--out", "c", "--verify"]);
    assert!(!o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("changed  results/note.txt") && !out.contains("results/t.csv"),
        "{out}"
    );
}

#[test]
fn sample_pipeline_rerun_is_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let repo = repo_root();
    let a = d.path().join("a");
    let b = d.path().join("b");
    let mut args = vec![
        "-q".to_string(),
        "run".into(),
        "scripts/pipeline.rhai".into(),
        "--out".into(),
        a.to_string_lossy().into_owned(),
    ];
    for kv in [
        "pretrain_steps=12",
        "lora_steps=3",
        "eval_docs=3",
        "val_docs=3",
        "prompts=1",
        "max_new_tokens=8",
        "merge_scales=0.5,1.0",
    ] {
        args.push("--set".into());
        args.push(kv.into());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = yunmin(&repo, &argv);
    assert!(o.status.success(), "{}", text(&o));
    let o = yunmin(
        &repo,
        &[
            "-q",
            "rerun",
            a.to_str().unwrap(),
            "--out",
            b.to_str().unwrap(),
            "--verify",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Data, tokenizer, Parquet, models, adapters, diffs, merged weights, tables and report.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("manifest.json")).unwrap()).unwrap();
    let files = m["files"].as_object().unwrap();
    for f in [
        "data/tokenizer.json",
        "models/base/model.safetensors",
        "models/lora_news/adapter_model.safetensors",
        "diffs/news/index.json",
        "models/merged/model.safetensors",
        "results/eval_metrics.csv",
        "results/report.md",
        "results/summarize_eval.ipynb",
    ] {
        assert!(files.contains_key(f), "{f} recorded");
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        // Files that name where the run lives (a diff's base path) are equal once the run
        // root is replaced; everything else byte for byte.
        let relocated = String::from_utf8_lossy(&x)
            .replace(a.to_str().unwrap(), b.to_str().unwrap())
            .into_bytes();
        assert!(
            x == y || relocated == y,
            "{f} differs between the run and its rerun"
        );
    }
    assert!(files.keys().any(|k| k.starts_with("data/parquet/")));
}

#[test]
fn tables_are_cached_and_uncacheable_results_are_refused_before_the_body_runs() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let src = r#"let r = stage("t", #{ n: 2 }, || {
    write_text("ran.txt", "x");
    let t = table();
    t.push(#{ w: 0.1 + 0.2, name: "a", k: 1 });
    t.push(#{ w: 1.0 / 3.0, name: "b", k: 2 });
    t
});
r.write_csv("t.csv");
print(`rows=${r.rows()}`);
"#;
    let s = write_script(d.path(), "t.rhai", src);
    let fresh = run_ok(d.path(), &s);
    let csv = std::fs::read(run.join("t.csv")).unwrap();
    std::fs::remove_file(run.join("t.csv")).unwrap();
    let cached = run_ok(d.path(), &s);
    assert_eq!(fresh, cached);
    assert!(fresh.contains("rows=2"), "{fresh}");
    assert_eq!(statuses(&run, "t"), ["ok", "cached"]);
    assert_eq!(
        std::fs::read(run.join("t.csv")).unwrap(),
        csv,
        "the cached table is exact"
    );
    assert!(String::from_utf8_lossy(&csv).contains("0.30000000000000004"));

    // A model cannot be cached: the stage stops before its body writes anything.
    let src = "stage(\"m\", #{}, || {\n    write_text(\"ran.txt\", \"x\");\n    let m = load_model(\"nowhere\");\n    m\n});\n";
    let s = write_script(d.path(), "m.rhai", src);
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "m"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("stage `m`") && t.contains("`Model`") && t.contains("cannot be cached"),
        "{t}"
    );
    assert!(t.contains("`load_model` at 3:"), "{t}");
    assert!(!d.path().join("m/ran.txt").exists(), "the body never ran");
}

#[test]
fn scripts_are_confined_to_the_run_root_and_limited() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "s").unwrap();
    let doc = "{\"id\": \"a\", \"text\": \"가나다라 마바사\", \"domain\": \"x\"}\n";
    std::fs::write(outside.join("docs.jsonl"), doc).unwrap();
    let cases = [
        (
            format!("write_text(\"{}/x.txt\", \"x\");", outside.display()),
            "writing",
        ),
        (
            format!("print(read_text(\"{}/secret.txt\"));", outside.display()),
            "reading",
        ),
        (
            "let t = table(); t.push(#{a: 1}); t.write_csv(\"../../../../tmp/x.csv\");".to_string(),
            "writing /tmp/x.csv",
        ),
        (
            format!(
                "copy_file(\"{}/secret.txt\", \"in.txt\");",
                outside.display()
            ),
            "reading",
        ),
        // Phase functions: ingest sources, datasets opened, outputs placed.
        (
            format!("ingest(\"{}/docs.jsonl\", #{{}});", outside.display()),
            "reading",
        ),
        (
            format!("ingest(\"{}/*.jsonl\", #{{}});", outside.display()),
            "reading",
        ),
        (format!("dataset(\"{}\");", outside.display()), "reading"),
        (
            format!(
                "ingest(\"{}/scripts/docs.jsonl\", #{{ out: \"{}/ds\" }});",
                d.path().display(),
                outside.display()
            ),
            "writing",
        ),
        (
            format!(
                "let ds = ingest(\"{}/scripts/docs.jsonl\", #{{}});\nto_parquet(ds, \"{}/pq\", #{{ tokenizer: false }});",
                d.path().display(),
                outside.display()
            ),
            "writing",
        ),
    ];
    let scripts = d.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    // The script's own folder may be read: a script's bundled inputs stay usable.
    std::fs::write(scripts.join("docs.jsonl"), doc).unwrap();
    for (i, (body, want)) in cases.iter().enumerate() {
        let s = write_script(&scripts, &format!("e{i}.rhai"), body);
        let o = yunmin(
            d.path(),
            &["run", s.to_str().unwrap(), "--out", &format!("r{i}")],
        );
        assert!(!o.status.success(), "{body}: {}", text(&o));
        assert!(text(&o).contains(want), "{body}: {}", text(&o));
        if !want.contains('/') {
            assert!(
                text(&o).contains(&outside.display().to_string()),
                "the error names the path: {}",
                text(&o)
            );
        }
        assert!(!outside.join("x.txt").exists());
        assert!(!outside.join("ds").exists() && !outside.join("pq").exists());
    }
    // Allowed explicitly, or declared in params, it works.
    let s = write_script(&scripts, "w.rhai", &cases[0].0);
    let o = yunmin(
        d.path(),
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            "w",
            "--allow-write",
            outside.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(outside.join("x.txt").exists());
    let s = write_script(
        &scripts,
        "p.rhai",
        &format!(
            "let p = params(#{{ input: \"{}\" }});\nprint(read_text(p.input + \"/secret.txt\"));",
            outside.display()
        ),
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "p"]);
    assert!(o.status.success(), "{}", text(&o));

    // Engine limits, each named by its flag.
    let s = write_script(&scripts, "loop.rhai", "let i = 0;\nloop { i += 1; }\n");
    let o = yunmin(
        d.path(),
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            "l",
            "--max-operations",
            "100000",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("--max-operations 100000"), "{}", text(&o));
    let o = yunmin(
        d.path(),
        &["run", s.to_str().unwrap(), "--out", "l2", "--timeout", "1"],
    );
    assert!(text(&o).contains("--timeout 1"), "{}", text(&o));
    let s = write_script(&scripts, "deep.rhai", "fn f(n) { f(n + 1) }\nf(0);\n");
    let o = yunmin(
        d.path(),
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            "c",
            "--max-call-depth",
            "20",
        ],
    );
    assert!(text(&o).contains("--max-call-depth 20"), "{}", text(&o));
    let s = write_script(&scripts, "big.rhai", "let s = \"x\";\nloop { s += s; }\n");
    let o = yunmin(
        d.path(),
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            "b",
            "--max-string-size",
            "1000",
        ],
    );
    assert!(text(&o).contains("--max-string-size 1000"), "{}", text(&o));
}

#[test]
fn check_reports_every_problem_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let s = write_script(
        d.path(),
        "typos.rhai",
        r#"let p = params(#{ steps: 3, input: "x" });
write_text("ran.txt", "x");
let t = table();
t.write_cvs("a.csv");
let m = lod_model("models/base");
let ds = ingest(p.input, #{ max_line: 5 });
print(p.step);
t.write_csv("b.csv", #{ headr: false });
"#,
    );
    let o = yunmin(d.path(), &["check", s.to_str().unwrap()]);
    assert!(!o.status.success());
    let out = text(&o);
    for want in [
        "typos.rhai:4:3: unknown method `write_cvs` (did you mean `write_csv`?)",
        "typos.rhai:5:9: unknown function `lod_model` (did you mean `load_model`?)",
        "ingest: unknown option `max_line` (did you mean `max_line_bytes`?)",
        "typos.rhai:7:9: `p.step`: no such parameter (did you mean `steps`?)",
        "typos.rhai:8:",
        "write_csv: unknown option `headr` (did you mean `header`?)",
    ] {
        assert!(out.contains(want), "missing {want:?} in {out}");
    }
    let o = yunmin(
        d.path(),
        &["check", s.to_str().unwrap(), "--set", "stpes=1"],
    );
    assert!(text(&o).contains("--set stpes"), "{}", text(&o));
    // `run` checks first: nothing runs.
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("5 problem(s)"), "{}", text(&o));
    assert!(!d.path().join("r/ran.txt").exists());
    // A `--set` value must have the type of the parameter's default.
    let ok = write_script(
        d.path(),
        "ok.rhai",
        "let p = params(#{ steps: 3 });\nprint(p.steps);\n",
    );
    let o = yunmin(
        d.path(),
        &[
            "run",
            ok.to_str().unwrap(),
            "--out",
            "r2",
            "--set",
            "steps=ten",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("must be too"), "{}", text(&o));
    // Every shipped script passes.
    let repo = repo_root();
    for dir in ["scripts", "experiments"] {
        for e in std::fs::read_dir(repo.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rhai") {
                let o = yunmin(&repo, &["check", p.to_str().unwrap()]);
                assert!(o.status.success(), "{}: {}", p.display(), text(&o));
            }
        }
    }
}
