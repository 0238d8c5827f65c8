//! Unit tests of the Llama-family configuration reader and the architecture differences
//! (rotary scaling, biases, sliding windows). Parity with transformers itself is checked
//! end to end by `scripts/interop/hf_parity.py`.

use super::*;
use serde_json::json;

/// What transformers 5.25 `save_pretrained` writes for a small `LlamaConfig`.
fn hf5_llama() -> serde_json::Value {
    json!({
        "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
        "bos_token_id": 1, "dtype": "float32", "eos_token_id": 2, "head_dim": 8,
        "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 48, "max_position_embeddings": 64, "mlp_bias": false,
        "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2,
        "num_key_value_heads": 2, "pad_token_id": null, "pretraining_tp": 1,
        "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
        "tie_word_embeddings": false, "transformers_version": "5.25.0", "use_cache": true,
        "vocab_size": 61
    })
}

fn with(mut v: serde_json::Value, key: &str, val: serde_json::Value) -> serde_json::Value {
    v[key] = val;
    v
}

fn parse_err(v: serde_json::Value) -> String {
    LlamaConfig::from_json(v).unwrap_err().to_string()
}

#[test]
fn rope_theta_is_read_from_rope_parameters_and_the_top_level() {
    let c = LlamaConfig::from_json(hf5_llama()).unwrap();
    assert_eq!(c.rope_theta, 100000.0);
    assert_eq!(c.rope_scaling, None);
    assert_eq!(c.torch_dtype, "float32");
    let mut v4 = hf5_llama();
    v4.as_object_mut().unwrap().remove("rope_parameters");
    v4["rope_theta"] = json!(5e5);
    v4["torch_dtype"] = json!("bfloat16");
    v4.as_object_mut().unwrap().remove("dtype");
    let c = LlamaConfig::from_json(v4).unwrap();
    assert_eq!(c.rope_theta, 5e5);
    assert_eq!(c.torch_dtype, "bfloat16");
    // Both places, disagreeing: an error naming the field.
    let e = parse_err(with(hf5_llama(), "rope_theta", json!(10000.0)));
    assert!(e.contains("rope_theta"), "{e}");
}

#[test]
fn rope_scaling_types_parse_and_unknown_ones_are_refused() {
    let lin = with(
        hf5_llama(),
        "rope_parameters",
        json!({"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
    );
    assert_eq!(
        LlamaConfig::from_json(lin).unwrap().rope_scaling,
        Some(RopeScaling::Linear { factor: 2.0 })
    );
    let mut v4 = hf5_llama();
    v4.as_object_mut().unwrap().remove("rope_parameters");
    v4["rope_scaling"] = json!({"type": "dynamic", "factor": 4.0});
    assert_eq!(
        LlamaConfig::from_json(v4).unwrap().rope_scaling,
        Some(RopeScaling::Dynamic { factor: 4.0 })
    );
    let l3 = with(
        hf5_llama(),
        "rope_parameters",
        json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32,
               "rope_theta": 500000.0}),
    );
    let c = LlamaConfig::from_json(l3).unwrap();
    assert!(matches!(c.rope_scaling, Some(RopeScaling::Llama3 { .. })));
    for (params, field) in [
        (json!({"rope_type": "yarn", "factor": 4.0}), "yarn"),
        (
            json!({"rope_type": "default", "partial_rotary_factor": 0.5}),
            "partial_rotary_factor",
        ),
        (json!({"rope_type": "linear"}), "factor"),
        (
            json!({"rope_type": "linear", "factor": 2.0, "mscale": 1.0}),
            "mscale",
        ),
    ] {
        let e = parse_err(with(hf5_llama(), "rope_parameters", params));
        assert!(e.contains(field), "{field}: {e}");
    }
}

