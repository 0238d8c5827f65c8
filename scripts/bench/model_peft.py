"""Peer of `yunmin bench train` and `yunmin bench eval`: PyTorch + transformers (+ PEFT for
training) on the same Hugging Face checkpoint, token file and settings as yunmin.

Windows are cut as yunmin cuts them: every document's ids followed by EOS, concatenated, split
into windows of seq_len + 1 tokens (inputs are the first seq_len, targets the last seq_len).

- train: LoRA (r, alpha, dropout) on all seven projections, AdamW (betas 0.9/0.999, eps 1e-8, no
  weight decay), gradient norm clipped to 1.0, linear warmup then cosine; `--steps` steps of
  `--batch` windows.
- eval: summed next-token NLL of `--windows` windows in batches of `--batch`, in inference mode.
- generate: greedy `generate` with the KV cache of `--new-tokens` tokens (EOS suppressed) after
  each of `--prompts` prompts (the first `--prompt-len` tokens of the first windows), one at a
  time; the outputs are printed for yunmin to compare.
- init: writes a random-init checkpoint of `--shape` (`pipeline`: the pipeline's base, 4 layers,
  hidden 128, 4/2 heads, SwiGLU 384, vocabulary 1,900; `reference`: the reference run's base,
  4 layers, hidden 192, 6/2 heads, SwiGLU 512, vocabulary 4,000; `135m`: 30 layers, hidden 576,
  9/3 heads, SwiGLU 1,536, vocabulary 49,152, tied embeddings) to `--base` and 400 seeded
  random documents to `--tokens`.

Prints one JSON object: {mode, threads, tokens, seconds (the loop alone, after loading), tokens_per_s,
loss}.
"""
import argparse, json, math, time

import torch


def windows(path, seq_len, eos):
    ids = []
    with open(path) as f:
        text = f.read().strip()
    docs = json.loads(text) if text.startswith("[[") else [json.loads(l) for l in text.splitlines() if l.strip()]
    for d in docs:
        if isinstance(d, dict):
            d = d["tokens"]
        ids.extend(d)
        ids.append(eos)
    n = len(ids) // (seq_len + 1)
    return torch.tensor(ids[: n * (seq_len + 1)], dtype=torch.long).view(n, seq_len + 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["train", "eval", "generate", "init"], required=True)
    ap.add_argument("--shape", choices=["pipeline", "reference", "135m"], default="pipeline")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--base", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--windows", type=int, default=0, help="eval: windows scored (0: all)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--dropout", type=float, default=0.05)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from transformers import AutoModelForCausalLM

    if a.mode == "init":
        import random
        from transformers import LlamaConfig, LlamaForCausalLM

        if a.shape == "135m":
            cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                              num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                              tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-5,
                              rope_theta=10000.0)
        elif a.shape == "reference":
            cfg = LlamaConfig(vocab_size=4000, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                              num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512,
                              tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6)
        else:
            cfg = LlamaConfig(vocab_size=1900, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                              tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6)
        LlamaForCausalLM(cfg).save_pretrained(a.base, safe_serialization=True)
        rng = random.Random(a.seed)
        with open(a.tokens, "w") as f:
            for _ in range(400):
                f.write(json.dumps([rng.randint(3, cfg.vocab_size - 1) for _ in range(rng.randint(100, 600))]) + "\n")
        return

    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32)
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    w = windows(a.tokens, a.seq_len, eos)
    if a.mode == "eval":
        model.eval()
        n = len(w) if a.windows == 0 else min(a.windows, len(w))
        nll, count = 0.0, 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, n, a.batch):
                x = w[i : min(i + a.batch, n)]
                logits = model(input_ids=x[:, :-1]).logits
                nll += torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"
                ).item()
                count += x[:, 1:].numel()
        secs = time.perf_counter() - t0
        print(json.dumps({"mode": "eval", "threads": a.threads, "tokens": count, "seconds": secs,
                          "tokens_per_s": count / secs, "loss": nll / count}))
        return
    if a.mode == "generate":
        model.eval()
        prompts = [w[i, : a.prompt_len].unsqueeze(0) for i in range(min(a.prompts, len(w)))]
        outputs, made = [], 0
        t0 = time.perf_counter()
        with torch.inference_mode():
            for p in prompts:
                out = model.generate(input_ids=p, attention_mask=torch.ones_like(p), do_sample=False,
                                     max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens,
                                     pad_token_id=eos, use_cache=True)
                new = out[0, p.shape[1]:].tolist()
                outputs.append(new)
                made += len(new)
        secs = time.perf_counter() - t0
        print(json.dumps({"mode": "generate", "threads": a.threads, "tokens": made, "seconds": secs,
                          "tokens_per_s": made / secs, "outputs": outputs}))
        return
    from peft import LoraConfig, get_peft_model

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=a.dropout,
                                             target_modules=targets, task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def lr_at(step):
        if step < a.warmup:
            return (step + 1) / a.warmup
        p = (step - a.warmup) / max(1, a.steps - a.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    g = torch.Generator().manual_seed(a.seed)
    order = torch.randperm(len(w), generator=g)
    tokens, loss_v = 0, float("nan")
    t0 = time.perf_counter()
    for step in range(a.steps):
        idx = [order[(step * a.batch + k) % len(w)].item() for k in range(a.batch)]
        x = w[idx]
        out = model(input_ids=x[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            out.logits.reshape(-1, out.logits.shape[-1]), x[:, 1:].reshape(-1)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        loss_v = loss.item()
        tokens += x[:, 1:].numel()
    secs = time.perf_counter() - t0
    print(json.dumps({"mode": "train", "threads": a.threads, "tokens": tokens, "seconds": secs,
                      "tokens_per_s": tokens / secs, "loss": loss_v}))


if __name__ == "__main__":
    main()
