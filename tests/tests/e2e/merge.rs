//! `yunmin diff` / `yunmin merge` and the Rhai `merge` module on tiny random checkpoints and PEFT
//! adapters written here with the safetensors crate: parity with NumPy on the saved `.npy`
//! diffs, W + s·B@A for one adapter, bit-for-bit base at weight 0, TIES/DARE by hand, bad input.

use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use yunmin_tests::{repo_root, text, write_script, yunmin};

type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Deterministic pseudo-random values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write_st(path: &Path, tensors: &Tensors) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, v))| (n.clone(), s.clone(), to_bytes(v)))
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

fn read_st(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.iter()
        .map(|(n, v)| {
            let f = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n.to_string(), (v.shape().to_vec(), f))
        })
        .collect()
}

const Q: &str = "model.layers.0.self_attn.q_proj.weight";
const V: &str = "model.layers.0.self_attn.v_proj.weight";
const DOWN: &str = "model.layers.0.mlp.down_proj.weight";

fn base_tensors(seed: u64, q_in: usize) -> Tensors {
    let mut t = Tensors::new();
    let mut add = |n: &str, s: Vec<usize>, k: u64| {
        let len = s.iter().product();
        t.insert(n.to_string(), (s, values(seed * 100 + k, len)));
    };
    add("model.embed_tokens.weight", vec![10, 8], 1);
    add(Q, vec![8, q_in], 2);
    add(V, vec![4, 8], 3);
    add(DOWN, vec![8, 12], 4);
    add("model.norm.weight", vec![8], 5);
    // Negative zeros must survive a weight-0 merge bit for bit.
    t.get_mut("model.norm.weight").unwrap().1[0] = -0.0;
    t.get_mut(Q).unwrap().1[3] = -0.0;
    t
}

fn write_base(dir: &Path, seed: u64, q_in: usize) -> Tensors {
    std::fs::create_dir_all(dir).unwrap();
    let t = base_tensors(seed, q_in);
    write_st(&dir.join("model.safetensors"), &t);
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "llama", "hidden_size": 8}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer.json"),
        r#"{"version": "1.0", "model": {"type": "BPE"}}"#,
    )
    .unwrap();
    t
}

/// A PEFT adapter with rank 2, alpha 3 (scaling 1.5) on `targets` (base name, [out, in]).
fn write_adapter(dir: &Path, seed: u64, targets: &[(&str, [usize; 2])]) -> Tensors {
    std::fs::create_dir_all(dir).unwrap();
    let r = 2;
    let mut t = Tensors::new();
    for (k, (name, [o, i])) in targets.iter().enumerate() {
        let module = name.trim_end_matches(".weight");
        t.insert(
            format!("base_model.model.{module}.lora_A.weight"),
            (vec![r, *i], values(seed * 10 + k as u64, r * i)),
        );
        t.insert(
            format!("base_model.model.{module}.lora_B.weight"),
            (vec![*o, r], values(seed * 10 + 5 + k as u64, o * r)),
        );
    }
    write_st(&dir.join("adapter_model.safetensors"), &t);
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 3, "target_modules": ["q_proj", "v_proj", "down_proj"], "lora_dropout": 0.0, "bias": "none"}"#,
    )
    .unwrap();
    t
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    base: Tensors,
    adapters: Vec<Tensors>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let base = write_base(&root.join("base"), 1, 8);
    let adapters = vec![
        write_adapter(&root.join("lora_legal"), 2, &[(Q, [8, 8]), (V, [4, 8])]),
        write_adapter(
            &root.join("lora_medical"),
            3,
            &[(Q, [8, 8]), (DOWN, [8, 12])],
        ),
        write_adapter(&root.join("lora_news"), 4, &[(V, [4, 8])]),
    ];
    Fixture {
        _tmp: tmp,
        root,
        base,
        adapters,
    }
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}", text(o));
}

fn diffs(f: &Fixture) {
    for d in ["legal", "medical", "news"] {
        ok(&yunmin(
            &f.root,
            &[
                "diff",
                "--base",
                "base",
                "--adapter",
                &format!("lora_{d}"),
                "--out",
                "run",
            ],
        ));
    }
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("YUNMIN_PYTHON") {
        return PathBuf::from(p);
    }
    let p = repo_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "no Python for the NumPy parity test: set YUNMIN_PYTHON or create {} with scripts/python-requirements/merge.txt",
        p.display()
    );
    p
}

