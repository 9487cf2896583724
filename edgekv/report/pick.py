"""``edgekv pick``'s table, reasons and speed lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from edgekv.plan.llama_settings import llama_args
from edgekv.plan.placement import placement
from edgekv.plan.plans import PickResult, Plan
from edgekv.report.common import BAR_WIDTH, bar_legend, command_lines, fmt_const, footprint_line, gib, memory_bar
from edgekv.units import format_bytes

if TYPE_CHECKING:  # the pick path does not import eval
    from edgekv.plan.speed import PlanTime
    from edgekv.requests.pick import PickAnswer
    from edgekv.store.profiles import Applied


def pick_json(answer: PickAnswer) -> dict[str, Any]:
    """``edgekv pick --json``: the plan file (``edgekv.store.planfile.pick_dict``), and with --profile
    where each constant came from."""
    from dataclasses import asdict

    from edgekv.store.planfile import pick_dict

    data = pick_dict(answer.result, card=answer.card.card)
    if answer.ram is not None:
        r = answer.ram
        data["ram"] = {"ram_bytes": r.ram_bytes, "available_bytes": r.available_bytes, "margin_bytes": r.margin_bytes,
                       "source": r.source}  # fmt: skip
    if answer.profile is not None:
        p = answer.profile
        moved = None
        if p.default is not None and p.default.plans and answer.result.plans:
            moved = _plan_desc(p.default.plans[0]) != _plan_desc(answer.result.plans[0])
        data["profile"] = {"name": p.name, "applied": [asdict(a) for a in p.applied], "n_problems": p.n_problems,
                           "moved_top_plan": moved, "not_used": list(p.warnings)}  # fmt: skip
    return data


def pick_report(answer: PickAnswer, *, width: int) -> list[Group]:
    """pick's table (with --gpu's notes), and with --profile what it took from the profile."""
    unknown = "RAM: not known here (pass --ram): no experts in RAM, the host side is not checked"
    ram = [answer.ram.describe()] if answer.ram is not None else [unknown]
    parts = [pick_table(answer.result, width=width, notes=[*answer.card.notes, *ram])]
    if answer.profile is not None:
        p = answer.profile
        parts.append(profile_lines(p.name, p.applied, answer.result, p.default, n_problems=p.n_problems,
                                   warnings=p.warnings))  # fmt: skip
    return parts


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
    if any(p.n_cpu_moe for p in result.plans):
        parts.append(Text("cmoeN / *: the experts of the first N blocks in system RAM (llama.cpp --n-cpu-moe N)"))
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
        if best.n_cpu_moe or best.n_gpu_layers >= 0 or best.option.layout.expert_bytes:
            parts.append(Text("Where #1's weights live (GPU / RAM):", style="bold"))
            parts.append(Text("  " + ", ".join(
                f"{r.group} {gib(r.gpu_bytes)} / {gib(r.host_bytes)}" for r in placement(best))
                + f"; RAM side in all {gib(best.footprint.host_total)} GiB"))  # fmt: skip
        parts.append(Text("llama.cpp settings for #1:", style="bold"))
        parts.extend(command_lines(args["server"], width=width))  # one paste-able command, `\`-continued
        parts.extend(call_lines("llama_cpp.Llama", args["python"], width=width))
        if best.n_cpu_moe:
            parts.append(Text(f"  experts in RAM: edgekv run --n-cpu-moe {best.n_cpu_moe} (llama_cpp.Llama cannot "
                              "place them: llama-cpp-python leaves tensor_buft_overrides unset)"))  # fmt: skip
        if best.parallel > 1:
            parts.append(
                Text(f"  parallel samples: llama-server -np {best.parallel}, or edgekv run --parallel {best.parallel}")
            )
    return Group(*parts)


_MEASURE = Console(width=1000, emoji=False)


def call_lines(func: str, kwargs: dict[str, Any], *, width: int, indent: str = "  ") -> list[Text]:
    """``func(k=v, ...)`` as Python a user can paste: broken after a comma (inside the parentheses, so
    still one expression), never inside an argument; the lines are no_wrap."""
    args = [f"{k}={v!r}" for k, v in kwargs.items()]
    lines: list[str] = []
    line = f"{indent}{func}("
    for i, a in enumerate(args):
        piece = a + (", " if i < len(args) - 1 else ")")
        if len(line) + len(piece.rstrip()) > width and line.strip() != f"{func}(":
            lines.append(line.rstrip())
            line = indent + "    "
        line += piece
    if not args:
        line += ")"
    lines.append(line.rstrip())
    return [Text(ln, no_wrap=True, overflow="ignore") for ln in lines]


def _pick_row(i: int, p: Plan, result: PickResult, *, wide: bool) -> dict[str, str]:
    fp = p.footprint
    total = gib(fp.gpu_total)
    if wide:
        compute = gib(fp.compute + fp.expert_copy)  # a MoE's copied RAM experts are compute-buffer bytes
        total = f"{gib(fp.weights_gpu)}+{gib(fp.kv)}+{compute}+{gib(fp.overhead + fp.margin)} = {total}"
    row = {
        "#": str(i), "model": p.option.name,
        "quant": p.option.quant + ("" if p.n_gpu_layers < 0 else f" ngl{p.n_gpu_layers}")
        + ((f" cmoe{p.n_cpu_moe}" if wide else "*") if p.n_cpu_moe else ""),
        "E GiB": gib(p.option.effective_bytes), "KV": p.kv_label, "tokens x G": f"{p.n_ctx_seq} x {p.parallel}",
        "total": total,
    }  # fmt: skip
    if result.speed is not None:
        pt = result.speed.plans[i - 1]
        row["tok/s"] = f"{pt.decode_tps:.0f}" + (f"x{pt.n_seq}" if pt.n_seq > 1 else "")
        row["answer"] = _duration(pt.time_to_answer_s)
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
    if result.n_models:
        title += f", {result.n_models} model{'s' if result.n_models != 1 else ''} weighed"
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
    return f", {pt.decode_tps:.0f} tok/s, answer {_duration(pt.time_to_answer_s)}" if pt is not None else ""


def speed_line(result: PickResult) -> Text:
    """Where pick's speed comes from, or how to get it."""
    sp = result.speed
    if sp is None:
        return Text("speed: pass --gpu NAME (e.g. --gpu 'RTX 4060') for predicted tokens/s and time to answer")
    cs = sp.card_speed
    limit = f"; only plans that answer within {_duration(sp.max_time_s)}" if sp.max_time_s else ""
    ram = ""
    if cs.ram_bandwidth_given or any(p.n_gpu_layers >= 0 for p in result.plans):
        how = "given" if cs.ram_bandwidth_given else "assumed; set --ram-bandwidth"
        ram = f"; weights in RAM read at {cs.ram_bandwidth_bytes_per_s / 1e9:.1f} GB/s ({how})"
    return Text(
        f"speed on {cs.card.name} ({cs.card.bandwidth_bytes_per_s / 1e9:.0f} GB/s): tok/s of each sample; answer = "
        f"{cs.prompt_tokens} prompt tokens, then the rest of T generated{limit}{ram}. Constants {cs.source}."
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
    if best.option.name == base.option.name:  # same model, more precise weights
        return f"#1 keeps {best.option.name} with {bits}: {more}{samples} (rule 3)."
    return f"#1 trades {base.option.name} for {best.option.name}: {bits}, {more}{samples} (rules 1-4)."


def profile_lines(
    name: str, applied: Sequence[Applied], result: PickResult, default: PickResult | None, *,
    n_problems: int | None = None, warnings: Sequence[str] = (),
) -> Group:  # fmt: skip
    """What ``pick --profile`` took from the profile (each value with the evidence behind it), whether it
    moved #1 away from the paper's defaults, and the fits calibrate found too weak to use."""
    lines = [Text(f"Profile {name}:", style="bold")]
    for a in applied:
        if a.source == "profile":
            why = f"; {a.evidence}" if a.evidence else ""
            lines.append(Text(f"  {a.field} = {fmt_const(a.field, a.value)} from the profile "
                              f"(paper default {fmt_const(a.field, a.default)}{why})"))  # fmt: skip
        elif a.source == "flag":
            lines.append(Text(f"  {a.field}: your flag (the profile's value is not used)"))
        else:
            lines.append(Text(f"  {a.field} = {fmt_const(a.field, a.value)}: the paper's default"))
    if default is not None and result.plans and default.plans:
        mine, paper = result.plans[0], default.plans[0]
        desc, pdesc = _plan_desc(mine), _plan_desc(paper)
        same = desc == pdesc
        lines.append(
            Text(f"  #1 with the profile: {desc}" + ("  (the same as with the paper's defaults)" if same else ""))
        )
        if not same:
            lines.append(Text(f"  #1 with the paper's defaults: {pdesc}"))
            used = [a.field for a in applied if a.source == "profile"]
            on = f"{n_problems} problems" if n_problems is not None else "the profile's sweep"
            lines.append(Text(f"  The profile moved #1, on the evidence of {on} ({', '.join(used)}; the intervals "
                              "above)"))  # fmt: skip
    for w in warnings:
        lines.append(Text(f"  not used: {w}"))
    return Group(*lines)


def _plan_desc(p: Plan) -> str:
    return f"{p.option.name} {p.option.quant}, {p.kv_label} KV, {p.n_ctx_seq} tokens x {p.parallel}"


# -- eval --------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    from edgekv.plan.timing import format_duration  # only with a card: off pick's plain path

    return format_duration(seconds)
