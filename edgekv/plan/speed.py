"""Predicted speed on a card: decode tokens/s, prompt tokens/s and the time to answer.

Pure arithmetic, stdlib only (it sits on ``pick``'s path): ints of bytes and tokens in, floats out.

Decode (speed model v2). One step of G parallel samples, each at ``depth`` cached tokens, takes

    step_s = fixed_step_s
           + weights_gpu_bytes / (gpu_bandwidth x weights_efficiency)     dense weights read on the GPU
           + G x k/E x experts_gpu_bytes / (gpu_bandwidth x moe_efficiency)   routed experts on the GPU
           + ram_read_bytes(G) / (ram_bandwidth x ram_efficiency)         weights read from RAM by the CPU
           + MoE blocks x moe_layer_step_s + blocks with experts in RAM x ram_layer_step_s
           + (min(G, 8) - 1) x 2 x active_params / (fp16_flops x compute_eff)   further samples' matmuls
           + G x depth x kv_bytes_per_token / (gpu_bandwidth x kv_f16_efficiency)        f16 KV, or
           + G x depth x attn_flops_per_token / (fp16_flops x kv_efficiency[kv type])    q8_0/q4_0 KV

and yields G tokens. The terms:

- *Weights on the GPU* are read once per step, shared by the G samples (one batched matmul).
- *Weights in RAM* (whole layers kept on the host, or MoE experts there: llama.cpp's
  ``--n-cpu-moe``/``-ot exps=CPU``) are multiplied by the CPU, as llama.cpp does for a batch below
  its op-offload threshold (32 tokens): the CPU reads the bytes it multiplies from RAM once per step.
- *MoE*: a step reads only the routed experts the G tokens chose; each token picks ``k`` =
  n_expert_used of ``E`` = n_expert experts per layer. Shared experts, routers and attention are
  dense parts, read in full. Where the routed experts live decides how they are read:

  - *in RAM* (the CPU multiplies them) each expert is read once per step, whichever tokens chose
    it: with choices independent between tokens (what random routers give, and close to real
    routing over a batch of unrelated samples) the expected share read by G tokens is
    ``1 - (1 - k/E)^G`` (:func:`experts_read_fraction`). Measured on the H100's host (16 cores,
    bench/results/gpu/experts_ram_g_sweep.jsonl), G = 1..16: Qwen3-30B-A3B's experts at 44-53 GB/s
    at every G under this count;
  - *on the GPU* llama.cpp's decode kernels for ``mul_mat_id`` work per (token, expert) pair, so a
    step reads ``G x k/E`` of the experts, the same expert again for each token that chose it, at
    its own efficiency (``moe_efficiency``, with the routing kernels' cost): measured linear in G to
    G = 16 on the H100, 1.08 ms per sample for Qwen3-30B-A3B and 1.03 ms for gpt-oss-20b, where the
    union count above predicted 1.2-1.7x too fast (bench/results/speed_check.md);
  - *per block*: routing (router matmul, top-k, softmax, gathers) adds kernels to each MoE block,
    a cost per block and step whatever G (``moe_layer_step_s``); a block whose experts are in RAM
    also hands its hidden states to the CPU and back, a synchronisation per block and step
    (``ram_layer_step_s``). Seen on the H100: Qwen3-30B-A3B (48 MoE blocks) takes ~0.7 ms a step
    longer than gpt-oss-20b (24) with fewer dense bytes and the same per-sample expert cost;
  - *the CPU's arithmetic* on experts in RAM: each (token, expert) pair is multiplied on its own,
    G x k/E of the experts' bytes per step, at a rate per GB that depends on the quant's CPU kernel
    (``cpu_pair_s_per_gb`` for K-quants and the legacy types, ``cpu_pair_mxfp4_s_per_gb`` for MXFP4,
    about twice as slow on the H100's host). Without it the experts-in-RAM rows of gpt-oss at G = 16
    came 1.3-1.6x too fast.
- *Per-sample compute*: with G > 1 the quantized mat-vec kernels multiply each further sample's
  column on top of the one hidden under the weight read: measured, the step grows with G by an
  amount proportional to the parameters even at shallow depth (bench/results/speed_check.md), up to
  G = 8; larger batches go to the mat-mat kernel, which holds them at about the cost of 8
  (:data:`COMPUTE_MAX_SAMPLES`). Counted at a fraction of the card's listed FP16 rate; left out
  when the rate is unknown.
- *Attention* reads each sample's own KV up to its depth (edgekv's cache is not unified: every
  sample is its own stream), with its own efficiency per KV type. An f16 KV is bandwidth-bound:
  its bytes at a fraction of the GPU bandwidth. A quantized KV (q8_0, q4_0) is compute-bound:
  llama.cpp's flash-attention decode kernel dequantizes it on the fly, and on an H200 q8_0 and q4_0
  take the same time per cached token though q4_0 has half the bytes
  (bench/results/speed_check.md); so its term is the attention FLOPs per cached token (2 x n_head x
  (head_dim_k + head_dim_v) per full-attention layer) at a fraction of the FP16 rate. Where the
  rate is unknown it falls back to bytes at the bandwidth. The choice matters across cards: a
  GeForce card has more FLOPs per byte than an H200, so its quantized-KV penalty is smaller.
- *Fixed cost*: kernel launches, host sync and sampling, per step.

Every efficiency is a fraction of a listed or measured rate: no efficiency above 1 (the fit
enforces it). The constants are fitted by ``bench/speed_check.py`` (GPU grid and published
consumer-card numbers; tables in ``bench/results/speed_check.md``) and refitted from the user's own
``edgekv bench`` records with :func:`fit`.

Prompt processing is compute-bound: 2 x n_params FLOPs per token at a fraction of the card's
listed FP16 rate, plus one read of the weights per ubatch of 512 tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekv.plan.card import Card

N_UBATCH = 512  # llama.cpp's default physical batch: the prompt reads the weights once per ubatch
# System RAM bandwidth when neither measured nor given (--ram-bandwidth): dual-channel DDR5-4800,
# 76.8 GB/s listed, about what a desktop of 2023-2025 has. A setting, said in pick's output.
DEFAULT_RAM_BANDWIDTH = 76.8e9
# The CPU's reads of RAM against a *listed* bandwidth (the default above, a DIMM's rating): the fit's
# ram_efficiency (1.0) is relative to a measured copy rate (the H100 host's 73 GB/s), which a listed
# figure overstates; dual-channel DDR5 reaches about 80% of its rating in read tests (our assumption,
# not measured here). A measured --ram-bandwidth with edgekv bench's refit replaces both.
LISTED_RAM_EFFICIENCY = 0.8
KV_EFFICIENCY_TYPES = ("f16", "q8_0", "q4_0")  # the KV types with their own attention efficiency
# llama.cpp's CUDA mat-vec kernels (mmvq/mmvf) take decode batches of up to 8 columns: the first
# column's dot products hide under the weight read (memory-bound), each further column adds its own;
# a larger batch goes to the mat-mat kernel (mmq), whose tile holds the columns at about the cost of
# 8 (ggml-cuda MMVQ_MAX_BATCH_SIZE). The compute term counts min(G, 8) - 1 samples.
COMPUTE_MAX_SAMPLES = 8


def kv_class(kv_type: str) -> str:
    """The attention-efficiency class of a KV type: f16/bf16/f32 read like f16, q8_0 like q8_0, the
    4- and 5-bit types (q4_0, q4_1, q5_0, q5_1, iq4_nl) like q4_0."""
    t = kv_type.lower()
    if t in ("f16", "bf16", "f32"):
        return "f16"
    if t == "q8_0":
        return "q8_0"
    return "q4_0"


def experts_read_fraction(n_expert_used: int, n_expert: int, n_seq: int) -> float:
    """Expected share of a layer's routed experts that one step of ``n_seq`` tokens reads.

    Each token picks ``n_expert_used`` of ``n_expert``; with picks independent between tokens, an
    expert is left out by all with probability (1 - k/E)^G. 1.0 for a dense model (E = 0).
    """
    if n_expert <= 0:
        return 1.0
    return 1.0 - (1.0 - expert_share(n_expert_used, n_expert)) ** max(n_seq, 1)


def expert_share(n_expert_used: int, n_expert: int) -> float:
    """k/E: the share of a layer's routed experts one token picks (0 for a dense model)."""
    if n_expert <= 0:
        return 0.0
    return min(max(n_expert_used, 1), n_expert) / n_expert


