"""A fake Hugging Face hub: a stdlib ThreadingHTTPServer on 127.0.0.1 that speaks the hub's routes.

huggingface_hub is pointed at it with ``endpoint=hub.url``; nothing is mocked. Routes:

- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag`` (the sha256 for LFS files,
  quoted), ``X-Linked-Etag``/``X-Linked-Size`` as the hub sends for LFS files, ``Content-Length``,
  ``Accept-Ranges``; ``Range: bytes=a-b`` gets 206 with ``Content-Range``. Errors carry the hub's
  ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) that
  ``huggingface_hub.utils.hf_raise_for_status`` maps to its exceptions.
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info with
  ``siblings`` (``rfilename``; with ``?blobs=true`` also ``size``, ``blobId``, ``lfs``).
- Dataset repos (``add_dataset``), as huggingface_hub addresses them with ``repo_type="dataset"``:
  ``HEAD|GET /datasets/{repo}/resolve/{rev}/{path}`` and ``GET /api/datasets/{repo}[/revision/{rev}]``,
  with the same headers, errors and knobs as models. Tests add the ones they need; ``reset`` drops them.
- ``reset`` also puts the model repos back as ``get_fake_hub`` populated them: a repo a test adds (or a
  revision it adds to TINY) is gone for the next test, so no test sees another's repos, in any order.

Knobs (reset per test by the ``hub`` fixture): ``not_found`` (listed files whose resolve is 404),
``corrupt`` (served with flipped bytes; headers still advertise the true sha256), ``drop_after``
(the next GET of a file closes the connection after N body bytes), ``tokens`` (bearer tokens that
open gated repos). Logs: ``requests`` and ``bytes_sent`` per (repo, path).

GGUFs come from ``make_gguf`` (gguf.GGUFWriter): a 16k-token vocab makes a ~400 KB header, so a
remote read starting at 256 KiB must grow; tensor data is a few MB of random bytes.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import socket
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import gguf
import numpy as np

from edgekv.model.quant import GGML_TYPES, WeightQuant, tensor_bytes

COMMIT_TIME = "2025-01-01T00:00:00.000Z"


# --- GGUF files -------------------------------------------------------------------------------


def make_gguf(
    path: Path, *, quant: str = "Q4_K_M", n_vocab: int = 16384, n_embd: int = 256, n_layer: int = 2,
    n_ff: int = 768, n_head: int = 4, n_head_kv: int = 2, split_max_tensors: int = 0, seed: int = 0,
) -> list[Path]:  # fmt: skip
    """A qwen3-shaped GGUF of ``quant`` (random tensor bytes); several shards with split_max_tensors."""
    q = WeightQuant.parse(quant)
    main = q.base_type.name
    out_type = main if main in ("F32", "F16", "BF16", "Q8_0") else "Q6_K"
    head_dim, a = n_embd // n_head, "qwen3"
    w = gguf.GGUFWriter(path, a, split_max_tensors=split_max_tensors)
    w.add_string(gguf.Keys.General.NAME, "edgekv-fake")
    w.add_uint32(gguf.Keys.General.FILE_TYPE, q.ftype)
    for key, value in (
        (gguf.Keys.LLM.BLOCK_COUNT, n_layer), (gguf.Keys.LLM.CONTEXT_LENGTH, 4096),
        (gguf.Keys.LLM.EMBEDDING_LENGTH, n_embd), (gguf.Keys.LLM.FEED_FORWARD_LENGTH, n_ff),
        (gguf.Keys.Attention.HEAD_COUNT, n_head), (gguf.Keys.Attention.HEAD_COUNT_KV, n_head_kv),
        (gguf.Keys.Attention.KEY_LENGTH, head_dim), (gguf.Keys.Attention.VALUE_LENGTH, head_dim),
    ):  # fmt: skip
        w.add_uint32(key.format(arch=a), value)
    w.add_float32(gguf.Keys.Attention.LAYERNORM_RMS_EPS.format(arch=a), 1e-6)
    w.add_string(gguf.Keys.Tokenizer.MODEL, "gpt2")
    w.add_array(gguf.Keys.Tokenizer.LIST, [f"tok{i:05d}" for i in range(n_vocab)])
    w.add_array(gguf.Keys.Tokenizer.TOKEN_TYPE, [1] * n_vocab)
    rng = np.random.default_rng(seed)

    def add(name: str, type_name: str, shape: tuple[int, ...]) -> None:  # shape: ggml order
        if type_name == "F32":
            w.add_tensor(name, np.ones(tuple(reversed(shape)), dtype=np.float32))
            return
        raw = rng.integers(0, 256, tensor_bytes(type_name, shape), dtype=np.uint8)
        rows = raw.reshape(-1, tensor_bytes(type_name, (shape[0], 1)))
        w.add_tensor(name, rows, raw_dtype=gguf.GGMLQuantizationType(GGML_TYPES[type_name].id))

    add("token_embd.weight", main, (n_embd, n_vocab))
    for il in range(n_layer):
        add(f"blk.{il}.attn_norm.weight", "F32", (n_embd,))
        add(f"blk.{il}.attn_q.weight", main, (n_embd, n_head * head_dim))
        add(f"blk.{il}.attn_q_norm.weight", "F32", (head_dim,))
        add(f"blk.{il}.attn_k.weight", main, (n_embd, n_head_kv * head_dim))
        add(f"blk.{il}.attn_k_norm.weight", "F32", (head_dim,))
        add(f"blk.{il}.attn_v.weight", main, (n_embd, n_head_kv * head_dim))
        add(f"blk.{il}.attn_output.weight", main, (n_head * head_dim, n_embd))
        add(f"blk.{il}.ffn_norm.weight", "F32", (n_embd,))
        add(f"blk.{il}.ffn_gate.weight", main, (n_embd, n_ff))
        add(f"blk.{il}.ffn_up.weight", main, (n_embd, n_ff))
        add(f"blk.{il}.ffn_down.weight", main, (n_ff, n_embd))
    add("output_norm.weight", "F32", (n_embd,))
    add("output.weight", out_type, (n_embd, n_vocab))
    paths = w.format_shard_names(Path(path))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return paths


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --- the server -------------------------------------------------------------------------------


@dataclass
class FakeRepo:
    repo_id: str
    refs: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit
    trees: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> path -> bytes
    gated: bool = False
    repo_type: str = "model"

    def resolve(self, rev: str) -> str | None:
        return rev if rev in self.trees else self.refs.get(rev)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # URL path, unquoted
    range_start: int | None
    authorization: str | None


def _copy(repo: FakeRepo) -> FakeRepo:
    """A repo whose refs and trees can change without changing ``repo``'s (the bytes are shared)."""
    trees = {commit: dict(tree) for commit, tree in repo.trees.items()}
    return FakeRepo(repo.repo_id, dict(repo.refs), trees, gated=repo.gated, repo_type=repo.repo_type)


