#!/usr/bin/env python3
"""mergekit's task arithmetic on BASE + adapters (the `yunmin bench merge` peer for the same result
as `yunmin diff` + `yunmin merge`).

mergekit merges whole models: each `BASE+ADAPTER` is first folded by PEFT (`merge_and_unload`,
cached in `--cache`, which the benchmark empties before each run so that work is counted), then
merged = base + sum_i w_i * (model_i - base) (`normalize: false`), written in float32.

    python scripts/bench/merge_mergekit.py --base BASE --adapters A1 A2 A3 --weights 0.5,0.33,0.25 \\
        --out OUT --cache CACHE
"""
import argparse
import contextlib
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="base checkpoint directory")
    ap.add_argument("--adapters", required=True, nargs="+", help="PEFT adapter directories")
    ap.add_argument("--weights", required=True, help="comma-separated weights, one per adapter")
    ap.add_argument("--out", required=True, help="output checkpoint directory")
    ap.add_argument("--cache", required=True, help="mergekit's LoRA merge cache directory")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args()
    weights = [float(x) for x in a.weights.split(",")]
    if len(weights) != len(a.adapters):
        raise SystemExit(f"{len(weights)} weights for {len(a.adapters)} adapters")
    import torch
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    if a.threads:
        torch.set_num_threads(a.threads)
    models = [{"model": f"{a.base}+{ad}", "parameters": {"weight": w}} for ad, w in zip(a.adapters, weights)]
    cfg = MergeConfiguration.model_validate({
        "merge_method": "task_arithmetic", "base_model": a.base, "models": models,
        "parameters": {"normalize": False}, "dtype": "float32",
    })
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        run_merge(cfg, a.out, options=MergeOptions(lora_merge_cache=a.cache, copy_tokenizer=False, quiet=True,
                                                   lora_merge_dtype="float32"))


if __name__ == "__main__":
    main()