@dataclass(frozen=True, slots=True)
class StepLoad:
    """What one decode step reads, by where it lives: the interface between plans and the speed model.

    ``weights_gpu_bytes`` and ``weights_ram_bytes`` are the dense weights (everything but the routed
    experts: attention, dense FFN, shared experts, routers, output) on each side, read in full once
    per step; the input embedding is a row lookup and belongs to neither. ``experts_*_bytes`` are all
    the routed experts on each side, of which a step reads :func:`experts_read_fraction`.
    """

    weights_gpu_bytes: int
    kv_bytes_per_token: int = 0  # K + V over the full-attention layers
    kv_type: str = "f16"
    weights_ram_bytes: int = 0
    experts_gpu_bytes: int = 0
    experts_ram_bytes: int = 0
    n_expert: int = 0
    n_expert_used: int = 0
    n_active_params: int = 0  # parameters one token multiplies (dense + its experts): 0 = no compute term
    attn_flops_per_token: int = 0  # one query's attention FLOPs per cached token (0: time quantized KV by bytes)
    n_expert_layers: int = 0  # blocks with routed experts (MoE)
    n_ram_expert_layers: int = 0  # of those, blocks whose experts are in RAM
    experts_mxfp4: bool = False  # the routed experts are MXFP4 (gpt-oss): the CPU multiplies them slower

    def experts_ram_pair_bytes(self, n_seq: int) -> float:
        """The routed-expert bytes in RAM that the ``n_seq`` tokens' ``k`` experts multiply, each pair on
        its own: the CPU's arithmetic (the read is :meth:`ram_read_bytes`)."""
        return self.experts_ram_bytes * expert_share(self.n_expert_used, self.n_expert) * max(n_seq, 1)

    def experts_gpu_pair_bytes(self, n_seq: int) -> float:
        """The GPU's routed-expert bytes a step reads: each of the ``n_seq`` tokens' ``k`` experts on
        its own (the module docstring)."""
        return self.experts_gpu_bytes * expert_share(self.n_expert_used, self.n_expert) * max(n_seq, 1)

    def ram_read_bytes(self, n_seq: int) -> float:
        return self.weights_ram_bytes + self.experts_ram_bytes * experts_read_fraction(
            self.n_expert_used, self.n_expert, n_seq
        )


