"""System RAM for ``--ram``'s default: the machine's available memory less a margin.

Read from ``/proc/meminfo`` (``MemAvailable``: what the kernel can give without swapping) on Linux;
elsewhere ``os.sysconf`` (free physical pages, which leaves out reclaimable cache: the safe side);
never an import heavier than ``os``. ``EDGEKV_RAM`` (a size, e.g. ``32G``) overrides the detection:
for reproducible outputs (the README's, tests') and machines where detection is wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgekv.units import GIB, format_bytes, parse_size

RAM_MARGIN_FRACTION = 0.10  # of the available RAM, kept for the OS, the Python process and page cache
RAM_MARGIN_MIN_BYTES = 1 * GIB


@dataclass(frozen=True, slots=True)
class HostRam:
    """The RAM a plan's host side may use, and where that figure came from (said in the output)."""

    ram_bytes: int
    available_bytes: int | None  # None: given, not detected
    margin_bytes: int
    source: str  # "--ram", "EDGEKV_RAM", "/proc/meminfo", "sysconf"

    def describe(self) -> str:
        if self.available_bytes is None:
            return f"RAM {format_bytes(self.ram_bytes)} ({self.source})"
        return (
            f"RAM {format_bytes(self.ram_bytes)}: {format_bytes(self.available_bytes)} available "
            f"({self.source}) less a {format_bytes(self.margin_bytes)} margin; set it with --ram"
        )


def available_ram() -> tuple[int, str] | None:
    """(bytes available, how it was read), or None when this system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "/proc/meminfo"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "sysconf"
    except (ValueError, OSError, AttributeError):
        return None


def host_ram(flag: str | None) -> HostRam | None:
    """``--ram``'s value (0 = GPU only), else ``EDGEKV_RAM``, else the available RAM less
    max(10%, 1 GiB); None when none of them is known (the host side is then not checked).

    Raises:
        BadArgument: a value that is not a size (as strict as --vram; 0 is allowed).
    """
    if flag is not None:
        return HostRam(parse_size(flag, allow_zero=True), None, 0, "--ram")
    env = os.environ.get("EDGEKV_RAM")
    if env:
        return HostRam(parse_size(env, allow_zero=True), None, 0, "EDGEKV_RAM")
    found = available_ram()
    if found is None:
        return None
    avail, source = found
    margin = max(RAM_MARGIN_MIN_BYTES, round(avail * RAM_MARGIN_FRACTION))
    return HostRam(max(avail - margin, 0), avail, margin, source)
