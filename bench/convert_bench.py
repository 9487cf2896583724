"""Convert + quantize throughput and peak memory: edgekv vs llama.cpp's reference converter.

Generates one moderately sized BF16 Qwen3 checkpoint (real Qwen tokenizer; ~0.4 GB by default),
then, each as a subprocess on a warm page cache:
  edgekv     edgekv.convert.convert_checkpoint (f16 + quants + manifest) in one process
  reference  vendor/llama.cpp/convert_hf_to_gguf.py --outtype f16, then llama_model_quantize per quant
Throughput is GB (1e9 bytes) of input checkpoint per second of wall time; peak memory is each
subprocess's RSS high-water mark (os.wait4's ru_maxrss). Prints a table and appends one JSON line
to bench/results/convert.jsonl.

    python bench/convert_bench.py [--layers 12] [--quants Q8_0,Q4_K_M] [--src .../vendor/llama.cpp]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_SRC = Path("/tmp/src/llama_cpp_python-0.3.36/vendor/llama.cpp")

EDGEKV = """
import sys
from edgekv.convert.checkpoint import convert_checkpoint
quants = [q for q in sys.argv[3].split(",") if q]
convert_checkpoint(sys.argv[1], quants=quants, outdir=sys.argv[2], threads=int(sys.argv[4]))
"""
QUANTIZE = """
import ctypes, sys
import llama_cpp
from edgekv.model.quant import WeightQuant
llama_cpp.llama_backend_init()
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = WeightQuant.parse(sys.argv[3]).ftype
p.nthread = int(sys.argv[4])
sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))
"""


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one subprocess."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


def warm(path: Path) -> int:
    total = 0
    for p in path.iterdir():
        with p.open("rb") as f:
            while block := f.read(64 << 20):
                total += len(block)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--ff", type=int, default=2048)
    ap.add_argument("--quants", default="Q8_0,Q4_K_M")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--src", type=Path, default=Path(os.environ.get("EDGEKV_LLAMA_CPP_SRC", DEFAULT_SRC)))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "convert.jsonl")
    args = ap.parse_args()
    script = args.src / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise SystemExit(f"no reference converter at {script}: pass --src .../vendor/llama.cpp")
    quants = [q for q in args.quants.split(",") if q]

    with tempfile.TemporaryDirectory(prefix="edgekv-bench-") as tmp:
        work = Path(tmp)
        heads = args.hidden // 64
        ckpt = work / "Qwen3-bench"
        # generated in a child: Linux children inherit the parent's ru_maxrss at fork, so the parent stays small
        gen = (f"from pathlib import Path; from tests.ckptgen import write_qwen3_checkpoint; write_qwen3_checkpoint("
               f"Path({str(ckpt)!r}), n_layer={args.layers}, hidden_size={args.hidden}, intermediate_size={args.ff}, "
               f"num_attention_heads={heads}, num_key_value_heads={max(heads // 3, 1)})")  # fmt: skip
        subprocess.run([sys.executable, "-c", gen], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        in_bytes = sum(p.stat().st_size for p in ckpt.glob("*.safetensors"))
        warm(ckpt)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}

        ek_wall, ek_rss = run([sys.executable, "-c", EDGEKV, str(ckpt), str(work / "ek"), ",".join(quants),
                               str(args.threads)], env)  # fmt: skip
        ek_conv_wall, ek_conv_rss = run([sys.executable, "-c", EDGEKV, str(ckpt), str(work / "ek2"), "", "1"], env)

        ref_env = {**env, "PYTHONPATH": f"{script.parent / 'gguf-py'}{os.pathsep}{ROOT}"}
        ref_f16 = work / "ref" / "Qwen3-bench-F16.gguf"
        ref_f16.parent.mkdir()
        ref_conv_wall, ref_conv_rss = run([sys.executable, str(script), str(ckpt), "--outtype", "f16", "--outfile",
                                           str(ref_f16)], ref_env)  # fmt: skip
        ref_q_wall, ref_q_rss = 0.0, 0
        for q in quants:
            w, r = run([sys.executable, "-c", QUANTIZE, str(ref_f16), str(ref_f16.with_name(f"Qwen3-bench-{q}.gguf")),
                        q, str(args.threads)], env)  # fmt: skip
            ref_q_wall, ref_q_rss = ref_q_wall + w, max(ref_q_rss, r)
        same_f16 = (work / "ek" / "Qwen3-bench-F16.gguf").read_bytes() == ref_f16.read_bytes()
        shutil.rmtree(work / "ek2")

    gb = in_bytes / 1e9
    ref_wall, ref_rss = ref_conv_wall + ref_q_wall, max(ref_conv_rss, ref_q_rss)
    row: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "checkpoint": {
            "arch": "Qwen3ForCausalLM",
            "layers": args.layers,
            "hidden": args.hidden,
            "ff": args.ff,
            "dtype": "bf16",
            "input_bytes": in_bytes,
        },  # fmt: skip
        "quants": quants,
        "threads": args.threads,
        "edgekv": {
            "wall_s": ek_wall,
            "gb_per_s": gb / ek_wall,
            "peak_rss_bytes": ek_rss,
            "convert_only_wall_s": ek_conv_wall,
            "convert_only_peak_rss_bytes": ek_conv_rss,
        },  # fmt: skip
        "reference": {
            "wall_s": ref_wall,
            "gb_per_s": gb / ref_wall,
            "peak_rss_bytes": ref_rss,
            "convert_only_wall_s": ref_conv_wall,
            "convert_only_peak_rss_bytes": ref_conv_rss,
        },  # fmt: skip
        "throughput_ratio": ref_wall / ek_wall,
        "convert_only_ratio": ref_conv_wall / ek_conv_wall,
        "f16_byte_identical": same_f16,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")

    mib = 1 << 20
    print(f"checkpoint: {in_bytes / 1e9:.3f} GB bf16 Qwen3 ({args.layers} layers, hidden {args.hidden}); "
          f"quants {','.join(quants)}; {args.threads} threads")  # fmt: skip
    print(f"{'':<24}{'edgekv':>12}{'reference':>12}{'ratio':>8}")
    print(f"{'convert+quantize GB/s':<24}{gb / ek_wall:>12.3f}{gb / ref_wall:>12.3f}{ref_wall / ek_wall:>8.2f}")
    print(f"{'convert+quantize wall s':<24}{ek_wall:>12.2f}{ref_wall:>12.2f}")
    conv_ratio = ref_conv_wall / ek_conv_wall
    print(f"{'convert-only GB/s':<24}{gb / ek_conv_wall:>12.3f}{gb / ref_conv_wall:>12.3f}{conv_ratio:>8.2f}")
    print(f"{'peak RSS MiB':<24}{ek_rss / mib:>12.0f}{ref_rss / mib:>12.0f}")
    print(f"{'convert-only peak MiB':<24}{ek_conv_rss / mib:>12.0f}{ref_conv_rss / mib:>12.0f}")
    print(f"f16 output byte-identical to the reference: {same_f16}")
    print(f"appended to {args.out}")


if __name__ == "__main__":
    main()