#[test]
fn unknown_fields_that_change_the_math_are_errors_naming_them() {
    for (key, val) in [
        ("quantization_config", json!({"quant_method": "gptq"})),
        ("hidden_act", json!("gelu")),
        ("model_type", json!("gemma")),
        ("sliding_window", json!(16)), // not a llama field
        ("attention_dropout", json!(0.1)),
        ("dtype", json!("int8")),
        ("eos_token_id", json!("two")),
        ("bos_token_id", json!([1, 2])),
    ] {
        let e = parse_err(with(hf5_llama(), key, val.clone()));
        assert!(
            e.contains(key) || e.contains(&val.to_string()),
            "{key}: {e}"
        );
    }
    // Harmless bookkeeping is accepted.
    let ok = with(hf5_llama(), "_name_or_path", json!("some/model"));
    LlamaConfig::from_json(with(ok, "temperature", json!(0.7))).unwrap();
}

#[test]
fn eos_lists_and_round_trip_through_config_json() {
    let c = LlamaConfig::from_json(with(hf5_llama(), "eos_token_id", json!([1, 2]))).unwrap();
    assert_eq!(c.eos_token_id, vec![1, 2]);
    let back = LlamaConfig::from_json(c.to_json()).unwrap();
    assert_eq!(back, c);
    let c = LlamaConfig::from_json(with(hf5_llama(), "eos_token_id", json!(7))).unwrap();
    assert_eq!(c.eos_token_id, vec![7]);
    assert_eq!(c.to_json()["eos_token_id"], json!(7));
}

fn qwen2(window: Option<usize>) -> LlamaConfig {
    LlamaConfig::from_json(json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 61,
        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
        "use_sliding_window": window.is_some(), "sliding_window": window,
        "max_window_layers": 1, "tie_word_embeddings": true,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    }))
    .unwrap()
}

#[test]
fn qwen2_has_qkv_biases_and_they_change_the_output() {
    let c = qwen2(None);
    let names: Vec<String> = hf_tensor_shapes(&c).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"model.layers.0.self_attn.q_proj.bias".to_string()));
    assert!(names.contains(&"model.layers.1.self_attn.v_proj.bias".to_string()));
    assert!(!names.iter().any(|n| n.ends_with("o_proj.bias")));
    assert!(
        !names
            .iter()
            .any(|n| n.contains("mlp") && n.ends_with(".bias"))
    );
    assert_eq!(
        c.num_params(),
        hf_tensor_shapes(&c)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum::<usize>()
    );
    // A non-zero bias moves the logits; the checkpoint round trip keeps it.
    let dev = Device::flex();
    let mut src = |name: &str, shape: &[usize]| -> crate::Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        Ok((0..n)
            .map(|i| {
                if name.ends_with("norm.weight") {
                    1.0
                } else if name.ends_with(".bias") {
                    0.5
                } else {
                    ((i * 31 + name.len()) % 17) as f32 / 17.0 - 0.5
                }
            })
            .collect())
    };
    let m = Llama::build(&c, &dev, &mut src, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    save_checkpoint(&m, &c, dir.path().join("q").as_path(), None).unwrap();
    let (m2, c2) = load_checkpoint(&dir.path().join("q"), &dev, false).unwrap();
    assert_eq!(c2, c);
    let ids = [3u32, 5, 8, 13];
    assert_eq!(m.logits_of(&ids).unwrap(), m2.logits_of(&ids).unwrap());
    // Zeroing the biases on disk changes the logits: they are used.
    let mut t = read_safetensors(&dir.path().join("q/model.safetensors")).unwrap();
    for (k, v) in t.iter_mut() {
        if k.ends_with(".bias") {
            v.data.iter_mut().for_each(|x| *x = 0.0);
        }
    }
    let list: Vec<(String, Vec<usize>, Vec<f32>)> =
        t.into_iter().map(|(k, v)| (k, v.shape, v.data)).collect();
    write_safetensors(&dir.path().join("q/model.safetensors"), &list, &[]).unwrap();
    let (m3, _) = load_checkpoint(&dir.path().join("q"), &dev, false).unwrap();
    assert_ne!(m.logits_of(&ids).unwrap(), m3.logits_of(&ids).unwrap());
}

