#!/usr/bin/env python3
"""Parity of `yunmin` with the Python reference libraries: transformers, PEFT and mergekit.

usage: hf_parity.py GROUP [GROUP…] --yunmin PATH [--only NAME[,NAME…]] [--keep DIR]

Every fixture is made here, in a temporary directory, by the reference library itself
(transformers `save_pretrained` of randomly initialised models, PEFT-trained adapters, a BPE
`tokenizer.json` trained with `tokenizers`), and `yunmin` is driven through its CLI. Each case
prints what it measured; the script exits non-zero if any case failed, after running them all.

Groups:
  checkpoints  transformers checkpoints (Llama tied/untied, GQA, rope_parameters and top-level
               rope_theta, rope scaling linear/dynamic/llama3 past the original context, head_dim,
               bf16/f16, sharded, eos list, attention/MLP bias, Qwen2, Mistral sliding window):
               logits within 1e-4 of transformers (float32) on several prompts, 32 greedy tokens
               identical to transformers' generation, tokenization identical to AutoTokenizer;
               unsupported configs fail with a message naming the field.
  saved        transformers loads what yunmin saves (a pretrained base, and transformers
               checkpoints loaded and saved again by a script) with equal logits.
  peft         PEFT loads yunmin's adapters and yunmin loads PEFT-trained ones (rsLoRA, q/v only,
               rank_pattern/alpha_pattern, on a sharded Qwen2 base) with equal logits; PEFT
               merge_and_unload() equals `yunmin diff` + `yunmin merge --weights 1` within 1e-6 on
               every tensor.
  mergekit     mergekit task_arithmetic (normalize: false, BASE+ADAPTER, weights 0.7/-0.3) equals
               `yunmin merge` within 1e-5 on every tensor; TIES equal at a density whose kept
               count is integral, and the exact difference measured and explained otherwise.
  bf16         a bf16 transformers base → `yunmin train lora` → diff → merge → transformers loads
               the merged model with logits equal to yunmin's.
"""
import argparse
import contextlib
import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import unicodedata
import warnings
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from safetensors import safe_open
from safetensors.torch import load_file

import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(1)

LOGITS_ATOL = 1e-4  # yunmin vs transformers logits (f32 compute on both sides)
PEFT_MERGE_ATOL = 1e-6  # yunmin merge vs PEFT merge_and_unload, per tensor element
MERGEKIT_ATOL = 1e-5  # yunmin merge vs mergekit, per tensor element
GREEDY_TOKENS = 32
VOCAB = 384

KOREAN = [
    "한국어 자연어 처리는 형태소 분석에서 시작한다.",
    "서울특별시 강남구 테헤란로에 위치한 회사에서 인공지능 모델을 학습시켰다.",
    "대법원은 원심 판결을 파기하고 사건을 서울고등법원으로 환송하였다.",
    "환자는 고혈압과 당뇨병 병력이 있으며 혈압약을 복용 중이다.",
    "오늘 코스피 지수는 외국인 매수세에 힘입어 2,650선을 회복했다.",
    "데이터 중복 제거 후 학습 데이터의 품질이 크게 향상되었다.",
    "그는 어제 도서관에서 책을 세 권 빌렸고, 오늘 모두 반납했다.",
    "안녕하세요! 만나서 반갑습니다. 잘 부탁드립니다.",
    "GPU 서버에서 LoRA 어댑터를 병합하면 추론 속도가 빨라진다.",
    "한국어와 English가 섞인 문장도 토크나이저가 처리해야 한다.",
] * 3

TOKENIZER_TEXTS = [
    "한국어 자연어 처리는 형태소 분석에서 시작한다.",
    "대법원은 원심 판결을 파기하고, 사건을 환송했다.",
    "GPU 서버에서 3.5배 빨라졌다 🚀 (batch=8, lr=3e-4)",
    "Mixed 한국어 and English: LoRA 어댑터 merge_and_unload()",
    "  공백이   여러 개\n줄바꿈\t탭도 있다  ",
    unicodedata.normalize("NFD", "조합형 한글 자모는 정규화된다"),
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ 전각 문자",
    "처음 보는 단어: 뷁햏쀍",
]


# ---------------------------------------------------------------------------------------------
# Reporting


class Failure(Exception):
    """A case's check failed; the message carries the measured numbers."""


class Report:
    def __init__(self, only):
        self.only = only
        self.results = []

    def case(self, group, name, fn, *args):
        if self.only and name not in self.only:
            return None
        t0 = time.time()
        try:
            out = fn(*args)
            msg = out if isinstance(out, str) else "ok"
            self.results.append((group, name, True, msg))
            print(f"PASS {group}/{name} ({time.time() - t0:.1f}s): {msg}", flush=True)
        except Failure as e:
            self.results.append((group, name, False, str(e)))
            print(f"FAIL {group}/{name} ({time.time() - t0:.1f}s): {e}", flush=True)
        except Exception:  # a harness or library error: report it as the case's failure
            tb = traceback.format_exc()
            self.results.append((group, name, False, tb))
            print(f"FAIL {group}/{name} ({time.time() - t0:.1f}s): error\n{tb}", flush=True)
        return None

    def summary(self):
        failed = [r for r in self.results if not r[2]]
        print(f"\n{len(self.results) - len(failed)} passed, {len(failed)} failed")
        for g, n, _, m in failed:
            first = m.strip().splitlines()[-1] if m.strip() else ""
            print(f"  FAIL {g}/{n}: {first}")
        return not failed


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ---------------------------------------------------------------------------------------------
# yunmin through its CLI


