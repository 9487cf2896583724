"""What the rule ranks: the policy (every knob), the card budget, the options, the plans.

Value types and the paper's constants, shared by the ranking (``policy``), its reasons, the
multi-device search and pick(). Pure, stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from edgekv.model.quant import DEFAULT_KV_TYPES, KvType
from edgekv.model.spec import ModelSpec, Task
from edgekv.plan.memory import (
    DEFAULT_MARGIN_BYTES,
    ComputeFigures,
    Footprint,
    RunConfig,
    WeightLayout,
    compute_bytes_term,
    cuda_overhead_bytes,
)
from edgekv.units import GIB

if TYPE_CHECKING:
    from edgekv.plan import devices as multi
    from edgekv.plan.speed import PickSpeed

# Paper constants (arXiv 2510.10964), named and settable through Policy.
E1_BYTES = round(4.19 * GIB)  # "8-bit 4B": Qwen3-4B at 8 bits, the scale threshold (rule 1, 2)


E2_BYTES = round(8.94 * GIB)  # Qwen3-8B at 8 bits: second threshold of the KV section (rule 5)
TOKEN_FLOOR = 4096  # shortest useful reasoning budget (paper budgets: 2k..30k)
SATURATION_TOKENS = 32768  # accuracy flattens by ~30k (rule 2); Qwen3's recommended output length
MAX_PARALLEL = 16  # paper's majority voting goes up to G = 16 (rule 4)
SIMILAR = 0.10  # "similar effective size" band (rule 3 / regime threshold, see module doc)


@dataclass(frozen=True, slots=True)
class Policy:
    """Every knob of the rule. Defaults are the paper's (see module docstring)."""

    task: Task = Task.MATH
    e1_bytes: int = E1_BYTES
    e2_bytes: int = E2_BYTES
    token_floor: int = TOKEN_FLOOR
    saturation_tokens: int = SATURATION_TOKENS
    max_parallel: int = MAX_PARALLEL
    similar: float = SIMILAR
    kv_types: tuple[KvType, ...] = DEFAULT_KV_TYPES
    mixed_kv: bool = False  # also K/V pairs of different types (CUDA needs GGML_CUDA_FA_ALL_QUANTS)
    allow_offload: bool = False
    max_offload_slowdown: float = 3.0  # drop partial-offload plans estimated slower than this
    min_ctx: int = 0  # the user's own floor on T (e.g. a long prompt)
    n_ubatch: int = 512
    eviction: str = "never"  # llama.cpp has no R-KV eviction (see module docstring)
    cap_precision: bool = True  # precision past 8 bits (below E1) or 16 bits adds no capacity (see module doc)
    # Calibrated by ``edgekv calibrate`` (a profile); the defaults are the paper's rule.
    flat_precision: bool = False  # 4-bit weights reach this task's frontier: >= 4-bit quants rank alike (rule 3)
    q4_kv_ok: bool = False  # 4-bit KV reaches this task's frontier: not only a last resort (rule 5)
    parallel_min_bytes: int = 0  # G > 1 only on cards of at least this much memory (rule 4: from E1 on)
    capacity: str = "published"  # "published": E scaled to the Qwen3-equivalent size (plan.capacity); "size": E alone

    def kv_pairs(self, spec: ModelSpec | None = None) -> list[tuple[KvType, KvType]]:
        """The (K, V) types considered: each of ``kv_types`` for both, and with ``mixed_kv`` every mixed pair;
        for a ``spec``, only the pairs llama.cpp creates a context with (``kv_types_load``)."""
        pairs = [(k, k) for k in self.kv_types]
        if self.mixed_kv:
            pairs += [(k, v) for k in self.kv_types for v in self.kv_types if k != v]
        return [(k, v) for k, v in pairs if spec is None or kv_types_load(spec, k, v)]


def kv_types_load(spec: ModelSpec, type_k: KvType, type_v: KvType) -> bool:
    """Whether llama.cpp creates a context with these cache types: ``llama_init_from_model`` refuses a
    quantized K (V) type whose block does not divide the K (V) head size ("K cache type q8_0 with block
    size 32 does not divide n_embd_head_k=80": EXAONE Deep 2.4B's 80-wide heads take f16/bf16/f32 only)."""
    return spec.head_dim_k % type_k.ggml.block_size == 0 and spec.head_dim_v % type_v.ggml.block_size == 0


