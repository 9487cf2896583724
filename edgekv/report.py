"""Formatting only: plans, specs and footprints as rich tables or JSON-ready dicts.

Imports rich (and nothing heavy). The CLI hands results here; no arithmetic beyond unit display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from edgekv.model.quant import KvType
from edgekv.model.spec import ModelSpec
from edgekv.plan.memory import Footprint
from edgekv.plan.planfile import llama_args
from edgekv.plan.policy import PickResult, Plan
from edgekv.plan.timing import PlanTime, format_duration
from edgekv.units import GIB, format_bytes

if TYPE_CHECKING:  # the pick path does not import eval
    from edgekv.eval.frontier import Frontier
    from edgekv.eval.profile import Applied
    from edgekv.eval.sweep import SweepPlan

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


def pick_table(result: PickResult, *, width: int = 100, notes: Sequence[str] = ()) -> Group:
    """pick's table and its explanation, fitted to ``width`` columns without breaking a model name:
    at narrow widths the memory bar shrinks, then goes; then the E, total and # columns go, one by one
    (the bar retried after each)."""
    vram = result.budget.vram_bytes
    speed = result.speed
    wide = width >= 110 + (16 if speed else 0)
    bar_width = BAR_WIDTH if wide else max(10, min(BAR_WIDTH, width - (62 + (16 if speed else 0))))
    rows = [_pick_row(i, p, result, wide=wide) for i, p in enumerate(result.plans, 1)]
    drops: tuple[tuple[str, ...], ...] = ((), ("E GiB",), ("E GiB", "total"), ("E GiB", "total", "#"))
    for drop, bar in [(d, bar) for d in drops for bar in (*range(bar_width, 7, -2), 0)]:
        t = _pick_grid(result, rows, vram, drop=drop, bar_width=bar, wide=wide)
        if Measurement.get(_MEASURE, _MEASURE.options, t).maximum <= width:  # natural width: nothing cut
            break
    parts: list[Any] = [t]
    if any(c.header == "memory" for c in t.columns):
        parts.append(bar_legend())
    parts.extend(Text(n) for n in notes)
    parts.append(speed_line(result))
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
        for line in device_lines(best, result):
            parts.append(Text(f"    {line}"))
        base = result.baseline
        if base is not None:
            parts.append(Text("Uniform 4-bit (the usual default) on this card:", style="bold"))
            parts.append(
                Text(
                    f"  {base.option.name} Q4_K_M, f16 KV: E {gib(base.option.effective_bytes)} GiB, "
                    f"{base.n_ctx_seq} tokens, total {gib(base.footprint.gpu_total)} GiB"
                    + (_answer(result.speed.baseline) if result.speed is not None else "")
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


_MEASURE = Console(width=1000)


def _pick_row(i: int, p: Plan, result: PickResult, *, wide: bool) -> dict[str, str]:
    fp = p.footprint
    total = gib(fp.gpu_total)
    if wide:
        total = f"{gib(fp.weights_gpu)}+{gib(fp.kv)}+{gib(fp.compute)}+{gib(fp.overhead + fp.margin)} = {total}"
    row = {
        "#": str(i), "model": p.option.name,
        "quant": p.option.quant + ("" if p.n_gpu_layers < 0 else f" ngl{p.n_gpu_layers}"),
        "E GiB": gib(p.option.effective_bytes), "KV": p.kv_label, "tokens x G": f"{p.n_ctx_seq} x {p.parallel}",
        "total": total,
    }  # fmt: skip
    if result.speed is not None:
        pt = result.speed.plans[i - 1]
        row["tok/s"] = f"{pt.decode_tps:.0f}" + (f"x{pt.n_seq}" if pt.n_seq > 1 else "")
        row["answer"] = format_duration(pt.time_to_answer_s)
    return row


def _pick_grid(
    result: PickResult, rows: list[dict[str, str]], vram: int, *, drop: tuple[str, ...], bar_width: int, wide: bool
) -> Table:
    sp = result.speed
    devs = result.budget.devices
    if devs:
        split = ",".join(f"{x:g}" for x in result.budget.tensor_split)
        card = " + ".join(format_bytes(d.vram_bytes) for d in devs) + f" ({len(devs)} devices, -ts {split})"
    else:
        card = f"{format_bytes(vram)} card" if sp is None else f"{sp.card_speed.card.name}, {gib(vram)} GiB"
    title = f"edgekv pick: {card}, task {result.policy.task.value}"
    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    cols: list[tuple[str, str, dict[str, Any]]] = [
        ("#", "#", {"justify": "right"}), ("model", "model", {"no_wrap": True}), ("quant", "quant", {"no_wrap": True}),
        ("E GiB", "E GiB", {"justify": "right", "no_wrap": True}), ("KV", "KV", {"no_wrap": True}),
        ("tokens x G", "tokens x G", {"justify": "right", "no_wrap": True}),
        ("total", "weights+KV+compute+overhead GiB" if wide else "GiB", {"justify": "right", "no_wrap": True}),
    ]  # fmt: skip
    if result.speed is not None:
        cols += [("tok/s", "tok/s", {"justify": "right", "no_wrap": True}),
                 ("answer", "answer", {"justify": "right", "no_wrap": True})]  # fmt: skip
    cols = [c for c in cols if c[0] not in drop]
    for _key, header, kw in cols:
        t.add_column(header, **kw)
    if bar_width:
        t.add_column("memory", no_wrap=True)
    for i, row in enumerate(rows):
        cells: list[Any] = [row[key] for key, _h, _kw in cols]
        if bar_width:
            cells.append(memory_bar(result.plans[i].footprint, vram, width=bar_width))
        t.add_row(*cells)
    return t


def _answer(pt: PlanTime | None) -> str:
    return f", {pt.decode_tps:.0f} tok/s, answer {format_duration(pt.time_to_answer_s)}" if pt is not None else ""


def speed_line(result: PickResult) -> Text:
    """Where pick's speed comes from, or how to get it."""
    sp = result.speed
    if sp is None:
        return Text("speed: pass --gpu NAME (e.g. --gpu 'RTX 4060') for predicted tokens/s and time to answer")
    cs = sp.card_speed
    limit = f"; only plans that answer within {format_duration(sp.max_time_s)}" if sp.max_time_s else ""
    return Text(
        f"speed on {cs.card.name} ({cs.card.bandwidth_bytes_per_s / 1e9:.0f} GB/s): tok/s of each sample; answer = "
        f"{cs.prompt_tokens} prompt tokens, then the rest of T generated{limit}. Constants {cs.source}."
    )


