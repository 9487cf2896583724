"""``edgekv convert``'s table: each file written, its size, effective size and KV bytes per token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from edgekv.report.common import column_kw, fitted_table
from edgekv.units import format_bytes

if TYPE_CHECKING:
    from edgekv.convert.checkpoint import ConvertResult


COLUMNS = ("file", "size", "effective size", "KV B/token f16", "q8_0", "q4_0", "note")
# at narrow widths these go first, in this order (the file, its size and f16 KV per token stay)
OPTIONAL = ("q4_0", "q8_0", "effective size")


def convert_table(result: ConvertResult, *, width: int | None = None) -> Table:
    """One row per GGUF of the ladder ("reused" where an earlier run's file was kept), fitted to
    ``width`` (``common.fitted_table``; the file name is never cut)."""
    rows = []
    for f in result.files:
        kv = f.kv_bytes_per_token
        values = (f.name, format_bytes(f.file_bytes), format_bytes(f.weights_bytes), str(kv["f16"]), str(kv["q8_0"]),
                  str(kv["q4_0"]), "reused" if f.reused else "")  # fmt: skip
        rows.append(dict(zip(COLUMNS, values, strict=True)))
    optional = ("note", *OPTIONAL) if not any(r["note"] for r in rows) else OPTIONAL

    def build(dropped: frozenset[str]) -> Table:
        table = Table(title=f"{result.model_name} ({result.arch}) -> {result.outdir}", pad_edge=False)
        cols = [c for c in COLUMNS if c not in dropped]
        for col in cols:
            table.add_column(col, justify="left" if col in ("file", "note") else "right", no_wrap=col == "file",
                             **column_kw())  # fmt: skip
        for r in rows:
            table.add_row(*(r[c] for c in cols))
        return table

    return fitted_table(build, optional=optional, width=width)
