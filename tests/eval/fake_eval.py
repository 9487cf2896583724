"""A fake evaluator for sweep tests: writes eval-shaped JSONL slowly through eval's results module
(so it resumes by eval's torn-line rule), logs what it did.

``python -m tests.eval.fake_eval OUT LOG`` runs the small sweep of ``small_plan()`` with it, pausing
after each problem: it says ``problem KEY PID`` on stdout and waits for a line on stdin (the resume
test kills that process with SIGKILL at the problem it chooses, and runs the sweep again).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekv.eval.results import append_line, open_for_append, read_results
from edgekv.eval.sweep import SweepItem, SweepPlan, SweepSettings, plan_sweep, run_sweep
from edgekv.model.quant import KvType
from edgekv.store.catalog import catalog_options

GIB = 1024**3
N_PROBLEMS = 5


def _append(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, text.encode())  # one write: a line is whole or torn, never interleaved
    finally:
        os.close(fd)


def _config(item: SweepItem) -> dict[str, Any]:
    kv = item.paper_bytes - item.effective_bytes
    return {
        "model": item.model_file, "model_path": item.model_path or "", "quant": item.quant,
        "effective_bytes": item.effective_bytes, "n_params": 0, "type_k": item.type_k.value,
        "type_v": item.type_v.value, "budget_tokens": item.budget_tokens, "reserve_tokens": 256,
        "samples": item.samples, "dataset": "synth", "n_ctx": item.n_ctx,
        "memory": {"weights": item.effective_bytes, "kv": kv, "compute": 0, "overhead": 0,
                   "total": item.total_bytes, "paper_total": item.paper_bytes},
    }  # fmt: skip


@dataclass
class FakeBackend:
    log: Path
    pause: bool = False  # after each problem (and at each finish) say so on stdout; wait for stdin after a problem
    n_problems: int = N_PROBLEMS

    def _event(self, text: str, *, wait: bool = False) -> None:
        _append(self.log, text + "\n")
        if self.pause:
            print(text, flush=True)
            if wait:
                sys.stdin.readline()

    @contextmanager
    def _loaded(self, item: SweepItem) -> Iterator[str]:
        _append(self.log, f"load {item.model_file}\n")
        yield item.model_file

    def load(self, item: SweepItem) -> Any:
        return self._loaded(item)

    def evaluate(self, item: SweepItem, *, model: Any, out: Path) -> None:
        assert model == item.model_file
        _append(self.log, f"start {item.key}\n")
        done = read_results(out).problems
        conf = _config(item)
        with open_for_append(out) as fh:  # a torn last line from a kill is cut off, as eval does
            for i in range(self.n_problems):
                pid = f"p{i}"
                if pid in done:
                    continue
                ok = i < 2
                row = {"schema": 1, "type": "problem", "config_id": item.key, "config": conf, "problem_id": pid,
                       "gold": "1", "answers": ["1"] * item.samples, "correct": [ok] * item.samples,
                       "majority": "1", "maj_correct": [ok] * item.samples, "n_tokens": [1] * item.samples,
                       "cut": [False] * item.samples, "seconds": 0.0}  # fmt: skip
                append_line(fh, row)
                self._event(f"problem {item.key} {pid}", wait=True)
            append_line(fh, {"schema": 1, "type": "summary", "config_id": item.key, "config": conf})
        self._event(f"finish {item.key}")


def small_plan() -> SweepPlan:
    opts = catalog_options("qwen3", ["Qwen3-0.6B", "Qwen3-1.7B"], ["Q8_0"])
    settings = SweepSettings("synth", limit=N_PROBLEMS, budgets=(2048, 4096), samples=(1,), kv_types=(KvType.F16,))
    return plan_sweep(opts, [4 * GIB], settings)


def main(out: str, log: str, *, pause: bool = False) -> None:
    run_sweep(small_plan(), Path(out), FakeBackend(Path(log), pause=pause))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], pause=True)
