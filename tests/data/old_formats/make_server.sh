#!/bin/bash
# In an old worktree: serve over $2 (data folder), one job to completion, then an orderly stop (SIGINT).
set -u
ck=$1; data=$2; port=$3
.venv/bin/motif-lite serve -m "$ck" --data "$data" --port "$port" --device cpu > "$data.log" 2>&1 &
pid=$!
for i in $(seq 60); do curl -s "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1; done
curl -s -X POST "http://127.0.0.1:$port/v1/videos" -H 'Content-Type: application/json' \
  -d '{"prompt": "a red fox", "size": "64x64", "num_frames": 9, "steps": 2, "seed": 7}'; echo
for i in $(seq 60); do
  s=$(curl -s "http://127.0.0.1:$port/v1/videos" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["status"])')
  [ "$s" = completed ] || [ "$s" = failed ] && break; sleep 1
done
echo "status: $s"
kill -INT $pid; wait $pid
ls -la "$data" "$data"/*