def is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(".gguf") or len(data) > 10 * 1024 * 1024


class FakeHub:
    """The server and its per-test knobs (see the module docstring)."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.datasets: dict[str, FakeRepo] = {}
        self.baseline: dict[str, FakeRepo] = {}  # the populated repos, as reset restores them
        self.lock = threading.Lock()
        self.reset()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.hub = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-hub", daemon=True)
        self.thread.start()

    def reset(self) -> None:
        with self.lock:
            self.not_found: set[tuple[str, str]] = set()
            self.corrupt: set[tuple[str, str]] = set()
            self.drop_after: dict[tuple[str, str], int] = {}
            self.tokens: set[str] = set()
            self.requests: list[Request] = []
            self.bytes_sent: Counter[tuple[str, str]] = Counter()
            self.datasets.clear()  # tests add the dataset repos they need
            self.repos.clear()  # and the model repos they need, on top of the populated ones
            self.repos.update({k: _copy(r) for k, r in self.baseline.items()})

    def keep_as_baseline(self) -> None:
        """The repos as they are now are what ``reset`` restores (``get_fake_hub``, once populated)."""
        with self.lock:
            self.baseline = {k: _copy(r) for k, r in self.repos.items()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo_id: str, files: dict[str, bytes], *, gated: bool = False, ref: str = "main") -> str:
        """Add (or add a revision to) a repo; returns the new commit hash, which ``ref`` points at."""
        return self._add(self.repos, repo_id, files, gated=gated, ref=ref, repo_type="model")

    def add_dataset(self, repo_id: str, files: dict[str, bytes], *, gated: bool = False, ref: str = "main") -> str:
        """Add (or add a revision to) a dataset repo; returns the new commit hash."""
        return self._add(self.datasets, repo_id, files, gated=gated, ref=ref, repo_type="dataset")

    def _add(
        self, repos: dict[str, FakeRepo], repo_id: str, files: dict[str, bytes], *, gated: bool, ref: str,
        repo_type: str,
    ) -> str:  # fmt: skip
        repo = repos.setdefault(repo_id, FakeRepo(repo_id, gated=gated, repo_type=repo_type))
        listing = "".join(f"{p}:{sha256(d)}\n" for p, d in sorted(files.items()))
        commit = hashlib.sha1(f"{repo_type}:{repo_id}\n{ref}\n{listing}".encode()).hexdigest()
        repo.trees[commit] = dict(files)
        repo.refs[ref] = commit
        return commit

    def requests_for(self, path_suffix: str, method: str = "GET") -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?/?$")
_DS_RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_DS_API = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?/?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.hub  # type: ignore[attr-defined, no-any-return]

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, *, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        rng = _RANGE.match(self.headers.get("Range", ""))
        with self.hub.lock:
            self.hub.requests.append(
                Request(self.command, path, int(rng.group(1)) if rng else None, self.headers.get("Authorization"))
            )
        ds = self.hub.datasets
        if m := _DS_API.match(url.path):
            self._model_info(unquote(m["repo"]), unquote(m["rev"] or "main"), parse_qs(url.query), head=head, repos=ds)
        elif m := _DS_RESOLVE.match(url.path):
            self._resolve(unquote(m["repo"]), unquote(m["rev"]), unquote(m["path"]), rng, head=head, repos=ds)
        elif m := _API.match(url.path):
            self._model_info(unquote(m["repo"]), unquote(m["rev"] or "main"), parse_qs(url.query), head=head)
        elif m := _RESOLVE.match(url.path):
            self._resolve(unquote(m["repo"]), unquote(m["rev"]), unquote(m["path"]), rng, head=head)
        else:
            self._error(404, None, "Not Found", head=head)

    def _send(self, status: int, headers: dict[str, str], body: bytes, *, head: bool) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header(
            "Content-Length", str(len(body)) if "Content-Length" not in headers else headers["Content-Length"]
        )
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, *, head: bool, commit: str | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, json.dumps({"error": message}).encode(), head=head)

    def _repo(
        self, repo_id: str, rev: str, *, head: bool, repos: dict[str, FakeRepo] | None = None
    ) -> tuple[FakeRepo, str] | None:
        repo = (self.hub.repos if repos is None else repos).get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", head=head)
            return None
        commit = repo.resolve(rev)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
            return None
        return repo, commit

    def _model_info(
        self, repo_id: str, rev: str, query: dict[str, list[str]], *, head: bool,
        repos: dict[str, FakeRepo] | None = None,
    ) -> None:  # fmt: skip
        found = self._repo(repo_id, rev, head=head, repos=repos)
        if found is None:
            return
        repo, commit = found
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for p, data in sorted(repo.trees[commit].items()):
            s: dict[str, Any] = {"rfilename": p}
            if blobs:
                s.update(size=len(data), blobId=git_sha1(data))
                if is_lfs(p, data):
                    s["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 134}
            siblings.append(s)
        info = {
            "_id": commit[:24], "id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": commit,
            "lastModified": COMMIT_TIME, "createdAt": COMMIT_TIME, "private": False, "disabled": False,
            "gated": "auto" if repo.gated else False, "downloads": 0, "likes": 0, "tags": ["gguf"],
            "library_name": "gguf", "siblings": siblings,
        }  # fmt: skip
        if repo.repo_type == "dataset":
            for key in ("modelId", "library_name"):
                info.pop(key)
            info["tags"] = []
        self._send(200, {"Content-Type": "application/json"}, json.dumps(info).encode(), head=head)

    def _resolve(
        self, repo_id: str, rev: str, path: str, rng: re.Match[str] | None, *, head: bool,
        repos: dict[str, FakeRepo] | None = None,
    ) -> None:  # fmt: skip
        found = self._repo(repo_id, rev, head=head, repos=repos)
        if found is None:
            return
        repo, commit = found
        auth = self.headers.get("Authorization", "")
        if repo.gated and auth.removeprefix("Bearer ") not in self.hub.tokens:
            msg = f"Access to {repo.repo_type} {repo_id} is restricted. "
            msg += "You must have access to it and be authenticated."
            self._error(403 if auth else 401, "GatedRepo", msg, head=head, commit=commit)
            return
        data = repo.trees[commit].get(path)
        key = (repo_id, path)
        if data is None or key in self.hub.not_found:
            self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", head=head, commit=commit)
            return
        digest = sha256(data) if is_lfs(path, data) else git_sha1(data)
        headers = {
            "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes", "X-Repo-Commit": commit,
            "ETag": f'"{digest}"',
        }  # fmt: skip
        if is_lfs(path, data):
            headers.update({"X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data))})
        if key in self.hub.corrupt:
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        status, body = 200, data
        if rng:
            start = int(rng.group(1))
            end = min(int(rng.group(2)) if rng.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                self._send(416, headers, b"", head=head)
                return
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if head:
            self._send(status, headers, body, head=True)
            return
        with self.hub.lock:
            drop = self.hub.drop_after.pop(key, None) if not head else None
        if drop is None:
            self._send(status, headers, body, head=False)
            with self.hub.lock:
                self.hub.bytes_sent[key] += len(body)
            return
        # Send the headers for the whole body, then a part of it, then cut the connection.
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:drop])
        self.wfile.flush()
        with self.hub.lock:
            self.hub.bytes_sent[key] += min(drop, len(body))
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


# --- one server and one set of files per test run ---------------------------------------------

TINY = "edgekv-test/Tiny-GGUF"  # Tiny-Q4_K_M.gguf, Tiny-Q8_0.gguf (+ tag v1 with another Q4_K_M)
SPLIT = "edgekv-test/Tiny-Split-GGUF"  # Q4_K_M/Tiny-Q4_K_M-0000{1,2,3}-of-00003.gguf
GATED = "edgekv-test/Gated-GGUF"  # Gated-Q4_K_M.gguf, behind a license

_HUB: FakeHub | None = None
_HUB_LOCK = threading.Lock()


def _populate(hub: FakeHub, tmp: Path) -> None:
    def file(name: str, **kw: Any) -> dict[str, bytes]:
        paths = make_gguf(tmp / name, **kw)
        return {p.name: p.read_bytes() for p in paths}

    q4 = file("Tiny-Q4_K_M.gguf", quant="Q4_K_M", seed=1)
    q8 = file("Tiny-Q8_0.gguf", quant="Q8_0", seed=2)
    readme = {"README.md": b"# Tiny\nA fake GGUF repo for edgekv's tests.\n"}
    old = make_gguf(tmp / "v1.gguf", quant="Q4_K_M", seed=3, n_layer=1)[0].read_bytes()
    hub.add_repo(TINY, {"Tiny-Q4_K_M.gguf": old}, ref="v1")
    hub.add_repo(TINY, {**q4, **q8, **readme, "mmproj-Tiny-F16.gguf": b"GGUF-not-really"})
    shards = file("Tiny-Q4_K_M.gguf", quant="Q4_K_M", seed=4, split_max_tensors=10)
    hub.add_repo(SPLIT, {f"Q4_K_M/{n}": d for n, d in shards.items()} | {"README.md": readme["README.md"]})
    hub.add_repo(GATED, {"Gated-Q4_K_M.gguf": q4["Tiny-Q4_K_M.gguf"]}, gated=True)


def get_fake_hub() -> FakeHub:
    """The test run's FakeHub, started (and its GGUFs generated) on first use."""
    global _HUB
    with _HUB_LOCK:
        if _HUB is None:
            hub = FakeHub()
            with tempfile.TemporaryDirectory(prefix="edgekv-fakehub-") as tmp:
                _populate(hub, Path(tmp))
            hub.keep_as_baseline()
            atexit.register(hub.close)
            _HUB = hub
        return _HUB


def dead_endpoint() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
