#!/bin/bash
# Speed grid rows by llama-batched-bench (#24). Env: B (tools dir), SECS (stop starting configs after),
# T0 (start epoch), CFGS ("shape:quant:place ..."), KVS; skips (shape, place, kv) already in
# bench/results/gpu/batched_grid.jsonl. Appends to $OUT/batched_grid.jsonl, stderr to /tmp/logs/bb.err.
el() { echo $(( $(date +%s) - T0 )); }
W=/tmp/edgekv-sparse; mkdir -p $W /tmp/logs
for kv in $KVS; do
  for cfg in $CFGS; do
    [ "$(el)" -gt "$SECS" ] && { echo "time: stop before $cfg $kv"; break 2; }
    IFS=: read -r shape quant place <<< "$cfg"
    if grep -q "\"shape\": \"$shape\", \"quant\": \"$quant\", \"placement\": \"$place\", \"kv\": \"$kv\"" \
        bench/results/gpu/batched_grid.jsonl "$OUT/batched_grid.jsonl" 2>/dev/null; then continue; fi
    m=$W/$shape-$quant.gguf; [ -f "$m" ] || python3 bench/sparse_gguf.py "$shape" "$quant" "$m" > /dev/null
    ot=(); ub=2048; [ "$place" = cpu ] && { ot=(-ot 'exps=CPU'); ub=8192; }
    for npl in 1,4,16 1,4; do
      echo "== $shape $place $kv npl $npl" >> /tmp/logs/bb.err
      timeout $(( SECS + 100 - $(el) )) $B/llama-batched-bench -m "$m" -ngl 99 "${ot[@]}" -fa on -ctk $kv -ctv $kv \
        -c $(( ${npl##*,} * 32832 )) -b $ub -ub $ub -npp 128,8192,32768 -ntg 16 -npl $npl -pps --output-format jsonl 2>>/tmp/logs/bb.err \
        | grep '^{"n_kv_max"' | sed "s/^{/{\"shape\": \"$shape\", \"quant\": \"$quant\", \"placement\": \"$place\", \"kv\": \"$kv\", /" \
        | tee -a "$OUT/batched_grid.jsonl" | grep -q . && break
    done
    echo "$shape $place $kv at $(el) s: $(grep -c "\"$shape\", \"quant\": \"$quant\", \"placement\": \"$place\", \"kv\": \"$kv\"" $OUT/batched_grid.jsonl) rows"
  done
done