#[test]
fn a_tensor_the_config_does_not_declare_is_an_error() {
    let c = qwen2(None);
    let dev = Device::flex();
    let m = Llama::init(&c, &dev, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ck");
    save_checkpoint(&m, &c, &out, None).unwrap();
    // The same weights under a llama config (no biases): the biases would be dropped.
    let mut v = c.to_json();
    v["model_type"] = json!("llama");
    v["architectures"] = json!(["LlamaForCausalLM"]);
    for k in ["use_sliding_window", "sliding_window", "max_window_layers"] {
        v.as_object_mut().unwrap().remove(k);
    }
    std::fs::write(out.join("config.json"), v.to_string()).unwrap();
    let e = load_checkpoint(&out, &dev, false).unwrap_err().to_string();
    assert!(e.contains(".bias"), "{e}");
}

#[test]
fn sliding_window_sees_only_the_last_positions() {
    // One layer: with a window of 4, the last position's output depends only on the last 4
    // tokens (RoPE is relative), so it equals the model run on those 4 tokens alone.
    let mut c = LlamaConfig::from_json(json!({
        "model_type": "mistral", "vocab_size": 61, "hidden_size": 32, "intermediate_size": 48,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "sliding_window": 4, "tie_word_embeddings": true,
    }))
    .unwrap();
    let dev = Device::flex();
    let m = Llama::init(&c, &dev, 11).unwrap();
    let ids = [3u32, 17, 5, 60, 0, 22, 9, 9, 41, 7];
    let full = m.logits_of(&ids).unwrap();
    let tail = m.logits_of(&ids[ids.len() - 4..]).unwrap();
    let d = full[9]
        .iter()
        .zip(&tail[3])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(d < 1e-4, "window output differs from the tail alone by {d}");
    // Without the window the last position sees everything and differs.
    c.sliding_window = None;
    let m_full = Llama::init(&c, &dev, 11).unwrap();
    assert_ne!(m_full.logits_of(&ids).unwrap()[9], full[9]);
    // Cached decoding applies the same window.
    let gc = GenerateConfig {
        max_new_tokens: 8,
        eos_token_id: Some(u32::MAX),
        ..Default::default()
    };
    assert_eq!(
        generate(&m, &ids, &gc, &[]).unwrap(),
        generate_uncached(&m, &ids, 8).unwrap()
    );
}

#[test]
fn qwen2_window_applies_from_max_window_layers_on() {
    let c = qwen2(Some(3));
    assert_eq!(c.layer_window(0), None);
    assert_eq!(c.layer_window(1), Some(3));
    let v = with(
        c.to_json(),
        "layer_types",
        json!(["full_attention", "full_attention"]),
    );
    let e = parse_err(v);
    assert!(e.contains("layer_types[1]"), "{e}");
}

#[test]
fn rope_inverse_frequencies_follow_transformers() {
    let base = Rope {
        head_dim: 8,
        theta: 10000.0,
        scaling: None,
        max_position_embeddings: 32,
    };
    let f = base.inv_freq(10);
    assert_eq!(f[0], 1.0);
    assert!((f[1] - 0.1).abs() < 1e-7);
    let lin = Rope {
        scaling: Some(RopeScaling::Linear { factor: 4.0 }),
        ..base.clone()
    };
    assert_eq!(lin.inv_freq(10)[1], f[1] / 4.0);
    // Dynamic: unchanged up to max_position_embeddings, a larger base past it.
    let dy = Rope {
        scaling: Some(RopeScaling::Dynamic { factor: 2.0 }),
        ..base.clone()
    };
    assert_eq!(dy.inv_freq(32), f);
    let past = dy.inv_freq(64);
    assert_eq!(past[0], 1.0);
    // base · (2·64/32 − 1)^(8/6) = 10000 · 3^(4/3)
    let want = 1.0 / (10000.0f64 * 3f64.powf(4.0 / 3.0)).powf(0.25);
    assert!(
        ((past[1] as f64) - want).abs() < 1e-6,
        "{} vs {want}",
        past[1]
    );
    // llama3: high frequencies kept, low ones divided by the factor.
    let l3 = Rope {
        head_dim: 64,
        scaling: Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 32,
        }),
        ..base.clone()
    };
    let plain = Rope {
        head_dim: 64,
        ..base
    }
    .inv_freq(1);
    let scaled = l3.inv_freq(1);
    assert_eq!(scaled[0], plain[0]);
    assert_eq!(scaled[31], plain[31] / 8.0);
    assert!(
        scaled
            .iter()
            .zip(&plain)
            .all(|(s, p)| s <= p && *s >= p / 8.0)
    );
}

