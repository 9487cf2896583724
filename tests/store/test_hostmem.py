"""--ram's default and its strict parsing: the machine's available RAM less a margin, said in the output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgekv.cli import cli, main
from edgekv.errors import BadArgument
from edgekv.store.hostmem import host_ram
from edgekv.units import GIB


def _mem_available() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


def test_default_is_available_ram_less_a_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEKV_RAM")
    ram = host_ram(None)
    avail = _mem_available()
    assert ram is not None and ram.source == "/proc/meminfo"
    assert ram.available_bytes == pytest.approx(avail, rel=0.05)  # it moves while the test runs
    assert ram.margin_bytes == max(GIB, round(ram.available_bytes * 0.10))
    assert ram.ram_bytes == ram.available_bytes - ram.margin_bytes
    assert "available (/proc/meminfo) less a" in ram.describe()


def test_flag_and_env() -> None:
    assert host_ram("16G").ram_bytes == 16 * GIB  # type: ignore[union-attr]
    assert host_ram("0").ram_bytes == 0  # type: ignore[union-attr]
    env = host_ram(None)  # tests/conftest.py sets EDGEKV_RAM=16G
    assert env is not None and (env.ram_bytes, env.source) == (16 * GIB, "EDGEKV_RAM")


@pytest.mark.parametrize("bad", ["8X", "-1G", "1.5", "lots", "12"])
def test_bad_ram_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BadArgument):
        host_ram(bad)
    for verb in (["pick", "--vram", "8G"], ["run", "no-such.gguf", "--vram", "8G"], ["bench", "no-such.gguf"]):
        with pytest.raises(SystemExit) as e:
            main([*verb, "--ram", bad])
        assert e.value.code == 2, verb
        err = capsys.readouterr().err
        assert err.startswith("error: ") and f"'{bad}'" in err and len(err.strip().splitlines()) == 1, err


def _plans(*args: str) -> list[dict[str, object]]:
    out = CliRunner().invoke(cli, ["pick", "--vram", "8G", "--task", "knowledge", "--top", "20", "--json", *args])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    return list(data["plans"])


def test_pick_ram_bounds_the_host_side() -> None:
    """With 32G the 8 GiB card's top plans keep MoE experts in RAM, each host side within --ram; with
    less RAM the larger quants drop out; with --ram 0 no plan keeps experts or layers in RAM."""
    big = _plans("--ram", "32G")
    moe = [p for p in big if p["n_cpu_moe"]]
    assert moe and all(p["memory"]["host_total"] <= 32 * GIB for p in moe)  # type: ignore[index]
    small = _plans("--ram", "12G")
    assert all(p["memory"]["host_total"] <= 12 * GIB for p in small)  # type: ignore[index]
    # the quants whose RAM side passed 12G with 32G of RAM are gone (a top-N set is not monotone: a smaller
    # quant may rise into it once the larger ones drop out)
    over = {(p["model"], p["quant"]) for p in moe if p["memory"]["host_total"] > 12 * GIB}  # type: ignore[index]
    assert over and not over & {(p["model"], p["quant"]) for p in small if p["n_cpu_moe"]}
    none = _plans("--ram", "0")
    assert not any(p["n_cpu_moe"] for p in none) and all(p["n_gpu_layers"] == -1 for p in none)
    for p in moe:
        rows = {r["group"]: r for r in p["placement"]}  # type: ignore[attr-defined]
        assert rows["experts"]["host_bytes"] > 0 and rows["embeddings"]["gpu_bytes"] == 0
        assert p["llama_args"]["server"][-2:] == ["--n-cpu-moe", str(p["n_cpu_moe"])]  # type: ignore[index]
