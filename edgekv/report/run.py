"""``edgekv run`` and ``bench --parallel``: memory predicted vs measured, samples and speed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from edgekv.plan.memory import Footprint, RunConfig
from edgekv.report.common import column_kw, fitted_table
from edgekv.units import MIB, format_bytes

if TYPE_CHECKING:
    from rich.console import RenderableType

    from edgekv.llama.generation import Generation
    from edgekv.llama.session import LoadedContext, Prepared, RunOutput


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


# why a sample ended (``batch.generate``'s finish) as run prints it and as run --json's "ended" says it
ENDED = {"eog": "end of text", "length": "token limit", "context": "context full"}
ROUNDING = "llama.cpp rounds each sample's share up to a multiple of 256"


def context_text(asked: int, loaded: LoadedContext | None) -> str:
    """The context llama.cpp made (and per sample), and what was asked where that differs."""
    if loaded is None:
        return f"context {asked} tokens"
    text = f"context {loaded.n_ctx} tokens"
    if loaded.n_seq > 1:
        text += f", {loaded.n_ctx_seq} per sample"
    if loaded.n_ctx != asked:
        text += f" (asked {asked}; {ROUNDING})"
    return text


def header_lines(
    prepared: Prepared, model: str, cfg: RunConfig, *, cap_text: str | None, loaded: LoadedContext | None = None
) -> list[str]:
    """``edgekv run``'s settings line: the context used (``loaded``: what llama.cpp made; without it the
    planned one), KV, samples, flash attention, the prediction (and per GPU)."""
    tk, tv = cfg.type_k, cfg.type_v
    kv_text = tk.value if tk == tv else f"{tk.value}/{tv.value}"
    budget = f"--vram {cap_text}" if cap_text else "the free memory"
    lines = [
        f"{Path(model).name}: {context_text(prepared.cfg.n_ctx, loaded)}, {kv_text} KV, {prepared.cfg.n_seq} "
        f"sample(s), flash attention {'on' if cfg.flash_attn else 'off'}; predicted "
        f"{format_bytes(prepared.footprint.gpu_total)} of {budget}"
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
        cap = ", with --vram capping what llama.cpp allocates" if vram_bytes else ""
        return (
            f"note: this llama-cpp-python build has no GPU offload; running on the CPU{cap}. For a GPU build:\n"
            f"  {build.CUDA_REINSTALL}"
        )
    return None


def ended_text(gen: Generation, *, max_tokens: int, n_ctx_seq: int | None) -> str:
    """Why the samples of one turn ended: "ended: token limit (--max-tokens 8)"; with several samples
    each reason names its samples ("ended: token limit (...): samples 1, 3; end of text: sample 2")."""
    detail = {"length": f" (--max-tokens {max_tokens})",
              "context": f" ({n_ctx_seq} tokens per sample)" if n_ctx_seq else ""}  # fmt: skip
    by: dict[str, list[int]] = {}
    for i, s in enumerate(gen.sequences, start=1):
        by.setdefault(s.finish, []).append(i)
    if len(gen.sequences) == 1:
        (finish,) = by
        return f"ended: {ENDED.get(finish, finish)}{detail.get(finish, '')}"
    parts = []
    for finish, seqs in by.items():
        which = f"sample{'s' if len(seqs) > 1 else ''} {', '.join(map(str, seqs))}"
        parts.append(f"{ENDED.get(finish, finish)}{detail.get(finish, '')}: {which}")
    return "ended: " + "; ".join(parts)


def turn_line(gen: Generation, *, max_tokens: int, n_ctx_seq: int | None) -> str:
    """One turn's prompt and decode speed, and why it ended."""
    return (
        f"prompt {gen.n_prompt} tokens ({gen.prompt_tps:.1f} tokens/s); generated {gen.n_generated} tokens "
        f"({gen.decode_tps:.1f} tokens/s); {ended_text(gen, max_tokens=max_tokens, n_ctx_seq=n_ctx_seq)}"
    )


def run_report(prepared: Prepared, out: RunOutput, *, max_tokens: int) -> list[RenderableType]:
    """``edgekv run``'s end: each turn's prompt and decode speed and why it ended, and the memory
    predicted vs measured."""
    n_ctx_seq = out.context.n_ctx_seq if out.context else None
    lines: list[RenderableType] = [turn_line(g, max_tokens=max_tokens, n_ctx_seq=n_ctx_seq) for g in out.generations]
    return [
        *lines,
        memory_table(prepared.footprint, out.measured, gpu=prepared.gpu, title="memory: predicted vs measured"),
    ]


