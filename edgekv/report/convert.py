"""``edgekv convert``'s table: each file written, its size, effective size and KV bytes per token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from edgekv.units import format_bytes

if TYPE_CHECKING:
    from edgekv.convert.checkpoint import ConvertResult


def convert_table(result: ConvertResult) -> Table:
    """One row per GGUF of the ladder ("reused" where an earlier run's file was kept)."""
    table = Table(title=f"{result.model_name} ({result.arch}) -> {result.outdir}")
    for col in ("file", "size", "effective size", "KV B/token f16", "q8_0", "q4_0", "note"):
        table.add_column(col, justify="left" if col in ("file", "note") else "right", no_wrap=col == "file")
    for f in result.files:
        kv = f.kv_bytes_per_token
        table.add_row(
            f.name, format_bytes(f.file_bytes), format_bytes(f.weights_bytes),
            str(kv["f16"]), str(kv["q8_0"]), str(kv["q4_0"]), "reused" if f.reused else "",
        )  # fmt: skip
    return table
