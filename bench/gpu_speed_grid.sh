#!/usr/bin/env bash
# The speed grid of #24 on the GPU machine, from the repo root, with carry [".gpu", ".gpujob", ".gpucache"]
# (.gpujob holding copies of bench/gpu_speed_grid.py, bench/sparse_gguf.py and this script; the tree
# sent is /work/main's). Unpacks the cached llama.cpp CUDA build exactly as .gpucache/README says, runs
# bench/gpu_speed_grid.py (llama.cpp's decode loop through libllama, one prefill per shape and KV type),
# and, if that fails, llama.cpp's own llama-batched-bench for the same grid (slower: it prefills each
# depth and G anew). Results: $OUT/speed_grid.jsonl (or $OUT/batched_grid.jsonl), then locally:
#   cp <files_at>/speed_grid.jsonl bench/results/gpu/ && PYTHONPATH=. python bench/speed_check.py
# SECS (default 560) bounds the run; DONE=.gpujob/speed_grid.jsonl resumes an earlier run's file.
set -uo pipefail
T0=$(date +%s); export PYTHONUNBUFFERED=1
HERE=$(dirname "$0")
mkdir -p /tmp/lcpp/build/bin && cat .gpucache/llamacpp-cuda.tar.xz.part* | xz -d | tar xf - -C /tmp/lcpp/build/bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl
export LD_LIBRARY_PATH=/tmp/lcpp/build/bin LLAMA_CPP_LIB_PATH=/tmp/lcpp/build/bin PYTHONPATH=/tmp/lcpp/build/bin:/tmp/site:.
python3 -c 'import llama_cpp; print(llama_cpp.__version__, llama_cpp.llama_supports_gpu_offload())' 2>&1 | tail -1
echo "unpacked in $(( $(date +%s) - T0 )) s"
LEFT=$(( ${SECS:-560} - ( $(date +%s) - T0 ) ))
python3 "$HERE/gpu_speed_grid.py" --out "$OUT" --lib /tmp/lcpp/build/bin --seconds "$LEFT" --steps 24 --cpu-steps 8 \
  ${DONE:+--done "$DONE"} 2>&1 | tee "$OUT/grid.log"
if grep -q '"status": "ok"' "$OUT/speed_grid.jsonl" 2>/dev/null; then echo "done at $(( $(date +%s) - T0 )) s"; exit 0; fi
echo "the Python loop failed: llama-batched-bench instead"
W=/tmp/edgekv-sparse; mkdir -p $W
for kv in q8_0 f16 q4_0; do
  for cfg in qwen3-4b:Q4_K_M:gpu qwen3-8b:Q4_K_M:gpu qwen3-14b:Q4_K_M:gpu qwen3-30b-a3b:Q4_K_M:gpu gpt-oss-20b:MXFP4_MOE:gpu \
             qwen3-30b-a3b:Q4_K_M:cpu gpt-oss-20b:MXFP4_MOE:cpu; do
    [ $(( $(date +%s) - T0 )) -gt "${SECS:-560}" ] && break 2
    IFS=: read -r shape quant place <<< "$cfg"
    m=$W/$shape-$quant.gguf; [ -f "$m" ] || python3 "$HERE/sparse_gguf.py" "$shape" "$quant" "$m"
    ot=(); [ "$place" = cpu ] && ot=(-ot 'exps=CPU')
    for npl in 1,4,16 1,4; do  # 16 streams of 32k first; 4 where they do not fit
      /tmp/lcpp/build/bin/llama-batched-bench -m "$m" -ngl 99 "${ot[@]}" -fa on -ctk $kv -ctv $kv -c $(( ${npl##*,} * 32832 )) \
        -b 2048 -ub 2048 -npp 128,8192,32768 -ntg 16 -npl $npl -pps --output-format jsonl 2>/dev/null \
        | grep '^{"n_kv_max"' | sed "s/^{/{\"shape\": \"$shape\", \"quant\": \"$quant\", \"placement\": \"$place\", \"kv\": \"$kv\", /" \
        | tee -a "$OUT/batched_grid.jsonl" | grep -q . && break
    done
  done
done
echo "done at $(( $(date +%s) - T0 )) s"
