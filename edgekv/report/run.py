"""``edgekv run`` and ``bench --parallel``: memory predicted vs measured, samples and speed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from edgekv.plan.memory import Footprint, RunConfig
from edgekv.units import MIB, format_bytes

if TYPE_CHECKING:
    from rich.console import RenderableType

    from edgekv.llama.session import Prepared, RunOutput


def memory_rows(fp: Footprint, measured: Any, *, gpu: bool) -> list[tuple[str, int | None, int | None]]:
    """(part, predicted bytes, measured bytes) rows of the end-of-run memory table."""
    buffers = measured.model + measured.kv + measured.compute
    rows: list[tuple[str, int | None, int | None]] = [
        ("weights", fp.weights_gpu, measured.model),
        ("KV cache", fp.kv, measured.kv),
        ("compute", fp.compute, measured.compute),
    ]
    if gpu:
        other = measured.process - buffers if measured.process is not None else None
        rows.append(("CUDA context + workspace", fp.overhead, other))
        rows.append(("total (NVML, process)", fp.gpu_total - fp.margin, measured.process))
    else:
        rows.append(("llama.cpp buffers", fp.gpu_total - fp.margin, buffers))
        rows.append(("process peak RSS", None, measured.process))
    return rows


def memory_table(fp: Footprint, measured: Any, *, gpu: bool, title: str) -> Table:
    """Predicted vs measured memory, part by part."""
    t = Table(title=title, box=box.SIMPLE_HEAD)
    t.add_column("part")
    t.add_column("predicted", justify="right")
    t.add_column("measured", justify="right")
    for part, pred, meas in memory_rows(fp, measured, gpu=gpu):
        t.add_row(
            part, format_bytes(pred) if pred is not None else "", format_bytes(meas) if meas is not None else "n/a"
        )
    return t


def header_lines(prepared: Prepared, model: str, cfg: RunConfig, *, cap_text: str | None) -> list[str]:
    """``edgekv run``'s settings line: context, KV, samples, flash attention, the prediction (and per GPU)."""
    tk, tv = cfg.type_k, cfg.type_v
    kv_text = tk.value if tk == tv else f"{tk.value}/{tv.value}"
    budget = f"--vram {cap_text}" if cap_text else "the free memory"
    lines = [
        f"{Path(model).name}: {prepared.cfg.n_ctx} tokens, {kv_text} KV, {prepared.cfg.n_seq} sample(s), flash "
        f"attention {'on' if cfg.flash_attn else 'off'}; predicted {format_bytes(prepared.footprint.gpu_total)} of "
        f"{budget}"
    ]
    for i, fp in enumerate(prepared.device_footprints):
        lines.append(
            f"  GPU {i}: predicted {format_bytes(fp.gpu_total)} of {format_bytes(prepared.vram_per_device[i])}"
        )
    return lines


def no_offload_note(cfg: RunConfig, vram_bytes: int | list[int] | None) -> str | None:
    """The note that this llama-cpp-python build runs on the CPU, where the run asks for GPU layers."""
    from edgekv.llama import build

    if (cfg.n_gpu_layers != 0 or vram_bytes) and not isinstance(vram_bytes, list) and not build.gpu_offload_supported():
        return (
            "note: this llama-cpp-python build has no GPU offload; running on the CPU, with --vram capping what "
            f"llama.cpp allocates. For a GPU build:\n  {build.CUDA_REINSTALL}"
        )
    return None


def run_report(prepared: Prepared, out: RunOutput) -> list[RenderableType]:
    """``edgekv run``'s end: each turn's prompt and decode speed, and the memory predicted vs measured."""
    lines: list[RenderableType] = [
        f"prompt {g.n_prompt} tokens ({g.prompt_tps:.1f} tokens/s); generated {g.n_generated} tokens "
        f"({g.decode_tps:.1f} tokens/s)"
        for g in out.generations
    ]
    return [
        *lines,
        memory_table(prepared.footprint, out.measured, gpu=prepared.gpu, title="memory: predicted vs measured"),
    ]


def run_json(prepared: Prepared, out: RunOutput, *, model: str, vram_bytes: int | list[int] | None) -> dict[str, Any]:
    """``edgekv run --json``: :func:`run_dict` on this machine (its device, the llama.cpp build, the caps' sum)."""
    from edgekv.llama import build, session

    total = sum(vram_bytes) if isinstance(vram_bytes, list) else vram_bytes
    return run_dict(prepared, out, model=model, vram_bytes=total, device=session.device_name(prepared.gpu),
                    build=build.build_info())  # fmt: skip


