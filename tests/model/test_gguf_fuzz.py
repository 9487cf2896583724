"""Hostile GGUF headers end in one edgekv error, and edgekv's reader agrees with gguf-py's.

The seeded fuzz (tests/gguffuzz.py) runs each case through the path ``edgekv inspect`` takes;
the differential test reads every GGUF the tests have, and every fuzzed file, with gguf-py too.
"""

from __future__ import annotations

import collections
import math
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from edgekv.errors import EdgekvError, GGUFError, GGUFRuleError, VocabOnlyModel
from edgekv.model.gguf_reader import MAX_ARRAY_DEPTH, inspect_file, read_header, read_spec
from tests.gguffuzz import (
    ARR,
    BASES,
    BOOL,
    CLASSES,
    F32,
    I32,
    STR,
    U32,
    U64,
    Doc,
    case_file,
    encode,
    inspect_path,
    run_cases,
)

MAX_SECONDS = 2.0
MAX_PEAK_BYTES = 1 << 30


def _assert_clean(cases: list[Any]) -> None:
    escaped = [c for c in cases if c.outcome.startswith("traceback")]
    assert not escaped, escaped[:5]
    assert max(c.seconds for c in cases) < MAX_SECONDS
    assert max(c.peak_bytes for c in cases) < MAX_PEAK_BYTES
    assert all(c.outcome == "ok" for c in cases if c.cls == "valid")


def test_fuzz_2000_cases(tmp_path: Path) -> None:
    cases = run_cases(2000, tmp_path, seed=1)
    _assert_clean(cases)
    assert {(c.cls, c.base) for c in cases} == {(k, b) for k in CLASSES for b in BASES}  # every mutation, both bases
    ends: dict[str, set[str]] = collections.defaultdict(set)
    for c in cases:
        ends[c.cls].add(c.outcome.split(":")[0])
    # each mutation class makes files the reader refuses with an edgekv error
    assert all("error" in ends[k] for k in CLASSES if k != "valid")
    assert ends["magic"] == ends["version"] == ends["truncate"] == {"error"}  # never read as a model


@pytest.mark.slow
def test_fuzz_20000_cases(tmp_path: Path) -> None:
    _assert_clean(run_cases(20_000, tmp_path, seed=2))


# --- the cases issue #11 listed: each failed before the reader checked values ------------------


