"""plan.fit: the one search for the largest context, shared by pick, run's pre-flight and inspect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekv.cli import cli
from edgekv.model.gguf_reader import read_spec
from edgekv.model.quant import KvType
from edgekv.model.spec import ModelSpec
from edgekv.plan.fit import FitTerms, context_cap, largest_tokens_per_seq
from edgekv.plan.memory import KV_PAD_CELLS, RunConfig, footprint, kv_bytes
from edgekv.plan.pick import pick
from edgekv.plan.preflight import largest_ctx
from edgekv.plan.requests import PickRequest
from edgekv.store.catalog import gguf_option
from edgekv.units import MIB
from tests.ggufgen import tiny_config, write_tiny_gguf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("fit") / "tiny-qwen3-F16.gguf", tiny_config(), outtype="F16")


def _brute_force(spec: ModelSpec, cfg: RunConfig, have: int, terms: FitTerms) -> int:
    """The largest T by walking every 256-token step: the definition, slowly."""
    best = 0
    for steps in range(1, context_cap(spec) // KV_PAD_CELLS + 1):
        run = cfg.with_ctx(steps * KV_PAD_CELLS * cfg.n_seq)
        fp = footprint(spec, run, compute_bytes=terms.compute_bytes, overhead_bytes=terms.overhead_bytes,
                       margin_bytes=terms.margin_bytes)  # fmt: skip
        if fp.gpu_total <= have:
            best = steps * KV_PAD_CELLS
    return best


@pytest.mark.parametrize("n_seq", [1, 3])
@pytest.mark.parametrize("kv", [KvType.F16, KvType.Q4_0])
@pytest.mark.parametrize("have_mib", [60, 97, 140])
def test_search_equals_brute_force(tiny: Path, n_seq: int, kv: KvType, have_mib: int) -> None:
    spec = read_spec(tiny)
    cfg = RunConfig(n_ctx=256, type_k=kv, type_v=kv, n_seq=n_seq)
    terms = FitTerms(compute_bytes=5 * MIB, overhead_bytes=0, margin_bytes=8 * MIB)
    t, fp = largest_tokens_per_seq(spec, cfg, have_bytes=have_mib * MIB, terms=terms)
    assert t == _brute_force(spec, cfg, have_mib * MIB, terms)
    if t:
        assert fp is not None and fp.kv == kv_bytes(spec, cfg.with_ctx(t * n_seq)).total


def test_nothing_fits(tiny: Path) -> None:
    spec = read_spec(tiny)
    t, fp = largest_tokens_per_seq(spec, RunConfig(n_ctx=256), have_bytes=MIB, terms=FitTerms(overhead_bytes=0))
    assert (t, fp) == (0, None)


@pytest.mark.parametrize("margin_mib", [0, 16])
@pytest.mark.parametrize("vram_mib", [1000, 1300])
def test_pick_and_run_agree_on_the_largest_context(tiny: Path, vram_mib: int, margin_mib: int) -> None:
    """Same model, card and margin: pick's T and run's --ctx auto search give the same context."""
    request = PickRequest(vram_bytes=vram_mib * MIB, kv_types=(KvType.F16,), max_parallel=1,
                          margin_bytes=margin_mib * MIB)  # fmt: skip
    result = pick(request, [gguf_option(tiny)])
    plan = result.plans[0]
    cfg = RunConfig(n_ctx=256, type_k=KvType.F16, type_v=KvType.F16)
    spec = read_spec(tiny)
    run_ctx = largest_ctx(spec, cfg, have_bytes=vram_mib * MIB, gpu=True, compute_bytes=plan.footprint.compute,
                          margin_bytes=margin_mib * MIB)  # fmt: skip
    assert run_ctx == plan.n_ctx_seq
    assert 256 <= plan.n_ctx_seq <= context_cap(spec)


def test_pick_json_feeds_run_plan(tiny: Path, tmp_path: Path) -> None:
    """``pick --json`` output is a plan file that ``run --plan`` reads and runs."""
    r = CliRunner().invoke(cli, ["pick", "--vram", "1200M", "--gguf", str(tiny), "--kv", "q8_0", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["schema"] == 1
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(r.stdout)
    out = CliRunner().invoke(cli, ["run", "--plan", str(plan_file), "--prompt", "hi", "--max-tokens", "2",
                                   "--threads", "1", "--json"])  # fmt: skip
    assert out.exit_code == 0, (out.output, out.exception)
    ran = json.loads(out.stdout)
    first = data["plans"][0]
    assert ran["config"]["n_ctx"] == first["n_ctx"] and ran["config"]["type_k"] == "q8_0"
    assert ran["config"]["parallel"] == first["parallel"] and ran["vram_bytes"] == data["vram_bytes"]
