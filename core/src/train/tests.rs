//! Unit tests of the train module on tiny synthetic corpora.

use super::*;
use crate::model::{LoadedModel, hf_tensors};
use burn::module::Module;

/// Documents following `next = (a·prev + b) mod vocab` from seeded starts: learnable structure.
pub(crate) fn synthetic(
    name: &str,
    docs: usize,
    len: usize,
    a: u32,
    b: u32,
    vocab: u32,
) -> TokenCorpus {
    let mut out = Vec::new();
    for d in 0..docs {
        let mut x = (d as u32 * 7 + 3) % vocab;
        let mut doc = Vec::with_capacity(len);
        for _ in 0..len {
            doc.push(x);
            x = (a * x + b) % vocab;
        }
        out.push(doc);
    }
    TokenCorpus::new(name, out)
}

pub(crate) fn tiny_pretrain(steps: usize) -> PretrainConfig {
    PretrainConfig {
        layers: 2,
        hidden: 32,
        heads: 4,
        kv_heads: 2,
        intermediate: 64,
        vocab_size: Some(40),
        seq_len: 16,
        heldout: 0.1,
        optim: OptimConfig {
            steps,
            batch: 4,
            lr: 1e-2,
            warmup_steps: 5,
            eval_every: 0,
            eval_windows: 0,
            log_every: 5,
            checkpoint_every: 0,
            ..OptimConfig::default()
        },
        ..PretrainConfig::default()
    }
}

fn tiny_lora(steps: usize) -> LoraConfig {
    let mut c = LoraConfig {
        rank: 4,
        alpha: 8.0,
        seq_len: 16,
        ..LoraConfig::default()
    };
    c.optim.steps = steps;
    c.optim.batch = 4;
    c.optim.lr = 1e-2;
    c.optim.warmup_steps = 2;
    c.optim.checkpoint_every = 0;
    c
}

#[test]
fn pretraining_lowers_heldout_loss_and_writes_outputs() {
    let root = tempfile::tempdir().unwrap();
    let corpus = synthetic("base", 40, 60, 3, 1, 37);
    let (m, r) = pretrain(&corpus, &tiny_pretrain(40), root.path()).unwrap();
    assert!(
        r.stats.heldout.mean() < r.initial_heldout.mean() * 0.7,
        "{:?} vs {:?}",
        r.stats.heldout,
        r.initial_heldout
    );
    assert!(root.path().join("models/base/config.json").exists());
    assert!(root.path().join("models/base/model.safetensors").exists());
    assert!(!root.path().join("models/base.resume").exists());
    let log = std::fs::read_to_string(root.path().join("logs/train_base.log")).unwrap();
    assert!(log.starts_with(LOG_HEADER));
    assert!(log.lines().count() >= 9, "{log}");
    let summary = std::fs::read_to_string(root.path().join("summary.csv")).unwrap();
    assert!(
        summary
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("base,pretrain,40,"),
        "{summary}"
    );
    let loaded = LoadedModel::load(
        &root.path().join("models/base"),
        &crate::model::Device::flex(),
    )
    .unwrap();
    assert_eq!(
        hf_tensors(&loaded.model, &loaded.config),
        hf_tensors(&m.model, &m.config)
    );
}

#[test]
fn too_few_tokens_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let corpus = synthetic("small", 2, 20, 3, 1, 37);
    let e = pretrain(&corpus, &tiny_pretrain(5), root.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("domain `small`") && e.contains("40 tokens") && e.contains("one batch needs 4"),
        "{e}"
    );
}

fn base_model(root: &std::path::Path) -> LoadedModel {
    let corpus = synthetic("base", 40, 60, 3, 1, 37);
    pretrain(&corpus, &tiny_pretrain(15), root).unwrap().0
}

#[test]
fn lora_trains_adapter_only_and_is_deterministic() {
    let root = tempfile::tempdir().unwrap();
    let base = base_model(root.path());
    let before = hf_tensors(&base.model, &base.config);
    let dom = synthetic("news", 30, 60, 5, 2, 37);
    let r = train_lora(&base, &dom, &tiny_lora(25), root.path()).unwrap();
    // The base is untouched and the domain's held-out loss improves over it.
    assert_eq!(hf_tensors(&base.model, &base.config), before);
    assert!(
        r.stats.heldout.mean() < r.base_heldout.mean(),
        "{:?} vs {:?}",
        r.stats.heldout,
        r.base_heldout
    );
    assert_eq!(
        r.trainable_params,
        2 * (4 * (32 + 32) + 4 * (32 + 16) * 2 + 4 * (32 + 32) + 4 * (32 + 64) * 3)
    );
    let a1 = std::fs::read(
        root.path()
            .join("models/lora_news/adapter_model.safetensors"),
    )
    .unwrap();
    // Same seed, fresh run (another root): bit-identical adapter.
    let root2 = tempfile::tempdir().unwrap();
    let r2 = train_lora(&base, &dom, &tiny_lora(25), root2.path()).unwrap();
    let a2 = std::fs::read(
        root2
            .path()
            .join("models/lora_news/adapter_model.safetensors"),
    )
    .unwrap();
    assert!(a1 == a2, "adapters differ between identical runs");
    assert_eq!(r.stats.final_train_loss, r2.stats.final_train_loss);
    // And on one thread or three (the shards of a micro-batch run on as many workers).
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let root3 = tempfile::tempdir().unwrap();
        pool.install(|| train_lora(&base, &dom, &tiny_lora(25), root3.path()))
            .unwrap();
        let a3 = std::fs::read(
            root3
                .path()
                .join("models/lora_news/adapter_model.safetensors"),
        )
        .unwrap();
        assert!(a1 == a3, "the adapter differs on {threads} thread(s)");
    }
    // Another seed differs.
    let mut c3 = tiny_lora(25);
    c3.seed = 7;
    train_lora(&base, &dom, &c3, root2.path()).unwrap();
    assert!(
        std::fs::read(
            root2
                .path()
                .join("models/lora_news/adapter_model.safetensors")
        )
        .unwrap()
            != a1
    );
    let summary = std::fs::read_to_string(root.path().join("summary.csv")).unwrap();
    assert!(summary.contains("news,lora,25,"), "{summary}");
}

#[test]
fn nan_loss_stops_with_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let mut base = base_model(root.path());
    // Poison one weight of the base with NaN.
    let dev = base.model.device();
    let w = base.model.layers[0].mlp.up_proj.weight.val();
    let [i, o] = w.dims();
    let mut v = w.into_data().try_to_vec::<f32>().unwrap();
    v[5] = f32::NAN;
    base.model.layers[0].mlp.up_proj.weight = burn::module::Param::from_tensor(
        burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(v, [i, o]), &dev),
    );
    let dom = synthetic("law", 30, 60, 5, 2, 37);
    let e = train_lora(&base, &dom, &tiny_lora(5), root.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("lora law: loss is NaN at step 1"), "{e}");
    assert!(!root.path().join("models/lora_law").exists());
    let _ = base.model.valid();
}
