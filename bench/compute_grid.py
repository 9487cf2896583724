"""llama.cpp's compute buffer over context x parallel sequences x KV type, from no_alloc dry runs.

For catalog models (a sparse GGUF of the real shapes, ``tests/ggufgen.write_sparse_gguf``), each
model is loaded once with no_alloc + load mode NONE and a context is created per configuration;
the compute buffer llama.cpp logs for each backend ("CUDA0 compute buffer size", "CPU compute
buffer size", ...) is recorded next to edgekv's term (``memory.compute_bytes``) for that config.
Runs on a CPU build (the CPU backend: no flash-attention f16 copies) and on a CUDA build.

Two parts:
  --part figures  the three measured figures of every model (``memory.ComputeFigures``: the output
                  phase at 4096 tokens, the layer phase beside the KQ mask at a context where the
                  mask dominates, f16 K/V; the attention phase beside the mask and the f16 copies
                  of a quantized K/V), written to OUT/figures.json keyed as models/*.json keys them;
  --part grid     every model x context x G x KV type, with the term's prediction from the figures
                  (OUT/figures.json when present, else the catalog's) and the error in bytes;
  --part sweep    every n_ctx from 256 to 32k in steps of 256 and to 64k in steps of 1024 (G = 1,
                  f16) where the output moment is the largest: ggml-alloc places the logits higher at
                  some mask sizes (DeepSeek-R1-Distill-Qwen-14B: +38 MiB at 8192 cells per stream),
                  so the output figure in OUT/figures.json becomes the largest output moment seen;
  --part fold     the same for the grid's own rows (OUT/grid.jsonl): each output moment llama.cpp
                  reserved where the layers and attention are below it, scaled back to n_ubatch tokens;
  --part store    OUT/figures.json into models/*.json ("compute"; the old single "cuda/ub512/fa1"
                  figure is replaced by the three keys), with --measured-with as the note.

usage:
  python bench/compute_grid.py --part figures --out DIR [--models Qwen3-8B,...]
  python bench/compute_grid.py --part grid --out DIR --models Qwen3-8B --ctx 4k,32k,256k --seqs 1-8 --kv f16,q8_0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgekv.model.quant import KvType  # noqa: E402
from edgekv.plan.memory import (  # noqa: E402
    ComputeFigures,
    RunConfig,
    compute_breakdown,
    figure_keys,
    reserve_tokens,
)
from edgekv.store.catalog import CatalogModel, load_catalog  # noqa: E402
from edgekv.units import MIB  # noqa: E402

SHAPES = Path(os.environ.get("EDGEKV_SHAPES", "/tmp/edgekv-shapes"))


def tokens(text: str) -> int:
    return int(text[:-1]) * 1024 if text.lower().endswith("k") else int(text)


def seq_range(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


class Dry:
    """One model loaded without allocation; ``compute(cfg)`` creates a context and reads the log."""

    def __init__(self, path: Path, cfg: RunConfig) -> None:
        from edgekv.llama import build
        from edgekv.llama.log import LlamaLog

        self.build, self.LlamaLog = build, LlamaLog
        self.llama_cpp = build.llama_lib()
        with LlamaLog() as cap:
            self.model = self.llama_cpp.llama_model_load_from_file(
                str(path).encode(), build.model_params(self.llama_cpp, cfg, dry_run=True)
            )
        if not self.model:
            raise RuntimeError(f"llama.cpp cannot read {path}: {cap.last_problem()}")

    def compute(self, cfg: RunConfig) -> dict[str, int]:
        with self.LlamaLog() as cap:
            cp = self.build.context_params(self.llama_cpp, cfg, n_batch=None, n_threads=1)
            ctx = self.llama_cpp.llama_init_from_model(self.model, cp)
            if not ctx:
                raise RuntimeError(f"no context for {cfg}: {cap.last_problem()}")
            self.llama_cpp.llama_free(ctx)
        return dict(cap.buffers(dry_run=True).compute)

    def close(self) -> None:
        self.llama_cpp.llama_model_free(self.model)


def model_file(m: CatalogModel, quant: str) -> Path:
    from tests.ggufgen import write_sparse_gguf

    SHAPES.mkdir(parents=True, exist_ok=True)
    path = SHAPES / f"{m.name}-{quant}.gguf"
    if not path.is_file():
        write_sparse_gguf(path, m.config, quant=quant)
    return path


def device_bytes(compute: dict[str, int]) -> int:
    """The buffer the term predicts: the GPU's (CUDA0) on a GPU build, else the CPU's."""
    from edgekv.llama.log import is_host_buffer

    dev = [v for k, v in compute.items() if not is_host_buffer(k)]
    return dev[0] if dev else compute.get("CPU", 0)


def backend_name() -> str:
    from edgekv.llama import build

    return "cuda" if build.is_cuda_build(build.system_info()) else "cpu"


def part_figures(models: list[CatalogModel], out: Path, quant: str) -> dict[str, dict[str, int]]:
    """The three figures of each model, measured where each phase dominates (see ComputeFigures)."""
    backend = backend_name()
    figures: dict[str, dict[str, int]] = {}
    rows = []
    for m in models:
        dry = Dry(model_file(m, quant), RunConfig(n_ctx=4096))
        measured: dict[str, int] = {}
        for phase, cfg in ComputeFigures.calibration_configs(m.spec).items():
            buffers = dry.compute(cfg)
            got = device_bytes(buffers)
            measured[phase] = got
            rows.append({"model": m.name, "phase": phase, "n_ctx": cfg.n_ctx, "kv": cfg.type_k.value,
                         "compute": got, "backend": backend, "buffers": buffers})  # fmt: skip
        dry.close()
        figs = ComputeFigures.from_calibration(m.spec, measured, backend=backend)
        figures[m.name] = figure_keys(figs, backend=backend)
        print(json.dumps({"model": m.name, **{k: round(v / MIB, 2) for k, v in figures[m.name].items()}}), flush=True)
    (out / "figures.json").write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    with (out / "figures.jsonl").open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return figures


def part_grid(
    models: list[CatalogModel], out: Path, quant: str, ctxs: list[int], seqs: list[int], kvs: list[KvType]
) -> list[dict[str, Any]]:
    backend = backend_name()
    saved = out / "figures.json"
    table = json.loads(saved.read_text()) if saved.is_file() else {}
    rows: list[dict[str, Any]] = []
    grid = out / "grid.jsonl"
    done = set()  # resumable: rows already written are skipped
    if grid.is_file():
        for line in grid.read_text().splitlines():
            r = json.loads(line)
            done.add((r["model"], r["kv"], r["n_seq"], r["n_ctx"]))
    with grid.open("a") as f:
        for m in models:
            figs = ComputeFigures.from_keys(table.get(m.name) or m.compute, backend=backend)
            todo = [(kv, g, n) for kv in kvs for g in seqs for n in ctxs if (m.name, kv.value, g, n) not in done]
            if not todo:
                continue
            dry = Dry(model_file(m, quant), RunConfig(n_ctx=4096))
            for kv, g, n_ctx in todo:
                cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv, n_seq=g)
                t0 = time.perf_counter()
                buffers = dry.compute(cfg)
                got = device_bytes(buffers)
                parts = compute_breakdown(m.spec, cfg, figs, backend=backend)
                row = {
                    "model": m.name, "backend": backend, "kv": kv.value, "n_seq": g, "n_ctx": n_ctx,
                    "llama_cpp": got, "term": parts["compute"], "exact": parts["exact"],
                    "err_mib": round((parts["exact"] - got) / MIB, 3),
                    "safe_mib": round((parts["compute"] - got) / MIB, 3), "phase": parts["phase"],
                    "seconds": round(time.perf_counter() - t0, 3), "buffers": buffers,
                }  # fmt: skip
                rows.append(row)
                f.write(json.dumps(row) + "\n")
            dry.close()
            mine = [r for r in rows if r["model"] == m.name]
            if not mine:
                continue
            worst = max(mine, key=lambda r: abs(r["err_mib"]))
            print(json.dumps({"model": m.name, "n": len(mine), "worst_err_mib": worst["err_mib"],
                              "min_safe_mib": min(r["safe_mib"] for r in mine)}), flush=True)  # fmt: skip
    return rows


SWEEP_CTX = [*range(256, 32768, 256), *range(32768, 65536 + 1, 1024)]


def part_sweep(models: list[CatalogModel], out: Path, quant: str) -> None:
    """The output figure as the largest output moment over SWEEP_CTX (see the module docstring)."""
    from edgekv.plan.memory import compute_breakdown as breakdown

    backend = backend_name()
    table: dict[str, dict[str, int]] = json.loads((out / "figures.json").read_text())
    with (out / "sweep.jsonl").open("a") as f:
        for m in models:
            figs = ComputeFigures.from_keys(table[m.name], backend=backend)
            assert figs is not None
            dry = Dry(model_file(m, quant), RunConfig(n_ctx=4096))
            seen = []
            for n_ctx in SWEEP_CTX:
                cfg = RunConfig(n_ctx=n_ctx)
                got = device_bytes(dry.compute(cfg))
                layer = int(breakdown(m.spec, cfg, figs, backend=backend)["layer"])
                out_phase = got > layer + MIB // 100  # the layers (with the mask) are below: the output is the peak
                seen.append(got if out_phase else 0)
                f.write(json.dumps({"model": m.name, "n_ctx": n_ctx, "llama_cpp": got, "layer": layer,
                                    "out_phase": out_phase}) + "\n")  # fmt: skip
            dry.close()
            key = f"{backend}/ub512/fa1/out"
            before = table[m.name][key]
            table[m.name][key] = max(before, *seen)
            print(json.dumps({"model": m.name, "out_mib": round(before / MIB, 2),
                              "largest_out_mib": round(max(seen) / MIB, 2)}), flush=True)  # fmt: skip
    (out / "figures.json").write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


def part_fold(models: list[CatalogModel], out: Path) -> None:
    """The output figure as the largest output moment among the grid's rows and the sweep's (OUT/grid.jsonl,
    OUT/sweep.jsonl when there: a sweep cut short by its time limit leaves its rows but no figures)."""
    table: dict[str, dict[str, int]] = json.loads((out / "figures.json").read_text())
    backend = next(iter(next(iter(table.values())))).split("/")[0]  # the backend the figures were measured on
    rows = [json.loads(line) for line in (out / "grid.jsonl").read_text().splitlines() if line.strip()]
    sweep = out / "sweep.jsonl"
    if sweep.is_file():
        for line in sweep.read_text().splitlines():
            r = json.loads(line)
            rows.append({**r, "backend": backend, "kv": "f16", "n_seq": 1})
    key = f"{backend}/ub512/fa1/out"
    for m in models:
        figs = ComputeFigures.from_keys(table[m.name], backend=backend)
        assert figs is not None
        best = before = figs.out
        logits = 4 * m.spec.n_vocab * figs.n_ubatch
        for r in rows:
            if r["model"] != m.name or r["backend"] != backend:
                continue
            kv = KvType(r["kv"])
            cfg = RunConfig(n_ctx=r["n_ctx"], n_seq=r["n_seq"], type_k=kv, type_v=kv)
            parts = compute_breakdown(m.spec, cfg, figs, backend=backend)
            if r["llama_cpp"] > max(int(parts["layer"]), int(parts["attn"])) + MIB // 100:
                n_tok = reserve_tokens(cfg)
                best = max(best, logits + -(-(r["llama_cpp"] - logits) * figs.n_ubatch // n_tok))
        table[m.name][key] = best
        print(json.dumps({"model": m.name, "out_mib": round(before / MIB, 2), "largest_out_mib": round(best / MIB, 2)}))
    (out / "figures.json").write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")


def part_store(out: Path, measured_with: str) -> None:
    from edgekv.store.catalog import models_dir

    figures: dict[str, dict[str, int]] = json.loads((out / "figures.json").read_text())
    for path in sorted(Path(models_dir()).glob("*.json")):
        data = json.loads(path.read_text())
        keys = figures.get(data["name"])
        if not keys:
            continue
        backend = next(iter(keys)).split("/")[0]
        compute = {k: v for k, v in data.get("compute", {}).items() if k != f"{backend}/ub512/fa1"}
        compute.update(keys)
        data["compute"] = dict(sorted(compute.items()))
        data["compute_measured_with"] = measured_with
        tmp = path.with_suffix(".json.incomplete")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(path)
        print(f"{path.name}: {keys}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("figures", "grid", "sweep", "fold", "store"), required=True)
    ap.add_argument("--measured-with", default="", help="--part store: the build and card the figures come from")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--models", default="", help="catalog names (default: every model)")
    ap.add_argument("--quant", default="Q4_K_M", help="weight types of the sparse GGUF")
    ap.add_argument("--ctx", default="4k,8k,16k,32k,64k,128k,192k,256k", help="total contexts (n_ctx)")
    ap.add_argument("--seqs", default="1-8", help="parallel sequences G")
    ap.add_argument("--kv", default="f16,q8_0,q4_0")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    cat = load_catalog()
    names = {n.strip().lower() for n in args.models.split(",") if n.strip()}
    models = [m for m in cat if not names or m.name.lower() in names]
    t0 = time.time()
    if args.part == "store":
        part_store(args.out, args.measured_with)
    elif args.part == "sweep":
        part_sweep(models, args.out, args.quant)
    elif args.part == "fold":
        part_fold(models, args.out)
    elif args.part == "figures":
        part_figures(models, args.out, args.quant)
    else:
        ctxs = [tokens(c) for c in args.ctx.split(",")]
        part_grid(models, args.out, args.quant, ctxs, seq_range(args.seqs), [KvType(k) for k in args.kv.split(",")])
    print(f"{args.part}: {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
