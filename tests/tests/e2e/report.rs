//! Charts and notebooks from a script: PNG files and an nbformat-valid notebook whose code
//! cells all carry outputs, written byte-identically twice, which a real kernel runs to the
//! same tables (`scripts/interop/run_notebook.py`: nbclient, ipykernel, pandas, matplotlib);
//! a stored number off by more than its rounding, or a cell that raises, fails that check.

use std::path::Path;
use std::process::Output;
use yunmin_tests::{python, repo_root, text, write_script, yunmin};

const SCRIPT: &str = r##"
let t = table();
for m in ["base", "merged"] {
    for (d, i) in ["law", "news", "chat"] {
        t.push(#{ model: m, domain: d, ppl: 10.0 + i * 1.2345678 + (if m == "base" { 5.4321 } else { 0.0 }) });
    }
}
t.write_csv("results/metrics.csv");
let bars = t.plot_bars("results/plots/ppl.png", #{ x: "domain", y: "ppl", group: "model", title: "Held-out perplexity" });
let nb = notebook();
nb.markdown("# Results\nPerplexity per model and domain.");
nb.code_table("import pandas as pd\npd.set_option('display.precision', 4)\nt = pd.read_csv('metrics.csv')\nt", t);
nb.code_image("t.pivot(index='domain', columns='model', values='ppl').plot.bar();", "results/plots/ppl.png");
nb.code_text("print(len(t), 'rows')", "6 rows\n");
nb.write("results/summary.ipynb");
"##;

/// Runs `scripts/interop/run_notebook.py` on a notebook (executed in its own directory).
pub(crate) fn execute_notebook(path: &Path) -> Output {
    std::process::Command::new(python())
        .arg(repo_root().join("scripts/interop/run_notebook.py"))
        .arg(path)
        .output()
        .expect("spawn python")
}

/// Asserts that every cell of the notebook runs and shows the stored tables and images.
pub(crate) fn assert_notebook_runs(path: &Path) {
    let o = execute_notebook(path);
    assert!(
        o.status.success(),
        "{} does not run to its stored outputs: {}",
        path.display(),
        text(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("OK, every cell ran"));
}

fn write_notebook(dir: &Path, out: &str) -> std::path::PathBuf {
    let s = write_script(dir, "nb.rhai", SCRIPT);
    let o = yunmin(dir, &["run", s.to_str().unwrap(), "--out", out]);
    assert!(o.status.success(), "{}", text(&o));
    dir.join(out).join("results/summary.ipynb")
}

#[test]
fn script_writes_png_plots_and_a_valid_notebook_with_outputs() {
    let d = tempfile::tempdir().unwrap();
    let nb_path = write_notebook(d.path(), "run");
    let png = std::fs::read(d.path().join("run/results/plots/ppl.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let nb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&nb_path).unwrap()).unwrap();
    let cells = nb["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells.iter().filter(|c| c["cell_type"] == "code") {
        assert!(
            !c["outputs"].as_array().unwrap().is_empty(),
            "code cell without outputs: {c}"
        );
    }
    assert!(
        cells[1]["outputs"][0]["data"]["text/html"]
            .to_string()
            .contains("merged")
    );
    let b64 = cells[2]["outputs"][0]["data"]["image/png"]
        .as_str()
        .unwrap();
    assert!(b64.starts_with("iVBORw0KGgo"), "embedded PNG");

    let check = std::process::Command::new(python())
        .args(["-c", "import nbformat,sys; nb=nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb); print(len(nb.cells))"])
        .arg(&nb_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "nbformat rejects the notebook: {}",
        text(&check)
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "4");

    // The same inputs give the same bytes (cell ids, execution counts, PNGs).
    let again = write_notebook(d.path(), "run2");
    assert!(
        std::fs::read(&nb_path).unwrap() == std::fs::read(&again).unwrap(),
        "two runs wrote different notebooks"
    );

    assert_notebook_runs(&nb_path);
}

#[test]
fn notebook_check_fails_on_a_changed_number_or_a_raising_cell() {
    let d = tempfile::tempdir().unwrap();
    let nb_path = write_notebook(d.path(), "run");
    let stored = std::fs::read_to_string(&nb_path).unwrap();

    // base/law is 15.4321 (4 decimals as stored); 2 units in the last digit is past rounding.
    assert!(stored.contains("<td>15.4321</td>"), "{stored}");
    std::fs::write(
        &nb_path,
        stored.replace("<td>15.4321</td>", "<td>15.4323</td>"),
    )
    .unwrap();
    let o = execute_notebook(&nb_path);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "a changed number passed: {}", text(&o));
    assert!(
        out.contains("row 0, column 'ppl': stored '15.4323', executed '15.4321'"),
        "{}",
        text(&o)
    );

    // A cell that raises: the CSV it reads is gone.
    std::fs::write(&nb_path, &stored).unwrap();
    std::fs::remove_file(d.path().join("run/results/metrics.csv")).unwrap();
    let o = execute_notebook(&nb_path);
    assert!(!o.status.success(), "a raising cell passed: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("raised FileNotFoundError"),
        "{}",
        text(&o)
    );
}

#[test]
fn table_summaries_pivot_and_zoomed_charts_from_a_script() {
    let d = tempfile::tempdir().unwrap();
    let s = write_script(
        d.path(),
        "sum.rhai",
        r#"let t = table();
t.push(#{ model: "base", domain: "law", ppl: 10.0 });
t.push(#{ model: "base", domain: "news", ppl: 1000.0 });
t.push(#{ model: "merged", domain: "law", ppl: 8.0 });
t.push(#{ model: "merged", domain: "news", ppl: 500.0 });
let w = t.pivot("model", "domain", "ppl");
w.write_csv("wide.csv");
let base = t.filter("model", "==", "base");
print(`geo=${base.geomean("ppl")} mean=${base.mean("ppl")} best=${t.argmin("ppl").model}/${t.argmin("ppl").domain} worst=${t.argmax("ppl").domain}`);
t.plot_bars("zoom.png", #{ x: "domain", y: "ppl", group: "model", y_min: 5.0, y_max: 1100.0 });
"#,
    );
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "r"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let geo: f64 = out
        .split("geo=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap();
    assert!((geo - 100.0).abs() < 1e-9, "{out}");
    assert!(out.contains("mean=505"), "{out}");
    assert!(out.contains("best=merged/law worst=news"), "{out}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("r/wide.csv")).unwrap(),
        "model,law,news\nbase,10.0,1000.0\nmerged,8.0,500.0\n"
    );
    assert!(d.path().join("r/zoom.png").exists());
    // Errors that name what is wrong: an empty y range, a duplicate pivot cell, a text mean,
    // and `model_perplexity` refusing an option that belongs to `evaluate`.
    for (body, want) in [
        (
            "let t = table(); t.push(#{ a: \"x\", v: 1.0 }); t.plot_bars(\"e.png\", #{ x: \"a\", y: \"v\", group: \"a\", y_min: 5.0, y_max: 2.0 });",
            "y_min",
        ),
        (
            "let t = table(); t.push(#{ a: 1, b: \"x\", v: 1.0 }); t.push(#{ a: 1, b: \"x\", v: 2.0 }); t.pivot(\"a\", \"b\", \"v\");",
            "two rows",
        ),
        (
            "let t = table(); t.push(#{ a: \"x\" }); t.mean(\"a\");",
            "not a number",
        ),
    ] {
        let s = write_script(d.path(), "e.rhai", body);
        let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "e"]);
        assert!(!o.status.success(), "{body}");
        assert!(text(&o).contains(want), "{body}: {}", text(&o));
    }
    let s = write_script(
        d.path(),
        "ppl.rhai",
        "let m = load_model(\"m\");\nmodel_perplexity(m, [[1, 2, 3]], #{ prompts: 3 });\n",
    );
    let o = yunmin(d.path(), &["check", s.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("model_perplexity: unknown option `prompts`"),
        "{}",
        text(&o)
    );
}
