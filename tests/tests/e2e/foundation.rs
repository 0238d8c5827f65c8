//! The host: scripts, parameter sweeps into tables, the stage cache, errors with positions,
//! and the API reference.

use yunmin_tests::{repo_root, text, write_script, yunmin};

const SWEEP: &str = r#"
let p = params(#{ steps: 3, scale: 0.5, seed: 7 });
let t = table();
for i in 0..p.steps {
    let w = i * p.scale;
    t.push(#{ step: i, weight: w, label: `run${i}` });
}
let r = stage("sweep", #{ steps: p.steps, scale: p.scale }, || {
    let out = t.sort("weight", true).write_csv("results/sweep.csv");
    #{ csv: "results/sweep.csv", rows: t.rows() }
});
print(`rows=${r.rows}`);
"#;

#[test]
fn sweep_table_is_written_and_rerun_is_cached_and_identical() {
    let d = tempfile::tempdir().unwrap();
    let script = write_script(d.path(), "sweep.rhai", SWEEP);
    let out = d.path().join("run");
    let args = [
        "run",
        script.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "steps=4",
    ];
    let o = yunmin(d.path(), &args);
    assert!(o.status.success(), "{}", text(&o));
    let csv = std::fs::read_to_string(out.join("results/sweep.csv")).unwrap();
    assert_eq!(
        csv, "label,step,weight\nrun3,3,1.5\nrun2,2,1.0\nrun1,1,0.5\nrun0,0,0.0\n",
        "columns in key order, sorted descending by weight, 4 rows from --set steps=4"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["params"]["steps"], 4);
    assert_eq!(manifest["seed"], 7);
    assert_eq!(manifest["status"], "ok");
    assert!(
        manifest["script_hash"]
            .as_str()
            .is_some_and(|h| h.len() == 32)
    );
    assert!(manifest["versions"]["rhai"].as_str().is_some());
    assert!(out.join("script.rhai").exists());
    let log1 = std::fs::read_to_string(out.join("pipeline_run.log")).unwrap();
    assert!(
        log1.contains("stage=sweep") && log1.contains("status=ok"),
        "{log1}"
    );

    let mtime = std::fs::metadata(out.join("results/sweep.csv"))
        .unwrap()
        .modified()
        .unwrap();
    let o2 = yunmin(d.path(), &args);
    assert!(o2.status.success(), "{}", text(&o2));
    assert!(
        String::from_utf8_lossy(&o2.stdout).contains("rows=4"),
        "{}",
        text(&o2)
    );
    let log2 = std::fs::read_to_string(out.join("pipeline_run.log")).unwrap();
    assert!(
        log2.lines().last().unwrap().contains("status=cached"),
        "{log2}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("results/sweep.csv")).unwrap(),
        csv
    );
    assert_eq!(
        std::fs::metadata(out.join("results/sweep.csv"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );

    // --force reruns, a changed parameter reruns.
    let mut forced = args.to_vec();
    forced.push("--force");
    let o3 = yunmin(d.path(), &forced);
    assert!(o3.status.success(), "{}", text(&o3));
    let log3 = std::fs::read_to_string(out.join("pipeline_run.log")).unwrap();
    assert!(log3.lines().last().unwrap().contains("status=ok"), "{log3}");
}

#[test]
fn option_typo_and_runtime_error_name_the_script_line() {
    let d = tempfile::tempdir().unwrap();
    let s = write_script(
        d.path(),
        "typo.rhai",
        "let t = table();\n\nlet x = read_csv(\"nope.csv\");\n",
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 3"), "{}", text(&o));
    assert!(err.contains("nope.csv"), "{}", text(&o));
    let errlog = std::fs::read_to_string(d.path().join("r1/pipeline_errors.log")).unwrap();
    assert!(
        errlog.contains("nope.csv") && errlog.contains("backtrace"),
        "{errlog}"
    );

    let s = write_script(
        d.path(),
        "key.rhai",
        "let t = table([#{a: 1}]);\n\nt.write_csv(\"x.csv\", #{ hedaer: false });\n",
    );
    // The run-time check (the static one would stop it first).
    let o = yunmin(
        d.path(),
        &["run", s.to_str().unwrap(), "--out", "r0", "--no-check"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 3") && err.contains("unknown option `hedaer`"),
        "{}",
        text(&o)
    );
    assert!(
        err.contains("known options: header, separator"),
        "{}",
        text(&o)
    );

    let s = write_script(
        d.path(),
        "opt.rhai",
        "let p = params(#{ steps: 1 });\nlet t = table();\nt.filter(\"steps\", \"=~\", 1);\n",
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r2"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 3") && err.contains("filter operator"),
        "{}",
        text(&o)
    );

    let o = yunmin(
        d.path(),
        &[
            "run",
            s.to_str().unwrap(),
            "--out",
            "r3",
            "--set",
            "stpes=2",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stpes") && err.contains("parameters: steps"),
        "{}",
        text(&o)
    );
}

#[test]
fn check_reports_syntax_error_position() {
    let d = tempfile::tempdir().unwrap();
    let s = write_script(d.path(), "bad.rhai", "let a = 1;\nlet b = (a + ;\n");
    let o = yunmin(d.path(), &["check", s.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.rhai:2:"), "{}", text(&o));
    let good = write_script(d.path(), "good.rhai", "let a = 1;\n");
    assert!(
        yunmin(d.path(), &["check", good.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn api_lists_functions_and_matches_docs() {
    let root = repo_root();
    let o = yunmin(&root, &["api"]);
    assert!(o.status.success(), "{}", text(&o));
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        listing.contains("params(defaults: map) -> map"),
        "{listing}"
    );
    assert!(
        listing.contains("write_csv(table: Table, path: string) -> string"),
        "{listing}"
    );
    let o = yunmin(&root, &["api", "--check", "docs/scripting.md"]);
    assert!(
        o.status.success(),
        "docs/scripting.md is stale: {}",
        text(&o)
    );
}
