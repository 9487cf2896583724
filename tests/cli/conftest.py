"""Fixtures the CLI tests share: a tiny random Qwen3 GGUF and a tiny Llama checkpoint, one per module
(the fake hub's ``hub`` fixture is tests/conftest.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ckptgen import write_llama_checkpoint
from tests.ggufgen import tiny_config, write_tiny_gguf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-qwen3-F16.gguf", tiny_config(), outtype="F16")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_checkpoint(tmp_path_factory.mktemp("ck") / "Llama-tiny")


def main_ok(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[str, str]:
    """``edgekv ARGS`` in-process: (stdout, stderr); fails on a non-zero exit or a traceback."""
    from edgekv.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as e:
        assert e.code in (0, None), capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return out, err