@dataclass(frozen=True, slots=True)
class Rates:
    """The machine's rates: GPU bandwidth, RAM bandwidth (the CPU's reads) and the GPU's FP16 FLOP/s."""

    bandwidth_bytes_per_s: float
    ram_bandwidth_bytes_per_s: float = DEFAULT_RAM_BANDWIDTH
    flops_per_s: float | None = None

    def __post_init__(self) -> None:
        if self.bandwidth_bytes_per_s <= 0 or self.ram_bandwidth_bytes_per_s <= 0:
            raise ValueError(
                f"bandwidths must be positive: {self.bandwidth_bytes_per_s}, {self.ram_bandwidth_bytes_per_s}"
            )


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
class StepTerms:
    """A step's seconds at efficiency 1, by term (the fit's features; :meth:`SpeedModel.step_s` weighs them)."""

    gpu_s: float
    moe_gpu_s: float  # the routed experts on the GPU, read per (token, expert) pair
    moe_layers: float  # blocks with routed experts (a count: its constant is seconds per block)
    ram_layers: float  # blocks whose experts are in RAM (the same)
    extra_samples: float  # G - 1 (a count: its constant is seconds per further sample)
    ram_pair_gb: float  # GB of experts in RAM multiplied per (token, expert) pair: the CPU's arithmetic
    ram_pair_mxfp4_gb: float  # the same for MXFP4 experts (their own CPU kernel)
    ram_s: float
    compute_s: float
    kv_s: float  # all samples' KV reads at this depth
    kv_class: str


def step_terms(load: StepLoad, rates: Rates, *, depth_tokens: float, n_seq: int) -> StepTerms:
    """The ideal seconds of each term of one step (see the module docstring)."""
    if n_seq < 1:
        raise ValueError(f"n_seq {n_seq} must be positive")
    compute = 0.0
    if rates.flops_per_s and load.n_active_params:
        compute = (min(n_seq, COMPUTE_MAX_SAMPLES) - 1) * 2.0 * load.n_active_params / rates.flops_per_s
    return StepTerms(
        gpu_s=load.weights_gpu_bytes / rates.bandwidth_bytes_per_s,
        moe_gpu_s=load.experts_gpu_pair_bytes(n_seq) / rates.bandwidth_bytes_per_s,
        moe_layers=float(load.n_expert_layers),
        ram_layers=float(load.n_ram_expert_layers),
        extra_samples=float(n_seq - 1),
        ram_pair_gb=0.0 if load.experts_mxfp4 else load.experts_ram_pair_bytes(n_seq) / 1e9,
        ram_pair_mxfp4_gb=load.experts_ram_pair_bytes(n_seq) / 1e9 if load.experts_mxfp4 else 0.0,
        ram_s=load.ram_read_bytes(n_seq) / rates.ram_bandwidth_bytes_per_s,
        compute_s=compute,
        kv_s=n_seq * max(depth_tokens, 0.0) * _kv_seconds_per_token(load, rates),
        kv_class=kv_class(load.kv_type),
    )


