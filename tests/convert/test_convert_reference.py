"""edgekv's converter against llama.cpp's reference convert_hf_to_gguf.py, tensor for tensor.

Slow (torch + transformers start up, and the reference reads the Qwen vocab through them).
Needs the llama-cpp-python sdist (for vendor/llama.cpp/convert_hf_to_gguf.py and its gguf-py;
set EDGEKV_LLAMA_CPP_SRC to its vendor/llama.cpp), torch (pip install torch==2.13.0) and transformers.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgekv.convert.checkpoint import REFERENCE_IGNORED_KEYS, convert_checkpoint
from edgekv.convert.tensors import convert_to_gguf
from tests.ckptgen import write_llama_checkpoint, write_qwen3_checkpoint

pytestmark = pytest.mark.slow

DEFAULT_SRC = Path("/tmp/src/llama_cpp_python-0.3.36/vendor/llama.cpp")


def _reference_script() -> Path:
    src = Path(os.environ.get("EDGEKV_LLAMA_CPP_SRC", DEFAULT_SRC))
    script = src / "convert_hf_to_gguf.py"
    if not script.is_file():
        pytest.skip(f"llama.cpp's convert_hf_to_gguf.py not found at {script} (unpack the llama-cpp-python "
                    "0.3.36 sdist and set EDGEKV_LLAMA_CPP_SRC to its vendor/llama.cpp)")  # fmt: skip
    for module, pip in (("torch", "torch==2.13.0"), ("transformers", "transformers")):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the reference converter needs {module}: pip install {pip}")
    return script


def _run_reference(script: Path, ckpt: Path, out: Path, outtype: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(script.parent / "gguf-py")}
    cmd = [sys.executable, str(script), str(ckpt), "--outtype", outtype, "--outfile", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _read(path: Path) -> tuple[dict[str, Any], dict[str, tuple[str, tuple[int, ...], bytes]]]:
    import gguf

    r = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: (t.tensor_type.name, tuple(int(x) for x in t.shape), t.data.tobytes()) for t in r.tensors}
    return fields, tensors


def _compare(ours: Path, ref: Path) -> None:
    our_fields, our_tensors = _read(ours)
    ref_fields, ref_tensors = _read(ref)
    assert list(our_tensors) == list(ref_tensors)  # same names in the same order
    for name, (ty, shape, data) in ref_tensors.items():
        assert our_tensors[name][:2] == (ty, shape), name
        assert our_tensors[name][2] == data, name
    keys = (set(our_fields) | set(ref_fields)) - set(REFERENCE_IGNORED_KEYS)
    diff = sorted(k for k in keys if our_fields.get(k) != ref_fields.get(k))
    assert diff == [], {k: (str(our_fields.get(k))[:80], str(ref_fields.get(k))[:80]) for k in diff}
    if not (set(REFERENCE_IGNORED_KEYS) & (set(our_fields) | set(ref_fields))):
        assert ours.read_bytes() == ref.read_bytes()  # nothing ignored: the files are byte-identical


@pytest.mark.parametrize(
    ("arch", "outtype"),
    [
        ("qwen3", "f16"),
        ("qwen3", "bf16"),
        ("qwen2", "f16"),
        ("llama", "f16"),
        ("llama3-rope", "bf16"),
        ("mistral-sharded", "f16"),
    ],
)
def test_matches_reference_converter(arch: str, outtype: str, tmp_path: Path) -> None:
    script = _reference_script()
    if arch == "qwen3":
        ckpt = write_qwen3_checkpoint(tmp_path / "Qwen3-tiny")
    elif arch == "qwen2":
        ckpt = write_qwen3_checkpoint(tmp_path / "Qwen2-tiny", arch="Qwen2ForCausalLM", tie_word_embeddings=False,
                                      dtype="float16")  # fmt: skip
    elif arch == "llama":
        ckpt = write_llama_checkpoint(tmp_path / "Llama-tiny")
    elif arch == "llama3-rope":  # rope_freqs.weight generated from rope_scaling, as Llama 3.1+ has
        rope = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}  # fmt: skip
        ckpt = write_llama_checkpoint(tmp_path / "Llama3-tiny", rope_scaling=rope, rope_theta=500000.0)
    else:
        ckpt = write_llama_checkpoint(tmp_path / "Mistral-tiny", arch="MistralForCausalLM", dtype="bfloat16", shards=2)
    ref, ours = tmp_path / "ref.gguf", tmp_path / "ours.gguf"
    _run_reference(script, ckpt, ref, outtype)
    convert_to_gguf(ckpt, ours, outtype=outtype)
    _compare(ours, ref)


def test_converter_option_runs_the_reference(tmp_path: Path) -> None:
    script = _reference_script()
    ckpt = write_llama_checkpoint(tmp_path / "Llama-tiny")
    via_ref = convert_checkpoint(ckpt, quants=["Q4_K_M"], outdir=tmp_path / "ref", converter=script)
    ours = convert_checkpoint(ckpt, quants=["Q4_K_M"], outdir=tmp_path / "ours")
    assert via_ref.manifest["converter"] == str(script)
    assert [f.sha256 for f in via_ref.files] == [f.sha256 for f in ours.files]
