"""``edgekv eval``, ``sweep``, ``frontier`` and ``calibrate``: tables and JSON dicts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from edgekv.plan.memory import Footprint
from edgekv.report.common import column_kw, fitted_table, fmt_const, gib
from edgekv.report.run import memory_table
from edgekv.units import GIB, format_bytes

if TYPE_CHECKING:  # the pick path does not import eval
    from edgekv.eval.frontier import Frontier
    from edgekv.eval.sweep import SweepPlan


SWEEP_COLUMNS = ("#", "model file", "E GiB", "KV", "budget", "G run", "G derived", "T", "GiB", "cards", "status")
# at narrow widths these go first, in this order; the model file, KV, budget, G, T, GiB and cards stay
SWEEP_OPTIONAL = ("E GiB", "G derived", "status", "#")


def sweep_table(plan: SweepPlan, *, done: frozenset[str] = frozenset(), width: int | None = None) -> Table:
    """The configurations of a sweep in run order, fitted to ``width`` (``common.fitted_table``; the
    status column only goes when no configuration is done)."""
    cards = ", ".join(format_bytes(v) for v in plan.cards)
    rows = [
        {"#": str(i), "model file": it.model_file, "E GiB": gib(it.effective_bytes), "KV": it.type_k.value,
         "budget": str(it.budget_tokens), "G run": str(it.samples),
         "G derived": ",".join(map(str, it.derived_samples)) or "-", "T": str(it.n_ctx_seq),
         "GiB": gib(it.total_bytes), "cards": ",".join(f"{v / GIB:g}G" for v in it.cards),
         "status": "done" if it.key in done else ""}
        for i, it in enumerate(plan.items, 1)
    ]  # fmt: skip
    optional = [c for c in SWEEP_OPTIONAL if c != "status" or not done]

    def build(dropped: frozenset[str]) -> Table:
        t = Table(title=f"edgekv sweep: {len(plan.items)} configurations for {cards}", box=box.SIMPLE_HEAD,
                  pad_edge=False)  # fmt: skip
        cols = [c for c in SWEEP_COLUMNS if c not in dropped]
        for col in cols:
            t.add_column(col, justify="right" if col in ("#", "E GiB", "budget", "T", "GiB") else "left",
                         **column_kw())  # fmt: skip
        for r in rows:
            t.add_row(*(r[c] for c in cols))
        return t

    return fitted_table(build, optional=optional, width=width)


FRONTIER_COLUMNS = ("model", "quant", "E GiB", "KV", "budget x G", "paper GiB", "edgekv GiB", "accuracy", "frontier",
                    "pick")  # fmt: skip
FRONTIER_OPTIONAL = ("E GiB", "pick", "frontier")  # at narrow widths these go first, in this order


def frontier_table(f: Frontier, *, all_points: bool = False, width: int | None = None) -> Table:
    """Frontier points (or all points) by paper memory: both accountings, accuracy, pick's plans;
    fitted to ``width`` (``common.fitted_table``)."""
    on_p = {(p.config_id, p.samples) for p in f.paper}
    on_r = {(p.config_id, p.samples) for p in f.runtime}
    pts = [p for p in f.points if all_points or (p.config_id, p.samples) in on_p | on_r or f.picked(p)]
    pts.sort(key=lambda p: (p.paper_bytes, -p.accuracy))
    rows = []
    for p in pts:
        key = (p.config_id, p.samples)
        front = "+".join(x for x, s in (("paper", on_p), ("edgekv", on_r)) if key in s) or "-"
        picks = ",".join(f"{m.vram_bytes / GIB:g}G" for m in f.picked(p))
        values = (p.model, p.quant, gib(p.effective_bytes), p.kv_label, p.label + (" (maj@k)" if p.derived else ""),
                  gib(p.paper_bytes), gib(p.runtime_bytes), f"{p.accuracy:.3f}", front, picks)  # fmt: skip
        rows.append(dict(zip(FRONTIER_COLUMNS, values, strict=True)))

    def build(dropped: frozenset[str]) -> Table:
        t = Table(
            title=f"accuracy vs memory: {f.dataset or 'results'}, {f.n_problems} problems, {len(f.points)} points",
            box=box.SIMPLE_HEAD, pad_edge=False,
        )  # fmt: skip
        cols = [c for c in FRONTIER_COLUMNS if c not in dropped]
        for col in cols:
            t.add_column(col, justify="right" if "GiB" in col or col == "accuracy" else "left", **column_kw())
        for r in rows:
            t.add_row(*(r[c] for c in cols))
        return t

    return fitted_table(build, optional=FRONTIER_OPTIONAL, width=width)


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

    def weak(e: Mapping[str, Any]) -> str:  # a fit calibrate found too weak: pick keeps the paper's value
        return " (paper's: fit too weak)" if e.get("actionable") is False else ""

    for label, key, e in rows:
        interval = f"{fmt_const(key, e['low'])} .. {fmt_const(key, e['high'])} ({e['n_defined']}/{fit['bootstrap']})"
        t.add_row(label, fmt_const(key, e["value"]), e["kind"], interval, fmt_const(key, pol[key]) + weak(e))
    for acc, e in c["parallel_min_bytes"].items():
        interval = f"{fmt_const('b_bytes', e['low'])} .. {fmt_const('b_bytes', e['high'])}"
        used = fmt_const("b_bytes", pol["parallel_min_bytes_by_accounting"][acc])
        t.add_row(f"G > 1 pays from ({acc})", fmt_const("b_bytes", e["value"]), e["kind"], interval, used + weak(e))
    for label, key, field in (("4-bit weights on frontier", "q4_weights_on_frontier", "flat_precision"),
                              ("4-bit KV on frontier", "q4_kv_on_frontier", "q4_kv_ok")):  # fmt: skip
        v = c[key]
        shown = "not measured" if v["value"] is None else ("yes" if v["value"] else "no")
        t.add_row(label, shown, "", f"in {v['share']:.0%} of draws", f"{field}={pol[field]}")
    parts: list[Any] = [t]
    if path is not None:
        parts.append(Text(f"Profile written: {path}\nUse it: edgekv pick --vram 8G --profile {profile['name']}"))
    return Group(*parts)


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
