"""Formatting only: plans, specs and footprints as rich tables or JSON-ready dicts.

Imports rich (and nothing heavy). The CLI hands results here; no arithmetic beyond unit display.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from edgekv.llama.records import predicted_dict
from edgekv.model.quant import KvType
from edgekv.model.spec import ModelSpec
from edgekv.plan.memory import Footprint
from edgekv.plan.planfile import llama_args
from edgekv.plan.policy import PickResult, Plan
from edgekv.units import GIB, format_bytes

BAR_WIDTH = 36
_SEGMENTS = (
    ("weights", "bold blue", "█"),
    ("kv", "bold green", "▓"),
    ("compute", "yellow", "▒"),
    ("overhead", "magenta", "░"),
    ("margin", "red", "-"),
)


def gib(n_bytes: int) -> str:
    return f"{n_bytes / GIB:.2f}"


def memory_bar(fp: Footprint, vram_bytes: int, *, width: int = BAR_WIDTH) -> Text:
    """A one-line bar: weights / KV / compute / overhead / margin / free, to scale of the card."""
    parts = {
        "weights": fp.weights_gpu, "kv": fp.kv_gpu, "compute": fp.compute,
        "overhead": fp.overhead, "margin": fp.margin,
    }  # fmt: skip
    text = Text()
    used = 0
    for key, style, ch in _SEGMENTS:
        n = round(parts[key] / vram_bytes * width) if vram_bytes else 0
        n = min(n, width - used)
        text.append(ch * n, style=style)
        used += n
    text.append("·" * (width - used), style="dim")
    return text


def bar_legend() -> Text:
    t = Text("bar: ")
    for key, style, ch in _SEGMENTS:
        t.append(f"{ch} {key}  ", style=style)
    t.append("· free", style="dim")
    return t


def pick_table(result: PickResult, *, width: int = 100) -> Group:
    vram = result.budget.vram_bytes
    bar_width = max(10, min(BAR_WIDTH, width - (90 if width >= 110 else 62)))
    t = Table(title=f"edgekv pick: {format_bytes(vram)} card, task {result.policy.task.value}", box=box.SIMPLE_HEAD)
    wide = width >= 110
    for col, kw in (
        ("#", {"justify": "right"}), ("model", {"overflow": "fold"}), ("quant", {}),
        ("E GiB", {"justify": "right"}), ("KV", {}), ("tokens x G", {"justify": "right", "no_wrap": True}),
        ("weights+KV+compute+overhead GiB" if wide else "total GiB", {"justify": "right"}),
        ("memory", {"no_wrap": True}),
    ):  # fmt: skip
        t.add_column(col, **kw)
    for i, p in enumerate(result.plans, 1):
        fp = p.footprint
        quant = p.option.quant + ("" if p.n_gpu_layers < 0 else f" ngl{p.n_gpu_layers}")
        parts_gib = (
            f"{gib(fp.weights_gpu)}+{gib(fp.kv)}+{gib(fp.compute)}+{gib(fp.overhead + fp.margin)} = {gib(fp.gpu_total)}"
        )
        t.add_row(
            str(i), p.option.name, quant, gib(p.option.effective_bytes), p.kv_label,
            f"{p.n_ctx_seq} x {p.parallel}",
            parts_gib if wide else gib(fp.gpu_total),
            memory_bar(fp, vram, width=bar_width),
        )  # fmt: skip
    parts: list[Any] = [t, bar_legend()]
    if result.plans:
        best = result.plans[0]
        why = Text("Why #1 (", style="bold")
        why.append(
            f"{best.option.name} {best.option.quant}, {best.kv_label} KV, {best.n_ctx_seq} tokens x {best.parallel}"
        )
        why.append("):", style="bold")
        parts.append(why)
        parts.extend(Text(f"  - {r}") for r in best.reasons)
        parts.append(Text(f"  - memory: {footprint_line(best.footprint)}"))
        base = result.baseline
        if base is not None:
            parts.append(Text("Uniform 4-bit (the usual default) on this card:", style="bold"))
            parts.append(
                Text(
                    f"  {base.option.name} Q4_K_M, f16 KV: E {gib(base.option.effective_bytes)} GiB, "
                    f"{base.n_ctx_seq} tokens, total {gib(base.footprint.gpu_total)} GiB"
                    + ("  (same model as #1)" if base.option.name == best.option.name else "")
                )
            )
            parts.append(Text("  " + baseline_contrast(best, base)))
        args = llama_args(best)
        parts.append(Text("llama.cpp settings for #1:", style="bold"))
        parts.append(Text("  " + args["server_cmd"]))
        py = ", ".join(f"{k}={v!r}" for k, v in args["python"].items())
        parts.append(Text(f"  llama_cpp.Llama({py})"))
        if best.parallel > 1:
            parts.append(
                Text(f"  parallel samples: llama-server -np {best.parallel}, or edgekv run --parallel {best.parallel}")
            )
    return Group(*parts)


def baseline_contrast(best: Plan, base: Plan) -> str:
    """One sentence on how #1 spends the card differently from uniform 4-bit."""
    if best.option.name == base.option.name and best.option.quant == base.option.quant:
        if best.n_ctx_seq * best.parallel > base.n_ctx_seq:
            ratio = best.n_ctx_seq * best.parallel / max(base.n_ctx_seq, 1)
            return f"#1 keeps the model and buys {ratio:.1f}x the tokens with {best.kv_label} KV."
        return "#1 is the uniform 4-bit plan itself on this card."
    bits = f"{best.option.quant} weights instead of Q4_K_M"
    tokens = best.n_ctx_seq * best.parallel
    ratio = tokens / max(base.n_ctx_seq, 1)
    more = f"{ratio:.1f}x the tokens" if ratio >= 1.05 else f"{tokens} tokens in all"
    samples = f" over {best.parallel} samples" if best.parallel > 1 else ""
    return f"#1 trades {base.option.name} for {best.option.name}: {bits}, {more}{samples} (rules 1-4)."


