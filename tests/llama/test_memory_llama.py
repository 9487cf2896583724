"""memory.py against real llama.cpp (CPU build): the KV and weight buffers it logs (issue #2).

Each model is loaded once per module with the low-level API; a context is created and freed per
configuration, and llama.cpp's log is captured through ``llama_log_set``. The KV cache is
compared to the log's "llama_kv_cache: size = ..., K (type): A MiB, V (type): B MiB" lines
exactly (as printed, "%.2f" MiB, one line per cache: gemma3's and gpt-oss's sliding-window layers
have their own), and the weights to the "CPU_Mapped model buffer size" (or "CPU model buffer size")
within 1 MiB (the tiny MoE models to the printed 0.01 MiB). CPU_REPACK is a repacked copy of some
mmapped tensors, not more model bytes: not summed.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from edgekv.model.gguf_reader import read_spec  # noqa: E402
from edgekv.model.quant import KvType  # noqa: E402
from edgekv.model.spec import ModelSpec  # noqa: E402
from edgekv.model.tensor_groups import TensorGroup, tensor_groups  # noqa: E402
from edgekv.plan.memory import RunConfig, WeightLayout, kv_bytes  # noqa: E402
from edgekv.units import MIB  # noqa: E402
from tests.ggufgen import tiny_config, write_tiny_gguf  # noqa: E402

KV_LINE = re.compile(
    r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/(\d+) seqs\), "
    r"K \((\w+)\):\s*([\d.]+) MiB, V \((\w+)\):\s*([\d.]+) MiB"
)
MODEL_BUF = re.compile(r"(CPU_Mapped|CPU) model buffer size =\s*([\d.]+) MiB")
REPACK_BUF = re.compile(r"CPU_REPACK model buffer size =\s*([\d.]+) MiB")

_lines: list[str] = []


@llama_cpp.llama_log_callback
def _capture(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    _lines.append(text.decode("utf-8", errors="replace"))


@llama_cpp.llama_log_callback
def _quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    pass


@pytest.fixture(scope="module", autouse=True)
def _llama_log() -> Iterator[None]:
    """Capture llama.cpp's log for this module; afterwards hand it back (llama-cpp-python's own
    callback, a module global that stays alive; else a no-op kept alive here)."""
    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(_capture, ctypes.c_void_p(0))
    yield
    try:
        from llama_cpp._logger import llama_log_callback as restore
    except ImportError:  # pragma: no cover
        restore = _quiet
    llama_cpp.llama_log_set(restore, ctypes.c_void_p(0))


@dataclass
class Loaded:
    spec: ModelSpec
    model: object
    model_log: str


def _load(path: Path) -> Loaded:
    n0 = len(_lines)
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
    assert model, f"llama.cpp could not load {path}: {''.join(_lines[n0:])[-2000:]}"
    return Loaded(read_spec(path), model, "".join(_lines[n0:]))


def _context_log(m: Loaded, cfg: RunConfig) -> str:
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = cfg.n_ctx
    cp.type_k = cfg.type_k.ggml.id
    cp.type_v = cfg.type_v.ggml.id
    cp.flash_attn_type = 1  # enabled (a quantized V cache needs it)
    cp.n_seq_max = cfg.n_seq
    cp.swa_full = cfg.swa_full
    cp.n_ubatch = cfg.n_ubatch
    assert bool(cp.kv_unified) == cfg.kv_unified
    n0 = len(_lines)
    ctx = llama_cpp.llama_init_from_model(m.model, cp)
    log = "".join(_lines[n0:])
    assert ctx, f"context creation failed for {cfg}: {log[-2000:]}"
    llama_cpp.llama_free(ctx)
    return log


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Loaded]]:
    d = tmp_path_factory.mktemp("tiny")
    out = {
        "qwen3": _load(write_tiny_gguf(d / "qwen3.gguf", tiny_config("Qwen3ForCausalLM"))),
        "llama": _load(write_tiny_gguf(d / "llama.gguf", tiny_config("LlamaForCausalLM", num_key_value_heads=1))),
        "qwen2": _load(write_tiny_gguf(d / "qwen2.gguf", tiny_config("Qwen2ForCausalLM"), outtype="F32")),
    }
    yield out
    for m in out.values():
        llama_cpp.llama_model_free(m.model)


@pytest.fixture(scope="module")
def gemma(gemma_gguf: Path) -> Iterator[Loaded]:
    m = _load(gemma_gguf)
    yield m
    llama_cpp.llama_model_free(m.model)


def _mib(n_bytes: int) -> str:
    return "%.2f" % (n_bytes / MIB)


def _assert_kv_lines(spec: ModelSpec, cfg: RunConfig, log: str) -> None:
    """One logged cache per kind of layer: full attention first, then sliding window."""
    lines = KV_LINE.findall(log)
    kinds = [False, True] if spec.swa_layers else [None]
    assert len(lines) == len(kinds), log
    for (total, cells, n_layers, _seqs, n_seq, tk, k_mib, tv, v_mib), swa in zip(lines, kinds, strict=True):
        want = kv_bytes(spec, cfg, swa=swa)
        assert (tk, tv) == (cfg.type_k.value, cfg.type_v.value)
        assert (k_mib, v_mib) == (_mib(want.k_bytes), _mib(want.v_bytes)), (swa, cfg)
        assert total == _mib(want.total)
        assert int(cells) == (want.swa_cells if swa else want.cells)
        assert int(n_seq) == want.n_stream
        n_swa_layers = sum(spec.swa_layers)
        assert int(n_layers) == (n_swa_layers if swa else spec.n_layer - n_swa_layers)


def _assert_weights(m: Loaded) -> None:
    logged = sum(float(mib) for _name, mib in MODEL_BUF.findall(m.model_log))
    gpu, host = WeightLayout.from_spec(m.spec).split(0)  # CPU build: everything on the host
    assert gpu == 0 and host == m.spec.weights_bytes
    assert abs(logged * MIB - host) <= MIB, (logged, host)


KV_TYPES = [KvType.F16, KvType.Q8_0, KvType.Q4_0]


@pytest.mark.parametrize("n_ctx", [1024, 4096])
@pytest.mark.parametrize("kv", KV_TYPES, ids=lambda k: k.value)
@pytest.mark.parametrize("arch", ["qwen3", "llama", "qwen2"])
def test_tiny_kv_matches_llama_log(tiny_models: dict[str, Loaded], arch: str, kv: KvType, n_ctx: int) -> None:
    m = tiny_models[arch]
    assert m.spec.arch == arch and not m.spec.swa_layers
    cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv)
    _assert_kv_lines(m.spec, cfg, _context_log(m, cfg))


@pytest.mark.parametrize("arch", ["qwen3", "llama", "qwen2"])
def test_tiny_weights_match_llama_log(tiny_models: dict[str, Loaded], arch: str) -> None:
    _assert_weights(tiny_models[arch])


@pytest.mark.parametrize("swa_full", [True, False])
@pytest.mark.parametrize("n_ctx", [1024, 4096])
@pytest.mark.parametrize("kv", KV_TYPES, ids=lambda k: k.value)
def test_gemma_kv_matches_llama_log(gemma: Loaded, kv: KvType, n_ctx: int, swa_full: bool) -> None:
    assert gemma.spec.arch == "gemma3" and sum(gemma.spec.swa_layers) == 15
    cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv, swa_full=swa_full)
    _assert_kv_lines(gemma.spec, cfg, _context_log(gemma, cfg))


def test_gemma_weights_match_llama_log(gemma: Loaded) -> None:
    _assert_weights(gemma)
    assert "CPU_Mapped model buffer size =   235.16 MiB" in gemma.model_log


@pytest.mark.parametrize("swa_full", [True, False])
@pytest.mark.parametrize("kv", [KvType.F16, KvType.Q8_0])
def test_two_streams(gemma: Loaded, tiny_models: dict[str, Loaded], kv: KvType, swa_full: bool) -> None:
    """n_seq_max = 2 without a unified cache: two streams of pad256(n_ctx / 2) cells each."""
    cfg = RunConfig(n_ctx=4096, type_k=kv, type_v=kv, n_seq=2, swa_full=swa_full)
    want = kv_bytes(gemma.spec, cfg, swa=False)
    assert (want.cells, want.n_stream) == (2048, 2)
    _assert_kv_lines(gemma.spec, cfg, _context_log(gemma, cfg))
    _assert_kv_lines(tiny_models["qwen3"].spec, cfg, _context_log(tiny_models["qwen3"], cfg))


def test_mixed_kv_types(tiny_models: dict[str, Loaded]) -> None:
    cfg = RunConfig(n_ctx=2048, type_k=KvType.Q8_0, type_v=KvType.Q4_0)
    _assert_kv_lines(tiny_models["qwen3"].spec, cfg, _context_log(tiny_models["qwen3"], cfg))


# --- mixture of experts: qwen3moe and gpt-oss (MXFP4 experts, sliding-window layers, sinks) ---------


@pytest.fixture(scope="module")
def moe_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Loaded]]:
    d = tmp_path_factory.mktemp("moe")
    out = {
        "qwen3moe": _load(write_tiny_gguf(d / "qwen3moe.gguf", tiny_config("Qwen3MoeForCausalLM"))),
        "gpt-oss": _load(write_tiny_gguf(d / "gpt-oss.gguf", tiny_config("GptOssForCausalLM", num_hidden_layers=4))),
    }
    yield out
    for m in out.values():
        llama_cpp.llama_model_free(m.model)


@pytest.mark.parametrize("swa_full", [True, False])
@pytest.mark.parametrize("n_ctx", [1024, 4096])
@pytest.mark.parametrize("kv", KV_TYPES, ids=lambda k: k.value)
@pytest.mark.parametrize("arch", ["qwen3moe", "gpt-oss"])
def test_moe_kv_matches_llama_log(
    moe_models: dict[str, Loaded], arch: str, kv: KvType, n_ctx: int, swa_full: bool
) -> None:
    """gpt-oss: two caches, the even blocks' holding pad256(128 + n_ubatch) cells without swa_full."""
    m = moe_models[arch]
    assert m.spec.arch == arch and m.spec.is_moe
    assert m.spec.swa_layers == ((True, False, True, False) if arch == "gpt-oss" else ())
    cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv, swa_full=swa_full)
    _assert_kv_lines(m.spec, cfg, _context_log(m, cfg))


