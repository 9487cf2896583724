"""Partial offload: which blocks' KV stays in host memory, and the slowdown cap on offload plans."""

from __future__ import annotations

import pytest

from edgekv.model.quant import KvType
from edgekv.plan.memory import RunConfig, footprint, gpu_layer_start
from edgekv.plan.pick import pick
from edgekv.plan.requests import PickRequest
from edgekv.store.catalog import catalog_options, find
from edgekv.units import GIB


@pytest.mark.parametrize(("ngl", "start"), [(-1, 0), (37, 0), (99, 0), (36, 1), (10, 27), (1, 36), (0, 36)])
def test_gpu_layer_start_follows_load_tensors(ngl: int, start: int) -> None:
    # 36 blocks + the output layer: ngl counts the output layer first (i_gpu_start = 37 - ngl)
    assert gpu_layer_start(36, ngl) == start


# Qwen3-8B (its config.json): 36 blocks, 8 KV heads of head_dim 128. q8_0 stores 32 values in 34 bytes
# (an f16 scale + 32 int8, ggml's block_q8_0), so one block's K (or V) of one token is 8 x 128 / 32 x 34.
QWEN3_8B_BLOCKS = 36
Q8_0_KV_BYTES_PER_BLOCK_TOKEN = 2 * (8 * 128 // 32 * 34)  # K + V: 2,176
N_CTX = 8192


def test_kv_of_cpu_blocks_is_host_memory() -> None:
    spec = find("Qwen3-8B").spec
    cfg = RunConfig(n_ctx=N_CTX, type_k=KvType.Q8_0, type_v=KvType.Q8_0, n_gpu_layers=10)
    fp = footprint(spec, cfg, compute_bytes=0, overhead_bytes=0, margin_bytes=0)
    per_block = Q8_0_KV_BYTES_PER_BLOCK_TOKEN * N_CTX  # 17,825,792 bytes
    assert fp.kv == QWEN3_8B_BLOCKS * per_block == 641_728_512
    assert fp.kv_gpu == 9 * per_block == 160_432_128  # 10 offloaded layers = output layer + 9 blocks
    assert fp.kv_host == 27 * per_block == 481_296_384
    assert fp.gpu_total == fp.weights_gpu + fp.kv_gpu
    full = footprint(spec, RunConfig(n_ctx=N_CTX, type_k=KvType.Q8_0, type_v=KvType.Q8_0), margin_bytes=0)
    assert full.kv_host == 0 and full.kv_gpu == full.kv == 641_728_512


def test_offload_plans_respect_the_slowdown_cap() -> None:
    result = pick(PickRequest(vram_bytes=4 * GIB, allow_offload=True, top=50), catalog_options("qwen3"))
    offloaded = [p for p in result.plans if p.n_gpu_layers >= 0]
    assert offloaded, "4G with --allow-offload should offer a partial-offload plan"
    for p in offloaded:
        assert 1.0 < p.offload_slowdown <= 3.0
        assert any("slower" in r for r in p.reasons)
        assert p.footprint.gpu_total <= 4 * GIB
        assert p.footprint.kv_host > 0