def _write(tmp_path: Path, doc: Doc, name: str = "case.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(encode(doc).data))
    return path


def _with(key: str, vtype: int, value: Any, base: str = "model") -> Doc:
    b = BASES[base]
    kvs = [kv for kv in b.kvs if kv[0] != key.encode()] + [(key.encode(), vtype, value)]
    return Doc(kvs, list(b.tensors), b.version, b.order, b.alignment)


HOSTILE_VALUES = [
    ("llama.block_count", I32, -1, "llama.block_count is -1"),
    ("llama.block_count", U64, 4_000_000_000, "llama.block_count is 4000000000"),
    ("llama.attention.head_count", U32, 0, "llama.attention.head_count is 0"),
    ("llama.embedding_length", U32, 0, "llama.embedding_length is 0"),
    ("llama.attention.key_length", I32, -5, "llama.attention.key_length is -5"),
    ("llama.vocab_size", F32, 32.0, "llama.vocab_size is 32.0"),
    ("llama.embedding_length", STR, b"32", "llama.embedding_length is '32'"),
    ("llama.embedding_length", F32, float("nan"), "llama.embedding_length is nan"),
    ("llama.context_length", F32, float("inf"), "llama.context_length is inf"),
    ("llama.block_count", ARR, (U32, [2]), "llama.block_count is [2]"),
    ("llama.attention.head_count_kv", ARR, (U32, []), "head_count_kv has 0 entries for 2 layers"),
    ("llama.attention.head_count_kv", U32, 0, "0 for every layer"),
    ("llama.embedding_length", U32, 10**9, "llama.embedding_length is 1000000000"),  # past the file's size
    ("general.architecture", ARR, (STR, [b"llama"]), "general.architecture is ['llama']"),
    ("general.alignment", ARR, (U32, [32]), "general.alignment is [32] (array)"),
    ("general.alignment", U32, 3, "general.alignment is 3 (uint32)"),
]


@pytest.mark.parametrize(("key", "vtype", "value", "says"), HOSTILE_VALUES, ids=[h[3][:40] for h in HOSTILE_VALUES])
def test_hostile_value_is_one_gguf_error(tmp_path: Path, key: str, vtype: int, value: Any, says: str) -> None:
    path = _write(tmp_path, _with(key, vtype, value))
    with pytest.raises(GGUFError) as e:
        inspect_path(path)
    assert says in str(e.value) and str(path) in str(e.value)


def test_tensor_without_dimensions(tmp_path: Path) -> None:
    doc = BASES["model"]
    doc = Doc(list(doc.kvs), [(b"output_norm.weight", [], 0)], doc.version)
    with pytest.raises(GGUFRuleError, match=r"tensor output_norm.weight has shape \[\]; ggml needs 1..4"):
        read_spec(_write(tmp_path, doc))


@pytest.mark.parametrize("shape", [[32, 1, 1, 1, 1], [32, 0]])
def test_tensor_rank_and_zero_dims(tmp_path: Path, shape: list[int]) -> None:
    doc = Doc(list(BASES["model"].kvs), [(b"output_norm.weight", shape, 0)])
    with pytest.raises(GGUFRuleError, match="ggml needs 1..4 dimensions, each at least 1"):
        inspect_path(_write(tmp_path, doc))


@pytest.mark.parametrize("depth", [MAX_ARRAY_DEPTH - 1, MAX_ARRAY_DEPTH, 500])
def test_nested_arrays(tmp_path: Path, depth: int) -> None:
    vtype, value = U32, 1
    for _ in range(depth):
        vtype, value = ARR, (vtype, [value])
    path = _write(tmp_path, _with("test.deep", vtype, value))
    if depth <= MAX_ARRAY_DEPTH:
        got = read_header(path).fields["test.deep"]
        for _ in range(depth):
            got = got[0]
        assert got == 1
    else:
        with pytest.raises(GGUFRuleError, match=f"nests arrays deeper than {MAX_ARRAY_DEPTH}"):
            inspect_path(path)


def test_directory_and_fifo_are_named(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="is a directory, not a GGUF file"):
        read_spec(tmp_path)
    fifo = tmp_path / "pipe.gguf"
    import os

    os.mkfifo(fifo)
    with pytest.raises(GGUFError, match=r"is a FIFO \(named pipe\), not a GGUF file"):
        read_spec(fifo)


def test_no_tensors_means_no_padding(tmp_path: Path) -> None:
    path = _write(tmp_path, BASES["vocab"])
    assert path.stat().st_size % 32 != 0  # the file ends with its metadata
    header = read_header(path)
    assert header.vocab_only and header.expected_file_bytes == path.stat().st_size
    with pytest.raises(VocabOnlyModel, match="vocab-only"):
        read_spec(path)


def test_big_endian_file_reads(tmp_path: Path) -> None:
    doc = BASES["model"]
    le = read_header(_write(tmp_path, doc, "le.gguf"))
    be = read_header(_write(tmp_path, Doc(doc.kvs, doc.tensors, order=">"), "be.gguf"))
    assert be.byte_order == ">" and be.fields == le.fields and be.tensors == le.tensors


# --- differential: edgekv and gguf-py read the same keys, values and tensor infos ------------------


class StrictGGUFReader(gguf.GGUFReader):
    """gguf-py's reader, except that reading past the end of the file is an error (stock
    GGUFReader silently returns short arrays there, as llama.cpp does not)."""

    def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> Any:
        arr = super()._get(offset, dtype, count, override_order)
        if len(arr) != int(count):
            raise EOFError(f"read past the end of the file at offset {offset}")
        return arr


def _walk(parts: list[Any], i: int, vtype: int) -> tuple[Any, int]:
    if vtype == gguf.GGUFValueType.STRING:
        return bytes(parts[i + 1]).decode("utf-8", errors="replace"), i + 2
    if vtype == gguf.GGUFValueType.ARRAY:
        item_type, count = int(parts[i][0]), int(parts[i + 1][0])
        out, i = [], i + 2
        for _ in range(count):
            v, i = _walk(parts, i, item_type)
            out.append(v)
        return out, i
    return parts[i][0].item(), i + 1


def gguf_py_read(path: Path) -> tuple[dict[str, Any], list[tuple[str, str, tuple[int, ...], int]]]:
    reader = StrictGGUFReader(path)
    fields = {}
    for name, f in list(reader.fields.items())[3:]:  # GGUF.version, tensor_count, kv_count come first
        fields[name] = _walk(f.parts, 3, int(f.parts[2][0]))[0]
    tensors = [
        (t.name, t.tensor_type.name, tuple(int(d) for d in t.shape), t.data_offset - reader.data_offset)
        for t in reader.tensors
    ]
    return fields, tensors


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def differ(path: Path) -> str | None:
    """None when edgekv and gguf-py agree on ``path``, else what differs."""
    try:
        theirs: Any = gguf_py_read(path)
    except (ValueError, KeyError, IndexError, EOFError, TypeError, OverflowError, RecursionError, MemoryError) as e:
        theirs = e
    try:
        h = read_header(path, keep_all=True)
        ours: Any = (h.fields, [(t.name, t.type, t.shape, o) for t, o in zip(h.tensors, h.tensor_offsets, strict=True)])
    except GGUFRuleError:
        return None  # llama.cpp's stricter rules (rank 1..4, dims >= 1, nesting): counted apart
    except GGUFError as e:
        ours = e
    rejected = isinstance(theirs, BaseException), isinstance(ours, BaseException)
    if any(rejected):
        return None if all(rejected) else f"{theirs!r} vs {ours!r}"
    if list(ours[0]) != list(theirs[0]):
        return f"keys {list(ours[0])} vs {list(theirs[0])}"
    for k in ours[0]:
        if not _same(ours[0][k], theirs[0][k]):
            return f"{k}: {ours[0][k]!r:.80} vs {theirs[0][k]!r:.80}"
    return None if ours[1] == theirs[1] else f"tensors {ours[1]} vs {theirs[1]}"


def test_differential_fuzz(tmp_path: Path) -> None:
    path = tmp_path / "case.gguf"
    disagreements = []
    for i in range(1400):
        cls, base, data = case_file(i, seed=3)
        path.write_bytes(data)
        d = differ(path)
        if d is not None:
            disagreements.append((i, cls, base, d))
    assert disagreements == []


def test_differential_generated_and_gemma(tmp_path: Path, gemma_gguf: Path) -> None:
    from tests.ggufgen import tiny_config, write_sparse_gguf, write_tiny_gguf

    files = [gemma_gguf, write_tiny_gguf(tmp_path / "q.gguf", tiny_config())]
    files.append(write_sparse_gguf(tmp_path / "l.gguf", tiny_config("LlamaForCausalLM"), quant="Q4_K_M"))
    w = gguf.GGUFWriter(tmp_path / "all.gguf", "llama", endianess=gguf.GGUFEndian.BIG)
    for i, vt in enumerate(gguf.GGUFValueType):
        if vt not in (gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING):
            w.add_key_value(f"t.{i}", 1, vt)
    w.add_array("t.nested", [[1, 2], ["a"], [[True]]])
    w.add_tensor("x", np.ones((4, 3), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    files.append(tmp_path / "all.gguf")
    for f in files:
        assert differ(f) is None, f


# --- the vocab-only GGUFs llama.cpp ships ------------------------------------------------------------

SDIST = "llama-cpp-python==0.3.36"
SDIST_FILE = "llama_cpp_python-0.3.36.tar.gz"
VOCAB_MEMBER = "/models/ggml-vocab-"  # where the sdist holds them: .../vendor/llama.cpp/models/ggml-vocab-*.gguf


def extract_vocab_ggufs(sdist: Path, out: Path) -> list[Path]:
    """The ``models/ggml-vocab-*.gguf`` files of a llama-cpp-python sdist, extracted into ``out``."""
    tmp = out.with_name(out.name + ".incomplete")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as tar:
        for m in tar.getmembers():
            if VOCAB_MEMBER in m.name and m.name.endswith(".gguf") and m.isfile():
                src = tar.extractfile(m)
                assert src is not None
                (tmp / Path(m.name).name).write_bytes(src.read())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sorted(out.glob("*.gguf"))


@pytest.fixture(scope="session")
def vocab_ggufs() -> list[Path]:
    """llama.cpp's 19 vocab files from the llama-cpp-python sdist on PyPI, cached under ~/.cache/edgekv."""
    cache = Path.home() / ".cache" / "edgekv"
    out = cache / "ggml-vocab-0.3.36"
    if not (out.is_dir() and len(list(out.glob("*.gguf"))) == 19):
        sdist = cache / "sdist"
        if not (sdist / SDIST_FILE).is_file():
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST]
            cmd += ["-d", str(sdist)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if proc.returncode or not (sdist / SDIST_FILE).is_file():
                pytest.skip(f"cannot fetch the {SDIST} sdist: {proc.stderr.strip()[-200:]}")
        extract_vocab_ggufs(sdist / SDIST_FILE, out)
    return sorted(out.glob("*.gguf"))


def write_vocab_gguf(path: Path, arch: str, tokenizer: str, n_vocab: int, *, pre: str | None = None) -> None:
    """A vocab-only GGUF as llama.cpp's convert_hf_to_gguf.py --vocab-only writes one with gguf-py:
    the architecture's hparams and the tokenizer, no tensors."""
    w = gguf.GGUFWriter(path, arch)
    w.add_name(path.stem)
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(2)
    w.add_head_count(4)
    w.add_tokenizer_model(tokenizer)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list([f"<tok{i}>" if i < 3 else f"t{i}" for i in range(n_vocab)])
    w.add_token_types([3] * 3 + [1] * (n_vocab - 3))
    if tokenizer == "llama":
        w.add_token_scores([float(-i) for i in range(n_vocab)])
    if tokenizer == "gpt2":
        w.add_token_merges([f"t{i} t{i + 1}" for i in range(3, n_vocab - 1)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()


def local_sdist(tmp_path: Path) -> Path:
    """A tarball laid out as the sdist is, holding vocab files in llama.cpp's three tokenizer shapes
    (SentencePiece, BPE with a pre-tokenizer, WordPiece) built here, and a file that is not one."""
    sdist = tmp_path / SDIST_FILE
    with tarfile.open(sdist, "w:gz") as tar:
        for name, arch, tokenizer, n_vocab, pre in (
            ("llama-spm", "llama", "llama", 3000, None), ("qwen2", "qwen2", "gpt2", 5000, "qwen2"),
            ("bert-bge", "bert", "bert", 1000, None),
        ):  # fmt: skip
            path = tmp_path / f"ggml-vocab-{name}.gguf"
            write_vocab_gguf(path, arch, tokenizer, n_vocab, pre=pre)
            tar.add(path, f"llama_cpp_python-0.3.36/vendor/llama.cpp{VOCAB_MEMBER}{name}.gguf")
        readme = tmp_path / "README.md"
        readme.write_text("not a vocab file")
        tar.add(readme, "llama_cpp_python-0.3.36/README.md")
    return sdist


def check_vocab_files(files: list[Path]) -> None:
    """``edgekv inspect`` shows each as vocab-only with its vocabulary; pick and run's reader refuses it."""
    from click.testing import CliRunner

    from edgekv.cli import cli

    for f in files:
        result = CliRunner().invoke(cli, ["inspect", str(f)])
        assert result.exit_code == 0, (f, result.output)
        assert "vocab-only" in result.output
        assert inspect_file(f).n_vocab > 0  # type: ignore[union-attr]
        with pytest.raises(VocabOnlyModel, match="vocab-only"):
            read_spec(f)


def test_vocab_files_inspect_built_here(tmp_path: Path) -> None:
    """The default run's copy of the network test below: vocab files built here, taken out of a
    tarball the way the sdist's are, read as llama.cpp's are (and as gguf-py reads them)."""
    files = extract_vocab_ggufs(local_sdist(tmp_path), tmp_path / "vocab")
    assert [f.name for f in files] == ["ggml-vocab-bert-bge.gguf", "ggml-vocab-llama-spm.gguf", "ggml-vocab-qwen2.gguf"]
    check_vocab_files(files)
    assert [inspect_file(f).n_vocab for f in files] == [1000, 3000, 5000]  # type: ignore[union-attr]
    for f in files:
        assert differ(f) is None, f


@pytest.mark.network
def test_vocab_files_inspect(vocab_ggufs: list[Path]) -> None:
    assert len(vocab_ggufs) == 19
    check_vocab_files(vocab_ggufs)


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("i", range(19))
def test_vocab_files_agree_with_gguf_py(vocab_ggufs: list[Path], i: int) -> None:
    """Every key and value, the 100k-entry token and merge lists too (gguf-py takes ~25 s a file)."""
    assert differ(vocab_ggufs[i]) is None


def test_pick_and_run_refuse_vocab_only(tmp_path: Path) -> None:
    from edgekv.store.catalog import gguf_option

    path = _write(tmp_path, BASES["vocab"], "ggml-vocab-x.gguf")
    with pytest.raises(VocabOnlyModel, match="vocab-only"):
        gguf_option(path)
    assert issubclass(VocabOnlyModel, EdgekvError)


def test_bool_and_u64_values_read(tmp_path: Path) -> None:
    h = read_header(_write(tmp_path, _with("test.b", BOOL, False)))
    assert h.fields["test.b"] is False and h.fields["test.u64"] == 2**40
