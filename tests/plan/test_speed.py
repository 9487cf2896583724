"""Speed model properties, the least-squares fit on synthetic data, and the local store."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edgekv.plan.speed import (
    DEFAULT_SPEED,
    DecodeSample,
    Rates,
    SpeedModel,
    StepLoad,
    experts_read_fraction,
    fit,
    step_terms,
)
from edgekv.store.speeds import append_samples, load_samples, samples_from_bench, user_speed_model
from edgekv.units import GIB

BW = 360e9  # an RTX 3060 12 GB
R = Rates(BW, ram_bandwidth_bytes_per_s=60e9, flops_per_s=12.7e12)
KV = 147_456  # Qwen3-8B f16 KV bytes per token (paper's table)
M = SpeedModel(
    weights_efficiency=0.8,
    fixed_step_s=0.002,
    prompt_efficiency=1.5,
    kv_f16_efficiency=0.5,
    kv_q8_0_efficiency=0.125,
    kv_q4_0_efficiency=0.0625,
    ram_efficiency=0.5,
    compute_efficiency=0.25,
)


def load(weights: int, *, kv: int = KV, kv_type: str = "f16", **kw: int) -> StepLoad:
    return StepLoad(weights, kv, kv_type, **kw)


def tps(weights: int, *, depth: float = 0, n_seq: int = 1, kv: int = KV, model: SpeedModel = M,
        rates: Rates = R) -> tuple[float, float]:  # fmt: skip
    return model.decode_tps(load(weights, kv=kv), rates, depth_tokens=depth, n_seq=n_seq)


def test_more_weight_bytes_is_slower() -> None:
    assert tps(2 * GIB)[0] > tps(4 * GIB)[0] > tps(8 * GIB)[0]


def test_deeper_and_bigger_kv_is_slower() -> None:
    assert tps(4 * GIB, depth=1000)[0] > tps(4 * GIB, depth=30_000)[0]
    assert tps(4 * GIB, depth=8000, kv=KV // 2)[0] > tps(4 * GIB, depth=8000, kv=KV)[0]


def test_step_is_monotone_in_depth_and_samples() -> None:
    steps = [[M.step_s(load(4 * GIB), R, depth_tokens=d, n_seq=g) for d in (128, 8192, 32768)] for g in (1, 4, 16)]
    for row in steps:
        assert row == sorted(row) and len(set(row)) == 3
    for col in zip(*steps, strict=True):
        assert list(col) == sorted(col)


def test_step_by_hand() -> None:
    # 4 GiB on the GPU at 360 GB/s x 0.8, 2 samples at depth 1000 of f16 KV at 0.5, the second
    # sample's 8e9 active params at 12.7 TFLOP/s x 0.25 (the first hides under the weight read), 2 ms
    s = M.step_s(load(4 * GIB, n_active_params=8_000_000_000), R, depth_tokens=1000, n_seq=2)
    by_hand = 0.002 + 4 * GIB / (360e9 * 0.8) + 1 * 2 * 8e9 / (12.7e12 * 0.25) + 2 * 1000 * KV / (360e9 * 0.5)
    assert s == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.002 + 0.0149131 + 0.0050394 + 0.0016384, rel=1e-4)
    # 16 samples count as 8 in the compute term (the mat-mat kernel): 7 further samples, as for 8
    g8 = M.step_s(load(4 * GIB, kv=0, n_active_params=8_000_000_000), R, depth_tokens=0, n_seq=8)
    g16 = M.step_s(load(4 * GIB, kv=0, n_active_params=8_000_000_000), R, depth_tokens=0, n_seq=16)
    assert g8 == g16 == pytest.approx(0.002 + 0.0149131 + 7 * 0.0050394, rel=1e-4)


def test_quantized_kv_attention_has_its_own_efficiency() -> None:
    # q8_0 has 34/64 of f16's bytes but a quarter of its efficiency: the attention term is 34/16 = 2.125x f16's
    f16 = M.step_s(load(0, kv=64), R, depth_tokens=1e6) - M.fixed_step_s
    q8 = M.step_s(load(0, kv=34, kv_type="q8_0"), R, depth_tokens=1e6) - M.fixed_step_s
    q4 = M.step_s(load(0, kv=18, kv_type="q4_0"), R, depth_tokens=1e6) - M.fixed_step_s
    assert q8 / f16 == pytest.approx(2.125)
    assert q4 / f16 == pytest.approx(18 / 64 * 8)  # 2.25
    assert M.kv_efficiency("q5_1") == M.kv_q4_0_efficiency and M.kv_efficiency("bf16") == M.kv_f16_efficiency


def test_moe_reads_only_the_chosen_experts() -> None:
    # 1 GB dense + 16 GB experts, 8 of 128 used: one token's experts are 16 x 8/128 = 1 GB
    moe = StepLoad(10**9, experts_gpu_bytes=16 * 10**9, n_expert=128, n_expert_used=8)
    dense = StepLoad(17 * 10**9)
    assert moe.experts_gpu_pair_bytes(1) == pytest.approx(1e9)
    assert M.step_s(moe, R, depth_tokens=0) < M.step_s(dense, R, depth_tokens=0)
    # on the GPU each (token, expert) pair is read on its own: 4 tokens read 4 GB, 32 tokens 32 GB
    assert moe.experts_gpu_pair_bytes(4) == pytest.approx(4e9)
    assert moe.experts_gpu_pair_bytes(32) == pytest.approx(32e9)
    # 4 tokens of 1 of 16 experts each leave an expert out with probability (15/16)^4 = 0.7724762
    assert experts_read_fraction(1, 16, 4) == pytest.approx(1 - 0.7724761962890625)
    assert experts_read_fraction(8, 128, 1) == pytest.approx(0.0625)
    assert experts_read_fraction(2, 0, 16) == 1.0  # dense
    # in RAM the CPU reads each chosen expert once per step: the union, 1 - (15/16)^G of 16 GB
    in_ram = StepLoad(10**9, experts_ram_bytes=16 * 10**9, n_expert=128, n_expert_used=8)
    assert in_ram.ram_read_bytes(4) == pytest.approx(16e9 * (1 - (120 / 128) ** 4))
    fr = [in_ram.ram_read_bytes(g) for g in (1, 2, 4, 16, 64, 1024)]
    assert fr == sorted(fr) and fr[-1] == pytest.approx(16e9, rel=1e-9)
    # ... and multiplies every pair: 8/128 of 16 GB per token
    assert in_ram.experts_ram_pair_bytes(16) == pytest.approx(16e9)
    assert in_ram.experts_gpu_pair_bytes(16) == 0 and moe.experts_ram_pair_bytes(16) == 0


def test_moe_terms_count_blocks_and_samples() -> None:
    # the per-block, per-sample and CPU-pair constants enter as seconds times their counts
    m = replace(M, moe_layer_step_s=1e-5, ram_layer_step_s=2e-5, sample_step_s=1e-4, cpu_pair_s_per_gb=0.005)
    ld = StepLoad(10**9, experts_ram_bytes=16 * 10**9, n_expert=128, n_expert_used=8, n_expert_layers=48,
                  n_ram_expert_layers=40)  # fmt: skip
    base = M.step_s(ld, R, depth_tokens=0, n_seq=4)
    # 48 x 10 us + 40 x 20 us + 3 x 100 us + 4 GB x 5 ms = 0.48 + 0.8 + 0.3 + 20 = 21.58 ms more
    assert m.step_s(ld, R, depth_tokens=0, n_seq=4) - base == pytest.approx(0.02158)
    # MXFP4 experts take the CPU's MXFP4 constant instead: 4 GB x 9 ms = 36 ms
    mx = replace(m, cpu_pair_mxfp4_s_per_gb=0.009)
    oss = replace(ld, experts_mxfp4=True)
    assert mx.step_s(oss, R, depth_tokens=0, n_seq=4) - M.step_s(oss, R, depth_tokens=0, n_seq=4) == pytest.approx(
        0.00048 + 0.0008 + 0.0003 + 0.036
    )


def test_ram_resident_weights_are_slower_than_on_the_gpu() -> None:
    # 3.6 GB at 360 GB/s x 0.8 = 12.5 ms + 2 ms; from RAM at 60 GB/s x 0.5 = 120 ms + 2 ms
    gpu = M.step_s(StepLoad(3_600_000_000), R, depth_tokens=0)
    ram = M.step_s(StepLoad(0, weights_ram_bytes=3_600_000_000), R, depth_tokens=0)
    assert gpu == pytest.approx(0.0145)
    assert ram == pytest.approx(0.122)
    experts_ram = StepLoad(10**9, experts_ram_bytes=16 * 10**9, n_expert=128, n_expert_used=8)
    experts_gpu = StepLoad(10**9, experts_gpu_bytes=16 * 10**9, n_expert=128, n_expert_used=8)
    assert M.step_s(experts_ram, R, depth_tokens=0) > M.step_s(experts_gpu, R, depth_tokens=0)


def test_more_bandwidth_is_faster() -> None:
    slow = M.decode(load(4 * GIB), R, depth_tokens=0)
    fast = M.decode(load(4 * GIB), Rates(2 * BW, R.ram_bandwidth_bytes_per_s, R.flops_per_s), depth_tokens=0)
    assert fast.per_seq_tps > slow.per_seq_tps


def test_samples_share_the_weight_read() -> None:
    one_agg, one_seq = tps(4 * GIB, depth=4000, n_seq=1)
    for g in (2, 4, 8, 16):
        agg, per_seq = tps(4 * GIB, depth=4000, n_seq=g)
        assert one_agg < agg < g * one_agg  # grows, but sub-linearly: the KV reads add up
        assert per_seq < one_seq
        assert agg == pytest.approx(g * per_seq)


def test_no_kv_and_no_fixed_cost_is_pure_bandwidth() -> None:
    m = SpeedModel(weights_efficiency=1.0, fixed_step_s=0.0, prompt_efficiency=1.0)
    agg, _ = tps(4 * GIB, model=m, n_seq=8, rates=Rates(BW))  # no FP16 rate: no compute term
    assert agg == pytest.approx(8 * BW / (4 * GIB))


def test_time_to_answer_is_prompt_plus_steps_at_average_depth() -> None:
    ld = load(4 * GIB)
    t = M.time_to_answer_s(1000, 8000, 4, load=ld, rates=R, n_params=8_000_000_000)
    exact = sum(M.decode(ld, R, depth_tokens=1000 + i, n_seq=4).step_s for i in range(8000))
    assert t.decode_s == pytest.approx(exact, rel=1e-3)
    assert t.prompt_s is not None and t.prompt_s > 0
    assert t.total_s == pytest.approx(t.prompt_s + t.decode_s)
    assert M.time_to_answer_s(1000, 8000, 4, load=ld, rates=Rates(BW)).prompt_s is None


def test_prompt_is_faster_per_token_than_decode_and_grows_with_params() -> None:
    ld = load(4 * GIB)
    assert M.prompt_tps(2048, n_params=8_000_000_000, load=ld, rates=R) > tps(4 * GIB)[0]
    assert M.prompt_tps(2048, n_params=4_000_000_000, load=ld, rates=R) > M.prompt_tps(
        2048, n_params=8_000_000_000, load=ld, rates=R
    )
    assert M.prompt_s(0, n_params=1, load=ld, rates=R) == 0.0


def _synthetic(model: SpeedModel, n: int, *, noise: float = 0.0, seed: int = 0) -> list[DecodeSample]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w, d, g = rng.randint(1, 16) * GIB // 2, rng.randint(0, 30_000), rng.choice([1, 2, 4, 8])
        bw = rng.choice([272e9, 360e9, 504e9, 1008e9])
        kv_type = rng.choice(["f16", "q8_0", "q4_0"])
        ram = rng.choice([0, 0, rng.randint(1, 8) * GIB // 4])
        ld = StepLoad(w, KV, kv_type, weights_ram_bytes=ram, n_active_params=rng.randint(1, 16) * 10**9)
        s = DecodeSample(ld, d, g, bw, 1.0, ram_bandwidth_bytes_per_s=60e9, flops_per_s=bw * 40)
        agg = s.predicted_tps(model)
        out.append(replace(s, measured_tps=agg * (1 + rng.uniform(-noise, noise))))
    return out


@pytest.mark.parametrize(("eff", "fixed"), [(0.8, 0.002), (0.55, 0.0), (1.0, 0.0105)])
def test_fit_recovers_known_constants(eff: float, fixed: float) -> None:
    truth = replace(M, weights_efficiency=eff, fixed_step_s=fixed)
    got = fit(_synthetic(truth, 60))
    for name in ("weights_efficiency", "fixed_step_s", "kv_f16_efficiency", "kv_q8_0_efficiency",
                 "kv_q4_0_efficiency", "ram_efficiency", "compute_efficiency"):  # fmt: skip
        assert getattr(got, name) == pytest.approx(getattr(truth, name), rel=1e-4, abs=1e-7), name
    assert got.prompt_efficiency == DEFAULT_SPEED.prompt_efficiency  # not touched by the decode fit


def test_fit_with_noise_stays_close() -> None:
    got = fit(_synthetic(M, 300, noise=0.05, seed=1))
    assert got.weights_efficiency == pytest.approx(0.8, rel=0.1)
    assert got.kv_q8_0_efficiency == pytest.approx(0.125, rel=0.1)


def test_fit_never_gives_an_efficiency_above_one() -> None:
    # measured 1.5x faster than the listed bandwidth allows: the efficiency stops at 1
    fast = [DecodeSample(StepLoad(w * GIB), 0, 1, BW, 1.5 * BW / (w * GIB)) for w in (2, 4, 8)]
    got = fit(fast, base=M)
    assert got.weights_efficiency == 1.0
    got = fit(_synthetic(replace(M, kv_q4_0_efficiency=3.0), 60))  # data that would want 3x on q4_0 KV
    assert all(
        getattr(got, n) <= 1.0
        for n in (
            "weights_efficiency",
            "kv_f16_efficiency",
            "kv_q8_0_efficiency",
            "kv_q4_0_efficiency",
            "ram_efficiency",
            "compute_efficiency",
        )
    )


def test_fit_keeps_constants_it_has_no_data_for() -> None:
    got = fit(_synthetic(replace(M, ram_efficiency=0.3), 40), base=M)  # synthetic rows have RAM bytes
    assert got.ram_efficiency == pytest.approx(0.3, rel=1e-4)
    no_ram = [replace(s, load=replace(s.load, weights_ram_bytes=0)) for s in _synthetic(M, 20)]
    assert fit(no_ram, base=replace(M, ram_efficiency=0.42)).ram_efficiency == 0.42
    only = fit(_synthetic(replace(M, kv_f16_efficiency=0.3), 40), base=M, only=("weights_efficiency",))
    assert only.kv_f16_efficiency == M.kv_f16_efficiency and only.fixed_step_s == M.fixed_step_s


def test_fit_one_sample_keeps_the_fixed_cost() -> None:
    s = _synthetic(replace(M, weights_efficiency=0.6), 1)
    got = fit(s, base=M)  # the first term (the weights) takes the whole difference
    assert got.fixed_step_s == pytest.approx(M.fixed_step_s, abs=1e-12)
    assert s[0].predicted_tps(got) == pytest.approx(s[0].measured_tps, rel=1e-6)


def test_fit_latency_bound_card_fits_the_fixed_cost() -> None:
    # step time hardly grows with bytes (a latency-bound card): efficiency capped at 1, the fixed cost carries it
    samples = [DecodeSample(StepLoad(w * GIB), 0, 1, 4.8e12, tps) for w, tps in [(1, 480.0), (2, 485.0), (3, 490.0)]]
    got = fit(samples, base=M)
    assert got.weights_efficiency == 1.0
    assert got.fixed_step_s > 0
    for s in samples:
        assert s.predicted_tps(got) == pytest.approx(s.measured_tps, rel=0.2)


def test_fit_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        fit([])


def test_store_round_trip_and_refit(tmp_path: Path) -> None:
    path = tmp_path / "decode.jsonl"
    assert load_samples(path=path) == []
    assert user_speed_model(path=path) is DEFAULT_SPEED  # nothing stored: the published constants
    samples = _synthetic(M, 10)
    append_samples(samples, path=path)
    assert load_samples(path=path) == samples
    got = user_speed_model(path=path)
    assert got.weights_efficiency == pytest.approx(0.8, rel=1e-4)
    assert user_speed_model(path=path, bandwidth_bytes_per_s=123e9) is DEFAULT_SPEED  # another card's records


def test_a_sample_holds_its_step_load_and_the_store_keeps_it_flat(tmp_path: Path) -> None:
    """A DecodeSample is a StepLoad (what plans give the model) measured at a depth, G and rates; the store
    writes one flat object with the keys it always had, and reads records written before."""
    ld = StepLoad(4 * GIB, 100_000, "q8_0", experts_ram_bytes=GIB, n_expert=128, n_expert_used=8)
    s = DecodeSample(ld, 1500.0, 4, 272e9, 30.0)
    assert s.load is ld and s.terms == step_terms(ld, Rates(272e9), depth_tokens=1500.0, n_seq=4)
    path = tmp_path / "decode.jsonl"
    append_samples([s], path=path)
    assert json.loads(path.read_text()) == {
        "weights_gpu_bytes": 4 * GIB, "kv_bytes_per_token": 100_000, "kv_type": "q8_0", "weights_ram_bytes": 0,
        "experts_gpu_bytes": 0, "experts_ram_bytes": GIB, "n_expert": 128, "n_expert_used": 8,
        "n_active_params": 0, "attn_flops_per_token": 0, "n_expert_layers": 0, "n_ram_expert_layers": 0,
        "experts_mxfp4": False,
        "depth_tokens": 1500.0, "n_seq": 4, "bandwidth_bytes_per_s": 272e9, "measured_tps": 30.0,
        "ram_bandwidth_bytes_per_s": 76.8e9, "flops_per_s": 0.0,
    }  # fmt: skip
    assert load_samples(path=path) == [s]
    # a record from before RAM, experts and FLOPs were kept; a list; one without KV bytes; an unknown key
    older = {"weights_gpu_bytes": 2 * GIB, "kv_bytes_per_token": 50_000, "depth_tokens": 100.0, "n_seq": 1,
             "bandwidth_bytes_per_s": 360e9, "measured_tps": 40.0}  # fmt: skip
    no_kv = {k: v for k, v in older.items() if k != "kv_bytes_per_token"}
    lines = [json.dumps(older), "[1, 2]", json.dumps(no_kv), json.dumps({**older, "colour": "red"})]
    path.write_text("\n".join(lines) + "\n")
    assert load_samples(path=path) == [DecodeSample(StepLoad(2 * GIB, 50_000), 100.0, 1, 360e9, 40.0)]


def test_store_defaults_to_the_user_dir() -> None:
    p = append_samples(_synthetic(M, 1))
    assert p.name == "decode.jsonl" and p.parent.name == "speed"
    assert len(load_samples()) == 1


def test_samples_from_bench_records() -> None:
    line = Path(__file__).resolve().parents[2] / "bench" / "results" / "gpu_grid.jsonl"
    records = [json.loads(x) for x in line.read_text().splitlines()]
    samples = samples_from_bench(records, bandwidth_bytes_per_s=4.89e12)
    assert len(samples) == sum(r["status"] == "ok" for r in records)
    s = samples[0]
    assert s.load.weights_gpu_bytes == records[0]["predicted"]["weights"]
    assert s.depth_tokens == records[0]["n_gen"] / 2
    assert s.load.kv_bytes_per_token * records[0]["n_ctx"] == records[0]["predicted"]["kv"]
    assert s.load.kv_type == records[0]["type_k"]  # its attention efficiency
    assert s.ram_bandwidth_bytes_per_s == 76.8e9  # none given: the default
    given = samples_from_bench(records, bandwidth_bytes_per_s=4.89e12, ram_bandwidth_bytes_per_s=50e9)
    assert given[0].ram_bandwidth_bytes_per_s == 50e9
    # a run with experts in RAM is not a sample of the GPU's terms: left out
    in_ram = [{**r, "n_cpu_moe": 4} for r in records]
    assert samples_from_bench(in_ram, bandwidth_bytes_per_s=4.89e12) == []
    assert len(samples_from_bench([{**r, "n_cpu_moe": 0} for r in records], bandwidth_bytes_per_s=4.89e12)) == len(
        samples
    )


def test_quantized_kv_is_timed_by_its_attention_flops() -> None:
    # Qwen3-4B: 36 layers x 2 x 32 heads x (128 + 128) = 589,824 FLOPs per cached token; at depth 32768
    # that is 1.9327e10 FLOPs per sample, at 12.7 TFLOP/s x 0.125 (q8_0) = 12.18 ms, x 0.0625 (q4_0) = 24.35 ms,
    # whatever the KV's bytes; an f16 KV stays on its bytes (78,336 x 2 x 32768 at 360 GB/s x 0.5 = 28.5 ms)
    def attn_s(kv_type: str, kv: int) -> float:
        ld = StepLoad(0, kv, kv_type, attn_flops_per_token=589_824)
        return M.step_s(ld, R, depth_tokens=32768) - M.fixed_step_s

    assert attn_s("q8_0", 78_336) == pytest.approx(0.012175, rel=1e-3)
    assert attn_s("q4_0", 41_472) == pytest.approx(0.024349, rel=1e-3)
    assert attn_s("f16", 147_456) == pytest.approx(147_456 * 32768 / (360e9 * 0.5), rel=1e-9)
    no_rate = Rates(BW)  # the FP16 rate unknown: quantized KV falls back to its bytes
    ld = StepLoad(0, 78_336, "q8_0", attn_flops_per_token=589_824)
    assert M.step_s(ld, no_rate, depth_tokens=32768) - M.fixed_step_s == pytest.approx(78_336 * 32768 / (BW * 0.125))


def test_step_load_of_a_catalog_model() -> None:
    from edgekv.model.quant import KvType
    from edgekv.plan.timing import step_load
    from edgekv.store.catalog import catalog_options

    dense = catalog_options("all", ["Qwen3-4B"], ["Q8_0"])[0]
    ld = step_load(dense, n_gpu_layers=-1, type_k=KvType.Q8_0, type_v=KvType.Q8_0)
    assert ld.attn_flops_per_token == 36 * 2 * 32 * 256
    assert ld.kv_bytes_per_token == 36 * 2 * 8 * 128 * 34 // 32  # K + V, q8_0: 34 bytes per 32 values
    assert ld.experts_gpu_bytes == ld.experts_ram_bytes == ld.weights_ram_bytes == 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from speed_check import _option  # MoE options are built from the catalog entry until pick ranks them

    moe, experts = _option("qwen3-30b-a3b", "Q4_K_M")
    assert experts is not None and len(experts) == 48
    on_gpu = step_load(moe, n_gpu_layers=-1, type_k=KvType.F16, type_v=KvType.F16, experts_per_layer=experts)
    on_cpu = step_load(moe, n_gpu_layers=-1, type_k=KvType.F16, type_v=KvType.F16, n_cpu_moe=48,
                       experts_per_layer=experts)  # fmt: skip
    assert on_cpu.experts_ram_bytes == sum(experts)
    assert (on_gpu.n_expert, on_gpu.n_expert_used) == (128, 8)
    assert on_cpu.experts_ram_bytes == on_gpu.experts_gpu_bytes > 0 and on_cpu.experts_gpu_bytes == 0
    assert on_cpu.weights_gpu_bytes == on_gpu.weights_gpu_bytes
    # a step of one token reads the dense part and 8/128 of the experts: far less than the file
    assert on_gpu.weights_gpu_bytes + on_gpu.experts_gpu_pair_bytes(1) < 0.2 * moe.effective_bytes
    assert on_gpu.n_expert_layers == 48 and on_gpu.n_ram_expert_layers == 0 and on_cpu.n_ram_expert_layers == 48


def test_bench_samples_carry_attention_flops_when_the_card_rate_is_known(tmp_path: Path) -> None:
    from tests.ggufgen import tiny_config, write_sparse_gguf

    gguf_path = write_sparse_gguf(tmp_path / "tiny.gguf", tiny_config())  # 2 layers x 4 heads x head_dim 64
    line = Path(__file__).resolve().parents[2] / "bench" / "results" / "gpu_grid.jsonl"
    rec = {**json.loads(line.read_text().splitlines()[0]), "path": str(gguf_path), "type_k": "q8_0"}
    s = samples_from_bench([rec], bandwidth_bytes_per_s=360e9, flops_per_s=12.7e12)[0]
    assert s.load.attn_flops_per_token == 2 * (2 * 4 * (64 + 64))  # 2 layers x 2 x n_head x (head_dim_k + head_dim_v)
    assert s.flops_per_s == 12.7e12
    gone = {**rec, "path": str(tmp_path / "moved.gguf")}
    moved = samples_from_bench([gone], bandwidth_bytes_per_s=360e9, flops_per_s=12.7e12)[0]
    assert moved.load.attn_flops_per_token == 0
    assert samples_from_bench([rec], bandwidth_bytes_per_s=360e9)[0].load.attn_flops_per_token == 0  # no rate: bytes