const NUMPY_CHECK: &str = r#"
import json, os, sys
import numpy as np
from safetensors.numpy import load_file
root, weights = sys.argv[1], [float(x) for x in sys.argv[2].split(",")]
domains = ["legal", "medical", "news"]
base = load_file(os.path.join(root, "base/model.safetensors"))
merged = load_file(os.path.join(root, "merged/model.safetensors"))
ref = {k: v.astype(np.float64) for k, v in base.items()}
worst = 0.0
for w, d in zip(weights, domains):
    idx = json.load(open(os.path.join(root, "run/diffs", d, "index.json")))
    ad = load_file(os.path.join(root, "lora_" + d, "adapter_model.safetensors"))
    stats = json.load(open(os.path.join(root, "run/diff_stats", d + "_summary.json")))
    allv = []
    for name, e in idx["tensors"].items():
        delta = np.load(os.path.join(root, "run/diffs", d, e["file"]))
        assert delta.dtype == np.float32 and list(delta.shape) == e["shape"], name
        # The .npy diff equals 1.5 * B @ A computed here from the adapter file.
        m = "base_model.model." + name[: -len(".weight")]
        indep = 1.5 * ad[m + ".lora_B.weight"].astype(np.float64) @ ad[m + ".lora_A.weight"].astype(np.float64)
        err = np.linalg.norm(delta - indep) / np.linalg.norm(indep)
        assert err <= 1e-6, (d, name, err)
        s = stats["tensors"][name]
        d64 = delta.astype(np.float64)
        for key, val in [("l2", np.linalg.norm(d64)), ("max", d64.max()), ("min", d64.min()), ("mean", d64.mean()), ("std", d64.std())]:
            assert abs(s[key] - val) <= 1e-6 * max(1.0, abs(val)), (d, name, key, s[key], val)
        allv.append(d64.ravel())
        ref[name] = ref[name] + w * d64
    allv = np.concatenate(allv)
    o = stats["overall"]
    assert abs(o["l2"] - np.linalg.norm(allv)) <= 1e-6 * np.linalg.norm(allv)
    assert abs(o["std"] - allv.std()) <= 1e-6 * allv.std()
    assert o["numel"] == allv.size
for name, r in ref.items():
    got = merged[name].astype(np.float64)
    err = np.linalg.norm(got - r) / max(np.linalg.norm(r), 1e-300)
    worst = max(worst, err)
    assert err <= 1e-6, (name, err)
print("numpy parity ok, worst relative error", worst)
"#;

#[test]
fn merged_weights_equal_numpy_on_saved_npy_diffs() {
    let f = fixture();
    diffs(&f);
    let o = yunmin(
        &f.root,
        &[
            "merge",
            "--base",
            "base",
            "--diffs",
            "run/diffs/legal,run/diffs/medical,run/diffs/news",
            "--weights",
            "-0.7,0.45,1.3",
            "--out",
            ".",
            "--model-dir",
            "merged",
        ],
    );
    ok(&o);
    // Full HF checkpoint: side files copied, format=pt.
    for side in ["config.json", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(f.root.join("base").join(side)).unwrap(),
            std::fs::read(f.root.join("merged").join(side)).unwrap()
        );
    }
    let bytes = std::fs::read(f.root.join("merged/model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
    let py = Command::new(python())
        .arg("-c")
        .arg(NUMPY_CHECK)
        .arg(&f.root)
        .arg("-0.7,0.45,1.3")
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py));
}

