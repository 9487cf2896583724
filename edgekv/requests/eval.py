"""``edgekv eval``'s request: its flags, the --plan file's values where no flag is given (the model,
KV, G, --vram, the layers on the GPU and the budget its context leaves), resolved to an EvalConfig."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgekv.llama.sampling import SamplerPlace

if TYPE_CHECKING:
    from edgekv.eval.run import EvalConfig

DEFAULT_BUDGET = "8k"
DEFAULT_SAMPLES = 4
DEFAULT_NGL = -1  # every layer on the GPU


@dataclass(frozen=True, slots=True)
class EvalRequest:
    """The flags of ``edgekv eval``. ``budget``, ``samples`` and ``ngl`` are None where not given:
    the plan file's value then, else the default. Each KV half no flag names is the plan's, else q8_0."""

    model: str | None
    dataset: str
    plan_path: str | None = None
    budget: str | None = None
    reserve: int = 64
    samples: int | None = None
    kv: str | None = None
    type_k: str | None = None
    type_v: str | None = None
    vram: str | None = None
    slots: int | None = None
    sampler: SamplerPlace = SamplerPlace.AUTO
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    seed: int = 0
    force_length: bool = False
    thinking: bool | None = None
    ngl: int | None = None
    threads: int | None = None
    think_markers: str | None = None  # "OPEN,CLOSE"; None: the catalog's, the chat template's, else <think>

    def config(self) -> EvalConfig:
        """The evaluation's settings: flag > plan file > default.

        Raises:
            click.UsageError: neither MODEL nor --plan.
        """
        from edgekv.eval.run import EvalConfig, budget_from_plan
        from edgekv.model.markers import parse_markers
        from edgekv.model.quant import KvType
        from edgekv.requests.flags import kv_flags
        from edgekv.requests.overlay import PlanFlags, overlay
        from edgekv.store.planfile import read_plan
        from edgekv.units import parse_size, parse_tokens

        plan = read_plan(self.plan_path) if self.plan_path else None
        vram_bytes = parse_size(self.vram) if self.vram is not None else None
        budget = parse_tokens(self.budget) if self.budget is not None else None
        type_k, type_v = kv_flags(self.kv, self.type_k, self.type_v)
        markers = parse_markers(self.think_markers) if self.think_markers is not None else None
        flags = PlanFlags(model=self.model, vram_bytes=vram_bytes, type_k=type_k, type_v=type_v,
                          parallel=self.samples, n_gpu_layers=self.ngl)  # fmt: skip
        s = overlay(flags, plan, per_device=False)
        if budget is None and plan is not None and plan.n_ctx and plan.parallel:  # the budget the plan's context leaves
            budget = budget_from_plan(plan.n_ctx // plan.parallel, reserve_tokens=self.reserve)
        if not s.model:
            raise click.UsageError("give MODEL.gguf or --plan plan.json")
        assert not isinstance(s.vram_bytes, list)  # per_device=False: one cap
        return EvalConfig(
            model_path=str(s.model), dataset=self.dataset,
            budget_tokens=budget if budget is not None else parse_tokens(DEFAULT_BUDGET),
            reserve_tokens=self.reserve, samples=s.parallel if s.parallel is not None else DEFAULT_SAMPLES,
            type_k=s.type_k or KvType.Q8_0, type_v=s.type_v or KvType.Q8_0, temperature=self.temperature,
            top_p=self.top_p, top_k=self.top_k, seed=self.seed, force_length=self.force_length,
            thinking=self.thinking, vram_bytes=s.vram_bytes,
            n_gpu_layers=s.n_gpu_layers if s.n_gpu_layers is not None else DEFAULT_NGL, slots=self.slots,
            n_threads=self.threads, sampler=self.sampler, n_cpu_moe=plan.n_cpu_moe if plan is not None else 0,
            think_markers=markers,
        )  # fmt: skip


def default_out(model_path: str, dataset: str) -> Path:
    """Where ``eval`` keeps its results without --out: ``data_dir()/results/MODEL--DATASET.jsonl``
    (MODEL the GGUF's file stem, DATASET the set's name or its file's stem). One file per model and
    dataset: every configuration of them appends there (each line carries its ``config_id``), and a
    rerun of the same settings resumes it, as with --out."""
    import re

    from edgekv.settings import data_dir

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"

    return data_dir() / "results" / f"{slug(Path(model_path).stem)}--{slug(Path(dataset).stem)}.jsonl"
