"""The EdgekvError tree. No exception is defined elsewhere in edgekv.

Each error also inherits the builtin it resembles (like huggingface_hub's errors), carries an
optional ``hint`` (what to try), and ``cli.main`` turns it into a one-line message and exit 1.
"""

from __future__ import annotations

import enum
from typing import TypeVar


class EdgekvError(Exception):
    """Base of every error edgekv raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        return f"{self.message}. {self.hint[:1].upper()}{self.hint[1:]}"


class SpecError(EdgekvError, ValueError):
    """Bad user input: a size string, a quant name, a config value."""


class BadArgument(SpecError):
    """A command-line value that cannot be parsed (a size, a token count, a quant or KV name): a usage
    error, exit 2. Readers of files turn it into their own file error (exit 1)."""


Choice = TypeVar("Choice", bound=enum.Enum)


def parse_choice(cls: type[Choice], key: str, *, text: str, what: str) -> Choice:
    """The member of enum ``cls`` whose value is ``key`` (``text`` as normalised by the caller); for
    any other, a BadArgument that names ``text`` and the choices (each enum's ``parse``)."""
    try:
        return cls(key)
    except ValueError:
        raise BadArgument(f"unknown {what} {text!r}", hint="use one of: " + ", ".join(m.value for m in cls)) from None


class PlanFileError(SpecError):
    """A plan file (``edgekv pick --json``) that cannot be used: names the file, the key and the value."""


_NO_VALUE = object()


class CheckpointFileError(SpecError):
    """A file of a Hugging Face checkpoint that cannot be converted: names the file, the key and the value."""

    def __init__(
        self, message: str, *, path: str, key: str | None = None, value: object = _NO_VALUE, hint: str | None = None
    ) -> None:
        head = f"{path}: {key}" if key else path
        if key and value is not _NO_VALUE:
            head += f" = {_short(value)}"
        super().__init__(f"{head} {message}" if key else f"{head}: {message}", hint=hint)
        self.path = path
        self.key = key
        self.value = None if value is _NO_VALUE else value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ConfigFileError(CheckpointFileError):
    """config.json: not JSON, not an object, or a key with the wrong type or range."""


class SafetensorsFileError(CheckpointFileError):
    """A safetensors file or its index: header not JSON, offsets outside the file or overlapping, a shape
    that does not match its bytes, or a tensor the architecture needs that is missing or misshapen."""


class TokenizerFileError(CheckpointFileError):
    """tokenizer.json, tokenizer.model, tokenizer_config.json or added_tokens.json that cannot be read."""


class GGUFError(EdgekvError, ValueError):
    """A GGUF file that is truncated, corrupt, not GGUF, or lacks a key edgekv needs."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class GGUFRuleError(GGUFError):
    """A GGUF that gguf-py parses but that breaks a rule llama.cpp or ggml enforces (tensor rank, nesting)."""


class VocabOnlyModel(GGUFError):
    """A vocab-only GGUF (tokenizer keys, no weight tensors), like llama.cpp's ggml-vocab-*.gguf."""


class ModelFileNotFound(EdgekvError, FileNotFoundError):
    """A model file, checkpoint file or catalog entry that is not there."""


class UnsupportedModel(EdgekvError, ValueError):
    """An architecture or model that edgekv cannot size or convert."""


class OutputExists(EdgekvError, FileExistsError):
    """An output file already exists and --force was not given."""


class DiskFull(EdgekvError, OSError):
    """Not enough free disk space for an output or a download; ``need_bytes``/``free_bytes`` when known."""

    def __init__(
        self, message: str, *, need_bytes: int | None = None, free_bytes: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.need_bytes = need_bytes
        self.free_bytes = free_bytes


class NothingRan(EdgekvError, RuntimeError):
    """A command that was asked to run something ran none of it (e.g. every bench configuration refused)."""


class HubError(EdgekvError, OSError):
    """Anything that went wrong talking to the Hugging Face hub."""


class RuntimeUnavailable(EdgekvError, ImportError):
    """An optional dependency (llama_cpp, pynvml, ...) is missing or lacks a capability."""


class LlamaError(EdgekvError, RuntimeError):
    """llama.cpp refused to load or run; ``reason`` is the line of its log that says why."""

    def __init__(self, message: str, *, reason: str | None = None, hint: str | None = None) -> None:
        super().__init__(message + (f": {reason}" if reason else ""), hint=hint)
        self.reason = reason


class KvConfigError(EdgekvError, ValueError):
    """A K/V cache type and flash-attention combination the build cannot run."""


class PromptError(EdgekvError, ValueError):
    """A prompt (``run``'s stdin) that cannot be used: not UTF-8 text, or larger than any context."""


class NoFeasiblePlan(EdgekvError, ValueError):
    """Nothing fits the budget; carries how much the smallest option needs."""

    def __init__(self, message: str, *, need_bytes: int, have_bytes: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.need_bytes = need_bytes
        self.have_bytes = have_bytes


class DoesNotFit(NoFeasiblePlan):
    """A run's pre-flight check: this configuration would not fit the VRAM cap."""


class UnknownCard(SpecError):
    """A GPU name that matches no card, or several; ``candidates`` are the near names or the variants."""

    def __init__(
        self, message: str, *, candidates: list[str], hint: str | None = None, ambiguous: bool = False
    ) -> None:
        super().__init__(message, hint=hint)
        self.candidates = candidates
        self.ambiguous = ambiguous  # several cards (variants) rather than none


class ProfileFileError(SpecError):
    """A calibration profile that cannot be used: too large, not UTF-8, not JSON, another schema, or a
    constant of the wrong type or range; names the file and the key."""


class ResultsFileError(SpecError):
    """An eval results file or a sweep folder that cannot be read: not UTF-8, not JSON, another schema or
    format, no results at all; names the file (and line) or the folder."""


class DatasetError(EdgekvError, ValueError):
    """A problem file that cannot be read: bad JSON or CSV, a missing field; names the file and line."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{path}:{line}" if path and line else path
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.line = line


class ApiRequestError(SpecError):
    """A request to ``edgekv serve`` that is refused: the HTTP status, and OpenAI's error fields (the
    request's ``param`` at fault and a machine-readable ``code``)."""

    def __init__(
        self, message: str, *, status: int = 400, param: str | None = None, code: str | None = None,
        kind: str = "invalid_request_error", headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
