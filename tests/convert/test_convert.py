"""edgekv.convert.checkpoint on tiny generated checkpoints: convert, quantize, load in llama.cpp, tokenize."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekv.convert.checkpoint import DEFAULT_QUANTS, ConvertResult, convert_checkpoint
from edgekv.convert.tensors import ConvertProgress
from edgekv.convert.tokenizer import pretokenizer_name
from edgekv.errors import DiskFull, ModelFileNotFound, OutputExists, SpecError, UnsupportedModel
from edgekv.llama.quantize import load_imatrix
from edgekv.model.gguf_reader import read_header, read_spec
from edgekv.model.quant import KvType, WeightQuant
from edgekv.plan.memory import kv_bytes_per_token
from tests.ckptgen import qwen_tokenizer_dir, write_llama_checkpoint, write_qwen3_checkpoint

ROOT = Path(__file__).resolve().parents[2]
LADDER = [q.value for q in DEFAULT_QUANTS]
SAMPLES = [
    "The quick brown fox jumps over the lazy dog.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "我想在苹果公司工作，今天天气很好。",
    "Emoji: 🚀🦙😶‍🌫️ ✅",
    "<think>\nLet me add 2 and 2.\n</think>\n\nThe answer is 4.",
    "  leading spaces,\ttabs\n\nand   runs of   spaces ",
]


def _gguf_tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...], bytes]]:
    import gguf

    r = gguf.GGUFReader(path)
    return {t.name: (t.tensor_type.name, tuple(int(x) for x in t.shape), bytes(t.data.tobytes())) for t in r.tensors}


def _gguf_field(path: Path, key: str) -> Any:
    return read_header(path).fields.get(key)  # skips the tokenizer arrays, unlike GGUFReader


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _generate(path: Path, prompt: bytes = b"Hello") -> list[int]:
    """Load a GGUF in llama.cpp and greedily generate four tokens."""
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=256, n_batch=32, n_threads=2, verbose=False)
    try:
        out: list[int] = []
        for tok in llm.generate(llm.tokenize(prompt), temp=0.0):
            out.append(tok)
            if len(out) == 4:
                break
        return out
    finally:
        llm.close()


@pytest.fixture(scope="module")
def qwen3_ladder(tmp_path_factory: pytest.TempPathFactory) -> ConvertResult:
    """The tiny Qwen3 checkpoint (real Qwen tokenizer) converted and quantized to the whole ladder."""
    base = tmp_path_factory.mktemp("qwen3")
    ckpt = write_qwen3_checkpoint(base / "Qwen3-tiny")
    return convert_checkpoint(ckpt, quants=LADDER, outdir=base / "out", threads=2)


@pytest.fixture(scope="module")
def llama_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_llama_checkpoint(tmp_path_factory.mktemp("llama") / "Llama-tiny")


@pytest.fixture(scope="module")
def llama_ladder(llama_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> ConvertResult:
    return convert_checkpoint(llama_ckpt, quants=LADDER, outdir=tmp_path_factory.mktemp("llama-out"), threads=2)


@pytest.mark.parametrize("ladder", ["qwen3_ladder", "llama_ladder"])
def test_every_file_loads_and_generates(ladder: str, request: pytest.FixtureRequest) -> None:
    result: ConvertResult = request.getfixturevalue(ladder)
    assert [f.quant for f in result.files] == ["F16", *LADDER]
    for f in result.files:
        assert f.path.name == f"{result.model_name}-{f.quant}.gguf"
        assert len(_generate(f.path)) == 4, f.name
    assert sorted(p.name for p in result.outdir.iterdir()) == sorted([f.name for f in result.files] + ["manifest.json"])


def test_quant_files_have_the_requested_types(qwen3_ladder: ConvertResult) -> None:
    types = {f.quant: set(f.tensor_type_bytes) for f in qwen3_ladder.files}
    assert types["F16"] == {"F16", "F32"}
    assert types["Q8_0"] == {"Q8_0", "F32"}
    assert "Q4_K" in types["Q4_K_M"] and "Q5_K" in types["Q5_K_M"] and "Q4_0" in types["Q4_0"]
    assert _gguf_field(qwen3_ladder.files[0].path, "general.file_type") == 1
    assert _gguf_field(qwen3_ladder.files[-1].path, "general.file_type") == WeightQuant.Q4_0.ftype


def test_manifest_matches_the_files(qwen3_ladder: ConvertResult) -> None:
    manifest = json.loads(qwen3_ladder.manifest_path.read_text())
    assert manifest == qwen3_ladder.manifest
    assert manifest["arch"] == "qwen3" and manifest["outtype"] == "F16"
    assert [e["name"] for e in manifest["files"]] == [f.name for f in qwen3_ladder.files]
    for entry in manifest["files"]:
        path = qwen3_ladder.outdir / entry["name"]
        spec = read_spec(path)
        assert entry["sha256"] == _sha256(path)
        assert entry["file_bytes"] == path.stat().st_size
        assert entry["weights_bytes"] == spec.weights_bytes == sum(entry["tensor_type_bytes"].values())
        assert entry["tensor_type_bytes"] == spec.tensor_type_bytes()
        kv = {k.value: kv_bytes_per_token(spec, k) for k in (KvType.F16, KvType.Q8_0, KvType.Q4_0)}
        assert entry["kv_bytes_per_token"] == kv == {"f16": 1024, "q8_0": 544, "q4_0": 288}  # 2 layers x 2 x 128


def test_qwen_tokenization_matches_hugging_face(qwen3_ladder: ConvertResult) -> None:
    from llama_cpp import Llama
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(qwen_tokenizer_dir() / "tokenizer.json"))
    assert _gguf_field(qwen3_ladder.files[0].path, "tokenizer.ggml.pre") == "qwen2"
    llm = Llama(str(qwen3_ladder.files[-1].path), n_ctx=256, vocab_only=True, verbose=False)
    try:
        for text in SAMPLES:
            want = hf.encode(text, add_special_tokens=False).ids
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == want, text
        assert llm.tokenize(b"<|im_start|>user", add_bos=False, special=True)[0] == 151644
    finally:
        llm.close()


def test_llama_spm_tokenization_matches_sentencepiece(llama_ladder: ConvertResult, llama_ckpt: Path) -> None:
    import sentencepiece as spm
    from llama_cpp import Llama

    sp = spm.SentencePieceProcessor(model_file=str(llama_ckpt / "tokenizer.model"))
    f16 = llama_ladder.files[0].path
    assert _gguf_field(f16, "tokenizer.ggml.model") == "llama"
    assert _gguf_field(f16, "tokenizer.chat_template").startswith("{% for m in messages %}")
    llm = Llama(str(f16), n_ctx=256, vocab_only=True, verbose=False)
    try:
        for text in SAMPLES:
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == sp.encode(text), text
        assert llm.tokenize(b"hi", add_bos=True)[0] == sp.bos_id()
    finally:
        llm.close()


def test_pretokenizer_hash_names_qwen2() -> None:
    assert pretokenizer_name(qwen_tokenizer_dir() / "tokenizer.json") == "qwen2"


def test_sharded_checkpoint_gives_the_same_tensors(
    tmp_path: Path, llama_ckpt: Path, llama_ladder: ConvertResult
) -> None:
    import shutil

    sharded = write_llama_checkpoint(tmp_path / "sharded" / "Llama-tiny", shards=2)
    shutil.copyfile(llama_ckpt / "tokenizer.model", sharded / "tokenizer.model")  # training is not bit-stable
    assert len(json.loads((sharded / "model.safetensors.index.json").read_text())["weight_map"]) > 0
    result = convert_checkpoint(sharded, quants=[], outdir=tmp_path / "out")
    # same seed, tokenizer and folder name: same tensors (names, types, shapes, bytes) and metadata;
    # only their order differs, shard by shard as in the reference converter
    assert _gguf_tensors(result.files[0].path) == _gguf_tensors(llama_ladder.files[0].path)
    assert read_header(result.files[0].path).fields == read_header(llama_ladder.files[0].path).fields


def test_rerun_reuses_finished_files(llama_ckpt: Path, llama_ladder: ConvertResult) -> None:
    again = convert_checkpoint(llama_ckpt, quants=LADDER, outdir=llama_ladder.outdir)
    assert all(f.reused for f in again.files)
    assert [f.sha256 for f in again.files] == [f.sha256 for f in llama_ladder.files]


def test_existing_output_needs_force(llama_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "Llama-tiny-F16.gguf").write_bytes(b"not mine")
    with pytest.raises(OutputExists, match="Llama-tiny-F16.gguf"):
        convert_checkpoint(llama_ckpt, quants=["Q8_0"], outdir=out)
    assert (out / "Llama-tiny-F16.gguf").read_bytes() == b"not mine"
    result = convert_checkpoint(llama_ckpt, quants=["Q8_0"], outdir=out, force=True)
    assert [f.reused for f in result.files] == [False, False]
    assert read_spec(out / "Llama-tiny-F16.gguf").n_layer == 2


def test_progress_raising_midway_leaves_no_gguf_and_rerun_completes(llama_ckpt: Path, tmp_path: Path) -> None:
    seen: list[ConvertProgress] = []

    def stop_after_three(p: ConvertProgress) -> None:
        seen.append(p)
        if len(seen) == 3:
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(llama_ckpt, quants=["Q4_K_M"], outdir=out, progress=stop_after_three)
    assert seen[-1].stage == "convert" and 0 < seen[-1].done_bytes < seen[-1].total_bytes
    assert list(out.glob("*.gguf")) == [] and list(out.glob("*.incomplete")) == []
    result = convert_checkpoint(llama_ckpt, quants=["Q4_K_M"], outdir=out)
    assert [f.name for f in result.files] == ["Llama-tiny-F16.gguf", "Llama-tiny-Q4_K_M.gguf"]


def test_quantize_progress_follows_llama_cpps_tensor_lines(llama_ckpt: Path, tmp_path: Path) -> None:
    """The quantize stage reports each ``[ i/ n]`` tensor line of llama.cpp's log, in order, up to the
    whole source file; a progress callback that raises there stops the rung and leaves no partial."""
    import gguf

    seen: list[ConvertProgress] = []
    out = tmp_path / "out"
    convert_checkpoint(llama_ckpt, quants=["Q8_0"], outdir=out, progress=seen.append)
    src = out / "Llama-tiny-F16.gguf"
    n_tensors = len(gguf.GGUFReader(src).tensors)
    steps = [p.done_bytes for p in seen if p.stage == "quantize"]
    size = src.stat().st_size
    assert steps == [size * i // n_tensors for i in range(1, n_tensors + 1)]

    def stop_in_quantize(p: ConvertProgress) -> None:
        if p.stage == "quantize":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(llama_ckpt, quants=["Q4_K_M"], outdir=out, progress=stop_in_quantize)
    assert not list(out.glob("*Q4_K_M*"))


_KILL_CHILD = """
import sys
from edgekv.convert.checkpoint import convert_checkpoint
def stop(p):
    if p.stage == "convert" and p.done_bytes > 0:
        print(p.done_bytes, flush=True)  # the parent kills on this line
        sys.stdin.readline()  # and this waits for nothing: the kill comes first
