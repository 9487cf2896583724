"""gguf_io: our stdlib GGUF header reader on the real gemma-3-270m file and on broken files."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import pytest

from edgekv.errors import GGUFError, ModelFileNotFound
from edgekv.model.gguf_reader import parse_header, read_header, read_spec

GEMMA_WEIGHTS_BYTES = 246_587_904


def test_gemma_spec(gemma_gguf: Path) -> None:
    spec = read_spec(gemma_gguf)
    assert spec.arch == "gemma3"
    assert spec.n_layer == 18
    assert sum(spec.swa_layers) == 15 and spec.n_swa == 512
    # llama.cpp's gemma3 pattern 6: every 6th layer (5, 11, 17) is global
    assert [il for il in range(18) if not spec.is_swa(il)] == [5, 11, 17]
    assert spec.tied_embeddings
    assert spec.file_type == "Q4_K_M"
    assert (spec.n_embd, spec.n_head, spec.n_head_kv[0], spec.head_dim_k, spec.n_vocab) == (640, 4, 1, 256, 262144)
    assert spec.weights_bytes == sum(t.n_bytes for t in spec.tensors) == GEMMA_WEIGHTS_BYTES
    assert set(spec.tensor_type_bytes()) == {"Q8_0", "Q5_0", "Q4_K", "Q6_K", "F32"}
    assert sum(spec.tensor_type_bytes().values()) == GEMMA_WEIGHTS_BYTES


def test_gemma_tensor_bytes_by_gguf_table(gemma_gguf: Path) -> None:
    """Tensor bytes recomputed with gguf-py's own size table, and the file ends where they do."""
    header = read_header(gemma_gguf)
    total = 0
    for t in header.tensors:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[t.type]]
        n = 1
        for d in t.shape:
            n *= d
        total += n // block * type_size
    assert total == GEMMA_WEIGHTS_BYTES
    assert header.version == 3
    assert header.data_offset % 32 == 0
    assert 0 <= gemma_gguf.stat().st_size - header.expected_file_bytes < 32


def _tiny(path: Path, *, block_count: bool = True) -> Path:
    """A small GGUF written with gguf.GGUFWriter (one tensor)."""
    import numpy as np

    w = gguf.GGUFWriter(path, "llama")
    if block_count:
        w.add_uint32(gguf.Keys.LLM.BLOCK_COUNT.format(arch="llama"), 1)
    w.add_uint32(gguf.Keys.LLM.EMBEDDING_LENGTH.format(arch="llama"), 64)
    w.add_uint32(gguf.Keys.Attention.HEAD_COUNT.format(arch="llama"), 1)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _patched(src: Path, dst: Path, offset: int, data: bytes) -> Path:
    buf = bytearray(src.read_bytes())
    buf[offset : offset + len(data)] = data
    dst.write_bytes(bytes(buf))
    return dst


def _prefix(src: Path, dst: Path, n_bytes: int) -> Path:
    with src.open("rb") as f:
        dst.write_bytes(f.read(n_bytes))
    return dst


def bad_file(kind: str, tmp_path: Path, gemma: Path) -> tuple[Path, str]:
    """(path, what the message must say) for each kind of broken input."""
    tiny = _tiny(tmp_path / "ok.gguf")
    if kind == "truncated-100k":
        return _prefix(gemma, tmp_path / "cut100k.gguf", 100_000), "ends inside its header"
    if kind == "truncated-10m":
        return _prefix(gemma, tmp_path / "cut10m.gguf", 10_000_000), "tensor data needs"
    if kind == "not-gguf":
        p = tmp_path / "notes.gguf"
        p.write_text("this is a text file, not a model\n" * 10)
        return p, "not a GGUF file"
    if kind == "version-7":
        return _patched(tiny, tmp_path / "v7.gguf", 4, struct.pack("<I", 7)), "unsupported GGUF version 7"
    if kind == "string-2**40":
        # first key's length: magic 4 + version 4 + n_tensors 8 + n_kv 8 = offset 24
        return _patched(tiny, tmp_path / "str.gguf", 24, struct.pack("<Q", 2**40)), "corrupt header"
    if kind == "missing-key":
        return _tiny(tmp_path / "nokey.gguf", block_count=False), "missing key llama.block_count"
    if kind == "empty":
        p = tmp_path / "empty.gguf"
        p.write_bytes(b"")
        return p, "empty file"
    if kind == "missing-path":
        return tmp_path / "nope" / "model.gguf", "no such file"
    raise AssertionError(kind)


BAD_KINDS = [
    "truncated-100k", "truncated-10m", "not-gguf", "version-7", "string-2**40", "missing-key", "empty", "missing-path",
]  # fmt: skip


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_input_raises_gguf_error_naming_the_file(kind: str, tmp_path: Path, gemma_gguf: Path) -> None:
    path, says = bad_file(kind, tmp_path, gemma_gguf)
    expected = ModelFileNotFound if kind == "missing-path" else GGUFError
    with pytest.raises(expected) as e:
        read_spec(path)
    assert says in str(e.value) and str(path) in str(e.value)


def test_tiny_writer_file_reads(tmp_path: Path) -> None:
    spec = read_spec(_tiny(tmp_path / "ok.gguf"))
    assert (spec.arch, spec.n_layer, spec.n_embd, spec.weights_bytes) == ("llama", 1, 64, 64 * 64 * 4)


def test_parse_header_rejects_huge_counts() -> None:
    buf = b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0)
    with pytest.raises(GGUFError, match="corrupt header"):
        parse_header(buf)
