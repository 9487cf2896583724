"""The plan file: ``edgekv pick --json`` writes it, ``edgekv run/eval --plan`` read it back.

One schema, versioned (``"schema": 1``); files written before the version key existed are read
as schema 1. The reader checks every field it uses for type and range and names the file, the
key and the value it refuses (``PlanFileError``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.errors import PlanFileError
from edgekv.model.quant import KvType
from edgekv.plan.llama_settings import llama_args
from edgekv.plan.placement import placement
from edgekv.plan.plans import Budget, PickResult, Plan

if TYPE_CHECKING:
    from edgekv.plan.speed import PlanTime

SCHEMA = 1
MAX_PLAN_FILE_BYTES = 16 << 20  # a plan file is a few KB; refuse to parse something huge
# huggingface_hub's repo id rule: namespace/name, letters, digits, '-', '_', '.', no '--' or '..'
REPO_ID = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def _device_memory(plan: Plan, budget: Budget | None) -> list[dict[str, Any]]:
    if not plan.device_footprints:
        return [plan.footprint.as_dict()]
    devs = budget.devices if budget is not None and budget.devices else ()
    out = []
    for i, fp in enumerate(plan.device_footprints):
        d: dict[str, Any] = {"device": devs[i].name if devs else f"GPU {i}"}
        if devs:
            d["vram_bytes"] = devs[i].vram_bytes
        out.append(d | fp.as_dict())
    return out


def plan_dict(plan: Plan, budget: Budget | None = None) -> dict[str, Any]:
    opt = plan.option
    fp = plan.footprint
    return {
        "model": opt.name,
        "quant": opt.quant,
        "repo": opt.repo,
        "file": opt.file,
        "path": opt.path,
        "type_k": plan.type_k.value,
        "type_v": plan.type_v.value,
        "n_ctx": plan.n_ctx,
        "n_ctx_per_sample": plan.n_ctx_seq,
        "parallel": plan.parallel,
        "n_gpu_layers": plan.n_gpu_layers,
        "n_cpu_moe": plan.n_cpu_moe,
        "placement": [r.as_dict() for r in placement(plan)],
        "capacity_params": opt.capacity_params or None,
        "capacity": opt.capacity_note or None,
        "effective_bytes": opt.effective_bytes,
        "n_params": opt.n_params,
        "memory": fp.as_dict(),
        "memory_per_device": _device_memory(plan, budget),
        "tensor_split": list(plan.tensor_split) or None,
        "regime": plan.regime,
        "reasons": list(plan.reasons),
        "decode_slowdown": round(plan.offload_slowdown, 2),
        "llama_args": llama_args(plan),
    }


def pick_dict(result: PickResult, *, card: Any = None) -> dict[str, Any]:
    """``edgekv pick --json``. Each plan has ``decode_tps`` and ``time_to_answer_s`` (null without
    a card); ``card`` and ``speed`` say which card and constants (``card``: a plan.card.Card)."""
    pol = result.policy
    b = result.budget
    sp = result.speed
    times = sp.plans if sp is not None else (None,) * len(result.plans)
    card = card if card is not None else (sp.card_speed.card if sp is not None else None)
    return {
        "schema": SCHEMA,
        "vram_bytes": b.vram_bytes,
        "devices": [{"device": d.name, "vram_bytes": d.vram_bytes} for d in b.devices] or None,
        "tensor_split": list(b.tensor_split) or None,
        "task": pol.task.value,
        "accounting": {
            "overhead_bytes": b.overhead_bytes,
            "margin_bytes": b.margin_bytes,
            "compute_counted": b.include_compute,
        },
        "policy": {
            "e1_bytes": pol.e1_bytes,
            "e2_bytes": pol.e2_bytes,
            "token_floor": pol.token_floor,
            "saturation_tokens": pol.saturation_tokens,
            "max_parallel": pol.max_parallel,
            "similar": pol.similar,
            "kv_types": [k.value for k in pol.kv_types],
            "eviction": pol.eviction,
            "cap_precision": pol.cap_precision,
            "capacity": pol.capacity,
        },  # fmt: skip
        "considered": result.n_considered,
        "models_weighed": result.n_models,
        "card": _card_dict(card),
        "speed": _speed_dict(result),
        "plans": [{**plan_dict(p, b), **_time_dict(t)} for p, t in zip(result.plans, times, strict=True)],
        "baseline_uniform_4bit": (
            {**plan_dict(result.baseline, b), **_time_dict(sp.baseline if sp is not None else None)}
            if result.baseline
            else None
        ),
    }


def _card_dict(card: Any) -> dict[str, Any] | None:
    if card is None:
        return None
    return {
        "name": card.name, "vram_bytes": card.vram_bytes, "bandwidth_bytes_per_s": card.bandwidth_bytes_per_s,
        "fp16_flops_per_s": card.fp16_flops_per_s, "source": card.source, "note": card.note,
    }  # fmt: skip


def _speed_dict(result: PickResult) -> dict[str, Any] | None:
    sp = result.speed
    if sp is None:
        return None
    m = sp.card_speed.model
    return {
        "prompt_tokens": sp.card_speed.prompt_tokens, "max_time_s": sp.max_time_s,
        "model": asdict(m), "ram_bandwidth_bytes_per_s": sp.card_speed.ram_bandwidth_bytes_per_s,
        "user_samples": sp.card_speed.n_user_samples, "source": sp.card_speed.source,
    }  # fmt: skip


def _time_dict(t: PlanTime | None) -> dict[str, Any]:
    """decode_tps (per sample, averaged over the answer) and time_to_answer_s; nulls without a card."""
    if t is None:
        return {"decode_tps": None, "time_to_answer_s": None}
    return t.as_dict()


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The run settings of a plan file's first plan."""

    source: Path
    model_path: str | None
    repo: str | None
    file: str | None
    type_k: KvType | None
    type_v: KvType | None
    n_ctx: int | None  # all samples together (llama.cpp's -c)
    parallel: int | None
    n_gpu_layers: int | None
    vram_bytes: int | None  # the sum over the devices of a split
    vram_per_device: tuple[int, ...] = ()  # the caps of a split's devices, in order
    tensor_split: tuple[float, ...] = ()
    n_cpu_moe: int = 0  # experts of the first N blocks in RAM (pick's MoE plans)

    @property
    def base(self) -> Path:
        return self.source.resolve().parent

    def local_model(self) -> Path | None:
        """The plan's GGUF on this machine: as written, or next to the plan file."""
        for cand in (self.model_path, self.file):
            if cand:
                for p in (Path(cand), self.base / cand):
                    if p.is_file():
                        return p
        return None


