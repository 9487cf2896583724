"""``edgekv inspect``'s request: a local GGUF or a hub file's header, and the memory to size it for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekv.model.gguf_reader import VocabOnly
    from edgekv.model.spec import ModelSpec


@dataclass(frozen=True, slots=True)
class InspectRequest:
    """The arguments and flags of ``edgekv inspect`` (each as given)."""

    target: str
    filename: str | None = None
    remote: bool = False
    revision: str | None = None
    vram: str | None = None
    margin: str = "256M"
    overhead: str = "auto"

    def read(self) -> ModelSpec | VocabOnly:
        """The spec from TARGET's header (with --remote: FILENAME's in hub repo TARGET), or a vocab-only file's.

        Raises:
            SpecError: --remote without FILENAME, or FILENAME without --remote.
        """
        from edgekv.errors import SpecError

        if self.remote:
            if not self.filename:
                raise SpecError("--remote needs REPO and FILENAME", hint="edgekv inspect REPO FILE.gguf --remote")
            from edgekv.hub.remote import inspect_remote

            spec, _stats = inspect_remote(self.target, self.filename, revision=self.revision)
            return spec
        if self.filename:
            raise SpecError(f"unexpected second argument {self.filename!r}", hint="for a hub file add --remote")
        from edgekv.fsutil import input_file
        from edgekv.model.gguf_reader import inspect_file

        return inspect_file(input_file(self.target, what="GGUF file"))

    def memory(self) -> tuple[int | None, int, int | None]:
        """(--vram, --margin, --overhead) in bytes; --overhead auto is None (the measured one)."""
        from edgekv.units import parse_size

        vram_bytes = parse_size(self.vram) if self.vram is not None else None
        margin_bytes = parse_size(self.margin, allow_zero=True)
        return vram_bytes, margin_bytes, None if self.overhead == "auto" else parse_size(self.overhead, allow_zero=True)
