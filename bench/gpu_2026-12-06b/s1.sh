#!/bin/bash
# 2026-12-06 session 2, call 1: serve vs llama-server G=1,4,16 + anchor (#26); MoE cap gpt-oss 8/12/16G and
# Qwen3-30B-A3B 8G re-check of CUDA_MOE_EXTRA_BYTES (#24); speed grid, fast configs (#24).
set -uo pipefail; export PYTHONUNBUFFERED=1; export T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
mkdir -p /tmp/lcpp/build/bin /tmp/logs && cat .gpucache/llamacpp-cuda.tar.xz.part* | xz -d | tar xf - -C /tmp/lcpp/build/bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl 2>&1 | tail -1
export LD_LIBRARY_PATH=/tmp/lcpp/build/bin LLAMA_CPP_LIB_PATH=/tmp/lcpp/build/bin PYTHONPATH=/tmp/lcpp/build/bin:/tmp/site:.:.gpu/serve-site
export B=/tmp/lcpp/build/bin
(lscpu; free -g; nvidia-smi) > /tmp/logs/machine.txt 2>&1
if [ "${SKIP_SERVE:-0}" = 0 ]; then
LLAMA_SERVER=$B/llama-server timeout 280 python3 bench/gpu_serve.py --out /tmp/serve --budget 170 --anchor-by 200 > /tmp/logs/serve.log 2>&1
echo "serve rc=$? at $(el) s"; tail -12 /tmp/logs/serve.log; cp /tmp/serve/gpu_serve.jsonl $OUT/ 2>/dev/null; cp /tmp/serve/*.log /tmp/logs/ 2>/dev/null
fi
if [ "${SKIP_MOE:-0}" = 0 ]; then
timeout 170 python3 bench/gpu_moe_cap.py /tmp/moe --models gpt-oss-20b --caps 8,12,16 --top 1 > /tmp/logs/moe.log 2>&1; echo "moe gpt-oss rc=$? at $(el) s"
timeout 80 python3 bench/gpu_moe_cap.py /tmp/moe --models Qwen3-30B-A3B --caps 8 --top 1 >> /tmp/logs/moe.log 2>&1; echo "moe qwen rc=$? at $(el) s"
grep -v '^\s*$' /tmp/logs/moe.log | tail -14; cp /tmp/moe/moe_cap.jsonl $OUT/ 2>/dev/null
fi
SECS=${SECS:-470} CFGS="${CFGS:-qwen3-4b:Q4_K_M:gpu qwen3-8b:Q4_K_M:gpu qwen3-14b:Q4_K_M:gpu qwen3-30b-a3b:Q4_K_M:gpu gpt-oss-20b:MXFP4_MOE:gpu}" \
  KVS="${KVS:-q8_0 f16 q4_0}" bash .gpujob/grid.sh
tar czf $OUT/logs.tgz -C /tmp logs 2>/dev/null
echo "all done at $(el) s"
