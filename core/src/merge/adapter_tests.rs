//! One PEFT reader on both sides: a model with the adapter folded in (`load_adapter` →
//! `fold_into`) and a diff (`compute_diff`) see the same `ΔW` for every module — with rsLoRA,
//! `rank_pattern` / `alpha_pattern`, partial `target_modules`, BF16 factors — and diffs and
//! merges read what model loading reads (BF16 and sharded bases).

use super::adapter;
use super::checkpoint::{Checkpoint, INDEX_FILE, WEIGHTS_FILE};
use super::{DiffConfig, DiffSet, MergeConfig, Merger, compute_diff, merge_to_dir};
use crate::model::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, Device, Llama, LlamaConfig, LoadedModel, LoraFactor,
    hf_tensors, load_adapter, lora_key, read_checkpoint_dir, save_checkpoint,
};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn tiny() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 61,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 64,
        ..LlamaConfig::default()
    }
}

/// Writes a random tiny base checkpoint (f32, single file) to `dir`.
fn write_base(dir: &Path) -> (Llama, LlamaConfig) {
    let cfg = tiny();
    let m = Llama::init(&cfg, &Device::flex(), 7).unwrap();
    save_checkpoint(&m, &cfg, dir, None).unwrap();
    (m, cfg)
}

/// Deterministic values in [-0.5, 0.5).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Round-to-nearest-even f32 → bf16 bits.
fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

fn bf16_value(x: f32) -> f32 {
    f32::from_bits((bf16(x) as u32) << 16)
}

/// Writes `tensors` (name, shape, values) to a safetensors file as `dtype` (F32 or BF16).
fn write_st(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| match dtype {
            Dtype::BF16 => v.iter().flat_map(|x| bf16(*x).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap()))
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), path).unwrap();
}

/// A PEFT adapter directory: `config` as `adapter_config.json`, and for each
/// `(module, rank, [out, in])` random factors named with `suffix` (`weight` or
/// `default.weight`), stored as `dtype`. Returns module → (A, B) as stored.
fn write_adapter(
    dir: &Path,
    config: &str,
    modules: &[(&str, usize, [usize; 2])],
    suffix: &str,
    dtype: Dtype,
) -> BTreeMap<String, (Vec<f32>, Vec<f32>)> {
    std::fs::create_dir_all(dir).unwrap();
    let mut tensors = Vec::new();
    let mut out = BTreeMap::new();
    for (k, (m, r, [o, i])) in modules.iter().enumerate() {
        let round = |v: Vec<f32>| -> Vec<f32> {
            if dtype == Dtype::BF16 {
                v.into_iter().map(bf16_value).collect()
            } else {
                v
            }
        };
        let a = round(values(10 + k as u64, r * i));
        let b = round(values(100 + k as u64, o * r));
        let key = |f| lora_key(m, f).replace(".weight", &format!(".{suffix}"));
        tensors.push((key(LoraFactor::A), vec![*r, *i], a.clone()));
        tensors.push((key(LoraFactor::B), vec![*o, *r], b.clone()));
        out.insert(m.to_string(), (a, b));
    }
    write_st(&dir.join(ADAPTER_WEIGHTS), &tensors, dtype);
    std::fs::write(dir.join(ADAPTER_CONFIG), config).unwrap();
    out
}

/// `scale · B · A`, `[out, in]`, in f64.
fn naive_delta(a: &[f32], b: &[f32], r: usize, [o, i]: [usize; 2], scale: f64) -> Vec<f32> {
    let mut d = vec![0.0f32; o * i];
    for row in 0..o {
        for col in 0..i {
            let s: f64 = (0..r)
                .map(|k| b[row * r + k] as f64 * a[k * i + col] as f64)
                .sum();
            d[row * i + col] = (scale * s) as f32;
        }
    }
    d
}

