"""datasketch peer of `yunmin bench dedup-stages`: the same documents, the same shingles
(NFKC + lowercase + punctuation removal; jamo 3-grams of the space-free NFD text plus word
5-grams, one union set), 128 permutations, threshold 0.8, single-threaded.

Prints one JSON object per measurement: {task, docs, threads, seconds, docs_per_s, removed}.
"""
import argparse, json, re, sys, time, unicodedata
from datasketch import MinHash, MinHashLSH

PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def normalize(t):
    t = unicodedata.normalize("NFKC", t).lower()
    return " ".join(PUNCT.sub(" ", t).split())


def shingles(text):
    n = normalize(text)
    stream = unicodedata.normalize("NFD", n.replace(" ", ""))
    jamo = {stream[i:i + 3] for i in range(len(stream) - 2)} or {stream}
    words = n.split(" ")
    word = {" ".join(words[i:i + 5]) for i in range(len(words) - 4)} or {n}
    return {"j" + s for s in jamo} | {"w" + s for s in word}


def sign(sh, perms):
    m = MinHash(num_perm=perms)
    m.update_batch([s.encode("utf-8") for s in sh])
    return m


def dedup(docs, perms, threshold, storage=None):
    kw = {"storage_config": storage} if storage else {}
    lsh = MinHashLSH(threshold=threshold, num_perm=perms, **kw)
    sets, sigs = [], []
    for d in docs:
        s = shingles(d["text"])
        sets.append(s)
        sigs.append(sign(s, perms))
    with lsh.insertion_session() as sess:
        for i, m in enumerate(sigs):
            sess.insert(str(i), m)
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
    removed = sum(1 for i in range(len(docs)) if find(i) != i)
    return removed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--perms", type=int, default=128)
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--redis", help="redis://host:port: only the Redis-storage dedup")
    a = ap.parse_args()
    docs = [json.loads(l) for l in open(a.input, encoding="utf-8") if l.strip()]
    n = len(docs)

    def emit(task, secs, removed=0):
        print(json.dumps({"task": task, "docs": n, "threads": 1, "seconds": secs,
                          "docs_per_s": n / max(secs, 1e-9), "removed": removed}), flush=True)

    if a.redis:
        m = re.match(r"redis://([^:/]+):(\d+)", a.redis)
        storage = {"type": "redis", "basename": b"dsbench", "redis": {"host": m.group(1), "port": int(m.group(2))}}
        t = time.perf_counter()
        removed = dedup(docs, a.perms, a.threshold, storage)
        emit("dedup_redis", time.perf_counter() - t, removed)
        import redis
        r = redis.Redis(host=m.group(1), port=int(m.group(2)))
        for k in r.scan_iter(b"dsbench*"):
            r.delete(k)
        return
    t = time.perf_counter()
    for d in docs:
        sign(shingles(d["text"]), a.perms)
    emit("shingles+signatures", time.perf_counter() - t)
    t = time.perf_counter()
    removed = dedup(docs, a.perms, a.threshold)
    emit("dedup", time.perf_counter() - t, removed)


if __name__ == "__main__":
    sys.exit(main())
