#!/bin/bash
# The lead's last GPU call of 2026-12-06: serve vs llama-server, MoE cap (gpt-oss rows), speed grid by llama-batched-bench.
set -uo pipefail; export PYTHONUNBUFFERED=1; T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
mkdir -p /tmp/lcpp/build/bin && cat .gpucache/llamacpp-cuda.tar.xz.part* | xz -d | tar xf - -C /tmp/lcpp/build/bin
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl 2>&1 | tail -1
export LD_LIBRARY_PATH=/tmp/lcpp/build/bin LLAMA_CPP_LIB_PATH=/tmp/lcpp/build/bin PYTHONPATH=/tmp/lcpp/build/bin:/tmp/site:.:.gpu/serve-site
B=/tmp/lcpp/build/bin
LLAMA_SERVER=$B/llama-server timeout 140 python3 bench/gpu_serve.py --out $OUT --budget 95 --anchor-by 0 > $OUT/serve.log 2>&1
echo "serve rc=$? at $(el) s"; tail -12 $OUT/serve.log
cp .gpujob/moe_cap.jsonl $OUT/
timeout 90 python3 bench/gpu_moe_cap.py $OUT --top 1 > $OUT/moe.log 2>&1; echo "moe rc=$? at $(el) s"; tail -5 $OUT/moe.log
W=/tmp/edgekv-sparse; mkdir -p $W
for kv in q8_0 f16 q4_0; do
  for cfg in qwen3-8b:Q4_K_M:gpu qwen3-30b-a3b:Q4_K_M:cpu gpt-oss-20b:MXFP4_MOE:cpu qwen3-30b-a3b:Q4_K_M:gpu \
             gpt-oss-20b:MXFP4_MOE:gpu qwen3-4b:Q4_K_M:gpu qwen3-14b:Q4_K_M:gpu; do
    [ "$(el)" -gt "${SECS:-330}" ] && break 2
    IFS=: read -r shape quant place <<< "$cfg"
    m=$W/$shape-$quant.gguf; [ -f "$m" ] || python3 bench/sparse_gguf.py "$shape" "$quant" "$m" > /dev/null
    ot=(); [ "$place" = cpu ] && ot=(-ot 'exps=CPU')
    for npl in 1,4,16 1,4; do
      timeout $(( ${SECS:-330} + 60 - $(el) )) $B/llama-batched-bench -m "$m" -ngl 99 "${ot[@]}" -fa on -ctk $kv -ctv $kv \
        -c $(( ${npl##*,} * 32832 )) -b 2048 -ub 2048 -npp 128,8192,32768 -ntg 16 -npl $npl -pps --output-format jsonl 2>>$OUT/bb.err \
        | grep '^{"n_kv_max"' | sed "s/^{/{\"shape\": \"$shape\", \"quant\": \"$quant\", \"placement\": \"$place\", \"kv\": \"$kv\", /" \
        | tee -a "$OUT/batched_grid.jsonl" | grep -q . && break
    done
    echo "$shape $place $kv done at $(el) s: $(grep -c "\"$shape\".*\"$place\", \"kv\": \"$kv\"" $OUT/batched_grid.jsonl) rows"
  done
done
tail -c 3000 $OUT/bb.err > $OUT/bb.tail; rm -f $OUT/bb.err
echo "all done at $(el) s"
