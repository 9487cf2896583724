"""A small on-disk cache of measured compute buffers, keyed by model, build and settings.

llama.cpp's no_alloc dry run measures the compute buffer exactly in about half a second; the
value depends on the model's tensors, the llama.cpp build (and backend), n_ubatch, flash
attention and, without flash attention, the context. This cache keeps each measurement in
``user_dir()/compute-buffers.json`` so a repeated ``edgekv run``/``bench`` skips the dry run.
Stdlib only; writes are atomic (temp file + rename); a corrupt cache file is ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgekv.fsutil import write_atomic
from edgekv.logconfig import get_logger
from edgekv.model.spec import ModelSpec
from edgekv.plan.memory import RunConfig
from edgekv.settings import user_dir

log = get_logger(__name__)
CACHE_FILE = "compute-buffers.json"


def model_identity(spec: ModelSpec) -> str:
    """A digest of what the graph depends on: the architecture and every tensor's type and shape."""
    h = hashlib.sha256(spec.arch.encode())
    for t in spec.tensors:
        h.update(f"|{t.name}:{t.type}:{','.join(map(str, t.shape))}".encode())
    h.update(f"|ctx{spec.n_ctx_train}|swa{spec.n_swa}".encode())
    return h.hexdigest()[:16]


def cache_key(spec: ModelSpec, cfg: RunConfig, *, build: str, gpu: bool) -> str:
    """Key of one measurement. The context is part of it: without flash attention the scores
    grow with it, and a context below n_ubatch shrinks the reserved graph."""
    ctx = f"/ctx{cfg.n_ctx}/seq{cfg.n_seq}/swafull{int(cfg.swa_full)}"
    parts = (
        model_identity(spec),
        hashlib.sha256(build.encode()).hexdigest()[:12],
        "gpu" if gpu else "cpu",
        f"ub{cfg.n_ubatch}",
        f"fa{int(cfg.flash_attn)}",
        f"ngl{cfg.n_gpu_layers}" + (f"cmoe{cfg.n_cpu_moe}" if cfg.n_cpu_moe else ""),
        f"kv{cfg.type_k.value}-{cfg.type_v.value}",
    )
    return "/".join(parts) + ctx


class ComputeCache:
    """get/put of compute-buffer bytes by key, persisted as one JSON object."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or user_dir() / CACHE_FILE
        self._data: dict[str, int] | None = None

    def _load(self) -> dict[str, int]:
        if self._data is None:
            try:
                raw = json.loads(self.path.read_text())
                self._data = {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
            except FileNotFoundError:
                self._data = {}
            except (OSError, ValueError, TypeError) as e:
                log.warning("ignoring unreadable compute cache %s: %s", self.path, e)
                self._data = {}
        return self._data

    def get(self, key: str) -> int | None:
        return self._load().get(key)

    def put(self, key: str, n_bytes: int) -> None:
        data = self._load()
        data[key] = int(n_bytes)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(data, indent=0, sort_keys=True), private=True)
        except OSError as e:  # a cache that cannot be written only costs a dry run next time
            log.warning("cannot write compute cache %s: %s", self.path, e)