convert_checkpoint(sys.argv[1], quants=["Q8_0"], outdir=sys.argv[2], progress=stop)
"""


def test_killed_conversion_leaves_only_incomplete_and_rerun_completes(llama_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", _KILL_CHILD, str(llama_ckpt), str(out)]
    child = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)  # the first tensor written, or a minute
        written = child.stdout.readline() if ready else ""
        assert written.strip().isdigit(), "the child never wrote a tensor"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdin.close()
        child.stdout.close()
    assert list(out.glob("*.gguf")) == []
    partial = out / "Llama-tiny-F16.gguf.incomplete"
    assert partial.stat().st_size >= int(written)
    result = convert_checkpoint(llama_ckpt, quants=["Q8_0"], outdir=out)
    assert not partial.exists()
    assert len(_generate(result.files[-1].path)) == 4


def test_pickle_checkpoints_are_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "pickled"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (ckpt / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsupportedModel, match="unpickling can run arbitrary code") as e:
        convert_checkpoint(ckpt, outdir=tmp_path / "out")
    assert "pytorch_model.bin" in str(e.value)


def test_missing_files_are_named(llama_ckpt: Path, tmp_path: Path) -> None:
    import shutil

    ckpt = tmp_path / "ck"
    shutil.copytree(llama_ckpt, ckpt)
    (ckpt / "tokenizer.model").unlink()
    with pytest.raises(ModelFileNotFound, match="tokenizer"):
        convert_checkpoint(ckpt, quants=[], outdir=tmp_path / "out1")
    (ckpt / "config.json").unlink()
    with pytest.raises(ModelFileNotFound, match="config.json"):
        convert_checkpoint(ckpt, quants=[], outdir=tmp_path / "out2")
    sharded = write_llama_checkpoint(tmp_path / "sharded", shards=2)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelFileNotFound, match="model-00002-of-00002.safetensors"):
        convert_checkpoint(sharded, quants=[], outdir=tmp_path / "out3")
    assert not (tmp_path / "out3").exists() or list((tmp_path / "out3").iterdir()) == []


def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    ckpt = write_llama_checkpoint(tmp_path / "gemma", arch="GemmaForCausalLM")
    with pytest.raises(UnsupportedModel, match="GemmaForCausalLM"):
        convert_checkpoint(ckpt, outdir=tmp_path / "out")


def test_bad_quant_and_outtype(llama_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="Q9_X"):
        convert_checkpoint(llama_ckpt, quants=["Q9_X"], outdir=tmp_path)
    with pytest.raises(SpecError, match="outtype"):
        convert_checkpoint(llama_ckpt, outtype="f8", outdir=tmp_path)


def test_disk_full_is_checked_before_writing(llama_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))  # type: ignore[attr-defined]
    out = tmp_path / "out"
    with pytest.raises(DiskFull, match="4096 bytes") as e:
        convert_checkpoint(llama_ckpt, quants=["Q8_0"], outdir=out)
    assert "bytes" in str(e.value)
    assert list(out.glob("*.gguf*")) == []


def _write_imatrix(path: Path, f16: Path) -> None:
    import gguf

    w = gguf.GGUFWriter(path, arch="imatrix")
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["tiny.txt"])
    w.add_uint32("imatrix.chunk_count", 3)
    w.add_uint32("imatrix.chunk_size", 512)
    rng = np.random.default_rng(1)
    for t in gguf.GGUFReader(f16).tensors:
        if len(t.shape) == 2 and t.name != "token_embd.weight":
            w.add_tensor(t.name + ".in_sum2", (rng.random(int(t.shape[0])) * 100).astype(np.float32))
            w.add_tensor(t.name + ".counts", np.array([100.0], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_imatrix_is_passed_to_llama_quantize(llama_ladder: ConvertResult, llama_ckpt: Path, tmp_path: Path) -> None:
    imatrix = tmp_path / "imatrix.gguf"
    _write_imatrix(imatrix, llama_ladder.files[0].path)
    im = load_imatrix(imatrix)
    assert im.datasets == ("tiny.txt",) and im.chunk_count == 3
    assert all(v.dtype == np.float32 and v.max() <= 1.0 for v in im.entries.values())  # sums / counts
    result = convert_checkpoint(llama_ckpt, quants=["Q4_K_M"], outdir=tmp_path / "out", imatrix=imatrix)
    q = result.files[-1].path
    assert _gguf_field(q, "quantize.imatrix.file") == str(imatrix)
    assert _gguf_field(q, "quantize.imatrix.dataset") == "tiny.txt"
    assert _gguf_field(q, "quantize.imatrix.entries_count") == len(im.entries)
    assert _gguf_field(q, "quantize.imatrix.chunks_count") == 3
    plain = next(f for f in llama_ladder.files if f.quant == "Q4_K_M")
    assert result.files[-1].sha256 != plain.sha256
    assert len(_generate(q)) == 4


def test_legacy_imatrix_format(tmp_path: Path) -> None:
    import struct

    path = tmp_path / "imatrix.dat"
    sums = np.arange(1, 9, dtype=np.float32)
    name = b"blk.0.attn_q.weight"
    data = struct.pack("<i", 1) + struct.pack("<i", len(name)) + name + struct.pack("<ii", 4, 8) + sums.tobytes()
    data += struct.pack("<ii", 7, 4) + b"wiki"
    path.write_bytes(data)
    im = load_imatrix(path)
    assert np.array_equal(im.entries["blk.0.attn_q.weight"], sums / 4)
    assert im.chunk_count == 7 and im.datasets == ("wiki",)
    (tmp_path / "junk.dat").write_bytes(b"\x00\x00")
    with pytest.raises(SpecError):
        load_imatrix(tmp_path / "junk.dat")
