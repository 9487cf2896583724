"""The one table of what every numeric option may be: what the machine and llama.cpp can do, checked
while the flags are read, before any file is opened, any memory is sized or llama.cpp is asked anything.

Each bound names its source. llama.cpp's own limits come from the vendored source of
llama-cpp-python 0.3.36: ``GGML_MAX_N_THREADS`` (ggml.h, 512: more threads overrun ggml's thread
arrays and crash), ``LLAMA_MAX_SEQ`` (llama-cparams.h, 256: sequences one context holds; more is
a ``std::runtime_error`` at context creation), ``int32_t`` fields (``n_gpu_layers``, ``top_k``).
edgekv's own limits are larger than any real use and small enough that nothing they allow can
allocate past the memory cap before the memory model refuses it: ``MAX_TOKENS`` (16M tokens, more
than any model's trained context; a GGUF claiming more is read as 16M), ``MAX_PROBLEMS`` (100,000
problems: about 100 MB of host memory for synth's generated ones, 3 s), ``MAX_BOOTSTRAP`` (100,000
draws: calibrate's resampling used 2.4 GB at 10M), ``MAX_REPS`` (1,000 repetitions of a bench
measurement). Sizes stop at 1 PiB (``units.MAX_SIZE``).

Per option: ``OPTIONS`` maps every numeric flag of every verb to its bound (the same name means the
same quantity in every verb); ``tests/cli/test_bounds.py`` walks the click commands and checks that
each numeric option has one and that a value past it is refused (exit 2) before llama.cpp loads.

Two bounds depend on the run, not the flag: the context a GGUF claims (``context_tokens``), and the
rows one batched decode step sends (slots x the tokens budget forcing injects into each), which the
engine keeps within llama.cpp's n_batch by splitting the step (``edgekv.llama.batch``: 256 slots x
256 samples with a cue each aborted in GGML_ASSERT n_tokens_all <= n_batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgekv.errors import BadArgument
from edgekv.units import MAX_DURATION, MAX_SIZE, MAX_TOKENS

GGML_MAX_N_THREADS = 512  # ggml.h
LLAMA_MAX_SEQ = 256  # llama-cparams.h
INT32_MAX = 2**31 - 1  # llama.cpp's int32_t parameters (n_gpu_layers, top_k)
UINT32_MAX = 2**32 - 1  # llama.cpp's uint32_t seed
MAX_PROBLEMS = 100_000
MAX_BOOTSTRAP = 100_000
MAX_REPS = 1000
MAX_TEMPERATURE = 100.0  # logits / 100: already uniform noise over the top-k; a typo beyond


@dataclass(frozen=True, slots=True)
class Bound:
    """The values an option may take: ``lo..hi`` of ``unit``; ``why`` says where ``hi`` comes from."""

    lo: float
    hi: float
    unit: str
    why: str

    def refusal(self, option: str, value: object, *, cores: int | None = None) -> BadArgument:
        """The usage error for ``value`` outside this bound, naming the option, the range and its source."""
        hint = None
        if self is THREADS:
            hint = f"this machine has {cores or 1} cores; leave --threads out to use them all"
        return BadArgument(f"{option} {value} is outside the {_num(self.lo)}..{_num(self.hi)} {self.why}", hint=hint)

    def check(self, option: str, value: float | None) -> None:
        """Raise ``refusal`` unless ``value`` (None: not given) is finite and within ``lo..hi``."""
        if value is not None and not (math.isfinite(value) and self.lo <= value <= self.hi):
            raise self.refusal(option, value)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


THREADS = Bound(1, GGML_MAX_N_THREADS, "threads", "threads llama.cpp accepts")
SEQUENCES = Bound(1, LLAMA_MAX_SEQ, "sequences", "sequences one llama.cpp context holds (LLAMA_MAX_SEQ)")
TOKENS = Bound(0, MAX_TOKENS, "tokens", "tokens edgekv plans for (16M: more than any model's context)")
SIZE = Bound(0, MAX_SIZE, "bytes", "bytes (1 PiB: more than any machine)")
DURATION = Bound(0, MAX_DURATION, "seconds", "seconds (a year)")
PROBLEMS = Bound(1, MAX_PROBLEMS, "problems", "problems one eval or sweep takes")
BOOTSTRAP = Bound(0, MAX_BOOTSTRAP, "draws", "bootstrap draws (more change no interval's third digit)")
REPS = Bound(1, MAX_REPS, "repetitions", "repetitions of one measurement")
LAYERS = Bound(-1, INT32_MAX, "layers", "layers (-1: all; llama.cpp's int32 n_gpu_layers)")
TOP_K = Bound(0, INT32_MAX, "tokens", "candidates (llama.cpp's int32 top_k; 0: all)")
SEED = Bound(0, UINT32_MAX, "seed", "seeds llama.cpp takes (uint32)")
TEMPERATURE = Bound(0, MAX_TEMPERATURE, "temperature", "temperatures (0: greedy; past 100 sampling is noise)")
PROBABILITY = Bound(0, 1, "fraction", "a probability")
FRACTION = Bound(0, 0.5, "fraction", "a fraction of the best (at most a half)")
TOP = Bound(1, 100, "plans", "plans shown")
MAX_PARALLEL = Bound(1, 64, "samples", "parallel samples pick plans for")
SHARE = Bound(0, 1e6, "share", "a device's share of the layers")
BLOCKS = Bound(0, INT32_MAX, "blocks", "blocks (llama.cpp's int32 layer count)")
SPREAD = Bound(1, 1000, "ratio", "high/low ratios of an interval")
PORT = Bound(0, 65535, "port", "TCP ports (0: any free one)")
QUEUE = Bound(0, 100_000, "requests", "requests that may wait")
SECONDS = Bound(0, 24 * 3600, "seconds", "seconds (a day)")

# Every numeric option of every verb, by name (a name means one quantity across verbs).
OPTIONS: dict[str, Bound] = {
    "--threads": THREADS,
    "--parallel": SEQUENCES,  # run's G; bench's list of G
    "--samples": SEQUENCES,  # eval's G; sweep's list of G
    "--slots": SEQUENCES,
    "--max-parallel": MAX_PARALLEL,
    "--ctx": TOKENS,
    "--min-ctx": TOKENS,
    "--budget": TOKENS,
    "--budgets": TOKENS,
    "--reserve": TOKENS,
    "--prompt-tokens": TOKENS,
    "--max-tokens": TOKENS,
    "--n-prompt": TOKENS,
    "--n-gen": TOKENS,
    "--depth": TOKENS,
    "--token-floor": TOKENS,
    "--saturation": TOKENS,
    "--vram": SIZE,
    "--margin": SIZE,
    "--overhead": SIZE,
    "--e1": SIZE,
    "--e2": SIZE,
    "--max-time": DURATION,
    "--tensor-split": SHARE,
    "--limit": PROBLEMS,
    "--bootstrap": BOOTSTRAP,
    "--reps": REPS,
    "--ngl": LAYERS,
    "--top-k": TOP_K,
    "--seed": SEED,
    "--temperature": TEMPERATURE,
    "--top-p": PROBABILITY,
    "--tolerance": FRACTION,
    "--similar": FRACTION,
    "--top": TOP,
    "--n-cpu-moe": BLOCKS,
    "--max-spread": SPREAD,
    "--min-problems": PROBLEMS,
    "--port": PORT,
    "--max-body": SIZE,
    "--max-prompt-tokens": TOKENS,
    "--max-n": SEQUENCES,
    "--queue": QUEUE,
    "--grace": SECONDS,
    "--body-timeout": SECONDS,
}


def check_threads(n_threads: int | None, *, cores: int | None = None) -> None:
    """Refuse a thread count llama.cpp cannot take (it segfaults or aborts on >512), before it is asked."""
    if n_threads is not None and not THREADS.lo <= n_threads <= THREADS.hi:
        raise THREADS.refusal("--threads", n_threads, cores=cores)


def check_sequences(option: str, counts: list[int] | tuple[int, ...]) -> None:
    """Each count of parallel sequences within llama.cpp's LLAMA_MAX_SEQ."""
    for n in counts:
        SEQUENCES.check(option, n)


def context_tokens(n_ctx_train: int) -> int:
    """The trained context a GGUF claims, within MAX_TOKENS: a header's 2^32-1 is a typo or an attack,
    and sizing it would ask llama.cpp for a 4-billion-cell context (16.8 GB of host memory before its
    std::bad_alloc)."""
    return min(n_ctx_train, MAX_TOKENS)
