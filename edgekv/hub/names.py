"""Quant names and shard names of GGUF files on the hub: pure string matching, no I/O.

``normalize_quant``/``quant_of`` read llama.cpp quant labels out of file names, ``group_files``/
``choose_files`` pick one model file (all shards of a split GGUF), ``shard_names`` spells a split
GGUF's shard names. Re-exported by ``edgekv.hub.download``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from edgekv.errors import ModelFileNotFound, SpecError
from edgekv.model.quant import WeightQuant

SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)  # llama_split_path
_SKIP_RE = re.compile(r"(^|/)(mmproj|imatrix)[^/]*$", re.IGNORECASE)  # vision projectors, importance matrices
# Quant names published on the hub beyond llama_ftype: repacked, ternary, MXFP4, bartowski's *_L
# (Q8_0 embeddings) and unsloth's *_XL (with their UD- prefix).
_EXTRA_QUANTS = (
    "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "TQ1_0", "TQ2_0",
    "MXFP4", "MXFP4_MOE", "Q2_K_L", "Q2_K_XL", "Q3_K_XL", "Q4_K_L", "Q4_K_XL", "Q5_K_L", "Q5_K_XL",
    "Q6_K_L", "Q6_K_XL", "Q8_K_XL", "FP16", "FP32",
)  # fmt: skip
_ALIASES = {"FP16": "F16", "FP32": "F32"}


def _atoms(text: str) -> tuple[str, ...]:
    return tuple(a for a in re.split(r"[-_./\s]+", text.upper()) if a)


def _label(atoms: tuple[str, ...]) -> str:
    if atoms[0] == "UD" and len(atoms) > 1:
        return "UD-" + _label(atoms[1:])
    name = "_".join(atoms)
    return _ALIASES.get(name, name)


def normalize_quant(text: str) -> str:
    """A quant name as edgekv labels it: ``q4-k-m`` -> ``Q4_K_M``, ``fp16`` -> ``F16``."""
    atoms = _atoms(text)
    if not atoms:
        raise SpecError(f"empty quant name {text!r}", hint="for example Q4_K_M or Q8_0")
    return _label(atoms)


def _known_quants(extra: Sequence[str] = ()) -> list[tuple[str, ...]]:
    names = [q.value for q in WeightQuant] + list(_EXTRA_QUANTS) + list(extra)
    found = {_atoms(n) for n in names}
    found |= {("UD", *a) for a in found if a[0] != "UD"}
    return sorted(found, key=len, reverse=True)  # longest first: Q4_0_4_4 before Q4_0


def quant_of(filename: str, *, extra: Sequence[str] = ()) -> str | None:
    """The quant a GGUF path names (the last one, so the file name wins over its folder).

    Names are split into atoms at ``- _ . /`` and matched longest-first, so ``Q4_0_4_4`` is never
    read as Q4_0 and ``Q4_K_S`` never as Q4_K_M. ``None`` if the path names no quant.
    """
    m = SHARD_RE.match(filename)
    stem = m["prefix"] if m else re.sub(r"\.gguf$", "", filename, flags=re.IGNORECASE)
    atoms, known = _atoms(stem), _known_quants(extra)
    found, i = None, 0
    while i < len(atoms):
        hit = next((q for q in known if atoms[i : i + len(q)] == q), None)
        if hit:
            found, i = _label(hit), i + len(hit)
        else:
            i += 1
    return found


@dataclass(frozen=True, slots=True)
class HubFile:
    """One GGUF file of a repo, with the hub's size and LFS sha256 (None when unknown)."""

    filename: str
    n_bytes: int | None
    sha256: str | None
    quant: str | None

    @property
    def shard(self) -> tuple[int, int] | None:
        """(shard number, shard count), 1-based, for a split GGUF."""
        m = SHARD_RE.match(self.filename)
        return (int(m["no"]), int(m["count"])) if m else None


