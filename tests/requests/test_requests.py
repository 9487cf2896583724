"""edgekv.requests: where each setting comes from when a verb's flag is not given.

A flag beats the plan file (``--plan``), the plan file beats the verb's default; for pick a flag
beats the calibration profile, the profile beats the paper's default. The plan files and the
profile are written here by hand, so every expected value is read off them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
import pytest

from edgekv.errors import KvConfigError
from edgekv.llama.build import resolve_flash_attn
from edgekv.model.quant import KvType
from edgekv.model.spec import Task
from edgekv.plan.plans import E1_BYTES, SATURATION_TOKENS
from edgekv.requests.card import CardChoice
from edgekv.requests.eval import EvalRequest
from edgekv.requests.overlay import PlanFlags, overlay
from edgekv.requests.pick import PickFlags, pick_request
from edgekv.requests.run import RunRequest
from edgekv.requests.serve import ServeRequest
from edgekv.store.planfile import read_plan
from edgekv.units import GIB

PLAN = {
    "schema": 1,
    "vram_bytes": 20 * GIB,
    "devices": [{"device": "GPU 0", "vram_bytes": 12 * GIB}, {"device": "GPU 1", "vram_bytes": 8 * GIB}],
    "plans": [
        {"path": "model.gguf", "type_k": "q4_0", "type_v": "q8_0", "n_ctx": 6144, "parallel": 3, "n_gpu_layers": 20,
         "tensor_split": [3, 2]},
    ],
}  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding model.gguf (any regular file: nothing here reads it) and plan.json."""
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    (tmp_path / "plan.json").write_text(json.dumps(PLAN))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_overlay_takes_from_the_plan_only_what_no_flag_gives(folder: Path) -> None:
    plan = read_plan("plan.json")
    s = overlay(PlanFlags(parallel=1, type_v=KvType.F16), plan, per_device=True)
    assert s.model == "model.gguf"  # the plan's path, as written
    assert s.vram_bytes == [12 * GIB, 8 * GIB] and s.cap_text == "12.00 GiB,8.00 GiB (from the plan)"
    assert s.tensor_split == (3.0, 2.0)
    assert (s.type_k, s.type_v) == (KvType.Q4_0, KvType.F16)  # the flag's V, the plan's K
    assert (s.n_ctx, s.parallel, s.n_gpu_layers) == (6144, 1, 20)


def test_overlay_for_one_device_takes_the_plans_total(folder: Path) -> None:
    s = overlay(PlanFlags(), read_plan("plan.json"), per_device=False)
    assert s.vram_bytes == 20 * GIB and s.tensor_split == ()
    given = overlay(PlanFlags(vram_bytes=6 * GIB, cap_text="6G"), read_plan("plan.json"), per_device=False)
    assert (given.vram_bytes, given.cap_text) == (6 * GIB, "6G")


def test_run_a_flag_beats_the_plan_and_the_plan_beats_the_default(folder: Path) -> None:
    stdin = io.StringIO("2+2?")
    s = RunRequest(model=None, plan_path="plan.json", parallel=2).resolve(stdin=stdin)
    cfg = s.config
    assert s.model == "model.gguf" and s.prompt == "2+2?"
    assert (cfg.n_ctx, cfg.n_seq, cfg.n_gpu_layers, cfg.tensor_split) == (6144, 2, 20, (3.0, 2.0))
    assert (cfg.type_k, cfg.type_v) == (KvType.Q4_0, KvType.Q8_0) and not s.auto_ctx
    plain = RunRequest(model="model.gguf", prompt="hi").resolve(stdin=io.StringIO())
    assert plain.auto_ctx and plain.vram_bytes is None
    assert (plain.config.n_seq, plain.config.n_gpu_layers, plain.config.type_k) == (1, -1, KvType.F16)


def test_run_a_kv_flag_overrides_only_its_own_half(folder: Path) -> None:
    """run: --type-k alone keeps the plan's V (q8_0), --type-v alone the plan's K (q4_0); --kv sets both."""
    k = RunRequest(model=None, plan_path="plan.json", type_k="q8_0", prompt="hi").resolve(stdin=io.StringIO())
    assert (k.config.type_k, k.config.type_v) == (KvType.Q8_0, KvType.Q8_0)
    v = RunRequest(model=None, plan_path="plan.json", type_v="f16", prompt="hi").resolve(stdin=io.StringIO())
    assert (v.config.type_k, v.config.type_v) == (KvType.Q4_0, KvType.F16)
    both = RunRequest(model=None, plan_path="plan.json", kv="f16", prompt="hi").resolve(stdin=io.StringIO())
    assert (both.config.type_k, both.config.type_v) == (KvType.F16, KvType.F16)
    plain = RunRequest(model="model.gguf", type_k="q4_0", prompt="hi").resolve(stdin=io.StringIO())
    assert (plain.config.type_k, plain.config.type_v) == (KvType.Q4_0, KvType.F16)  # no plan: the other half f16


