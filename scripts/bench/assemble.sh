#!/usr/bin/env bash
# Rebuilds docs/benchmarks.md: its overview (everything before the first per-module section) is
# kept; the per-module sections are docs/bench/*.md with every heading one level down.
#   bash scripts/bench/assemble.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/benchmarks.md
head=$(awk '/^## /{exit} {print}' "$out")
{
    printf '%s\n' "$head"
    for m in ingest dedup columnar model merge eval; do
        echo
        sed 's/^#/##/' "docs/bench/$m.md"
    done
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
