"""The on-disk compute-buffer cache: keys, persistence, atomic writes, corrupt files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edgekv.llama.compute_cache import ComputeCache, cache_key, model_identity
from edgekv.model.quant import KvType
from edgekv.model.spec import ModelSpec, TensorInfo
from edgekv.plan.memory import RunConfig
from edgekv.settings import user_dir


def _spec(ff: int = 768) -> ModelSpec:
    tensors = (TensorInfo("token_embd.weight", "F16", (256, 512)), TensorInfo("blk.0.ffn_up.weight", "Q8_0", (256, ff)))
    return ModelSpec("m", "qwen3", 1, 256, 4, (2,), 64, 64, ff, 512, 4096, tensors=tensors)


def test_user_dir_follows_edgekv_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEKV_HOME", str(tmp_path / "h"))
    assert user_dir() == tmp_path / "h"


def test_keys_separate_what_the_graph_depends_on() -> None:
    cfg = RunConfig(n_ctx=4096)
    k = cache_key(_spec(), cfg, build="b1", gpu=True)
    assert k == cache_key(_spec(), replace(cfg), build="b1", gpu=True)
    assert k != cache_key(_spec(), replace(cfg, n_ctx=256), build="b1", gpu=True)  # n_ub shrinks below 512
    assert k != cache_key(_spec(), replace(cfg, flash_attn=False), build="b1", gpu=True)
    assert k != cache_key(_spec(), cfg, build="b2", gpu=True)
    assert k != cache_key(_spec(), cfg, build="b1", gpu=False)
    assert k != cache_key(_spec(), replace(cfg, n_ubatch=256), build="b1", gpu=True)
    assert k != cache_key(_spec(), replace(cfg, type_k=KvType.Q8_0, type_v=KvType.Q8_0), build="b1", gpu=True)
    assert model_identity(_spec()) != model_identity(_spec(ff=1024))
    off = replace(cfg, flash_attn=False)
    longer = replace(off, n_ctx=8192)
    assert cache_key(_spec(), off, build="b", gpu=True) != cache_key(_spec(), longer, build="b", gpu=True)


def test_persists_and_survives_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cache = ComputeCache(path)
    assert cache.get("k") is None
    cache.put("k", 123)
    assert ComputeCache(path).get("k") == 123
    assert not list(tmp_path.glob("*.incomplete"))
    path.write_text("{not json")
    broken = ComputeCache(path)
    assert broken.get("k") is None
    broken.put("k2", 5)
    assert ComputeCache(path).get("k2") == 5