@dataclass(frozen=True, slots=True)
class Budget:
    """The card: VRAM and the non-model terms. ``overhead_bytes`` None = measured CUDA overhead;
    ``include_compute`` False with overhead 0 and margin 0 is the paper's weights+KV accounting."""

    vram_bytes: int
    overhead_bytes: int | None = None
    margin_bytes: int = DEFAULT_MARGIN_BYTES
    include_compute: bool = True
    # More than one device (plan/devices.py): each one's cap, and the layer split between them;
    # ``vram_bytes`` is then their sum, and overhead and margin count once per device.
    devices: tuple[multi.DeviceBudget, ...] = ()
    tensor_split: tuple[float, ...] = ()
    # System RAM for the host side (``Footprint.host_total``): None = not known (not checked; no
    # experts in RAM, --allow-offload's layers unchecked as before), 0 = GPU only (no layers or experts
    # in RAM; llama.cpp's input embedding and host buffers stay there regardless).
    ram_bytes: int | None = None

    def overhead_for(self, opt: ModelOption, cfg: RunConfig) -> int:
        """The CUDA overhead to count: ``overhead_bytes``, else the measured one for ``opt``'s weights."""
        if self.overhead_bytes is not None:
            return self.overhead_bytes
        return cuda_overhead_bytes(float_weights=opt.quant.upper() in ("F16", "BF16", "F32"), flash_attn=cfg.flash_attn,
                                   moe=opt.spec.is_moe)  # fmt: skip


def bits_class(quant: str) -> int:
    """Weight precision class of a quant name: 3 = 8/16-bit, 2 = 6-bit, 1 = 5-bit, 0 = 4-bit, -1 = below."""
    q = quant.upper()
    if q.startswith(("F16", "BF16", "F32", "Q8")):
        return 3
    if q.startswith("Q6"):
        return 2
    if q.startswith(("Q5", "IQ5")):
        return 1
    if q.startswith(("Q4", "IQ4", "MXFP4")):
        return 0
    return -1


@dataclass(frozen=True)
class ModelOption:
    """One model file to consider: a catalog quant, a local GGUF or a remote GGUF's header."""

    name: str
    quant: str
    spec: ModelSpec
    layout: WeightLayout
    effective_bytes: int
    family: str = ""
    repo: str | None = None
    file: str | None = None
    path: str | None = None
    compute: dict[str, int] = field(default_factory=dict)  # "cuda/ub512/fa1/out" -> bytes (memory.figure_keys)
    n_params: int = 0
    sibling_bytes: dict[str, int] = field(default_factory=dict)  # same model's weight bytes by quant name
    group_bytes: dict[str, int] = field(default_factory=dict)  # bytes per tensor group (tensor_groups), if known
    dominant_type: str = ""  # the tensor type holding most weight bytes ("MXFP4" for gpt-oss), if known
    capacity_params: int = 0  # Qwen3-equivalent parameters from published scores (plan.capacity); 0 = none
    capacity_note: str = ""  # how capacity_params was read (capacity.Capacity.describe)
    capacity_source: str = "published"  # "published" (the catalog's scores) | "profile" (the user's measurements)

    def capacity_ratio(self, policy: Policy) -> float:
        """Qwen3-equivalent parameters / parameters under ``policy.capacity`` ("size" or no scores: 1)."""
        if policy.capacity != "published" or not self.capacity_params or not self.n_params:
            return 1.0
        return self.capacity_params / self.n_params

    def rule_params(self, policy: Policy) -> int:
        """The parameter count the rule compares (knowledge task, ties): the Qwen3-equivalent one under
        ``policy.capacity`` "published" when known, else ``n_params``."""
        if policy.capacity == "published" and self.capacity_params:
            return self.capacity_params
        return self.n_params

    @cached_property
    def weight_bits(self) -> int:
        """Nominal weight precision: 32 (F32), 16 (F16/BF16), 8 (Q8*), 0 = below 8 bits."""
        if self.dominant_type.upper() == "MXFP4":  # gpt-oss: its experts are MXFP4 whatever the file type says
            return 0
        q = self.quant.upper()
        if q.startswith("F32"):
            return 32
        if q.startswith(("F16", "BF16")):
            return 16
        return 8 if q.startswith("Q8") else 0

    @cached_property
    def bits_class(self) -> int:
        """Weight precision class: 3 = 8/16-bit, 2 = 6-bit, 1 = 5-bit, 0 = 4-bit, -1 = below. Choice: a file
        whose most bytes are MXFP4 (gpt-oss's experts, in its BF16 and MXFP4_MOE files alike) is 4-bit."""
        return 0 if self.dominant_type.upper() == "MXFP4" else bits_class(self.quant)

    def compute_figures(self, n_ubatch: int = 512) -> ComputeFigures | None:
        """The measured figures of this model's compute buffer (CUDA, flash attention), if any."""
        return ComputeFigures.from_keys(self.compute, backend="cuda", n_ubatch=n_ubatch)

    def compute_bytes(self, cfg: RunConfig) -> tuple[int, str]:
        """(compute buffer bytes, "catalog" | "estimate") for a config: ``memory.compute_bytes``
        with the measured figures where the catalog has them."""
        figs = self.compute_figures(cfg.n_ubatch) if cfg.flash_attn else None
        return compute_bytes_term(self.spec, cfg, figs), figs.source if figs else "estimate"


