"""``evaluate``: the reasoning accuracy of one configuration, measured the paper's way on llama.cpp.

Problems become chat-template prompts (math: Qwen's instruction "Please reason step by step, and put
your final answer within \\boxed{}."; choice: the options and a letter in the box), G samples each
run through ``edgekv.llama.batch.Engine`` under budget forcing, answers are extracted
(``answers``), grouped by equivalence for majority votes (``equivalence``) and summarised
(``metrics``). Each problem's line is appended to ``out`` as soon as its samples are done
(``results``); a rerun with the same settings skips the problems already there.

Thinking markers: the model's own pair (``model.markers``): ``--think-markers`` (``think_markers``),
else its catalog entry's (Magistral 1.1's ``[THINK]``/``[/THINK]``, EXAONE Deep's
``<thought>``/``</thought>``), else a known pair its chat template names, else ``<think>``/``</think>``.
A model thinks when its chat template names the markers and, unless the catalog or
``--think-markers`` stated the pair, both are single tokens (``<think>``/``</think>`` in Qwen3 and
DeepSeek-R1-Distill); ``--thinking`` overrides. Where the close marker is one token an early end of
thinking is seen (``force_length``); a close marker of several tokens is injected but not watched for.

Budget forcing, the exact injected text: at the budget T a thinking model gets the close marker and
the cue (:data:`THINKING_CUE` for ``</think>``: ``"\\n</think>"`` + the cue), a model that closed its
thinking already or has none gets :data:`FINAL_ANSWER_CUE` (``"\\n\\n**Final Answer**\\n\\boxed{"``,
the paper's cue), and the answer decodes within ``reserve_tokens`` (stopping when the box closes).
With ``force_length`` an early end of thinking (or end of generation) is replaced by :data:`WAIT`
("Wait", as the paper and s1 do) until T.

Answers are read after the last close marker when the text has one (what the model answered once
it stopped thinking), else, or when nothing is found there, from the whole text (``score``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from edgekv.errors import DoesNotFit
from edgekv.eval.answers import Kind, extract_answer
from edgekv.eval.datasets import Problem
from edgekv.eval.equivalence import is_equivalent
from edgekv.eval.metrics import EvalSummary, ProblemRecord, summarize
from edgekv.eval.results import SCHEMA, append_line, config_id, open_for_append, read_results, writer_lock
from edgekv.llama import session
from edgekv.llama.batch import Engine
from edgekv.llama.build import device_is_gpu
from edgekv.llama.generation import EngineStats, Finished, Forcing, Request
from edgekv.llama.records import Measured
from edgekv.llama.runner import LoadedModel
from edgekv.llama.sampling import SamplerPlace, Sampling
from edgekv.llama.vocab import Vocab
from edgekv.logconfig import get_logger
from edgekv.model.gguf_reader import read_spec
from edgekv.model.markers import DEFAULT_MARKERS, ThinkMarkers, answer_part
from edgekv.model.quant import KvType
from edgekv.plan import preflight
from edgekv.plan.memory import KV_PAD_CELLS, Footprint, RunConfig, pad

log = get_logger(__name__)

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = (
    "Please reason step by step, and put the letter of the correct option (A, B, C or D) within \\boxed{}."
)
FINAL_ANSWER_CUE = "\n\n**Final Answer**\n\\boxed{"  # the paper's cue: "**Final Answer**" then "\boxed{"
END_THINK = "</think>"
THINKING_CUE = "\n" + END_THINK + FINAL_ANSWER_CUE
WAIT = "Wait"  # s1's ignore_str and the paper's replacement for an early end of thinking
DEFAULT_MAX_SLOTS = 16  # auto slots: at most this many sequences in one context


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """The settings of one evaluation (the CLI's options, typed)."""

    model_path: str
    dataset: str = "synth"
    budget_tokens: int = 8192
    reserve_tokens: int = 64
    samples: int = 4
    type_k: KvType = KvType.Q8_0
    type_v: KvType = KvType.Q8_0
    temperature: float = 0.6  # <= 0: greedy
    top_p: float = 0.95
    top_k: int = 20
    seed: int = 0
    force_length: bool = False
    thinking: bool | None = None  # None: detect from the vocabulary and chat template
    vram_bytes: int | None = None
    n_gpu_layers: int = -1
    slots: int | None = None  # sequences decoded together; None: as many as fit, up to DEFAULT_MAX_SLOTS
    n_threads: int | None = None
    margin_bytes: int = 0
    sampler: SamplerPlace = SamplerPlace.AUTO  # where the sampler chains run
    n_cpu_moe: int = 0  # a MoE's experts of the first N blocks in RAM (the plan file's; llama.cpp --n-cpu-moe)
    think_markers: ThinkMarkers | None = None  # None: the catalog's, the chat template's, else <think>


@dataclass(frozen=True, slots=True)
class EvalProgress:
    """Where a run stands, for a progress bar: problems done (of total), accuracy so far and speed."""

    done: int
    total: int
    pass_at_1: float
    maj_at_g: float
    decode_tps: float
    eta_seconds: float | None


@dataclass
class EvalResult:
    """A finished evaluation: the problem lines, the metrics, memory predicted and measured."""

    config: dict[str, Any]
    config_id: str
    problems: list[dict[str, Any]]
    summary: EvalSummary
    metrics: dict[str, Any]
    predicted: Footprint | None  # this run's context (``slots`` sequences); None when nothing ran
    measured: Measured | None
    stats: EngineStats = field(default_factory=EngineStats)
    slots: int = 0
    n_resumed: int = 0
    out: Path | None = None


Progress = Callable[[EvalProgress], None]


def is_thinking_model(vocab: Vocab, markers: ThinkMarkers = DEFAULT_MARKERS) -> bool:
    """The chat template names the markers and, unless the catalog or --think-markers stated the pair,
    both markers are single tokens (``<think>``/``</think>`` in Qwen3 and the R1 distills)."""
    template = vocab.chat_template() or ""
    if markers.open not in template and markers.close not in template:
        return False
    if markers.source not in ("default", "chat template"):
        return True
    return vocab.token_id(markers.open) is not None and vocab.token_id(markers.close) is not None


def resolve_markers(config: EvalConfig, spec: Any, vocab: Vocab) -> ThinkMarkers:
    """This evaluation's thinking markers (the module docstring gives the order)."""
    from edgekv.store.catalog import resolve_markers as resolve

    return resolve(config.think_markers, Path(config.model_path).name, spec, vocab.chat_template())


def user_message(problem: Problem) -> str:
    """The question with the instruction (and lettered options for a choice problem)."""
    if problem.kind is Kind.CHOICE:
        options = "\n".join(f"{letter}) {text}" for letter, text in zip("ABCD", problem.choices, strict=False))
        return f"{problem.question}\n\n{options}\n\n{CHOICE_INSTRUCTION}"
    return f"{problem.question}\n{MATH_INSTRUCTION}"


def thinking_cue(markers: ThinkMarkers) -> str:
    """What a thinking model gets at the budget: a new line, its close marker, the final-answer cue."""
    return "\n" + markers.close + FINAL_ANSWER_CUE


def forcing_for(
    vocab: Vocab, config: EvalConfig, *, thinking: bool, markers: ThinkMarkers = DEFAULT_MARKERS
) -> Forcing:
    """The budget-forcing tokens for this model (the module docstring gives the text)."""

    def ids(text: str) -> tuple[int, ...]:
        return tuple(vocab.tokenize(text, add_special=False, parse_special=True))

    end = vocab.token_id(markers.close) if thinking else None
    return Forcing(
        budget_tokens=config.budget_tokens,
        reserve_tokens=config.reserve_tokens,
        cue_tokens=ids(thinking_cue(markers) if thinking else FINAL_ANSWER_CUE),
        answer_cue_tokens=ids(FINAL_ANSWER_CUE),
        end_think_token=end,
        wait_tokens=ids(WAIT) if config.force_length else (),
    )


def sample_seed(seed: int, problem_id: str, sample: int) -> int:
    """The sampler seed of one sample: fixed by the run seed (--seed), the problem's id and the sample's
    index, never by the problem's position or the batching, so a problem gets the same seeds in a
    reordered or filtered dataset, under --limit, and when a rerun resumes (results resume by id).
    Chosen over the position because ids are what results are kept by (a file without ids numbers its
    rows: there the row is the id).

    ``sha256("{seed}:{problem id}:{sample}")``'s first 8 bytes modulo 2**32 - 1: a stable hash (not
    Python's ``hash()``, which changes with each process), 0 .. 2**32 - 2, never 0xFFFFFFFF, which
    llama.cpp's sampler reads as "a random seed" (LLAMA_DEFAULT_SEED). The seed and the index are
    numbers, so the text names one (seed, id, index) whatever colons the id holds.
    """
    digest = hashlib.sha256(f"{seed}:{problem_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 0xFFFFFFFF


def config_dict(
    config: EvalConfig, spec: Any, *, thinking: bool, n_ctx: int, memory: dict[str, int],
    markers: ThinkMarkers = DEFAULT_MARKERS,
) -> dict[str, Any]:  # fmt: skip
    """The schema-1 ``config`` object of the results file; ``think_markers`` only for a pair other than
    <think> (so the configuration ids of earlier files stay what they were)."""
    return {
        "model": Path(config.model_path).name, "model_path": str(config.model_path),
        "quant": spec.file_type, "effective_bytes": spec.weights_bytes, "n_params": spec.n_params,
        "type_k": config.type_k.value, "type_v": config.type_v.value,
        "budget_tokens": config.budget_tokens, "reserve_tokens": config.reserve_tokens, "samples": config.samples,
        "temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k, "seed": config.seed,
        "force_length": config.force_length, "thinking": thinking, "dataset": config.dataset,
        "n_ctx": n_ctx, "memory": memory, **({"n_cpu_moe": config.n_cpu_moe} if config.n_cpu_moe else {}),
        **({} if markers.is_default else {"think_markers": [markers.open, markers.close]}),
    }  # fmt: skip


def memory_dict(fp: Footprint) -> dict[str, int]:
    """The prediction as the schema records it; ``paper_total`` is weights + KV, the paper's count."""
    return {
        "weights": fp.weights_gpu, "kv": fp.kv_gpu, "compute": fp.compute, "overhead": fp.overhead,
        "total": fp.gpu_total - fp.margin, "paper_total": fp.weights_gpu + fp.kv_gpu,
    }  # fmt: skip


def metrics_dict(summary: EvalSummary, *, decode_tps: float) -> dict[str, Any]:
    def est(e: Any) -> dict[str, float]:
        return {"value": e.value, "low": e.low, "high": e.high}

    return {
        "n_problems": summary.n_problems, "n_samples": summary.n_samples, "pass_at_1": est(summary.pass_at_1),
        "maj_at_k": [est(e) for e in summary.maj_at_k], "pass_at_k": [est(e) for e in summary.pass_at_k],
        "mean_tokens": summary.mean_tokens, "cut_fraction": summary.cut_fraction, "decode_tps": decode_tps,
    }  # fmt: skip


def record_of(row: dict[str, Any], *, kind: Kind) -> ProblemRecord:
    """A metrics record from a problem line (votes regrouped by equivalence)."""
    return ProblemRecord.from_samples(
        row["problem_id"], answers=row["answers"], correct=row["correct"], n_tokens=row["n_tokens"],
        cut=row["cut"], equivalent=partial(_same, kind=kind),
    )  # fmt: skip


def _same(a: str, b: str, *, kind: Kind) -> bool:
    return is_equivalent(a, b, kind=kind)


def final_answer(text: str, kind: Kind, markers: ThinkMarkers = DEFAULT_MARKERS) -> str | None:
    """The answer after the last close marker, if the text has one and an answer is found there; else
    the answer in the whole text."""
    tail = answer_part(text, markers)
    found = extract_answer(tail, kind=kind) if tail is not None else None
    return found if found is not None else extract_answer(text, kind=kind)


def score(
    problem: Problem, texts: Sequence[str], markers: ThinkMarkers = DEFAULT_MARKERS
) -> tuple[list[str | None], list[bool]]:
    """Each sample's extracted answer (``final_answer``) and whether it is the reference answer."""
    answers = [final_answer(t, problem.kind, markers) for t in texts]
    correct = [a is not None and is_equivalent(a, problem.answer, kind=problem.kind) for a in answers]
    return answers, correct


def majority_answer(rec: ProblemRecord) -> str | None:
    """The answer of the largest vote group (ties to the earliest sample), or None if none answered."""
    labels = [x for x in rec.vote_group if x is not None]
    if not labels:
        return None
    best = min(set(labels), key=lambda x: (-labels.count(x), x))
    return rec.answers[rec.vote_group.index(best)]


def problem_row(
    problem: Problem, finished: Finished, *, config_id: str, config: dict[str, Any],
    markers: ThinkMarkers = DEFAULT_MARKERS,
) -> tuple[dict[str, Any], ProblemRecord]:  # fmt: skip
    """Score one problem's samples: its schema-1 line and its metrics record."""
    samples = finished.samples
    answers, correct = score(problem, [s.text for s in samples], markers)
    rec = ProblemRecord.from_samples(
        problem.id, answers=answers, correct=correct, n_tokens=[s.n_sampled for s in samples],
        cut=[s.cut for s in samples], equivalent=partial(_same, kind=problem.kind),
    )  # fmt: skip
    row = {
        "schema": SCHEMA, "type": "problem", "config_id": config_id, "config": config,
        "problem_id": problem.id, "gold": problem.answer, "answers": answers, "correct": correct,
        "majority": majority_answer(rec), "maj_correct": [rec.majority_correct(k) for k in range(1, len(samples) + 1)],
        "n_tokens": list(rec.n_tokens), "cut": list(rec.cut), "seconds": round(finished.seconds, 3),
        "finish": [s.finish for s in samples],
    }  # fmt: skip
    return row, rec


def _choose_slots(config: EvalConfig, spec: Any, n_ctx_seq: int, n_todo: int) -> session.Prepared:
    """The pre-flight: the most slots (each prompt + T + reserve) that fit, or DoesNotFit at one slot."""
    top = config.slots or max(1, min(DEFAULT_MAX_SLOTS, n_todo * config.samples))
    tried: DoesNotFit | None = None
    s = top
    while s >= 1:
        cfg = RunConfig(
            n_ctx=s * n_ctx_seq, type_k=config.type_k, type_v=config.type_v, n_seq=s,
            n_gpu_layers=config.n_gpu_layers, flash_attn=True, device_sampling=config.sampler.on_device,
            n_cpu_moe=config.n_cpu_moe,
        )  # fmt: skip
        try:
            return session.prepare(
                config.model_path, cfg, vram_bytes=config.vram_bytes, margin_bytes=config.margin_bytes, spec=spec
            )
        except DoesNotFit as e:
            tried = tried or e
            if config.slots:  # asked for exactly this many
                break
        s = s // 2 if s > config.samples else s - 1
    assert tried is not None
    # the pre-flight's advice is run's (--ctx, --parallel); eval and sweep size the context from the budget
    raise DoesNotFit(tried.message, need_bytes=tried.need_bytes, have_bytes=tried.have_bytes,
                     hint="try a smaller budget, fewer --slots, --kv q4_0 or a smaller quant")  # fmt: skip


def evaluate(
    config: EvalConfig,
    problems: Sequence[Problem],
    *,
    out: Path | None = None,
    progress: Progress | None = None,
    model: LoadedModel | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate ``problems`` under ``config``; append to ``out`` (resuming it) if given.

    ``model`` is a LoadedModel of ``config.model_path`` to reuse (a sweep opens each file once).
    ``on_start(n_resumed, n_problems)`` is called once ``out`` was read and the pre-flight accepted the
    configuration, before anything is generated.

    Raises:
        DoesNotFit: not even one sample of prompt + budget + reserve fits the memory budget.
        KvConfigError: the K/V types cannot run on this build.
        ResultsFileError: ``out`` is written by another run now (``results.writer_lock``), or is not an
            eval results file.
    """
    with writer_lock(out) if out is not None else nullcontext():
        spec = read_spec(config.model_path)
        if model is not None:
            return _evaluate(config, problems, spec, model, lambda: model, out=out, progress=progress,
                             on_start=on_start)  # fmt: skip
        loaded: list[LoadedModel] = []

        def open_model() -> LoadedModel:  # only once the pre-flight accepted the configuration
            loaded.append(LoadedModel(config.model_path, n_gpu_layers=config.n_gpu_layers, n_cpu_moe=config.n_cpu_moe))
            return loaded[-1]

        with LoadedModel(config.model_path, vocab_only=True) as vocab:
            try:
                return _evaluate(config, problems, spec, vocab, open_model, out=out, progress=progress,
                                 on_start=on_start)  # fmt: skip
            finally:
                for m in loaded:
                    m.close()


def _evaluate(
    config: EvalConfig, problems: Sequence[Problem], spec: Any, model: Vocab, open_model: Callable[[], LoadedModel],
    *, out: Path | None, progress: Progress | None, on_start: Callable[[int, int], None] | None = None,
) -> EvalResult:  # fmt: skip
    markers = resolve_markers(config, spec, model)
    thinking = is_thinking_model(model, markers) if config.thinking is None else config.thinking
    forcing = forcing_for(model, config, thinking=thinking, markers=markers)
    log.info("thinking %s; markers %s", "on" if thinking else "off", markers.describe())
    prompts = [tuple(model.tokenize(model.apply_chat_template([{"role": "user", "content": user_message(p)}])))
               for p in problems]  # fmt: skip
    injections = max(len(forcing.cue_tokens), len(forcing.wait_tokens), 1)
    n_ctx_seq = pad(max(map(len, prompts), default=1) + config.budget_tokens + config.reserve_tokens + injections + 1,
                    KV_PAD_CELLS)  # fmt: skip
    g = config.samples
    gpu = device_is_gpu(RunConfig(n_ctx=n_ctx_seq, n_gpu_layers=config.n_gpu_layers))
    paper_cfg = RunConfig(n_ctx=g * n_ctx_seq, type_k=config.type_k, type_v=config.type_v, n_seq=g,
                          n_gpu_layers=config.n_gpu_layers, n_cpu_moe=config.n_cpu_moe)  # fmt: skip
    memory = memory_dict(preflight.predict(spec, paper_cfg, gpu=gpu))
    cfg_dict = config_dict(config, spec, thinking=thinking, n_ctx=n_ctx_seq, memory=memory, markers=markers)
    cid = config_id(cfg_dict)
    previous = read_results(out, config_id=cid, strict=True) if out is not None else None
    done_rows = dict(previous.problems) if previous else {}
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in done_rows]
    by_id = {p.id: p for p in problems}
    rows: dict[str, dict[str, Any]] = {pid: r for pid, r in done_rows.items() if pid in by_id}
    records: dict[str, ProblemRecord] = {pid: record_of(r, kind=by_id[pid].kind) for pid, r in rows.items()}
    n_resumed = len(rows)
    if n_resumed:
        log.info("resuming %s: %d of %d problems already done", out, n_resumed, len(problems))
    stats = EngineStats()
    predicted: Footprint | None = None
    measured: Measured | None = None
    slots = 0
    fh = None
    try:
        if todo:
            prepared = _choose_slots(config, spec, n_ctx_seq, len(todo))
            fh = open_for_append(out) if out is not None else None  # after the pre-flight accepted
            if on_start is not None:
                on_start(n_resumed, len(problems))
            predicted, slots = prepared.footprint, prepared.cfg.n_seq
            cap = session.open_cap(config.vram_bytes, gpu=prepared.gpu)
            try:
                runner = open_model().runner(prepared.cfg, n_threads=config.n_threads)
            except BaseException:
                if cap is not None:
                    cap.release()
                raise
            with session.Session(prepared, runner, cap, owns_cap=True) as sess:
                sampling = Sampling(temperature=max(config.temperature, 0.0), top_p=config.top_p, top_k=config.top_k,
                                    seed=config.seed, greedy=config.temperature <= 0)  # fmt: skip
                engine = Engine(runner, sampling=sampling, forcing=forcing, sampler=config.sampler)
                t0 = time.perf_counter()

                def finished(f: Finished) -> None:
                    index = int(str(f.key))
                    p = problems[index]
                    row, rec = problem_row(p, f, config_id=cid, config=cfg_dict, markers=markers)
                    rows[p.id], records[p.id] = row, rec
                    if fh is not None:
                        append_line(fh, row)
                    if progress is not None:
                        progress(_progress(records, len(problems), n_resumed, engine.stats, time.perf_counter() - t0))

                requests = (
                    Request(str(i), prompts[i], tuple(sample_seed(config.seed, p.id, s) for s in range(g)))
                    for i, p in todo
                )
                stats = engine.run(requests, on_finished=finished)
                measured = session.measure(sess)
        elif on_start is not None:
            on_start(n_resumed, len(problems))
        ordered = [rows[p.id] for p in problems if p.id in rows]
        summary = summarize([records[p.id] for p in problems if p.id in records])
        metrics = metrics_dict(summary, decode_tps=stats.decode_tps)
        if out is not None and (todo or not (previous and previous.summaries)):
            fh = fh or open_for_append(out)
            append_line(fh, {
                "schema": SCHEMA, "type": "summary", "config_id": cid, "config": cfg_dict, "metrics": metrics,
                "measured_memory": measured.as_dict() if measured else None,
                "predicted_memory": memory_dict(predicted) if predicted else None,
                "slots": slots, "decode_tps": stats.decode_tps, "engine": asdict(stats),
            })  # fmt: skip
    finally:
        if fh is not None:
            fh.close()
    return EvalResult(cfg_dict, cid, ordered, summary, metrics, predicted, measured, stats, slots, n_resumed, out)


def _progress(
    records: dict[str, ProblemRecord], total: int, n_resumed: int, stats: EngineStats, elapsed: float
) -> EvalProgress:
    done = len(records)
    recs = list(records.values())
    g = recs[0].n_samples
    pass1 = sum(r.n_correct / g for r in recs) / done
    maj = sum(r.majority_correct(g) for r in recs) / done
    new = done - n_resumed
    eta = elapsed / new * (total - done) if new > 0 else None
    return EvalProgress(done, total, pass1, maj, stats.decode_tps, eta)


PROMPT_ALLOWANCE = 512  # tokens kept for the prompt when a plan's context per sample sets the budget


def budget_from_plan(n_ctx_per_sample: int, *, reserve_tokens: int) -> int:
    """The budget T a plan's context per sample leaves after the prompt allowance and the reserve."""
    return max(n_ctx_per_sample - PROMPT_ALLOWANCE - reserve_tokens, KV_PAD_CELLS)