def footprint_line(fp: Footprint) -> str:
    return (
        f"weights {format_bytes(fp.weights_gpu)} + KV {format_bytes(fp.kv)} + compute {format_bytes(fp.compute)} "
        f"({fp.compute_source}) + CUDA overhead {format_bytes(fp.overhead)} + margin {format_bytes(fp.margin)} "
        f"= {format_bytes(fp.gpu_total)}"
    )


def spec_dict(
    spec: ModelSpec, *, kv_per_token: Mapping[KvType, int], max_ctx: Mapping[KvType, int] | None
) -> dict[str, Any]:
    return {
        "name": spec.name,
        "arch": spec.arch,
        "file_type": spec.file_type,
        "n_layer": spec.n_layer,
        "n_embd": spec.n_embd,
        "n_head": spec.n_head,
        "n_head_kv": list(spec.n_head_kv),
        "head_dim_k": spec.head_dim_k,
        "head_dim_v": spec.head_dim_v,
        "n_ff": spec.n_ff,
        "n_vocab": spec.n_vocab,
        "context_length": spec.n_ctx_train,
        "n_swa": spec.n_swa,
        "swa_layers": sum(spec.swa_layers),
        "tied_embeddings": spec.tied_embeddings,
        "n_params": spec.n_params,
        "weights_bytes": spec.weights_bytes,
        "tensor_type_bytes": spec.tensor_type_bytes(),
        "kv_bytes_per_token": {k.value: v for k, v in kv_per_token.items()},
        **({"max_ctx": {k.value: v for k, v in max_ctx.items()}} if max_ctx is not None else {}),
    }


