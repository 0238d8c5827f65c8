"""pyarrow peer of `yunmin bench ingest`: reads the same columns of the same Parquet files in
batches of the same size, in a fresh process; prints rows, seconds and peak RSS as one JSON line.

usage: ingest_pyarrow.py COLUMNS_JSON BATCH_ROWS FILE...   (COLUMNS_JSON `null`: every column)
"""
import json
import sys
import time

import pyarrow.parquet as pq

cols = json.loads(sys.argv[1])
batch = int(sys.argv[2])
files = sys.argv[3:]
t = time.perf_counter()
rows = 0
for f in files:
    pf = pq.ParquetFile(f)
    have = set(pf.schema_arrow.names)
    use = None if cols is None else [c for c in cols if c in have]
    for b in pf.iter_batches(batch_size=batch, columns=use):
        rows += b.num_rows
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t,
                  "peak_rss_mb": int(hwm.split()[1]) / 1024}))
