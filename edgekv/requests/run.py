"""``edgekv run``'s request: its flags, the --plan file's values where no flag is given, and --gpu's
memory as the cap when there is no --vram; resolved into what ``edgekv.llama.session`` takes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TextIO

import click

if TYPE_CHECKING:
    from edgekv.llama.sampling import Sampling
    from edgekv.plan.memory import RunConfig

DEFAULT_PARALLEL = 1
DEFAULT_NGL = -1  # every layer on the GPU
DEFAULT_CTX = "auto"  # the largest context that fits


@dataclass(frozen=True, slots=True)
class RunRequest:
    """The flags of ``edgekv run``. ``ctx``, ``parallel`` and ``ngl`` are None where not given: the
    plan file's value then, else the default. A KV flag sets only its own half: ``--type-k`` alone
    keeps the plan's V (``--kv`` sets both); a half no flag and no plan names is f16."""

    model: str | None
    plan_path: str | None = None
    vram: str | None = None
    gpu: str | None = None
    tensor_split: str | None = None
    kv: str | None = None
    type_k: str | None = None
    type_v: str | None = None
    ctx: str | None = None
    parallel: int | None = None
    ngl: int | None = None
    margin: str = "0"
    prompt: str | None = None
    chat: bool = False
    raw: bool = False
    max_tokens: int = 512
    greedy: bool = False
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    seed: int = 0
    flash_attn: bool | None = None  # None: on (a quantized V needs it)
    threads: int | None = None
    ram: str | None = None  # --ram: the host side's budget on a GPU (0 = GPU only); None: EDGEKV_RAM, else detected
    n_cpu_moe: int | None = None  # --n-cpu-moe: experts of the first N blocks in RAM; None: the plan's, else 0
    needs_prompt: bool = True  # False for serve: its prompts come with each HTTP request

    def resolve(self, *, stdin: TextIO) -> RunSettings:
        """The settings to run: flag > plan file > default, then --gpu's memory where --vram is not
        given. The prompt is --prompt, else stdin (unless it is a terminal) unless --chat.

        Raises:
            click.UsageError: no model, --chat with --parallel or --prompt, no prompt, a split
                without a cap per device.
        """
        from edgekv.fsutil import input_file
        from edgekv.llama.sampling import Sampling
        from edgekv.model.quant import KvType
        from edgekv.plan.memory import RunConfig
        from edgekv.requests.card import parse_vram, resolve_card
        from edgekv.requests.flags import kv_flags, parse_context, parse_tensor_split
        from edgekv.requests.overlay import PlanFlags, overlay
        from edgekv.store.hostmem import host_ram
        from edgekv.store.planfile import read_plan
        from edgekv.units import format_bytes, parse_size

        ram = host_ram(self.ram)  # first: a bad value is a usage error whatever else is wrong
        plan = read_plan(input_file(self.plan_path, what="plan file")) if self.plan_path is not None else None
        vram = parse_vram(self.vram) if self.vram is not None else None
        split = tuple(parse_tensor_split(self.tensor_split)) if self.tensor_split is not None else ()
        n_ctx = None if self.ctx is None else _ctx_flag(self.ctx)
        type_k, type_v = kv_flags(self.kv, self.type_k, self.type_v)  # each half its own flag's, else None
        flags = PlanFlags(self.model, vram, self.vram, split, type_k, type_v, n_ctx, self.parallel, self.ngl)
        s = overlay(flags, plan, per_device=True)
        vram, cap_text = s.vram_bytes, s.cap_text
        if self.gpu and self.vram is None:  # the named card's memory as the cap (--vram still wins)
            card = resolve_card(self.gpu)
            if card.card is not None and isinstance(card.vram_bytes, int):
                vram, cap_text = card.vram_bytes, f"{format_bytes(card.vram_bytes)} ({card.card.name})"
        if not s.model:
            raise click.UsageError("give MODEL.gguf or --plan plan.json")
        input_file(s.model)
        parallel = s.parallel if s.parallel is not None else DEFAULT_PARALLEL
        prompt = self._prompt(parallel, stdin)
        if s.tensor_split and not isinstance(vram, list):
            raise click.UsageError("--tensor-split needs a --vram per device (e.g. --vram 12G,8G --tensor-split 3,2)")
        auto = not isinstance(s.n_ctx, int)  # --ctx auto, or neither --ctx nor a plan's context
        cfg = RunConfig(
            n_ctx=s.n_ctx if isinstance(s.n_ctx, int) else parse_context(DEFAULT_CTX)[0],
            type_k=s.type_k or KvType.F16, type_v=s.type_v or KvType.F16, n_seq=parallel,
            n_gpu_layers=s.n_gpu_layers if s.n_gpu_layers is not None else DEFAULT_NGL,
            flash_attn=self.flash_attn is not False, tensor_split=s.tensor_split,
            n_cpu_moe=self.n_cpu_moe if self.n_cpu_moe is not None else (plan.n_cpu_moe if plan is not None else 0),
        )  # fmt: skip
        sampling = Sampling(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, seed=self.seed,
                            greedy=self.greedy)  # fmt: skip
        margin = parse_size(self.margin, allow_zero=True)
        return RunSettings(model=s.model, vram_bytes=vram, cap_text=cap_text, config=cfg, auto_ctx=auto,
                           margin_bytes=margin, prompt=prompt, sampling=sampling,
                           ram_bytes=ram.ram_bytes if ram is not None else None)  # fmt: skip

    def _prompt(self, parallel: int, stdin: TextIO) -> str | None:
        """--prompt, else stdin's text when stdin is not a terminal; never an empty prompt (the model
        would generate --max-tokens tokens of nothing)."""
        if self.chat and parallel > 1:
            raise click.UsageError("--chat runs one sample; drop --parallel")
        if self.chat and self.prompt is not None:
            raise click.UsageError("give --prompt or --chat, not both")
        if self.chat:
            return None
        if not self.needs_prompt:
            return self.prompt or ""
        if self.prompt is not None:
            if not self.prompt.strip():
                raise click.UsageError("--prompt is empty: give the text to answer, e.g. --prompt 'What is 17*23?'")
            return self.prompt
        if stdin.isatty():
            raise click.UsageError(NO_PROMPT)
        text = read_stdin(stdin)
        if not text.strip():
            raise click.UsageError(f"{NO_PROMPT} (stdin was empty)")
        return text


