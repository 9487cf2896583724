"""Speed model properties, the least-squares fit on synthetic data, and the local store."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from edgekv.plan.speed import DEFAULT_SPEED, DecodeSample, SpeedModel, fit
from edgekv.store.speeds import append_samples, load_samples, samples_from_bench, user_speed_model
from edgekv.units import GIB

BW = 360e9  # an RTX 3060 12 GB
KV = 147_456  # Qwen3-8B f16 KV bytes per token (paper's table)
M = SpeedModel(efficiency=0.8, fixed_step_s=0.002, prompt_efficiency=1.5)


def tps(weights: int, *, depth: float = 0, n_seq: int = 1, kv: int = KV, model: SpeedModel = M) -> tuple[float, float]:
    return model.decode_tps(weights, kv_bytes_per_token=kv, depth_tokens=depth, n_seq=n_seq, bandwidth_bytes_per_s=BW)


def test_more_weight_bytes_is_slower() -> None:
    assert tps(2 * GIB)[0] > tps(4 * GIB)[0] > tps(8 * GIB)[0]


def test_deeper_and_bigger_kv_is_slower() -> None:
    assert tps(4 * GIB, depth=1000)[0] > tps(4 * GIB, depth=30_000)[0]
    assert tps(4 * GIB, depth=8000, kv=KV // 2)[0] > tps(4 * GIB, depth=8000, kv=KV)[0]


def test_more_bandwidth_is_faster() -> None:
    slow = M.decode(4 * GIB, kv_bytes_per_token=KV, depth_tokens=0, bandwidth_bytes_per_s=BW)
    fast = M.decode(4 * GIB, kv_bytes_per_token=KV, depth_tokens=0, bandwidth_bytes_per_s=2 * BW)
    assert fast.per_seq_tps > slow.per_seq_tps


def test_samples_share_the_weight_read() -> None:
    one_agg, one_seq = tps(4 * GIB, depth=4000, n_seq=1)
    for g in (2, 4, 8, 16):
        agg, per_seq = tps(4 * GIB, depth=4000, n_seq=g)
        assert one_agg < agg < g * one_agg  # grows, but sub-linearly: the KV reads add up
        assert per_seq < one_seq
        assert agg == pytest.approx(g * per_seq)


def test_no_kv_and_no_fixed_cost_is_pure_bandwidth() -> None:
    m = SpeedModel(efficiency=1.0, fixed_step_s=0.0, prompt_efficiency=1.0)
    agg, _ = tps(4 * GIB, model=m, n_seq=8)
    assert agg == pytest.approx(8 * BW / (4 * GIB))


def test_time_to_answer_is_prompt_plus_steps_at_average_depth() -> None:
    t = M.time_to_answer_s(
        1000, 8000, 4, weights_gpu_bytes=4 * GIB, kv_bytes_per_token=KV, bandwidth_bytes_per_s=BW,
        n_params=8_000_000_000, flops_per_s=12.7e12,
    )  # fmt: skip
    exact = sum(
        M.decode(4 * GIB, kv_bytes_per_token=KV, depth_tokens=1000 + i, n_seq=4, bandwidth_bytes_per_s=BW).step_s
        for i in range(8000)
    )
    assert t.decode_s == pytest.approx(exact, rel=1e-3)
    assert t.prompt_s is not None and t.prompt_s > 0
    assert t.total_s == pytest.approx(t.prompt_s + t.decode_s)
    assert M.time_to_answer_s(1000, 8000, 4, weights_gpu_bytes=4 * GIB, kv_bytes_per_token=KV,
                              bandwidth_bytes_per_s=BW).prompt_s is None  # fmt: skip


def test_prompt_is_faster_per_token_than_decode_and_grows_with_params() -> None:
    kw = {"weights_gpu_bytes": 4 * GIB, "flops_per_s": 12.7e12, "bandwidth_bytes_per_s": BW}
    assert M.prompt_tps(2048, n_params=8_000_000_000, **kw) > tps(4 * GIB)[0]
    assert M.prompt_tps(2048, n_params=4_000_000_000, **kw) > M.prompt_tps(2048, n_params=8_000_000_000, **kw)
    assert M.prompt_s(0, n_params=1, **kw) == 0.0


def _synthetic(model: SpeedModel, n: int, *, noise: float = 0.0, seed: int = 0) -> list[DecodeSample]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w, d, g = rng.randint(1, 16) * GIB // 2, rng.randint(0, 30_000), rng.choice([1, 2, 4, 8])
        bw = rng.choice([272e9, 360e9, 504e9, 1008e9])
        agg = model.decode(w, kv_bytes_per_token=KV, depth_tokens=d, n_seq=g, bandwidth_bytes_per_s=bw).aggregate_tps
        out.append(DecodeSample(w, KV, d, g, bw, agg * (1 + rng.uniform(-noise, noise))))
    return out


@pytest.mark.parametrize(("eff", "fixed"), [(0.8, 0.002), (0.55, 0.0), (1.0, 0.0105)])
def test_fit_recovers_known_constants(eff: float, fixed: float) -> None:
    truth = SpeedModel(efficiency=eff, fixed_step_s=fixed, prompt_efficiency=1.5)
    got = fit(_synthetic(truth, 40))
    assert got.efficiency == pytest.approx(eff, rel=1e-6)
    assert got.fixed_step_s == pytest.approx(fixed, abs=1e-9)
    assert got.prompt_efficiency == DEFAULT_SPEED.prompt_efficiency  # not touched by the decode fit


def test_fit_with_noise_stays_close() -> None:
    got = fit(_synthetic(M, 200, noise=0.05, seed=1))
    assert got.efficiency == pytest.approx(0.8, rel=0.05)
    assert got.fixed_step_s == pytest.approx(0.002, abs=0.0005)


def test_fit_one_sample_keeps_the_fixed_cost() -> None:
    s = _synthetic(M, 1)
    got = fit(s, base=M)
    assert got.fixed_step_s == M.fixed_step_s
    assert got.efficiency == pytest.approx(0.8, rel=1e-6)


def test_fit_latency_bound_card_fits_the_fixed_cost() -> None:
    # step time falls as bytes grow (noise on a latency-bound card): keep the efficiency, fit the rest
    samples = [DecodeSample(w * GIB, 0, 0, 1, 4.8e12, tps) for w, tps in [(1, 480.0), (2, 485.0), (3, 490.0)]]
    got = fit(samples, base=M)
    assert got.efficiency == M.efficiency
    assert got.fixed_step_s > 0
    for s in samples:
        pred = got.decode(s.weights_gpu_bytes, kv_bytes_per_token=0, depth_tokens=0, bandwidth_bytes_per_s=4.8e12)
        assert pred.aggregate_tps == pytest.approx(s.measured_tps, rel=0.2)


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
    assert got.efficiency == pytest.approx(0.8, rel=1e-6)
    assert user_speed_model(path=path, bandwidth_bytes_per_s=123e9) is DEFAULT_SPEED  # another card's records


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
    assert s.weights_gpu_bytes == records[0]["predicted"]["weights"]
    assert s.depth_tokens == records[0]["n_gen"] / 2
    assert s.kv_bytes_per_token * records[0]["n_ctx"] == records[0]["predicted"]["kv"]
