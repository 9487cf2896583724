"""The EdgekvError tree. No exception is defined elsewhere in edgekv.

Each error also inherits the builtin it resembles (like huggingface_hub's errors), carries an
optional ``hint`` (what to try), and ``cli.main`` turns it into a one-line message and exit 1.
"""

from __future__ import annotations


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


class PlanFileError(SpecError):
    """A plan file (``edgekv pick --json``) that cannot be used: names the file, the key and the value."""


class GGUFError(EdgekvError, ValueError):
    """A GGUF file that is truncated, corrupt, not GGUF, or lacks a key edgekv needs."""

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, hint=hint)
        self.path = path


class ModelFileNotFound(EdgekvError, FileNotFoundError):
    """A model file, checkpoint file or catalog entry that is not there."""


class UnsupportedModel(EdgekvError, ValueError):
    """An architecture or model that edgekv cannot size or convert."""


class OutputExists(EdgekvError, FileExistsError):
    """An output file already exists and --force was not given."""


class DiskFull(EdgekvError, OSError):
    """Not enough free disk space for an output or a download."""


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


class NoFeasiblePlan(EdgekvError, ValueError):
    """Nothing fits the budget; carries how much the smallest option needs."""

    def __init__(self, message: str, *, need_bytes: int, have_bytes: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.need_bytes = need_bytes
        self.have_bytes = have_bytes


class DoesNotFit(NoFeasiblePlan):
    """A run's pre-flight check: this configuration would not fit the VRAM cap."""


class DatasetError(EdgekvError, ValueError):
    """A problem file that cannot be read: bad JSON or CSV, a missing field; names the file and line."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{path}:{line}" if path and line else path
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.path = path
        self.line = line
