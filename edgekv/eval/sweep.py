"""``edgekv sweep``: every configuration that fits a set of cards, evaluated once each, resumably.

Planning reuses pick's fit search (``plan.policy.max_tokens_per_seq``: the largest T for G
samples on a card, in edgekv's full-process accounting). A configuration is a model file x KV
type x budget x G whose prompt + budget + reserve (padded to 256 cells) fits within that T on at
least one card; configurations are deduplicated across cards (each records the cards it fits).

Choices, stated:
* G: per model file, KV type and budget, only the largest G of ``samples`` that fits some card is
  run; the smaller G' come from its maj@k (``frontier``'s docstring says why that is sound).
* Unlike pick, G > 1 is swept below E1 too: whether it pays there is what ``calibrate`` measures.
* ``prompt_tokens`` is a setting (1024 by default: AIME/MATH prompts with Qwen3's chat template are
  200-600 tokens), because the prompt is only known after tokenizing.

Running: configurations are ordered by model file (smallest effective size first), so each file
is loaded once (``Backend.load``) for all its configurations. Each writes
``OUT/results/<key>.jsonl`` through eval's own resume (a rerun skips the problems it holds), and a
configuration is done when its file has eval's summary line; ``OUT/sweep.json`` (the manifest:
settings, cards, every configuration with its status, pick's plan per card) is rewritten
atomically after each one. A killed sweep, run again with the same settings, goes on where it
stopped. The evaluator is a collaborator (``Backend``); the real one imports ``edgekv.eval.run``
only when it runs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

from edgekv.errors import ModelFileNotFound, NoFeasiblePlan, ResultsFileError, SpecError
from edgekv.eval.frontier import Frontier, PickMark, frontier
from edgekv.fsutil import read_json_document, write_atomic
from edgekv.llama.sampling import SamplerPlace
from edgekv.logconfig import get_logger
from edgekv.model.quant import DEFAULT_KV_TYPES, KvType
from edgekv.plan.fit import context_cap, footprint_at
from edgekv.plan.memory import KV_PAD_CELLS, RunConfig, pad
from edgekv.plan.plans import Budget, ModelOption, Policy
from edgekv.plan.policy import fit_terms, max_tokens_per_seq, pick

logger = get_logger(__name__)

DEFAULT_BUDGETS = (2048, 4096, 8192, 16384)
DEFAULT_SAMPLES = (1, 4)
DEFAULT_PROMPT_TOKENS = 1024
DEFAULT_RESERVE_TOKENS = 256  # room after the budget for the forced final-answer cue
MANIFEST = "sweep.json"
SCHEMA = 1


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """What is measured: the dataset and the grid. Two runs into one folder must agree on these."""

    dataset: str
    limit: int | None = None
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    samples: tuple[int, ...] = DEFAULT_SAMPLES
    kv_types: tuple[KvType, ...] = DEFAULT_KV_TYPES
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    reserve_tokens: int = DEFAULT_RESERVE_TOKENS
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budgets"], d["samples"] = list(self.budgets), list(self.samples)
        d["kv_types"] = [k.value for k in self.kv_types]
        return d


@dataclass(frozen=True, slots=True)
class SweepItem:
    """One configuration to evaluate, with the cards it fits and its predicted memory."""

    key: str
    model: str
    quant: str
    model_file: str
    model_path: str | None
    repo: str | None
    effective_bytes: int
    type_k: KvType
    type_v: KvType
    budget_tokens: int
    samples: int
    derived_samples: tuple[int, ...]
    n_ctx_seq: int  # T per sample: prompt + budget + reserve, padded to 256
    cards: tuple[int, ...]
    total_bytes: int  # the whole process on the GPU (edgekv's accounting, margin included)
    paper_bytes: int  # weights + KV

    @property
    def n_ctx(self) -> int:
        return self.n_ctx_seq * self.samples

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type_k"], d["type_v"] = self.type_k.value, self.type_v.value
        d["derived_samples"], d["cards"] = list(self.derived_samples), list(self.cards)
        return d


@dataclass(frozen=True)
class SweepPlan:
    """The ordered configurations, the cards, and pick's plan per card (for the frontier's highlight)."""

    settings: SweepSettings
    cards: tuple[int, ...]
    items: list[SweepItem]
    picks: list[PickMark] = field(default_factory=list)

    def by_file(self) -> Iterator[tuple[str, list[SweepItem]]]:
        """Items grouped by model file, in run order."""
        groups: dict[str, list[SweepItem]] = {}
        for it in self.items:
            groups.setdefault(it.model_file, []).append(it)
        yield from groups.items()


def _file_name(opt: ModelOption) -> str:
    if opt.path:
        return Path(opt.path).name
    return Path(opt.file).name if opt.file else f"{opt.name}-{opt.quant}.gguf"


def item_key(model_file: str, type_k: KvType, type_v: KvType, budget: int, samples: int) -> str:
    """A file-safe name for a configuration: ``Qwen3-4B-Q8_0.q8_0.b8192.g4``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model_file.removesuffix(".gguf"))
    kv = type_k.value if type_k == type_v else f"{type_k.value}-{type_v.value}"
    return f"{stem}.{kv}.b{budget}.g{samples}"


