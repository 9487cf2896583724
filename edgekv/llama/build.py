"""llama-cpp-python itself: which build this is, the model/context parameters edgekv sets, and
the dry run that measures buffers without allocating them. The runner and session build on it."""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import Any

from edgekv.errors import KvConfigError, LlamaError, ModelFileNotFound, RuntimeUnavailable
from edgekv.llama.log import LlamaBuffers, LlamaLog
from edgekv.logconfig import get_logger
from edgekv.model.quant import KvType
from edgekv.plan import bounds
from edgekv.plan.memory import RunConfig

log = get_logger(__name__)


LLAMA_CPP_VERSION = "0.3.36"
INSTALL_HINT = f"pip install llama-cpp-python=={LLAMA_CPP_VERSION}"
CUDA_REINSTALL = (
    f'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python=={LLAMA_CPP_VERSION}'
)
# ggml-cuda builds flash-attention kernels only for these K-V pairs unless GGML_CUDA_FA_QUANTS
# says otherwise (ggml/CMakeLists.txt: "q4_0-q4_0;q8_0-q8_0;f16-f16;bf16-bf16").
CUDA_FA_DEFAULT_PAIRS = frozenset({("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0"), ("bf16", "bf16")})


def llama_lib() -> Any:
    """Import llama_cpp (once), or say how to install it."""
    try:
        import llama_cpp
    except ImportError as e:
        raise RuntimeUnavailable("llama-cpp-python is not installed", hint=INSTALL_HINT) from e
    if not getattr(llama_lib, "initialized", False):
        llama_cpp.llama_backend_init()
        llama_lib.initialized = True  # type: ignore[attr-defined]
    return llama_cpp


# -- build facts ------------------------------------------------------------------------------