class Yunmin:
    def __init__(self, path):
        self.path = str(path)
        self.tmp = tempfile.mkdtemp(prefix="yunmin-out-")

    def run(self, *args, cwd=None):
        cmd = [self.path, "-q", *[str(a) for a in args]]
        env = dict(os.environ, NO_COLOR="1")
        env.pop("RUST_LOG", None)
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)

    def ok(self, *args, cwd=None):
        p = self.run(*args, cwd=cwd)
        if p.returncode != 0:
            tail = (p.stderr.strip() or p.stdout.strip())[-3000:]
            raise Failure(f"`yunmin {' '.join(map(str, args))}` exited {p.returncode}: {tail}")
        return p.stdout

    def logits(self, model, ids=None, adapter=None, prompt=None):
        out = os.path.join(self.tmp, "logits.json")
        args = ["generate", "--model", model, "--dump-logits", out]
        args += ["--prompt", prompt] if prompt is not None else ["--ids", ",".join(map(str, ids))]
        if adapter:
            args += ["--adapter", adapter]
        self.ok(*args)
        with open(out) as f:
            return torch.tensor(json.load(f), dtype=torch.float32)

    def greedy(self, model, ids, n, adapter=None):
        args = ["generate", "--model", model, "--ids", ",".join(map(str, ids)), "--max-new-tokens", n]
        if adapter:
            args += ["--adapter", adapter]
        out = self.ok(*args).strip()
        return [int(x) for x in out.split(",") if x.strip()]

    def encode(self, tokenizer, text):
        out = self.ok("tokenizer", "encode", "--tokenizer", tokenizer, text)
        return [int(x) for x in out.split()]

    def script(self, root, body):
        p = os.path.join(root, "script.rhai")
        with open(p, "w") as f:
            f.write(body)
        # The script writes its checkpoints beside the run root, in the case directory.
        return self.ok("run", p, "--out", os.path.join(root, "run"), "--allow-write", root)


# ---------------------------------------------------------------------------------------------
# transformers side


def hf_load(d, dtype=torch.float32):
    return AutoModelForCausalLM.from_pretrained(d, dtype=dtype, attn_implementation="eager").eval()


@torch.no_grad()
def hf_logits(model, ids):
    return model(torch.tensor([ids])).logits[0].float()


@torch.no_grad()
def hf_greedy(model, ids, n, cache=True):
    """Greedy continuation, argmax at every step (EOS is not special). With `cache`, a KV cache
    as `generate()` uses it; without, the whole sequence is recomputed each step. Returns the ids
    and the smallest top-1/top-2 logit gap on the way."""
    seq = list(ids)
    gap = float("inf")
    kv = {}
    if cache:
        # transformers 5 names the argument `cache`, 4 named it `past_key_values`.
        arg = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
        kv = {arg: DynamicCache(config=model.config)}
    out = model(torch.tensor([seq]), use_cache=cache, **kv)
    for _ in range(n):
        top = torch.topk(out.logits[0, -1].float(), 2)
        gap = min(gap, float(top.values[0] - top.values[1]))
        t = int(top.indices[0])
        seq.append(t)
        if cache:
            out = model(torch.tensor([[t]]), use_cache=True, **kv)
        else:
            out = model(torch.tensor([seq]), use_cache=False)
    return seq[len(ids) :], gap


