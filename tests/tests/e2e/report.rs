//! Charts and notebooks from a script: PNG files and an nbformat-valid notebook whose code
//! cells all carry outputs.

use yunmin_tests::{python, text, write_script, yunmin};

const SCRIPT: &str = r##"
let t = table();
for m in ["base", "merged"] {
    for (d, i) in ["law", "news", "chat"] {
        t.push(#{ model: m, domain: d, ppl: 10.0 + i + (if m == "base" { 5.0 } else { 0.0 }) });
    }
}
t.write_csv("results/metrics.csv");
let bars = t.plot_bars("results/plots/ppl.png", #{ x: "domain", y: "ppl", group: "model", title: "Held-out perplexity" });
let nb = notebook();
nb.markdown("# Results\nPerplexity per model and domain.");
nb.code_table("import pandas as pd\npd.read_csv('results/metrics.csv')", t);
nb.code_image("from IPython.display import Image\nImage('results/plots/ppl.png')", "results/plots/ppl.png");
nb.write("results/summary.ipynb");
"##;

#[test]
fn script_writes_png_plots_and_a_valid_notebook_with_outputs() {
    let d = tempfile::tempdir().unwrap();
    let s = write_script(d.path(), "nb.rhai", SCRIPT);
    let o = yunmin(d.path(), &["run", s.to_str().unwrap(), "--out", "run"]);
    assert!(o.status.success(), "{}", text(&o));
    let png = std::fs::read(d.path().join("run/results/plots/ppl.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let nb_path = d.path().join("run/results/summary.ipynb");
    let nb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&nb_path).unwrap()).unwrap();
    let cells = nb["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3);
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
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "3");
}