def _kv_seconds_per_token(load: StepLoad, rates: Rates) -> float:
    """One sample's attention seconds per cached token at efficiency 1: bytes at the bandwidth (f16),
    FLOPs at the FP16 rate (quantized KV, when both are known)."""
    if kv_class(load.kv_type) != "f16" and rates.flops_per_s and load.attn_flops_per_token:
        return load.attn_flops_per_token / rates.flops_per_s
    return load.kv_bytes_per_token / rates.bandwidth_bytes_per_s


@dataclass(frozen=True, slots=True)
class SpeedModel:
    """Fitted constants: fractions of the machine's rates achieved, and a fixed cost per step."""

    weights_efficiency: float  # GPU weight reads over the card's listed memory bandwidth
    fixed_step_s: float  # per decode step: kernel launches, sampling, host sync
    prompt_efficiency: float  # prompt FLOP/s over the card's listed (non-tensor) FP16 FLOP/s
    kv_f16_efficiency: float = 0.5  # attention reads of an f16 KV over the listed bandwidth
    kv_q8_0_efficiency: float = 0.06  # attention FLOPs over a q8_0 KV over the listed FP16 rate
    kv_q4_0_efficiency: float = 0.06  # the same for q4_0 (and the other 4-5 bit types)
    ram_efficiency: float = 0.7  # the CPU's reads of RAM-resident weights over the RAM bandwidth
    compute_efficiency: float = 0.5  # per-sample matmul FLOP/s over the listed FP16 rate
    moe_efficiency: float = 0.3  # the GPU's per-(token, expert) reads of routed experts over its bandwidth
    moe_layer_step_s: float = 0.0  # per MoE block and step: the routing kernels
    ram_layer_step_s: float = 0.0  # per block with experts in RAM and step: the hand-over to the CPU and back
    sample_step_s: float = 0.0  # per further sample and step: its logits, output copy and batch bookkeeping
    cpu_pair_s_per_gb: float = 0.0  # the CPU's multiplies of experts in RAM: seconds per GB of weights per pair
    cpu_pair_mxfp4_s_per_gb: float = 0.0  # the same for MXFP4 experts

    @property
    def efficiency(self) -> float:
        """The weights' efficiency (v1's single efficiency)."""
        return self.weights_efficiency

    def kv_efficiency(self, kv_type: str) -> float:
        c = kv_class(kv_type)
        return {"f16": self.kv_f16_efficiency, "q8_0": self.kv_q8_0_efficiency}.get(c, self.kv_q4_0_efficiency)

    def weigh(self, t: StepTerms) -> float:
        """Seconds of a step from its ideal terms."""
        return (self.fixed_step_s + t.gpu_s / self.weights_efficiency + t.moe_gpu_s / self.moe_efficiency
                + t.moe_layers * self.moe_layer_step_s + t.ram_layers * self.ram_layer_step_s
                + t.extra_samples * self.sample_step_s + t.ram_pair_gb * self.cpu_pair_s_per_gb
                + t.ram_pair_mxfp4_gb * self.cpu_pair_mxfp4_s_per_gb
                + t.ram_s / self.ram_efficiency
                + t.compute_s / self.compute_efficiency + t.kv_s / self.kv_efficiency(t.kv_class))  # fmt: skip

    def step_s(self, load: StepLoad, rates: Rates, *, depth_tokens: float, n_seq: int = 1) -> float:
        return self.weigh(step_terms(load, rates, depth_tokens=depth_tokens, n_seq=n_seq))

    def depth_slope_s(self, load: StepLoad, rates: Rates, *, n_seq: int = 1) -> float:
        """Seconds a step gains per token of depth (every sample one token deeper)."""
        return n_seq * _kv_seconds_per_token(load, rates) / self.kv_efficiency(load.kv_type)

    def decode(self, load: StepLoad, rates: Rates, *, depth_tokens: float, n_seq: int = 1) -> DecodeSpeed:
        """One decode step at ``depth_tokens`` (tokens already in each sample's cache)."""
        return DecodeSpeed(self.step_s(load, rates, depth_tokens=depth_tokens, n_seq=n_seq), n_seq)

    def decode_tps(self, load: StepLoad, rates: Rates, *, depth_tokens: float, n_seq: int = 1) -> tuple[float, float]:
        """(aggregate, per-sample) decode tokens/s."""
        d = self.decode(load, rates, depth_tokens=depth_tokens, n_seq=n_seq)
        return d.aggregate_tps, d.per_seq_tps

    def prompt_s(self, prompt_tokens: int, *, n_params: int, load: StepLoad, rates: Rates) -> float:
        """Seconds to process a prompt once: its FLOPs, plus a weight read and a fixed cost per ubatch
        (llama.cpp multiplies RAM-resident weights on the GPU for a prompt: they cross PCIe, counted
        at the RAM rate, once per ubatch)."""
        if prompt_tokens <= 0 or not rates.flops_per_s:
            return 0.0
        compute_s = prompt_tokens * 2.0 * n_params / (rates.flops_per_s * self.prompt_efficiency)
        per_ubatch_s = (
            self.fixed_step_s
            + (load.weights_gpu_bytes + load.experts_gpu_bytes)
            / (rates.bandwidth_bytes_per_s * self.weights_efficiency)
            + (load.weights_ram_bytes + load.experts_ram_bytes)
            / (rates.ram_bandwidth_bytes_per_s * self.ram_efficiency)
        )
        return compute_s + math.ceil(prompt_tokens / N_UBATCH) * per_ubatch_s

    def prompt_tps(self, prompt_tokens: int, *, n_params: int, load: StepLoad, rates: Rates) -> float:
        """Prompt tokens/s for a prompt of ``prompt_tokens``."""
        return prompt_tokens / self.prompt_s(prompt_tokens, n_params=n_params, load=load, rates=rates)

    def time_to_answer_s(
        self, prompt_tokens: int, budget_tokens: int, n_seq: int = 1, *, load: StepLoad, rates: Rates,
        n_params: int | None = None,
    ) -> AnswerTime:  # fmt: skip
        """The prompt once (then copied to the samples, as runtime does) plus ``budget_tokens`` steps
        of ``n_seq`` samples; step time is linear in depth, so the average depth
        (prompt + budget/2) gives the exact sum."""
        step = self.decode(load, rates, depth_tokens=prompt_tokens + budget_tokens / 2, n_seq=n_seq)
        prompt = None
        if rates.flops_per_s and n_params:
            prompt = self.prompt_s(prompt_tokens, n_params=n_params, load=load, rates=rates)
        return AnswerTime(prompt, budget_tokens * step.step_s, step)