def run_json(
    prepared: Prepared, out: RunOutput, *, model: str, vram_bytes: int | list[int] | None, max_tokens: int
) -> dict[str, Any]:
    """``edgekv run --json``: :func:`run_dict` on this machine (its device, the llama.cpp build, the caps' sum)."""
    from edgekv.llama import build, session

    total = sum(vram_bytes) if isinstance(vram_bytes, list) else vram_bytes
    return run_dict(prepared, out, model=model, vram_bytes=total, device=session.device_name(prepared.gpu),
                    build=build.build_info(), max_tokens=max_tokens)  # fmt: skip


def run_dict(
    prepared: Prepared, out: RunOutput, *, model: str, vram_bytes: int | None, device: str, build: Mapping[str, str],
    max_tokens: int,
) -> dict[str, Any]:  # fmt: skip
    """``edgekv run --json``: the settings, the context llama.cpp made (``context``: asked, used, per
    sample), the samples (each with ``finish``: eog, length or context, and ``ended`` as run prints
    it), timings and memory predicted and measured."""
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
        "context": {
            "asked": cfg.n_ctx,
            "used": out.context.n_ctx if out.context else None,
            "per_sample": out.context.n_ctx_seq if out.context else None,
        },
        "max_tokens": max_tokens,
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
                "samples": [
                    {"text": s.text, "n_tokens": len(s.tokens), "finish": s.finish, "ended": ENDED.get(s.finish)}
                    for s in g.sequences
                ],
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


BENCH_COLUMNS = (("K/V", "left"), ("n_ctx", "right"), ("depth", "right"), ("status", "left"),
                 ("prompt t/s", "right"), ("decode t/s", "right"), ("KV MiB pred/meas", "right"),
                 ("total MiB pred/meas", "right"))  # fmt: skip
# at narrow widths: depth and status go first where every row has the same (said in the title), then
# the KV part of the memory (the total stays); speeds fold their ± stdev onto a second line
BENCH_OPTIONAL = ("depth", "status", "KV MiB pred/meas")


def bench_table(rows: list[dict[str, Any]], *, title: str, width: int | None = None) -> Any:
    """One row per record: speeds (median ± stdev) and memory in MiB, predicted / measured; fitted to
    ``width`` (``common.fitted_table``): a value is never cut."""
    cells = []
    for r in rows:
        pred, meas = r.get("predicted") or {}, r.get("measured") or {}
        kv = r["type_k"] if r["type_k"] == r["type_v"] else f"{r['type_k']}/{r['type_v']}"
        values = (kv, str(r["n_ctx"]), str(r["depth"]), r["status"], _fmt_tps(r.get("prompt_tps")),
                  _fmt_tps(r.get("decode_tps")), f"{_mib(pred.get('kv'))}/{_mib(meas.get('kv'))}",
                  f"{_mib(pred.get('total'))}/{_mib(meas.get('process'))}")  # fmt: skip
        cells.append(dict(zip([c for c, _ in BENCH_COLUMNS], values, strict=True)))
    same = {c: {r[c] for r in cells} for c in ("depth", "status")}
    optional = [c for c in BENCH_OPTIONAL if c not in same or len(same[c]) == 1]

    def build(dropped: frozenset[str]) -> Table:
        notes = [f"{c} {next(iter(same[c]))}" for c in ("depth", "status") if c in dropped and cells]
        t = Table(title=title + (f" ({', '.join(notes)})" if notes else ""), box=box.SIMPLE_HEAD, pad_edge=False)
        cols = [(c, j) for c, j in BENCH_COLUMNS if c not in dropped]
        for col, just in cols:
            t.add_column(col, justify=just, **column_kw())  # type: ignore[arg-type]
        for r in cells:
            t.add_row(*(r[c] for c, _ in cols))
        return t

    return fitted_table(build, optional=optional, width=width)


def bench_report(rows: list[dict[str, Any]], *, model: str, summary: str, width: int | None = None) -> list[Any]:
    """``edgekv bench``'s output, in order: the table, a line per configuration that did not run
    (with why), and ``summary`` (``llama.records.summary``)."""
    head = rows[0] if rows else {}
    title = f"edgekv bench: {head.get('model', model)} on {head.get('device', '?')}"
    out: list[Any] = [bench_table(rows, title=title, width=width)]
    for r in rows:
        if r["status"] != "ok" and r.get("reason"):
            out.append(f"{r['type_k']}/{r['type_v']} ctx {r['n_ctx']} depth {r['depth']}: {r['status']}: {r['reason']}")
    out.append(summary)
    return out
