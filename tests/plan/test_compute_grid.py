"""The compute-buffer term against llama.cpp's CUDA reserve (issue #29): the GPU's dry runs.

``bench/results/compute_grid/grid.jsonl`` holds llama.cpp's logged CUDA compute buffer (no_alloc
dry runs, bench/compute_grid.py) for the catalog models x total context 4k-256k x G 1-8 x KV f16 /
q8_0 / q4_0 (H100); ``sweep.jsonl`` every 256 tokens of context up to 32k at G = 1 (H200). The
expected values are llama.cpp's; the prediction is recomputed here from the committed catalog
figures (models/*.json), so a change to the term is checked against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekv.model.quant import KvType
from edgekv.plan.memory import ESTIMATE_SLACK_BYTES, MEASURED_SLACK_BYTES, RunConfig, compute_breakdown
from edgekv.store.catalog import CatalogModel, load_catalog
from edgekv.units import MIB

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "bench" / "results" / "compute_grid" / "grid.jsonl"
SWEEP = GRID.with_name("sweep.jsonl")  # G = 1, f16, n_ctx 256..64k in steps of 256 (1024 past 32k)


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogModel]:
    return {m.name: m for m in load_catalog(ROOT / "models")}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, object]]:
    grid = [json.loads(line) for line in GRID.read_text().splitlines() if line.strip()]
    sweep = [json.loads(line) for line in SWEEP.read_text().splitlines() if line.strip()]
    return grid + [{**r, "kv": "f16", "n_seq": 1, "sweep": True} for r in sweep]


def _errors(
    rows: list[dict[str, object]], catalog: dict[str, CatalogModel], *, measured: bool
) -> list[tuple[int, str]]:
    """(term's largest moment - llama.cpp, label) for every row, with the catalog's figures or the estimate."""
    out = []
    for r in rows:
        m = catalog[str(r["model"])]
        kv = KvType(str(r["kv"]))
        cfg = RunConfig(n_ctx=int(r["n_ctx"]), n_seq=int(r["n_seq"]), type_k=kv, type_v=kv)  # type: ignore[call-overload]
        parts = compute_breakdown(m.spec, cfg, m.compute_figures() if measured else None)
        label = f"{r['model']} {kv.value} G={r['n_seq']} n_ctx={r['n_ctx']}"
        out.append((int(parts["exact"]) - int(r["llama_cpp"]), label))  # type: ignore[call-overload]
    return out


def test_grid_covers_the_issue(rows: list[dict[str, object]]) -> None:
    rows = [r for r in rows if not r.get("sweep")]
    models = {r["model"] for r in rows}
    assert len(models) >= 4
    for m in models:
        mine = [r for r in rows if r["model"] == m]
        assert {r["kv"] for r in mine} == {"f16", "q8_0", "q4_0"}
        assert {r["n_seq"] for r in mine} >= set(range(1, 9))
        assert min(int(r["n_ctx"]) for r in mine) <= 4096 and max(int(r["n_ctx"]) for r in mine) >= 262144  # type: ignore[call-overload]


def test_term_with_measured_figures_is_within_1_mib_or_safe(
    rows: list[dict[str, object]], catalog: dict[str, CatalogModel]
) -> None:
    errs = _errors(rows, catalog, measured=True)
    worst_under = min(errs)
    worst_over = max(errs)
    print(f"over {len(errs)} dry runs: term - llama.cpp from {worst_under[0] / MIB:+.2f} ({worst_under[1]}) "
          f"to {worst_over[0] / MIB:+.2f} MiB ({worst_over[1]})")  # fmt: skip
    assert worst_under[0] + MEASURED_SLACK_BYTES >= 0, worst_under  # pick's count is never under llama.cpp's
    assert all(abs(e) <= MIB or e > 0 for e, _ in errs), [x for x in errs if abs(x[0]) > MIB and x[0] < 0][:5]


def test_estimate_without_figures_is_on_the_safe_side(
    rows: list[dict[str, object]], catalog: dict[str, CatalogModel]
) -> None:
    errs = _errors(rows, catalog, measured=False)
    worst_under = min(errs)
    print(f"estimate: term - llama.cpp from {worst_under[0] / MIB:+.2f} MiB ({worst_under[1]}) "
          f"to {max(errs)[0] / MIB:+.2f} MiB")  # fmt: skip
    assert worst_under[0] + ESTIMATE_SLACK_BYTES >= 0, worst_under
