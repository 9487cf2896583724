"""llama.cpp's ``tensor_buft_overrides`` through edgekv's own ctypes: experts kept in host memory.

llama-cpp-python 0.3.36 declares ``llama_model_params.tensor_buft_overrides`` as a bare ``c_void_p``
and never sets it. llama.cpp reads it as a NULL-terminated array of::

    struct llama_model_tensor_buft_override { const char * pattern; ggml_backend_buffer_type_t buft; };

(include/llama.h); a tensor whose name matches a pattern (std::regex_search) is allocated in that
buffer type. ``--n-cpu-moe N`` is N such overrides, one per block, each to the CPU buffer type
(common/arg.cpp ``llm_add_n_cpu_ffn_overrides``); :func:`cpu_moe_overrides` builds the same array,
with ``ggml_backend_cpu_buffer_type()`` looked up in the loaded libllama (it resolves in its
dependency libggml-base). The arrays are cached per N and never freed: the pattern strings and the
array live as long as the process, so every model loaded with them can still read them.
"""

from __future__ import annotations

import ctypes
from typing import Any

from edgekv.errors import LlamaError
from edgekv.plan.placement import cpu_moe_patterns


class BuftOverride(ctypes.Structure):
    """``struct llama_model_tensor_buft_override``."""

    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


_KEEP: dict[int, tuple[Any, list[bytes]]] = {}  # n_cpu_moe -> (the array, its pattern strings): alive for good


def cpu_buffer_type(llama_cpp: Any) -> int:
    """``ggml_backend_cpu_buffer_type()`` of the loaded llama.cpp, checked by its name ("CPU")."""
    lib = llama_cpp.llama_cpp._lib
    try:
        fn, name = lib.ggml_backend_cpu_buffer_type, lib.ggml_backend_buft_name
    except AttributeError as e:
        raise LlamaError("this llama.cpp build does not export ggml_backend_cpu_buffer_type", reason=str(e)) from e
    fn.restype, fn.argtypes = ctypes.c_void_p, []
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    buft = fn()
    if not buft or name(buft) != b"CPU":
        raise LlamaError("llama.cpp's CPU buffer type was not found", reason=repr(name(buft) if buft else None))
    return int(buft)


def cpu_moe_overrides(llama_cpp: Any, n_cpu_moe: int) -> Any:
    """The NULL-terminated override array of llama.cpp's ``--n-cpu-moe n_cpu_moe`` (as a c_void_p)."""
    if n_cpu_moe not in _KEEP:
        limit = int(llama_cpp.llama_max_tensor_buft_overrides())
        if n_cpu_moe >= limit:
            raise LlamaError(f"--n-cpu-moe {n_cpu_moe}: llama.cpp takes at most {limit - 1} tensor overrides")
        buft = cpu_buffer_type(llama_cpp)
        patterns = [p.encode() for p in cpu_moe_patterns(n_cpu_moe)]
        arr = (BuftOverride * (n_cpu_moe + 1))(*(BuftOverride(p, buft) for p in patterns), BuftOverride(None, None))
        _KEEP[n_cpu_moe] = (arr, patterns)
    return ctypes.cast(_KEEP[n_cpu_moe][0], ctypes.c_void_p)