def _fits(opt: ModelOption, k: KvType, g: int, t_need: int, vram: int) -> tuple[int, int] | None:
    """(full-process bytes, paper bytes) of G samples of T tokens if they fit ``vram``, else None."""
    budget = Budget(vram)
    cfg = RunConfig(n_ctx=KV_PAD_CELLS, type_k=k, type_v=k, n_seq=g, flash_attn=True)
    t_max, _fp = max_tokens_per_seq(opt, cfg, budget, cap=context_cap(opt.spec))
    if t_max < t_need:
        return None
    at = replace(cfg, n_ctx=t_need * g)
    fp = footprint_at(opt.spec, at, fit_terms(opt, at, budget))
    return fp.gpu_total, fp.weights_gpu + fp.kv_gpu


def plan_sweep(options: Sequence[ModelOption], cards: Sequence[int], settings: SweepSettings) -> SweepPlan:
    """Every configuration of ``options`` that fits one of ``cards`` (bytes), ordered to load each file once.

    Raises:
        SpecError: an empty grid, or nothing fits any card.
    """
    if not options or not cards or not settings.budgets or not settings.samples or not settings.kv_types:
        raise SpecError("nothing to sweep: give models, cards, budgets, samples and KV types")
    items: list[SweepItem] = []
    for opt in sorted(options, key=lambda o: (o.effective_bytes, _file_name(o))):
        for k in settings.kv_types:
            for b in sorted(settings.budgets):
                item = _item(opt, k, b, sorted(cards), settings)
                if item is not None:
                    items.append(item)
    if not items:
        raise SpecError(
            f"no configuration fits any card (largest {max(cards) / 2**30:.2f} GiB)",
            hint="try larger --vram, smaller --budgets, or smaller models",
        )
    return SweepPlan(settings, tuple(sorted(cards)), items, _picks(options, cards, settings, items))


def _item(opt: ModelOption, k: KvType, b: int, cards: list[int], s: SweepSettings) -> SweepItem | None:
    t_need = pad(s.prompt_tokens + b + s.reserve_tokens, KV_PAD_CELLS)
    if t_need > context_cap(opt.spec):
        return None
    for g in sorted(s.samples, reverse=True):
        fit = {v: m for v in cards if (m := _fits(opt, k, g, t_need, v)) is not None}
        if fit:
            total, paper = next(iter(fit.values()))
            name = _file_name(opt)
            derived = tuple(x for x in sorted(s.samples) if x < g)
            return SweepItem(
                item_key(name, k, k, b, g), opt.name, opt.quant, name, opt.path, opt.repo, opt.effective_bytes,
                k, k, b, g, derived, t_need, tuple(fit), total, paper,
            )  # fmt: skip
    return None


def _picks(
    options: Sequence[ModelOption], cards: Sequence[int], s: SweepSettings, items: list[SweepItem]
) -> list[PickMark]:
    """pick's top plan per card over the same files, matched to the sweep point it would be."""
    out: list[PickMark] = []
    for vram in sorted(cards):
        try:
            best = pick(options, Budget(vram), Policy(kv_types=s.kv_types), top=1).plans[0]
        except NoFeasiblePlan:
            continue
        g = max((x for x in s.samples if x <= best.parallel), default=1)
        fits = [b for b in s.budgets if pad(s.prompt_tokens + b + s.reserve_tokens, KV_PAD_CELLS) <= best.n_ctx_seq]
        name = _file_name(best.option)
        if fits and any(it.model_file == name and it.type_k == best.type_k for it in items):
            mark = PickMark(vram, name, best.option.quant, best.type_k.value, best.type_v.value, max(fits), g)
            out.append(mark)
    return out


# --- running ---------------------------------------------------------------------------------


