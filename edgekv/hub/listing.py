"""List a hub repo's GGUF files (sizes, sha256, quant) at a resolved commit, or from the cache offline.

Re-exported by ``edgekv.hub.download``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.file_download import repo_folder_name

from edgekv.errors import HubError
from edgekv.hub.env import API_TIMEOUT_S, connection_errors, hub_cache_dir, hub_errors, is_offline, resolve_endpoint
from edgekv.hub.names import HubFile, quant_of
from edgekv.logconfig import get_logger

logger = get_logger("edgekv.hub.download")  # the logger name these messages have always carried

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class RepoListing:
    """A repo's GGUF files at a resolved commit. ``from_cache``: read from the local cache only."""

    repo_id: str
    revision: str
    commit: str | None
    files: tuple[HubFile, ...]
    from_cache: bool = False


def list_gguf_files(
    repo_id: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RepoListing:
    """The repo's .gguf files with sizes and sha256 (one ``model_info(files_metadata=True)`` call).

    Offline (``HF_HUB_OFFLINE=1``) or with the hub unreachable, lists what the cache holds.
    """
    revision = revision or "main"
    if is_offline():
        with hub_errors(repo_id, revision=revision, endpoint=endpoint):  # a repo id the hub would refuse
            cached = _listing_from_cache(repo_id, revision, hub_cache_dir(cache_dir))
        if cached is None:
            raise HubError(
                f"HF_HUB_OFFLINE=1 is set and the cache ({hub_cache_dir(cache_dir)}) has no GGUF of "
                f"{repo_id} at {revision}",
                hint="unset HF_HUB_OFFLINE and download it once",
            )
        return cached
    api = HfApi(endpoint=resolve_endpoint(endpoint), token=token)
    with hub_errors(repo_id, revision=revision, endpoint=endpoint):
        try:
            info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=API_TIMEOUT_S)
        except connection_errors():
            cached = _listing_from_cache(repo_id, revision, hub_cache_dir(cache_dir))
            if cached is None:
                raise
            logger.warning(
                "the hub at %s is unreachable; using the cached files of %s", resolve_endpoint(endpoint), repo_id
            )
            return cached
    files = tuple(
        HubFile(s.rfilename, s.lfs.size if s.lfs else s.size, s.lfs.sha256 if s.lfs else None, quant_of(s.rfilename))
        for s in info.siblings or ()
        if s.rfilename.lower().endswith(".gguf")
    )
    return RepoListing(repo_id, revision, info.sha, files)


def _listing_from_cache(repo_id: str, revision: str, cache: Path) -> RepoListing | None:
    root = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = revision if _COMMIT_RE.match(revision) else None
    ref = root / "refs" / revision
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    snapshot = root / "snapshots" / (commit or "-")
    if commit is None or not snapshot.is_dir():
        return None
    files = []
    for p in sorted(snapshot.rglob("*.gguf")):
        if p.is_file():  # skips dangling links
            rel, blob = p.relative_to(snapshot).as_posix(), p.resolve().name
            files.append(HubFile(rel, p.stat().st_size, blob if _SHA256_RE.match(blob) else None, quant_of(rel)))
    return RepoListing(repo_id, revision, commit, tuple(files), from_cache=True) if files else None
