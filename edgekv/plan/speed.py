"""Predicted speed on a card: decode tokens/s, prompt tokens/s and the time to answer.

Pure arithmetic, stdlib only (it sits on ``pick``'s path): ints of bytes and tokens in, floats out.

Decode is memory-bound. One step of G parallel samples reads the weights on the GPU once (the G
tokens share that read) and each sample's KV cache up to its depth, so

    step_s = (weights_gpu + G x kv_bytes_per_token x depth) / (bandwidth x efficiency) + fixed_step_s

and the step yields G tokens. ``efficiency`` and ``fixed_step_s`` are fitted by
``bench/speed_fit.py`` (results and their misses in ``bench/results/speed_fit.md``) and refitted
from the user's own ``edgekv bench`` records with :func:`fit`.

Prompt processing is compute-bound: 2 x n_params FLOPs per token at a fraction of the card's
listed FP16 rate, plus one read of the weights per ubatch of 512 tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekv.plan.card import Card

N_UBATCH = 512  # llama.cpp's default physical batch: the prompt reads the weights once per ubatch


@dataclass(frozen=True, slots=True)
class DecodeSpeed:
    """One decode step of ``n_seq`` samples: its time and the tokens/s it gives."""

    step_s: float
    n_seq: int

    @property
    def per_seq_tps(self) -> float:
        """Tokens/s of each sample (what one reader sees)."""
        return 1.0 / self.step_s

    @property
    def aggregate_tps(self) -> float:
        """Tokens/s summed over the ``n_seq`` samples."""
        return self.n_seq / self.step_s


@dataclass(frozen=True, slots=True)
class AnswerTime:
    """Prompt plus ``budget_tokens`` generated tokens for each of ``n_seq`` samples."""

    prompt_s: float | None  # None: the card's FLOPs are unknown
    decode_s: float
    decode: DecodeSpeed  # the step at the generation's average depth

    @property
    def total_s(self) -> float:
        return self.decode_s + (self.prompt_s or 0.0)


@dataclass(frozen=True, slots=True)
class SpeedModel:
    """Fitted constants: the fraction of bandwidth (decode) and of FP16 FLOPs (prompt) achieved."""

    efficiency: float  # decode bytes/s over the card's listed memory bandwidth
    fixed_step_s: float  # per decode step: kernel launches, sampling, host sync
    prompt_efficiency: float  # prompt FLOP/s over the card's listed (non-tensor) FP16 FLOP/s

    def step_bytes(self, weights_gpu_bytes: int, *, kv_bytes_per_token: int, depth_tokens: float, n_seq: int) -> float:
        """Bytes one decode step reads: the weights once, each sample's KV up to ``depth_tokens``."""
        return weights_gpu_bytes + n_seq * kv_bytes_per_token * depth_tokens

    def decode(
        self,
        weights_gpu_bytes: int,
        *,
        kv_bytes_per_token: int,
        depth_tokens: float,
        n_seq: int = 1,
        bandwidth_bytes_per_s: float,
    ) -> DecodeSpeed:
        """One decode step at ``depth_tokens`` (tokens already in each sample's cache)."""
        if n_seq < 1 or bandwidth_bytes_per_s <= 0:
            raise ValueError(f"n_seq {n_seq} and bandwidth {bandwidth_bytes_per_s} must be positive")
        n_bytes = self.step_bytes(weights_gpu_bytes, kv_bytes_per_token=kv_bytes_per_token,
                                  depth_tokens=depth_tokens, n_seq=n_seq)  # fmt: skip
        return DecodeSpeed(n_bytes / (bandwidth_bytes_per_s * self.efficiency) + self.fixed_step_s, n_seq)

    def decode_tps(
        self,
        weights_gpu_bytes: int,
        *,
        kv_bytes_per_token: int,
        depth_tokens: float,
        n_seq: int = 1,
        bandwidth_bytes_per_s: float,
    ) -> tuple[float, float]:
        """(aggregate, per-sample) decode tokens/s."""
        d = self.decode(weights_gpu_bytes, kv_bytes_per_token=kv_bytes_per_token, depth_tokens=depth_tokens,
                        n_seq=n_seq, bandwidth_bytes_per_s=bandwidth_bytes_per_s)  # fmt: skip
        return d.aggregate_tps, d.per_seq_tps

    def prompt_s(
        self,
        prompt_tokens: int,
        *,
        n_params: int,
        weights_gpu_bytes: int,
        flops_per_s: float,
        bandwidth_bytes_per_s: float,
    ) -> float:
        """Seconds to process a prompt once: its FLOPs, plus a weight read and a fixed cost per ubatch."""
        if prompt_tokens <= 0:
            return 0.0
        compute_s = prompt_tokens * 2.0 * n_params / (flops_per_s * self.prompt_efficiency)
        per_ubatch_s = weights_gpu_bytes / (bandwidth_bytes_per_s * self.efficiency) + self.fixed_step_s
        return compute_s + math.ceil(prompt_tokens / N_UBATCH) * per_ubatch_s

    def prompt_tps(
        self,
        prompt_tokens: int,
        *,
        n_params: int,
        weights_gpu_bytes: int,
        flops_per_s: float,
        bandwidth_bytes_per_s: float,
    ) -> float:
        """Prompt tokens/s for a prompt of ``prompt_tokens``."""
        s = self.prompt_s(prompt_tokens, n_params=n_params, weights_gpu_bytes=weights_gpu_bytes,
                          flops_per_s=flops_per_s, bandwidth_bytes_per_s=bandwidth_bytes_per_s)  # fmt: skip
        return prompt_tokens / s

    def time_to_answer_s(
        self,
        prompt_tokens: int,
        budget_tokens: int,
        n_seq: int = 1,
        *,
        weights_gpu_bytes: int,
        kv_bytes_per_token: int,
        bandwidth_bytes_per_s: float,
        n_params: int | None = None,
        flops_per_s: float | None = None,
    ) -> AnswerTime:
        """The prompt once (then copied to the samples, as runtime does) plus ``budget_tokens`` steps
        of ``n_seq`` samples; step time is linear in depth, so the average depth
        (prompt + budget/2) gives the exact sum."""
        step = self.decode(weights_gpu_bytes, kv_bytes_per_token=kv_bytes_per_token,
                           depth_tokens=prompt_tokens + budget_tokens / 2, n_seq=n_seq,
                           bandwidth_bytes_per_s=bandwidth_bytes_per_s)  # fmt: skip
        prompt = None
        if flops_per_s and n_params:
            prompt = self.prompt_s(prompt_tokens, n_params=n_params, weights_gpu_bytes=weights_gpu_bytes,
                                   flops_per_s=flops_per_s, bandwidth_bytes_per_s=bandwidth_bytes_per_s)  # fmt: skip
        return AnswerTime(prompt, budget_tokens * step.step_s, step)


