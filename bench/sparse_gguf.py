"""Sparse GGUFs of real model shapes that llama.cpp runs like the real model: holes plus a few random tensors.

Every weight is a hole (zeros, never written: the file is extended with ``truncate``, so a 30B
shape costs a few MB of disk and a second), except

- ``token_embd``: random, so the hidden states are non-zero and differ from token to token;
- the MoE routers ``ffn_gate_inp`` (F32): random N(0, 1), so the experts chosen differ from token to
  token and from sample to sample as in real use (the hidden state is the token's embedding through
  every block, since every block's output projection is zero). Each expert's row is centred (sums
  to 0): random K-quant embeddings (Q4_K, with no minimum subtracted) are all positive, and their
  common component would otherwise favour the same experts for every token; centred, the experts G
  random tokens choose cover 1 - (1 - k/E)^G of a layer, the independence the speed model assumes
  (tests/bench/test_sparse_gguf.py);
- the norms (``*_norm.weight``): 1;
- MXFP4 tensors (gpt-oss's experts): every block's E8M0 scale byte is 127 (1.0; the 4-bit values stay
  0). A hole's scale byte 0 is 2^-128, a subnormal float: x86 CPUs compute on subnormals through a
  microcode assist, and gpt-oss with its experts in RAM ran at 4.4 tokens/s at every G on the H100
  host (2026-12-06, a step 8x slower than its bytes), an artifact no real file has. These tensors are
  written, not holes (gpt-oss-20b: 12 GB, ~10 s); ``mxfp4_holes=True`` (CLI ``--mxfp4-holes``) keeps
  them holes, for a file that must stay small.

llama.cpp computes on zeros at the speed of real data for the memory-bound decode (what bytes are
read does not depend on their value), so decode timings are those of the real shape. The tensor
list, types and bytes are edgekv's own (``edgekv.model.archs.gguf_tensors`` and
``edgekv.model.quantrules.quantized_types``: what llama_model_quantize gives for ``quant``).

Library: ``write_sparse_model(path, config, quant="Q4_K_M")``; ``catalog_config("qwen3-30b-a3b")``.
CLI (from the repo root)::

    python bench/sparse_gguf.py qwen3-30b-a3b Q4_K_M /tmp/q30.gguf
    python bench/sparse_gguf.py gpt-oss-20b MXFP4_MOE /tmp/oss.gguf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgekv.fsutil import atomic_output  # noqa: E402
from edgekv.model.archs import ArchParams, gguf_tensors  # noqa: E402
from edgekv.model.quant import WeightQuant, tensor_bytes  # noqa: E402
from edgekv.model.quantrules import quantized_types  # noqa: E402
from tests.ggufgen import write_header  # noqa: E402  (the header, metadata and vocab the tests' files use)

__all__ = ["has_data", "catalog_config", "random_block_bytes", "write_sparse_model"]

# (byte offset, count) of the f16 scale fields in one block (ggml-common.h block_q*): the rest of a
# block is random bytes. gguf-py cannot quantize the K-quants, and its Q8_0 is slow (a minute for
# gpt-oss's 579M-value embeddings on two cores), so blocks are made this way.
_SCALES = {
    "Q4_0": (0, 1),  # d, qs[16]
    "Q5_0": (0, 1),  # d, qh[4], qs[16]
    "Q8_0": (0, 1),  # d, qs[32]
    "Q2_K": (80, 2),  # scales[16], qs[64], d, dmin
    "Q3_K": (108, 1),  # hmask[32], qs[64], scales[12], d
    "Q4_K": (0, 2),  # d, dmin, scales[12], qs[128]
    "Q5_K": (0, 2),  # d, dmin, scales[12], qh[32], qs[128]
    "Q6_K": (208, 1),  # ql[128], qh[64], scales[16], d
}


def has_data(name: str, *, moe: bool) -> bool:
    """Whether ``name`` gets data (random or ones) rather than a hole."""
    return (
        name == "token_embd.weight" or name.endswith("_norm.weight") or (moe and name.endswith("ffn_gate_inp.weight"))
    )


def catalog_config(name: str, models_dir: Path | None = None) -> dict[str, Any]:
    """The HF config of a catalog model (``models/<name>.json``, or ``models_dir/<name>.json``)."""
    d = models_dir or ROOT / "models"
    path = d / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in d.glob("*.json")))
        raise SystemExit(f"no catalog model {name!r}; known: {known}")
    config: dict[str, Any] = json.loads(path.read_text())["config"]
    return config


def random_block_bytes(qtype: str, values: np.ndarray, rng: np.random.Generator) -> bytes:
    """``values`` (float32, rows of a multiple of 256) in ggml type ``qtype``.

    Block types of ``_SCALES`` are random bytes with every block's f16 scales set to 1/64 (and the
    minimums to 0): random non-zero values, which is all a sparse shape needs of them; other types
    (F32, F16, BF16, MXFP4, ...) are ``values`` quantized by gguf-py.
    """
    t = gguf.GGMLQuantizationType[qtype]
    if qtype not in _SCALES:
        return bytes(gguf.quants.quantize(values, t).tobytes())
    block, type_size = gguf.GGML_QUANT_SIZES[t]
    n_blocks = values.size // block
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    off, n = _SCALES[qtype]
    scales = np.zeros((n_blocks, n), dtype=np.float16)
    scales[:, 0] = 1 / 64
    raw[:, off : off + 2 * n] = scales.view(np.uint8).reshape(n_blocks, 2 * n)
    return raw.tobytes()


def _write_mxfp4_ones_scale(f: Any, n_bytes: int, chunk_blocks: int = 1 << 22) -> None:
    """``n_bytes`` of MXFP4 blocks (17 bytes: an E8M0 scale, 16 bytes of 4-bit values) with scale byte 127
    and zero values, written in chunks of ``chunk_blocks`` blocks."""
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.MXFP4][1]
    if n_bytes % block:
        raise AssertionError(f"{n_bytes} bytes is not a whole number of MXFP4 blocks")
    one = bytes([127]) + bytes(block - 1)
    chunk = one * chunk_blocks
    left = n_bytes // block
    while left:
        k = min(left, chunk_blocks)
        f.write(chunk if k == chunk_blocks else one * k)
        left -= k


def _types(config: dict[str, Any], quant: str) -> tuple[list[Any], dict[str, str], str]:
    q = WeightQuant.parse(quant)
    outtype = "BF16" if q is WeightQuant.BF16 else "F16"
    tensors = gguf_tensors(config, outtype=outtype)
    p = ArchParams.from_config(config)
    types = quantized_types(tensors, q, arch=p.arch, n_layer=p.n_layer, n_expert=p.n_expert)
    return tensors, types, outtype


def write_sparse_model(
    path: str | os.PathLike[str],
    config: dict[str, Any],
    *,
    quant: str = "Q4_K_M",
    seed: int = 0,
    mxfp4_holes: bool = False,
) -> Path:
    """A GGUF of ``config``'s shapes at ``quant``: holes except the tensors of :func:`has_data`.

    The header is written by gguf-py, the data region is made by ``truncate`` (a hole), and the few
    tensors with data are then written at their offsets (gguf-py's writer lays the tensors out in
    order, each padded to the alignment; the test reads them back with gguf-py's reader). Written under
    ``name.incomplete`` and renamed.
    """
    path = Path(path)
    tensors, types, outtype = _types(config, quant)
    p = ArchParams.from_config(config)
    rng = np.random.default_rng(seed)
    with atomic_output(path) as tmp:
        layout = write_header(tmp, config, tensors, types, outtype=outtype, file_type=WeightQuant.parse(quant).value)
        data_start, rel = layout.data_start, layout.offsets
        os.truncate(tmp, data_start + layout.data_bytes)
        with open(tmp, "r+b") as f:
            for t in tensors:
                if not mxfp4_holes and types[t.name] == "MXFP4" and not has_data(t.name, moe=p.n_expert > 0):
                    f.seek(data_start + rel[t.name])
                    _write_mxfp4_ones_scale(f, tensor_bytes("MXFP4", t.shape))
                    continue
                if not has_data(t.name, moe=p.n_expert > 0):
                    continue
                ty = types[t.name]
                n_values = int(np.prod(t.shape))
                rows = n_values // t.shape[0]
                if t.name.endswith("_norm.weight"):
                    values = np.ones((rows, t.shape[0]), dtype=np.float32)
                elif ty in _SCALES:  # only its size is used
                    values = np.empty((rows, t.shape[0]), dtype=np.float32)
                else:
                    values = rng.standard_normal((rows, t.shape[0]), dtype=np.float32)
                    if t.name.endswith("ffn_gate_inp.weight"):  # each expert's row sums to 0: see the docstring
                        values -= values.mean(axis=1, keepdims=True)
                data = random_block_bytes(ty, values, rng)
                if len(data) != tensor_bytes(ty, t.shape):
                    raise AssertionError(f"{t.name}: {len(data)} bytes written, {tensor_bytes(ty, t.shape)} expected")
                f.seek(data_start + rel[t.name])
                f.write(data)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Write a sparse GGUF of a catalog model's shape (random embeddings and routers)."
    )
    ap.add_argument("model", help="a catalog model (models/<name>.json), e.g. qwen3-30b-a3b")
    ap.add_argument("quant", help="a llama.cpp quant name, e.g. Q4_K_M, Q8_0, MXFP4_MOE")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mxfp4-holes", action="store_true", help="MXFP4 tensors stay holes (subnormal scales)")
    a = ap.parse_args(argv)
    t0 = time.time()
    write_sparse_model(a.out, catalog_config(a.model), quant=a.quant, seed=a.seed, mxfp4_holes=a.mxfp4_holes)
    print(f"wrote {a.out} ({a.out.stat().st_size / 2**30:.2f} GiB apparent) in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