class Backend(Protocol):
    """The evaluator seam: load a model file once, evaluate configurations with it."""

    def load(self, item: SweepItem) -> AbstractContextManager[Any]: ...

    def evaluate(self, item: SweepItem, *, model: Any, out: Path) -> None: ...


Progress = Callable[[str, int, int, SweepItem], None]  # (event: start|done|skip, index, total, item)


def result_path(out_dir: Path, item: SweepItem) -> Path:
    return out_dir / "results" / f"{item.key}.jsonl"


def is_done(out_dir: Path, item: SweepItem) -> bool:
    from edgekv.eval.results import summary_written

    return summary_written(result_path(out_dir, item))


def manifest_dict(plan: SweepPlan, out_dir: Path) -> dict[str, Any]:
    items = [{**it.as_dict(), "status": "done" if is_done(out_dir, it) else "pending"} for it in plan.items]
    return {
        "schema": SCHEMA, "type": "sweep", "settings": plan.settings.as_dict(), "cards": list(plan.cards),
        "items": items, "picks": [asdict(m) for m in plan.picks],
    }  # fmt: skip


def write_manifest(plan: SweepPlan, out_dir: Path) -> Path:
    """``OUT/sweep.json``, written as ``.incomplete`` then renamed."""
    path = out_dir / MANIFEST
    write_atomic(path, json.dumps(manifest_dict(plan, out_dir), indent=1) + "\n")
    return path


MAX_MANIFEST_BYTES = 64 << 20  # a manifest lists a sweep's configurations: KiB to a few MiB


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    data = read_json_document(path, what="sweep manifest", error=ResultsFileError, max_bytes=MAX_MANIFEST_BYTES)
    if not isinstance(data, dict) or data.get("type") != "sweep":
        what = f"type {data.get('type')!r}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise ResultsFileError(f"{path} is not a sweep manifest ({what}, not an object of type 'sweep')",
                               hint="it is not edgekv's: move it, or use another folder")  # fmt: skip
    _check_manifest(path, data)
    return data


_PICK_TYPES = {f.name: (int if f.type == "int" else str) for f in fields(PickMark)}


def _check_manifest(path: Path, data: dict[str, Any]) -> None:
    """The keys a sweep and frontier read: settings (an object), picks (objects with PickMark's fields)."""
    if not isinstance(data.get("settings", {}), dict):
        raise ResultsFileError(f"{path}: settings = {data['settings']!r:.40} is not an object")
    picks = data.get("picks", [])
    if not isinstance(picks, list):
        raise ResultsFileError(f"{path}: picks = {picks!r:.40} is not a list")
    for i, m in enumerate(picks):
        ok = isinstance(m, dict) and set(m) == set(_PICK_TYPES)
        ok = ok and all(isinstance(m[k], t) and not isinstance(m[k], bool) for k, t in _PICK_TYPES.items())
        if not ok:
            raise ResultsFileError(f"{path}: picks[{i}] = {m!r:.60} is not a pick ({', '.join(_PICK_TYPES)})")


def check_resumable(plan: SweepPlan, out_dir: Path) -> None:
    """A folder holding another sweep (other dataset, limit, prompt, reserve or seed) is refused."""
    old = read_manifest(out_dir)
    if old is None:
        return
    new = plan.settings.as_dict()
    keys = ("dataset", "limit", "prompt_tokens", "reserve_tokens", "seed")
    diff = [k for k in keys if old.get("settings", {}).get(k) != new[k]]
    if diff:
        shown = ", ".join(f"{k} {old['settings'].get(k)!r} -> {new[k]!r}" for k in diff)
        raise SpecError(f"{out_dir} holds another sweep ({shown})", hint="use another --out folder")


