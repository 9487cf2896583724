"""Remote inspection: a hub GGUF's exact ModelSpec from its header alone, read with HTTP range requests.

Re-exported by ``edgekv.hub.download``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from huggingface_hub import get_session, hf_hub_url, hf_raise_for_status
from huggingface_hub.file_download import try_to_load_from_cache
from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]  # public, lazily exported

from edgekv.errors import GGUFError, HubError, ModelFileNotFound
from edgekv.hub.env import API_TIMEOUT_S, hub_cache_dir, hub_errors, is_offline, resolve_endpoint
from edgekv.hub.listing import list_gguf_files
from edgekv.hub.names import available_quants, choose_files, group_files, model_stem, normalize_quant, shard_names
from edgekv.logconfig import get_logger
from edgekv.model.gguf_reader import GGUFHeader, parse_header_growing, read_header, spec_from_header
from edgekv.model.spec import ModelSpec
from edgekv.plan.memory import WeightLayout
from edgekv.plan.plans import ModelOption
from edgekv.units import KIB, format_bytes

logger = get_logger("edgekv.hub.download")  # the logger name these messages have always carried

SPLIT_NO = "split.no"  # gguf.Keys.Split.LLM_KV_SPLIT_NO (llama.cpp gguf-split)
SPLIT_COUNT = "split.count"  # gguf.Keys.Split.LLM_KV_SPLIT_COUNT
SPLIT_TENSORS_COUNT = "split.tensors.count"  # gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT
FIRST_HEADER_BYTES = 256 * KIB  # first range of a remote header; gguf_io grows it as needed
LATER_SHARD_BYTES = 64 * KIB


@dataclass(frozen=True, slots=True)
class RemoteReadStats:
    """What ``inspect_remote`` fetched: bytes, requests, and the files' total size (if known)."""

    bytes_read: int
    n_requests: int
    file_bytes: int | None
    n_shards: int


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
        url = hf_hub_url(repo_id, name, revision=revision, endpoint=resolve_endpoint(endpoint))
        with hub_errors(repo_id, filename=name, revision=revision, endpoint=endpoint):
            read = _range_reader(url, build_hf_headers(token=token), counter)
            try:
                # Shards after the first hold only split.* keys and tensor infos: start smaller.
                start = first_bytes if i == 0 else min(first_bytes, LATER_SHARD_BYTES)
                headers.append(parse_header_growing(read, first_bytes=start))
            except GGUFError as e:
                raise GGUFError(e.message, path=f"{repo_id}/{name}", hint=e.hint) from None
    merged = merge_shards(headers, f"{repo_id}/{filename}")
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


def merge_shards(headers: list[GGUFHeader], what: str) -> GGUFHeader:
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
) -> list[ModelOption]:
    """A ``ModelOption`` for each GGUF of a repo (or only ``quants``), sized from its header."""

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
        name = model_stem(g[0].filename, g[0].quant)
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
    siblings: dict[str, dict[str, int]] = {}  # the repo's quants of one model (policy.capped_bytes)
    for o in out:
        siblings.setdefault(o.name, {})[o.quant.upper()] = o.effective_bytes
    return [replace(o, sibling_bytes=siblings[o.name]) for o in out]