# Fitted by bench/speed_fit.py on llama.cpp's published consumer-card numbers (table and sources in
# bench/results/speed_fit.md); the H200 grid is latency-bound and only checks the fixed cost.
DEFAULT_SPEED = SpeedModel(efficiency=1.028, fixed_step_s=0.00373, prompt_efficiency=2.08)


# -- plans timed on a card (edgekv.plan.timing makes them) ---------------------------------------

PROMPT_TOKENS = 512  # the question: a long competition problem or a code task with context


@dataclass(frozen=True, slots=True)
class CardSpeed:
    """A card with the speed model to time plans on it."""

    card: Card
    model: SpeedModel = DEFAULT_SPEED
    n_user_samples: int = 0  # > 0: ``model`` was refit on the user's own ``edgekv bench`` samples
    prompt_tokens: int = PROMPT_TOKENS

    def __post_init__(self) -> None:
        if self.card.bandwidth_bytes_per_s <= 0:
            raise ValueError(f"{self.card.name}: memory bandwidth unknown, cannot time plans")

    @property
    def source(self) -> str:
        """Where the speed constants come from, in words."""
        if self.n_user_samples:
            return f"refit on your {self.n_user_samples} edgekv bench samples on this card"
        return "fitted on published llama.cpp numbers (bench/results/speed_fit.md); edgekv bench refits"


