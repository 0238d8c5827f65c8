//! Unit tests of the model module.

use super::*;
use burn::tensor::{Int, Tensor, TensorData};

fn tiny(tied: bool) -> LlamaConfig {
    LlamaConfig {
        vocab_size: 61,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 64,
        tie_word_embeddings: tied,
        ..LlamaConfig::default()
    }
}

fn logits(m: &Llama, ids: &[u32]) -> Vec<f32> {
    let d = m.device();
    let x = Tensor::<2, Int>::from_data(
        TensorData::new(
            ids.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [1, ids.len()],
        ),
        &d,
    );
    m.forward(x, None)
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
}

const IDS: [u32; 9] = [3, 17, 5, 60, 0, 22, 9, 9, 41];

#[test]
fn checkpoint_round_trip_gives_identical_logits() {
    for tied in [true, false] {
        let cfg = tiny(tied);
        let dev = Device::flex();
        let m = Llama::init(&cfg, &dev, 7).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ck");
        save_checkpoint(&m, &cfg, &out, None).unwrap();
        assert_eq!(
            read_metadata(&out.join("model.safetensors"))
                .unwrap()
                .get("format")
                .map(String::as_str),
            Some("pt")
        );
        let names: Vec<String> = read_safetensors(&out.join("model.safetensors"))
            .unwrap()
            .into_keys()
            .collect();
        assert!(names.contains(&"model.layers.1.self_attn.q_proj.weight".to_string()));
        assert_eq!(names.contains(&"lm_head.weight".to_string()), !tied);
        let (m2, cfg2) = load_checkpoint(&out, &dev, false).unwrap();
        assert_eq!(cfg2, cfg);
        assert_eq!(logits(&m, &IDS), logits(&m2, &IDS));
    }
}

#[test]
fn hf_layout_projection_is_out_by_in() {
    let cfg = tiny(true);
    let m = Llama::init(&cfg, &Device::flex(), 1).unwrap();
    let t = hf_tensors(&m, &cfg);
    let q = t
        .iter()
        .find(|(n, _, _)| n == "model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    assert_eq!(q.1, vec![16, 32]); // 2 kv heads × 8 = 16 out, 32 in
    // Row 0 of the HF matrix is column 0 of burn's [in, out] weight.
    let w = m.layers[0]
        .self_attn
        .k_proj
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for i in 0..32 {
        assert_eq!(q.2[i], w[i * 16]);
    }
}

#[test]
fn config_contradicting_weights_names_the_tensor() {
    let cfg = tiny(true);
    let dev = Device::flex();
    let m = Llama::init(&cfg, &dev, 7).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ck");
    save_checkpoint(&m, &cfg, &out, None).unwrap();
    let mut bad = cfg.clone();
    bad.intermediate_size = 64;
    bad.save(&out.join("config.json")).unwrap();
    let e = load_checkpoint(&out, &dev, false).unwrap_err().to_string();
    assert!(
        e.contains("model.layers.0.mlp.gate_proj.weight")
            && e.contains("[48, 32]")
            && e.contains("[64, 32]"),
        "{e}"
    );
    let mut untied = cfg.clone();
    untied.tie_word_embeddings = false;
    untied.save(&out.join("config.json")).unwrap();
    let e = load_checkpoint(&out, &dev, false).unwrap_err().to_string();
    assert!(e.contains("missing tensor `lm_head.weight`"), "{e}");
}

#[test]
fn sharded_checkpoint_loads() {
    let cfg = tiny(false);
    let dev = Device::flex();
    let m = Llama::init(&cfg, &dev, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let all = hf_tensors(&m, &cfg);
    let (a, b) = all.split_at(all.len() / 2);
    write_safetensors(&dir.path().join("model-00001-of-00002.safetensors"), a, &[]).unwrap();
    write_safetensors(&dir.path().join("model-00002-of-00002.safetensors"), b, &[]).unwrap();
    let mut map = serde_json::Map::new();
    for (n, _, _) in a {
        map.insert(n.clone(), "model-00001-of-00002.safetensors".into());
    }
    for (n, _, _) in b {
        map.insert(n.clone(), "model-00002-of-00002.safetensors".into());
    }
    let idx = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        idx.to_string(),
    )
    .unwrap();
    cfg.save(&dir.path().join("config.json")).unwrap();
    let (m2, _) = load_checkpoint(dir.path(), &dev, false).unwrap();
    assert_eq!(logits(&m, &IDS), logits(&m2, &IDS));
}

#[test]
fn kv_cache_matches_full_recompute() {
    let cfg = tiny(true);
    let m = Llama::init(&cfg, &Device::flex(), 11).unwrap();
    let full = logits(&m, &IDS);
    // Prefill 5 tokens, then 4 one at a time: the last position's logits must match.
    let d = m.device();
    let mut cache = KvCache::new();
    let x = Tensor::<2, Int>::from_data(
        TensorData::new(
            IDS[..5].iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [1, 5],
        ),
        &d,
    );
    let _ = m.forward(x, Some(&mut cache));
    let mut last = Vec::new();
    for &t in &IDS[5..] {
        let x = Tensor::<2, Int>::from_data(TensorData::new(vec![t as i64], [1, 1]), &d);
        last = m
            .forward(x, Some(&mut cache))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
    }
    let v = cfg.vocab_size;
    let want = &full[(IDS.len() - 1) * v..];
    let diff = want
        .iter()
        .zip(&last)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "max diff {diff}");
    let g = generate(
        &m,
        &IDS[..4],
        &GenerateConfig {
            max_new_tokens: 6,
            eos_token_id: Some(u32::MAX),
            ..Default::default()
        },
        &[],
    )
    .unwrap();
    assert_eq!(g, generate_uncached(&m, &IDS[..4], 6).unwrap());
}

