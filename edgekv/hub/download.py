"""List, choose, download and remotely inspect GGUF files on the Hugging Face hub.

Everything goes through huggingface_hub (tested with 1.33 and 2.x): its cache layout and locks,
``HF_HOME``/``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_HUB_OFFLINE`` and revision pinning. Environment
is read at call time (huggingface_hub reads some of it at import). Every huggingface_hub/httpx error
is translated once, by ``hub_env.hub_errors``, into a HubError that says what to try.

Resuming: huggingface_hub downloads into a process-unique ``.incomplete`` file and, when the
connection drops, retries with a ``Range`` request from the bytes it already has (http_get). A
killed process starts that file over. After a download, the file's sha256 is checked against the
hub's LFS metadata; a mismatch removes the blob and its snapshot link and raises HubError.

This module downloads; it re-exports the rest of the hub API so callers import ``edgekv.hub.download`` only:
hub_names (quant and shard names), hub_env (environment, error translation), hub_listing (repo
listings) and hub_remote (remote header inspection).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from huggingface_hub import hf_hub_download
from huggingface_hub.file_download import repo_folder_name

from edgekv.errors import DiskFull, HubError, ModelFileNotFound
from edgekv.hub.env import hub_cache_dir, hub_errors, is_offline, resolve_endpoint
from edgekv.hub.listing import list_gguf_files
from edgekv.hub.names import (
    HubFile,
    choose_files,
)
from edgekv.logconfig import get_logger
from edgekv.units import MIB, format_bytes

logger = get_logger(__name__)

Progress = Callable[[int, int], None]
"""Download progress callback: (bytes done, bytes to fetch) over all files of a download."""


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    """What a download would fetch: the files (all shards), where they land, what is cached."""

    repo_id: str
    revision: str
    commit: str | None
    files: tuple[HubFile, ...]
    local_paths: tuple[Path, ...]
    cached: tuple[bool, ...]
    cache_dir: Path
    free_bytes: int | None
    from_cache: bool = False

    @property
    def n_bytes(self) -> int:
        return sum(f.n_bytes or 0 for f in self.files)

    @property
    def n_bytes_to_fetch(self) -> int:
        return sum(f.n_bytes or 0 for f, c in zip(self.files, self.cached, strict=True) if not c)

    @property
    def path(self) -> Path:
        """The path to give llama.cpp (the first shard of a split GGUF)."""
        return self.local_paths[0]


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """A finished download (or a dry run: ``paths`` empty)."""

    plan: DownloadPlan
    paths: tuple[Path, ...]
    n_bytes_fetched: int
    dry_run: bool = False

    @property
    def path(self) -> Path:
        return self.paths[0] if self.paths else self.plan.path


def plan_download(
    repo_id: str,
    *,
    quant: str | None = None,
    filename: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> DownloadPlan:
    """Resolve the file for ``quant`` or ``filename`` (all shards), its size and what is cached."""
    cache = hub_cache_dir(cache_dir)
    listing = list_gguf_files(repo_id, endpoint=endpoint, token=token, revision=revision, cache_dir=cache)
    try:
        files = choose_files(listing.files, quant=quant, filename=filename, repo_id=repo_id)
    except ModelFileNotFound as e:
        if not listing.from_cache:
            raise
        why = "HF_HUB_OFFLINE=1 is set" if is_offline() else f"the hub at {resolve_endpoint(endpoint)} is unreachable"
        raise HubError(
            f"{why} and the cache has no such file: {e.message}",
            hint=f"cached: {', '.join(f.filename for f in listing.files)}; download it once online",
        ) from None
    snapshot = cache / repo_folder_name(repo_id=repo_id, repo_type="model") / "snapshots" / (listing.commit or "-")
    paths = tuple(snapshot.joinpath(*f.filename.split("/")) for f in files)
    return DownloadPlan(
        repo_id,
        listing.revision,
        listing.commit,
        files,
        paths,
        tuple(p.is_file() for p in paths),
        cache,
        _free_bytes(cache),
        listing.from_cache,
    )


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            return shutil.disk_usage(p).free
    return None


def check_disk_space(plan: DownloadPlan) -> None:
    """Raise DiskFull if the cache's disk has less free space than the bytes still to fetch."""
    need, free = plan.n_bytes_to_fetch, _free_bytes(plan.cache_dir)
    if free is not None and need > free:
        raise DiskFull(
            f"{plan.files[0].filename}{f' (+{len(plan.files) - 1} shards)' if len(plan.files) > 1 else ''} needs "
            f"{format_bytes(need)} but {plan.cache_dir} has {format_bytes(free)} free",
            hint="free some space, or point HF_HOME (or HF_HUB_CACHE) at a disk with room",
        )


