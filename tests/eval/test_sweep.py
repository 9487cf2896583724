"""edgekv.eval.sweep: planning as pick enumerates, the run order, the manifest, and resuming after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from edgekv.errors import ModelFileNotFound, SpecError
from edgekv.eval.frontier import frontier
from edgekv.eval.scores import read_results
from edgekv.eval.sweep import (
    SweepSettings,
    is_done,
    plan_sweep,
    read_manifest,
    resolve_models,
    result_path,
    run_sweep,
)
from edgekv.plan.fit import context_cap
from edgekv.plan.memory import RunConfig
from edgekv.plan.plans import Budget
from edgekv.plan.policy import max_tokens_per_seq
from edgekv.store.catalog import catalog_options
from tests.eval.fake_eval import FakeBackend, small_plan

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3
CARDS = [4 * GIB, 6 * GIB, 8 * GIB]


def _qwen_plan(samples: tuple[int, ...] = (1, 4)):  # type: ignore[no-untyped-def]
    opts = catalog_options("qwen3", ["Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B"], ["Q8_0", "Q4_K_M"])
    return opts, plan_sweep(opts, CARDS, SweepSettings("aime25", limit=30, samples=samples))


def test_plan_configs_fit_as_pick_enumerates() -> None:
    opts, plan = _qwen_plan()
    by_file = {o.file: o for o in opts}
    keys = [it.key for it in plan.items]
    assert len(keys) == len(set(keys))  # deduplicated across cards
    for it in plan.items:
        opt = by_file[it.model_file]
        need = it.n_ctx_seq
        assert need >= 1024 + it.budget_tokens + 256 and need % 256 == 0
        for vram in CARDS:  # the cards listed are exactly those where pick's fit search says it fits
            cfg = RunConfig(n_ctx=256, type_k=it.type_k, type_v=it.type_v, n_seq=it.samples)
            t_max, _ = max_tokens_per_seq(opt, cfg, Budget(vram), cap=context_cap(opt.spec))
            assert (t_max >= need) == (vram in it.cards), (it.key, vram)
        assert it.total_bytes <= max(it.cards) and it.paper_bytes < it.total_bytes


def test_plan_runs_largest_g_and_derives_smaller() -> None:
    _opts, plan = _qwen_plan()
    combos = Counter((it.model_file, it.type_k, it.budget_tokens) for it in plan.items)
    assert set(combos.values()) == {1}  # one run per file x KV x budget: G = 1 is never run beside G = 4
    g4 = [it for it in plan.items if it.samples == 4]
    assert g4 and all(it.derived_samples == (1,) for it in g4)
    g1 = [it for it in plan.items if it.samples == 1]
    assert g1 and all(it.derived_samples == () for it in g1)
    # a G = 1 run exists only where G = 4 fits no card: the 4B at 16k on 8G, say
    assert any(it.model_file.endswith("Qwen3-4B-Q8_0.gguf") and it.budget_tokens == 16384 for it in g1)


def test_plan_order_loads_each_file_once_smallest_first() -> None:
    _opts, plan = _qwen_plan()
    files = [it.model_file for it in plan.items]
    runs = [f for i, f in enumerate(files) if i == 0 or files[i - 1] != f]
    assert len(runs) == len(set(runs))  # contiguous per file
    sizes = [next(it.effective_bytes for it in plan.items if it.model_file == f) for f in runs]
    assert sizes == sorted(sizes)
    assert [f for f, _ in plan.by_file()] == runs


def test_plan_records_picks_per_card() -> None:
    _opts, plan = _qwen_plan()
    assert [m.vram_bytes for m in plan.picks] == CARDS
    keys = {(it.model_file, it.type_k.value, it.budget_tokens) for it in plan.items}
    for m in plan.picks:
        assert (m.model, m.type_k, m.budget_tokens) in keys


def test_plan_errors() -> None:
    opts = catalog_options("qwen3", ["Qwen3-4B"], ["Q8_0"])
    with pytest.raises(SpecError, match="no configuration fits"):
        plan_sweep(opts, [1 * GIB], SweepSettings("aime25"))
    with pytest.raises(SpecError, match="nothing to sweep"):
        plan_sweep([], CARDS, SweepSettings("aime25"))


def test_run_sweep_once_per_file_and_skips_done(tmp_path: Path) -> None:
    plan = small_plan()
    log = tmp_path / "log"
    ran = run_sweep(plan, tmp_path / "out", FakeBackend(log))
    assert [it.key for it in ran] == [it.key for it in plan.items]
    lines = log.read_text().splitlines()
    assert sum(line.startswith("load ") for line in lines) == 2  # two model files, each loaded once
    assert all(is_done(tmp_path / "out", it) for it in plan.items)
    manifest = read_manifest(tmp_path / "out")
    assert manifest is not None and {i["status"] for i in manifest["items"]} == {"done"}
    assert manifest["settings"]["dataset"] == "synth"
    assert run_sweep(plan, tmp_path / "out", FakeBackend(log)) == []  # all done: nothing runs, nothing loads
    assert len(log.read_text().splitlines()) == len(lines)
    f = frontier(read_results([tmp_path / "out"]))
    assert len(f.points) == len(plan.items) and f.paper


def test_run_sweep_refuses_another_sweep_in_folder(tmp_path: Path) -> None:
    run_sweep(small_plan(), tmp_path / "out", FakeBackend(tmp_path / "log"))
    other = small_plan()
    other = type(other)(SweepSettings("aime25"), other.cards, other.items)
    with pytest.raises(SpecError, match="holds another sweep"):
        run_sweep(other, tmp_path / "out", FakeBackend(tmp_path / "log"))


def test_killed_sweep_resumes_without_redoing(tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.eval.fake_eval", str(out), str(log)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    since_finish = None  # problems written since the first configuration finished
    for line in proc.stdout:  # the fake says each event and waits after each problem
        if line.startswith("finish ") and since_finish is None:
            since_finish = 0
        elif line.startswith("problem "):
            if since_finish is not None:
                since_finish += 1
                if since_finish == 2:  # in the middle of the second configuration
                    break
            proc.stdin.write("\n")
            proc.stdin.flush()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    proc.stdout.close()
    assert since_finish == 2, "the fake sweep ended before the second configuration's second problem"
    before = log.read_text().splitlines()
    finished_before = {line.split()[1] for line in before if line.startswith("finish ")}
    assert finished_before and len(finished_before) < len(small_plan().items)
    killed = next(it for it in small_plan().items if f"start {it.key}" in before and it.key not in finished_before)
    with result_path(out, killed).open("a") as fh:  # as if the kill had come in the middle of a write
        fh.write('{"schema": 1, "type": "problem", "config_id": "' + killed.key + '", "problem_id": "p2", "go')

    from tests.eval.fake_eval import main

    main(str(out), str(log))
    after = log.read_text().splitlines()[len(before) :]
    plan = small_plan()
    finishes = Counter(line.split()[1] for line in before + after if line.startswith("finish "))
    assert finishes == Counter({it.key: 1 for it in plan.items})  # every config done, none twice
    assert not any(line.split()[1] in finished_before for line in after if line.startswith("start "))
    problems = Counter(tuple(line.split()[1:]) for line in before + after if line.startswith("problem "))
    assert max(problems.values()) == 1  # no problem evaluated twice (eval's own resume)
    for it in plan.items:
        rows = [json.loads(x) for x in result_path(out, it).read_text().splitlines()]
        assert sorted(r["problem_id"] for r in rows if r["type"] == "problem") == [f"p{i}" for i in range(5)]
    manifest = read_manifest(out)
    assert manifest is not None and all(i["status"] == "done" for i in manifest["items"])


def test_resolve_models(tmp_path: Path) -> None:
    plan = small_plan()
    found = tmp_path / "Qwen3-0.6B.gguf"
    seen: list[str] = []

    def locate(repo: str, file: str) -> Path | None:
        seen.append(file)
        return found if "0.6B" in file else None

    with pytest.raises(ModelFileNotFound, match="1 model file") as e:
        resolve_models(plan, locate=locate)
    assert "edgekv download" in str(e.value) and "1.7B" in str(e.value)
    done = resolve_models(plan, locate=locate, fetch=lambda repo, file: tmp_path / file)
    assert all(it.model_path for it in done.items)
    assert {it.model_path for it in done.items if "0.6B" in it.model_file} == {str(found)}
