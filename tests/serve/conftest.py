"""The tiny generated GGUF for the serve tests (the CLI tests' fixture, one per module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ggufgen import tiny_config, write_tiny_gguf

pytest.importorskip("uvicorn")
pytest.importorskip("openai")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-qwen3-F16.gguf", tiny_config(), outtype="F16")