class _ProgressBar:
    """A tqdm stand-in for huggingface_hub's ``tqdm_class``: forwards bytes to a Progress callback.

    It has ``update_transfer`` so hf_xet's reporter uses one bar and counts bytes written once."""

    def __init__(self, progress: Progress, done: list[int], total_all: int, **kwargs: Any) -> None:
        self._progress, self._done, self._total_all = progress, done, total_all
        self.total: int | None = kwargs.get("total")
        self.n = 0
        self.format_dict: dict[str, Any] = {}

    def update(self, n: int | float | None = 1) -> None:
        step = int(n or 0)
        self.n += step
        self._done[0] += step
        self._progress(self._done[0], self._total_all)

    def update_transfer(self, n: int | float | None = 1) -> None:
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    set_transfer_postfix_str = set_description = set_postfix_str

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bar_class(progress: Progress, total: int) -> type[_ProgressBar]:
    """A _ProgressBar class whose instances (one per file) add up to one running total."""
    done = [0]

    class Bar(_ProgressBar):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(progress, done, total, **kwargs)

    return Bar


def fetch(
    plan: DownloadPlan,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    progress: Progress | None = None,
) -> DownloadResult:
    """Download a plan's files into the hub cache and check each new file's sha256.

    Raises:
        DiskFull: not enough free space for the bytes still to fetch (checked before starting).
        HubError: any hub or network failure, or a checksum mismatch (the bad file is removed).
    """
    check_disk_space(plan)
    bar = _bar_class(progress, plan.n_bytes_to_fetch) if progress else None
    paths: list[Path] = []
    for f, expected, was_cached in zip(plan.files, plan.local_paths, plan.cached, strict=True):
        with hub_errors(plan.repo_id, filename=f.filename, revision=plan.revision, endpoint=endpoint):
            got = hf_hub_download(
                plan.repo_id,
                f.filename,
                revision=plan.revision,
                cache_dir=plan.cache_dir,
                endpoint=resolve_endpoint(endpoint),
                token=token,
                local_files_only=plan.from_cache or is_offline(),
                tqdm_class=cast(Any, bar),
            )
        path = Path(got)
        if plan.commit and os.path.abspath(path) != os.path.abspath(expected):
            raise HubError(
                f"{plan.repo_id} changed while downloading ({plan.revision} moved past {plan.commit})",
                hint="run the command again",
            )
        if not was_cached and f.sha256:
            _verify(path, f, plan.repo_id)
        paths.append(path)
    return DownloadResult(plan, tuple(paths), plan.n_bytes_to_fetch)


def download(
    repo_id: str,
    *,
    quant: str | None = None,
    filename: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> DownloadResult:
    """Download the GGUF for ``quant`` (or ``filename``) from ``repo_id``: plan_download + fetch.

    ``dry_run``: only resolve what would be fetched (``result.plan``: files, bytes, cache state).
    """
    plan = plan_download(
        repo_id, quant=quant, filename=filename, endpoint=endpoint, token=token, revision=revision, cache_dir=cache_dir
    )
    if dry_run:
        return DownloadResult(plan, (), 0, dry_run=True)
    return fetch(plan, endpoint=endpoint, token=token, progress=progress)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 * MIB):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, f: HubFile, repo_id: str) -> None:
    """Check a fresh download against the hub's sha256; on mismatch remove blob + snapshot link."""
    got = _sha256(path)
    if got == f.sha256:
        return
    blob = path.resolve()
    for p in (path, blob):
        p.unlink(missing_ok=True)
    raise HubError(
        f"{repo_id}/{f.filename} failed its checksum: the hub says sha256 {f.sha256}, the download has {got}; "
        "the bad file was removed from the cache",
        hint="run the download again; if it repeats, a proxy or mirror is altering the file",
    )


def cached_file(repo_id: str, filename: str, *, cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """A file already in huggingface_hub's cache (no network), or None.

    Raises:
        HubError: ``repo_id`` or ``filename`` is not valid (e.g. from a hand-edited plan file).
    """
    from huggingface_hub import try_to_load_from_cache

    with hub_errors(repo_id, filename=filename):
        cached = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache_dir(cache_dir)))
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    return None
