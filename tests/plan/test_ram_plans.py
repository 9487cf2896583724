"""Plans with a MoE's experts in system RAM (--ram, policy._moe_plans), their placement and settings,
and run's pre-flight refusing a plan whose RAM side does not fit."""

from __future__ import annotations

import pytest

from edgekv.errors import DoesNotFit
from edgekv.model.quant import KvType, WeightQuant
from edgekv.plan import preflight
from edgekv.plan.llama_settings import llama_args
from edgekv.plan.memory import RunConfig
from edgekv.plan.pick import pick
from edgekv.plan.placement import cpu_moe_patterns, placement
from edgekv.plan.policy import max_tokens_per_seq
from edgekv.plan.requests import PickRequest
from edgekv.store import catalog
from edgekv.store.catalog import catalog_options
from edgekv.store.catalog_build import quant_spec
from edgekv.units import GIB


def _moe_plans(vram_gib: float, ram_gib: float, model: str = "Qwen3-30B-A3B") -> list:  # type: ignore[type-arg]
    r = pick(PickRequest(vram_bytes=round(vram_gib * GIB), ram_bytes=round(ram_gib * GIB), top=0),
             catalog_options(None, [model], None))  # fmt: skip
    return [p for p in r.plans if p.n_cpu_moe]


@pytest.mark.parametrize(("model", "vram"), [("Qwen3-30B-A3B", 8), ("Qwen3-30B-A3B", 12), ("gpt-oss-20b", 8)])
def test_fewest_experts_in_ram_that_reach_saturation(model: str, vram: int) -> None:
    plans = _moe_plans(vram, 32, model)
    assert plans
    for p in plans:
        assert p.n_gpu_layers == -1 and p.parallel == 1 and p.footprint.host_total <= 32 * GIB
        assert p.footprint.gpu_total <= vram * GIB
        target = min(32768, p.option.spec.n_ctx_train or 32768)
        assert p.n_ctx_seq >= target or p.n_cpu_moe == p.option.spec.n_layer
        if p.n_cpu_moe > 1:  # one block fewer in RAM would not reach it
            cfg = RunConfig(n_ctx=256, type_k=p.type_k, type_v=p.type_v, n_cpu_moe=p.n_cpu_moe - 1)
            from edgekv.plan.plans import Budget

            t, _ = max_tokens_per_seq(p.option, cfg, Budget(vram * GIB), cap=target)
            assert t < target


def test_placement_rows_add_up_and_settings_name_the_experts() -> None:
    p = _moe_plans(8, 32)[0]
    rows = {r.group: r for r in placement(p)}
    lay = p.option.layout
    assert sum(r.gpu_bytes + r.host_bytes for r in rows.values()) == lay.input_bytes + sum(lay.layer_bytes) + (
        lay.output_bytes
    )
    assert rows["experts"].host_bytes == sum(lay.expert_bytes[: p.n_cpu_moe])
    assert rows["experts"].gpu_bytes == sum(lay.expert_bytes[p.n_cpu_moe :])
    assert {"embeddings", "attention", "router", "norms", "output"} <= set(rows)
    assert p.footprint.weights_host == lay.input_bytes + rows["experts"].host_bytes
    args = llama_args(p)
    assert args["server"][-2:] == ["--n-cpu-moe", str(p.n_cpu_moe)]
    assert args["edgekv"] == {"n_cpu_moe": p.n_cpu_moe}
    assert args["override_tensor"][0] == r"blk\.0\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU"
    assert len(cpu_moe_patterns(p.n_cpu_moe)) == p.n_cpu_moe


def test_no_ram_no_expert_plans() -> None:
    from edgekv.errors import NoFeasiblePlan

    with pytest.raises(NoFeasiblePlan):  # GPU only: the 30B does not fit 8 GiB whole
        _moe_plans(8, 0)
    r = pick(PickRequest(vram_bytes=8 * GIB, top=0), catalog_options(None, ["Qwen3-30B-A3B", "Qwen3-4B"], None))
    assert not any(p.n_cpu_moe for p in r.plans)  # RAM not known: nothing in RAM
    assert _moe_plans(8, 32)
    with pytest.raises(NoFeasiblePlan):  # 6 GiB cannot hold the experts that do not fit the card
        _moe_plans(8, 6)


def test_preflight_refuses_a_ram_side_that_does_not_fit() -> None:
    m = catalog.find("Qwen3-30B-A3B")
    spec = quant_spec(m.config, m.name, WeightQuant.Q4_K_M)
    cfg = RunConfig(n_ctx=8192, type_k=KvType.Q8_0, type_v=KvType.Q8_0, n_cpu_moe=48)
    ok = preflight.preflight(spec, cfg, have_bytes=8 * GIB, gpu=True, ram_bytes=32 * GIB)
    host = ok.footprint.host_total
    assert host > 15 * GIB
    with pytest.raises(DoesNotFit) as e:
        preflight.preflight(spec, cfg, have_bytes=8 * GIB, gpu=True, ram_bytes=8 * GIB)
    msg = str(e.value)
    assert "the GPU side needs" in msg and "(fits)" in msg and "the RAM side needs" in msg and "short" in msg
    assert "\n" not in msg.split(". Try")[0]  # one line naming both sides
    whole = RunConfig(n_ctx=8192, type_k=KvType.Q8_0, type_v=KvType.Q8_0)  # every expert on the GPU: both short
    with pytest.raises(DoesNotFit, match=r"needs .* of the GPU; .* short; the RAM side needs .* of --ram .*: .* short"):
        preflight.preflight(spec, whole, have_bytes=8 * GIB, gpu=True, ram_bytes=GIB // 8)


def test_plan_file_carries_n_cpu_moe(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """pick --json's plan file keeps n_cpu_moe and the placement; run reads n_cpu_moe back from it."""
    import json

    from edgekv.store.planfile import pick_dict, read_plan

    r = pick(PickRequest(vram_bytes=8 * GIB, ram_bytes=32 * GIB, top=1), catalog_options(None, ["Qwen3-30B-A3B"], None))
    data = pick_dict(r)
    first = data["plans"][0]
    assert first["n_cpu_moe"] == r.plans[0].n_cpu_moe > 0 and first["placement"][0]["group"] == "embeddings"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    assert read_plan(path).n_cpu_moe == r.plans[0].n_cpu_moe
