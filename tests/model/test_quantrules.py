"""quantrules vs llama.cpp itself: every tensor's type, for every ftype, on sparse GGUFs.

Each case writes a header-only GGUF of a config's real shapes (data: a sparse run of zeros) and
asks ``llama_model_quantize`` for a dry run (``params.dry_run``), which logs the type it picks for
each tensor without quantizing; the log is captured through ``llama_log_set`` and compared with
``quantized_types``. A dry run of a 32B shape takes about 0.1 s and no disk.
"""

from __future__ import annotations

import ctypes
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekv.errors import SpecError, UnsupportedModel
from edgekv.model.archs import ArchParams, gguf_arch, gguf_tensors
from edgekv.model.quant import WeightQuant
from edgekv.model.quantrules import quantized_types, type_bytes, weights_bytes
from edgekv.model.spec import TensorInfo

llama_cpp: Any = pytest.importorskip("llama_cpp")

from tests.ggufgen import tiny_config, write_sparse_gguf, write_tiny_gguf  # noqa: E402

CATALOG: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "catalog_configs.json").read_text()
)
ALL_QUANTS: list[WeightQuant] = list(WeightQuant)
# Real shapes checked in the default run; the rest are marked slow (see _catalog_params).
FAST_MODELS = ("Qwen3-0.6B", "DeepSeek-R1-Distill-Qwen-1.5B")

TINY: dict[str, dict[str, Any]] = {
    "qwen3-2l-tied": tiny_config("Qwen3ForCausalLM"),
    "qwen3-3l-untied": tiny_config("Qwen3ForCausalLM", num_hidden_layers=3, tie_word_embeddings=False),
    "qwen3-28l": tiny_config("Qwen3ForCausalLM", num_hidden_layers=28),
    "qwen2-2l": tiny_config("Qwen2ForCausalLM"),
    "qwen2-3l": tiny_config("Qwen2ForCausalLM", num_hidden_layers=3),
    "llama-2l": tiny_config("LlamaForCausalLM"),
    "llama-3l-tied": tiny_config("LlamaForCausalLM", num_hidden_layers=3, tie_word_embeddings=True),
    "mistral-3l": tiny_config("MistralForCausalLM", num_hidden_layers=3),
    # phi3: fused attn_qkv (ATTENTION_QKV, counted as attn_v) and gate|up ffn_up; Phi-4-mini's LongRoPE and
    # tying, and Phi-4's shape (untied, no rope factors); smollm3: the llama block
    "phi3-2l-mini": tiny_config("Phi3ForCausalLM"),
    "phi3-3l-phi4": tiny_config(
        "Phi3ForCausalLM", num_hidden_layers=3, tie_word_embeddings=False, rope_scaling=None, partial_rotary_factor=1.0
    ),
    "smollm3-4l": tiny_config("SmolLM3ForCausalLM", num_hidden_layers=4, tie_word_embeddings=True),
    # exaone: the llama block with EXAONE's config keys and llama3 rope_freqs; tied as EXAONE Deep 2.4B
    "exaone-3l": tiny_config("ExaoneForCausalLM", num_hidden_layers=3),
    "exaone-2l-tied": tiny_config("ExaoneForCausalLM", tie_word_embeddings=True),
    "llama-llama3-rope": tiny_config("LlamaForCausalLM", rope_scaling={"rope_type": "llama3", "factor": 8.0}),
    # n_gqa >= 4 branches (Q2_K/IQ3/IQ4 attn_v)
    "llama-gqa4-16l": tiny_config("LlamaForCausalLM", num_attention_heads=8, num_hidden_layers=16),
    # LLM_TYPE_70B: qwen2 with 80 layers; llama with 80 layers and GQA (65B without)
    "qwen2-80l-70b": tiny_config("Qwen2ForCausalLM", num_hidden_layers=80),
    "llama-80l-70b": tiny_config("LlamaForCausalLM", num_hidden_layers=80),
    "llama-80l-65b": tiny_config("LlamaForCausalLM", num_hidden_layers=80, num_key_value_heads=4),
    # tensor_type_fallback: ne0 not a multiple of 256 (-> 32-block types) or of 32 (-> F16)
    "qwen3-fallback-320": tiny_config("Qwen3ForCausalLM", hidden_size=320, intermediate_size=864),
    "qwen2-fallback-808": tiny_config("Qwen2ForCausalLM", intermediate_size=808, tie_word_embeddings=False),
    "qwen2-fallback-200": tiny_config("Qwen2ForCausalLM", hidden_size=200, intermediate_size=600),
    # mixture of experts: 3-D expert tensors, layers read from tensor names, the n_expert == 8 / >= 4 rules
    "qwen3moe-2l-x8": tiny_config("Qwen3MoeForCausalLM"),
    "qwen3moe-16l-x16": tiny_config("Qwen3MoeForCausalLM", num_hidden_layers=16, num_experts=16, num_experts_per_tok=4),
    "qwen3moe-fallback-96": tiny_config("Qwen3MoeForCausalLM", moe_intermediate_size=96),
    "gpt-oss-4l-mxfp4": tiny_config("GptOssForCausalLM", num_hidden_layers=4),  # MXFP4 experts in the source
    "gpt-oss-4l-f16": tiny_config("GptOssForCausalLM", num_hidden_layers=4, quantization_config=None),
    "gpt-oss-fallback-2880": tiny_config("GptOssForCausalLM", hidden_size=2880),  # gpt-oss-20b's width
}