#[test]
fn one_adapter_at_weight_one_is_w_plus_scaled_ba() {
    let f = fixture();
    ok(&yunmin(
        &f.root,
        &[
            "diff",
            "--base",
            "base",
            "--adapter",
            "lora_medical",
            "--out",
            "run",
        ],
    ));
    ok(&yunmin(
        &f.root,
        &[
            "merge",
            "--base",
            "base",
            "--diffs",
            "run/diffs/medical",
            "--weights",
            "1",
            "--out",
            ".",
            "--model-dir",
            "merged",
        ],
    ));
    let merged = read_st(&f.root.join("merged/model.safetensors"));
    let ad = &f.adapters[1];
    for (name, (shape, base)) in &f.base {
        let (mshape, got) = &merged[name];
        assert_eq!(mshape, shape);
        let module = name.trim_end_matches(".weight");
        let a = ad.get(&format!("base_model.model.{module}.lora_A.weight"));
        let b = ad.get(&format!("base_model.model.{module}.lora_B.weight"));
        match (a, b) {
            (Some((_, a)), Some((_, b))) => {
                let (rows, cols, r) = (shape[0], shape[1], 2);
                let (mut num, mut den) = (0.0f64, 0.0f64);
                for i in 0..rows {
                    for j in 0..cols {
                        let ba: f64 = (0..r)
                            .map(|k| b[i * r + k] as f64 * a[k * cols + j] as f64)
                            .sum();
                        let want = base[i * cols + j] as f64 + 1.5 * ba;
                        num += (got[i * cols + j] as f64 - want).powi(2);
                        den += want * want;
                    }
                }
                assert!(
                    (num / den).sqrt() <= 1e-6,
                    "{name}: relative error {}",
                    (num / den).sqrt()
                );
            }
            _ => assert_eq!(got, base, "{name} is not adapted and must be copied"),
        }
    }
}

#[test]
fn weight_zero_returns_the_base_bit_for_bit() {
    let f = fixture();
    diffs(&f);
    ok(&yunmin(
        &f.root,
        &[
            "merge",
            "--base",
            "base",
            "--diffs",
            "run/diffs/legal,run/diffs/medical,run/diffs/news",
            "--weights",
            "0,0,0",
            "--out",
            ".",
            "--model-dir",
            "merged",
        ],
    ));
    let base = std::fs::read(f.root.join("base/model.safetensors")).unwrap();
    let merged = std::fs::read(f.root.join("merged/model.safetensors")).unwrap();
    let (b, m) = (
        safetensors::SafeTensors::deserialize(&base).unwrap(),
        safetensors::SafeTensors::deserialize(&merged).unwrap(),
    );
    for name in b.names() {
        assert_eq!(
            b.tensor(name).unwrap().data(),
            m.tensor(name).unwrap().data(),
            "{name}"
        );
    }
    assert_eq!(
        read_st(&f.root.join("merged/model.safetensors"))["model.norm.weight"].1[0].to_bits(),
        (-0.0f32).to_bits()
    );
}

