"""convert's ``manifest.json``: what each finished GGUF is, and how a rerun recognizes its own work.

Every file of the ladder is recorded with its sha256, sizes, tensor-type mix and KV bytes per
token (the numbers pick and inspect need), and with the recipe that made it: the fingerprint of
the checkpoint (config, weights and tokenizer files by name, size and mtime) plus outtype,
converter and imatrix. ``convert_checkpoint`` reuses a file whose recipe and size match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekv.fsutil import write_atomic
from edgekv.model.quant import KvType

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One written (or reused) GGUF and the numbers pick/inspect need, as the manifest has them."""

    name: str
    path: Path
    quant: str
    sha256: str
    file_bytes: int
    weights_bytes: int
    tensor_type_bytes: dict[str, int]
    kv_bytes_per_token: dict[str, int]
    reused: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quant": self.quant,
            "sha256": self.sha256,
            "file_bytes": self.file_bytes,
            "weights_bytes": self.weights_bytes,
            "tensor_type_bytes": dict(self.tensor_type_bytes),
            "kv_bytes_per_token": dict(self.kv_bytes_per_token),
        }


def file_numbers(path: Path, quant: str, *, final: Path | None = None, reused: bool = False) -> OutputFile:
    """sha256, sizes, tensor-type mix and KV bytes/token of a written GGUF (for the manifest).

    ``final``: the name ``path`` (a finished NAME.incomplete) is about to be renamed to."""
    from edgekv.model.gguf_reader import read_spec
    from edgekv.plan.memory import kv_bytes_per_token

    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    spec = read_spec(path)
    kv = {k.value: kv_bytes_per_token(spec, k) for k in (KvType.F16, KvType.Q8_0, KvType.Q4_0)}
    final = final or path
    return OutputFile(
        final.name, final, quant, h.hexdigest(), path.stat().st_size, spec.weights_bytes,
        spec.tensor_type_bytes(), kv, reused,
    )  # fmt: skip


def fingerprint(ckpt: Path, *, outtype: str, converter: Path | None, model_name: str) -> str:
    """Identifies the source of a conversion: config, weights and tokenizer (name, size, mtime)."""
    h = hashlib.sha256(f"{outtype}|{converter}|{model_name}".encode())
    for p in sorted(ckpt.iterdir()):
        if p.suffix in (".json", ".safetensors", ".model", ".txt", ".jinja") and p.is_file():
            st = p.stat()
            h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path``; {} when missing, unreadable or of another schema."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else {}


def write_manifest(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through NAME.incomplete and a rename (DiskFull when the disk is full)."""
    write_atomic(path, json.dumps(data, indent=2) + "\n")