fn max_abs_diff(x: &[f32], y: &[f32]) -> f32 {
    assert_eq!(x.len(), y.len());
    x.iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn tensor_map(model: &Llama, cfg: &LlamaConfig) -> BTreeMap<String, Vec<f32>> {
    hf_tensors(model, cfg)
        .into_iter()
        .map(|(n, _, d)| (n, d))
        .collect()
}

fn checkpoint_map(dir: &Path) -> BTreeMap<String, Vec<f32>> {
    let ck = Checkpoint::open(dir, "test").unwrap();
    ck.names()
        .map(|n| (n.clone(), ck.f32(n).unwrap().as_slice().to_vec()))
        .collect()
}

fn diff_cfg(root: &Path, domain: &str) -> DiffConfig {
    DiffConfig {
        domain: Some(domain.into()),
        diffs_dir: root.join("diffs"),
        stats_dir: root.join("diff_stats"),
    }
}

const Q: [usize; 2] = [32, 32];
const V: [usize; 2] = [16, 32];

#[test]
fn rslora_and_patterns_give_the_same_delta_when_folded_and_diffed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (base, cfg) = write_base(&root.join("base"));
    // q_proj and v_proj only; rsLoRA; v_proj rank 2 by pattern; layer 1's q_proj alpha 3.
    let config = r#"{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
        "use_rslora": true, "target_modules": ["q_proj", "v_proj"], "bias": "none",
        "rank_pattern": {"v_proj": 2}, "alpha_pattern": {"model.layers.1.self_attn.q_proj": 3}}"#;
    let mods = [
        ("model.layers.0.self_attn.q_proj", 4, Q),
        ("model.layers.0.self_attn.v_proj", 2, V),
        ("model.layers.1.self_attn.q_proj", 4, Q),
        ("model.layers.1.self_attn.v_proj", 2, V),
    ];
    let factors = write_adapter(&root.join("lora_x"), config, &mods, "weight", Dtype::F32);
    let scales = [8.0 / 2.0, 8.0 / 2f64.sqrt(), 3.0 / 2.0, 8.0 / 2f64.sqrt()];

    let ad = load_adapter(&root.join("lora_x")).unwrap();
    let folded = tensor_map(&ad.fold_into(base.clone()).unwrap(), &cfg);
    let plain = tensor_map(&base, &cfg);
    let diff = compute_diff(
        &root.join("base"),
        &root.join("lora_x"),
        &diff_cfg(root, "x"),
    )
    .unwrap();
    let opened = adapter::open(&root.join("lora_x")).unwrap();
    assert_eq!(diff.diff.tensors.len(), 4);
    for ((m, r, shape), scale) in mods.iter().zip(scales) {
        let name = format!("{m}.weight");
        // Both readers give the module the same rank and scale.
        assert_eq!(ad.scaling_for(m), (*r, scale), "{m}");
        assert_eq!(
            (opened.pairs[&name].r, opened.pairs[&name].scale),
            (*r, scale)
        );
        assert_eq!(diff.diff.index.tensors[&name].scaling, Some(scale));
        let (a, b) = &factors[*m];
        let want = naive_delta(a, b, *r, *shape, scale);
        let d = diff.diff.tensors[&name].data.as_slice();
        assert!(max_abs_diff(d, &want) < 1e-5, "diff {m}");
        let moved: Vec<f32> = folded[&name]
            .iter()
            .zip(&plain[&name])
            .map(|(f, p)| f - p)
            .collect();
        assert!(max_abs_diff(&moved, &want) < 1e-5, "folded {m}");
        assert_eq!(ad.delta(m).unwrap(), ad.modules[*m].delta(scale));
    }
    // Modules the adapter does not cover are untouched on both sides.
    for t in [
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.1.self_attn.o_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ] {
        assert_eq!(folded[t], plain[t], "{t}");
        assert!(!diff.diff.tensors.contains_key(t), "{t}");
    }
    // Merging the diff with weight 1 writes the folded model.
    let cfg1 = MergeConfig {
        weights: vec![1.0],
        ..MergeConfig::default()
    };
    merge_to_dir(
        &root.join("base"),
        &[diff.diff],
        &cfg1,
        &root.join("merged"),
    )
    .unwrap();
    let merged = checkpoint_map(&root.join("merged"));
    for (name, v) in &folded {
        assert!(max_abs_diff(&merged[name], v) < 1e-5, "{name}");
    }
}

#[test]
fn q_v_only_adapter_with_bf16_factors_and_named_adapter_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (base, cfg) = write_base(&root.join("base"));
    let config = r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 3,
        "target_modules": ["q_proj", "v_proj"], "lora_dropout": 0.0, "bias": "none"}"#;
    // Layer 1 only, keys as PEFT names live parameters (`lora_A.default.weight`), BF16.
    let mods = [
        ("model.layers.1.self_attn.q_proj", 2, Q),
        ("model.layers.1.self_attn.v_proj", 2, V),
    ];
    let factors = write_adapter(
        &root.join("lora_y"),
        config,
        &mods,
        "default.weight",
        Dtype::BF16,
    );
    let ad = load_adapter(&root.join("lora_y")).unwrap();
    assert_eq!(ad.modules.len(), 2);
    let folded = tensor_map(&ad.fold_into(base.clone()).unwrap(), &cfg);
    let plain = tensor_map(&base, &cfg);
    let diff = compute_diff(
        &root.join("base"),
        &root.join("lora_y"),
        &diff_cfg(root, "y"),
    )
    .unwrap();
    assert_eq!(diff.summary.scaling, Some(1.5));
    for (m, r, shape) in mods {
        let name = format!("{m}.weight");
        let (a, b) = &factors[m];
        let want = naive_delta(a, b, r, shape, 1.5);
        assert!(max_abs_diff(diff.diff.tensors[&name].data.as_slice(), &want) < 1e-5);
        let moved: Vec<f32> = folded[&name]
            .iter()
            .zip(&plain[&name])
            .map(|(f, p)| f - p)
            .collect();
        assert!(max_abs_diff(&moved, &want) < 1e-5);
    }
    let untouched = "model.layers.0.self_attn.q_proj.weight";
    assert_eq!(folded[untouched], plain[untouched]);
}