_TENSOR_LINE = re.compile(
    r"^\[\s*\d+/\s*\d+\] (\S+)\s+- \[[^\]]*\], type =\s*(\S+), "
    r"size =\s*[\d.]+ MiB(?: ->\s*[\d.]+ MiB \((\S+)\))?$",
    re.MULTILINE,
)
_QUANT_SIZE = re.compile(r"quant size  =\s*([\d.]+) MiB")
_LOG: list[str] = []


def _append_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    _LOG.append(text.decode("utf-8", "replace"))


_CAPTURE = llama_cpp.llama_log_callback(_append_log)  # kept referenced while llama.cpp holds it


@contextmanager
def captured_log() -> Iterator[list[str]]:
    """Route llama.cpp's log into a list, then give it back to llama-cpp-python's logger."""
    _LOG.clear()
    llama_cpp.llama_log_set(_CAPTURE, ctypes.c_void_p(0))
    try:
        yield _LOG
    finally:
        llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))


@dataclass(frozen=True, slots=True)
class DryRun:
    """What llama_model_quantize's dry run reported."""

    types: dict[str, str]
    quant_mib: str  # total size after quantization, as logged ("%.2f" MiB)
    needs_imatrix: bool
    log: str


def dry_run(path: Path, quant: WeightQuant, *, imatrix: bool) -> DryRun:
    """llama_model_quantize(dry_run=True); with ``imatrix`` a one-entry dummy importance matrix."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quant.ftype
    params.dry_run = True
    params.nthread = 1
    values = (ctypes.c_float * 1)(1.0)
    entries = (llama_cpp.llama_model_imatrix_data * 2)()  # zeroed: entries[1] ends the list
    if imatrix:
        entries[0].name = b"edgekv.dummy.weight"
        entries[0].data = ctypes.cast(values, ctypes.POINTER(ctypes.c_float))
        entries[0].size = 1
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    with captured_log() as log:
        rc = llama_cpp.llama_model_quantize(str(path).encode(), str(path).encode() + b".out", ctypes.byref(params))
    text = "".join(log)
    assert rc == 0, text[-3000:]
    types = {m[1]: (m[3] or m[2]).upper() for m in _TENSOR_LINE.finditer(text)}
    size = _QUANT_SIZE.search(text)
    assert size is not None, text[-3000:]
    return DryRun(types, size.group(1), "will require an imatrix" in text, text)


def compare(
    config: dict[str, Any], path: Path, quant: WeightQuant, *, imatrix: bool, n_expert: int = 0, outtype: str = "F16"
) -> list[str]:
    """Differences between quantized_types and llama.cpp's dry run (empty when they agree).

    The dry run does not refuse to requantize (gpt-oss's MXFP4 experts), so neither does the comparison."""
    p = ArchParams.from_config(config)
    n_expert = n_expert or p.n_expert
    tensors = gguf_tensors(config, outtype=outtype)
    dr = dry_run(path, quant, imatrix=imatrix)
    where = f"{quant.value}{' +imatrix' if imatrix else ''}"
    if set(dr.types) != {t.name for t in tensors}:
        return [f"{where}: llama.cpp saw other tensors: {sorted(set(dr.types) ^ {t.name for t in tensors})}"]
    kw: dict[str, Any] = {"n_layer": p.n_layer, "n_head": p.n_head, "n_head_kv": p.n_head_kv, "n_expert": n_expert}
    try:
        ours = quantized_types(tensors, quant, arch=p.arch, has_imatrix=imatrix, allow_requantize=True, **kw)
    except SpecError as e:
        return [] if dr.needs_imatrix and not imatrix else [f"{where}: SpecError but llama.cpp ran: {e}"]
    if dr.needs_imatrix and not imatrix:
        return [f"{where}: llama.cpp needs an imatrix, quantized_types did not say so"]
    diffs = [f"{where}: {n}: ours {ours[n]}, llama.cpp {dr.types[n]}" for n in ours if ours[n] != dr.types[n]]
    if diffs:
        return diffs
    mib = f"{weights_bytes(tensors, ours) / 1024 / 1024:.2f}"
    return [] if mib == dr.quant_mib else [f"{where}: weights_bytes {mib} MiB, llama.cpp {dr.quant_mib} MiB"]


def compare_all(config: dict[str, Any], path: Path, *, n_expert: int = 0, outtype: str = "F16") -> list[str]:
    """compare() for every ftype, without and with an importance matrix."""
    write_sparse_gguf(path, config, n_expert=n_expert, outtype=outtype)
    diffs: list[str] = []
    for quant in ALL_QUANTS:
        for imatrix in (False, True):
            diffs += compare(config, path, quant, imatrix=imatrix, n_expert=n_expert, outtype=outtype)
    return diffs


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_shapes_match_llama_cpp(name: str, tmp_path: Path) -> None:
    diffs = compare_all(TINY[name], tmp_path / f"{name}.gguf")
    assert not diffs, "\n".join(diffs[:40])


@pytest.mark.parametrize("outtype", ["BF16", "F32"])
def test_bf16_and_f32_sources_match_llama_cpp(outtype: str, tmp_path: Path) -> None:
    diffs = compare_all(TINY["qwen3-3l-untied"], tmp_path / "m.gguf", outtype=outtype)
    assert not diffs, "\n".join(diffs[:40])


@pytest.mark.parametrize(("n_expert", "n_layer", "n_head"), [(8, 2, 4), (8, 32, 8), (8, 80, 8), (4, 16, 4), (2, 3, 8)])
def test_expert_count_rules_match_llama_cpp(n_expert: int, n_layer: int, n_head: int, tmp_path: Path) -> None:
    """The n_expert == 8 / >= 4 branches, from a header that declares experts over dense tensors."""
    config = tiny_config("LlamaForCausalLM", num_hidden_layers=n_layer, num_attention_heads=n_head)
    diffs = compare_all(config, tmp_path / "moe.gguf", n_expert=n_expert)
    assert not diffs, "\n".join(diffs[:40])


def _catalog_params() -> list[Any]:
    return [pytest.param(n, marks=() if n in FAST_MODELS else (pytest.mark.slow,)) for n in CATALOG]


@pytest.mark.parametrize("name", _catalog_params())
def test_real_shapes_match_llama_cpp(name: str, tmp_path: Path) -> None:
    diffs = compare_all(CATALOG[name], tmp_path / "model.gguf")
    assert not diffs, "\n".join(diffs[:40])


def test_real_quantize_matches_rules_and_generates(tmp_path: Path) -> None:
    """A real llama_model_quantize of random weights: GGUFReader's types equal ours; it runs."""
    import gguf

    config = tiny_config("Qwen3ForCausalLM", num_hidden_layers=3)
    src = write_tiny_gguf(tmp_path / "f16.gguf", config, outtype="F16", seed=0)
    tensors = gguf_tensors(config)
    for quant in (WeightQuant.Q4_K_M, WeightQuant.Q3_K_M, WeightQuant.Q8_0):
        out = tmp_path / f"{quant.value}.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = quant.ftype
        params.nthread = 1
        with captured_log() as log:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(params))
        assert rc == 0, "".join(log)[-2000:]
        got = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
        assert got == quantized_types(tensors, quant, arch="qwen3", n_layer=3)
    generate_logits(tmp_path / "Q4_K_M.gguf")


