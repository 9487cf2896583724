"""``edgekv inspect``: a GGUF's spec as tables or a dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table

from edgekv.model.quant import KvType
from edgekv.model.spec import ModelSpec
from edgekv.report.common import gib
from edgekv.units import format_bytes

if TYPE_CHECKING:  # the pick path does not import eval
    pass


def spec_dict(
    spec: ModelSpec, *, kv_per_token: Mapping[KvType, int], max_ctx: Mapping[KvType, int] | None
) -> dict[str, Any]:
    return {
        "name": spec.name,
        "arch": spec.arch,
        "file_type": spec.file_type,
        "n_layer": spec.n_layer,
        "n_embd": spec.n_embd,
        "n_head": spec.n_head,
        "n_head_kv": list(spec.n_head_kv),
        "head_dim_k": spec.head_dim_k,
        "head_dim_v": spec.head_dim_v,
        "n_ff": spec.n_ff,
        "n_vocab": spec.n_vocab,
        "context_length": spec.n_ctx_train,
        "n_swa": spec.n_swa,
        "swa_layers": sum(spec.swa_layers),
        "tied_embeddings": spec.tied_embeddings,
        "n_params": spec.n_params,
        "weights_bytes": spec.weights_bytes,
        "tensor_type_bytes": spec.tensor_type_bytes(),
        "kv_bytes_per_token": {k.value: v for k, v in kv_per_token.items()},
        **({"max_ctx": {k.value: v for k, v in max_ctx.items()}} if max_ctx is not None else {}),
    }


def inspect_data(
    spec: ModelSpec, vram_bytes: int | None, *, margin_bytes: int, overhead_bytes: int | None
) -> dict[str, Any]:
    """``edgekv inspect``'s dict, behind both the table and --json: :func:`spec_dict` with the KV bytes
    per token of each KV type and, with ``vram_bytes``, the largest context of each that fits."""
    from edgekv.model.quant import DEFAULT_KV_TYPES
    from edgekv.plan.memory import kv_bytes_per_token
    from edgekv.plan.pick import largest_context_by_kv

    per_token = {k: kv_bytes_per_token(spec, k) for k in DEFAULT_KV_TYPES}
    max_ctx = None
    if vram_bytes:
        max_ctx = largest_context_by_kv(
            spec, vram_bytes=vram_bytes, margin_bytes=margin_bytes, overhead_bytes=overhead_bytes
        )
    return spec_dict(spec, kv_per_token=per_token, max_ctx=max_ctx)


def spec_tables(d: Mapping[str, Any], *, vram_bytes: int | None) -> Group:
    t = Table(title=f"{d['name']}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    swa = f"{d['swa_layers']} of {d['n_layer']} layers, window {d['n_swa']}" if d["swa_layers"] else "none"
    heads_kv = sorted(set(d["n_head_kv"]))
    rows = [
        ("architecture", d["arch"]), ("file type", str(d["file_type"] or "?")),
        ("parameters", f"{d['n_params'] / 1e9:.3f} B ({d['n_params']:,})"),
        ("effective size", f"{format_bytes(d['weights_bytes'])} ({d['weights_bytes']:,} bytes)"),
        ("layers / embedding / FFN", f"{d['n_layer']} / {d['n_embd']} / {d['n_ff']}"),
        ("heads / KV heads", f"{d['n_head']} / {', '.join(map(str, heads_kv))}"),
        ("head dim K / V", f"{d['head_dim_k']} / {d['head_dim_v']}"),
        ("vocab", f"{d['n_vocab']:,}"), ("trained context", f"{d['context_length']:,}"),
        ("sliding window", swa), ("tied embeddings", "yes" if d["tied_embeddings"] else "no"),
    ]  # fmt: skip
    for k, v in rows:
        t.add_row(k, v)
    types = Table(title="weight bytes by tensor type")
    types.add_column("type")
    types.add_column("bytes", justify="right")
    types.add_column("GiB", justify="right")
    types.add_column("share", justify="right")
    total = d["weights_bytes"] or 1
    for ty, n in d["tensor_type_bytes"].items():
        types.add_row(ty, f"{n:,}", gib(n), f"{100 * n / total:.1f}%")
    kv = Table(
        title="KV cache per token (full-attention layers)"
        + (f", max context on {format_bytes(vram_bytes)}" if vram_bytes else "")
    )
    kv.add_column("KV type")
    kv.add_column("bytes/token", justify="right")
    kv.add_column("KiB/token", justify="right")
    if vram_bytes:
        kv.add_column("max context (full offload)", justify="right")
    for k, v in d["kv_bytes_per_token"].items():
        row = [k, f"{v:,}", f"{v / 1024:.1f}"]
        if vram_bytes:
            row.append(f"{d['max_ctx'][k]:,}")
        kv.add_row(*row)
    return Group(t, types, kv)


def vocab_only_dict(v: Any) -> dict[str, Any]:
    """A vocab-only GGUF (``gguf_reader.VocabOnly``) for ``edgekv inspect``: metadata, no sizes."""
    return {
        "name": v.name, "arch": v.arch, "vocab_only": True, "gguf_version": v.gguf_version, "n_keys": v.n_keys,
        "tokenizer_model": v.tokenizer_model, "n_vocab": v.n_vocab, "file_bytes": v.file_bytes, "n_tensors": 0,
    }  # fmt: skip


def vocab_only_table(d: Mapping[str, Any]) -> Table:
    t = Table(title=f"{d['name']}: vocab-only GGUF", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    rows = [
        ("architecture", str(d["arch"] or "?")), ("GGUF version", str(d["gguf_version"])),
        ("keys", str(d["n_keys"])), ("tokenizer", str(d["tokenizer_model"] or "?")),
        ("vocab", f"{d['n_vocab']:,}"), ("file", f"{format_bytes(d['file_bytes'])}"),
        ("weights", "none: vocab-only (a tokenizer, no tensors), so there are no weights or KV cache to size"),
    ]  # fmt: skip
    for k, val in rows:
        t.add_row(k, val)
    return t
