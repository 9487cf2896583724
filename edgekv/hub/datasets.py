"""Download one file of a dataset repo on the Hugging Face hub (eval reaches huggingface_hub only through here).

It goes through ``hf_hub_download(repo_type="dataset")``, so files land in huggingface_hub's cache
(``HF_HOME``) and are reused with ``HF_HUB_OFFLINE=1``. The environment is read at call time;
``endpoint=`` and ``cache_dir=`` are arguments so tests point it at a fake hub. Every huggingface_hub
or HTTP error becomes a HubError that says what to try, by the hub's one translation (``env.hub_errors``).
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import hf_hub_download

from edgekv.hub.env import hub_cache_dir, hub_errors, is_offline, resolve_endpoint


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
    with hub_errors(repo_id, filename=filename, revision=revision, endpoint=where, repo_type="dataset"):
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