def real_quantize(src: Path, out: Path, quant: WeightQuant, *, allow_requantize: bool = False) -> tuple[int, str]:
    """llama_model_quantize for real (nthread 1): (return code, its log)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quant.ftype
    params.nthread = 1
    params.allow_requantize = allow_requantize
    with captured_log() as log:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), ctypes.byref(params))
    return rc, "".join(log)


def test_real_quantize_of_a_moe_matches_rules_and_generates(tmp_path: Path) -> None:
    """qwen3moe with real random experts: llama.cpp's file has our types, and it runs."""
    import gguf

    config = tiny_config("Qwen3MoeForCausalLM", num_hidden_layers=3)
    src = write_tiny_gguf(tmp_path / "f16.gguf", config, outtype="F16", seed=0)
    tensors = gguf_tensors(config)
    for quant in (WeightQuant.Q4_K_M, WeightQuant.Q3_K_M, WeightQuant.MXFP4_MOE):
        out = tmp_path / f"{quant.value}.gguf"
        rc, log = real_quantize(src, out, quant)
        assert rc == 0, log[-2000:]
        got = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
        assert got == quantized_types(tensors, quant, arch="qwen3moe", n_layer=3, n_expert=8)
    generate_logits(tmp_path / "Q4_K_M.gguf")
    generate_logits(tmp_path / "MXFP4_MOE.gguf")