@dataclass(frozen=True, slots=True)
class PlanTime:
    """The predicted answer of one plan: prompt once, then ``answer_tokens`` per sample."""

    n_seq: int
    prompt_tokens: int
    answer_tokens: int  # generated per sample
    prompt_s: float | None  # None: the card's FP16 rate is unknown (then not counted)
    decode_s: float

    @property
    def decode_tps(self) -> float:
        """Tokens/s one sample sees, averaged over the answer."""
        return self.answer_tokens / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def total_decode_tps(self) -> float:
        """Tokens/s summed over the samples."""
        return self.decode_tps * self.n_seq

    @property
    def time_to_answer_s(self) -> float:
        return self.decode_s + (self.prompt_s or 0.0)

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "decode_tps": round(self.decode_tps, 1),
            "decode_tps_all_samples": round(self.total_decode_tps, 1),
            "time_to_answer_s": round(self.time_to_answer_s, 1),
            "prompt_s": round(self.prompt_s, 2) if self.prompt_s is not None else None,
            "prompt_tokens": self.prompt_tokens,
            "answer_tokens": self.answer_tokens,
        }


@dataclass(frozen=True)
class PickSpeed:
    """pick's plans timed on a card (``PickResult.speed``): one PlanTime per plan, in order."""

    card_speed: CardSpeed
    plans: tuple[PlanTime, ...]
    baseline: PlanTime | None = None
    max_time_s: float | None = None


# -- fitting ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodeSample:
    """A measured decode speed and the configuration it was measured at."""

    weights_gpu_bytes: int
    kv_bytes_per_token: int
    depth_tokens: float  # average depth over the timed steps
    n_seq: int
    bandwidth_bytes_per_s: float
    measured_tps: float  # aggregate tokens/s (n_seq tokens per step)

    @property
    def step_s(self) -> float:
        return self.n_seq / self.measured_tps

    @property
    def ideal_s(self) -> float:
        """The step's bytes at the full listed bandwidth."""
        n_bytes = self.weights_gpu_bytes + self.n_seq * self.kv_bytes_per_token * self.depth_tokens
        return n_bytes / self.bandwidth_bytes_per_s


def fit(samples: Iterable[DecodeSample], *, base: SpeedModel = DEFAULT_SPEED) -> SpeedModel:
    """Least squares on relative error for ``efficiency`` and ``fixed_step_s``; prompt constants from ``base``.

    step_s = ideal_s / efficiency + fixed_step_s is linear in (1/efficiency, fixed_step_s). With one
    sample, or samples that all read the same bytes, only the efficiency is fitted (the fixed cost
    kept from ``base``). A negative fixed cost is clamped to 0; a non-positive slope keeps ``base``'s
    efficiency and fits the fixed cost. An efficiency above 1 is kept: it says the card is
    latency-bound (step time grows with bytes more slowly than its listed bandwidth implies).

    Raises:
        ValueError: with no samples or a non-positive measurement.
    """
    pts = [(s.ideal_s, s.step_s) for s in samples]
    if not pts:
        raise ValueError("no speed measurements to fit")
    if any(y <= 0 or x <= 0 for x, y in pts):
        raise ValueError("speed measurements must be positive")
    # minimise sum((a*x + b - y) / y)^2 with u = x/y, v = 1/y: sum(a*u + b*v - 1)^2
    suu = sum((x / y) ** 2 for x, y in pts)
    suv = sum(x / y**2 for x, y in pts)
    svv = sum(1 / y**2 for _, y in pts)
    su = sum(x / y for x, y in pts)
    sv = sum(1 / y for _, y in pts)
    det = suu * svv - suv * suv
    if len(pts) >= 2 and det > 1e-9 * suu * svv:
        a, b = (su * svv - sv * suv) / det, (suu * sv - suv * su) / det
        if a > 0 and b >= 0:
            return replace(base, efficiency=1 / a, fixed_step_s=b)
        if a > 0:  # b < 0: through the origin
            return replace(base, efficiency=suu / su, fixed_step_s=0.0)
        a = 1 / base.efficiency  # the bytes explain nothing: keep the efficiency, fit the fixed cost
        return replace(base, fixed_step_s=max(0.0, (sv - a * suv) / svv))
    b = base.fixed_step_s  # fixed cost kept: a = sum(u*(1 - b*v)) / sum(u*u)
    a = (su - b * suv) / suu
    if a <= 0:
        return base
    return replace(base, efficiency=1 / a)


def fit_prompt_efficiency(efficiencies: Iterable[float], *, base: SpeedModel = DEFAULT_SPEED) -> SpeedModel:
    """``prompt_efficiency`` as the geometric mean of per-measurement efficiencies (see bench/speed_fit.py)."""
    r = [x for x in efficiencies if x > 0]
    if not r:
        return base
    return replace(base, prompt_efficiency=math.exp(sum(math.log(x) for x in r) / len(r)))
