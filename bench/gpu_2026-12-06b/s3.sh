#!/bin/bash
# call 3: MoE cap with the mapped GPU tensors given back and the host runtime term (#24); gpt-oss experts-in-RAM
# grid rows on sparse files with normal MXFP4 scales.
set -uo pipefail; export PYTHONUNBUFFERED=1; export T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
mkdir -p /tmp/lcpp/build/bin /tmp/logs && cat .gpucache/llamacpp-cuda.tar.xz.part* | xz -d | tar xf - -C /tmp/lcpp/build/bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl 2>&1 | tail -1
export LD_LIBRARY_PATH=/tmp/lcpp/build/bin LLAMA_CPP_LIB_PATH=/tmp/lcpp/build/bin PYTHONPATH=/tmp/lcpp/build/bin:/tmp/site:.
export B=/tmp/lcpp/build/bin
timeout 150 python3 bench/gpu_moe_cap.py /tmp/moe --models gpt-oss-20b --caps 8,12,16 --top 1 > /tmp/logs/moe.log 2>&1; echo "moe gpt-oss rc=$? at $(el) s"
timeout 70 python3 bench/gpu_moe_cap.py /tmp/moe --models Qwen3-30B-A3B --caps 8 --top 1 >> /tmp/logs/moe.log 2>&1; echo "moe qwen rc=$? at $(el) s"
grep -v '^\s*$' /tmp/logs/moe.log | grep -v ggml_cuda_init | grep -v "Device 0" | tail -8; cp /tmp/moe/moe_cap.jsonl $OUT/ 2>/dev/null
SECS=${SECS:-300} CFGS="gpt-oss-20b:MXFP4_MOE:cpu" KVS="q8_0 f16 q4_0" bash .gpujob/grid.sh
tar czf $OUT/logs3.tgz -C /tmp logs 2>/dev/null
echo "all done at $(el) s"