def prompts(vocab, seed=0, lengths=(5, 23, 72)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


def randomize(model, seed, std=0.08):
    """Every parameter random (norm weights around 1, biases non-zero), so that no tensor's
    handling goes unchecked because transformers initialised it to a constant."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(std * noise)


LLAMA = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=128,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)

ARCH = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "mistral": (MistralConfig, MistralForCausalLM),
}


def make_checkpoint(d, arch="llama", seed=0, dtype=None, shard=None, edit=None, tokenizer=None, **over):
    """A random `arch` model saved with save_pretrained in `d`; `edit(config_dict)` then rewrites
    config.json (to write what older transformers versions wrote)."""
    cfg_cls, model_cls = ARCH[arch]
    torch.manual_seed(seed)
    kw = dict(LLAMA)
    kw.update(over)
    model = model_cls(cfg_cls(**kw))
    randomize(model, seed)
    if dtype is not None:
        model = model.to(dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(d, **kwargs)
    if tokenizer is not None:
        tokenizer.save_pretrained(d)
    if edit is not None:
        p = os.path.join(d, "config.json")
        with open(p) as f:
            cfg = json.load(f)
        edit(cfg)
        with open(p, "w") as f:
            json.dump(cfg, f, indent=2)
    return d


def make_tokenizer():
    """A byte-level BPE with NFKC, trained on Korean sentences with `tokenizers`; special tokens
    <unk>=0, <s>=1, </s>=2 as in the model configs."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360,
        min_frequency=1,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(KOREAN, trainer)
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def read_tensors(d):
    """Every tensor of a checkpoint directory (single file or shards), as float32."""
    out = {}
    for p in sorted(Path(d).glob("*.safetensors")):
        with safe_open(str(p), framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k).float()
    return out


def stored_dtypes(d):
    ds = set()
    for p in sorted(Path(d).glob("*.safetensors")):
        with safe_open(str(p), framework="pt") as f:
            for k in f.keys():
                ds.add(str(f.get_slice(k).get_dtype()))
    return sorted(ds)


def compare_logits(y, model_dir, hf, ps, adapter=None, atol=LOGITS_ATOL):
    worst = 0.0
    per = []
    for ids in ps:
        ours = y.logits(model_dir, ids, adapter=adapter)
        ref = hf_logits(hf, ids)
        check(ours.shape == ref.shape, f"logits shape {tuple(ours.shape)}, transformers {tuple(ref.shape)}")
        d = float((ours - ref).abs().max())
        per.append(f"{d:.2e}")
        worst = max(worst, d)
    check(worst <= atol, f"logits max|Δ| {worst:.3e} > {atol:g} (per prompt of lengths {[len(p) for p in ps]}: {per})")
    return worst


def compare_greedy(y, model_dir, hf, ids, adapter=None, note_nocache=False):
    ref, gap = hf_greedy(hf, ids, GREEDY_TOKENS)
    ours = y.greedy(model_dir, ids, GREEDY_TOKENS, adapter=adapter)
    eos = hf.config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    if len(ours) < len(ref) and ours and ours[-1] in eos:
        ref = ref[: len(ours)]  # yunmin stopped at an end-of-sequence token
    if ours != ref:
        first = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
        extra = ""
        if note_nocache:
            nc, _ = hf_greedy(hf, ids, GREEDY_TOKENS, cache=False)
            extra = f"; transformers without KV cache gives {nc} ({'equal to yunmin' if nc == ours else 'also different'})"
        raise Failure(
            f"greedy tokens differ from position {first} (prompt length {len(ids)}, min top-2 logit gap {gap:.2e}):\n"
            f"  yunmin       {ours}\n  transformers {ref}{extra}"
        )
    return gap


# ---------------------------------------------------------------------------------------------
# checkpoints


def group_checkpoints(y, rep, root):
    tok = make_tokenizer()
    ps = prompts(VOCAB)

    def rope_theta_top_level(theta):
        def edit(cfg):
            rp = cfg.pop("rope_parameters", None) or {}
            cfg["rope_theta"] = theta
            if rp.get("rope_type", "default") != "default":
                cfg["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
            cfg["torch_dtype"] = cfg.pop("dtype", "float32")

        return edit

    llama3 = dict(
        rope_type="llama3",
        rope_theta=10000.0,
        factor=8.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=32,
    )
    cases = {
        "llama_tied": dict(tie_word_embeddings=True),
        "llama_untied": dict(),
        "llama_gqa": dict(num_key_value_heads=2),
        "rope_parameters_theta": dict(rope_parameters=dict(rope_type="default", rope_theta=100000.0)),
        "rope_theta_top_level": dict(
            rope_parameters=dict(rope_type="default", rope_theta=100000.0), edit=rope_theta_top_level(100000.0)
        ),
        "rope_linear": dict(rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=4.0)),
        # transformers' dynamic NTK scales past max_position_embeddings (its original context).
        "rope_dynamic": dict(
            max_position_embeddings=32, rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=4.0)
        ),
        "rope_llama3": dict(rope_parameters=llama3, num_key_value_heads=2),
        # transformers 4 wrote Llama 3.1's scaling as top-level rope_scaling + rope_theta.
        "rope_llama3_rope_scaling": dict(rope_parameters=dict(llama3), edit=rope_theta_top_level(10000.0)),
        "head_dim": dict(head_dim=32, num_key_value_heads=2),
        "bf16": dict(dtype=torch.bfloat16, num_key_value_heads=2),
        "f16": dict(dtype=torch.float16),
        "sharded": dict(shard="200KB", num_key_value_heads=2),
        "eos_list": dict(eos_token_id=[2, 7]),
        "llama_bias": dict(attention_bias=True, mlp_bias=True, num_key_value_heads=2),
        "qwen2": dict(arch="qwen2", num_key_value_heads=2, tie_word_embeddings=True),
        "mistral_sliding_window": dict(arch="mistral", num_key_value_heads=2, sliding_window=16),
        # Layers from max_window_layers on use the window (layer_types [full, sliding]).
        "qwen2_sliding_window": dict(
            arch="qwen2", num_key_value_heads=2, use_sliding_window=True, sliding_window=16, max_window_layers=1
        ),
    }

    def run_case(name, spec):
        d = make_checkpoint(os.path.join(root, name), seed=zlib.crc32(name.encode()) % 1000, tokenizer=tok, **spec)
        hf = hf_load(d)
        notes = []
        if name == "rope_theta_top_level":
            theta = hf.config.rope_parameters["rope_theta"]
            check(theta == 100000.0, f"harness: transformers read rope_theta {theta}")
        if name == "rope_llama3_rope_scaling":
            check(hf.config.rope_parameters.get("rope_type") == "llama3", f"harness: {hf.config.rope_parameters}")
        if name == "sharded":
            check(os.path.exists(os.path.join(d, "model.safetensors.index.json")), "harness: no shard index")
            notes.append(f"{len(list(Path(d).glob('*.safetensors')))} shards")
        if name in ("bf16", "f16"):
            notes.append(f"stored {stored_dtypes(d)}")
        worst = compare_logits(y, d, hf, ps)
        gap = compare_greedy(y, d, hf, ps[-1], note_nocache=name == "rope_dynamic")
        return (
            f"logits max|Δ| {worst:.2e} on prompts of {[len(p) for p in ps]} tokens; "
            f"{GREEDY_TOKENS} greedy tokens equal (min top-2 gap {gap:.2e})" + (f"; {', '.join(notes)}" if notes else "")
        )

    for name, spec in cases.items():
        rep.case("checkpoints", name, run_case, name, dict(spec))

    def tokenization():
        d = os.path.join(root, "llama_untied")
        if not os.path.exists(os.path.join(d, "config.json")):
            make_checkpoint(d, tokenizer=tok)
        auto = AutoTokenizer.from_pretrained(d)
        bad = []
        n = 0
        for text in TOKENIZER_TEXTS:
            ref = auto(text, add_special_tokens=False)["input_ids"]
            ours = y.encode(os.path.join(d, "tokenizer.json"), text)
            n += len(ref)
            if ours != ref:
                bad.append(f"{text!r}: yunmin {ours} AutoTokenizer {ref}")
        check(not bad, "tokenization differs:\n  " + "\n  ".join(bad))
        # A text prompt is the checkpoint's tokens after bos_token_id.
        hf = hf_load(d)
        text = TOKENIZER_TEXTS[3]
        ids = [hf.config.bos_token_id] + auto(text, add_special_tokens=False)["input_ids"]
        ours = y.logits(d, prompt=text)
        ref = hf_logits(hf, ids)
        check(ours.shape == ref.shape, f"--prompt logits shape {tuple(ours.shape)}, transformers {tuple(ref.shape)}")
        diff = float((ours - ref).abs().max())
        check(diff <= LOGITS_ATOL, f"--prompt logits max|Δ| {diff:.3e}")
        return f"{len(TOKENIZER_TEXTS)} texts ({n} tokens) identical to AutoTokenizer; --prompt logits max|Δ| {diff:.2e}"

    rep.case("checkpoints", "tokenizer", tokenization)

    unsupported = {
        "unsupported_yarn": (
            ("rope_type", "yarn"),
            lambda c: c.update(
                rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0, original_max_position_embeddings=32)
            ),
        ),
        "unsupported_partial_rotary_factor": (("partial_rotary_factor",), lambda c: c.update(partial_rotary_factor=0.5)),
        "unsupported_quantization_config": (
            ("quantization_config",),
            lambda c: c.update(quantization_config=dict(quant_method="bitsandbytes", load_in_8bit=True)),
        ),
    }

    def run_unsupported(name, words, edit):
        d = make_checkpoint(os.path.join(root, name), edit=edit)
        p = y.run("generate", "--model", d, "--ids", "1,2,3", "--max-new-tokens", "2")
        err = (p.stderr + p.stdout).strip()
        check(p.returncode != 0, f"yunmin accepted it and printed {p.stdout.strip()!r}")
        check("panicked" not in err, f"yunmin panicked: {err[-1500:]}")
        check(any(w in err for w in words), f"the message names none of {list(words)}: {err[-1500:]}")
        return f"refused: {err.splitlines()[-1][:200] if err else ''}"

    for name, (words, edit) in unsupported.items():
        rep.case("checkpoints", name, run_unsupported, name, words, edit)