#[test]
fn sampling_is_seeded_and_respects_top_k() {
    let cfg = tiny(true);
    let m = Llama::init(&cfg, &Device::flex(), 5).unwrap();
    let gc = GenerateConfig {
        max_new_tokens: 8,
        temperature: 1.0,
        top_k: 5,
        top_p: 0.9,
        seed: 9,
        eos_token_id: Some(u32::MAX),
    };
    let a = generate(&m, &IDS[..3], &gc, &[]).unwrap();
    let b = generate(&m, &IDS[..3], &gc, &[]).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 8);
    let logits = vec![0.0, 5.0, 1.0, 4.0];
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
    for _ in 0..50 {
        let t = sample(
            &logits,
            &GenerateConfig {
                temperature: 2.0,
                top_k: 2,
                ..Default::default()
            },
            &mut rng,
        );
        assert!(t == 1 || t == 3);
    }
    assert_eq!(sample(&logits, &GenerateConfig::default(), &mut rng), 1);
}

#[test]
fn out_of_vocab_prompt_is_an_error() {
    let m = Llama::init(&tiny(true), &Device::flex(), 5).unwrap();
    let e = generate(&m, &[1, 99], &GenerateConfig::default(), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("token id 99 at position 1"), "{e}");
}

#[test]
fn adapter_round_trip_and_merge_formula() {
    use rand::SeedableRng;
    let cfg = tiny(true);
    let dev = Device::flex();
    let base = Llama::init(&cfg, &dev, 2).unwrap();
    let targets: Vec<String> = ["q_proj", "v_proj", "down_proj"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut m = base.clone().attach_lora(4, 8.0, 0.0, &targets, 3).unwrap();
    // Give B non-zero values so the adapter changes the output.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for (_, p) in m.projections_mut() {
        if let Some(l) = p.lora.as_mut() {
            let [r, o] = l.b.shape().dims();
            let vals = normal_vec(&mut rng, r * o, 0.1);
            l.b = burn::module::Param::from_tensor(Tensor::from_data(
                TensorData::new(vals, [r, o]),
                &dev,
            ));
        }
    }
    assert_ne!(logits(&m, &IDS), logits(&base, &IDS));
    let dir = tempfile::tempdir().unwrap();
    let ac = AdapterConfig::new(4, 8.0, 0.0, &targets, None);
    save_adapter(&m, &ac, &dir.path().join("a")).unwrap();
    let f = load_adapter(&dir.path().join("a")).unwrap();
    assert_eq!(f.modules.len(), 2 * 3);
    let qa = &f.modules["model.layers.0.self_attn.q_proj"];
    assert_eq!(qa.a.shape, vec![4, 32]);
    assert_eq!(qa.b.shape, vec![32, 4]);
    assert_eq!(
        read_metadata(&dir.path().join("a/adapter_model.safetensors")).unwrap()["format"],
        "pt"
    );
    let names: Vec<String> = read_safetensors(&dir.path().join("a/adapter_model.safetensors"))
        .unwrap()
        .into_keys()
        .collect();
    assert!(
        names.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight".to_string()),
        "{names:?}"
    );
    let m2 = f.attach(base.clone()).unwrap();
    let (l1, l2) = (logits(&m, &IDS), logits(&m2, &IDS));
    let diff = l1
        .iter()
        .zip(&l2)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "{diff}");
    // Merged HF weight = W + scale · B · A.
    let merged = hf_tensors(&m, &cfg);
    let basew = hf_tensors(&base, &cfg);
    let name = "model.layers.1.mlp.down_proj.weight";
    let mw = &merged.iter().find(|t| t.0 == name).unwrap().2;
    let bw = &basew.iter().find(|t| t.0 == name).unwrap().2;
    let delta = f.modules["model.layers.1.mlp.down_proj"].delta(f.config.scaling());
    let err = mw
        .iter()
        .zip(bw)
        .zip(&delta)
        .map(|((m, b), d)| (m - (b + d)).abs())
        .fold(0.0f32, f32::max);
    assert!(err < 1e-5, "{err}");
    // Unadapted tensors are untouched.
    let k = "model.layers.0.self_attn.k_proj.weight";
    assert_eq!(
        merged.iter().find(|t| t.0 == k).unwrap().2,
        basew.iter().find(|t| t.0 == k).unwrap().2
    );
}