# Fitted by bench/speed_check.py (tables in bench/results/speed_check.md), in two stages. Stage 1, on
# 225 GPU rows: llama.cpp's own tools on an H200 (39 rows: dense Qwen3 shapes, G 1-16, depth to 32k,
# f16/q8_0/q4_0 KV) and the H100 grid of 2026-12-06 (186 rows, llama-batched-bench on sparse GGUFs:
# dense Qwen3 4B/8B/14B, Qwen3-30B-A3B and gpt-oss-20b with experts on the GPU and in RAM, G 1/4/16,
# depth 128/8k/32k, the three KV types): every constant but the two below, 207/225 rows within 15%.
# Stage 2: the weights' efficiency and the fixed cost on the published consumer-card numbers (19 rows,
# 2024 builds, whose fixed cost per step is larger), 18/19 within 15%. ram_efficiency is relative to
# the H100 host's measured copy rate (73 GB/s: the fit reaches its bound of 1), kept here at
# LISTED_RAM_EFFICIENCY for the listed figures users have;
# cpu_pair_s_per_gb (K-quant experts, 4.4 ms per GB) and cpu_pair_mxfp4_s_per_gb (MXFP4, 8.1 ms: its CPU
# kernel decodes through a lookup table) are that host's 16 cores multiplying experts. prompt_efficiency
# is relative to the listed non-tensor FP16 rate; the prompt kernels use tensor cores, hence > 1.
DEFAULT_SPEED = SpeedModel(
    weights_efficiency=1.0, fixed_step_s=0.003526, prompt_efficiency=2.08, kv_f16_efficiency=0.817,
    kv_q8_0_efficiency=0.0622, kv_q4_0_efficiency=0.0603, ram_efficiency=LISTED_RAM_EFFICIENCY,
    compute_efficiency=0.582, moe_efficiency=0.566, moe_layer_step_s=2.56e-5, ram_layer_step_s=7.59e-5,
    sample_step_s=1.77e-4, cpu_pair_s_per_gb=0.00436, cpu_pair_mxfp4_s_per_gb=0.00813,
)  # fmt: skip