@dataclass(frozen=True)
class Plan:
    """A ranked configuration, with its memory, regime and reasons."""

    option: ModelOption
    type_k: KvType
    type_v: KvType
    n_ctx_seq: int  # T: tokens per sample (prompt + generation)
    parallel: int  # G
    n_gpu_layers: int  # -1 = all
    footprint: Footprint
    regime: str
    reasons: tuple[str, ...] = ()
    sort_key: tuple[float, ...] = ()
    offload_slowdown: float = 1.0
    device_footprints: tuple[Footprint, ...] = ()  # one per device of a split (``footprint`` is their sum)
    tensor_split: tuple[float, ...] = ()
    n_cpu_moe: int = 0  # experts of the first N blocks in host memory (llama.cpp --n-cpu-moe N)

    @property
    def n_ctx(self) -> int:
        """llama.cpp's n_ctx: all sequences together (-c of llama-server)."""
        return self.n_ctx_seq * self.parallel

    @property
    def kv_label(self) -> str:
        return self.type_k.value if self.type_k == self.type_v else f"{self.type_k.value}/{self.type_v.value}"

    @property
    def kv_4bit(self) -> bool:
        """K or V below 8 bits (rule 5: a last resort unless calibrated otherwise)."""
        return min(self.type_k.bits, self.type_v.bits) < 8


@dataclass(frozen=True)
class PickResult:
    """pick()'s answer: the ranked plans, the uniform 4-bit baseline, and what was assumed."""

    plans: list[Plan]
    baseline: Plan | None
    policy: Policy
    budget: Budget
    n_considered: int
    enumerated: tuple[Plan, ...] = ()  # every fitting plan, unranked (``pick(plans=...)`` reuses them)
    n_models: int = 0  # models weighed: the distinct model names among the options given to pick
    speed: PickSpeed | None = None  # the plans timed on a named card (edgekv.plan.timing.timed); None without one


def capped_bytes(opt: ModelOption, max_bits: int) -> int:
    """E of ``opt`` with its weight precision counted as at most ``max_bits`` (8 or 16): its own
    bytes at or below that precision, else the bytes of its sibling at that precision (Q8_0 for 8,
    BF16/F16 for 16) when known, else an estimate (Q8_0 is 8.5 bits per weight)."""
    bits = opt.weight_bits
    if bits <= max_bits:
        return opt.effective_bytes
    names = ("Q8_0",) if max_bits == 8 else ("BF16", "F16")
    for name in names:
        if opt.sibling_bytes.get(name):
            return min(opt.sibling_bytes[name], opt.effective_bytes)
    return round(opt.effective_bytes * (8.5 if max_bits == 8 else 16) / bits)


def sizes(opt: ModelOption, policy: Policy) -> tuple[int, int]:
    """(E for the regime, capacity below E1). With ``cap_precision``: E counts F32 as 16-bit (the
    paper's E, params x bits, never goes past 16 bits) and capacity counts anything above 8 bits as
    8-bit (rule 3); without it, both are the file's weight bytes. Both are then scaled by the
    option's ``capacity_ratio`` (its Qwen3-equivalent size over its size, ``plan.capacity``; 1 with
    ``policy.capacity`` "size" or without published scores)."""
    e16, e8 = (capped_bytes(opt, 16), capped_bytes(opt, 8)) if policy.cap_precision else (opt.effective_bytes,) * 2
    ratio = opt.capacity_ratio(policy)
    if ratio == 1.0:
        return e16, e8
    return round(e16 * ratio), round(e8 * ratio)
