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
