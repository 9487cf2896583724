"""What the batched engine (``edgekv.llama.batch``) takes and gives: requests, budget forcing,
finished samples and the run's statistics; and what ``batch.generate`` (one prompt, ``edgekv run``)
gives. Plain values, no llama.cpp."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekv.llama.sampling import Sampling


@dataclass(frozen=True, slots=True)
class Forcing:
    """What happens at the budget and at an early end (see the module docstring).

    ``budget_tokens`` counts what the model wrote before the cue (sampled tokens and injected
    ``wait_tokens``). ``cue_tokens`` are injected while thinking (or always, for a model without
    thinking); ``answer_cue_tokens`` where the model already closed its thinking. No cue: the sample
    just stops at the budget (``batch.generate``'s max_tokens).
    """

    budget_tokens: int
    reserve_tokens: int = 0
    cue_tokens: tuple[int, ...] = ()
    answer_cue_tokens: tuple[int, ...] = ()
    end_think_token: int | None = None  # </think> of a thinking model
    wait_tokens: tuple[int, ...] = ()  # replaces an early end (--force-length); empty: the end stands
    stop_when_boxed: bool = True  # after the cue "\boxed{", stop once the brace closes
    ignore_eog: bool = False  # benchmarks: an end-of-generation token is just a token (as llama.cpp's tools do)


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt and the seeds of its samples (one per sample).

    ``forcing`` overrides the engine's budget forcing for this request's samples (a server's
    per-request budget and token limit; tests that need samples to end at set steps); ``sampling``
    the engine's sampler settings (a server's per-request temperature; ``Engine.check_request``).
    """

    key: Hashable
    prompt: tuple[int, ...]
    seeds: tuple[int, ...]
    forcing: Forcing | None = None
    sampling: Sampling | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished sample: every token after the prompt (sampled and injected) and its text."""

    tokens: tuple[int, ...]
    text: str
    n_sampled: int  # tokens the model sampled (the injected ones not counted)
    finish: str  # "eog", "boxed" (answer closed after the cue), "reserve", "length" (no cue), "context", "shutdown"
    cut: bool  # reached the budget (the cue was injected, or it stopped there)
    injected: tuple[tuple[int, tuple[int, ...]], ...]  # (offset in tokens, tokens injected there)


@dataclass(frozen=True, slots=True)
class Finished:
    """All samples of one request, in seed order, and the seconds from its start to its end."""

    key: Hashable
    samples: tuple[Sample, ...]
    seconds: float


@dataclass
class EngineStats:
    """Counts and timings of one :meth:`Engine.run` (time.perf_counter seconds)."""

    n_steps: int = 0
    n_sampled: int = 0
    n_prompt_decoded: int = 0
    prompt_seconds: float = 0.0
    step_seconds: float = 0.0  # the whole of the decode steps (the sum of the five parts below)
    build_seconds: float = 0.0  # slot moves and the batch's rows (Python)
    submit_seconds: float = 0.0  # filling the llama_batch and llama_decode's own CPU work (it returns early)
    wait_seconds: float = 0.0  # llama_synchronize: the device finishing the step's graph
    sample_seconds: float = 0.0  # picking every live slot's token (host chains, or reading the backend's)
    accept_seconds: float = 0.0  # budget forcing, stop checks, finished samples' text (Python)
    max_live: int = 0
    n_moves: int = 0  # slots moved down to keep live sequence ids consecutive
    sampler: str = ""  # where the sampler chains ran: a SamplerPlace's value (edgekv.llama.sampling)

    def step_parts_ms(self) -> dict[str, float]:
        """Milliseconds per decode step, by part (what is not ``wait`` is edgekv's, or the host sampler's)."""
        n = max(self.n_steps, 1)
        parts = ("build", "submit", "wait", "sample", "accept")
        return {k: round(1000 * getattr(self, f"{k}_seconds") / n, 4) for k in parts}

    @property
    def decode_tps(self) -> float:
        """Sampled tokens per second of the decode steps (the aggregate over all slots)."""
        return self.n_sampled / self.step_seconds if self.step_seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SequenceOutput:
    tokens: tuple[int, ...]
    text: str
    finish: str  # "eog" (end-of-generation token), "length" (max_tokens) or "context" (KV full)


@dataclass(frozen=True, slots=True)
class Generation:
    """What ``batch.generate`` produced, with its timings (time.perf_counter)."""

    sequences: tuple[SequenceOutput, ...]
    n_prompt: int
    n_prompt_evaluated: int  # prompt tokens decoded now (the rest was still in the KV cache)
    prompt_seconds: float
    decode_seconds: float

    @property
    def n_generated(self) -> int:
        return sum(len(s.tokens) for s in self.sequences)

    @property
    def prompt_tps(self) -> float:
        return self.n_prompt_evaluated / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        steps = max(self.n_generated - len(self.sequences), 0)  # the first tokens come from the prompt
        return steps / self.decode_seconds if self.decode_seconds > 0 else 0.0


SequenceTokenCallback = Callable[[int, int, str], None]  # (sequence index, token id, text piece)