#[test]
fn refusals_name_their_field_on_both_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_base(&root.join("base"));
    let cases = [
        (r#""use_dora": true"#, "`use_dora` = true"),
        (
            r#""modules_to_save": ["lm_head"]"#,
            r#"`modules_to_save` = ["lm_head"]"#,
        ),
        (r#""bias": "all""#, r#"`bias` = "all""#),
        (r#""fan_in_fan_out": true"#, "`fan_in_fan_out` = true"),
        (r#""lora_bias": true"#, "`lora_bias` = true"),
        (r#""use_qalora": true"#, "`use_qalora` = true"),
        (
            r#""layer_replication": [[0, 1]]"#,
            "`layer_replication` = [[0,1]]",
        ),
        (
            r#""target_parameters": ["x"]"#,
            r#"`target_parameters` = ["x"]"#,
        ),
        (
            r#""init_lora_weights": "corda""#,
            r#"`init_lora_weights` = "corda""#,
        ),
    ];
    for (i, (extra, want)) in cases.iter().enumerate() {
        let dir = root.join(format!("lora_{i}"));
        let config = format!(
            r#"{{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], {extra}}}"#
        );
        write_adapter(
            &dir,
            &config,
            &[("model.layers.0.self_attn.q_proj", 2, Q)],
            "weight",
            Dtype::F32,
        );
        let e1 = load_adapter(&dir).unwrap_err().to_string();
        let e2 = adapter::open(&dir).unwrap_err().to_string();
        let e3 = compute_diff(&root.join("base"), &dir, &diff_cfg(root, "z"))
            .unwrap_err()
            .to_string();
        for e in [e1, e2, e3] {
            assert!(e.contains(want), "{extra}: {e}");
        }
    }
    let dir = root.join("lora_ia3");
    write_adapter(
        &dir,
        r#"{"peft_type": "IA3", "r": 2, "lora_alpha": 4}"#,
        &[("model.layers.0.self_attn.q_proj", 2, Q)],
        "weight",
        Dtype::F32,
    );
    for e in [
        load_adapter(&dir).unwrap_err().to_string(),
        adapter::open(&dir).unwrap_err().to_string(),
    ] {
        assert!(e.contains(r#"`peft_type` = "IA3""#), "{e}");
    }
}

/// Writes `tensors` as a two-shard BF16 checkpoint with an index, and `config` with its dtype
/// fields set to bfloat16.
fn write_sharded_bf16(
    dir: &Path,
    tensors: &BTreeMap<String, Vec<f32>>,
    shapes: &BTreeMap<String, Vec<usize>>,
    config: &Path,
) {
    std::fs::create_dir_all(dir).unwrap();
    let names: Vec<&String> = tensors.keys().collect();
    let half = names.len() / 2;
    let mut weight_map = serde_json::Map::new();
    for (k, part) in [&names[..half], &names[half..]].iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", k + 1);
        let ts: Vec<(String, Vec<usize>, Vec<f32>)> = part
            .iter()
            .map(|n| ((*n).clone(), shapes[*n].clone(), tensors[*n].clone()))
            .collect();
        write_st(&dir.join(&file), &ts, Dtype::BF16);
        for n in part.iter() {
            weight_map.insert((*n).clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join(INDEX_FILE), index.to_string()).unwrap();
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config).unwrap()).unwrap();
    c["torch_dtype"] = "bfloat16".into();
    c["dtype"] = "bfloat16".into();
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
}

#[test]
fn bf16_sharded_base_diffs_and_merges_like_its_f32_values() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_base(&root.join("base"));
    // The same weights rounded to bf16: as a sharded BF16 checkpoint, and as a single F32
    // file holding exactly the bf16 values.
    let (tensors, _) = read_checkpoint_dir(&root.join("base")).unwrap();
    let shapes: BTreeMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone()))
        .collect();
    let rounded: BTreeMap<String, Vec<f32>> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.data.iter().map(|x| bf16_value(*x)).collect()))
        .collect();
    write_sharded_bf16(
        &root.join("bf16"),
        &rounded,
        &shapes,
        &root.join("base/config.json"),
    );
    std::fs::create_dir_all(root.join("exact")).unwrap();
    let flat: Vec<(String, Vec<usize>, Vec<f32>)> = rounded
        .iter()
        .map(|(n, v)| (n.clone(), shapes[n].clone(), v.clone()))
        .collect();
    write_st(&root.join("exact").join(WEIGHTS_FILE), &flat, Dtype::F32);
    std::fs::copy(
        root.join("base/config.json"),
        root.join("exact/config.json"),
    )
    .unwrap();

    let ck = Checkpoint::open(&root.join("bf16"), "base").unwrap();
    assert_eq!(ck.files.len(), 2);
    assert!(!ck.all_f32());

    let config = r#"{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "use_rslora": true,
        "target_modules": ["q_proj", "v_proj"]}"#;
    let mods = [
        ("model.layers.0.self_attn.q_proj", 2, Q),
        ("model.layers.1.self_attn.v_proj", 2, V),
    ];
    write_adapter(&root.join("lora_a"), config, &mods, "weight", Dtype::F32);
    let d_bf16 = compute_diff(&root.join("bf16"), &root.join("lora_a"), &{
        let mut c = diff_cfg(root, "a_bf16");
        c.diffs_dir = root.join("diffs_bf16");
        c
    })
    .unwrap();
    let d_exact = compute_diff(
        &root.join("exact"),
        &root.join("lora_a"),
        &diff_cfg(root, "a"),
    )
    .unwrap();
    for (name, t) in &d_exact.diff.tensors {
        assert_eq!(d_bf16.diff.tensors[name].data.as_slice(), t.data.as_slice());
    }
    let cfg = MergeConfig {
        weights: vec![0.7],
        ..MergeConfig::default()
    };
    merge_to_dir(
        &root.join("bf16"),
        std::slice::from_ref(&d_bf16.diff),
        &cfg,
        &root.join("m_bf16"),
    )
    .unwrap();
    merge_to_dir(
        &root.join("exact"),
        std::slice::from_ref(&d_exact.diff),
        &cfg,
        &root.join("m_exact"),
    )
    .unwrap();
    // Bit for bit the same weights, all F32, with a float32 config.
    let out = Checkpoint::open(&root.join("m_bf16"), "out").unwrap();
    assert!(out.entries().values().all(|e| e.dtype == Dtype::F32));
    assert_eq!(
        checkpoint_map(&root.join("m_bf16")),
        checkpoint_map(&root.join("m_exact"))
    );
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("m_bf16/config.json")).unwrap())
            .unwrap();
    assert_eq!(c["torch_dtype"], "float32");
    assert_eq!(c["dtype"], "float32");
    // The exact base's config already said float32: copied byte for byte.
    assert_eq!(
        std::fs::read(root.join("m_exact/config.json")).unwrap(),
        std::fs::read(root.join("exact/config.json")).unwrap()
    );
    // In memory: the same numbers; its saved checkpoint is F32 with a float32 config too.
    let merger = Merger::new(
        &root.join("bf16"),
        vec![DiffSet::open(&root.join("diffs_bf16/a_bf16")).unwrap()],
    )
    .unwrap();
    let mem = merger.merge(&cfg).unwrap();
    let streamed = checkpoint_map(&root.join("m_bf16"));
    for (name, t) in &mem.tensors {
        assert_eq!(&t.data[..], &streamed[name][..], "{name}");
    }
    mem.save(&root.join("m_mem")).unwrap();
    assert_eq!(checkpoint_map(&root.join("m_mem")), streamed);
    // Model loading reads the BF16 shards and the merged output; folding the adapter into the
    // BF16 base gives the merged weights.
    let lm = LoadedModel::load(&root.join("bf16"), &Device::flex()).unwrap();
    let merged = LoadedModel::load(&root.join("m_bf16"), &Device::flex()).unwrap();
    let mut ad = load_adapter(&root.join("lora_a")).unwrap();
    // Weight 0.7 on the diff = alpha scaled by 0.7.
    ad.config.lora_alpha *= 0.7;
    let folded = tensor_map(&ad.fold_into(lm.model).unwrap(), &lm.config);
    let reloaded = tensor_map(&merged.model, &merged.config);
    for (name, v) in &folded {
        assert!(max_abs_diff(v, &reloaded[name]) < 1e-5, "{name}");
    }
}