def test_gpt_oss_mxfp4_experts_are_kept_or_refused(tmp_path: Path) -> None:
    """gpt-oss as published (MXFP4 experts): MXFP4_MOE keeps them; Q4_K_M would requantize them, which
    llama.cpp refuses without allow_requantize, and so does quantized_types."""
    import gguf

    config = tiny_config("GptOssForCausalLM", num_hidden_layers=4)
    src = write_tiny_gguf(tmp_path / "src.gguf", config, outtype="F16", seed=0)
    tensors = gguf_tensors(config)
    kw: dict[str, Any] = {"arch": "gpt-oss", "n_layer": 4, "n_expert": 4}

    rc, log = real_quantize(src, tmp_path / "mxfp4.gguf", WeightQuant.MXFP4_MOE)
    assert rc == 0, log[-2000:]
    got = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "mxfp4.gguf").tensors}
    assert got == quantized_types(tensors, WeightQuant.MXFP4_MOE, **kw)
    assert {got[t.name] for t in tensors if "_exps.weight" in t.name} == {"MXFP4"}
    generate_logits(tmp_path / "mxfp4.gguf")

    rc, log = real_quantize(src, tmp_path / "q4.gguf", WeightQuant.Q4_K_M)
    assert rc != 0 and "requantizing from type mxfp4 is disabled" in log
    with pytest.raises(SpecError, match=r"requantize blk\.0\.ffn_\w+_exps\.weight from MXFP4"):
        quantized_types(tensors, WeightQuant.Q4_K_M, **kw)

    rc, log = real_quantize(src, tmp_path / "q4.gguf", WeightQuant.Q4_K_M, allow_requantize=True)
    assert rc == 0, log[-2000:]
    got = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "q4.gguf").tensors}
    assert got == quantized_types(tensors, WeightQuant.Q4_K_M, allow_requantize=True, **kw)


def generate_logits(path: Path, *, zeros: bool = False) -> list[float]:
    """Load with llama_cpp.Llama, evaluate a prompt; return the finite next-token logits."""
    with captured_log():
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=1, logits_all=True, verbose=False)
        llm.eval(llm.tokenize(b"hello world"))
        logits = [float(x) for x in llm.scores[llm.n_tokens - 1]]
        nxt = llm.sample(temp=0.0)
        n_vocab = llm.n_vocab()
        llm.close()
    assert len(logits) == n_vocab and all(math.isfinite(x) for x in logits)
    assert 0 <= nxt < n_vocab and (zeros or max(map(abs, logits)) > 0)
    return logits


@pytest.mark.parametrize("arch", ["Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"])
def test_sparse_tiny_gguf_loads_and_runs(arch: str, tmp_path: Path) -> None:
    """A sparse file is a real model (of zeros): llama.cpp allocates, reads and evaluates it."""
    generate_logits(write_sparse_gguf(tmp_path / "m.gguf", tiny_config(arch)), zeros=True)