/// A two-layer model of hidden width 32 with `kv` key/value heads of 4.
fn small_llama(kv: usize, tied: bool) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 61,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(kv),
        max_position_embeddings: 64,
        tie_word_embeddings: tied,
        ..LlamaConfig::default()
    }
}

/// One model configuration per architecture option both host paths implement, named: GQA
/// and full attention, tied and untied heads, q/k/v + o + MLP biases, llama3 and dynamic
/// rotary, qwen2's sliding window from layer 1.
fn arch_cases() -> Vec<(&'static str, LlamaConfig)> {
    let biased = LlamaConfig {
        attention_bias: true,
        mlp_bias: true,
        rope_scaling: Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8,
        }),
        ..small_llama(1, false)
    };
    let dynamic = LlamaConfig {
        rope_scaling: Some(RopeScaling::Dynamic { factor: 2.0 }),
        max_position_embeddings: 6,
        ..small_llama(4, true)
    };
    vec![
        ("gqa, tied", small_llama(2, true)),
        ("full attention, untied", small_llama(4, false)),
        ("biases, llama3 rotary", biased),
        ("dynamic rotary past its length", dynamic),
        ("qwen2, window 3 from layer 1", qwen2(Some(3))),
    ]
}

/// The fused host forward ([`HostLlama`], what perplexity runs on the CPU) and burn's graph
/// give the same next-token NLLs for every architecture option: grouped and full attention,
/// tied and untied heads, q/k/v, output and MLP biases, sliding windows, rotary scaling and an
/// attached adapter.
#[test]
fn host_forward_equals_the_graph_for_every_architecture_option() {
    let cases = arch_cases();
    let dev = Device::flex();
    let of_len = |n: u32| -> Vec<Vec<u32>> {
        (0..3u32)
            .map(|k| (0..n).map(|i| (i * 7 + k * 13 + 1) % 61).collect())
            .collect()
    };
    let windows = of_len(11);
    // Windows longer than one block of attention rows as well.
    let long = of_len(150);
    let check = |name: &str, m: &Llama| {
        let s = m.scorer().unwrap();
        for (w, n) in [(&windows, 30), (&long, 447)] {
            let host = s.token_nlls(w).unwrap();
            let graph = s.graph_token_nlls(w).unwrap();
            assert_eq!(host.len(), n, "{name}");
            for (i, (a, b)) in host.iter().zip(&graph).enumerate() {
                assert!((a - b).abs() < 1e-4, "{name}: position {i}: {a} vs {b}");
            }
        }
    };
    for (name, cfg) in cases {
        let m = Llama::init(&cfg, &dev, 5).unwrap();
        check(name, &m);
    }
    // An attached adapter with non-zero factors is folded in.
    let m = Llama::init(&small_llama(2, false), &dev, 9)
        .unwrap()
        .attach_lora(4, 8.0, 0.0, &["q_proj".into(), "down_proj".into()], 3)
        .unwrap();
    let mut m = m;
    for (_, p) in m.projections_mut() {
        if let Some(l) = p.lora.as_mut() {
            let [r, out] = l.b.shape().dims::<2>();
            let v: Vec<f32> = (0..r * out).map(|i| (i % 7) as f32 * 0.05 - 0.15).collect();
            l.b = burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(
                burn::tensor::TensorData::new(v, [r, out]),
                &dev,
            ));
        }
    }
    let merged = m.clone().merge_lora();
    check("lora", &m);
    let a = m.token_nlls(&windows).unwrap();
    let b = Llama::init(&small_llama(2, false), &dev, 9)
        .unwrap()
        .token_nlls(&windows)
        .unwrap();
    assert_ne!(a, b, "the adapter changes the NLLs");
    let c = merged.token_nlls(&windows).unwrap();
    for (x, y) in a.iter().zip(&c) {
        assert!((x - y).abs() < 1e-5);
    }
}

