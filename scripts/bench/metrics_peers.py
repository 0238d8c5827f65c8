"""Peers of `yunmin bench metrics`: reads hypotheses and references (JSON arrays), times
sacreBLEU corpus BLEU (13a, char) and rouge-score (whitespace tokenizer object,
rouge1/2/L/Lsum), prints one JSON line.

usage: metrics_peers.py HYPS.json REFS.json
"""
import json, sys, time
import sacrebleu
from rouge_score import rouge_scorer
hyps = json.load(open(sys.argv[1], encoding="utf-8"))
refs = json.load(open(sys.argv[2], encoding="utf-8"))
out = {"sacrebleu": sacrebleu.__version__}
for tok in ["13a", "char"]:
    t = time.perf_counter()
    s = sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok)
    out["bleu_" + tok] = {"seconds": time.perf_counter() - t, "score": s.score}
class Whitespace:
    def tokenize(self, text):
        return text.split()
types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
scorer = rouge_scorer.RougeScorer(types, tokenizer=Whitespace())
t = time.perf_counter()
scores = [scorer.score(r, h) for h, r in zip(hyps, refs)]
dt = time.perf_counter() - t
out["rouge_whitespace"] = {"seconds": dt, "score": {k: sum(s[k].fmeasure for s in scores) / len(scores) for k in types}}
print(json.dumps(out))
