"""Peers of `yunmin bench parquet`: pyarrow converting the same JSONL to Parquet at the same
codecs (`convert OUT TEXT_CODEC TEXT_LEVEL OTHER_CODEC OTHER_LEVEL FILE...`), and pyarrow or
polars reading the `tokens` column of the same Parquet files (`pyarrow|polars FILE...`).
Prints docs, tokens, seconds, bytes written and peak RSS as one JSON line.
"""
import json, os, sys, time
mode = sys.argv[1]
docs = tokens = out_bytes = 0
# Each mode starts its clock after its imports: the work is timed, not the interpreter's start.
if mode == "convert":
    import pyarrow as pa, pyarrow.json as pj, pyarrow.parquet as pq
    t0 = time.perf_counter()
    out, tc, tl, oc, ol = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("domain", pa.string()), ("source", pa.string())])
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    cols = ["id", "text", "domain", "source"]
    comp = {c: (tc if c == "text" else oc) for c in cols}
    lvl = {c: (tl if c == "text" else ol) for c in cols if (tl if c == "text" else ol) != "-"}
    lvl = {c: int(v) for c, v in lvl.items()}
    for i, f in enumerate(sys.argv[7:]):
        # the default 1 MiB block cannot hold the corpora's largest document (2.4 MB)
        t = pj.read_json(f, read_options=pj.ReadOptions(block_size=32 << 20), parse_options=opts)
        docs += t.num_rows
        p = os.path.join(out, "%d.parquet" % i)
        pq.write_table(t, p, compression=comp, compression_level=lvl or None,
                       use_dictionary=["domain", "source"], write_statistics=True)
        out_bytes += os.path.getsize(p)
        del t
elif mode == "pyarrow":
    import pyarrow.compute as pc, pyarrow.parquet as pq
    t0 = time.perf_counter()
    for f in sys.argv[2:]:
        t = pq.read_table(f, columns=["tokens"])
        docs += t.num_rows
        tokens += pc.sum(pc.list_value_length(t["tokens"])).as_py() or 0
elif mode == "polars":
    import polars as pl
    t0 = time.perf_counter()
    for f in sys.argv[2:]:
        df = pl.read_parquet(f, columns=["tokens"])
        docs += df.height
        tokens += int(df["tokens"].list.len().sum() or 0)
secs = time.perf_counter() - t0
# VmHWM (not ru_maxrss, which a child inherits from its parent across fork + exec)
rss = 0.0
with open("/proc/self/status") as st:
    for line in st:
        if line.startswith("VmHWM:"):
            rss = int(line.split()[1]) / 1024.0
print(json.dumps({"docs": docs, "tokens": tokens, "seconds": secs, "bytes_out": out_bytes, "peak_rss_mb": rss}))
