"""Tests of the test tooling itself (tests/ggufgen.py), kept apart from the tests of edgekv."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgekv.model.archs import gguf_tensors
from edgekv.model.quant import WeightQuant
from edgekv.model.quantrules import quantized_types

llama_cpp: Any = pytest.importorskip("llama_cpp")

from tests.ggufgen import tiny_config, write_sparse_gguf, write_tiny_gguf  # noqa: E402
from tests.model.test_quantrules import generate_logits  # noqa: E402


def test_write_sparse_gguf_with_quant(tmp_path: Path) -> None:
    """``quant=`` writes quantized_types' per-tensor types; ``header_only`` drops the data section."""
    from edgekv.model.gguf_reader import parse_header

    config = tiny_config("Qwen3ForCausalLM", num_hidden_layers=3)
    want = quantized_types(gguf_tensors(config), WeightQuant.Q4_K_M, arch="qwen3", n_layer=3)
    full = write_sparse_gguf(tmp_path / "full.gguf", config, quant="Q4_K_M")
    head = write_sparse_gguf(tmp_path / "head.gguf", config, quant="Q4_K_M", header_only=True)
    headers = [parse_header(p.read_bytes()) for p in (full, head)]
    assert [{t.name: t.type for t in h.tensors} for h in headers] == [want, want]
    assert all(h.fields["general.file_type"] == 15 for h in headers)  # llama_ftype LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert full.stat().st_size - head.stat().st_size >= sum(t.n_bytes for t in headers[0].tensors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.gguf", "head.gguf"]  # no .incomplete left
    with pytest.raises(ValueError, match="not both"):
        write_sparse_gguf(tmp_path / "x.gguf", config, outtype="BF16", quant="Q8_0")


def test_tiny_gguf_generates_same_logits_at_every_outtype(tmp_path: Path) -> None:
    """write_tiny_gguf writes real data: F32, F16 and BF16 files of one seed give close logits."""
    config = tiny_config("Qwen2ForCausalLM")
    runs = {
        o: generate_logits(write_tiny_gguf(tmp_path / f"{o}.gguf", config, outtype=o, seed=1))
        for o in ("F32", "F16", "BF16")
    }
    for outtype in ("F16", "BF16"):
        assert max(abs(a - b) for a, b in zip(runs["F32"], runs[outtype], strict=True)) < 0.02


@pytest.mark.parametrize(
    "arch", ["Qwen3MoeForCausalLM", "GptOssForCausalLM", "Phi3ForCausalLM", "SmolLM3ForCausalLM", "ExaoneForCausalLM"]
)
def test_tiny_moe_gguf_generates(arch: str, tmp_path: Path) -> None:
    """The tiny MoE files (gpt-oss with gguf-py's MXFP4 experts), phi3 (fused q|k|v and gate|up, LongRoPE
    factors over a partial rotary), smollm3 (no RoPE in every 4th layer) and exaone (EXAONE's config keys,
    llama3 rope_freqs) are models llama.cpp loads and evaluates."""
    generate_logits(write_tiny_gguf(tmp_path / "m.gguf", tiny_config(arch, num_hidden_layers=4)))