def test_serve_a_kv_flag_overrides_only_its_own_half(folder: Path) -> None:
    """serve reads the plan as run does: --type-k alone keeps the plan's V."""
    run = RunRequest(model=None, plan_path="plan.json", type_k="f16", needs_prompt=False)
    s = ServeRequest(run=run).resolve().run
    assert (s.config.type_k, s.config.type_v) == (KvType.F16, KvType.Q8_0)
    assert (s.config.n_ctx, s.config.n_seq) == (6144, 3)  # the rest still the plan's


def test_a_pair_the_overlay_makes_unsupported_is_refused(folder: Path) -> None:
    """--type-k q8_0 on the q4_0/q8_0 plan keeps V q8_0: fine on its own (q8_0/q8_0 has a CUDA kernel),
    but --type-k f16 makes f16/q8_0, which a default CUDA build has no kernel for, and with
    --no-flash-attn the plan's quantized V is refused: each one line naming the pair."""
    cuda = "CUDA : ARCHS = 900 | USE_GRAPHS = 1 | PEER_MAX_BATCH_SIZE = 128 | "  # no FA_QUANTS: the default pairs
    ok = RunRequest(model=None, plan_path="plan.json", type_k="q8_0", prompt="hi").resolve(stdin=io.StringIO())
    assert resolve_flash_attn(ok.config.type_k, ok.config.type_v, None, info=cuda) is True
    mixed = RunRequest(model=None, plan_path="plan.json", type_k="f16", prompt="hi").resolve(stdin=io.StringIO())
    with pytest.raises(KvConfigError) as e:
        resolve_flash_attn(mixed.config.type_k, mixed.config.type_v, None, info=cuda)
    assert "no flash-attention kernel for K f16 with V q8_0" in str(e.value) and "\n" not in str(e.value)
    no_fa = RunRequest(model=None, plan_path="plan.json", type_k="f16", flash_attn=False, prompt="hi")
    cfg = no_fa.resolve(stdin=io.StringIO()).config
    with pytest.raises(KvConfigError) as e:
        resolve_flash_attn(cfg.type_k, cfg.type_v, cfg.flash_attn, info="CPU : SSE3 = 1 | ")
    assert e.value.message == "a quantized V cache (q8_0) needs flash attention, which --no-flash-attn turns off"


def test_eval_each_kv_half_no_flag_names_is_the_plans(folder: Path) -> None:
    config = EvalRequest(model=None, dataset="synth", plan_path="plan.json", type_k="f16", reserve=64).config()
    assert (config.type_k, config.type_v) == (KvType.F16, KvType.Q8_0)
    assert config.vram_bytes == 20 * GIB and config.samples == 3 and config.n_gpu_layers == 20
    assert config.budget_tokens == 6144 // 3 - 512 - 64  # the plan's context per sample, less prompt and reserve
    default = EvalRequest(model="model.gguf", dataset="synth").config()
    assert (default.type_k, default.budget_tokens, default.samples) == (KvType.Q8_0, 8192, 4)


def test_run_without_a_model_is_a_usage_error(folder: Path) -> None:
    with pytest.raises(click.UsageError, match="give MODEL.gguf or --plan"):
        RunRequest(model=None, prompt="hi").resolve(stdin=io.StringIO())


def _flags(**given: str | None) -> PickFlags:
    base = dict(
        vram="8G", gpu=None, max_time=None, tensor_split=None, task="math", family="qwen3", model=None, quants=None,
        kv=None, mixed_kv=False, min_ctx="0", allow_offload=False, overhead="auto", margin=None,
        accounting="runtime", gguf_path=None, repo=None, e1=None, e2=None, token_floor=None, saturation=None,
        max_parallel=None, similar=None, cap_precision=True, profile=None,
    )  # fmt: skip
    return PickFlags(**{**base, **given})  # type: ignore[arg-type]


def test_pick_a_flag_beats_the_profile_and_the_profile_beats_the_paper(tmp_path: Path) -> None:
    profile = tmp_path / "mine.json"
    profile.write_text(json.dumps({"schema": 1, "policy": {"e1_bytes": 6 * GIB, "saturation_tokens": 8192}}))
    card = CardChoice(8 * GIB, None)
    request, _, _ = pick_request(_flags(profile=str(profile), e1="5G"), card, max_time_s=None, top=3)
    assert (request.e1_bytes, request.saturation_tokens) == (5 * GIB, 8192)
    paper, models, quants = pick_request(_flags(model="Qwen3-4B", task="code"), card, max_time_s=None, top=3)
    assert (paper.e1_bytes, paper.saturation_tokens) == (E1_BYTES, SATURATION_TOKENS)
    assert (paper.vram_bytes, paper.task, paper.top, models, quants) == (8 * GIB, Task.CODE, 3, ["Qwen3-4B"], None)
