#!/usr/bin/env python3
"""NumPy/safetensors reference merge (the benchmark peer and a parity check for `yunmin merge`).

merged = base + sum_i w_i * diff_i  (task arithmetic, unnormalised), diffs read from the
`diffs/<domain>/index.json` + `.npy` files that `yunmin diff` writes. Writes a HF checkpoint
(config.json / tokenizer files copied, model.safetensors with metadata format=pt).

    python scripts/bench/merge_reference.py --base BASE --diffs D1 D2 D3 --weights 0.4,0.3,0.3 --out OUT
"""
import argparse
import json
import os
import shutil

import numpy as np
from safetensors.numpy import load_file, save_file

SIDE_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "generation_config.json"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="base checkpoint directory")
    ap.add_argument("--diffs", required=True, nargs="+", help="diff directories (index.json + .npy)")
    ap.add_argument("--weights", required=True, help="comma-separated weights, one per diff")
    ap.add_argument("--out", required=True, help="output checkpoint directory")
    a = ap.parse_args()
    weights = [float(x) for x in a.weights.split(",")]
    if len(weights) != len(a.diffs):
        raise SystemExit(f"{len(weights)} weights for {len(a.diffs)} diffs")
    tensors = load_file(os.path.join(a.base, "model.safetensors"))
    for w, d in zip(weights, a.diffs):
        if w == 0.0:
            continue
        with open(os.path.join(d, "index.json")) as f:
            index = json.load(f)
        for name, e in index["tensors"].items():
            delta = np.load(os.path.join(d, e["file"]), mmap_mode="r")
            tensors[name] = tensors[name] + np.float32(w) * delta
    os.makedirs(a.out, exist_ok=True)
    for s in SIDE_FILES:
        p = os.path.join(a.base, s)
        if os.path.exists(p):
            shutil.copy(p, os.path.join(a.out, s))
    save_file(tensors, os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
