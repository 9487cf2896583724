"""The user's catalog on disk: the entries ``edgekv catalog add`` writes and ``catalog remove`` deletes.

One JSON file per model in ``catalog.user_catalog_dir()`` (``<user dir>/catalog/<name>.json``, schema
``catalog.USER_SCHEMA``). An entry is built from the published GGUFs' headers (``entry_from_specs``):
the spec llama.cpp reads (architecture, layers, heads per layer, sliding-window layers, experts), and
per quant its exact weight bytes, split as the memory model needs them (``catalog_build.weights_entry``).
It holds no config.json and no compute buffers (pick estimates those), and no scores unless given:
without scores the rule counts the model by its own size.

Writes are atomic (``fsutil.write_atomic``: a temporary file renamed over the target) and refuse to
replace an entry unless ``force``; every entry is checked (``catalog.check_user_entry``) before it is
written, as it is again when pick loads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekv.errors import ModelFileNotFound, OutputExists, SpecError
from edgekv.fsutil import write_atomic
from edgekv.model.quant import WeightQuant
from edgekv.model.spec import ModelSpec
from edgekv.plan.capacity import parse_scores
from edgekv.store.catalog import (
    NAME_RE,
    USER_SCHEMA,
    CatalogModel,
    check_user_entry,
    load_catalog,
    load_user_catalog,
    user_catalog_dir,
)
from edgekv.store.catalog_build import weights_entry

__all__ = ["entry_from_specs", "entry_path", "remove_entry", "write_entry"]


def entry_path(name: str) -> Path:
    """Where the user entry ``name`` lives: ``<user catalog>/<name, lower case>.json``."""
    if not NAME_RE.fullmatch(name):
        raise SpecError(f"catalog name {name!r} is not a plain name", hint="use letters, digits, . _ + -")
    return Path(user_catalog_dir()) / f"{name.lower()}.json"


def entry_from_specs(
    name: str, *, family: str, repo: str, revision: str | None, files: Mapping[WeightQuant, str],
    specs: Mapping[WeightQuant, ModelSpec], scores: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A user entry (schema 1) for one model of a hub repo, from each quant's header spec (with its
    tensors). The quants must agree on the architecture: they are one model's files."""
    if not specs:
        raise SpecError(f"{repo}: no quant of {name} to add")
    first = next(iter(specs.values()))
    shape = _shape(first)
    for q, spec in specs.items():
        if _shape(spec) != shape:
            raise SpecError(f"{repo}: {files[q]} is another model than {files[next(iter(specs))]} (its shape differs)")
    data: dict[str, Any] = {
        "schema": USER_SCHEMA,
        "name": name,
        "family": family,
        "hf_repo": repo,
        "gguf_repo": repo,
        "revision": revision,
        "files": {q.value: files[q] for q in specs},
        "spec": shape,
        "n_params": first.n_params,
        "weights": {q.value: weights_entry(spec) for q, spec in specs.items()},
        "sources": {
            "spec": f"the GGUF headers of {repo}" + (f" at {revision}" if revision else "") + " (edgekv catalog add)",
        },
    }
    if scores:
        parse_scores(scores, f"{name} scores")  # the capacity module's checks
        data["scores"] = scores
    check_user_entry(data, name)
    return data


def _shape(spec: ModelSpec) -> dict[str, Any]:
    return {
        "arch": spec.arch, "n_layer": spec.n_layer, "n_embd": spec.n_embd, "n_head": spec.n_head,
        "n_head_kv": list(spec.n_head_kv), "head_dim_k": spec.head_dim_k, "head_dim_v": spec.head_dim_v,
        "n_ff": spec.n_ff, "n_vocab": spec.n_vocab, "n_ctx_train": spec.n_ctx_train,
        "swa_layers": list(spec.swa_layers), "n_swa": spec.n_swa, "tied_embeddings": spec.tied_embeddings,
        "n_expert": spec.n_expert, "n_expert_used": spec.n_expert_used, "n_ff_exp": spec.n_ff_exp,
        "n_expert_shared": spec.n_expert_shared, "n_ff_shexp": spec.n_ff_shexp,
    }  # fmt: skip


def write_entry(data: Mapping[str, Any], *, force: bool = False) -> Path:
    """Write a user entry atomically; an existing one needs ``force``, a built-in's name is refused.

    Raises:
        OutputExists: the entry exists and ``force`` is not set.
        SpecError: the entry is not valid, or a built-in entry has its name.
    """
    name = str(data["name"])
    path = entry_path(name)
    check_user_entry(dict(data), str(path))
    if name.lower() in {m.name.lower() for m in load_catalog()}:
        raise SpecError(f"{name} is a built-in catalog entry", hint="name it otherwise (--name) to add this repo's")
    if path.exists() and not force:
        raise OutputExists(f"catalog entry {name} exists at {path}", hint="pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=1) + "\n")
    return path


def user_entries() -> list[CatalogModel]:
    """The valid user entries (the files pick would use)."""
    return load_user_catalog().models


def remove_entry(name: str) -> Path:
    """Delete the user entry ``name`` (case-insensitive); built-in entries are not removable here.

    Raises:
        SpecError: ``name`` is a built-in entry.
        ModelFileNotFound: no user entry has that name.
    """
    for m in user_entries():
        if m.name.lower() == name.lower():
            os.remove(m.source)
            return Path(m.source)
    path = entry_path(name)
    if path.is_file():  # an entry pick leaves out (invalid): removing it is what its message suggests
        path.unlink()
        return path
    if name.lower() in {m.name.lower() for m in load_catalog()}:
        raise SpecError(f"{name} is a built-in catalog entry (models/)", hint="catalog remove deletes only added ones")
    known = ", ".join(m.name for m in user_entries()) or "none"
    raise ModelFileNotFound(f"no added catalog entry named {name!r}", hint=f"added entries: {known}")
