"""Peers of `yunmin bench dedup`: datasketch (pure Python MinHash) or rensa (Rust MinHash) on the
same documents with the same shingles as yunmin's default — NFKC + lowercase + punctuation to
spaces, jamo 3-grams of the space-free NFD text (the whole stream when shorter) — 128
permutations, threshold 0.8, one thread. Both do the whole dedup: shingles, signatures, LSH,
exact Jaccard of every candidate pair on the shingle sets, union-find.

Prints one JSON object: {tool, docs, seconds (after loading the documents), removed}.
"""
import argparse, json, re, sys, time, unicodedata

PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def shingles(text):
    n = " ".join(PUNCT.sub(" ", unicodedata.normalize("NFKC", text).lower()).split())
    stream = unicodedata.normalize("NFD", n.replace(" ", ""))
    return {stream[i:i + 3] for i in range(len(stream) - 2)} or {stream}


def signer(tool, perms):
    if tool == "datasketch":
        from datasketch import MinHash

        def sign(sh):
            m = MinHash(num_perm=perms)
            m.update_batch([s.encode("utf-8") for s in sh])
            return m
    else:
        from rensa import RMinHash

        def sign(sh):
            m = RMinHash(num_perm=perms, seed=42)
            m.update(list(sh))
            return m
    return sign


def index(tool, perms, threshold):
    if tool == "datasketch":
        from datasketch import MinHashLSH
        return MinHashLSH(threshold=threshold, num_perm=perms)
    from rensa import RMinHashLSH
    return RMinHashLSH(threshold=threshold, num_perm=perms, num_bands=16)


def dedup(tool, docs, perms, threshold):
    sign = signer(tool, perms)
    sets = [shingles(d["text"]) for d in docs]
    sigs = [sign(s) for s in sets]
    lsh = index(tool, perms, threshold)
    for i, m in enumerate(sigs):
        lsh.insert(str(i) if tool == "datasketch" else i, m)
    parent = list(range(len(docs)))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(sigs):
        for k in lsh.query(m):
            j = int(k)
            if j <= i:
                continue
            a, b = sets[i], sets[j]
            if len(a & b) / len(a | b) >= threshold:
                ra, rb = find(i), find(j)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    return sum(1 for i in range(len(docs)) if find(i) != i)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", choices=["datasketch", "rensa"], required=True)
    ap.add_argument("--input", required=True, help="JSONL with a `text` field per line")
    ap.add_argument("--perms", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.8)
    a = ap.parse_args()
    docs = [json.loads(l) for l in open(a.input, encoding="utf-8") if l.strip()]
    t = time.perf_counter()
    removed = dedup(a.tool, docs, a.perms, a.threshold)
    print(json.dumps({"tool": a.tool, "docs": len(docs),
                      "seconds": time.perf_counter() - t, "removed": removed}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