/// Sets every attached adapter's `b` to fixed non-zero values, so the adapters change the
/// output and `a` gets gradients.
fn nonzero_b(m: &mut Llama) {
    for (_, p) in m.projections_mut() {
        if let Some(l) = p.lora.as_mut() {
            let [r, out] = l.b.shape().dims::<2>();
            let dev = l.b.val().device();
            let v: Vec<f32> = (0..r * out).map(|i| (i % 7) as f32 * 0.05 - 0.15).collect();
            l.b = burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(
                burn::tensor::TensorData::new(v, [r, out]),
                &dev,
            ));
        }
    }
}

/// LoRA training on the host ([`HostLora`], what adapter training runs on the CPU) gives the
/// graph's loss and the graph's gradients of every adapter factor, for every architecture
/// option, with dropout on every projection (the same masks, drawn in the graph's order).
#[test]
fn host_lora_gradients_equal_the_graph_for_every_architecture_option() {
    use burn::optim::GradientsParams;
    let dev = Device::flex().autodiff();
    let targets: Vec<String> = PROJECTIONS.map(String::from).to_vec();
    let of_len = |n: u32| -> Vec<Vec<u32>> {
        (0..3u32)
            .map(|k| (0..n).map(|i| (i * 7 + k * 13 + 1) % 61).collect())
            .collect()
    };
    for (name, cfg) in arch_cases() {
        for (dropout, wins) in [(0.0, of_len(12)), (0.25, of_len(40))] {
            let mut m = Llama::init(&cfg, &dev, 5)
                .unwrap()
                .attach_lora(4, 8.0, dropout, &targets, 3)
                .unwrap();
            nonzero_b(&mut m);
            let denom = 100;
            seed_dropout(Some(77));
            let graph_loss = m.shard_loss(&wins, denom, &dev).unwrap();
            seed_dropout(None);
            let graph_value = graph_loss.clone().into_scalar::<f32>() as f64;
            let mut graph = GradientsParams::from_grads(graph_loss.backward(), &m);
            let host = HostLora::of(&m)
                .unwrap()
                .expect("adapters only train on the host");
            seed_dropout(Some(77));
            let got = host.shard_grads(&m, &wins, denom).unwrap();
            seed_dropout(None);
            let what = format!("{name}, dropout {dropout}");
            assert!(
                (got.loss - graph_value).abs() < 1e-5 * graph_value.abs().max(1.0),
                "{what}: loss {} vs {graph_value}",
                got.loss
            );
            assert_eq!(got.grads.len(), 2 * 7 * cfg.num_hidden_layers, "{what}");
            for (i, (id, shape, g)) in got.grads.iter().enumerate() {
                let want = graph
                    .remove::<2>(*id)
                    .unwrap_or_else(|| panic!("{what}: no graph gradient for factor {i}"));
                assert_eq!(want.dims(), *shape, "{what}: factor {i}");
                let want = want
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .unwrap();
                let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                assert!(scale > 0.0, "{what}: factor {i} has a zero gradient");
                for (j, (a, b)) in g.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * scale,
                        "{what}: factor {i} element {j}: {a} vs {b} (largest {scale})"
                    );
                }
            }
            assert!(
                graph.is_empty(),
                "{what}: the graph has gradients the host lacks"
            );
        }
    }
    // Full training (base weights trainable) stays on the graph.
    let m = Llama::init(&small_llama(2, true), &dev, 5).unwrap();
    assert!(HostLora::of(&m).unwrap().is_none());
}