#[test]
fn bf16_and_f16_conversion() {
    // 1.5 in bf16 is 0x3FC0; in f16 0x3E00; -2.0 in f16 is 0xC000.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.safetensors");
    let bf: Vec<u8> = [0x3FC0u16, 0xC000]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let hf: Vec<u8> = [0x3E00u16, 0xC000, 0x0001]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let v1 = safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, vec![2], &bf).unwrap();
    let v2 = safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![3], &hf).unwrap();
    safetensors::serialize_to_file(vec![("a", v1), ("b", v2)], None, &p).unwrap();
    let t = read_safetensors(&p).unwrap();
    assert_eq!(t["a"].data, vec![1.5, -2.0]);
    assert_eq!(t["b"].data[..2], [1.5, -2.0]);
    assert!((t["b"].data[2] - 5.960_464_5e-8).abs() < 1e-12);
}

#[test]
fn fused_token_nlls_equal_the_log_softmax_path() {
    let cfg = tiny(false);
    let dev = Device::flex();
    let m = Llama::init(&cfg, &dev, 13).unwrap();
    let windows: Vec<Vec<u32>> = (0..3u32)
        .map(|k| (0..9u32).map(|i| (i * 7 + k * 11) % 61).collect())
        .collect();
    let fused = m.token_nlls(&windows).unwrap();
    // The reference: -log_softmax(logits)[target], position by position.
    let mut reference = Vec::new();
    for w in &windows {
        let l = logits(&m, &w[..8]);
        for (pos, row) in l.chunks(61).enumerate() {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
            reference.push(lse - row[w[pos + 1] as usize]);
        }
    }
    assert_eq!(fused.len(), reference.len());
    for (a, b) in fused.iter().zip(&reference) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // And the differentiable loss agrees with the fused sum.
    let (mean, n) = m.loss(&windows, &dev).unwrap();
    let mean: f32 = mean.into_scalar();
    let fused_mean = fused.iter().sum::<f32>() / n as f32;
    assert!((mean - fused_mean).abs() < 1e-5, "{mean} vs {fused_mean}");
    assert_eq!(m.nll(&windows, 2).unwrap().count, n as u64);
}

/// CPU (burn-flex) and wgpu give the same logits and the same gradients for one model, within
/// 1e-3. Runs wherever wgpu finds an adapter (in CI: Mesa's lavapipe Vulkan driver on the CPU).
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_matches_cpu_forward_and_backward() {
    let gpu = super::parse_device("wgpu")
        .unwrap_or_else(|e| panic!("{e} (install mesa-vulkan-drivers for lavapipe)"));
    let cfg = tiny(false);
    let windows: Vec<Vec<u32>> = (0..2u32)
        .map(|k| (0..9u32).map(|i| (i * 5 + k * 13) % 61).collect())
        .collect();
    let run = |dev: Device| {
        let ad = dev.autodiff();
        let m = Llama::init(&cfg, &ad, 21).unwrap();
        let logits = logits(&m, &IDS);
        let (loss, _) = m.loss(&windows, &ad).unwrap();
        let grads = loss.backward();
        let grad = |t: Tensor<2>| {
            t.grad(&grads)
                .expect("a gradient")
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let q = grad(m.layers[0].self_attn.q_proj.weight.val());
        let emb = grad(m.embed_tokens.val());
        (logits, q, emb)
    };
    let (cpu, gpu) = (run(Device::flex()), run(gpu));
    for (what, a, b) in [
        ("logits", &cpu.0, &gpu.0),
        ("q_proj gradient", &cpu.1, &gpu.1),
        ("embedding gradient", &cpu.2, &gpu.2),
    ] {
        assert_eq!(a.len(), b.len(), "{what}");
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-3, "{what}: CPU and wgpu differ by {worst}");
        assert!(a.iter().any(|x| *x != 0.0), "{what} is all zero");
    }
}
