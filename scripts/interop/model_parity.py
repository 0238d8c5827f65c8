#!/usr/bin/env python3
"""Parity of yunmin checkpoints with transformers and PEFT (run where torch is installed).

usage: model_parity.py BASE_DIR ADAPTER_DIR [YUNMIN_BIN]

1. transformers loads BASE_DIR; its logits on a fixed prompt must match `yunmin generate
   --dump-logits` within 1e-4 (max abs, f32).
2. PEFT loads ADAPTER_DIR onto it; merge_and_unload() weights must equal W + (alpha/r)·B·A
   computed from the safetensors files.
"""
import json, subprocess, sys, tempfile, os
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel

base_dir, adapter_dir = sys.argv[1], sys.argv[2]
yunmin = sys.argv[3] if len(sys.argv) > 3 else "target/debug/yunmin"
ids = [1, 5, 9, 33, 2, 17, 8, 8, 40, 3]
model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32).eval()
with torch.no_grad():
    hf = model(torch.tensor([ids])).logits[0]
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "logits.json")
    subprocess.run([yunmin, "-q", "generate", "--model", base_dir, "--ids", ",".join(map(str, ids)), "--dump-logits", out], check=True)
    ours = torch.tensor(json.load(open(out)))
diff = (hf - ours).abs().max().item()
print(f"logits max abs diff: {diff:.3e}")
assert diff <= 1e-4, diff

cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
scale = cfg["lora_alpha"] / cfg["r"]
base_sd = {k: v.clone() for k, v in model.state_dict().items()}
merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload().state_dict()
ad = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
worst = 0.0
for k, a in ad.items():
    if not k.endswith("lora_A.weight"):
        continue
    mod = k[len("base_model.model."):-len(".lora_A.weight")]
    b = ad[k.replace("lora_A", "lora_B")]
    want = base_sd[mod + ".weight"] + scale * (b @ a)
    worst = max(worst, (merged[mod + ".weight"] - want).abs().max().item())
print(f"merge_and_unload max abs diff: {worst:.3e}")
assert worst <= 1e-5, worst
print("ok")
