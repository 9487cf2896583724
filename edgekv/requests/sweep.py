"""``edgekv sweep``'s request: the model files (catalog or --gguf), the cards and the grid, parsed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgekv.llama.sampling import SamplerPlace

if TYPE_CHECKING:
    from edgekv.eval.sweep import EvalBackend, SweepPlan, SweepSettings
    from edgekv.plan.plans import ModelOption


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """The flags of ``edgekv sweep`` (each as given; its defaults are the flags')."""

    vram: str
    dataset: str
    limit: int | None = None
    family: str = "qwen3"
    models: str | None = None
    gguf_paths: str | None = None
    quants: str | None = None
    kv: str = "f16,q8_0,q4_0"
    budgets: str = "2k,4k,8k,16k"
    samples: str = "1,4"
    prompt_tokens: str = "1024"
    reserve: str = "256"
    seed: int = 0
    slots: int | None = None
    sampler: SamplerPlace = SamplerPlace.AUTO
    threads: int | None = None
    out_dir: str | None = None

    def plan(self) -> SweepPlan:
        """Every configuration that fits the cards (``edgekv.eval.sweep.plan_sweep``)."""
        from edgekv.eval.sweep import plan_sweep

        return plan_sweep(self.options(), self.cards(), self.settings())

    @property
    def out(self) -> Path:
        """--out, else ./sweep-DATASET."""
        return Path(self.out_dir or f"sweep-{Path(self.dataset).stem}")

    def options(self) -> list[ModelOption]:
        """The --gguf files, else the catalog's (--family, --models, --quants)."""
        from edgekv.model.quant import WeightQuant
        from edgekv.store.catalog import catalog_options, gguf_option
        from edgekv.units import parse_list

        if self.gguf_paths:
            return [gguf_option(p) for p in parse_list(self.gguf_paths)]
        models = parse_list(self.models) if self.models else None
        quants = [WeightQuant.parse(q).value for q in parse_list(self.quants)] if self.quants else None
        return catalog_options(self.family, models, quants)

    def cards(self) -> list[int]:
        from edgekv.errors import SpecError
        from edgekv.units import parse_list, parse_size

        cards = [parse_size(v) for v in parse_list(self.vram)]
        if not cards:
            raise SpecError("--vram is empty", hint="e.g. --vram 4G,6G,8G")
        return cards

    def settings(self) -> SweepSettings:
        from edgekv.errors import BadArgument
        from edgekv.eval.sweep import SweepSettings
        from edgekv.model.quant import KvType
        from edgekv.units import parse_list, parse_tokens

        budgets = sorted({parse_tokens(b) for b in parse_list(self.budgets)})
        if not budgets or budgets[0] < 1:
            raise BadArgument(f"--budgets {self.budgets!r}: every budget must be a positive token count",
                              hint="e.g. --budgets 2k,8k")  # fmt: skip
        samples = sorted({_count(g) for g in parse_list(self.samples)})
        if not samples or samples[0] < 1:
            raise BadArgument(f"--samples {self.samples!r}: every G must be a count >= 1", hint="e.g. --samples 1,4")
        return SweepSettings(
            dataset=self.dataset, limit=self.limit, budgets=tuple(budgets), samples=tuple(samples),
            kv_types=tuple(KvType.parse(k) for k in parse_list(self.kv)),
            prompt_tokens=parse_tokens(self.prompt_tokens), reserve_tokens=parse_tokens(self.reserve),
            seed=self.seed,
        )  # fmt: skip

    def backend(self, settings: SweepSettings) -> EvalBackend:
        """eval on each configuration, each model file loaded once for all of its configurations."""
        from edgekv.eval.sweep import EvalBackend
        from edgekv.llama.runner import LoadedModel

        return EvalBackend(settings, loader=LoadedModel, slots=self.slots, sampler=self.sampler,
                           n_threads=self.threads)  # fmt: skip


def _count(text: str) -> int:
    from edgekv.errors import BadArgument
    from edgekv.plan.bounds import SEQUENCES

    try:
        count = int(text)
    except ValueError:
        raise BadArgument(f"--samples: {text!r} is not a count", hint="e.g. --samples 1,4") from None
    SEQUENCES.check("--samples", count)
    return count
