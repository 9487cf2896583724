"""``edgekv download`` through click's CliRunner, against the fake hub (tests/fakes/hub.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import constants

from edgekv.cli import cli, main
from edgekv.errors import HubError, ModelFileNotFound, SpecError
from tests.fakes.hub import GATED, SPLIT, TINY, FakeHub, dead_endpoint


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(cli, ["download", *args])
    return result.exit_code, result.output, result.exception


def test_download_prints_path_and_run_command(hub: FakeHub) -> None:
    code, out, exc = run(TINY, "--quant", "Q4_K_M", "--endpoint", hub.url)
    assert code == 0, exc
    lines = out.splitlines()
    assert lines[0].startswith(
        f"{TINY} @ {hub.repos[TINY].refs['main'][:8]}: Tiny-Q4_K_M.gguf, 6.70 MiB (6.70 MiB to fetch"
    )
    path = Path(lines[1].removeprefix("Downloaded: "))
    assert path.name == "Tiny-Q4_K_M.gguf" and path.is_file()
    assert lines[2].startswith(f"Run it:     edgekv run {path} --vram 8G")
    code, out, _ = run(TINY, "--quant", "Q4_K_M", "--endpoint", hub.url)
    assert code == 0 and f"Already cached: {path}" in out


def test_download_json_for_a_split_gguf(hub: FakeHub) -> None:
    code, out, exc = run(SPLIT, "--quant", "q4_k_m", "--endpoint", hub.url, "--json")
    assert code == 0, exc
    data = json.loads(out)
    assert [f["filename"] for f in data["files"]] == [f"Q4_K_M/Tiny-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert data["dry_run"] is False and data["n_bytes"] == data["n_bytes_to_fetch"] > 0
    assert data["path"] == data["files"][0]["path"]
    for f in data["files"]:
        assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert data["run_command"] == f"edgekv run {data['path']} --vram 8G"


def test_dry_run_downloads_nothing(hub: FakeHub) -> None:
    code, out, exc = run(TINY, "--quant", "Q8_0", "--dry-run", "--json", "--endpoint", hub.url)
    assert code == 0, exc
    data = json.loads(out)
    assert data["dry_run"] is True and data["files"][0]["cached"] is False
    assert data["n_bytes_to_fetch"] == len(hub.repos[TINY].trees[hub.repos[TINY].refs["main"]]["Tiny-Q8_0.gguf"])
    assert not hub.requests_for("Tiny-Q8_0.gguf") and not Path(data["path"]).exists()
    code, out, _ = run(TINY, "--quant", "Q8_0", "--dry-run", "--endpoint", hub.url)
    assert code == 0 and "  Tiny-Q8_0.gguf  10.41 MiB\n" in out and "Would download to: " in out


def test_endpoint_from_hf_endpoint_env(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # read at call time, not at huggingface_hub's import:
    # whatever a test before this one had in HF_ENDPOINT when huggingface_hub was first imported
    # (test_readme's examples point it at this hub) must not be what makes this pass
    monkeypatch.setattr(constants, "ENDPOINT", dead_endpoint())
    code, out, exc = run(TINY, "--quant", "Q4_K_M", "--dry-run")
    assert code == 0, exc


def test_404_exits_1_with_one_line(hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, exc = run("edgekv-test/Nope", "--quant", "Q4_K_M", "--endpoint", hub.url)
    assert code == 1 and isinstance(exc, HubError)
    hub.not_found.add((TINY, "Tiny-Q8_0.gguf"))
    with pytest.raises(SystemExit) as e:
        main(["download", TINY, "--quant", "Q8_0", "--endpoint", hub.url])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: Tiny-Q8_0.gguf not found in {TINY} at revision main") and "Traceback" not in err


def test_gated_message_mentions_hf_token(hub: FakeHub) -> None:
    code, _, exc = run(GATED, "--quant", "Q4_K_M", "--endpoint", hub.url)
    assert code == 1 and isinstance(exc, HubError)
    assert "HF_TOKEN" in str(exc) and "accept" in str(exc)


def test_missing_quant_lists_available(hub: FakeHub) -> None:
    code, _, exc = run(TINY, "--quant", "IQ2_M", "--endpoint", hub.url)
    assert code == 1 and isinstance(exc, ModelFileNotFound)
    assert str(exc) == f"{TINY} has no IQ2_M GGUF. It has: Q8_0, Q4_K_M"
    code, _, exc = run(TINY, "--endpoint", hub.url)  # no --quant: say what there is
    assert code == 1 and isinstance(exc, SpecError) and "Q8_0, Q4_K_M" in str(exc)


def test_bad_combinations_are_spec_errors(hub: FakeHub) -> None:
    code, _, exc = run("--endpoint", hub.url)
    assert code == 1 and isinstance(exc, SpecError)
    code, out, _ = run(TINY, "--quant", "Q8_0", "--file", "Tiny-Q8_0.gguf", "--endpoint", hub.url)
    assert code == 2 and "--quant and --file cannot be used together" in out  # a usage error (#28)
    code, _, exc = run("--vram", "8G", "--quant", "Q8_0")
    assert code == 1 and isinstance(exc, SpecError) and "--vram picks the file" in str(exc)


def test_help_lists_examples() -> None:
    result = CliRunner().invoke(cli, ["download", "--help"])
    assert result.exit_code == 0
    assert "edgekv download --vram 8G" in result.output and "--dry-run" in result.output


def test_vram_downloads_the_top_plan(hub: FakeHub) -> None:
    """pick's top plan for 8 GiB (the catalog's files, served as dummies) is what --vram fetches."""
    from edgekv.store import catalog

    files: dict[str, dict[str, bytes]] = {}
    for model in catalog.load_catalog():
        for entry in model.quants.values():
            if entry.repo and entry.file:
                files.setdefault(entry.repo, {})[entry.file] = b"GGUF" + entry.file.encode()
    for repo, tree in files.items():  # the hub fixture's reset drops them after the test
        hub.add_repo(repo, tree)
    code, out, exc = run("--vram", "8G", "--dry-run", "--json", "--endpoint", hub.url)
    assert code == 0, exc
    data = json.loads(out)
    assert data["repo"] in files and data["files"][0]["filename"] in files[data["repo"]]
    assert data["run_command"].endswith("--vram 8G")
