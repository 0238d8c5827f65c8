#!/usr/bin/env python3
"""Measures the Ray dedup driver for 1, 2 and 4 shards on corpora served over S3.

    measure_scale_out.py --yunmin target/fast/yunmin --s3-server target/debug/s3-server \
        [--corpora ../shared/data/corpora] [--lines 3000] [--shards 1 2 4]

Starts, in a temporary directory, the S3 test server (`cargo build -p yunmin-tests --bin
s3-server`) with the first --lines lines of every corpus as one bucket, a redis-server and a
Ray head on 127.0.0.1, then runs one `yunmin dedup` process (the reference) and the driver
for each shard count, checking every result against the reference. Prints a Markdown table:
wall time per phase, Redis commands per document (INFO commandstats) and bytes through S3
(objects read plus objects written).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True
    ).stdout


def redis_calls(port: int) -> int:
    total = 0
    for line in redis_cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_") and not line.startswith(("cmdstat_info", "cmdstat_config")):
            total += int(line.split("calls=")[1].split(",")[0])
    return total


def tree_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--yunmin", required=True)
    ap.add_argument("--s3-server", required=True)
    ap.add_argument("--corpora", default=str(HERE.parents[1] / "../shared/data/corpora"))
    ap.add_argument("--lines", type=int, default=3000, help="lines taken from each corpus")
    ap.add_argument("--shard-docs", type=int, default=2000)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    a = ap.parse_args()
    yunmin = str(Path(a.yunmin).resolve())
    tmp = Path(tempfile.mkdtemp(prefix="yso", dir="/tmp"))
    procs: list[subprocess.Popen] = []
    tag = f"measure-{os.getpid()}"
    try:
        bucket = tmp / "corpora"
        bucket.mkdir()
        for f in sorted(Path(a.corpora).glob("*.jsonl.zst")):
            out = bucket / f.name.removesuffix(".zst")
            with open(out, "wb") as w:
                z = subprocess.Popen(["zstd", "-dc", str(f)], stdout=subprocess.PIPE)
                for i, line in enumerate(z.stdout):
                    if i >= a.lines:
                        break
                    w.write(line)
                z.kill()
                z.wait()
        read_bytes = tree_bytes(bucket)
        (tmp / "results").mkdir()
        s3 = subprocess.Popen(
            [a.s3_server, "--bucket", f"corpora={bucket}", "--bucket", f"results={tmp / 'results'}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(s3)
        endpoint = s3.stdout.readline().split()[1]
        rport = free_port()
        procs.append(
            subprocess.Popen(
                ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )
        time.sleep(0.5)
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID="yunmin-test-access",
            AWS_SECRET_ACCESS_KEY="yunmin-test-secret",
            AWS_REGION="us-east-1",
            YUNMIN_BIN=yunmin,
            NO_COLOR="1",
        )
        hport = free_port()
        ray = str(Path(sys.executable).parent / "ray")
        subprocess.run(
            [ray, "start", "--head", "--num-cpus", str(os.cpu_count()), "--port", str(hport),
             "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
             "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()),
             "--dashboard-agent-listen-port", str(free_port()),
             "--disable-usage-stats", "--temp-dir", str(tmp / "ray")],
            check=True, capture_output=True, env=dict(env, YUNMIN_MEASURE_HEAD=tag),
        )
        env["RAY_ADDRESS"] = f"127.0.0.1:{hport}"

        t = time.time()
        subprocess.run(
            [yunmin, "dedup", "--input", "s3://corpora/", "--endpoint-url", endpoint,
             "--out", str(tmp / "single")],
            check=True, capture_output=True, text=True, env=env,
        )
        single_s = time.time() - t
        docs = json.loads((tmp / "single/ingest/data/dedup_ready/dataset.json").read_text())["documents"]
        kept = lambda p: b"".join(f.read_bytes() for f in sorted(p.glob("*.jsonl")))  # noqa: E731
        ref_kept = kept(tmp / "single/data/deduped")
        ref_cands = (tmp / "single/candidates.json").read_bytes()
        rows = [
            f"| 1 process, memory index (no Ray) | {single_s:.1f} | – | – | – | – | – | – | "
            f"{read_bytes / 1e6:.1f} MB read |"
        ]
        for n in a.shards:
            redis_cli(rport, "FLUSHALL")
            redis_cli(rport, "CONFIG", "RESETSTAT")
            stats = tmp / f"stats-{n}.json"
            t = time.time()
            subprocess.run(
                [sys.executable, str(HERE / "yunmin_ray.py"), "dedup", "--input", "s3://corpora/",
                 "--endpoint-url", endpoint, "--out", f"s3://results/run{n}/", "--work",
                 str(tmp / f"work{n}"), "--shards", str(n), "--shard-docs", str(a.shard_docs),
                 "--index", f"redis://127.0.0.1:{rport}/0", "--stats", str(stats)],
                check=True, capture_output=True, text=True, env=env,
            )
            wall = time.time() - t
            out = tmp / "results" / f"run{n}"
            assert kept(out / "data/deduped") == ref_kept, f"{n} shards: kept documents differ"
            assert (out / "candidates.json").read_bytes() == ref_cands, f"{n} shards: candidates differ"
            s = json.loads(stats.read_text())["seconds"]
            ops = redis_calls(rport) / docs
            written = tree_bytes(out)
            rows.append(
                f"| {n} | {wall:.1f} | {s.get('ingest', 0):.1f} | {s['index']:.1f} | {s['verify']:.1f} | "
                f"{s['merge']:.1f} | {s['write'] + s['gather']:.1f} | {ops:.1f} | "
                f"{(read_bytes + written) / 1e6:.1f} MB ({read_bytes / 1e6:.1f} read + {written / 1e6:.1f} written) |"
            )
        print(f"{docs} documents ({a.lines} lines of each corpus), {os.cpu_count()} cores; every run's "
              "kept documents and candidates.json equal the one-process run's.\n")
        print("| shards | wall s | ingest s | index s | verify s | merge s | write+gather s | Redis commands / doc | bytes through S3 |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        return 0
    finally:
        want = f"YUNMIN_MEASURE_HEAD={tag}".encode()
        for p in Path("/proc").iterdir():
            if p.name.isdigit() and int(p.name) != os.getpid():
                try:
                    if want in (p / "environ").read_bytes().split(b"\0"):
                        os.kill(int(p.name), 9)
                except OSError:
                    pass
        for p in procs:
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