# ---------------------------------------------------------------------------------------------
# saved models


def corpus(path, docs=40, length=60, a=3, b=1, vocab=40):
    with open(path, "w") as f:
        for dd in range(docs):
            x = (dd * 7 + 3) % vocab
            ids = []
            for _ in range(length):
                ids.append(x)
                x = (a * x + b) % vocab
            f.write(json.dumps(ids) + "\n")
    return path


def group_saved(y, rep, root):
    def pretrained():
        r = os.path.join(root, "pretrain")
        os.makedirs(r)
        corpus(os.path.join(r, "base.jsonl"))
        with open(os.path.join(r, "tiny.json"), "w") as f:
            json.dump(
                dict(layers=2, hidden=32, heads=4, kv_heads=2, intermediate=64, vocab_size=40, seq_len=16, batch=4,
                     lr=0.01, warmup_steps=2, eval_every=0, eval_windows=0, log_every=5, checkpoint_every=0),
                f,
            )
        y.ok("train", "pretrain", "--tokens", "base.jsonl", "--config", "tiny.json", "--steps", "10", cwd=r)
        d = os.path.join(r, "models", "base")
        hf = hf_load(d)
        ps = prompts(40, seed=3, lengths=(4, 17, 40))
        worst = compare_logits(y, d, hf, ps)
        gap = compare_greedy(y, d, hf, ps[1])
        return f"{type(hf).__name__} loads it; logits max|Δ| {worst:.2e}; {GREEDY_TOKENS} greedy tokens equal (min gap {gap:.2e})"

    rep.case("saved", "pretrained_base", pretrained)

    llama3 = dict(rope_type="llama3", rope_theta=50000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                  original_max_position_embeddings=32)
    cases = {
        "resave_llama_tied": dict(tie_word_embeddings=True),
        "resave_gqa_head_dim_llama3": dict(num_key_value_heads=2, head_dim=32, rope_parameters=llama3, eos_token_id=[2, 7]),
        "resave_bias": dict(attention_bias=True, mlp_bias=True),
        "resave_bf16_sharded": dict(dtype=torch.bfloat16, shard="100KB"),
        "resave_qwen2": dict(arch="qwen2", num_key_value_heads=2),
        "resave_mistral": dict(arch="mistral", num_key_value_heads=2, sliding_window=16),
    }
    fields = ["model_type", "architectures", "num_key_value_heads", "head_dim", "tie_word_embeddings", "rope_parameters",
              "attention_bias", "mlp_bias", "sliding_window", "eos_token_id", "bos_token_id", "rms_norm_eps",
              "max_position_embeddings", "vocab_size"]
    ps = prompts(VOCAB, seed=5)

    def resave(name, spec):
        src = make_checkpoint(os.path.join(root, name, "src"), seed=zlib.crc32(name.encode()) % 1000, **spec)
        r = os.path.join(root, name)
        y.script(r, f'let m = load_model("{src}");\nsave(m, "{r}/saved");\n')
        out = os.path.join(r, "saved")
        ref = hf_load(src)
        hf = hf_load(out)
        diffs = []
        for k in fields:
            a, b = getattr(ref.config, k, None), getattr(hf.config, k, None)
            if a != b:
                diffs.append(f"{k}: {b!r} (transformers wrote {a!r})")
        check(not diffs, "saved config.json reads differently in transformers: " + "; ".join(diffs))
        worst = 0.0
        for ids in ps:
            worst = max(worst, float((hf_logits(hf, ids) - hf_logits(ref, ids)).abs().max()))
        check(worst <= LOGITS_ATOL, f"transformers logits of the saved model vs the original: max|Δ| {worst:.3e}")
        ours = compare_logits(y, out, hf, ps)
        return (
            f"config fields equal; saved {stored_dtypes(out)} in {len(list(Path(out).glob('*.safetensors')))} file(s); "
            f"transformers logits saved vs original max|Δ| {worst:.2e}, yunmin vs transformers {ours:.2e}"
        )

    for name, spec in cases.items():
        rep.case("saved", name, resave, name, dict(spec))


