"""The hub's environment, read at call time, and the one translation of huggingface_hub errors.

``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``/``HF_HOME`` and ``HF_ENDPOINT`` are read when called (huggingface_hub
reads some of them at import). Every huggingface_hub/httpx error is translated once, by ``hub_errors``,
into a HubError that says what to try. Re-exported by ``edgekv.hub.download``.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import constants
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

from edgekv.errors import DiskFull, EdgekvError, HubError

API_TIMEOUT_S = 30.0


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


def resolve_endpoint(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def connection_errors() -> tuple[type[BaseException], ...]:
    """OfflineModeIsEnabled plus the transport errors of the HTTP library huggingface_hub uses
    (httpx in 1.x, httpx2 in 2.x): whichever is loaded."""
    mods = [sys.modules.get(name) for name in ("httpx2", "httpx")]
    return (OfflineModeIsEnabled, *(m.TransportError for m in mods if m is not None))


def _http_errors() -> tuple[type[BaseException], ...]:
    mods = [sys.modules.get(name) for name in ("httpx2", "httpx")]
    return tuple(m.HTTPError for m in mods if m is not None)


@contextmanager
def hub_errors(
    repo_id: str,
    *,
    filename: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    repo_type: str = "model",
) -> Iterator[None]:
    """Translate what huggingface_hub (or its HTTP library) raises into one HubError.

    ``repo_type`` "dataset" names the repo as a dataset and points at its page under /datasets/.
    """
    dataset = repo_type == "dataset"
    repo = f"dataset {repo_id}" if dataset else repo_id
    what = f"{repo}/{filename}" if filename else repo
    where = resolve_endpoint(endpoint)
    page = f"{where}/datasets/{repo_id}" if dataset else f"{where}/{repo_id}"
    offline = is_offline()
    try:
        yield
    except EdgekvError:
        raise
    except GatedRepoError as e:
        raise HubError(
            f"{repo} is gated: its files need a token from an account that accepted the license",
            hint=f"accept it at {page}, then set HF_TOKEN to a read token ({where}/settings/tokens)",
        ) from e
    except RepositoryNotFoundError as e:
        raise HubError(
            f"{'dataset' if dataset else 'repository'} {repo_id} not found on {where}",
            hint="check the owner/name spelling; a private repo also needs HF_TOKEN",
        ) from e
    except RevisionNotFoundError as e:
        raise HubError(
            f"revision {revision!r} not found in {repo}",
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
            f"{filename or 'the file'} not found in {repo} at revision {revision or 'main'}",
            hint=f"see the repo's files at {page}",
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
    except connection_errors() as e:
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
