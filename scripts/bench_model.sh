#!/bin/bash
# usage: scripts/bench_model.sh WORKDIR   (WORKDIR holds base.jsonl and news_comments.jsonl: JSONL id
# arrays; docs/bench/model.md shows how they were made from the shared corpora). Writes bench.csv.
set -e
B=${YUNMIN_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/yunmin}
cd "$1"
# Training throughput and peak memory: flex vs ndarray, full (pretrain) vs LoRA.
CFG='{"eos_token_id":2,"bos_token_id":1,"vocab_size":259,"eval_every":0,"eval_windows":8,"checkpoint_every":0,"log_every":5}'
echo "mode,device,steps,batch,seq_len,tokens_per_s,wall_s,peak_rss_mb" > bench.csv
for dev in flex ndarray; do
  rm -rf b_$dev
  /usr/bin/time -f "%M" -o rss.txt $B -q train pretrain --tokens base.jsonl --out b_$dev --steps 15 --device $dev --config <(echo "$CFG") > out.txt 2>&1
  tps=$(grep -o '[0-9]* tokens/s' out.txt | cut -d' ' -f1); wall=$(tail -1 b_$dev/logs/train_base.log | cut -d, -f5)
  echo "full,$dev,15,8,128,$tps,$wall,$(( $(cat rss.txt) / 1024 ))" >> bench.csv
  /usr/bin/time -f "%M" -o rss.txt $B -q train lora --base b_$dev/models/base --tokens news_comments.jsonl --out b_$dev --steps 15 --device $dev --config <(echo '{"eval_windows":8,"checkpoint_every":0}') > out.txt 2>&1
  tps=$(grep -o '[0-9]* tokens/s' out.txt | cut -d' ' -f1); wall=$(tail -1 b_$dev/logs/train_news_comments.log | cut -d, -f5)
  echo "lora_r8,$dev,15,8,128,$tps,$wall,$(( $(cat rss.txt) / 1024 ))" >> bench.csv
  cat out.txt
done
cat bench.csv
