"""List, choose, download and remotely inspect GGUF files on the Hugging Face hub.

Everything goes through huggingface_hub (tested with 1.33 and 2.x): its cache layout and locks,
``HF_HOME``/``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_HUB_OFFLINE`` and revision pinning. Environment
is read at call time (huggingface_hub reads some of it at import). Every huggingface_hub/httpx error
is translated here, once, by ``_hub_errors``, into a HubError that says what to try.

Resuming: huggingface_hub downloads into a process-unique ``.incomplete`` file and, when the
connection drops, retries with a ``Range`` request from the bytes it already has (http_get). A
killed process starts that file over. After a download, the file's sha256 is checked against the
hub's LFS metadata; a mismatch removes the blob and its snapshot link and raises HubError.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from huggingface_hub import HfApi, constants, get_session, hf_hub_download, hf_hub_url, hf_raise_for_status
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name, try_to_load_from_cache
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # public, lazily exported

from edgekv.errors import DiskFull, EdgekvError, GGUFError, HubError, ModelFileNotFound, SpecError
from edgekv.gguf_io import GGUFHeader, parse_header_growing, read_header, spec_from_header
from edgekv.quant import WeightQuant
from edgekv.spec import ModelSpec
from edgekv.units import KIB, MIB, format_bytes

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Download progress callback: (bytes done, bytes to fetch) over all files of a download."""

SPLIT_NO = "split.no"  # gguf.Keys.Split.LLM_KV_SPLIT_NO (llama.cpp gguf-split)
SPLIT_COUNT = "split.count"  # gguf.Keys.Split.LLM_KV_SPLIT_COUNT
SPLIT_TENSORS_COUNT = "split.tensors.count"  # gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT
FIRST_HEADER_BYTES = 256 * KIB  # first range of a remote header; gguf_io grows it as needed
LATER_SHARD_BYTES = 64 * KIB
API_TIMEOUT_S = 30.0
_SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)  # llama_split_path
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_SKIP_RE = re.compile(r"(^|/)(mmproj|imatrix)[^/]*$", re.IGNORECASE)  # vision projectors, importance matrices
# Quant names published on the hub beyond llama_ftype: repacked, ternary, MXFP4, bartowski's *_L
# (Q8_0 embeddings) and unsloth's *_XL (with their UD- prefix).
_EXTRA_QUANTS = (
    "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "TQ1_0", "TQ2_0",
    "MXFP4", "MXFP4_MOE", "Q2_K_L", "Q2_K_XL", "Q3_K_XL", "Q4_K_L", "Q4_K_XL", "Q5_K_L", "Q5_K_XL",
    "Q6_K_L", "Q6_K_XL", "Q8_K_XL", "FP16", "FP32",
)  # fmt: skip
_ALIASES = {"FP16": "F16", "FP32": "F32"}


# --- names ------------------------------------------------------------------------------------


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
    m = _SHARD_RE.match(filename)
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
        m = _SHARD_RE.match(self.filename)
        return (int(m["no"]), int(m["count"])) if m else None


def group_files(files: Sequence[HubFile]) -> list[tuple[HubFile, ...]]:
    """Model files: one tuple per GGUF, all shards of a split GGUF in order. Skips mmproj/imatrix."""
    groups: dict[str, list[HubFile]] = {}
    for f in files:
        if _SKIP_RE.search(f.filename):
            continue
        m = _SHARD_RE.match(f.filename)
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