@pytest.mark.parametrize("name", list(CATALOG))
def test_sparse_gguf_loads_with_exact_size(name: str, tmp_path: Path) -> None:
    """llama.cpp loads the real-shape sparse file (a no_alloc load) and sizes it as we do."""
    config = CATALOG[name]
    path = write_sparse_gguf(tmp_path / "m.gguf", config)
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.no_alloc = True  # with load_mode NONE nothing is read or allocated (llama-cpp-memory.md)
    mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    with captured_log() as log:
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    assert model, "".join(log)[-2000:]
    try:
        tensors = gguf_tensors(config)
        assert llama_cpp.llama_model_size(model) == weights_bytes(tensors, {})
        assert llama_cpp.llama_model_n_params(model) == sum(t.n_elements for t in tensors)
    finally:
        llama_cpp.llama_model_free(model)


def test_gguf_tensors_qwen3_0_6b() -> None:
    tensors = gguf_tensors(CATALOG["Qwen3-0.6B"])
    by_name = {t.name: t for t in tensors}
    assert len(tensors) == 2 + 28 * 11 and "output.weight" not in by_name
    assert by_name["token_embd.weight"] == TensorInfo("token_embd.weight", "F16", (1024, 151936))
    assert by_name["blk.0.attn_q.weight"].shape == (1024, 2048)
    assert by_name["blk.0.attn_k.weight"].shape == (1024, 1024)
    assert by_name["blk.0.attn_output.weight"].shape == (2048, 1024)
    assert by_name["blk.27.ffn_down.weight"].shape == (3072, 1024)
    assert by_name["blk.0.attn_k_norm.weight"] == TensorInfo("blk.0.attn_k_norm.weight", "F32", (128,))


def test_gguf_tensors_qwen2_biases_and_defaults() -> None:
    config = CATALOG["DeepSeek-R1-Distill-Qwen-7B"]
    by_name = {t.name: t for t in gguf_tensors(config, outtype="BF16")}
    assert gguf_arch(config) == "qwen2"
    assert by_name["blk.0.attn_q.weight"] == TensorInfo("blk.0.attn_q.weight", "BF16", (3584, 3584))
    assert by_name["blk.0.attn_k.bias"] == TensorInfo("blk.0.attn_k.bias", "F32", (512,))  # 4 x 128
    assert by_name["output.weight"].shape == (3584, 152064)
    assert "blk.0.attn_q_norm.weight" not in by_name and "blk.0.attn_output.bias" not in by_name
    mha = ArchParams.from_config({"architectures": ["LlamaForCausalLM"], "hidden_size": 512,
                                  "num_attention_heads": 8, "num_hidden_layers": 2,
                                  "intermediate_size": 1024, "vocab_size": 300})  # fmt: skip
    assert (mha.n_head_kv, mha.head_dim) == (8, 64)


def test_llama3_rope_freqs() -> None:
    config = tiny_config("LlamaForCausalLM", rope_scaling={"rope_type": "llama3", "factor": 8.0})
    by_name = {t.name: t for t in gguf_tensors(config)}
    assert by_name["rope_freqs.weight"] == TensorInfo("rope_freqs.weight", "F32", (32,))


def test_unknown_architecture() -> None:
    with pytest.raises(UnsupportedModel, match="GPT2LMHeadModel"):
        gguf_tensors({"architectures": ["GPT2LMHeadModel"], "hidden_size": 8})


def test_imatrix_quants_need_has_imatrix() -> None:
    config = CATALOG["Qwen3-0.6B"]
    with pytest.raises(SpecError, match="importance matrix"):
        quantized_types(gguf_tensors(config), WeightQuant.IQ2_XXS, arch="qwen3", n_layer=28)


def test_type_bytes_and_gqa_inference() -> None:
    config = CATALOG["Qwen3-8B"]
    tensors = gguf_tensors(config)
    explicit = quantized_types(tensors, WeightQuant.Q4_K_M, arch="qwen3", n_layer=36, n_head=32, n_head_kv=8)
    inferred = quantized_types(tensors, WeightQuant.Q4_K_M, arch="qwen3", n_layer=36)
    assert explicit == inferred
    by_type = type_bytes(tensors, explicit)
    assert set(by_type) == {"F32", "Q4_K", "Q6_K"}
    assert sum(by_type.values()) == weights_bytes(tensors, explicit)
    assert by_type["Q6_K"] > 0 and explicit["output.weight"] == "Q6_K"