# -- plans timed on a card (edgekv.plan.timing makes them) ---------------------------------------

PROMPT_TOKENS = 512  # the question: a long competition problem or a code task with context


@dataclass(frozen=True, slots=True)
class CardSpeed:
    """A card with the speed model to time plans on it."""

    card: Card
    model: SpeedModel = DEFAULT_SPEED
    n_user_samples: int = 0  # > 0: ``model`` was refit on the user's own ``edgekv bench`` samples
    prompt_tokens: int = PROMPT_TOKENS
    ram_bandwidth_bytes_per_s: float = DEFAULT_RAM_BANDWIDTH  # the CPU's reads of RAM-resident weights
    ram_bandwidth_given: bool = False  # --ram-bandwidth (else the default, said in pick's output)

    def __post_init__(self) -> None:
        if self.card.bandwidth_bytes_per_s <= 0:
            raise ValueError(f"{self.card.name}: memory bandwidth unknown, cannot time plans")
        if self.ram_bandwidth_bytes_per_s <= 0:
            raise ValueError(f"RAM bandwidth {self.ram_bandwidth_bytes_per_s} must be positive")

    @property
    def rates(self) -> Rates:
        return Rates(self.card.bandwidth_bytes_per_s, self.ram_bandwidth_bytes_per_s, self.card.fp16_flops_per_s)

    @property
    def source(self) -> str:
        """Where the speed constants come from, in words."""
        if self.n_user_samples:
            return f"refit on your {self.n_user_samples} edgekv bench samples on this card"
        return (
            "fitted on a GPU grid and published llama.cpp numbers (bench/results/speed_check.md); edgekv bench refits"
        )


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
    """A measured decode speed and what it was measured at: the step's ``load`` (a :class:`StepLoad`, as
    plans give the model), the depth and sequences, and the machine's rates. ``edgekv.store.speeds`` keeps
    it as one flat JSON object (:meth:`record`, :meth:`from_record`: the step load's fields beside the
    sample's own; fields added later have defaults, so older records still load)."""

    load: StepLoad
    depth_tokens: float  # average depth over the timed steps
    n_seq: int
    bandwidth_bytes_per_s: float
    measured_tps: float  # aggregate tokens/s (n_seq tokens per step)
    ram_bandwidth_bytes_per_s: float = DEFAULT_RAM_BANDWIDTH
    flops_per_s: float = 0.0  # 0: unknown

    @property
    def step_s(self) -> float:
        return self.n_seq / self.measured_tps

    def record(self) -> dict[str, Any]:
        """The flat JSON object of the store: the step load's fields, then the sample's own."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "load"}
        return {**asdict(self.load), **own}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DecodeSample:
        """A sample from :meth:`record`'s object (a record always names its GPU weights and KV bytes).

        Raises:
            TypeError: a field missing or unknown.
        """
        load_names = {f.name for f in fields(StepLoad)}
        missing = [k for k in ("weights_gpu_bytes", "kv_bytes_per_token") if k not in record]
        if missing:
            raise TypeError(f"missing {', '.join(missing)}")
        load = StepLoad(**{k: v for k, v in record.items() if k in load_names})
        return cls(load, **{k: v for k, v in record.items() if k not in load_names})

    @property
    def rates(self) -> Rates:
        return Rates(self.bandwidth_bytes_per_s, self.ram_bandwidth_bytes_per_s, self.flops_per_s or None)

    @property
    def terms(self) -> StepTerms:
        return step_terms(self.load, self.rates, depth_tokens=self.depth_tokens, n_seq=self.n_seq)

    def predicted_tps(self, m: SpeedModel) -> float:
        return self.n_seq / m.weigh(self.terms)


# The fitted parameters: (field, is an efficiency). An efficiency e enters as 1/e >= 1.
PARAMS: tuple[tuple[str, bool], ...] = (
    ("weights_efficiency", True), ("ram_efficiency", True), ("compute_efficiency", True),
    ("kv_f16_efficiency", True), ("kv_q8_0_efficiency", True), ("kv_q4_0_efficiency", True),
    ("moe_efficiency", True), ("moe_layer_step_s", False), ("ram_layer_step_s", False),
    ("sample_step_s", False), ("cpu_pair_s_per_gb", False),
    ("cpu_pair_mxfp4_s_per_gb", False), ("fixed_step_s", False),
)  # fmt: skip


def _features(t: StepTerms) -> list[float]:
    kv = {c: t.kv_s if t.kv_class == c else 0.0 for c in KV_EFFICIENCY_TYPES}
    return [
        t.gpu_s, t.ram_s, t.compute_s, kv["f16"], kv["q8_0"], kv["q4_0"], t.moe_gpu_s, t.moe_layers, t.ram_layers,
        t.extra_samples, t.ram_pair_gb, t.ram_pair_mxfp4_gb, 1.0,
    ]  # fmt: skip


def fit(
    samples: Iterable[DecodeSample], *, base: SpeedModel = DEFAULT_SPEED, only: Sequence[str] | None = None,
    sweeps: int = 400,
) -> SpeedModel:  # fmt: skip
    """Least squares on relative error of the step time, every efficiency at most 1, the fixed cost >= 0.

    The step time is linear in (1/efficiency of each term, fixed cost), so this is a bounded linear
    least-squares problem (1/e >= 1, fixed >= 0), solved by cyclic coordinate descent (each
    coordinate's exact minimum, clamped to its bound; convex, so it converges). Parameters whose
    term is zero in every sample (no RAM-resident weights measured, say) keep ``base``'s value, as do
    parameters not named in ``only``. The prompt efficiency is not touched.

    Raises:
        ValueError: with no samples or a non-positive measurement.
    """
    rows = [(_features(s.terms), s.step_s) for s in samples]
    if not rows:
        raise ValueError("no speed measurements to fit")
    if any(y <= 0 for _, y in rows):
        raise ValueError("speed measurements must be positive")
    names = [n for n, _ in PARAMS]
    x = [1.0 / getattr(base, n) if eff else getattr(base, n) for n, eff in PARAMS]
    free = [
        (only is None or n in only) and (not eff or any(f[j] > 0 for f, _ in rows)) for j, (n, eff) in enumerate(PARAMS)
    ]
    if not any(free):
        return base
    # relative residuals: r_i = (f_i . x - y_i) / y_i
    a = [[v / y for v in f] for f, y in rows]
    r = [sum(ai[j] * x[j] for j in range(len(x))) - 1.0 for ai in a]
    for _ in range(sweeps):
        moved = 0.0
        for j in range(len(x)):
            if not free[j]:
                continue
            col = [ai[j] for ai in a]
            den = sum(c * c for c in col)
            if den <= 0:
                continue
            step = -sum(c * ri for c, ri in zip(col, r, strict=True)) / den
            new = max(x[j] + step, 1.0 if PARAMS[j][1] else 0.0)
            d = new - x[j]
            if d:
                x[j] = new
                r = [ri + c * d for ri, c in zip(r, col, strict=True)]
                moved = max(moved, abs(d) / max(abs(new), 1e-12))
        if moved < 1e-10:
            break
    out = {n: (1.0 / v if eff else v) for (n, eff), v in zip(PARAMS, x, strict=True)}
    return replace(base, **{n: out[n] for n, f in zip(names, free, strict=True) if f})


def fit_prompt_efficiency(efficiencies: Iterable[float], *, base: SpeedModel = DEFAULT_SPEED) -> SpeedModel:
    """``prompt_efficiency`` as the geometric mean of per-measurement efficiencies (see bench/speed_fit.py)."""
    r = [x for x in efficiencies if x > 0]
    if not r:
        return base
    return replace(base, prompt_efficiency=math.exp(sum(math.log(x) for x in r) / len(r)))


def model_fields() -> tuple[str, ...]:
    """The SpeedModel's constants, in order (for tables)."""
    return tuple(f.name for f in fields(SpeedModel))
