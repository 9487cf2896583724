#!/bin/bash
# call 2: experts-in-RAM grid rows (and gpt-oss on the GPU at q4_0)
set -uo pipefail; export PYTHONUNBUFFERED=1; export T0=$(date +%s)
mkdir -p /tmp/lcpp/build/bin /tmp/logs && cat .gpucache/llamacpp-cuda.tar.xz.part* | xz -d | tar xf - -C /tmp/lcpp/build/bin
export LD_LIBRARY_PATH=/tmp/lcpp/build/bin B=/tmp/lcpp/build/bin PYTHONPATH=.
(lscpu; free -g) > /tmp/logs/machine2.txt 2>&1
SECS=${SECS:-480} CFGS="gpt-oss-20b:MXFP4_MOE:gpu qwen3-30b-a3b:Q4_K_M:cpu gpt-oss-20b:MXFP4_MOE:cpu" KVS="q4_0 f16 q8_0" bash .gpujob/grid.sh
tar czf $OUT/logs2.tgz -C /tmp logs 2>/dev/null
echo "all done at $(( $(date +%s) - T0 )) s"