def _int(path: Path, key: str, value: Any, *, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PlanFileError(f"{path}: {key} = {value!r} is not an integer in {lo}..{hi}", hint=_REWRITE)
    return value


def _str(path: Path, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 4096 or "\0" in value:
        raise PlanFileError(f"{path}: {key} = {value!r} is not a file name or path", hint=_REWRITE)
    return value


def _kv(path: Path, key: str, value: Any) -> KvType | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PlanFileError(f"{path}: {key} = {value!r} is not a KV cache type", hint=_REWRITE)
    try:
        return KvType.parse(value)
    except ValueError:
        known = ", ".join(k.value for k in KvType)
        raise PlanFileError(f"{path}: {key} = {value!r} is not a KV cache type (one of {known})") from None


_REWRITE = "write it again with edgekv pick --vram 8G --json > plan.json"


def read_plan(path: str | os.PathLike[str]) -> PlanSettings:
    """The first plan of a plan file, checked.

    Raises:
        PlanFileError: unreadable, not JSON, another schema, no plans, or a field of the wrong
            type or range (the message names the key and the value).
    """
    p = Path(path)
    try:
        if p.stat().st_size > MAX_PLAN_FILE_BYTES:
            raise PlanFileError(f"{p} is {p.stat().st_size} bytes, too large for a plan file", hint=_REWRITE)
        data = json.loads(p.read_text(encoding="utf-8"))
    except PlanFileError:
        raise
    except IsADirectoryError:
        raise PlanFileError(f"{p} is a directory, not a plan file", hint=_REWRITE) from None
    except FileNotFoundError:
        raise PlanFileError(f"no plan file {p}", hint=_REWRITE) from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PlanFileError(f"cannot read plan {p}: {e}", hint=_REWRITE) from None
    if not isinstance(data, dict):
        raise PlanFileError(f"{p} is not a plan file (a JSON object with plans)", hint=_REWRITE)
    schema = data.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise PlanFileError(f"{p}: schema {schema!r} is not {SCHEMA}, the one this edgekv reads", hint=_REWRITE)
    plans = data.get("plans")
    if not isinstance(plans, list) or not plans or not isinstance(plans[0], dict):
        raise PlanFileError(f"{p} has no plans", hint=_REWRITE)
    first: dict[str, Any] = plans[0]
    args_value = first.get("llama_args")
    args: dict[str, Any] = args_value if isinstance(args_value, dict) else {}
    py_value = args.get("python")
    py: dict[str, Any] = py_value if isinstance(py_value, dict) else {}
    repo = _str(p, "repo", first.get("repo"))
    if repo is not None and not REPO_ID.match(repo):
        raise PlanFileError(f"{p}: repo = {repo!r} is not a hub repo id (owner/name)", hint=_REWRITE)
    return PlanSettings(
        source=p,
        model_path=_str(p, "path", first.get("path")) or _str(p, "llama_args.python.model_path", py.get("model_path")),
        repo=repo,
        file=_str(p, "file", first.get("file")),
        type_k=_kv(p, "type_k", first.get("type_k")),
        type_v=_kv(p, "type_v", first.get("type_v")),
        n_ctx=_int(p, "n_ctx", first.get("n_ctx"), lo=1, hi=1 << 24),
        parallel=_int(p, "parallel", first.get("parallel"), lo=1, hi=256),
        n_gpu_layers=_int(p, "n_gpu_layers", first.get("n_gpu_layers"), lo=-1, hi=100_000),
        vram_bytes=_int(p, "vram_bytes", data.get("vram_bytes"), lo=1, hi=1 << 50),
        vram_per_device=_devices(p, data.get("devices")),
        tensor_split=_split(p, first.get("tensor_split")),
        n_cpu_moe=_int(p, "n_cpu_moe", first.get("n_cpu_moe"), lo=0, hi=100_000) or 0,
    )


def _devices(path: Path, value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise PlanFileError(f"{path}: devices = {value!r} is not a list of devices", hint=_REWRITE)
    caps = [_int(path, f"devices[{i}].vram_bytes", d.get("vram_bytes"), lo=1, hi=1 << 50) for i, d in enumerate(value)]
    if any(c is None for c in caps):
        raise PlanFileError(f"{path}: a device has no vram_bytes", hint=_REWRITE)
    return tuple(c for c in caps if c is not None)


def _split(path: Path, value: Any) -> tuple[float, ...]:
    if value is None:
        return ()
    ok = isinstance(value, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
    if not ok or not value or any(x < 0 for x in value) or sum(value) <= 0:
        raise PlanFileError(f"{path}: tensor_split = {value!r} is not a list of shares >= 0", hint=_REWRITE)
    return tuple(float(x) for x in value)
