"""``edgekv catalog``'s requests: add hub repos to the user's catalog, list what pick considers, remove one.

``add`` reads only GGUF headers (``hub.catalog_add``) and writes one entry per model
(``store.user_catalog``); ``list`` and ``remove`` read the disk only, offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from edgekv.store.catalog import CatalogModel


@dataclass(frozen=True)
class Added:
    """One entry ``catalog add`` wrote: its name, file, quants and what of the repo it left out."""

    name: str
    repo: str
    path: Path
    quants: list[str]
    arch: str
    n_params: int
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CatalogAddRequest:
    """``edgekv catalog add REPO [REPO...]``: each repo's models from their headers, into the user's catalog."""

    repos: tuple[str, ...]
    quants: str | None = None
    family: str | None = None
    name: str | None = None
    revision: str | None = None
    force: bool = False
    endpoint: str | None = None

    def run(self) -> list[Added]:
        """Read every repo first, then write: a repo that fails leaves the catalog as it was.

        Raises:
            SpecError: no repo, --name with several repos, an entry refused (exists without --force, built-in name).
        """
        from edgekv.errors import OutputExists, SpecError
        from edgekv.hub.catalog_add import entries_from_repo
        from edgekv.store.catalog import load_catalog
        from edgekv.store.user_catalog import entry_path, write_entry
        from edgekv.units import parse_list

        if not self.repos:
            raise SpecError("name at least one hub repo", hint="edgekv catalog add bartowski/Qwen_Qwen3-8B-GGUF")
        if self.name and len(self.repos) > 1:
            raise SpecError("--name names one model", hint="add one repo at a time with --name")
        quants = parse_list(self.quants) if self.quants is not None else None
        if quants is not None and not quants:
            raise SpecError("--quants is empty", hint="e.g. --quants Q4_K_M,Q8_0")
        entries = []
        for repo in self.repos:
            entries += [
                (repo, e) for e in entries_from_repo(repo, quants=quants, family=self.family, name=self.name,
                                                     endpoint=self.endpoint, revision=self.revision)
            ]  # fmt: skip
        builtin = {m.name.lower() for m in load_catalog()}
        for _, e in entries:  # refuse before writing any: all or nothing
            name = e.data["name"]
            if name.lower() in builtin:
                raise SpecError(f"{name} is a built-in catalog entry", hint="name it otherwise (--name)")
            if not self.force and entry_path(name).exists():
                raise OutputExists(f"catalog entry {name} exists", hint="pass --force to replace it")
        out = []
        for repo, e in entries:
            path = write_entry(e.data, force=self.force)
            d = e.data
            out.append(Added(d["name"], repo, path, list(d["weights"]), d["spec"]["arch"], d["n_params"], e.skipped))
        return out


def catalog_rows() -> tuple[list[dict[str, Any]], list[str]]:
    """Every catalog entry pick considers (built-in, then added), as rows, and the added files left out."""
    from edgekv.store.catalog import load_all, options_from_catalog, references

    loaded = load_all()
    refs = references(loaded.models)
    ranked = {o.name for o in options_from_catalog(loaded.models, refs=refs)}
    return [_row(m, m.name in ranked, refs) for m in loaded.models], loaded.problems


def _row(m: CatalogModel, ranked: bool, refs: Any) -> dict[str, Any]:
    cap = m.capacity(refs)
    files = sorted(q.value for q, e in m.quants.items() if e.file)
    return {
        "name": m.name, "family": m.family, "arch": m.spec.arch, "n_params": m.n_params, "moe": m.spec.is_moe,
        "quants": [q.value for q in m.quants], "files": files,
        "repo": next((e.repo for e in m.quants.values() if e.repo), None),
        "capacity_params": cap.n_params if cap else None, "capacity": cap.describe() if cap else None,
        "ranked": ranked, "origin": m.origin, "source": m.source,
    }  # fmt: skip


@dataclass(frozen=True, slots=True)
class CatalogRemoveRequest:
    """``edgekv catalog remove NAME``: delete an added entry (built-in ones live in models/)."""

    name: str

    def run(self) -> Path:
        from edgekv.store.user_catalog import remove_entry

        return remove_entry(self.name)
