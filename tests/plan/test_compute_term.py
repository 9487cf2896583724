"""The compute-buffer term (issue #29) against numbers derived by hand from llama.cpp's source and
against llama.cpp's own reserve as measured on GPUs (the issue's H100 figures).

Hand derivations (llama-cpp-python 0.3.36's vendored llama.cpp):
- graph_reserve rounds n_tokens = min(n_ctx, n_ubatch) up to a multiple of n_seq;
- the KQ mask is F16 [cells per stream, n_tokens / n_stream, 1, n_stream] (build_attn_inp_kq_mask);
- CUDA's flash attention with a quantized K/V adds an f16 copy of the whole K and V views,
  [head_dim, n_head_kv, cells per stream, n_stream] each (ggml_cuda_flash_attn_ext_get_f16_extra_data).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekv.model.quant import KvType
from edgekv.plan.memory import (
    RunConfig,
    compute_breakdown,
    fa_f16_copy_bytes,
    kq_mask_bytes,
    reserve_tokens,
)
from edgekv.store.catalog import CatalogModel, load_catalog
from edgekv.units import MIB

ROOT = Path(__file__).resolve().parents[2]
Q8 = KvType.Q8_0


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogModel]:
    return {m.name: m for m in load_catalog(ROOT / "models")}


@pytest.mark.parametrize(("g", "n_tok"), [(1, 512), (2, 512), (3, 513), (5, 515), (6, 516), (7, 518), (8, 512)])
def test_reserve_tokens_round_up_to_a_multiple_of_g(g: int, n_tok: int) -> None:
    assert reserve_tokens(RunConfig(n_ctx=65536 * g, n_seq=g)) == n_tok


def test_reserve_tokens_of_a_context_below_n_ubatch() -> None:
    assert reserve_tokens(RunConfig(n_ctx=100)) == 256  # n_ctx is padded to 256 first
    assert reserve_tokens(RunConfig(n_ctx=768, n_seq=3)) == 513  # 3 streams of 256 cells; 512 rounded up to 513


def test_kq_mask_by_hand(catalog: dict[str, CatalogModel]) -> None:
    spec = catalog["Qwen3-8B"].spec
    # one stream of 262,144 cells x 512 tokens x 2 bytes
    assert kq_mask_bytes(spec, RunConfig(n_ctx=262144)) == 2 * 262144 * 512 == 256 * MIB
    # G = 6: 6 streams of pad256(262144 / 6) = 43,776 cells, 516 / 6 = 86 tokens each
    assert kq_mask_bytes(spec, RunConfig(n_ctx=262144, n_seq=6)) == 2 * 43776 * 86 * 6 == 45_176_832
    # a unified cache: one stream of every cell, all 516 tokens
    assert kq_mask_bytes(spec, RunConfig(n_ctx=262144, n_seq=6, kv_unified=True)) == 2 * 262144 * 516
    # no flash attention: F32
    assert kq_mask_bytes(spec, RunConfig(n_ctx=4096, flash_attn=False)) == 4 * 4096 * 512


def test_fa_f16_copies_by_hand(catalog: dict[str, CatalogModel]) -> None:
    spec = catalog["Qwen3-14B"].spec  # 8 KV heads x 128 = 1024 per layer
    cfg = RunConfig(n_ctx=208896, n_seq=6, type_k=Q8, type_v=Q8)  # 6 streams of 34,816 cells
    assert fa_f16_copy_bytes(spec, cfg) == 2 * (2 * 1024 * 34816 * 6) == 855_638_016
    assert fa_f16_copy_bytes(spec, RunConfig(n_ctx=208896, n_seq=6)) == 0  # f16 K/V: views, no copy
    assert fa_f16_copy_bytes(spec, cfg, backend="cpu") == 0
    k_only = RunConfig(n_ctx=208896, n_seq=6, type_k=Q8)
    assert fa_f16_copy_bytes(spec, k_only) == 2 * 1024 * 34816 * 6
    # the copies cover the whole context whatever G is; the mask shrinks with G
    one = RunConfig(n_ctx=208896, type_k=Q8, type_v=Q8)
    assert fa_f16_copy_bytes(spec, one) == 4 * 1024 * 208896
    assert kq_mask_bytes(spec, one) > 5 * kq_mask_bytes(spec, cfg)


# llama.cpp's CUDA compute buffer as issue #29 reports it (H100, flash attention, q8_0 KV, n_ubatch 512)
ISSUE_TABLE = [
    ("Qwen3-8B", 1, 32768, 304.8), ("Qwen3-8B", 1, 65536, 352.1), ("Qwen3-8B", 1, 131072, 672.1),
    ("Qwen3-8B", 1, 196608, 992.1), ("Qwen3-8B", 1, 262144, 1312.1),
    ("Qwen3-8B", 6, 32768, 304.8), ("Qwen3-8B", 6, 65536, 304.8), ("Qwen3-8B", 6, 131072, 570.0),
    ("Qwen3-8B", 6, 196608, 832.6), ("Qwen3-8B", 6, 262144, 1101.4),
    ("Qwen3-14B", 6, 208896, 890.7), ("Qwen3-8B", 6, 227328, 957.6), ("Qwen3-14B", 3, 110592, 508.2),
]  # fmt: skip


@pytest.mark.parametrize(("model", "g", "n_ctx", "mib"), ISSUE_TABLE)
def test_term_reproduces_the_issue(
    catalog: dict[str, CatalogModel], model: str, g: int, n_ctx: int, mib: float
) -> None:
    """Within 1 MiB of llama.cpp's reserve, and never under it by more than the term's slack."""
    m = catalog[model]
    cfg = RunConfig(n_ctx=n_ctx, n_seq=g, type_k=Q8, type_v=Q8)
    parts = compute_breakdown(m.spec, cfg, m.compute_figures())
    assert abs(int(parts["exact"]) / MIB - mib) <= 1.0, parts
    assert int(parts["compute"]) / MIB >= mib - 0.05