# --- environment, read at call time -----------------------------------------------------------


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` now (env), or as huggingface_hub read it at import."""
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    if env is not None and env.strip():
        return env.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """huggingface_hub's cache folder: ``cache_dir`` > ``HF_HUB_CACHE`` > ``HF_HOME``/hub > default."""
    if cache_dir is not None:
        p = Path(cache_dir)
    elif os.environ.get("HF_HUB_CACHE"):
        p = Path(os.environ["HF_HUB_CACHE"])
    elif os.environ.get("HF_HOME"):
        p = Path(os.environ["HF_HOME"]) / "hub"
    else:
        p = Path(constants.HF_HUB_CACHE)
    return p.expanduser().resolve()


def _endpoint(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _connection_errors() -> tuple[type[BaseException], ...]:
    """OfflineModeIsEnabled plus the transport errors of the HTTP library huggingface_hub uses
    (httpx in 1.x, httpx2 in 2.x): whichever is loaded."""
    mods = [sys.modules.get(name) for name in ("httpx2", "httpx")]
    return (OfflineModeIsEnabled, *(m.TransportError for m in mods if m is not None))


def _http_errors() -> tuple[type[BaseException], ...]:
    mods = [sys.modules.get(name) for name in ("httpx2", "httpx")]
    return tuple(m.HTTPError for m in mods if m is not None)


@contextmanager
def _hub_errors(
    repo_id: str, *, filename: str | None = None, revision: str | None = None, endpoint: str | None = None
) -> Iterator[None]:
    """Translate what huggingface_hub (or its HTTP library) raises into one HubError."""
    what = f"{repo_id}/{filename}" if filename else repo_id
    where = _endpoint(endpoint)
    offline = is_offline()
    try:
        yield
    except EdgekvError:
        raise
    except GatedRepoError as e:
        raise HubError(
            f"{repo_id} is gated: its files need a token from an account that accepted the license",
            hint=f"accept it at {where}/{repo_id}, then set HF_TOKEN to a read token ({where}/settings/tokens)",
        ) from e
    except RepositoryNotFoundError as e:
        raise HubError(
            f"repository {repo_id} not found on {where}",
            hint="check the owner/name spelling; a private repo also needs HF_TOKEN",
        ) from e
    except RevisionNotFoundError as e:
        raise HubError(
            f"revision {revision!r} not found in {repo_id}",
            hint="use a branch, tag or commit hash of the repo (default: main)",
        ) from e
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        if offline:
            raise HubError(
                f"HF_HUB_OFFLINE=1 is set and {what} is not in the cache ({hub_cache_dir()})",
                hint="unset HF_HUB_OFFLINE and download it once",
            ) from e
        raise HubError(
            f"cannot reach the hub at {where} and {what} is not in the cache",
            hint="check the connection, then run the command again",
        ) from e
    except EntryNotFoundError as e:
        raise HubError(
            f"{filename or 'the file'} not found in {repo_id} at revision {revision or 'main'}",
            hint=f"see the repo's files at {where}/{repo_id}",
        ) from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = (
            "set HF_TOKEN to a token with access to the repo"
            if status in (401, 403)
            else "the hub may be down; try again later"
            if status and status >= 500
            else None
        )
        raise HubError(f"the hub refused {what} (HTTP {status}): {first}", hint=hint) from e
    except HFValidationError as e:
        raise HubError(f"{repo_id!r} is not a valid repo id: {e}", hint="write it as owner/name") from e
    except _connection_errors() as e:
        raise HubError(
            f"cannot reach the hub at {where} ({type(e).__name__}: {e})",
            hint="check the connection, or set HF_HUB_OFFLINE=1 to use a file already in the cache",
        ) from e
    except _http_errors() as e:
        raise HubError(f"request for {what} failed ({type(e).__name__}: {e})", hint="run the command again") from e
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DiskFull(
                f"the disk filled up while downloading {what}",
                hint="free some space, or point HF_HOME at a larger disk",
            ) from e
        raise HubError(f"download of {what} failed: {e}", hint="run the command again") from e
    except ValueError as e:  # huggingface_hub's argument checks
        raise HubError(f"huggingface_hub refused {what}: {e}") from e


# --- listing ----------------------------------------------------------------------------------


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
        cached = _listing_from_cache(repo_id, revision, hub_cache_dir(cache_dir))
        if cached is None:
            raise HubError(
                f"HF_HUB_OFFLINE=1 is set and the cache ({hub_cache_dir(cache_dir)}) has no GGUF of "
                f"{repo_id} at {revision}",
                hint="unset HF_HUB_OFFLINE and download it once",
            )
        return cached
    api = HfApi(endpoint=_endpoint(endpoint), token=token)
    with _hub_errors(repo_id, revision=revision, endpoint=endpoint):
        try:
            info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=API_TIMEOUT_S)
        except _connection_errors():
            cached = _listing_from_cache(repo_id, revision, hub_cache_dir(cache_dir))
            if cached is None:
                raise
            logger.warning("the hub at %s is unreachable; using the cached files of %s", _endpoint(endpoint), repo_id)
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


# --- download ---------------------------------------------------------------------------------


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
        why = "HF_HUB_OFFLINE=1 is set" if is_offline() else f"the hub at {_endpoint(endpoint)} is unreachable"
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
        with _hub_errors(plan.repo_id, filename=f.filename, revision=plan.revision, endpoint=endpoint):
            got = hf_hub_download(
                plan.repo_id,
                f.filename,
                revision=plan.revision,
                cache_dir=plan.cache_dir,
                endpoint=_endpoint(endpoint),
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


# --- remote inspection ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteReadStats:
    """What ``inspect_remote`` fetched: bytes, requests, and the files' total size (if known)."""

    bytes_read: int
    n_requests: int
    file_bytes: int | None
    n_shards: int


def shard_names(filename: str) -> list[str]:
    """All shard names of a split GGUF (``x-00001-of-00003.gguf`` -> 3 names); else ``[filename]``."""
    m = _SHARD_RE.match(filename)
    if not m:
        return [filename]
    n = int(m["count"])
    return [f"{m['prefix']}-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]


def inspect_remote(
    repo_id: str,
    filename: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    first_bytes: int = FIRST_HEADER_BYTES,
) -> tuple[ModelSpec, RemoteReadStats]:
    """The exact ModelSpec of a hub GGUF from its header alone, read with HTTP range requests.

    ``filename`` may also be a quant name (``Q4_K_M``). Split GGUFs: every shard's header is read
    and the tensors merged (the first shard holds the metadata). Offline, a cached copy is read.
    """
    if not filename.lower().endswith(".gguf"):
        listing = list_gguf_files(repo_id, endpoint=endpoint, token=token, revision=revision, cache_dir=cache_dir)
        filename = choose_files(listing.files, quant=filename, repo_id=repo_id)[0].filename
        revision = listing.commit or revision
    names = shard_names(filename)
    headers: list[GGUFHeader] = []
    counter = _ReadCounter()
    for i, name in enumerate(names):
        if is_offline():
            local = try_to_load_from_cache(repo_id, name, cache_dir=hub_cache_dir(cache_dir), revision=revision)
            if not isinstance(local, str):
                raise HubError(
                    f"HF_HUB_OFFLINE=1 is set and {repo_id}/{name} is not in the cache",
                    hint="unset HF_HUB_OFFLINE to read its header from the hub",
                )
            headers.append(read_header(local))
            continue
        url = hf_hub_url(repo_id, name, revision=revision, endpoint=_endpoint(endpoint))
        with _hub_errors(repo_id, filename=name, revision=revision, endpoint=endpoint):
            read = _range_reader(url, build_hf_headers(token=token), counter)
            try:
                # Shards after the first hold only split.* keys and tensor infos: start smaller.
                start = first_bytes if i == 0 else min(first_bytes, LATER_SHARD_BYTES)
                headers.append(parse_header_growing(read, first_bytes=start))
            except GGUFError as e:
                raise GGUFError(e.message, path=f"{repo_id}/{name}", hint=e.hint) from None
    merged = _merge_shards(headers, f"{repo_id}/{filename}")
    spec = spec_from_header(merged, name=Path(names[0]).name, path=f"{repo_id}/{names[0]}")
    stats = RemoteReadStats(
        counter.bytes_read, counter.n_requests, sum(counter.file_bytes.values()) or None, len(names)
    )
    logger.info("read %s in %d requests for the header of %s/%s", format_bytes(stats.bytes_read), stats.n_requests,
                repo_id, filename)  # fmt: skip
    return spec, stats


@dataclass(slots=True)
class _ReadCounter:
    bytes_read: int = 0
    n_requests: int = 0
    file_bytes: dict[str, int] = field(default_factory=dict)  # url -> size from Content-Range


def _range_reader(url: str, headers: dict[str, str], counter: _ReadCounter) -> Callable[[int, int], bytes]:
    """``read(start, end)``: bytes [start, end) of ``url`` by one ranged GET (streamed, so a server
    that ignores Range costs only the bytes needed)."""
    session = get_session()

    def read(start: int, end: int) -> bytes:
        h = {**headers, "Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        buf = bytearray()
        with session.stream("GET", url, headers=h, timeout=API_TIMEOUT_S) as r:
            counter.n_requests += 1
            if r.status_code == 416:  # the range starts past the end of the file
                return b""
            if r.status_code >= 400:
                r.read()
                hf_raise_for_status(r)
            skip = start if r.status_code == 200 else 0  # Range ignored: drop the prefix
            total = r.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit():
                counter.file_bytes[url] = int(total)
            for chunk in r.iter_bytes():
                buf.extend(chunk)
                if len(buf) >= skip + end - start:
                    break
        counter.bytes_read += len(buf)
        return bytes(buf[skip : skip + end - start])

    return read


def _merge_shards(headers: list[GGUFHeader], what: str) -> GGUFHeader:
    """One header from a split GGUF's shards: the first shard's metadata, every shard's tensors."""
    first = headers[0]
    if len(headers) == 1:
        return first
    count, n_tensors = first.fields.get(SPLIT_COUNT), first.fields.get(SPLIT_TENSORS_COUNT)
    if count != len(headers):
        raise GGUFError(f"{SPLIT_COUNT} is {count} but there are {len(headers)} shards", path=what)
    for i, h in enumerate(headers):
        if h.fields.get(SPLIT_NO) != i:
            raise GGUFError(f"shard {i + 1} has {SPLIT_NO} = {h.fields.get(SPLIT_NO)}", path=what)
    tensors = [t for h in headers for t in h.tensors]
    if n_tensors is not None and n_tensors != len(tensors):
        raise GGUFError(f"{SPLIT_TENSORS_COUNT} is {n_tensors} but the shards hold {len(tensors)} tensors", path=what)
    offsets = [o for h in headers for o in h.tensor_offsets]
    return GGUFHeader(first.version, first.fields, tensors, offsets, first.data_offset, first.header_bytes)


def inspect_remote_cli(
    repo_id: str,
    filename: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
) -> ModelSpec:
    """What ``edgekv inspect REPO FILE --remote`` needs: the ModelSpec (bytes read are logged)."""
    spec, _stats = inspect_remote(repo_id, filename, endpoint=endpoint, token=token, revision=revision)
    return spec


def options_from_repo(
    repo_id: str,
    *,
    quants: Sequence[str] | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
) -> list[Any]:
    """``policy.ModelOption`` for each GGUF of a repo (or only ``quants``), sized from its header."""
    from edgekv.memory import WeightLayout
    from edgekv.policy import ModelOption

    listing = list_gguf_files(repo_id, endpoint=endpoint, token=token, revision=revision)
    wanted = {normalize_quant(q) for q in quants} if quants else None
    groups = [g for g in group_files(listing.files) if wanted is None or g[0].quant in wanted]
    if not groups:
        raise ModelFileNotFound(
            f"{repo_id} has no GGUF for {', '.join(sorted(wanted or ())) or 'any quant'}",
            hint=f"it has: {', '.join(available_quants(listing.files)) or 'none'}",
        )
    out = []
    for g in groups:
        spec, _ = inspect_remote(repo_id, g[0].filename, endpoint=endpoint, token=token, revision=listing.commit)
        stem = _SHARD_RE.sub(r"\g<prefix>", Path(g[0].filename).name).removesuffix(".gguf")
        name = re.sub(rf"[-_.]{re.escape(g[0].quant)}$", "", stem, flags=re.I) if g[0].quant else stem
        out.append(
            ModelOption(
                name=name,
                quant=g[0].quant or spec.file_type or "?",
                spec=spec,
                layout=WeightLayout.from_spec(spec),
                effective_bytes=spec.weights_bytes,
                repo=repo_id,
                file=g[0].filename,
                n_params=spec.n_params,
            )
        )
    return out