NO_PROMPT = "no prompt: give --prompt TEXT, --chat, or the prompt on stdin (edgekv run MODEL < prompt.txt)"
MAX_STDIN_BYTES = 64 << 20  # far past any context a card holds (1M tokens are about 4 MiB of text)


def read_stdin(stdin: TextIO, *, limit: int = MAX_STDIN_BYTES) -> str:
    """stdin's text, read as bytes and decoded as UTF-8 line by line, at most ``limit`` bytes.

    Raises:
        PromptError: a line that is not UTF-8 (named with its line, byte and column), or more than ``limit``.
    """
    from edgekv.errors import PromptError

    raw = getattr(stdin, "buffer", None)
    if raw is None:  # a text stream without bytes under it (already decoded)
        text = stdin.read(limit + 1)
        if len(text) > limit:
            raise PromptError(f"the prompt on stdin is over {limit >> 20} MiB", hint="pass a shorter prompt")
        return text
    data = raw.read(limit + 1)
    if len(data) > limit:
        raise PromptError(f"the prompt on stdin is over {limit >> 20} MiB", hint="pass a shorter prompt")
    return "".join(decode_line(line, i) for i, line in enumerate(data.splitlines(keepends=True), start=1))


def chat_lines(stdin: TextIO) -> Iterator[str]:
    """stdin's lines for --chat, each decoded as UTF-8 (bytes, so a bad line is named, not a traceback).

    Raises:
        PromptError: a line that is not UTF-8, or longer than MAX_STDIN_BYTES.
    """
    from edgekv.errors import PromptError

    raw = getattr(stdin, "buffer", None)
    n = 0
    while True:
        n += 1
        if raw is None:
            line = stdin.readline(MAX_STDIN_BYTES + 1)
        else:
            data = raw.readline(MAX_STDIN_BYTES + 1)
            line = decode_line(data, n)
        if not line:
            return
        if len(line) > MAX_STDIN_BYTES:
            raise PromptError(f"stdin line {n} is over {MAX_STDIN_BYTES >> 20} MiB", hint="send shorter messages")
        yield line


def decode_line(data: bytes, line: int) -> str:
    """One line of stdin as UTF-8 text.

    Raises:
        PromptError: naming the line, the first bad byte and its column (1-based).
    """
    from edgekv.errors import PromptError

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PromptError(
            f"stdin line {line} is not UTF-8 text (byte 0x{data[e.start]:02x} at column {e.start + 1})",
            hint="pass UTF-8 text (iconv -f latin1 -t utf-8 converts a Latin-1 file)",
        ) from None


def _ctx_flag(text: str) -> int | Literal["auto"]:
    from edgekv.requests.flags import parse_context

    n_ctx, auto = parse_context(text)
    return "auto" if auto else n_ctx


@dataclass(frozen=True, slots=True)
class RunSettings:
    """What to run: the model, the cap (and how messages name it), the llama.cpp settings, the prompt."""

    model: str
    vram_bytes: int | list[int] | None
    cap_text: str | None  # as given, "... (from the plan)" or "... (the card's name)"
    config: RunConfig
    auto_ctx: bool  # the largest context that fits (--ctx auto, or no --ctx and no plan)
    margin_bytes: int
    prompt: str | None  # None with --chat
    sampling: Sampling
    ram_bytes: int | None = None  # --ram (or its default): the host side's budget on a GPU