def device_lines(plan: Plan, result: PickResult) -> list[str]:
    """One line per device of a split: its layers' weights and KV, its compute, overhead, margin."""
    devs = result.budget.devices
    if not plan.device_footprints or not devs:
        return []
    return [
        f"{d.name}: {footprint_line(fp)} of {format_bytes(d.vram_bytes)}"
        for d, fp in zip(devs, plan.device_footprints, strict=True)
    ]


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


def vocab_only_dict(v: Any) -> dict[str, Any]:
    """A vocab-only GGUF (``gguf_reader.VocabOnly``) for ``edgekv inspect``: metadata, no sizes."""
    return {
        "name": v.name, "arch": v.arch, "vocab_only": True, "gguf_version": v.gguf_version, "n_keys": v.n_keys,
        "tokenizer_model": v.tokenizer_model, "n_vocab": v.n_vocab, "file_bytes": v.file_bytes, "n_tensors": 0,
    }  # fmt: skip


def vocab_only_table(d: Mapping[str, Any]) -> Table:
    t = Table(title=f"{d['name']}: vocab-only GGUF", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    rows = [
        ("architecture", str(d["arch"] or "?")), ("GGUF version", str(d["gguf_version"])),
        ("keys", str(d["n_keys"])), ("tokenizer", str(d["tokenizer_model"] or "?")),
        ("vocab", f"{d['n_vocab']:,}"), ("file", f"{format_bytes(d['file_bytes'])}"),
        ("weights", "none: vocab-only (a tokenizer, no tensors), so there are no weights or KV cache to size"),
    ]  # fmt: skip
    for k, val in rows:
        t.add_row(k, val)
    return t


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


def sweep_table(plan: SweepPlan, *, done: frozenset[str] = frozenset()) -> Table:
    """The configurations of a sweep in run order."""
    cards = ", ".join(format_bytes(v) for v in plan.cards)
    t = Table(title=f"edgekv sweep: {len(plan.items)} configurations for {cards}", box=box.SIMPLE_HEAD)
    for col in ("#", "model file", "E GiB", "KV", "budget", "G run", "G derived", "T", "GiB", "cards", "status"):
        t.add_column(col, justify="right" if col in ("#", "E GiB", "budget", "T", "GiB") else "left")
    for i, it in enumerate(plan.items, 1):
        t.add_row(
            str(i), it.model_file, gib(it.effective_bytes), it.type_k.value, str(it.budget_tokens), str(it.samples),
            ",".join(map(str, it.derived_samples)) or "-", str(it.n_ctx_seq), gib(it.total_bytes),
            ",".join(f"{v / GIB:g}G" for v in it.cards), "done" if it.key in done else "",
        )  # fmt: skip
    return t


def frontier_table(f: Frontier, *, all_points: bool = False) -> Table:
    """Frontier points (or all points) by paper memory: both accountings, accuracy, pick's plans."""
    on_p = {(p.config_id, p.samples) for p in f.paper}
    on_r = {(p.config_id, p.samples) for p in f.runtime}
    pts = [p for p in f.points if all_points or (p.config_id, p.samples) in on_p | on_r or f.picked(p)]
    pts.sort(key=lambda p: (p.paper_bytes, -p.accuracy))
    t = Table(
        title=f"accuracy vs memory: {f.dataset or 'results'}, {f.n_problems} problems, {len(f.points)} points",
        box=box.SIMPLE_HEAD,
    )
    for col in (
        "model",
        "quant",
        "E GiB",
        "KV",
        "budget x G",
        "paper GiB",
        "edgekv GiB",
        "accuracy",
        "frontier",
        "pick",
    ):
        t.add_column(col, justify="right" if "GiB" in col or col == "accuracy" else "left")
    for p in pts:
        key = (p.config_id, p.samples)
        front = "+".join(x for x, s in (("paper", on_p), ("edgekv", on_r)) if key in s) or "-"
        picks = ",".join(f"{m.vram_bytes / GIB:g}G" for m in f.picked(p))
        t.add_row(
            p.model, p.quant, gib(p.effective_bytes), p.kv_label, p.label + (" (maj@k)" if p.derived else ""),
            gib(p.paper_bytes), gib(p.runtime_bytes), f"{p.accuracy:.3f}", front, picks,
        )  # fmt: skip
    return t


def frontier_dict(f: Frontier) -> dict[str, Any]:
    on_p = {(p.config_id, p.samples) for p in f.paper}
    on_r = {(p.config_id, p.samples) for p in f.runtime}
    rows = []
    for p in f.points:
        d = {k: getattr(p, k) for k in p.__slots__}
        d["on_paper_frontier"] = (p.config_id, p.samples) in on_p
        d["on_runtime_frontier"] = (p.config_id, p.samples) in on_r
        d["picked_for"] = [m.vram_bytes for m in f.picked(p)]
        rows.append(d)
    return {"schema": 1, "dataset": f.dataset, "n_problems": f.n_problems, "points": rows}


def _fmt_const(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("bytes"):
        return format_bytes(value)
    if name.endswith("tokens"):
        return f"{int(value)} tokens"
    return str(value)


def calibration_table(profile: Mapping[str, Any], *, path: Path | None = None) -> Group:
    """A profile's fits: value, kind, bootstrap interval, and what pick will use."""
    fit = profile["fit"]
    t = Table(
        title=f"edgekv calibrate: {profile['dataset']}, {profile['n_problems']} problems, "
        f"{profile['n_configs']} configurations ({fit['accounting']} accounting)",
        box=box.SIMPLE_HEAD,
    )
    for col in ("constant", "fitted", "kind", f"{fit['level']:.0%} interval (bootstrap)", "pick uses"):
        t.add_column(col)
    c, pol = profile["constants"], profile["policy"]
    rows = [("E1", "e1_bytes", c["e1_bytes"]), ("token saturation", "saturation_tokens", c["saturation_tokens"])]
    for label, key, e in rows:
        interval = f"{_fmt_const(key, e['low'])} .. {_fmt_const(key, e['high'])} ({e['n_defined']}/{fit['bootstrap']})"
        t.add_row(label, _fmt_const(key, e["value"]), e["kind"], interval, _fmt_const(key, pol[key]))
    for acc, e in c["parallel_min_bytes"].items():
        interval = f"{_fmt_const('b_bytes', e['low'])} .. {_fmt_const('b_bytes', e['high'])}"
        used = _fmt_const("b_bytes", pol["parallel_min_bytes_by_accounting"][acc])
        t.add_row(f"G > 1 pays from ({acc})", _fmt_const("b_bytes", e["value"]), e["kind"], interval, used)
    for label, key, field in (("4-bit weights on frontier", "q4_weights_on_frontier", "flat_precision"),
                              ("4-bit KV on frontier", "q4_kv_on_frontier", "q4_kv_ok")):  # fmt: skip
        v = c[key]
        shown = "not measured" if v["value"] is None else ("yes" if v["value"] else "no")
        t.add_row(label, shown, "", f"in {v['share']:.0%} of draws", f"{field}={pol[field]}")
    parts: list[Any] = [t]
    if path is not None:
        parts.append(Text(f"Profile written: {path}\nUse it: edgekv pick --vram 8G --profile {profile['name']}"))
    return Group(*parts)


def profile_lines(name: str, applied: Sequence[Applied], result: PickResult, default: PickResult | None) -> Group:
    """What ``pick --profile`` took from the profile, and how its #1 differs from the paper's defaults."""
    lines = [Text(f"Profile {name}:", style="bold")]
    for a in applied:
        if a.source == "profile":
            lines.append(Text(f"  {a.field} = {_fmt_const(a.field, a.value)} from the profile "
                              f"(paper default {_fmt_const(a.field, a.default)})"))  # fmt: skip
        elif a.source == "flag":
            lines.append(Text(f"  {a.field}: your flag (the profile's value is not used)"))
        else:
            lines.append(Text(f"  {a.field} = {_fmt_const(a.field, a.value)}: the paper's default"))
    if default is not None and result.plans and default.plans:
        mine, paper = result.plans[0], default.plans[0]
        desc, pdesc = _plan_desc(mine), _plan_desc(paper)
        same = desc == pdesc
        lines.append(
            Text(f"  #1 with the profile: {desc}" + ("  (the same as with the paper's defaults)" if same else ""))
        )
        if not same:
            lines.append(Text(f"  #1 with the paper's defaults: {pdesc}"))
    return Group(*lines)


def _plan_desc(p: Plan) -> str:
    return f"{p.option.name} {p.option.quant}, {p.kv_label} KV, {p.n_ctx_seq} tokens x {p.parallel}"


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
        "predicted_memory": _predicted(result.predicted) if result.predicted else None,
        "decode_tps": result.metrics["decode_tps"],
        "slots": result.slots,
        "n_resumed": result.n_resumed,
        "out": str(result.out) if result.out else None,
    }


def _predicted(fp: Footprint) -> dict[str, int | str]:
    from edgekv.llama.records import predicted_dict  # not on pick's path (statistics, csv)

    return predicted_dict(fp)


def parallel_table(rows: list[dict[str, Any]]) -> Table:
    """``edgekv bench --parallel``: aggregate and per-sample decode tokens/s per G."""
    head = rows[0] if rows else {}
    title = f"edgekv bench --parallel: {head.get('model', '')} on {head.get('device', '?')}"
    t = Table(title=title, box=box.SIMPLE_HEAD)
    for col in ("KV", "G", "prompt t/s", "decode t/s (all)", "per sample", "sampling", "status"):
        t.add_column(col, justify="left" if col in ("KV", "status") else "right")
    for r in rows:
        ok = r["status"] == "ok"
        kv = r["type_k"] if r["type_k"] == r["type_v"] else f"{r['type_k']}/{r['type_v']}"
        t.add_row(
            kv, str(r["n_seq"]),
            f"{r['prompt_tps']['median']:.1f}" if ok else "", f"{r['decode_tps']['median']:.1f}" if ok else "",
            f"{r['per_seq_tps']:.1f}" if ok else "", f"{100 * r['sample_share']:.0f}%" if ok else "",
            "ok" if ok else "refused",
        )  # fmt: skip
    return t
