"""Experts forced to the host through edgekv's own ``tensor_buft_overrides`` (llama/overrides.py), on
the CPU build: generated qwen3moe and gpt-oss GGUFs loaded with ``n_cpu_moe`` N.

On a CPU-only build the "device" is host memory too, and llama.cpp puts an override to the CPU into
its best CPU buffer type (CPU_REPACK where the type repacks), so the model buffers do not move.
What is checked honestly: llama.cpp's own log names every tensor it overrode ("tensor X (... )
buffer type overridden to ..."), and those are exactly the tensors gguf-py reads as the experts of
blocks 0..N-1, whose bytes (gguf-py's) are the host side edgekv predicts; the rest of the weights is
the device side; and the model runs (edgekv run) with the overrides in place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from click.testing import CliRunner  # noqa: E402

from edgekv.cli import cli  # noqa: E402
from edgekv.llama import runner  # noqa: E402
from edgekv.model.gguf_reader import read_spec  # noqa: E402
from edgekv.plan.memory import RunConfig, WeightLayout  # noqa: E402
from tests.ggufgen import tiny_config, write_tiny_gguf  # noqa: E402

OVERRIDE = re.compile(r"tensor (\S+) \(\d+ MiB \w+\) buffer type overridden to (\S+)")
MT = gguf.MODEL_TENSOR
EXPERT_KINDS = (MT.FFN_GATE_EXP, MT.FFN_UP_EXP, MT.FFN_DOWN_EXP)  # gguf-py's routed-expert tensors


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("moe-ot")
    return {
        "qwen3moe": write_tiny_gguf(d / "qwen3moe.gguf", tiny_config("Qwen3MoeForCausalLM")),
        "gpt-oss": write_tiny_gguf(d / "gpt-oss.gguf", tiny_config("GptOssForCausalLM", num_hidden_layers=4)),
    }


def gguf_experts(path: Path, n_blocks: int) -> dict[str, int]:
    """gguf-py's expert tensors (weights and biases) of blocks 0..n_blocks-1 and their bytes."""
    names = {gguf.TENSOR_NAMES[k].format(bid=b) for k in EXPERT_KINDS for b in range(n_blocks)}
    return {t.name: int(t.n_bytes) for t in gguf.GGUFReader(path).tensors if t.name.rpartition(".")[0] in names}


@pytest.mark.parametrize("arch", ["qwen3moe", "gpt-oss"])
def test_overrides_put_exactly_the_predicted_experts_on_the_host(models: dict[str, Path], arch: str) -> None:
    path = models[arch]
    spec = read_spec(path)
    layout = WeightLayout.from_spec(spec)
    for n in (1, spec.n_layer):
        with runner.load(path, RunConfig(n_ctx=512, n_cpu_moe=n), n_threads=1) as r:
            moved = {m.group(1) for line in r.log_lines() if (m := OVERRIDE.search(line))}
            r.decode([1, 5, 9])  # it runs with the overrides in place
        want = gguf_experts(path, n)
        assert moved == set(want) and want, (arch, n)
        host = layout.host_experts(-1, n)
        assert host == sum(want.values())  # edgekv's host side = gguf-py's bytes of what llama.cpp moved
        gpu, host_all = layout.split(-1, n)
        assert host_all == layout.input_bytes + host  # host: token_embd + the experts moved
        gpu_tensors = sum(int(t.n_bytes) for t in gguf.GGUFReader(path).tensors) - sum(want.values())
        tied_dup = layout.input_bytes if spec.tied_embeddings else 0
        assert gpu == gpu_tensors - layout.input_bytes + tied_dup  # device: everything else, output included


def test_run_with_experts_on_the_host(models: dict[str, Path]) -> None:
    path = models["qwen3moe"]
    args = ["run", str(path), "--n-cpu-moe", "2", "--ctx", "512", "--max-tokens", "4", "--greedy", "--raw"]
    out = CliRunner().invoke(cli, [*args, "--prompt", "hello", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["config"]["n_cpu_moe"] == 2 and data["turns"]


def test_n_cpu_moe_on_a_dense_model_is_refused(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "dense.gguf", tiny_config())
    out = CliRunner().invoke(cli, ["run", str(path), "--n-cpu-moe", "1", "--ctx", "512", "--prompt", "hi"])
    assert out.exit_code == 1 and "has no experts to keep in RAM" in str(out.exception)


def test_eval_runs_a_moe_with_its_experts_on_the_host(models: dict[str, Path], tmp_path: Path) -> None:
    """eval loads the model with the plan's n_cpu_moe (the same overrides) and records it."""
    from edgekv.eval.datasets import synth_problems
    from edgekv.eval.run import EvalConfig, evaluate

    cfg = EvalConfig(model_path=str(models["qwen3moe"]), budget_tokens=8, reserve_tokens=4, samples=2, n_threads=1,
                     slots=2, n_cpu_moe=2, thinking=False)  # fmt: skip
    res = evaluate(cfg, synth_problems(1), out=tmp_path / "r.jsonl")
    assert res.config["n_cpu_moe"] == 2 and len(res.problems) == 1


def test_eval_takes_n_cpu_moe_from_the_plan_file(models: dict[str, Path], tmp_path: Path) -> None:
    from edgekv.requests.eval import EvalRequest

    first = {"path": str(models["qwen3moe"]), "n_ctx": 1024, "parallel": 2, "type_k": "q8_0", "type_v": "q8_0",
             "n_gpu_layers": -1, "n_cpu_moe": 2}  # fmt: skip
    plan = {"schema": 1, "plans": [first]}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    config = EvalRequest(model=None, dataset="synth", plan_path=str(tmp_path / "plan.json")).config()
    assert config.n_cpu_moe == 2 and config.model_path == str(models["qwen3moe"])