def system_info() -> str:
    """llama_print_system_info(): the backends and features of this build."""
    return str(llama_lib().llama_print_system_info().decode("utf-8", "replace"))


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can put layers on a GPU."""
    return bool(llama_lib().llama_supports_gpu_offload())


def device_is_gpu(cfg: RunConfig) -> bool:
    """Whether this run puts anything on a GPU: a GPU build with layers to offload."""
    return cfg.n_gpu_layers != 0 and gpu_offload_supported()


def is_cuda_build(info: str | None = None) -> bool:
    return "CUDA :" in (system_info() if info is None else info)


def build_info() -> dict[str, str]:
    """llama-cpp-python version and llama.cpp system info, for benchmark records."""
    llama_cpp = llama_lib()
    return {"llama_cpp_python": str(llama_cpp.__version__), "system_info": system_info().strip()}


def cuda_fa_pairs(info: str) -> frozenset[tuple[str, str]] | None:
    """K-V type pairs with CUDA flash-attention kernels in this build; None = all of them."""
    if re.search(r"FA_ALL_QUANTS = 1", info):
        return None
    m = re.search(r"FA_QUANTS = ([^|]+)\|", info)
    if not m:
        return CUDA_FA_DEFAULT_PAIRS
    text = m.group(1).strip().lower()
    if text == "all":
        return None
    pairs = {("f16", "f16")}  # ggml/cmake/common.cmake always compiles f16-f16
    for item in re.split(r"[,;]", text):
        k, _, v = item.strip().partition("-")
        if k and v:
            pairs.add((k, v))
    return frozenset(pairs)


def resolve_flash_attn(
    type_k: KvType, type_v: KvType, flash_attn: bool | None = None, *, info: str | None = None
) -> bool:
    """Decide flash attention for a K/V pair, or raise KvConfigError before anything loads.

    ``None`` turns it on (a quantized V cache needs it; it is also llama.cpp's fast path).
    """
    fa = True if flash_attn is None else flash_attn
    if type_v.quantized and not fa:
        raise KvConfigError(
            f"a quantized V cache ({type_v.value}) needs flash attention, which --no-flash-attn turns off",
            hint="drop --no-flash-attn, or keep V at f16",
        )
    info = system_info() if info is None else info
    if fa and is_cuda_build(info):
        pairs = cuda_fa_pairs(info)
        if pairs is not None and (type_k.value, type_v.value) not in pairs:
            have = ", ".join(sorted(f"{k}/{v}" for k, v in pairs))
            raise KvConfigError(
                f"this CUDA build has no flash-attention kernel for K {type_k.value} with V {type_v.value} "
                f"(it has {have})",
                hint="use the same type for K and V (--kv q8_0), or rebuild llama-cpp-python with "
                "-DGGML_CUDA_FA_QUANTS=all in CMAKE_ARGS",
            )
    return fa


# -- loading ----------------------------------------------------------------------------------


def model_params(llama_cpp: Any, cfg: RunConfig, *, dry_run: bool) -> Any:
    mp = llama_cpp.llama_model_default_params()
    mp.n_gpu_layers = 999 if cfg.n_gpu_layers < 0 else cfg.n_gpu_layers
    if len(cfg.tensor_split) > 1:
        # several devices: llama.cpp's layer split with the plan's shares (plan/devices.py). The
        # array has llama_max_devices() entries (devices past the plan get 0, so no layers); the
        # struct keeps it alive (ctypes holds an assigned array in the struct's _objects).
        n_max = int(llama_cpp.llama_max_devices())
        if len(cfg.tensor_split) > n_max:
            raise KvConfigError(f"{len(cfg.tensor_split)} devices, but this llama.cpp build takes at most {n_max}")
        mp.split_mode = llama_cpp.LLAMA_SPLIT_MODE_LAYER
        mp.tensor_split = (ctypes.c_float * n_max)(*cfg.tensor_split)
    elif cfg.n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload():
        # one device: only the first GPU, as the cap and the plan assume (the default, split mode
        # LAYER over every visible GPU by free memory, would spread a capped run over a second card)
        mp.split_mode = llama_cpp.LLAMA_SPLIT_MODE_NONE
        mp.main_gpu = 0
    if cfg.n_cpu_moe:  # the experts of the first N blocks in host memory (llama.cpp --n-cpu-moe N)
        from edgekv.llama.overrides import cpu_moe_overrides

        mp.tensor_buft_overrides = cpu_moe_overrides(llama_cpp, cfg.n_cpu_moe)
    if dry_run:
        mp.no_alloc = True
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE  # without it no_alloc aborts the process
    return mp


MAX_THREADS = bounds.GGML_MAX_N_THREADS  # more threads overrun llama.cpp's thread arrays and crash it


def check_threads(n_threads: int | None) -> None:
    """Refuse a thread count llama.cpp cannot take (``bounds.THREADS``), before it is asked: the last
    guard for library callers (the flag is refused as it is read)."""
    bounds.check_threads(n_threads, cores=os.cpu_count())


def context_params(llama_cpp: Any, cfg: RunConfig, *, n_batch: int | None, n_threads: int | None) -> Any:
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = cfg.n_ctx
    cp.n_ubatch = cfg.n_ubatch
    cp.n_batch = max(n_batch or cp.n_batch, cfg.n_ubatch)
    cp.n_seq_max = cfg.n_seq
    cp.type_k = cfg.type_k.ggml.id
    cp.type_v = cfg.type_v.ggml.id
    cp.flash_attn_type = (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if cfg.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    cp.swa_full = cfg.swa_full
    cp.kv_unified = cfg.kv_unified
    cp.offload_kqv = cfg.offload_kqv
    check_threads(n_threads)
    threads = n_threads or min(os.cpu_count() or 1, MAX_THREADS)
    cp.n_threads = threads
    cp.n_threads_batch = threads
    return cp


def check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ModelFileNotFound(f"{p}: no such file", hint="check the path, or fetch it with edgekv download")
    return p


def check_cfg(cfg: RunConfig) -> None:
    resolve_flash_attn(cfg.type_k, cfg.type_v, cfg.flash_attn)
    if cfg.n_ctx < 1 or cfg.n_seq < 1:
        raise KvConfigError(f"n_ctx {cfg.n_ctx} and n_seq {cfg.n_seq} must be positive")


def dry_run(
    path: str | os.PathLike[str], cfg: RunConfig, *, n_batch: int | None = None, verbose: bool = False
) -> LlamaBuffers:
    """The buffers a load of ``path`` with ``cfg`` would make, without allocating them (~0.5 s)."""
    p = check_path(path)
    check_cfg(cfg)
    llama_cpp = llama_lib()
    with LlamaLog(echo=verbose) as cap:
        model = llama_cpp.llama_model_load_from_file(str(p).encode(), model_params(llama_cpp, cfg, dry_run=True))
        if not model:
            raise LlamaError(f"llama.cpp cannot read {p.name}", reason=cap.last_problem())
        try:
            ctx = llama_cpp.llama_init_from_model(model, context_params(llama_cpp, cfg, n_batch=n_batch, n_threads=1))
            if not ctx:
                raise LlamaError("llama.cpp cannot create the context", reason=cap.last_problem())
            llama_cpp.llama_free(ctx)
        finally:
            llama_cpp.llama_model_free(model)
    return cap.buffers(dry_run=True)