/// Full fine-tuned checkpoints (diff = fine-tuned − base) with hand-picked values.
fn hand_fixture(root: &Path, diffs: &[[f32; 4]]) {
    let base: Tensors =
        BTreeMap::from([("w".to_string(), (vec![1, 4], vec![0.0, 0.0, 0.0, 10.0]))]);
    std::fs::create_dir_all(root.join("base")).unwrap();
    write_st(&root.join("base/model.safetensors"), &base);
    std::fs::write(root.join("base/config.json"), "{}").unwrap();
    for (i, d) in diffs.iter().enumerate() {
        let dir = root.join(format!("ft{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let v: Vec<f32> = base["w"].1.iter().zip(d).map(|(b, d)| b + d).collect();
        write_st(
            &dir.join("model.safetensors"),
            &BTreeMap::from([("w".to_string(), (vec![1, 4], v))]),
        );
        ok(&yunmin(
            root,
            &[
                "diff",
                "--base",
                "base",
                "--adapter",
                &format!("ft{i}"),
                "--out",
                "run",
            ],
        ));
    }
}

#[test]
fn ties_and_dare_on_hand_computed_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    hand_fixture(
        root,
        &[
            [3.0, -1.0, 0.5, 2.0],
            [-1.0, -4.0, 0.25, 6.0],
            [-5.0, 0.25, 0.5, -1.0],
        ],
    );
    let all = "run/diffs/ft0,run/diffs/ft1,run/diffs/ft2";
    ok(&yunmin(
        root,
        &[
            "merge",
            "--base",
            "base",
            "--diffs",
            all,
            "--method",
            "ties",
            "--density",
            "0.5",
            "--lambda",
            "2",
            "--out",
            ".",
            "--model-dir",
            "ties",
        ],
    ));
    // Trim to top 2 by |x|: d0 → [3,0,0,2], d1 → [0,-4,0,6], d2 → [-5,0,0,-1]; elect sign and
    // average the agreeing entries: [-5, -4, 0, (2+6)/2] × λ=2, plus the base.
    assert_eq!(
        read_st(&root.join("ties/model.safetensors"))["w"].1,
        vec![-10.0, -8.0, 0.0, 18.0]
    );

    ok(&yunmin(
        root,
        &[
            "merge",
            "--base",
            "base",
            "--diffs",
            all,
            "--method",
            "dare",
            "--drop",
            "0",
            "--weights",
            "1,0.5,-1",
            "--out",
            ".",
            "--model-dir",
            "dare0",
        ],
    ));
    assert_eq!(
        read_st(&root.join("dare0/model.safetensors"))["w"].1,
        vec![
            3.0 - 0.5 + 5.0,
            -1.0 - 2.0 - 0.25,
            0.5 + 0.125 - 0.5,
            10.0 + 2.0 + 3.0 + 1.0
        ]
    );

    // Drop 0.5: every element is the base or base + 2·w·d; same seed → same result.
    let merge_dare = |seed: &str, out: &str| {
        ok(&yunmin(
            root,
            &[
                "merge",
                "--base",
                "base",
                "--diffs",
                "run/diffs/ft0",
                "--method",
                "dare",
                "--drop",
                "0.5",
                "--seed",
                seed,
                "--out",
                ".",
                "--model-dir",
                out,
            ],
        ));
        read_st(&root.join(out).join("model.safetensors"))["w"]
            .1
            .clone()
    };
    let a = merge_dare("7", "dare_a");
    let b = merge_dare("7", "dare_b");
    assert_eq!(a, b);
    let d = [3.0f32, -1.0, 0.5, 2.0];
    let base = [0.0f32, 0.0, 0.0, 10.0];
    for i in 0..4 {
        assert!(
            a[i] == base[i] || a[i] == base[i] + 2.0 * d[i],
            "element {i}: {}",
            a[i]
        );
    }
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let f = fixture();
    diffs(&f);
    let all = "run/diffs/legal,run/diffs/medical,run/diffs/news";
    // Wrong number of weights.
    let o = yunmin(
        &f.root,
        &[
            "merge",
            "--base",
            "base",
            "--diffs",
            all,
            "--weights",
            "0.5,0.5",
            "--out",
            ".",
            "--model-dir",
            "m1",
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("got 2 weight(s) for 3 diff(s)"),
        "{}",
        text(&o)
    );
    assert!(!f.root.join("m1").exists());

    // Same shapes, different base values: refused, naming the tensor and the domain.
    write_base(&f.root.join("base2"), 9, 8);
    let o = yunmin(
        &f.root,
        &[
            "merge",
            "--base",
            "base2",
            "--diffs",
            all,
            "--out",
            ".",
            "--model-dir",
            "m2",
        ],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("different base") && t.contains("self_attn") && t.contains("legal"),
        "{t}"
    );
    assert!(!f.root.join("m2").exists());

    // A base with another shape for q_proj.
    write_base(&f.root.join("base3"), 1, 6);
    let o = yunmin(
        &f.root,
        &[
            "merge",
            "--base",
            "base3",
            "--diffs",
            "run/diffs/legal",
            "--out",
            ".",
            "--model-dir",
            "m3",
        ],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(&format!("tensor `{Q}`: shape mismatch")) && t.contains("[8, 6]"),
        "{t}"
    );
    let o = yunmin(
        &f.root,
        &[
            "diff",
            "--base",
            "base3",
            "--adapter",
            "lora_legal",
            "--out",
            "run3",
        ],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("tensor `{Q}`: shape mismatch")),
        "{}",
        text(&o)
    );
    assert!(!f.root.join("run3/diffs/legal").exists());

    // Missing adapter weights.
    std::fs::remove_file(f.root.join("lora_news/adapter_model.safetensors")).unwrap();
    let o = yunmin(
        &f.root,
        &[
            "diff",
            "--base",
            "base",
            "--adapter",
            "lora_news",
            "--out",
            "run4",
        ],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("missing adapter weights") && t.contains("adapter_model.safetensors"),
        "{t}"
    );
    // Missing adapter directory.
    let o = yunmin(
        &f.root,
        &[
            "diff",
            "--base",
            "base",
            "--adapter",
            "lora_nowhere",
            "--out",
            "run4",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("lora_nowhere"), "{}", text(&o));
}

#[test]
fn rhai_diff_merge_save_matches_cli_and_sweeps_in_memory() {
    let f = fixture();
    diffs(&f);
    ok(&yunmin(
        &f.root,
        &[
            "merge",
            "--base",
            "base",
            "--diffs",
            "run/diffs/legal,run/diffs/medical,run/diffs/news",
            "--weights",
            "0.4,0.3,0.3",
            "--out",
            ".",
            "--model-dir",
            "merged_cli",
        ],
    ));
    let script = write_script(
        &f.root,
        "m.rhai",
        &format!(
            r#"
let root = "{root}";
let ds = [];
for d in ["legal", "medical", "news"] {{
    ds.push(diff(root + "/base", root + "/lora_" + d, #{{ domain: d }}));
}}
if ds[0].domain != "legal" || ds[0].tensors != 2 || ds[0].l2 <= 0.0 {{ throw "bad diff handle"; }}
let m = merge(root + "/base", ds, #{{ weights: [0.4, 0.3, 0.3] }});
save(m, "models/merged");
let zero = merge(root + "/base", ds, #{{ weights: [0.0, 0.0, 0.0] }});
if distance_from_base(zero) != 0.0 {{ throw "weight 0 moved the base"; }}
if distance_from_base(m) <= 0.0 {{ throw "merge did not move the base"; }}
let mg = merger(root + "/base", ds);
let t = table();
for w in [0.0, 0.5, 1.0] {{
    let x = mg.merge(#{{ weights: [w, 1.0 - w, -0.5], method: "ties", density: 0.5 }});
    t.push(#{{ w: w, l2: distance_from_base(x) }});
}}
if t.rows() != 3 {{ throw "table"; }}
let bad = 0;
try {{ merge(root + "/base", ds, #{{ weights: [1.0] }}); }} catch (e) {{ bad += 1; }}
try {{ merge(root + "/base", ds, #{{ wieghts: [1.0, 1.0, 1.0] }}); }} catch (e) {{ if `${{e}}`.contains("known options") {{ bad += 1; }} }}
if bad != 2 {{ throw "bad options accepted"; }}
"#,
            root = f.root.display()
        ),
    );
    // The option typos are caught at run time here (`try`/`catch`), not by the check.
    let o = yunmin(
        &f.root,
        &[
            "run",
            script.to_str().unwrap(),
            "--out",
            "rrun",
            "--no-check",
        ],
    );
    ok(&o);
    // In-memory merge + save writes the same bytes as the streaming CLI merge.
    assert_eq!(
        std::fs::read(f.root.join("rrun/models/merged/model.safetensors")).unwrap(),
        std::fs::read(f.root.join("merged_cli/model.safetensors")).unwrap()
    );
    assert!(f.root.join("rrun/diff_stats/legal_summary.json").exists());
    assert!(f.root.join("rrun/diffs/news/index.json").exists());
}

#[test]
fn merge_sweep_experiment_runs_a_25_point_grid() {
    let f = fixture();
    std::fs::create_dir_all(f.root.join("models")).unwrap();
    for d in ["base", "lora_legal", "lora_medical", "lora_news"] {
        std::fs::rename(f.root.join(d), f.root.join("models").join(d)).unwrap();
    }
    let script = repo_root().join("experiments/merge_sweep.rhai");
    let models = f.root.join("models");
    let o = yunmin(
        &f.root,
        &[
            "run",
            script.to_str().unwrap(),
            "--out",
            "sweep",
            "--set",
            &format!("models={}", models.display()),
            "--set",
            "domains=legal,medical,news",
            // Synthetic weights: no model to run, so no perplexity columns.
            "--set",
            "parquet=",
        ],
    );
    ok(&o);
    let csv = std::fs::read_to_string(f.root.join("sweep/results/merge_sweep.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    for col in ["w_legal", "w_medical", "w_news", "l2_from_base"] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(lines.count(), 25, "{csv}");
}
