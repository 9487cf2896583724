#!/bin/bash
# On the GPU machine from the project root with .gpu carried (bench/gpu_batched.py makes the GGUF):
#   bash bench/gpu_batched_shape.sh   (about 4 minutes: llama.cpp tools build, then four short runs)
# Is the decode gap the context's shape? llama-batched-bench at its anchor shape and at edgekv's.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/gguf-*.whl 2>&1 | tail -1
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
(bash .gpu/build-llama-tools.sh > /tmp/tools.log 2>&1) &
python3 -c "
from pathlib import Path
import sys; sys.argv=['x']; sys.path.insert(0, 'bench')
import gpu_batched as g
g.model_file('qwen3-4b', 'Q8_0', Path('/tmp/edgekv-shapes'))
" 2>&1 | tail -2
wait
tail -2 /tmp/tools.log
B=/tmp/lcpp/build/bin/llama-batched-bench
M=/tmp/edgekv-shapes/qwen3-4b-Q8_0.gguf
C="-m $M -ngl 99 -fa on -ctk q8_0 -ctv q8_0 -b 2048 -ub 512 -npp 256 -ntg 256 -pps --output-format jsonl"
for args in "-c 8448 -npl 1,16" "-c 768 -npl 1" "-c 12288 -npl 16" "-c 8448 -npl 1,16"; do
  echo "== $args"; $B $C $args 2>&1 | grep '^{"n_kv_max"' | python3 -c "
import json,sys
for l in sys.stdin:
    d=json.loads(l); print(d['n_kv_max'], d['pl'], 'S_TG', round(d['speed_tg'],1), 'ms/step', round(1000*d['pl']/d['speed_tg'],3))"
done
