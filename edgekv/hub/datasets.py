"""Download one file of a dataset repo on the Hugging Face hub (eval reaches huggingface_hub only through here).

It goes through ``hf_hub_download(repo_type="dataset")``, so files land in huggingface_hub's cache
(``HF_HOME``) and are reused with ``HF_HUB_OFFLINE=1``. The environment is read at call time;
``endpoint=`` and ``cache_dir=`` are arguments so tests point it at a fake hub. Every huggingface_hub
or HTTP error is translated once, here, into a HubError that says what to try.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from edgekv.errors import EdgekvError, HubError
from edgekv.hub.env import connection_errors, hub_cache_dir, is_offline, resolve_endpoint


@contextmanager
def _dataset_errors(repo_id: str, filename: str, *, endpoint: str) -> Iterator[None]:
    what = f"dataset {repo_id}, file {filename}"
    try:
        yield
    except EdgekvError:
        raise
    except GatedRepoError as e:
        raise HubError(
            f"dataset {repo_id} is gated: it needs a token from an account that accepted its terms",
            hint=f"accept them at {endpoint}/datasets/{repo_id}, then set HF_TOKEN to a read token",
        ) from e
    except RepositoryNotFoundError as e:
        raise HubError(f"dataset {repo_id} not found on {endpoint}", hint="a private dataset needs HF_TOKEN") from e
    except RevisionNotFoundError as e:
        raise HubError(f"revision not found in dataset {repo_id}", hint="use a branch, tag or commit") from e
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
        if is_offline():
            raise HubError(
                f"HF_HUB_OFFLINE=1 is set and {what} is not in the cache",
                hint="unset HF_HUB_OFFLINE and download it once",
            ) from e
        raise HubError(
            f"the hub at {endpoint} is unreachable and {what} is not in the cache",
            hint="check the connection, then run the command again",
        ) from e
    except EntryNotFoundError as e:
        raise HubError(f"{what} does not exist", hint=f"see its files at {endpoint}/datasets/{repo_id}") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        raise HubError(f"the hub refused {what} (HTTP {status})", hint="set HF_TOKEN if it is private") from e
    except connection_errors() as e:
        raise HubError(
            f"cannot reach the hub at {endpoint} ({type(e).__name__})",
            hint="check the connection, or set HF_HUB_OFFLINE=1 to use a cached copy",
        ) from e
    except (OSError, ValueError) as e:
        raise HubError(f"download of {what} failed: {e}", hint="run the command again") from e


def download_dataset_file(
    repo_id: str,
    filename: str,
    *,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    revision: str | None = None,
) -> Path:
    """The local path of ``filename`` in dataset ``repo_id``, downloaded into the cache if needed."""
    where = resolve_endpoint(endpoint)
    with _dataset_errors(repo_id, filename, endpoint=where):
        got = hf_hub_download(
            repo_id,
            filename,
            repo_type="dataset",
            revision=revision,
            endpoint=where,
            cache_dir=hub_cache_dir(cache_dir),
            token=token or os.environ.get("HF_TOKEN") or None,
            local_files_only=is_offline(),
        )
    return Path(got)
