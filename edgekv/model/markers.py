"""The markers a reasoning model writes around its thinking, and where eval and serve get them.

Qwen3, the DeepSeek-R1 distills and most others write ``<think>`` ... ``</think>``; Magistral 1.1 writes
``[THINK]`` ... ``[/THINK]`` and EXAONE Deep ``<thought>`` ... ``</thought>``. Budget forcing injects
the close marker at the budget and answers are read after it, so the pair must be the model's own.
Where it comes from, first hit wins (``eval`` and ``serve`` resolve it the same way, and their
``--think-markers OPEN,CLOSE`` overrides everything):

1. the catalog entry the GGUF is (its ``thinking`` object; matched by file name, else by shape and
   weight bytes, ``store.catalog.catalog_markers``),
2. the GGUF's chat template, if it names a :data:`KNOWN_PAIRS` close marker (the first pair that does,
   in that order),
3. ``<think>`` / ``</think>`` (:data:`DEFAULT_MARKERS`).

Pure module: stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekv.errors import BadArgument

__all__ = ["DEFAULT_MARKERS", "KNOWN_PAIRS", "ThinkMarkers", "answer_part", "markers_in_template", "parse_markers"]


@dataclass(frozen=True, slots=True)
class ThinkMarkers:
    """A thinking block's opening and closing text, and where that pair was read (``source``)."""

    open: str
    close: str
    source: str = "default"

    @property
    def is_default(self) -> bool:
        """The ``<think>`` pair (whatever its source): eval's results keep no marker key for it."""
        return (self.open, self.close) == (DEFAULT_MARKERS.open, DEFAULT_MARKERS.close)

    def describe(self) -> str:
        return f"{self.open} ... {self.close} ({self.source})"


DEFAULT_MARKERS = ThinkMarkers("<think>", "</think>")
# Pairs recognised in a chat template, in the order they are tried: Magistral 1.1's and EXAONE Deep's
# before <think>, whose close tag a template may mention only to strip it from earlier turns.
KNOWN_PAIRS: tuple[tuple[str, str], ...] = (
    ("[THINK]", "[/THINK]"),
    ("<thought>", "</thought>"),
    ("<think>", "</think>"),
)
_MAX_MARKER_CHARS = 64


def parse_markers(text: str) -> ThinkMarkers:
    """``OPEN,CLOSE`` (``--think-markers``): two non-empty markers without spaces at either end.

    Raises:
        BadArgument: not two markers, an empty one, or one over 64 characters.
    """
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise BadArgument(
            f"--think-markers {text!r}: give the opening and the closing marker, OPEN,CLOSE",
            hint="e.g. --think-markers '[THINK],[/THINK]' or '<thought>,</thought>'",
        )
    opening, closing = (p.strip() for p in parts)
    if max(len(opening), len(closing)) > _MAX_MARKER_CHARS:
        raise BadArgument(f"--think-markers: a marker is at most {_MAX_MARKER_CHARS} characters")
    if opening == closing:
        raise BadArgument(f"--think-markers {text!r}: the opening and the closing marker must differ")
    return ThinkMarkers(opening, closing, "--think-markers")


def markers_in_template(template: str | None) -> ThinkMarkers | None:
    """The first of :data:`KNOWN_PAIRS` whose close marker the chat template names, else None."""
    if not template:
        return None
    for opening, closing in KNOWN_PAIRS:
        if closing in template:
            return ThinkMarkers(opening, closing, "chat template")
    return None


def answer_part(text: str, markers: ThinkMarkers) -> str | None:
    """What follows the last close marker in ``text`` (the answer after the thinking), else None."""
    head, sep, tail = text.rpartition(markers.close)
    return tail if sep else None
