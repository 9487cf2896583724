"""``edgekv catalog add``'s hub side: a catalog entry per model of a GGUF repo, from its headers alone.

Lists the repo's GGUF files (``listing``), groups them by model and quant (``names``: all shards of a
split file together) and reads each chosen file's header with HTTP range requests, as ``pick --repo``
does (``remote.inspect_remote``), at one commit. Quants llama.cpp names as file types (``WeightQuant``:
Q4_K_M, Q8_0, BF16, ...) are added; others a repo may hold (IQ*-imatrix variants edgekv has no rule
for, bartowski's Q4_K_L, unsloth's UD-*_XL) are listed as skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekv.errors import ModelFileNotFound, SpecError
from edgekv.hub.listing import list_gguf_files
from edgekv.hub.names import available_quants, group_files, model_stem, normalize_quant
from edgekv.hub.remote import inspect_remote
from edgekv.model.quant import WeightQuant
from edgekv.model.spec import ModelSpec
from edgekv.store.user_catalog import entry_from_specs

__all__ = ["RepoEntry", "entries_from_repo"]


@dataclass(frozen=True)
class RepoEntry:
    """One model of a repo as a catalog entry, and the files left out of it (with why)."""

    data: dict[str, Any]
    skipped: list[str] = field(default_factory=list)


def entries_from_repo(
    repo_id: str, *, quants: Sequence[str] | None = None, family: str | None = None, name: str | None = None,
    endpoint: str | None = None, token: str | bool | None = None, revision: str | None = None,
) -> list[RepoEntry]:  # fmt: skip
    """One entry per model in ``repo_id`` (usually one), each quant sized from its GGUF header.

    ``quants`` limits the quants read (default: every one edgekv knows); ``family`` defaults to the
    GGUF's architecture; ``name`` (one model only) replaces the name taken from the file names.

    Raises:
        ModelFileNotFound: the repo has no GGUF of a known quant (or none of ``quants``).
        SpecError: ``name`` given for a repo of several models.
    """
    listing = list_gguf_files(repo_id, endpoint=endpoint, token=token, revision=revision)
    wanted = {normalize_quant(q) for q in quants} if quants else None
    by_model: dict[str, dict[WeightQuant, str]] = {}
    skipped: dict[str, list[str]] = {}
    for g in group_files(listing.files):
        stem = model_stem(g[0].filename, g[0].quant)
        if g[0].quant is None:
            skipped.setdefault(stem, []).append(f"{g[0].filename} (names no quant)")
            continue
        if wanted is not None and g[0].quant not in wanted:
            continue
        try:
            q = WeightQuant.parse(g[0].quant)
        except SpecError:
            skipped.setdefault(stem, []).append(f"{g[0].filename} ({g[0].quant}: no llama.cpp file type edgekv sizes)")
            continue
        by_model.setdefault(stem, {})[q] = g[0].filename
    if not by_model:
        have = ", ".join(available_quants(listing.files)) or "none"
        what = ", ".join(sorted(wanted)) if wanted else "a quant edgekv knows"
        raise ModelFileNotFound(f"{repo_id} has no GGUF of {what}", hint=f"it has: {have}")
    if name is not None and len(by_model) > 1:
        raise SpecError(f"{repo_id} holds {len(by_model)} models ({', '.join(by_model)})", hint="--name needs one")
    out = []
    for stem, files in sorted(by_model.items()):
        specs: dict[WeightQuant, ModelSpec] = {}
        for q, filename in sorted(files.items(), key=lambda kv: list(WeightQuant).index(kv[0])):
            spec, _ = inspect_remote(repo_id, filename, endpoint=endpoint, token=token, revision=listing.commit)
            specs[q] = spec
        first = next(iter(specs.values()))
        data = entry_from_specs(
            name or stem, family=family or first.arch, repo=repo_id, revision=listing.commit, files=files, specs=specs
        )
        out.append(RepoEntry(data, skipped.get(stem, [])))
    return out