def run_dict(
    prepared: Prepared, out: RunOutput, *, model: str, vram_bytes: int | None, device: str, build: Mapping[str, str]
) -> dict[str, Any]:
    """``edgekv run --json``: the settings, the samples, timings and memory predicted and measured."""
    from edgekv.llama.records import predicted_dict  # not on pick's path (statistics, csv)

    cfg = prepared.cfg
    fp = prepared.footprint
    return {
        "model": Path(model).name,
        "path": str(model),
        "vram_bytes": vram_bytes,
        "device": device,
        "gpu": prepared.gpu,
        "config": {
            "n_ctx": cfg.n_ctx,
            "type_k": cfg.type_k.value,
            "type_v": cfg.type_v.value,
            "parallel": cfg.n_seq,
            "n_gpu_layers": cfg.n_gpu_layers,
            "n_cpu_moe": cfg.n_cpu_moe,
            "flash_attn": cfg.flash_attn,
            "n_ubatch": cfg.n_ubatch,
        },  # fmt: skip
        "predicted": predicted_dict(fp),
        "measured": out.measured.as_dict(),
        "tensor_split": list(cfg.tensor_split) or None,
        "predicted_per_device": [
            {"device": f"GPU {i}", "vram_bytes": prepared.vram_per_device[i]} | predicted_dict(f)
            for i, f in enumerate(prepared.device_footprints)
        ]
        or None,
        "measured_per_device": list(getattr(out, "measured_per_device", [])) or None,
        "turns": [
            {
                "n_prompt": g.n_prompt,
                "n_prompt_evaluated": g.n_prompt_evaluated,
                "prompt_tps": round(g.prompt_tps, 2),
                "decode_tps": round(g.decode_tps, 2),
                "samples": [{"text": s.text, "n_tokens": len(s.tokens), "finish": s.finish} for s in g.sequences],
            }  # fmt: skip
            for g in out.generations
        ],
        "build": dict(build),
    }


# --- sweep / frontier / calibrate ------------------------------------------------------------------


def parallel_table(rows: list[dict[str, Any]]) -> Table:
    """``edgekv bench --parallel``: prompt and decode tokens/s per G (all samples, and each), and a
    decode step by part: ``decode`` is llama.cpp's (llama_decode and the wait for the device),
    ``sample`` picking the G tokens, ``edgekv`` the batch and budget forcing around them."""
    head = rows[0] if rows else {}
    place = next((r.get("sampler") for r in rows if r.get("sampler")), "")
    title = f"edgekv bench --parallel: {head.get('model', '')} on {head.get('device', '?')}, sampler: {place or '?'}"
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # 80 columns
    for col in ("KV", "G", "pp t/s", "tg t/s", "t/s each", "ms/step", "decode", "sample", "edgekv", "status"):
        t.add_column(col, justify="left" if col in ("KV", "status") else "right")
    for r in rows:
        ok = r["status"] == "ok"
        kv = r["type_k"] if r["type_k"] == r["type_v"] else f"{r['type_k']}/{r['type_v']}"
        ms = r.get("step_ms") or {}
        parts = ["", "", "", ""]
        if ok and ms:
            decode, ours = ms["submit"] + ms["wait"], ms["build"] + ms["accept"]
            parts = [f"{sum(ms.values()):.2f}", f"{decode:.2f}", f"{ms['sample']:.2f}", f"{ours:.2f}"]
        t.add_row(
            kv, str(r["n_seq"]),
            f"{r['prompt_tps']['median']:.1f}" if ok else "", f"{r['decode_tps']['median']:.1f}" if ok else "",
            f"{r['per_seq_tps']:.1f}" if ok else "", *parts, "ok" if ok else "refused",
        )  # fmt: skip
    return t


def _fmt_tps(stats: dict[str, Any] | None) -> str:
    if not stats:
        return ""
    return f"{stats['median']:.1f} ±{stats['stdev']:.1f}"


def _mib(n: Any) -> str:
    return f"{n / MIB:.2f}" if isinstance(n, int) else "-"


def bench_table(rows: list[dict[str, Any]], *, title: str) -> Any:
    """One row per record: speeds (median ± stdev) and memory in MiB, predicted / measured."""
    t = Table(title=title, box=box.SIMPLE_HEAD)
    for col, just in (
        ("K/V", "left"), ("n_ctx", "right"), ("depth", "right"), ("status", "left"), ("prompt t/s", "right"),
        ("decode t/s", "right"), ("KV MiB pred/meas", "right"), ("total MiB pred/meas", "right"),
    ):  # fmt: skip
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        pred, meas = r.get("predicted") or {}, r.get("measured") or {}
        kv = r["type_k"] if r["type_k"] == r["type_v"] else f"{r['type_k']}/{r['type_v']}"
        t.add_row(
            kv, str(r["n_ctx"]), str(r["depth"]), r["status"], _fmt_tps(r.get("prompt_tps")),
            _fmt_tps(r.get("decode_tps")), f"{_mib(pred.get('kv'))}/{_mib(meas.get('kv'))}",
            f"{_mib(pred.get('total'))}/{_mib(meas.get('process'))}",
        )  # fmt: skip
    return t


def bench_report(rows: list[dict[str, Any]], *, model: str, summary: str) -> list[Any]:
    """``edgekv bench``'s output, in order: the table, a line per configuration that did not run
    (with why), and ``summary`` (``llama.records.summary``)."""
    head = rows[0] if rows else {}
    title = f"edgekv bench: {head.get('model', model)} on {head.get('device', '?')}"
    out: list[Any] = [bench_table(rows, title=title)]
    for r in rows:
        if r["status"] != "ok" and r.get("reason"):
            out.append(f"{r['type_k']}/{r['type_v']} ctx {r['n_ctx']} depth {r['depth']}: {r['status']}: {r['reason']}")
    out.append(summary)
    return out
