#!/usr/bin/env bash
# The one command: builds `yunmin` and runs scripts/pipeline.rhai end to end (ingest → dedup →
# Parquet → base model → domain LoRAs + data-mixing LoRA → DEM merge → evaluation → notebook and
# report). A rerun resumes at the first unfinished stage.
#
#   scripts/run_pipeline.sh                                   # bundled sample → runs/pipeline/
#   scripts/run_pipeline.sh --base path/to/checkpoint         # bring your own base: a Hugging Face
#                                                             # Llama checkpoint directory
#   scripts/run_pipeline.sh --input s3://bucket/raw/ --endpoint http://127.0.0.1:9000 \
#                           --index redis://127.0.0.1:6379/0  # S3 input, Redis-shared LSH index
#   scripts/run_pipeline.sh --reference --publish             # ../shared/data/corpora, larger
#                                                             # model; writes docs/report.md and
#                                                             # results/summarize_eval.ipynb
#   scripts/run_pipeline.sh --out runs/mine                   # another run root
#   scripts/run_pipeline.sh -- --force --set pretrain_steps=50   # anything after -- goes to `yunmin run`
#
# --base DIR (relative to the current directory): start from DIR, a Hugging Face Llama, Qwen2 or
# Mistral checkpoint (config.json, model.safetensors or model.safetensors.index.json,
# tokenizer.json), instead of training a tokenizer and pretraining models/base: the Parquet token
# ids come from DIR/tokenizer.json and the LoRAs, diffs, merge and evaluation run on DIR. The
# model-shape and pretraining settings do not apply; seq_len and batch do. A missing file is an
# error before anything runs. Changing DIR (or its files) reruns every stage that depends on it.
#
# Outputs: <out>/models/merged/ (the chosen DEM merge as a full Hugging Face checkpoint:
# config.json, model.safetensors, tokenizer.json — transformers' from_pretrained loads it),
# pipeline_run.log (one line per stage: duration, status), pipeline_errors.log (error chain and
# backtrace of a failed stage), manifest.json, results/ (tables, charts, summarize_eval.ipynb,
# report.md), eval/eval_prompt_comparison.md.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
repo=$PWD

input="" index="" endpoint="" out="" base="" reference=0 publish=0 extra=()
while (($#)); do
    case "$1" in
        --input) input=$2; shift 2 ;;
        --base) base=$2; shift 2 ;;
        --index) index=$2; shift 2 ;;
        --endpoint) endpoint=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --reference) reference=1; shift ;;
        --publish) publish=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "run_pipeline.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

sets=()
if ((reference)); then
    # The reference run: every shared corpus, a larger model and longer training.
    : "${input:=../shared/data/corpora}"
    : "${out:=runs/reference}"
    sets+=(--set vocab_size=4000 --set heldout=0.01 --set dim=192 --set heads=6 --set ffn=512
           --set pretrain_steps=1200 --set lora_steps=120 --set eval_docs=40 --set val_docs=40
           --set prompts=6)
fi
: "${out:=runs/pipeline}"
[ -n "$input" ] && sets+=(--set "input=$input")
[ -n "$index" ] && sets+=(--set "index=$index")
[ -n "$endpoint" ] && sets+=(--set "endpoint=$endpoint")
((publish)) && sets+=(--set "publish=$repo" --allow-write "$repo/results" --allow-write "$repo/docs")
if [ -n "$base" ]; then
    [[ "$base" = /* ]] || base="$caller/$base"
    for f in config.json tokenizer.json; do
        if [ ! -f "$base/$f" ]; then
            echo "run_pipeline.sh: --base: $base/$f is missing (a Hugging Face checkpoint directory" \
                 "has config.json, model.safetensors or model.safetensors.index.json, tokenizer.json)" >&2
            exit 2
        fi
    done
    sets+=(--set "base=$base")
fi

if [ -z "${RUSTC_WRAPPER:-}" ] && command -v sccache >/dev/null; then export RUSTC_WRAPPER=sccache; fi
cargo build -q -p yunmin
exec "$repo/target/debug/yunmin" run scripts/pipeline.rhai --out "$out" "${sets[@]}" "${extra[@]}"
