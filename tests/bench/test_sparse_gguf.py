"""bench/sparse_gguf.py: sparse GGUFs of real shapes with random embeddings and routers (#24)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from edgekv.model.archs import gguf_tensors
from edgekv.model.quant import WeightQuant
from edgekv.model.quantrules import quantized_types

llama_cpp: Any = pytest.importorskip("llama_cpp")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from sparse_gguf import catalog_config, main, write_sparse_model  # noqa: E402

from tests.ggufgen import tiny_config  # noqa: E402
from tests.model.test_quantrules import generate_logits  # noqa: E402

CASES = [("Qwen3MoeForCausalLM", "Q4_K_M", 8, 2), ("GptOssForCausalLM", "MXFP4_MOE", 4, 2)]


@pytest.mark.parametrize(("arch", "quant", "n_expert", "n_used"), CASES)
def test_only_embeddings_routers_and_norms_hold_data(arch: str, quant: str, n_expert: int, n_used: int,
                                                     tmp_path: Path) -> None:  # fmt: skip
    config = tiny_config(arch)
    path = write_sparse_model(tmp_path / "m.gguf", config, quant=quant)
    want = quantized_types(gguf_tensors(config), WeightQuant.parse(quant), arch=gguf.GGUFReader(path).fields[
        "general.architecture"].contents(), n_layer=2, n_expert=n_expert)  # fmt: skip
    r = gguf.GGUFReader(path)
    assert {t.name: t.tensor_type.name for t in r.tensors} == want
    for t in r.tensors:
        raw = np.asarray(t.data).view(np.uint8)
        if t.name.endswith("_norm.weight"):
            assert np.all(np.asarray(t.data) == 1.0), t.name
        elif t.name == "token_embd.weight" or t.name.endswith("ffn_gate_inp.weight"):
            assert np.count_nonzero(raw) > raw.size // 2, t.name
        elif t.tensor_type.name == "MXFP4":  # 17-byte blocks: scale byte 127 (2^0), values 0
            blocks = raw.reshape(-1, 17)
            assert np.all(blocks[:, 0] == 127) and not blocks[:, 1:].any(), t.name
        else:
            assert not raw.any(), t.name  # a hole
    # the experts a token is routed to differ from token to token: the hidden state is its embedding
    # (every block's output projection is zero), normed, times the layer's router
    embd = gguf.quants.dequantize(np.asarray(r.get_tensor(0).data), r.get_tensor(0).tensor_type)
    router = next(t for t in r.tensors if t.name == "blk.0.ffn_gate_inp.weight")
    w = np.asarray(router.data, dtype=np.float32).reshape(n_expert, -1)
    chosen = set()
    for tok in range(300, 340):
        x = embd[tok] / np.sqrt(np.mean(embd[tok] ** 2) + 1e-6)
        chosen.add(tuple(sorted(np.argsort(w @ x)[-n_used:])))
    assert len(chosen) >= 3  # of C(E, k) = 28 or 6 possible sets


@pytest.mark.parametrize(("arch", "quant", "n_expert", "n_used"), CASES)
def test_loads_and_generates(arch: str, quant: str, n_expert: int, n_used: int, tmp_path: Path) -> None:
    path = write_sparse_model(tmp_path / "m.gguf", tiny_config(arch), quant=quant)
    generate_logits(path, zeros=True)  # the output layer is a hole: every logit is 0


def test_real_shape_is_sparse_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "oss.gguf"
    assert main(["gpt-oss-20b", "MXFP4_MOE", str(out), "--mxfp4-holes"]) == 0
    st = out.stat()
    assert st.st_size > 11 * 2**30  # the whole shape (12.1 GB of weights)
    assert st.st_blocks * 512 < 2**30  # on disk: the header, embeddings (Q8_0, 615 MB) and routers
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no catalog model"):
        catalog_config("no-such-model")


@pytest.mark.parametrize(("arch", "quant", "n_expert", "n_used"), [
    ("Qwen3MoeForCausalLM", "Q4_K_M", 32, 4),  # Q4_K embeddings: all positive, the routers centred
    ("GptOssForCausalLM", "MXFP4_MOE", 32, 4),  # Q8_0 embeddings
])  # fmt: skip
def test_experts_of_g_random_tokens_cover_the_expected_share(arch: str, quant: str, n_expert: int, n_used: int,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """Layer 0's routing of the file's own embeddings: G random tokens choose 1 - (1 - k/E)^G of the
    experts (k/E = 1/8: 0.125, 0.414, 0.882 for G = 1, 4, 16), the speed model's expectation."""
    key = "num_experts" if arch == "Qwen3MoeForCausalLM" else "num_local_experts"
    config = tiny_config(arch, num_experts_per_tok=n_used, vocab_size=2048, **{key: n_expert})
    r = gguf.GGUFReader(write_sparse_model(tmp_path / "m.gguf", config, quant=quant))
    embd_t = next(t for t in r.tensors if t.name == "token_embd.weight")
    embd = gguf.quants.dequantize(np.asarray(embd_t.data), embd_t.tensor_type)
    w = next(t for t in r.tensors if t.name == "blk.0.ffn_gate_inp.weight")
    router = np.asarray(w.data, dtype=np.float32).reshape(n_expert, -1)
    x = embd / np.sqrt(np.mean(embd**2, axis=1, keepdims=True) + 1e-6)
    top = np.argsort(x @ router.T, axis=1)[:, -n_used:]
    rng = np.random.default_rng(1)
    for g, want in ((1, 0.125), (4, 0.4138), (16, 0.8822)):
        share = np.mean([len(set(top[rng.integers(0, 2048, g)].ravel())) / n_expert for _ in range(400)])
        assert share == pytest.approx(want, abs=0.04), g