# ---------------------------------------------------------------------------------------------
# PEFT


def peft_train(base_dir, out, seed, vocab=VOCAB, steps=4, **lora):
    """A PEFT LoRA adapter trained a few AdamW steps on random tokens (so B ≠ 0)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = hf_load(base_dir)
    kw = dict(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0)
    kw.update(lora)
    pm = get_peft_model(model, LoraConfig(**kw))
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=2e-2)
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, vocab, (4, 24), generator=g)
    pm.train()
    for _ in range(steps):
        loss = pm(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    pm.save_pretrained(out)
    bmax = max(float(v.abs().max()) for k, v in load_file(os.path.join(out, "adapter_model.safetensors")).items() if "lora_B" in k)
    assert bmax > 0, "PEFT adapter has B = 0"
    return out


def peft_model(base_dir, adapter_dir):
    from peft import PeftModel

    return PeftModel.from_pretrained(hf_load(base_dir), adapter_dir).eval()


def yunmin_merge(y, base, adapters, weights, out_root, method="task_arithmetic", extra=()):
    diffs = []
    for i, a in enumerate(adapters):
        dom = f"d{i}"
        y.ok("diff", "--base", base, "--adapter", a, "--domain", dom, "--out", out_root)
        diffs.append(os.path.join(out_root, "diffs", dom))
    out = os.path.join(out_root, "merged_" + method)
    if os.path.exists(out):
        shutil.rmtree(out)
    y.ok("merge", "--base", base, "--diffs", ",".join(diffs), "--method", method,
         "--weights", ",".join(str(w) for w in weights), *extra,
         "--out", out_root, "--model-dir", "merged_" + method)
    return out


def compare_tensors(ours, ref, atol, tied=False):
    """max |Δ| over every tensor of `ref` (a state dict); lm_head may be absent when tied."""
    missing = []
    worst, worst_name = 0.0, ""
    for k, v in ref.items():
        if k not in ours:
            if tied and k == "lm_head.weight":
                continue
            missing.append(k)
            continue
        check(tuple(ours[k].shape) == tuple(v.shape), f"{k}: shape {tuple(ours[k].shape)}, reference {tuple(v.shape)}")
        d = float((ours[k].float() - v.float()).abs().max()) if v.numel() else 0.0
        if d > worst:
            worst, worst_name = d, k
    extra = sorted(set(ours) - set(ref))
    check(not missing, f"tensors missing from yunmin's output: {missing}")
    check(not extra, f"tensors only in yunmin's output: {extra}")
    check(worst <= atol, f"max|Δ| {worst:.3e} > {atol:g} at {worst_name}")
    return worst, worst_name or "bit-identical"


def adapter_effect(base_dir, adapter_dir, ids):
    base = hf_logits(hf_load(base_dir), ids)
    return float((hf_logits(peft_model(base_dir, adapter_dir), ids) - base).abs().max())


def group_peft(y, rep, root):
    base = make_checkpoint(os.path.join(root, "base"), num_key_value_heads=2, seed=11)
    ps = prompts(VOCAB, seed=7, lengths=(6, 30))
    adapters = {}

    def adapter_parity(a):
        """How much adapter `a` moves the logits (must be visible), and the worst |Δ| between
        PEFT's logits and `yunmin generate --adapter` over the prompts."""
        pm = peft_model(base, a)
        effect = adapter_effect(base, a, ps[1])
        check(effect > 1e-3, f"harness: the adapter barely changes the logits ({effect:.2e})")
        worst = 0.0
        for ids in ps:
            ours = y.logits(base, ids, adapter=a)
            worst = max(worst, float((ours - hf_logits(pm, ids)).abs().max()))
        return effect, worst

    def yunmin_adapter():
        r = os.path.join(root, "ytrain")
        os.makedirs(r)
        corpus(os.path.join(r, "news.jsonl"), docs=30, a=5, b=2, vocab=VOCAB)
        y.ok("train", "lora", "--base", base, "--tokens", "news.jsonl", "--steps", "6", "--batch", "4",
             "--seq-len", "16", "--rank", "4", "--alpha", "8", "--lr", "0.02", cwd=r)
        a = os.path.join(r, "models", "lora_news")
        adapters["yunmin"] = a
        effect, worst = adapter_parity(a)
        check(worst <= LOGITS_ATOL, f"PEFT logits vs yunmin --adapter: max|Δ| {worst:.3e}")
        return f"PeftModel loads it (adapter moves logits by {effect:.2e}); logits max|Δ| {worst:.2e}"

    rep.case("peft", "peft_loads_yunmin_adapter", yunmin_adapter)

    peft_cases = {
        "rslora": dict(use_rslora=True, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        "q_v_only": dict(target_modules=["q_proj", "v_proj"]),
        "rank_alpha_pattern": dict(
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            rank_pattern={"q_proj": 2, "down_proj": 8},
            alpha_pattern={"v_proj": 2, "gate_proj": 32},
        ),
    }

    def yunmin_loads(name, lora):
        a = peft_train(base, os.path.join(root, "peft_" + name), seed=len(name), **lora)
        adapters[name] = a
        effect, worst = adapter_parity(a)
        check(worst <= LOGITS_ATOL, f"yunmin --adapter vs PEFT logits: max|Δ| {worst:.3e} (adapter effect {effect:.2e})")
        return f"adapter moves logits by {effect:.2e}; yunmin --adapter vs PEFT max|Δ| {worst:.2e}"

    for name, lora in peft_cases.items():
        rep.case("peft", f"yunmin_loads_peft_{name}", yunmin_loads, name, lora)

    def merge_equal(name):
        a = adapters.get(name)
        check(a is not None, "its adapter case failed")
        ref = peft_model(base, a).merge_and_unload().state_dict()
        out = yunmin_merge(y, base, [a], [1], os.path.join(root, "merge_" + name))
        worst, at = compare_tensors(read_tensors(out), ref, PEFT_MERGE_ATOL)
        return f"{len(ref)} tensors, max|Δ| {worst:.2e} ({at})"

    for name in ["yunmin", *peft_cases]:
        rep.case("peft", f"merge_and_unload_{name}", merge_equal, name)

    def qwen2_sharded():
        # A Qwen2 base (q/k/v biases) in shards: adapter logits and the merge.
        qbase = make_checkpoint(os.path.join(root, "qwen2_base"), arch="qwen2", num_key_value_heads=2, seed=13,
                                shard="100KB")
        check(os.path.exists(os.path.join(qbase, "model.safetensors.index.json")), "harness: no shard index")
        a = peft_train(qbase, os.path.join(root, "peft_qwen2"), seed=5,
                       target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        pm = peft_model(qbase, a)
        worst = 0.0
        for ids in ps:
            worst = max(worst, float((y.logits(qbase, ids, adapter=a) - hf_logits(pm, ids)).abs().max()))
        check(worst <= LOGITS_ATOL, f"yunmin --adapter vs PEFT logits on the Qwen2 base: max|Δ| {worst:.3e}")
        ref = pm.merge_and_unload().state_dict()
        out = yunmin_merge(y, qbase, [a], [1], os.path.join(root, "merge_qwen2"))
        m, at = compare_tensors(read_tensors(out), ref, PEFT_MERGE_ATOL)
        return f"{len(list(Path(qbase).glob('*.safetensors')))} shards; --adapter logits max|Δ| {worst:.2e}; merge: {len(ref)} tensors, max|Δ| {m:.2e} ({at})"

    rep.case("peft", "qwen2_sharded_base", qwen2_sharded)


# ---------------------------------------------------------------------------------------------
# mergekit


def mergekit_merge(base, adapters, weights, out, cache, method, params=None, model_params=None):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    models = []
    for a, w in zip(adapters, weights):
        p = {"weight": w}
        p.update(model_params or {})
        models.append({"model": f"{base}+{a}", "parameters": p})
    cfg = MergeConfiguration.model_validate(
        {"merge_method": method, "base_model": base, "models": models, "parameters": params or {}, "dtype": "float32"}
    )
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        run_merge(cfg, out, options=MergeOptions(lora_merge_cache=cache, copy_tokenizer=False, quiet=True,
                                                 lora_merge_dtype="float32"))
    return read_tensors(out)


def ties_reference(base, deltas, weights, density, k_rule, abs_divisor):
    """mergekit's TIES on one tensor (`generalized_task_arithmetic.py`, `sparsify.magnitude`),
    with the two places where yunmin differs made switchable: `k_rule` "floor" keeps exactly
    max(1, int(density·N)) entries by argsort (mergekit), "ceil" keeps every entry with |τ| ≥ the
    ⌈density·N⌉-th largest magnitude (yunmin); `abs_divisor` divides by Σ|wᵢ| over the agreeing
    entries (yunmin) instead of Σwᵢ (mergekit)."""
    kept = []
    for d in deltas:
        n = d.numel()
        flat = d.reshape(-1)
        mask = torch.zeros(n, dtype=torch.bool)
        if density >= 1:
            mask[:] = True
        elif k_rule == "floor":
            k = max(1, int(density * n))
            mask[torch.argsort(flat.abs(), descending=True)[:k]] = True
        else:
            k = min(n, math.ceil(density * n))
            thr = torch.sort(flat.abs(), descending=True).values[k - 1]
            mask = (flat.abs() >= thr) & (flat != 0)
        kept.append((flat * mask).reshape(d.shape))
    w = torch.tensor(weights, dtype=torch.float32).reshape(-1, *([1] * base.dim()))
    wd = torch.stack(kept) * w
    majority = (wd.sum(0) >= 0).float() * 2 - 1
    agree = (wd.sign() == majority).float()
    mixed = (wd * agree).sum(0)
    div = ((w.abs() if abs_divisor else w) * agree).sum(0)
    div[div == 0] = 1
    return base + mixed / div


def group_mergekit(y, rep, root):
    base = make_checkpoint(os.path.join(root, "base"), num_key_value_heads=2, seed=21)
    all7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    a1 = peft_train(base, os.path.join(root, "lora_a"), seed=1, target_modules=all7)
    a2 = peft_train(base, os.path.join(root, "lora_b"), seed=2, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], r=8, lora_alpha=8)
    cache = os.path.join(root, "lora_cache")
    base_t = read_tensors(base)

    def task_arithmetic():
        weights = [0.7, -0.3]
        ref = mergekit_merge(base, [a1, a2], weights, os.path.join(root, "mk_ta"), cache, "task_arithmetic",
                             params={"normalize": False})
        out = yunmin_merge(y, base, [a1, a2], weights, os.path.join(root, "y_ta"))
        worst, at = compare_tensors(read_tensors(out), ref, MERGEKIT_ATOL)
        return f"weights {weights}, normalize false: {len(ref)} tensors, max|Δ| {worst:.2e} ({at})"

    rep.case("mergekit", "task_arithmetic", task_arithmetic)

    merged_cache = {}

    def deltas_of(name):
        # What mergekit merges: PEFT merge_and_unload() of each BASE+ADAPTER, minus the base.
        if not merged_cache:
            for a in (a1, a2):
                merged_cache[a] = {k: v.float() for k, v in peft_model(base, a).merge_and_unload().state_dict().items()}
        return [merged_cache[a][name] - base_t[name] for a in (a1, a2)]

    def ties(density, weights, tag):
        ref = mergekit_merge(base, [a1, a2], weights, os.path.join(root, "mk_" + tag), cache, "ties",
                             model_params={"density": density})
        out = yunmin_merge(y, base, [a1, a2], weights, os.path.join(root, "y_" + tag), method="ties",
                           extra=("--density", str(density), "--lambda", "1"))
        ours = read_tensors(out)
        check(set(ours) == set(ref), f"tensor sets differ: {sorted(set(ours) ^ set(ref))}")
        worst, n_diff, n_all, at = 0.0, 0, 0, ""
        emu_mk, emu_y = 0.0, 0.0
        for k, r in ref.items():
            d = (ours[k] - r).abs()
            n_diff += int((d > MERGEKIT_ATOL).sum())
            n_all += r.numel()
            if float(d.max()) > worst:
                worst, at = float(d.max()), k
            if float(d.max()) > 0 or k.endswith("proj.weight"):
                ds = deltas_of(k)
                emu_mk = max(emu_mk, float((ties_reference(base_t[k], ds, weights, density, "floor", False) - r).abs().max()))
                emu_y = max(emu_y, float((ties_reference(base_t[k], ds, weights, density, "ceil", True) - ours[k]).abs().max()))
        check(emu_mk <= MERGEKIT_ATOL, f"harness: the TIES reference does not reproduce mergekit (max|Δ| {emu_mk:.3e})")
        check(emu_y <= MERGEKIT_ATOL,
              f"yunmin TIES differs from mergekit's formula with ⌈density·N⌉ and Σ|w| (max|Δ| {emu_y:.3e}); vs mergekit max|Δ| {worst:.3e}, {n_diff}/{n_all} entries")
        return worst, n_diff, n_all, at, emu_mk, emu_y

    def ties_integral():
        worst, n_diff, n_all, at, _, emu_y = ties(0.5, [0.7, 0.3], "ties_05")
        check(worst <= MERGEKIT_ATOL, f"density 0.5 (every density·N integral), weights 0.7/0.3: max|Δ| {worst:.3e} at {at}, {n_diff}/{n_all} entries differ")
        return f"density 0.5, weights 0.7/0.3: max|Δ| {worst:.2e} over {n_all} entries"

    rep.case("mergekit", "ties_equal", ties_integral)

    def ties_documented():
        lines = []
        worst, n_diff, n_all, at, emu_mk, emu_y = ties(0.3, [0.7, 0.3], "ties_03")
        lines.append(
            f"density 0.3 (mergekit keeps int(0.3·N), yunmin ⌈0.3·N⌉ and ties): {n_diff}/{n_all} entries differ, max|Δ| {worst:.2e} "
            f"({at}); mergekit's formula with ⌈·⌉ reproduces yunmin to {emu_y:.1e}"
        )
        worst, n_diff, n_all, at, emu_mk, emu_y = ties(0.5, [0.7, -0.3], "ties_neg")
        lines.append(
            f"density 0.5, weights 0.7/-0.3 (mergekit divides by Σw, yunmin by Σ|w|): {n_diff}/{n_all} entries differ, "
            f"max|Δ| {worst:.2e}; mergekit's formula with Σ|w| reproduces yunmin to {emu_y:.1e}"
        )
        return "\n    ".join(lines)

    rep.case("mergekit", "ties_difference", ties_documented)


# ---------------------------------------------------------------------------------------------
# bf16 end to end


def group_bf16(y, rep, root):
    def e2e():
        base = make_checkpoint(os.path.join(root, "base"), dtype=torch.bfloat16, num_key_value_heads=2, seed=31)
        r = os.path.join(root, "run")
        os.makedirs(r)
        corpus(os.path.join(r, "law.jsonl"), docs=30, a=5, b=2, vocab=VOCAB)
        y.ok("train", "lora", "--base", base, "--tokens", "law.jsonl", "--steps", "6", "--batch", "4",
             "--seq-len", "16", "--rank", "4", "--alpha", "8", "--lr", "0.02", cwd=r)
        adapter = os.path.join(r, "models", "lora_law")
        merged = yunmin_merge(y, base, [adapter], [1], r)
        hf = hf_load(merged)
        ps = prompts(VOCAB, seed=9, lengths=(6, 30))
        worst = compare_logits(y, merged, hf, ps)
        gap = compare_greedy(y, merged, hf, ps[1])
        moved = float((hf_logits(hf, ps[1]) - hf_logits(hf_load(base), ps[1])).abs().max())
        check(moved > 1e-3, f"harness: the merged model equals the base (logits moved {moved:.2e})")
        with open(os.path.join(merged, "config.json")) as f:
            cfg = json.load(f)
        return (
            f"base {stored_dtypes(base)} → merged {stored_dtypes(merged)} (config dtype {cfg.get('dtype', cfg.get('torch_dtype'))}); "
            f"merge moved logits by {moved:.2e}; transformers vs yunmin logits max|Δ| {worst:.2e}; "
            f"{GREEDY_TOKENS} greedy tokens equal (min gap {gap:.2e})"
        )

    rep.case("bf16", "base_lora_diff_merge", e2e)


GROUPS = {
    "checkpoints": group_checkpoints,
    "saved": group_saved,
    "peft": group_peft,
    "mergekit": group_mergekit,
    "bf16": group_bf16,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("groups", nargs="+", choices=[*GROUPS, "all"])
    ap.add_argument("--yunmin", default="target/debug/yunmin", help="the yunmin binary")
    ap.add_argument("--only", default="", help="comma-separated case names to run")
    ap.add_argument("--keep", default=None, help="make the fixtures here and keep them")
    a = ap.parse_args()
    y = Yunmin(os.path.abspath(a.yunmin))
    if not os.path.exists(y.path):
        sys.exit(f"{y.path} does not exist: build it with `cargo build -p yunmin`")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, yunmin {y.path}", flush=True)
    rep = Report(set(filter(None, a.only.split(","))))
    groups = list(GROUPS) if "all" in a.groups else a.groups
    for g in groups:
        t0 = time.time()
        if a.keep:
            root = os.path.join(os.path.abspath(a.keep), g)
            shutil.rmtree(root, ignore_errors=True)
            os.makedirs(root)
            GROUPS[g](y, rep, root)
        else:
            with tempfile.TemporaryDirectory(prefix=f"hf-{g}-") as root:
                GROUPS[g](y, rep, root)
        print(f"group {g}: {time.time() - t0:.1f}s", flush=True)
    shutil.rmtree(y.tmp, ignore_errors=True)
    sys.exit(0 if rep.summary() else 1)


if __name__ == "__main__":
    main()
