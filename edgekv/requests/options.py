"""Options several commands declare alike: --sampler, --threads (llama.cpp's 1..512), --ngl (-1 or a
count), --temperature (finite, 0..100); their types are ``edgekv.requests.bounded``'s."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from edgekv.llama.sampling import SamplerPlace
from edgekv.requests.bounded import bounded, bounded_float

FC = TypeVar("FC", bound=Callable[..., object])

sampler_option = click.option(
    "--sampler",
    type=click.Choice([p.value for p in SamplerPlace]),
    callback=lambda _ctx, _param, value: SamplerPlace(value),
    default="auto",
    show_default=True,
    help="Where the sampler chains run: host (auto: a numpy top-k cut of all rows, then each chain in C on its "
    "candidates); full (llama.cpp's chain over each whole row, the same tokens, slower); backend (in llama.cpp's "
    "decode graph) or split (top-k in the graph, the rest on the host), both for 4 x (n_ubatch + 1) x n_vocab bytes "
    "more compute buffer (counted in the pre-flight; 297 MiB for Qwen3).",
)  # fmt: skip


def threads_option(help: str = "CPU threads (default: all cores).") -> Callable[[FC], FC]:
    """``--threads N``: refused (exit 2) outside llama.cpp's 1..512 while the flags are read, before
    any file is opened or converted (llama.cpp crashes past its GGML_MAX_N_THREADS)."""
    return click.option("--threads", type=bounded("--threads"), help=help)


# run's, eval's and bench's --ngl: -1 (every layer) or a count. llama.cpp reads any negative value as
# every layer; edgekv names one (-1), so -5 is a typo, not a setting.
LAYERS = bounded("--ngl")
TEMPERATURE = bounded_float("--temperature")  # run's and eval's: 0 (greedy) or more, never nan or inf
