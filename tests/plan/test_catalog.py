"""The catalog's mixture-of-experts entries (Qwen3-30B-A3B, gpt-oss-20b) and pick leaving them out.

Expected values come from the published config.json numbers and llama.cpp's rules written out here
(KV per cell, sliding-window cells), from llama.cpp itself (a no_alloc load of a sparse GGUF of the
entry's shape and quant: llama_model_size) and from gguf-py's reading of that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgekv.model.quant import KvType, WeightQuant
from edgekv.plan.memory import RunConfig, kv_bytes
from edgekv.store.catalog import CatalogModel, catalog_options, gguf_option, load_catalog
from edgekv.units import MIB

ROOT = Path(__file__).resolve().parents[2]
MOE = ("Qwen3-30B-A3B", "gpt-oss-20b")


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogModel]:
    return {m.name: m for m in load_catalog(ROOT / "models")}


def test_moe_entries(catalog: dict[str, CatalogModel]) -> None:
    q, g = catalog["Qwen3-30B-A3B"], catalog["gpt-oss-20b"]
    assert (q.spec.n_expert, q.spec.n_expert_used, q.spec.n_ff_exp) == (128, 8, 768)
    assert (g.spec.n_expert, g.spec.n_expert_used, g.spec.n_ff_exp) == (32, 4, 2880)
    levels = ("BF16", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M")
    assert set(q.quants) == {WeightQuant(x) for x in levels}
    assert set(g.quants) == {WeightQuant.BF16, WeightQuant.F16, WeightQuant.MXFP4_MOE}
    # the model cards: 30.5B (Qwen3-30B-A3B) and 20.9B (gpt-oss-20b) parameters in total
    assert round(q.n_params / 1e9, 1) == 30.5 and round(g.n_params / 1e9, 1) == 20.9
    # bartowski's openai_gpt-oss-20b-MXFP4.gguf is 12.1 GB (weights plus a few MB of metadata)
    assert round(g.quants[WeightQuant.MXFP4_MOE].weights_bytes / 1e9, 1) == 12.1
    for m in (q, g):
        for e in m.quants.values():
            assert sum(e.group_bytes.values()) == e.weights_bytes
            assert sum(e.expert_layer_bytes) == e.group_bytes["experts"] and len(e.expert_layer_bytes) == m.spec.n_layer
            assert e.group_bytes["ffn"] == e.group_bytes["shared_experts"] == 0


# llama.cpp: per layer and cell, K and V rows of n_head_kv x head_dim; gpt-oss's sliding-window blocks
# (even ones, window 128) hold pad256(128 + n_ubatch) = 768 cells without swa_full.
@pytest.mark.parametrize(
    ("model", "swa_full", "kv", "want"),
    [
        ("Qwen3-30B-A3B", True, KvType.F16, 48 * 2 * 4 * 128 * 2 * 32768),  # 3 GiB
        ("Qwen3-30B-A3B", True, KvType.Q8_0, 48 * 2 * 4 * 128 * 34 // 32 * 32768),
        ("gpt-oss-20b", True, KvType.F16, 24 * 2 * 8 * 64 * 2 * 32768),
        ("gpt-oss-20b", False, KvType.F16, 12 * 2 * 8 * 64 * 2 * (32768 + 768)),
        ("gpt-oss-20b", False, KvType.Q4_0, 12 * 2 * 8 * 64 * 18 // 32 * (32768 + 768)),
    ],
)
def test_moe_kv_bytes(catalog: dict[str, CatalogModel], model: str, swa_full: bool, kv: KvType, want: int) -> None:
    got = kv_bytes(catalog[model].spec, RunConfig(n_ctx=32768, type_k=kv, type_v=kv, swa_full=swa_full))
    assert got.total == want
    if model == "Qwen3-30B-A3B" and kv is KvType.F16:
        assert got.total == 3072 * MIB


ENTRIES = [("Qwen3-30B-A3B", "Q4_K_M"), ("gpt-oss-20b", "MXFP4_MOE")]


@pytest.mark.parametrize(("model", "quant"), ENTRIES)
def test_moe_entry_bytes_match_llama_cpp(
    catalog: dict[str, CatalogModel], model: str, quant: str, tmp_path: Path
) -> None:
    """llama.cpp sizes a sparse file of the entry's shape and quant as the catalog does."""
    llama_cpp: Any = pytest.importorskip("llama_cpp")
    from tests.ggufgen import write_sparse_gguf
    from tests.model.test_quantrules import captured_log

    m, entry = catalog[model], catalog[model].quants[WeightQuant(quant)]
    path = write_sparse_gguf(tmp_path / "m.gguf", m.config, quant=quant)  # sparse: zeros cost no disk
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.no_alloc = True  # with load_mode NONE nothing is read or allocated
    mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    with captured_log() as log:
        handle = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    assert handle, "".join(log)[-2000:]
    try:
        assert llama_cpp.llama_model_size(handle) == entry.weights_bytes
        assert llama_cpp.llama_model_n_params(handle) == m.n_params
    finally:
        llama_cpp.llama_model_free(handle)


@pytest.mark.slow  # gguf.GGUFReader takes ~20 s over a 150-200k-token vocabulary
@pytest.mark.parametrize(("model", "quant"), ENTRIES)
def test_moe_entry_groups_match_gguf_reader(
    catalog: dict[str, CatalogModel], model: str, quant: str, tmp_path: Path
) -> None:
    pytest.importorskip("gguf")
    from tests.ggufgen import write_sparse_gguf
    from tests.model.test_tensor_groups import reader_groups

    m, entry = catalog[model], catalog[model].quants[WeightQuant(quant)]
    total, per_layer = reader_groups(write_sparse_gguf(tmp_path / "m.gguf", m.config, quant=quant), m.spec.n_layer)
    assert entry.group_bytes == total
    assert entry.expert_layer_bytes == tuple(g["experts"] for g in per_layer)


def test_pick_ranks_moe_models_by_capacity() -> None:
    """MoE entries are options, with their Qwen3-equivalent size and each block's expert bytes."""
    every = {(o.name, o.quant): o for o in catalog_options("all", None, None)}
    assert {n for n, _ in every} >= set(MOE)
    moe = every[("Qwen3-30B-A3B", "Q4_K_M")]
    assert 19.7e9 < moe.capacity_params < 19.71e9 and len(moe.layout.expert_bytes) == 48
    assert sum(moe.layout.expert_bytes) == moe.group_bytes["experts"]
    only = catalog_options("gpt-oss", None, None)
    assert {o.name for o in only} == {"gpt-oss-20b"} and all(o.layout.expert_bytes for o in only)


def test_a_moe_gguf_is_an_option(tmp_path: Path) -> None:
    """A local MoE GGUF: no published scores, so its own size; its experts per block from its header."""
    pytest.importorskip("gguf")
    from tests.ggufgen import tiny_config, write_sparse_gguf

    path = write_sparse_gguf(tmp_path / "tiny-moe.gguf", tiny_config("Qwen3MoeForCausalLM"))
    opt = gguf_option(path)
    assert (
        opt.capacity_params == 0
        and opt.layout.expert_bytes
        and opt.group_bytes["experts"] == sum(opt.layout.expert_bytes)
    )