@pytest.mark.parametrize("arch", ["qwen3moe", "gpt-oss"])
def test_moe_two_streams(moe_models: dict[str, Loaded], arch: str) -> None:
    cfg = RunConfig(n_ctx=4096, type_k=KvType.Q8_0, type_v=KvType.Q8_0, n_seq=2, swa_full=False)
    _assert_kv_lines(moe_models[arch].spec, cfg, _context_log(moe_models[arch], cfg))


@pytest.mark.parametrize("arch", ["qwen3moe", "gpt-oss"])
def test_moe_weights_match_llama_log(moe_models: dict[str, Loaded], arch: str) -> None:
    """The mapped model buffer is every weight, experts included, to the printed 0.01 MiB. Where the
    CPU repacks MXFP4 (ggml-cpu's repack.cpp; AVX2 here) it logs a CPU_REPACK copy of the experts:
    host memory the RAM budget will have to count."""
    m = moe_models[arch]
    _assert_weights(m)
    logged = sum(float(mib) for _name, mib in MODEL_BUF.findall(m.model_log))
    assert f"{logged:.2f}" == _mib(m.spec.weights_bytes)
    repack = REPACK_BUF.findall(m.model_log)
    mxfp4 = m.spec.tensor_type_bytes().get("MXFP4", 0)
    if arch == "gpt-oss":
        assert 0 < mxfp4 < tensor_groups(m.spec)[TensorGroup.EXPERTS]  # the experts' weights; their biases are F32
    assert repack in ([], [_mib(mxfp4)]), repack
