#!/usr/bin/env bash
# Ingest benchmark: the shared corpora (../shared/data/corpora, 7 zstd JSONL files, ~302 MB
# uncompressed) read locally and through the in-process S3 server (s3s-fs on 127.0.0.1).
# Appends MB/s and docs/s rows to a CSV; a few minutes on the shared 2-core machine.
#   bash scripts/bench_ingest.sh [OUT_DIR (default results/bench)] [ROUNDS (default 2)]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --profile fast -p yunmin -p yunmin-tests --bin yunmin --bin s3-server
bin="$CARGO_TARGET_DIR/fast"
corpora="$(cd ../shared/data/corpora && pwd)"
out="${1:-results/bench}"
rounds="${2:-2}"
csv="$out/ingest_bench.csv"
mkdir -p "$out"
work="$(mktemp -d)"
"$bin/s3-server" --bucket "corpora=$corpora" > "$work/s3.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q '^endpoint ' "$work/s3.log" && break; sleep 0.1; done
endpoint="$(sed -n 's/^endpoint //p' "$work/s3.log")"
export AWS_ACCESS_KEY_ID=yunmin-test-access AWS_SECRET_ACCESS_KEY=yunmin-test-secret AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent
for r in $(seq "$rounds"); do
    "$bin/yunmin" -q bench ingest --input "$corpora" --out "$work/local" --csv "$csv" --label local
    rm -rf "$work/local"
    "$bin/yunmin" -q bench ingest --input s3://corpora/ --endpoint-url "$endpoint" --out "$work/s3" --csv "$csv" --label s3
    rm -rf "$work/s3"
done
column -s, -t < "$csv"
