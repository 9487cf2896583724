"""The frontier as a PNG (matplotlib, the ``plot`` extra): accuracy vs memory (log x), both accountings.

One marker per model (colour) and weight precision (shape), the Pareto line with each of its
points labelled (budget, G, KV type; the others only as markers, so that a dense sweep stays
readable), pick's plans ringed and labelled with their cards, E1 marked where it falls inside the
measured memory range (otherwise the title says where it is). matplotlib is imported only here,
only when called.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgekv.errors import RuntimeUnavailable
from edgekv.eval.frontier import Accounting, Frontier
from edgekv.plan.plans import E1_BYTES, bits_class
from edgekv.units import GIB

MARKERS = {3: "o", 2: "D", 1: "s", 0: "^", -1: "v"}  # bits_class -> shape: 8/16, 6, 5, 4, <4 bits
TITLES = {Accounting.PAPER: "paper: weights + KV", Accounting.RUNTIME: "edgekv: whole process"}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RuntimeUnavailable(
            "matplotlib is needed to draw the frontier (--png)",
            hint="install it with pip install 'edgekv[plot]', or drop --png for the table",
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_frontier(f: Frontier, path: str | os.PathLike[str], *, e1_bytes: int = E1_BYTES) -> Path:
    """Draw ``f`` into ``path`` (PNG), one panel per accounting.

    Raises:
        RuntimeUnavailable: matplotlib is not installed.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), sharey=True)
    models = sorted({p.model for p in f.points})
    colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(models)}
    for ax, acc in zip(axes, (Accounting.PAPER, Accounting.RUNTIME), strict=True):
        seen: set[tuple[str, str]] = set()
        for p in f.points:
            key = (p.model, p.quant)
            label = None if key in seen else f"{p.model} {p.quant}"
            ax.scatter(p.memory(acc) / GIB, p.accuracy, color=colors[p.model], marker=MARKERS[bits_class(p.quant)],
                       alpha=0.5 if p.derived else 0.9, label=label)  # fmt: skip
            seen.add(key)
        front = f.on(acc)
        ax.step([p.memory(acc) / GIB for p in front], [p.accuracy for p in front], where="post", color="black",
                lw=1.2, label="Pareto frontier")  # fmt: skip
        for p in front:
            ax.annotate(f"{p.label} {p.kv_label}", (p.memory(acc) / GIB, p.accuracy), fontsize=7,
                        xytext=(4, 2), textcoords="offset points")  # fmt: skip
        for p in f.points:
            cards = sorted({m.vram_bytes for m in f.picked(p)})
            if cards:
                ax.scatter(p.memory(acc) / GIB, p.accuracy, s=260, facecolors="none", edgecolors="red", lw=1.5)
                text = "pick " + ",".join(f"{c / GIB:g}G" for c in cards)
                ax.annotate(text, (p.memory(acc) / GIB, p.accuracy), color="red", fontsize=7, xytext=(6, -10),
                            textcoords="offset points")  # fmt: skip
        mems = [p.memory(acc) for p in f.points] or [e1_bytes]
        title = TITLES[acc]
        if min(mems) / 1.5 <= e1_bytes <= max(mems) * 1.5:
            ax.axvline(e1_bytes / GIB, color="gray", ls="--", lw=1)
            ax.text(e1_bytes / GIB, 0.02, f" E1 = {e1_bytes / GIB:.2f} GiB", color="gray", fontsize=8,
                    transform=ax.get_xaxis_transform())  # fmt: skip
        else:
            side = "right" if e1_bytes > max(mems) else "left"
            title += f" (E1 = {e1_bytes / GIB:.2f} GiB, {side} of every point)"
        ax.set_xscale("log")
        ax.set_xlabel("memory (GiB, log)")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"accuracy ({f.dataset or 'dataset'}, {f.n_problems} problems)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
