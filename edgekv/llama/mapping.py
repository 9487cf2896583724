"""Give back the pages of a memory-mapped GGUF that hold tensors now on the GPU.

llama.cpp maps the whole GGUF (``llama_mmap``: ``MAP_SHARED``, on Linux with ``MAP_POPULATE``),
uploads the GPU tensors out of that mapping, then unmaps only the part before the first and after
the last tensor it keeps in host memory (``unmap_fragment``). GPU tensors that lie between two host
tensors stay mapped and resident. With the experts of the first N blocks in RAM those are each of
the N blocks' attention, norms and router: measured on the H100 (bench/results/gpu/moe_cap.jsonl),
+0.91 GB of RSS over the plan's host side for Qwen3-30B-A3B with 43 blocks' experts in RAM and
+0.40 GB for gpt-oss-20b with 14, the size of those tensors to the megabyte.

Nothing reads those pages again, so after a load with experts in RAM edgekv drops them from the process
(``madvise(MADV_DONTNEED)`` on the page-aligned inside of each run of GPU tensors,
:func:`edgekv.plan.placement.gpu_file_spans`). For a shared read-only file mapping that only clears
page-table entries: the page cache keeps the data as clean, reclaimable memory, and a page touched
again faults back in from the file with the same bytes. The process's RSS is then the plan's host
side (the tensors in RAM and the host buffers). Linux only; elsewhere, or if the mapping is not
found (``--no-mmap`` builds, a file replaced since), nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import re
import sys
from pathlib import Path

from edgekv.logconfig import get_logger
from edgekv.model.gguf_reader import read_header
from edgekv.plan.placement import gpu_file_spans

log = get_logger(__name__)

MADV_DONTNEED = 4  # <sys/mman.h>, the same on every Linux architecture
PAGE = mmap.PAGESIZE


def file_mappings(path: str | os.PathLike[str], maps: str = "/proc/self/maps") -> list[tuple[int, int, int]]:
    """This process's mappings of ``path``: (start address, end address, file offset), by device
    and inode (so a link or another spelling of the path is the same file)."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    found = []
    try:
        lines = Path(maps).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 5 or int(parts[4]) != st.st_ino or not _same_dev(parts[3], dev):
            continue
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        found.append((lo, hi, int(parts[2], 16)))
    return found


def _same_dev(field: str, dev: str) -> bool:
    major, _, minor = field.partition(":")
    want_major, _, want_minor = dev.partition(":")
    return int(major, 16) == int(want_major, 16) and int(minor, 16) == int(want_minor, 16)


def release_file_ranges(path: str | os.PathLike[str], ranges: list[tuple[int, int]]) -> int:
    """``madvise(MADV_DONTNEED)`` the whole pages of this process's mappings of ``path`` that lie in
    ``ranges`` (file offsets, end exclusive); the bytes given back. 0 off Linux."""
    if not sys.platform.startswith("linux") or not ranges:
        return 0
    maps = file_mappings(path)
    if not maps:
        return 0
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    released = 0
    for lo_file, hi_file in ranges:
        for start, end, offset in maps:
            a = max(lo_file, offset)
            b = min(hi_file, offset + (end - start))
            a = -(-a // PAGE) * PAGE  # whole pages inside the range only: its neighbours stay
            b = b // PAGE * PAGE
            if b <= a:
                continue
            addr = start + (a - offset)
            if libc.madvise(ctypes.c_void_p(addr), b - a, MADV_DONTNEED) != 0:
                log.debug("madvise failed (errno %d) on %d bytes of %s", ctypes.get_errno(), b - a, path)
                continue
            released += b - a
    return released


_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def shard_paths(path: str | os.PathLike[str]) -> list[Path]:
    """Every shard of a split GGUF named as llama.cpp's gguf-split names them (``x-00001-of-00003.gguf``),
    in order; a single file alone. llama.cpp maps each shard on its own."""
    p = Path(path)
    m = _SHARD.search(p.name)
    if not m:
        return [p]
    n, stem = int(m.group(2)), p.name[: m.start()]
    return [p.with_name(f"{stem}-{i:05d}-of-{n:05d}.gguf") for i in range(1, n + 1)]


def release_gpu_tensors(path: str | os.PathLike[str], *, n_gpu_layers: int, n_cpu_moe: int) -> int:
    """After a load with GPU layers: give back the mapped pages of the tensors on the GPU (module
    docstring), in every shard of a split GGUF; the bytes given back."""
    if n_gpu_layers == 0 or not sys.platform.startswith("linux"):
        return 0
    shards = [p for p in shard_paths(path) if p.is_file()]
    headers = [(p, read_header(p)) for p in shards]
    if not headers:
        return 0
    fields = headers[0][1].fields
    n_layer = fields.get(f"{fields.get('general.architecture')}.block_count")
    if not isinstance(n_layer, int):
        n_layer = max(
            (int(t.name.split(".")[1]) + 1 for _, h in headers for t in h.tensors if t.name.startswith("blk.")),
            default=0,
        )
    released = 0
    for p, header in headers:
        spans = gpu_file_spans(
            ((t.name, o, t.n_bytes) for t, o in zip(header.tensors, header.tensor_offsets, strict=True)),
            n_layer=n_layer, n_gpu_layers=n_gpu_layers, n_cpu_moe=n_cpu_moe,
        )  # fmt: skip
        base = header.data_offset
        released += release_file_ranges(p, [(base + a, base + b) for a, b in spans])
    if released:
        log.debug("gave back %d mapped bytes of GPU tensors of %s", released, Path(path).name)
    return released
