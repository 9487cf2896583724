"""Pull the final answer out of a model's output, the way s1, MathArena and lighteval do.

Math: the LAST complete ``\\boxed{...}`` or ``\\fbox{...}`` (braces matched, so ``\\boxed{\\frac{1}{2}}``
stays whole), else the last ``Answer: ...`` line (s1's ``(?i)Answer\\s*:\\s*(.*)``). The result is
cleaned: surrounding ``$``/``\\(\\)``, a trailing ``.``, markdown ``**``, a trailing unit in ``\\text{}``
(``5\\text{ cm}`` -> ``5``) and a trailing degree sign are dropped; a lone ``\\text{yes}`` becomes ``yes``.

Choice: a letter A-D, from (in order) a boxed answer, ``Answer: C`` / ``answer is (C)``, the last
``(C)``, else the last standalone capital A-D (an ``A`` that starts a sentence, "A car ...", is skipped).
"""

from __future__ import annotations

import enum
import re

from edgekv.errors import SpecError


class Kind(str, enum.Enum):
    """What a problem's answer is: free-form math, or a multiple-choice letter."""

    MATH = "math"
    CHOICE = "choice"


def parse_kind(kind: Kind | str) -> Kind:
    """``"math"``/``"choice"`` (or a Kind) -> Kind; anything else is a SpecError."""
    try:
        return Kind(kind)
    except ValueError:
        raise SpecError(f"unknown answer kind {kind!r}", hint="use 'math' or 'choice'") from None


_BOX = re.compile(r"\\(?:boxed|fbox)\b\s*")
_ANSWER_LINE = re.compile(r"(?i)Answer\s*:\s*(.*)")
_TEXT_ONLY = re.compile(r"^\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}$")
_TRAILING_UNIT = re.compile(r"^(.*?\S)\s*\\(?:text|mbox|mathrm)\{\s*[A-Za-z][A-Za-z .^/\d]*\}$")
_DEGREES = re.compile(r"\s*\^\s*(?:\\circ|\{\\circ\})$")
CHOICE_LETTERS = "ABCD"
"""The letters a multiple-choice answer may take, in order."""


def boxed_contents(text: str) -> list[str]:
    """The contents of every complete ``\\boxed{...}``/``\\fbox{...}`` in order (``\\boxed 5`` too)."""
    found: list[str] = []
    for m in _BOX.finditer(text):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        found.append(text[i + 1 : j])
                        break
            # an unclosed brace (output cut at the budget) is no answer
        elif m.group(0).endswith((" ", "\t")) and i < len(text):  # "\boxed 5"
            token = re.match(r"[^\s$]+", text[i:])
            if token:
                found.append(token.group(0))
    return found


def _strip_outer(s: str) -> str:
    s = s.strip()
    while True:
        before = s
        s = s.strip().strip("*").strip()
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$").strip()
        for left, right in (("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right):
                s = s[len(left) : -len(right)].strip()
        s = s.rstrip(".").rstrip()
        if s == before:
            return s


def clean_math_answer(answer: str) -> str | None:
    """Tidy an extracted math answer (see the module docstring); ``None`` if nothing is left."""
    s = _strip_outer(answer)
    if "$" in s:  # "the value is $17$" on an Answer line: keep the math
        parts = [p.strip() for p in s.split("$")[1::2] if p.strip()]
        if parts:
            s = _strip_outer(parts[-1])
    if m := _TEXT_ONLY.match(s):
        s = m.group(1).strip()
    elif m := _TRAILING_UNIT.match(s):
        s = m.group(1).strip()
    s = _DEGREES.sub("", s).strip()
    s = s.rstrip(".").strip()
    return s or None


def _extract_math(text: str) -> str | None:
    for content in reversed(boxed_contents(text)):
        if (cleaned := clean_math_answer(content)) is not None:
            return cleaned
    lines = _ANSWER_LINE.findall(text)
    for line in reversed(lines):
        if (cleaned := clean_math_answer(line)) is not None:
            return cleaned
    return None


_CHOICE_ALONE = re.compile(r"^\(?\s*([A-D])\s*\)?(?:[.:)]|\s|$)")
_CHOICE_ANSWER = re.compile(r"(?i:answer)(?:\s+is)?\s*:?\s*\**\s*\(?\s*([A-D])\s*\)?(?![A-Za-z])")
_CHOICE_PAREN = re.compile(r"\(([A-D])\)")
_CHOICE_LONE = re.compile(r"(?<![A-Za-z\\])([A-D])(?![A-Za-z])")


def _extract_choice(text: str) -> str | None:
    for content in reversed(boxed_contents(text)):
        inner = clean_math_answer(content) or ""
        if m := _CHOICE_ALONE.match(inner.upper() if len(inner) == 1 else inner):
            return m.group(1)
    for pattern in (_CHOICE_ANSWER, _CHOICE_PAREN):
        hits = pattern.findall(text)
        if hits:
            return str(hits[-1]).upper()
    for m in reversed(list(_CHOICE_LONE.finditer(text))):
        after = text[m.end() : m.end() + 2]
        if m.group(1) == "A" and re.match(r" [a-z]", after):  # the article "A car ..."
            continue
        return m.group(1)
    return None


def extract_answer(text: str, *, kind: Kind | str) -> str | None:
    """The final answer in ``text``: a cleaned math expression, or a letter A-D; ``None`` if none."""
    if parse_kind(kind) is Kind.CHOICE:
        return _extract_choice(text)
    return _extract_math(text)
