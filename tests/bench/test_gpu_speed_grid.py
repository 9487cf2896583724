"""bench/gpu_speed_grid.py on the CPU with tiny MoE shapes: the decode loop, the experts forced to
the host through tensor_buft_overrides (ctypes), and the rows it writes (#24)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ggufgen import tiny_config

llama_cpp: Any = pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_grid_runs_on_the_cpu(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for arch in ("Qwen3MoeForCausalLM", "GptOssForCausalLM"):
        (models / f"tiny-{arch}.json").write_text(json.dumps({"config": tiny_config(arch)}))
    lib = Path(llama_cpp.__file__).parent / "lib"
    out = tmp_path / "out"
    cmd = [
        sys.executable, str(ROOT / "bench" / "gpu_speed_grid.py"), "--out", str(out), "--lib", str(lib),
        "--workdir", str(tmp_path / "w"), "--models", str(models), "--no-facts", "--steps", "2", "--cpu-steps", "2",
        "--depths", "16,40", "--seconds", "300",
        "--configs", "tiny-Qwen3MoeForCausalLM:Q4_K_M:cpu,tiny-GptOssForCausalLM:MXFP4_MOE:gpu",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "speed_grid.jsonl").read_text().splitlines()]
    ok = [x for x in rows if x.get("status") == "ok"]
    # 2 shapes x 3 KV types x 2 depths x G 1, 4, 16: every row measured, none skipped on the CPU
    assert len(ok) == 2 * 3 * 2 * 3
    assert {(x["placement"], x["kv"]) for x in ok} == {(p, k) for p in ("cpu", "gpu") for k in ("f16", "q8_0", "q4_0")}
    for x in ok:
        assert x["tps"] == pytest.approx(x["G"] / (x["step_ms_median"] / 1e3))
        assert x["n_seq_ctx"] == 16
    assert "tiny-Qwen3MoeForCausalLM cpu q8_0 d16 G1" in r.stdout
