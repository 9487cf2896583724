"""``edgekv convert`` through click's CliRunner on edgekv.cli.cli."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli, main
from edgekv.errors import OutputExists, UnsupportedModel


def test_convert_json(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["convert", str(ckpt), "--quants", "Q4_K_M,Q8_0", "--outdir", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == [
        "Llama-tiny-F16.gguf",
        "Llama-tiny-Q4_K_M.gguf",
        "Llama-tiny-Q8_0.gguf",
    ]
    for f in manifest["files"]:
        assert f["file_bytes"] == (out / f["name"]).stat().st_size
        assert set(f["kv_bytes_per_token"]) == {"f16", "q8_0", "q4_0"}
    assert manifest["model_name"] == "Llama-tiny" and manifest["arch"] == "llama"


def test_convert_table_and_rerun(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["convert", str(ckpt), "--quants", "Q4_0", "--outdir", str(out), "--outtype", "bf16", "--name", "tiny"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "tiny-BF16.gguf" in first.output and "tiny-Q4_0.gguf" in first.output
    assert "effective size" in first.output and "manifest:" in first.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and again.output.count("reused") == 2


def test_convert_refuses_existing_output(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "Llama-tiny-F16.gguf").write_bytes(b"x")
    result = CliRunner().invoke(cli, ["convert", str(ckpt), "--quants", "Q8_0", "--outdir", str(out)])
    assert result.exit_code == 1
    assert isinstance(result.exception, OutputExists) and "Llama-tiny-F16.gguf" in str(result.exception)
    forced = CliRunner().invoke(
        cli, ["convert", str(ckpt), "--quants", "Q8_0", "--outdir", str(out), "--force", "--json"]
    )
    assert forced.exit_code == 0, forced.output


def test_convert_refuses_pickles(tmp_path: Path) -> None:
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "ck"), "--outdir", str(tmp_path / "out")])
    assert isinstance(result.exception, UnsupportedModel) and "unpickling" in str(result.exception)


def test_convert_bad_quant_is_a_usage_error(ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["convert", str(ckpt), "--quants", "Q9", "--outdir", str(tmp_path)])
    assert e.value.code == 2
    assert not (tmp_path / "manifest.json").exists()  # nothing was written


def test_convert_help_lists_flags() -> None:
    result = CliRunner().invoke(cli, ["convert", "--help"])
    assert result.exit_code == 0
    for flag in ("--quants", "--outtype", "--outdir", "--imatrix", "--threads", "--force", "--converter", "--json"):
        assert flag in result.output