def spec_tables(d: Mapping[str, Any], *, vram_bytes: int | None) -> Group:
    t = Table(title=f"{d['name']}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    swa = f"{d['swa_layers']} of {d['n_layer']} layers, window {d['n_swa']}" if d["swa_layers"] else "none"
    heads_kv = sorted(set(d["n_head_kv"]))
    rows = [
        ("architecture", d["arch"]), ("file type", str(d["file_type"] or "?")),
        ("parameters", f"{d['n_params'] / 1e9:.3f} B ({d['n_params']:,})"),
        ("effective size", f"{format_bytes(d['weights_bytes'])} ({d['weights_bytes']:,} bytes)"),
        ("layers / embedding / FFN", f"{d['n_layer']} / {d['n_embd']} / {d['n_ff']}"),
        ("heads / KV heads", f"{d['n_head']} / {', '.join(map(str, heads_kv))}"),
        ("head dim K / V", f"{d['head_dim_k']} / {d['head_dim_v']}"),
        ("vocab", f"{d['n_vocab']:,}"), ("trained context", f"{d['context_length']:,}"),
        ("sliding window", swa), ("tied embeddings", "yes" if d["tied_embeddings"] else "no"),
    ]  # fmt: skip
    for k, v in rows:
        t.add_row(k, v)
    types = Table(title="weight bytes by tensor type")
    types.add_column("type")
    types.add_column("bytes", justify="right")
    types.add_column("GiB", justify="right")
    types.add_column("share", justify="right")
    total = d["weights_bytes"] or 1
    for ty, n in d["tensor_type_bytes"].items():
        types.add_row(ty, f"{n:,}", gib(n), f"{100 * n / total:.1f}%")
    kv = Table(
        title="KV cache per token (full-attention layers)"
        + (f", max context on {format_bytes(vram_bytes)}" if vram_bytes else "")
    )
    kv.add_column("KV type")
    kv.add_column("bytes/token", justify="right")
    kv.add_column("KiB/token", justify="right")
    if vram_bytes:
        kv.add_column("max context (full offload)", justify="right")
    for k, v in d["kv_bytes_per_token"].items():
        row = [k, f"{v:,}", f"{v / 1024:.1f}"]
        if vram_bytes:
            row.append(f"{d['max_ctx'][k]:,}")
        kv.add_row(*row)
    return Group(t, types, kv)


def console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


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


def run_dict(
    prepared: Any, out: Any, *, model: str, vram_bytes: int | None, device: str, build: Mapping[str, str]
) -> dict[str, Any]:
    """``edgekv run --json``: the settings, the samples, timings and memory predicted and measured."""
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
            "flash_attn": cfg.flash_attn,
            "n_ubatch": cfg.n_ubatch,
        },  # fmt: skip
        "predicted": predicted_dict(fp),
        "measured": out.measured.as_dict(),
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


# -- eval --------------------------------------------------------------------------------------


def _pct(e: Mapping[str, float]) -> str:
    return f"{100 * e['value']:.1f}% [{100 * e['low']:.1f}, {100 * e['high']:.1f}]"


def eval_table(result: Any) -> Group:
    """``edgekv eval``'s summary: the configuration, accuracy with 95 % intervals, tokens and memory."""
    c, m = result.config, result.metrics
    kv = c["type_k"] if c["type_k"] == c["type_v"] else f"{c['type_k']}/{c['type_v']}"
    head = Text(
        f"{c['model']} ({c['quant']}), KV {kv}, budget {c['budget_tokens']} + reserve {c['reserve_tokens']}, "
        f"G={c['samples']}, T={c['temperature']}, {'thinking' if c['thinking'] else 'no thinking'}"
        f"{', force length' if c['force_length'] else ''}; {c['dataset']}: {m['n_problems']} problems"
        + (f" ({result.n_resumed} resumed)" if result.n_resumed else "")
    )
    t = Table(box=box.SIMPLE_HEAD, title="accuracy (95% interval)")
    t.add_column("k", justify="right")
    t.add_column("maj@k", justify="right")
    t.add_column("pass@k", justify="right")
    for k, (maj, pk) in enumerate(zip(m["maj_at_k"], m["pass_at_k"], strict=True), start=1):
        t.add_row(str(k), _pct(maj), _pct(pk))
    mem = c["memory"]
    tail = Text(
        f"pass@1 {_pct(m['pass_at_1'])}; mean {m['mean_tokens']:.0f} tokens per sample, "
        f"{100 * m['cut_fraction']:.0f}% cut at the budget; decode {m['decode_tps']:.1f} tokens/s "
        f"({result.slots} slots)\nmemory for G samples (predicted): weights {format_bytes(mem['weights'])} + "
        f"KV {format_bytes(mem['kv'])} = {format_bytes(mem['paper_total'])} (the paper's count); "
        f"with compute and overhead {format_bytes(mem['total'])}"
    )
    parts: list[Any] = [head, t, tail]
    if result.predicted is not None and result.measured is not None:
        gpu = result.measured.process_source == "nvml"
        parts.append(memory_table(result.predicted, result.measured, gpu=gpu, title="this run: predicted vs measured"))
    return Group(*parts)


def eval_dict(result: Any) -> dict[str, Any]:
    """``edgekv eval --json``: the summary line of the results file, plus the run's facts."""
    return {
        "schema": 1,
        "type": "summary",
        "config_id": result.config_id,
        "config": result.config,
        "metrics": result.metrics,
        "measured_memory": result.measured.as_dict() if result.measured else None,
        "predicted_memory": predicted_dict(result.predicted) if result.predicted else None,
        "decode_tps": result.metrics["decode_tps"],
        "slots": result.slots,
        "n_resumed": result.n_resumed,
        "out": str(result.out) if result.out else None,
    }
