"""``edgekv catalog``'s output: the table of what pick considers, and the lines of add and remove."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from edgekv.units import format_bytes

if TYPE_CHECKING:
    from edgekv.requests.catalog import Added


def list_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per entry: name, family, arch (MoE not ranked yet: marked), size, Qwen3-equivalent size
    from published scores, files published / quants sized, where the entry comes from."""
    t = Table(title=f"catalog: {len(rows)} models", title_justify="left", caption=_CAPTION, caption_justify="left")
    t.add_column("model", no_wrap=True)
    t.add_column("family", no_wrap=True)
    t.add_column("arch")
    t.add_column("params", justify="right")
    t.add_column("Q3-eq", justify="right")
    t.add_column("files", justify="right")
    t.add_column("from")
    for r in rows:
        cap = f"{r['capacity_params'] / 1e9:.1f}B" if r["capacity_params"] else "-"
        arch = r["arch"] if r["ranked"] else f"{r['arch']}: not ranked"
        origin = "built-in" if r["origin"] == "built-in" else f"user: {r['source']}"
        files = f"{len(r['files'])}/{len(r['quants'])}"
        t.add_row(r["name"], r["family"], arch, f"{r['n_params'] / 1e9:.2f}B", cap, files, origin)
    return t


_CAPTION = (
    "Q3-eq: the Qwen3 size with the same published AIME scores (pick --capacity published). files: quants "
    "with a published file / quants sized. not ranked: mixture of experts, sized but not ranked by pick yet."
)


def problem_lines(problems: Sequence[str]) -> list[str]:
    return [f"warning: {p}" for p in problems]


def added_lines(added: Sequence[Added]) -> list[str]:
    out = []
    for a in added:
        out.append(
            f"added {a.name} ({a.arch}, {a.n_params / 1e9:.2f}B parameters) from {a.repo}: "
            f"{', '.join(a.quants)} -> {a.path}"
        )
        out += [f"  skipped {s}" for s in a.skipped]
    return out


def added_dict(added: Sequence[Added]) -> list[dict[str, Any]]:
    return [
        {"name": a.name, "repo": a.repo, "path": str(a.path), "arch": a.arch, "n_params": a.n_params,
         "quants": a.quants, "skipped": a.skipped}
        for a in added
    ]  # fmt: skip


def size(n_bytes: int) -> str:
    return format_bytes(n_bytes)
