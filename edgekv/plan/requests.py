"""What ``pick()`` is asked: :class:`PickRequest`, the one home of pick's defaults (the paper's rule).

``edgekv pick``'s flags become one (``edgekv.requests.pick``: a flag, else the calibration profile's
value, else the default here); a library caller builds one directly. Pure, stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekv.model.quant import DEFAULT_KV_TYPES, KvType
from edgekv.model.spec import Task
from edgekv.plan.memory import DEFAULT_MARGIN_BYTES
from edgekv.plan.plans import E1_BYTES, E2_BYTES, MAX_PARALLEL, SATURATION_TOKENS, SIMILAR, TOKEN_FLOOR, Policy

# pick's catalog by default: every family, ranked across families by Qwen3-equivalent capacity (plan.capacity);
# --family qwen3 is the family the paper measured alone, as before issue 25
DEFAULT_FAMILY = "all"
DEFAULT_TOP = 5


@dataclass(frozen=True, slots=True)
class PickRequest:
    """A card (one cap, or one per device of a layer split), the rule's constants and how many plans.

    ``vram_bytes`` as several caps plans across devices with llama.cpp's layer split
    (``tensor_split``: each device's share, default proportional to the caps; ``device_names`` for
    messages, default "GPU 0", "GPU 1", ...). ``accounting="paper"`` counts weights + KV only.
    ``cap_precision`` (rule 3): below E1, weights above 8 bits count as their 8-bit size; F32 as
    16-bit everywhere. ``flat_precision``, ``q4_kv_ok`` and ``parallel_min_bytes`` come from a
    calibrated profile (``edgekv calibrate``). ``capacity`` "published" ranks a model with published
    reasoning scores by its Qwen3-equivalent size (``edgekv.plan.capacity``), "size" by its own.
    ``max_time_s`` (with a card's speed) keeps only the plans that answer in time.
    """

    vram_bytes: int | tuple[int, ...]
    tensor_split: tuple[float, ...] | None = None
    device_names: tuple[str, ...] | None = None
    task: Task = Task.MATH
    kv_types: tuple[KvType, ...] = DEFAULT_KV_TYPES
    mixed_kv: bool = False
    min_ctx_tokens: int = 0
    allow_offload: bool = False
    overhead_bytes: int | None = None  # None: the measured CUDA context + workspace
    margin_bytes: int = DEFAULT_MARGIN_BYTES
    accounting: str = "runtime"  # or "paper"
    e1_bytes: int = E1_BYTES
    e2_bytes: int = E2_BYTES
    token_floor_tokens: int = TOKEN_FLOOR
    saturation_tokens: int = SATURATION_TOKENS
    max_parallel: int = MAX_PARALLEL
    similar: float = SIMILAR
    cap_precision: bool = True
    capacity: str = "published"  # plan.capacity: the Qwen3-equivalent size from published scores, or "size"
    flat_precision: bool = False
    q4_kv_ok: bool = False
    parallel_min_bytes: int = 0
    top: int = DEFAULT_TOP
    max_time_s: float | None = None
    ram_bytes: int | None = None  # system RAM for the host side; None = not known (no experts in RAM), 0 = GPU only

    @property
    def caps(self) -> list[int]:
        """One cap per device."""
        return [self.vram_bytes] if isinstance(self.vram_bytes, int) else list(self.vram_bytes)

    def policy(self) -> Policy:
        """The rule's knobs."""
        return Policy(
            task=self.task, e1_bytes=self.e1_bytes, e2_bytes=self.e2_bytes, token_floor=self.token_floor_tokens,
            saturation_tokens=self.saturation_tokens, max_parallel=self.max_parallel, similar=self.similar,
            kv_types=tuple(self.kv_types), mixed_kv=self.mixed_kv, allow_offload=self.allow_offload,
            min_ctx=self.min_ctx_tokens, cap_precision=self.cap_precision, flat_precision=self.flat_precision,
            q4_kv_ok=self.q4_kv_ok, parallel_min_bytes=self.parallel_min_bytes,
            capacity=self.capacity,
        )  # fmt: skip
