//! Parity with the Python reference libraries: `scripts/interop/hf_parity.py` makes its fixtures
//! with transformers, PEFT, `tokenizers` and mergekit themselves and drives the `yunmin` binary.
//! One Python process per group; the script prints every measured number and lists the failing
//! cases, which is what a failure here shows.

use std::process::Command;
use std::time::Instant;
use yunmin_tests::{python, repo_root, text, yunmin_bin};

fn group(name: &str) {
    let script = repo_root().join("scripts/interop/hf_parity.py");
    let start = Instant::now();
    let o = Command::new(python())
        .arg(&script)
        .arg(name)
        .arg("--yunmin")
        .arg(yunmin_bin())
        .env("PYTHONUNBUFFERED", "1")
        .env("NO_COLOR", "1")
        .output()
        .expect("spawn python");
    let out = text(&o);
    assert!(
        o.status.success(),
        "hf_parity.py {name} failed after {:.1}s\n{out}",
        start.elapsed().as_secs_f64()
    );
    println!("{out}");
}

/// transformers checkpoints (Llama variants, rope scaling, dtypes, shards, Qwen2, Mistral):
/// logits within 1e-4, 32 greedy tokens, tokenization; unsupported configs are refused by name.
#[test]
fn transformers_checkpoints() {
    group("checkpoints");
}

/// transformers loads what yunmin saves (a pretrained base; checkpoints loaded and saved again).
#[test]
fn transformers_loads_saved_models() {
    group("saved");
}

/// PEFT adapters both ways (rsLoRA, partial targets, rank patterns) and merge_and_unload().
#[test]
fn peft_adapters() {
    group("peft");
}

/// mergekit task_arithmetic with BASE+ADAPTER and mixed-sign weights; TIES.
#[test]
fn mergekit_merges() {
    group("mergekit");
}

/// A bf16 transformers base → LoRA → diff → merge → transformers loads the merged model.
#[test]
fn bf16_lora_merge_end_to_end() {
    group("bf16");
}