def run_sweep(plan: SweepPlan, out_dir: Path, backend: Backend, *, progress: Progress | None = None) -> list[SweepItem]:
    """Evaluate every configuration not done yet, one model load per file; returns those run now."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results").mkdir(exist_ok=True)
    check_resumable(plan, out_dir)
    write_manifest(plan, out_dir)
    ran: list[SweepItem] = []
    total = len(plan.items)
    index = {it.key: i for i, it in enumerate(plan.items, 1)}
    for _file, items in plan.by_file():
        todo = [it for it in items if not is_done(out_dir, it)]
        for it in items:
            if it not in todo and progress:
                progress("skip", index[it.key], total, it)
        if not todo:
            continue
        with backend.load(todo[0]) as model:
            for it in todo:
                if progress:
                    progress("start", index[it.key], total, it)
                backend.evaluate(it, model=model, out=result_path(out_dir, it))
                write_manifest(plan, out_dir)
                ran.append(it)
                if progress:
                    progress("done", index[it.key], total, it)
    return ran


def resolve_models(
    plan: SweepPlan,
    *,
    locate: Callable[[str, str], Path | None],
    fetch: Callable[[str, str], Path] | None = None,
) -> SweepPlan:
    """Give every item a local model path: its own, else ``locate(repo, file)`` (the hub cache), else
    ``fetch(repo, file)`` (``--download``).

    Raises:
        ModelFileNotFound: files neither local nor fetched, all named with the command to fetch them.
    """
    paths: dict[str, str] = {}
    missing: list[str] = []
    for it in plan.items:
        if it.model_path or it.model_file in paths or it.model_file in missing:
            continue
        found = locate(it.repo, it.model_file) if it.repo else None
        if found is None and fetch is not None and it.repo:
            found = fetch(it.repo, it.model_file)
        if found is None:
            missing.append(it.model_file)
        else:
            paths[it.model_file] = str(found)
    if missing:
        reps = {it.model_file: it.repo for it in plan.items}
        cmds = "; ".join(f"edgekv download {reps[m]} --file {m}" for m in missing if reps[m])
        raise ModelFileNotFound(
            f"{len(missing)} model file(s) of the sweep are not on this machine: {', '.join(missing)}",
            hint=f"pass --download, or fetch them first: {cmds}" if cmds else "pass them with --gguf",
        )
    items = [replace(it, model_path=it.model_path or paths[it.model_file]) for it in plan.items]
    return replace(plan, items=items)


def hub_locate(repo: str, file: str) -> Path | None:
    """The file in huggingface_hub's cache, or None (no network)."""
    from edgekv.hub.download import cached_file

    return cached_file(repo, file)


def hub_fetch(repo: str, file: str) -> Path:
    """Download the file (all shards) into huggingface_hub's cache."""
    from edgekv.hub.download import download

    return download(repo, filename=file).paths[0]


@dataclass
class EvalBackend:
    """The real evaluator: ``edgekv.eval.run.evaluate`` on the dataset's problems, imported only here.

    ``loader`` opens a model file once for all its configurations (a ``LoadedModel``); None lets
    ``evaluate`` load it itself for each configuration.
    """

    settings: SweepSettings
    loader: Callable[[str], AbstractContextManager[Any]] | None = None
    problems: Sequence[Any] | None = None
    slots: int | None = None  # sequences decoded together (eval's --slots); None: eval's default
    sampler: SamplerPlace = SamplerPlace.AUTO  # where the sampler chains run (eval's --sampler)
    n_threads: int | None = None  # llama.cpp's CPU threads (eval's --threads); None: all cores

    def load(self, item: SweepItem) -> AbstractContextManager[Any]:
        if self.loader is None or item.model_path is None:
            return nullcontext(None)
        return self.loader(item.model_path)

    def evaluate(self, item: SweepItem, *, model: Any, out: Path) -> None:
        from edgekv.eval.run import EvalConfig, evaluate

        if self.problems is None:
            from edgekv.eval.datasets import load_problems

            self.problems = load_problems(
                self.settings.dataset, limit=self.settings.limit, seed=self.settings.seed, field_flags=False
            )
        if item.model_path is None:
            raise ModelFileNotFound(f"{item.model} {item.quant} is not on this machine", hint="pass --download")
        config = EvalConfig(
            model_path=item.model_path, type_k=item.type_k, type_v=item.type_v, budget_tokens=item.budget_tokens,
            reserve_tokens=self.settings.reserve_tokens, samples=item.samples, seed=self.settings.seed,
            dataset=self.settings.dataset, slots=self.slots, sampler=self.sampler,
            n_threads=self.n_threads,
        )  # fmt: skip
        evaluate(config, self.problems, out=out, model=model)


def load_frontier(paths: Sequence[str | os.PathLike[str]]) -> Frontier:
    """The frontier of results files or sweep folders, with pick's plans from any sweep manifest there."""
    from edgekv.eval.scores import read_results

    picks: list[PickMark] = []
    for p in map(Path, paths):
        manifest = read_manifest(p) if p.is_dir() else None
        for m in (manifest or {}).get("picks", []):
            picks.append(PickMark(**m))
    return frontier(read_results(paths), picks=picks)