def group_files(files: Sequence[HubFile]) -> list[tuple[HubFile, ...]]:
    """Model files: one tuple per GGUF, all shards of a split GGUF in order. Skips mmproj/imatrix."""
    groups: dict[str, list[HubFile]] = {}
    for f in files:
        if _SKIP_RE.search(f.filename):
            continue
        m = SHARD_RE.match(f.filename)
        groups.setdefault(f"{m['prefix']}|{m['count']}" if m else f.filename, []).append(f)
    return [tuple(sorted(g, key=lambda f: f.shard or (0, 0))) for _, g in sorted(groups.items())]


def available_quants(files: Sequence[HubFile]) -> list[str]:
    """The quants a listing offers, in WeightQuant order (best first), then others by name."""
    found = {g[0].quant for g in group_files(files) if g[0].quant}
    order = {q.value: i for i, q in enumerate(WeightQuant)}
    return sorted(found, key=lambda q: (order.get(q, len(order)), q))


def choose_files(
    files: Sequence[HubFile], *, quant: str | None = None, filename: str | None = None, repo_id: str = "the repo"
) -> tuple[HubFile, ...]:
    """The file (all shards of a split GGUF) for ``quant`` or ``filename``.

    Raises:
        ModelFileNotFound: nothing matches; the message lists the quants (or files) there are.
        SpecError: neither or both of quant/filename given, or several files match the quant.
    """
    if (quant is None) == (filename is None):
        raise SpecError("say which file: a quant or a file name", hint="pass --quant Q4_K_M or --file NAME.gguf")
    groups = group_files(files)
    if not groups:
        raise ModelFileNotFound(f"{repo_id} has no .gguf files", hint="it may hold safetensors: see edgekv convert")
    if filename is not None:
        match = [g for g in groups if any(f.filename == filename for f in g)]
        if not match:
            names = ", ".join(g[0].filename for g in groups)
            raise ModelFileNotFound(f"{repo_id} has no file {filename}", hint=f"its GGUF files: {names}")
        return _whole(match[0], repo_id)
    want = normalize_quant(quant or "")
    match = [g for g in groups if quant_of(g[0].filename, extra=(want,)) == want]
    if not match and not want.startswith("UD-"):
        match = [g for g in groups if quant_of(g[0].filename, extra=(want,)) == "UD-" + want]
    if not match:
        have = available_quants(files)
        other = [g[0].filename for g in groups if not g[0].quant]
        listed = ", ".join(have) if have else "none"
        extra = f"; files naming no quant: {', '.join(other)}" if other else ""
        raise ModelFileNotFound(f"{repo_id} has no {want} GGUF", hint=f"it has: {listed}{extra}")
    if len(match) > 1:
        names = ", ".join(g[0].filename for g in match)
        raise SpecError(f"{repo_id} has several {want} files: {names}", hint="pick one with --file NAME")
    return _whole(match[0], repo_id)


def _whole(group: tuple[HubFile, ...], repo_id: str) -> tuple[HubFile, ...]:
    count = group[0].shard[1] if group[0].shard else 1
    if [f.shard[0] if f.shard else 1 for f in group] != list(range(1, count + 1)):
        raise ModelFileNotFound(
            f"{repo_id}: split GGUF {group[0].filename} has {len(group)} of {count} shards",
            hint="the repo is incomplete; pick another quant or file",
        )
    return group


def shard_names(filename: str) -> list[str]:
    """All shard names of a split GGUF (``x-00001-of-00003.gguf`` -> 3 names); else ``[filename]``."""
    m = SHARD_RE.match(filename)
    if not m:
        return [filename]
    n = int(m["count"])
    return [f"{m['prefix']}-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]


def model_stem(filename: str, quant: str | None) -> str:
    """The model a GGUF file is of: its name without folder, shard suffix, ``.gguf`` and quant label
    (``Q4_K_M/Qwen_Qwen3-8B-Q4_K_M-00001-of-00002.gguf`` -> ``Qwen_Qwen3-8B``)."""
    stem = SHARD_RE.sub(r"\g<prefix>", filename.rsplit("/", 1)[-1]).removesuffix(".gguf")
    return re.sub(rf"[-_.]{re.escape(quant)}$", "", stem, flags=re.I) if quant else stem
