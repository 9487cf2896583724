"""quant.py's own tables against gguf-py (the source llama.cpp's converters use)."""

from __future__ import annotations

import gguf
import pytest

from edgekv.errors import SpecError
from edgekv.model.quant import (
    FILE_TYPES,
    GGML_TYPES,
    KvType,
    WeightQuant,
    file_type_name,
    ggml_type,
    row_bytes,
    tensor_bytes,
)


@pytest.mark.parametrize("qtype", list(gguf.GGMLQuantizationType), ids=lambda t: t.name)
def test_ggml_types_match_gguf(qtype: gguf.GGMLQuantizationType) -> None:
    ours = GGML_TYPES[qtype.name]
    assert ours.id == qtype.value
    assert (ours.block_size, ours.type_size) == gguf.GGML_QUANT_SIZES[qtype]
    assert ggml_type(qtype.value) is ours


def test_no_ggml_type_unknown_to_gguf() -> None:
    assert set(GGML_TYPES) == {t.name for t in gguf.GGMLQuantizationType}


def _gguf_ftype_name(ft: gguf.LlamaFileType) -> str:
    return ft.name.removeprefix("MOSTLY_").removeprefix("ALL_")


def test_file_types_match_gguf() -> None:
    theirs = {_gguf_ftype_name(ft): ft.value for ft in gguf.LlamaFileType if ft is not gguf.LlamaFileType.GUESSED}
    assert FILE_TYPES == theirs


@pytest.mark.parametrize("q", list(WeightQuant), ids=lambda q: q.value)
def test_weight_quant_ftype(q: WeightQuant) -> None:
    assert q.ftype == gguf.LlamaFileType[("ALL_" if q.value == "F32" else "MOSTLY_") + q.value].value
    assert file_type_name(q.ftype) == q.value
    assert file_type_name(q.ftype | 1024) == q.value  # GUESSED flag


@pytest.mark.parametrize("text", ["q16", "f8", "", "Q8_0 KV"])
def test_kv_type_parse_errors(text: str) -> None:
    with pytest.raises(SpecError) as e:
        KvType.parse(text)
    assert repr(text) in str(e.value) and "q8_0" in str(e.value)  # names the input and lists the choices


@pytest.mark.parametrize(("text", "kv"), [("f16", KvType.F16), (" Q8_0 ", KvType.Q8_0), ("q4_0", KvType.Q4_0)])
def test_kv_type_parse(text: str, kv: KvType) -> None:
    assert KvType.parse(text) is kv


@pytest.mark.parametrize(("kv", "bits"), [(KvType.F16, 16.0), (KvType.Q8_0, 8.5), (KvType.Q4_0, 4.5)])
def test_kv_bits(kv: KvType, bits: float) -> None:
    assert kv.bits == bits
    assert kv.ggml.id == gguf.GGMLQuantizationType[kv.name].value


@pytest.mark.parametrize(("qtype", "ne0"), [("Q8_0", 100), ("Q4_K", 128), ("Q6_K", 4096 + 32), ("Q4_0", 31)])
def test_row_bytes_rejects_partial_blocks(qtype: str, ne0: int) -> None:
    with pytest.raises(SpecError, match="block size"):
        row_bytes(qtype, ne0)


@pytest.mark.parametrize(
    ("qtype", "shape", "n_bytes"),
    [
        ("F32", (640,), 2560),
        ("F16", (4096, 4096), 4096 * 4096 * 2),
        ("Q8_0", (128, 8), 8 * 4 * 34),
        ("Q4_K", (2560, 9728), 9728 * 10 * 144),
        ("q6_k", (256,), 210),  # any case
    ],
)
def test_tensor_bytes(qtype: str, shape: tuple[int, ...], n_bytes: int) -> None:
    assert tensor_bytes(qtype, shape) == n_bytes


# The GGUF keys edgekv reads in gguf_spec.from_gguf_fields, spelled as literals there: each must be
# the gguf.Keys template llama.cpp's converters write.
@pytest.mark.parametrize(
    ("ours", "template"),
    [
        ("{arch}.block_count", gguf.Keys.LLM.BLOCK_COUNT),
        ("{arch}.embedding_length", gguf.Keys.LLM.EMBEDDING_LENGTH),
        ("{arch}.feed_forward_length", gguf.Keys.LLM.FEED_FORWARD_LENGTH),
        ("{arch}.context_length", gguf.Keys.LLM.CONTEXT_LENGTH),
        ("{arch}.vocab_size", gguf.Keys.LLM.VOCAB_SIZE),
        ("{arch}.attention.head_count", gguf.Keys.Attention.HEAD_COUNT),
        ("{arch}.attention.head_count_kv", gguf.Keys.Attention.HEAD_COUNT_KV),
        ("{arch}.attention.key_length", gguf.Keys.Attention.KEY_LENGTH),
        ("{arch}.attention.value_length", gguf.Keys.Attention.VALUE_LENGTH),
        ("{arch}.attention.sliding_window", gguf.Keys.Attention.SLIDING_WINDOW),
        ("{arch}.attention.sliding_window_pattern", gguf.Keys.Attention.SLIDING_WINDOW_PATTERN),
        ("{arch}.expert_count", gguf.Keys.LLM.EXPERT_COUNT),
        ("{arch}.expert_used_count", gguf.Keys.LLM.EXPERT_USED_COUNT),
        ("{arch}.expert_feed_forward_length", gguf.Keys.LLM.EXPERT_FEED_FORWARD_LENGTH),
        ("{arch}.expert_shared_count", gguf.Keys.LLM.EXPERT_SHARED_COUNT),
        ("{arch}.expert_shared_feed_forward_length", gguf.Keys.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH),
        ("general.file_type", gguf.Keys.General.FILE_TYPE),
        ("general.architecture", gguf.Keys.General.ARCHITECTURE),
        ("general.name", gguf.Keys.General.NAME),
        ("general.alignment", gguf.Keys.General.ALIGNMENT),
        ("tokenizer.ggml.tokens", gguf.Keys.Tokenizer.LIST),
    ],
)
def test_gguf_key_templates(ours: str, template: str) -> None:
    assert ours == template


def test_spec_reads_only_known_key_templates() -> None:
    """Every key literal in spec.py / gguf_spec.py / gguf_reader.py is one of gguf.Keys' templates."""
    import re
    from pathlib import Path

    import edgekv.model.gguf_reader
    import edgekv.model.gguf_spec
    import edgekv.model.spec

    templates = {
        v for ns in (gguf.Keys.General, gguf.Keys.LLM, gguf.Keys.Attention, gguf.Keys.Tokenizer, gguf.Keys.Rope)
        for v in vars(ns).values() if isinstance(v, str)
    }  # fmt: skip
    found: set[str] = set()
    for mod in (edgekv.model.spec, edgekv.model.gguf_spec, edgekv.model.gguf_reader):
        src = Path(mod.__file__ or "").read_text()
        found |= set(re.findall(r'"((?:\{arch\}|general|tokenizer)\.[a-z_.]+)"', src))
    assert found and found <= templates, found - templates
