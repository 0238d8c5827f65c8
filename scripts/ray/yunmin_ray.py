#!/usr/bin/env python3
"""Runs yunmin's parallel phases as Ray tasks; every task is a `yunmin` process.

    yunmin_ray.py dedup --input PATH|s3://… --out DIR|s3://… --shards N --index redis://HOST:PORT/DB
                        [--work DIR] [--endpoint-url URL] [--yunmin PATH] [-- EXTRA DEDUP ARGS]
    yunmin_ray.py tasks --spec FILE --work DIR [--yunmin PATH]
    yunmin_ray.py pipeline [--script FILE] [--out DIR] [--set k=v]… [--yunmin PATH]

`pipeline` runs `yunmin run scripts/pipeline.rhai --set engine=ray …` in this process; the
script hands its dedup phases to the cluster through `dedup` below, and its LoRA adapters
(`train_adapters`: one `yunmin train lora` task per adapter) and evaluation (`evaluate`: one
`yunmin metrics evaluate` task per model) through `tasks` (see docs/scale-out.md).

Connects to the cluster in RAY_ADDRESS (else starts a local one) and runs:

    ingest × N (part i/N of the input objects, when the input is not a dataset directory)
    → ingest-gather (one task: joins the parts in input order; links, no copies)
    → index × N (signs shard i/N of the dataset's files, inserts into the shared Redis index)
    → verify × N (part i/N of the candidate pairs: query, exact similarity where needed)
    → merge (one task: clusters, candidates.json, clusters.jsonl, dedup_log.csv)
    → write × N (kept documents of a contiguous range of files)
    → gather (one task: joins the parts into data/deduped; renames only)

Tasks share the work directory (the output directory itself, or --work when the output is
s3://; on a multi-machine cluster it must be a directory every worker mounts). Inputs may be
s3:// prefixes; an s3:// output receives the reports and the kept dataset, large files by
multipart upload completed last. Every yunmin output is written under a temporary name and
renamed when complete, so a task Ray retries after its worker died starts clean and nothing
half-written is visible. The results equal one `yunmin dedup` process on the same input.

Environment: RAY_ADDRESS (cluster), YUNMIN_BIN (the yunmin binary), AWS_* (S3 credentials).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="yunmin_ray.py", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dedup", help="the dedup phases as Ray tasks", allow_abbrev=False)
    d.add_argument("--input", required=True, action="append", help="dataset dir, files or s3:// prefix")
    d.add_argument("--out", required=True, help="output directory or s3://bucket/prefix/")
    d.add_argument("--shards", type=int, required=True, help="tasks per parallel phase")
    d.add_argument("--index", required=True, help="redis://host:port/db (shared by every task)")
    d.add_argument("--work", help="shared work directory (required when --out is s3://)")
    d.add_argument("--endpoint-url", help="S3-compatible endpoint (path-style)")
    d.add_argument("--yunmin", help="yunmin binary (default: $YUNMIN_BIN, else yunmin on PATH)")
    d.add_argument(
        "--shard-docs", type=int, help="documents per ingested file (the unit index tasks split)"
    )
    d.add_argument("--max-retries", type=int, default=3, help="Ray retries of a failed task")
    d.add_argument("--part-kib", type=int, help="multipart part size for the upload (KiB)")
    d.add_argument("--multipart-threshold-mib", type=int, help="multipart threshold (MiB)")
    d.add_argument("--stats", help="write per-phase wall times as JSON here")
    d.add_argument(
        "--kill-once",
        action="append",
        default=[],
        metavar="PHASE:I",
        help="(fault test) SIGKILL the yunmin process of task PHASE i on its first attempt "
        "once it has started writing, then let the worker die",
    )
    d.add_argument("extra", nargs="*", help="more `yunmin dedup` options, after --")
    t = sub.add_parser(
        "tasks",
        help="independent yunmin invocations, one Ray task each (what scripts hand over)",
        allow_abbrev=False,
    )
    t.add_argument(
        "--spec",
        required=True,
        help='JSON {"tasks": [{"name", "args", "started", "output"}]}: the arguments after yunmin, '
        "a file that appears once the task has started its work, and its output",
    )
    t.add_argument("--work", required=True, help="shared directory (the run root)")
    t.add_argument("--yunmin", help="yunmin binary (default: $YUNMIN_BIN, else yunmin on PATH)")
    t.add_argument("--max-retries", type=int, default=3, help="Ray retries of a failed task")
    pl = sub.add_parser(
        "pipeline", help="scripts/pipeline.rhai with engine=ray", allow_abbrev=False
    )
    pl.add_argument("--script", default="scripts/pipeline.rhai", help="the Rhai script to run")
    pl.add_argument("--out", help="run root (default: yunmin run's default)")
    pl.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="script parameter; repeatable"
    )
    pl.add_argument("--yunmin", help="yunmin binary (default: $YUNMIN_BIN, else yunmin on PATH)")
    pl.add_argument("--force", action="store_true", help="redo every stage")
    args = p.parse_args(argv)
    if args.command == "tasks":
        return args
    if args.command == "pipeline":
        for kv in args.set:
            if "=" not in kv:
                p.error(f"--set {kv}: expected KEY=VALUE")
            if kv.split("=", 1)[0] == "engine" and kv != "engine=ray":
                p.error(f"--set {kv}: the pipeline subcommand runs with engine=ray")
        return args
    if args.shards < 1:
        p.error(f"--shards {args.shards}: must be ≥ 1")
    if not args.index.startswith("redis://"):
        p.error(f"--index {args.index}: the tasks share the index, so it must be redis://HOST:PORT/DB")
    if args.out.startswith("s3://") and not args.work:
        p.error("--out is s3://: give --work, a directory every worker shares")
    return args


def yunmin_binary(explicit: str | None) -> str:
    b = explicit or os.environ.get("YUNMIN_BIN") or shutil.which("yunmin")
    if not b:
        sys.exit("no yunmin binary: pass --yunmin or set YUNMIN_BIN")
    return os.path.abspath(b)


def check_reachable(address: str | None) -> None:
    """Exits with a clear message when RAY_ADDRESS=HOST:PORT has no listener."""
    if address and ":" in address and "://" not in address:
        # ray.init waits minutes on an address nobody listens on; fail fast instead.
        host, port = address.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except (OSError, ValueError) as e:
            sys.exit(f"cannot reach the Ray cluster at RAY_ADDRESS={address}: {e}")


def connect():
    import ray

    address = os.environ.get("RAY_ADDRESS")
    check_reachable(address)
    # Workers inherit the environment of the process that started their node, not the
    # driver's: hand them the S3 credentials and logging settings explicitly.
    passed = ("RUST_LOG", "NO_COLOR", "RAYON_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k in passed}
    try:
        ray.init(address=address or None, log_to_driver=False, runtime_env={"env_vars": env})
    except Exception as e:  # noqa: BLE001 - reported with the address, then exit
        sys.exit(f"cannot reach the Ray cluster at {address or '(local)'}: {e}")
    return ray


def make_task(ray, max_retries: int):
    @ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=True)
    def run_yunmin(binary: str, args: list[str], kill: dict | None) -> dict:
        """Runs one yunmin process; raises (so Ray retries) when it fails."""
        t = time.time()
        proc = subprocess.Popen(
            [binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if kill and not os.path.exists(kill["marker"]):
            # Fault test: wait until the task has started writing its output (a temporary
            # sibling appears), kill yunmin there, and let this worker process die.
            watch, prefix = Path(kill["watch"]), kill["prefix"]
            deadline = time.time() + 60
            while proc.poll() is None and time.time() < deadline:
                if watch.is_dir() and any(n.name.startswith(prefix) for n in watch.iterdir()):
                    break
                time.sleep(0.001)
            killed_running = proc.poll() is None
            if killed_running:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            note = "killed while running\n" if killed_running else "finished first\n"
            if kill.get("output"):
                # What the killed task left where its output goes.
                note += "output present\n" if os.path.exists(kill["output"]) else "output absent\n"
            Path(kill["marker"]).write_text(note)
            os._exit(1)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(
                f"yunmin {' '.join(args[:1])} exited with {proc.returncode}:\n{err[-4000:]}"
            )
        return {"args": args, "seconds": time.time() - t, "stdout": out}

    return run_yunmin


def is_dataset_dir(p: str) -> bool:
    return not p.startswith("s3://") and (Path(p) / "dataset.json").is_file()


def dedup(args: argparse.Namespace) -> int:
    binary = yunmin_binary(args.yunmin)
    s3_out = args.out.startswith("s3://")
    work = Path(args.work if s3_out else args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ray = connect()
    task = make_task(ray, args.max_retries)
    n = args.shards
    kills = {tuple(k.split(":", 1)) for k in args.kill_once}
    s3 = ["--endpoint-url", args.endpoint_url] if args.endpoint_url else []
    times: dict[str, float] = {}

    def kill_for(phase: str, i: int):
        if (phase, str(i)) not in kills:
            return None
        # Where each phase's task i writes its temporary sibling before the rename.
        part = f"{i:04}-of-{n:04}"
        watch, prefix = {
            "index": (work / "dedup/signatures", f".shard-{part}.bin.tmp"),
            "verify": (work / "dedup/verify", f".part-{part}.json.tmp"),
            "write": (work / "dedup/kept", f".part-{part}.tmp"),
        }.get(phase, (work, "."))
        return {"marker": str(work / f".killed-{phase}-{i}"), "watch": str(watch), "prefix": prefix}

    def run(phase: str, calls: list[list[str]]):
        t = time.time()
        refs = [task.remote(binary, c, kill_for(phase, i)) for i, c in enumerate(calls)]
        try:
            res = ray.get(refs)
        except Exception as e:  # noqa: BLE001 - the task's own message names the failure
            sys.exit(f"{phase} failed after {args.max_retries} retries: {e}")
        times[phase] = time.time() - t
        for r in res:
            last = r["stdout"].strip().splitlines()
            print(f"[{phase} {r['seconds']:.2f}s] {last[-1] if last else ''}", flush=True)
        return res

    t0 = time.time()
    if len(args.input) == 1 and is_dataset_dir(args.input[0]):
        dataset = str(Path(args.input[0]).resolve())
    else:
        ingest_root = work / "ingest"
        call = ["ingest", "--out", str(ingest_root), "--work", str(ingest_root), *s3]
        if args.shard_docs:
            call += ["--shard-docs", str(args.shard_docs)]
        for i in args.input:
            call += ["--input", i]
        # One task per part of the input objects, then one joining them in input order.
        run("ingest", [call + ["--part", f"{i}/{n}"] for i in range(n)])
        run("ingest-gather", [call + ["--gather", str(n)]])
        dataset = str(ingest_root / "data/dedup_ready")

    base = ["dedup", "--input", dataset, "--out", str(work), "--index", args.index, *args.extra]
    upload: list[str] = []
    if s3_out:
        upload = ["--upload", args.out, *s3]
        if args.part_kib:
            upload += ["--part-kib", str(args.part_kib)]
        if args.multipart_threshold_mib is not None:
            upload += ["--multipart-threshold-mib", str(args.multipart_threshold_mib)]
    shard = lambda i: ["--shard", f"{i}/{n}"]  # noqa: E731
    run("index", [base + ["--phase", "index", *shard(i)] for i in range(n)])
    run("verify", [base + ["--phase", "verify", *shard(i)] for i in range(n)])
    run("merge", [base + ["--phase", "merge", *upload]])
    run("write", [base + ["--phase", "write", *shard(i)] for i in range(n)])
    run("gather", [base + ["--phase", "gather", *upload]])
    times["total"] = time.time() - t0
    print("phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items()), flush=True)
    if args.stats:
        Path(args.stats).write_text(json.dumps({"shards": n, "seconds": times}, indent=2) + "\n")
    return 0


def tasks(args: argparse.Namespace) -> int:
    """Runs every invocation of the spec as its own Ray task and waits for all of them.

    Each writes its outputs under temporary names and renames them when complete, so a task
    Ray retries after its worker died starts clean. YUNMIN_RAY_KILL_ONCE=NAME[,NAME…] (fault
    test) SIGKILLs the named tasks' yunmin once their `started` file appears, on the first
    attempt, and lets the worker die.
    """
    binary = yunmin_binary(args.yunmin)
    spec = json.loads(Path(args.spec).read_text())["tasks"]
    work = Path(args.work).resolve()
    ray = connect()
    task = make_task(ray, args.max_retries)
    kills = {k for k in os.environ.get("YUNMIN_RAY_KILL_ONCE", "").split(",") if k}

    def kill_for(t: dict):
        if t["name"] not in kills:
            return None
        started = Path(t["started"])
        return {
            "marker": str(work / f".killed-{t['name']}"),
            "watch": str(started.parent),
            "prefix": started.name,
            "output": t.get("output"),
        }

    t0 = time.time()
    refs = [task.remote(binary, t["args"], kill_for(t)) for t in spec]
    failed = []
    for t, ref in zip(spec, refs):
        try:
            r = ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the task's own message names the failure
            failed.append(f"{t['name']}: {e}")
            continue
        last = r["stdout"].strip().splitlines()
        print(f"[{t['name']} {r['seconds']:.2f}s] {last[-1] if last else ''}", flush=True)
    if failed:
        sys.exit(f"failed after {args.max_retries} retries:\n" + "\n".join(failed))
    print(f"{len(spec)} tasks in {time.time() - t0:.2f}s", flush=True)
    return 0


def pipeline(args: argparse.Namespace) -> int:
    """Runs the script with engine=ray; its dedup calls this driver's `dedup` per phase."""
    binary = yunmin_binary(args.yunmin)
    check_reachable(os.environ.get("RAY_ADDRESS"))
    call = [binary, "run", args.script, "--set", "engine=ray"]
    call += [x for kv in args.set if not kv.startswith("engine=") for x in ("--set", kv)]
    if args.out:
        call += ["--out", args.out]
    if args.force:
        call.append("--force")
    env = dict(os.environ)
    env.setdefault("YUNMIN_RAY_DRIVER", os.path.abspath(__file__))
    env.setdefault("YUNMIN_PYTHON", sys.executable)
    return subprocess.call(call, env=env)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.command == "dedup":
        return dedup(args)
    if args.command == "pipeline":
        return pipeline(args)
    if args.command == "tasks":
        return tasks(args)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
