"""Hugging Face checkpoint -> GGUF (f16/bf16) -> a quant ladder, without torch.

The f16/bf16 step mirrors llama.cpp's ``convert_hf_to_gguf.py`` (``conversion/base.py``
TextModel, ``conversion/llama.py`` LlamaModel, ``conversion/qwen.py`` Qwen2Model/Qwen3Model, as
vendored by llama-cpp-python 0.3.36) on gguf-py, safetensors headers and numpy: same tensor names,
order, types and bytes (q/k rows permuted for the llama arch), same metadata keys, same tokenizer
(BPE pre-tokenizer chosen by the hash of ``get_vocab_base_pre``'s text, or SentencePiece).
``tests/convert/test_convert_reference.py`` checks it bit for bit against the reference converter.

Tensors stream one at a time, in row chunks read with plain file reads (not mmap, so the page
cache is not charged to us), converted and written straight into the GGUF, so peak memory is
about one q/k matrix plus a chunk, not the checkpoint. Only safetensors are read: ``.bin``/
``.pt``/``.pth`` files are pickles, and unpickling runs code. Each output is written as
``NAME.incomplete`` and renamed when complete; ``manifest.json`` records every finished file,
so a killed run leaves no partial GGUF and a rerun reuses what is done.

This module runs the ladder (convert_checkpoint: reuse, size estimate, disk check); the rest is
in ``hparams`` (config.json, hyperparameter keys), ``tokenizer`` (vocab, pre-tokenizer, special
tokens), ``safetensors`` (reading and checking the files), ``tensors`` (tensor plan, the f16/bf16
GGUF), ``manifest`` (manifest.json: each file's numbers and recipe) and ``edgekv.llama.quantize``
(llama_model_quantize, imatrix).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekv.convert.hparams import SUPPORTED_ARCHITECTURES, load_config
from edgekv.convert.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    OutputFile,
    file_numbers,
    fingerprint,
    load_manifest,
    write_manifest,
)
from edgekv.convert.safetensors import index_tensors
from edgekv.convert.tensors import (
    OUTTYPES,
    ConvertProgress,
    ProgressFn,
    convert_to_gguf,
    parse_outtype,
    plan_tensors,
)
from edgekv.errors import (
    DiskFull,
    LlamaError,
    ModelFileNotFound,
    OutputExists,
    RuntimeUnavailable,
    SpecError,
)
from edgekv.fsutil import INCOMPLETE, BeforeRename, atomic_output
from edgekv.llama.quantize import Imatrix, load_imatrix, quantize_gguf
from edgekv.logconfig import get_logger
from edgekv.model.quant import WeightQuant

logger = get_logger(__name__)

DEFAULT_QUANTS: tuple[WeightQuant, ...] = tuple(WeightQuant(q) for q in ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"))
HEADER_SLACK_BYTES = 1 << 20

# Metadata keys in which edgekv's f16 output may differ from the reference converter's, and why
# (docs/convert.md repeats this list). The reference test compares every other key exactly.
REFERENCE_IGNORED_KEYS: dict[str, str] = {
    "tokenizer.ggml.normalizer_lowercase": "newer gguf-py key (BERT-style lowercasing); absent from "
    "gguf 0.19.0's GGUFWriter and unused by the Qwen/Llama/Mistral tokenizers edgekv converts",
    "tokenizer.ggml.normalizer_strip_accents": "as normalizer_lowercase",
}


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True, slots=True)
class ConvertResult:
    """What :func:`convert_checkpoint` wrote: the files in ladder order and the manifest."""

    model_name: str
    arch: str
    outdir: Path
    manifest_path: Path
    files: tuple[OutputFile, ...]
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)


# --------------------------------------------------------------------------- the f16/bf16 GGUF by llama.cpp's script


def _reference_convert(
    converter: Path,
    ckpt: Path,
    out: Path,
    *,
    outtype: str,
    model_name: str | None,
    progress: ProgressFn | None,
    before_rename: BeforeRename | None = None,
) -> Path:
    """Run llama.cpp's convert_hf_to_gguf.py (it puts its bundled gguf-py on sys.path itself)."""
    if not converter.is_file():
        raise ModelFileNotFound(f"{converter}: no such script", hint="point --converter at convert_hf_to_gguf.py")
    if progress is not None:
        progress(ConvertProgress(out.name, "convert", 0, 1))
    with atomic_output(out, before_rename=before_rename) as tmp:
        cmd = [sys.executable, str(converter), str(ckpt), "--outtype", outtype.lower(), "--outfile", str(tmp)]
        if model_name:
            cmd += ["--model-name", model_name]
        env = dict(os.environ)
        if (bundled := converter.parent / "gguf-py").is_dir():  # its own gguf-py, newer than PyPI's
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(bundled), env.get("PYTHONPATH")]))
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False, env=env)
        if proc.returncode != 0 or not tmp.is_file():
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if "error" in ln.lower()]
            reason = errors[-1] if errors else (lines[-1] if lines else None)
            if reason and "ModuleNotFoundError" in reason:
                hint = "pip install torch transformers"
                raise RuntimeUnavailable(f"llama.cpp's converter lacks a module: {reason}", hint=hint)
            raise LlamaError(f"llama.cpp's converter failed on {ckpt} (exit {proc.returncode})", reason=reason)
    if progress is not None:
        progress(ConvertProgress(out.name, "convert", 1, 1))
    return out


# --------------------------------------------------------------------------- the ladder


def _default_model_name(ckpt: Path) -> str:
    """The checkpoint folder's name; for a hub cache snapshot (models--org--name/snapshots/<sha>) the repo's."""
    ckpt = ckpt.resolve()
    if re.fullmatch(r"[0-9a-f]{40}", ckpt.name) and ckpt.parent.name == "snapshots":
        return ckpt.parent.parent.name.split("--")[-1]
    return ckpt.name


def _estimate_bytes(
    ckpt: Path, quants: Sequence[WeightQuant], *, outtype: str, has_imatrix: bool
) -> tuple[int, dict[str, int]]:
    """(f16/bf16 file bytes, quant -> bytes) estimated from the tensor plan and llama.cpp's type rules."""
    from edgekv.model.quantrules import quantized_types, weights_bytes
    from edgekv.model.spec import TensorInfo

    sources = index_tensors(ckpt)
    config, hf_arch = load_config(ckpt)
    plan = plan_tensors(sources, config, hf_arch, outtype)
    tok_bytes = sum(p.stat().st_size for p in (ckpt / "tokenizer.json", ckpt / "tokenizer.model") if p.is_file())
    header = tok_bytes + HEADER_SLACK_BYTES
    base = header + sum(-(-t.n_bytes // 32) * 32 for t in plan)
    shapes = [TensorInfo(t.name, t.qtype, tuple(reversed(t.shape))) for t in plan]
    arch = SUPPORTED_ARCHITECTURES[hf_arch]
    out = {}
    for q in quants:
        try:
            types = quantized_types(
                shapes, q, arch=arch, n_layer=config["num_hidden_layers"], n_head=config["num_attention_heads"],
                n_head_kv=config["num_key_value_heads"], has_imatrix=has_imatrix,
            )  # fmt: skip
        except SpecError as e:
            raise SpecError(e.message, hint="pass --imatrix FILE (from llama-imatrix) for this quant") from None
        out[q.value] = header + weights_bytes(shapes, types) + 32 * len(shapes)
    return base, out


def _make_outdir(out: Path) -> None:
    """Create the output folder, naming what is in the way (a file above it, no permission)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SpecError(f"--outdir {out} is a file, not a folder", hint="choose another --outdir") from None
    except NotADirectoryError:
        above = next((p for p in out.parents if p.exists() and not p.is_dir()), out.parent)
        raise SpecError(f"--outdir {out} is below {above}, which is a file", hint="choose another --outdir") from None
    except PermissionError as e:
        raise SpecError(f"--outdir {out}: cannot create it ({e.strerror})", hint="choose another --outdir") from None


def _check_disk(outdir: Path, need_bytes: int, reclaim_bytes: int) -> None:
    free = shutil.disk_usage(outdir).free + reclaim_bytes
    if need_bytes > free:
        from edgekv.units import format_bytes

        raise DiskFull(
            f"the GGUF files need ~{format_bytes(need_bytes)} ({need_bytes} bytes) but {outdir} has "
            f"{format_bytes(free)} ({free} bytes) free",
            hint="free some space, choose another --outdir, or ask for fewer --quants",
        )


def convert_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    *,
    quants: Sequence[WeightQuant | str] = DEFAULT_QUANTS,
    outtype: str = "f16",
    outdir: str | os.PathLike[str] | None = None,
    model_name: str | None = None,
    imatrix: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    force: bool = False,
    converter: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
) -> ConvertResult:
    """Convert a Hugging Face checkpoint to ``<name>-F16.gguf`` and quantize it to each of ``quants``.

    Writes into ``outdir`` (default ``./<name>-GGUF``) plus ``manifest.json``. A file that an earlier
    run of the same conversion finished (same source, recorded in the manifest with its sha256) is
    reused; any other existing output needs ``force``. ``converter`` runs llama.cpp's
    convert_hf_to_gguf.py for the f16/bf16 step instead of edgekv's converter.

    Raises:
        ModelFileNotFound, UnsupportedModel: see :func:`convert_to_gguf`.
        OutputExists: an output exists that this conversion did not make, and ``force`` is False.
        DiskFull: the estimated outputs do not fit the free space of ``outdir``.
        LlamaError: llama.cpp failed to quantize (the message says why).
    """
    ckpt = Path(checkpoint_dir)
    if not ckpt.is_dir():
        raise ModelFileNotFound(f"{ckpt}: no such checkpoint folder", hint="pass a folder with config.json")
    base_type = parse_outtype(outtype)
    ladder = list(dict.fromkeys(q if isinstance(q, WeightQuant) else WeightQuant.parse(q) for q in quants))
    if any(q.value in OUTTYPES for q in ladder):
        raise SpecError("F16/BF16 is the conversion step, not a quant", hint="use --outtype for it")
    name = re.sub(r"[^\w.+-]+", "-", model_name or _default_model_name(ckpt)).strip("-") or "model"
    out = Path(outdir) if outdir is not None else Path.cwd() / f"{name}-GGUF"
    conv = Path(converter) if converter is not None else None
    im = load_imatrix(imatrix) if imatrix is not None else None
    base_est, quant_est = _estimate_bytes(ckpt, ladder, outtype=base_type, has_imatrix=im is not None)

    fp = fingerprint(ckpt, outtype=base_type, converter=conv, model_name=name)
    imatrix_sig = f"{im.path.name}:{im.path.stat().st_size}" if im is not None else None
    steps = [(base_type, out / f"{name}-{base_type}.gguf", base_est)]
    steps += [(q.value, out / f"{name}-{q.value}.gguf", quant_est[q.value]) for q in ladder]
    recipe = {s[0]: f"{fp}|{s[0]}|{imatrix_sig if s[0] not in OUTTYPES else ''}" for s in steps}

    _make_outdir(out)
    manifest_path = out / MANIFEST_NAME
    old = load_manifest(manifest_path)
    old_files = {f["name"]: f for f in old.get("files", [])} if old.get("fingerprint") == fp else {}
    if manifest_path.exists() and not force and old.get("fingerprint") != fp:
        raise OutputExists(f"{manifest_path} belongs to another conversion", hint="pass --force or another --outdir")
    reuse: dict[str, bool] = {}
    for quant, path, _ in steps:
        entry = old_files.get(path.name) or {}
        ok = not force and path.is_file() and entry.get("recipe") == recipe[quant]
        ok = ok and path.stat().st_size == entry.get("file_bytes")
        if path.exists() and not ok and not force:
            raise OutputExists(f"{path} already exists", hint="pass --force to overwrite it, or another --outdir")
        reuse[quant] = ok
    need = sum(est for quant, _, est in steps if not reuse[quant])
    partials = [path.with_name(path.name + INCOMPLETE) for _, path, _ in steps]
    stale = sum(p.stat().st_size for p in partials if p.is_file())  # rewritten, so their space counts as free
    _check_disk(out, need, stale)

    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "model_name": name,
        "arch": SUPPORTED_ARCHITECTURES[load_config(ckpt)[1]],
        "source": str(ckpt.resolve()),
        "outtype": base_type,
        "converter": str(conv) if conv else "edgekv",
        "fingerprint": fp,
        "files": [],
    }
    written: list[OutputFile] = []
    base_path = steps[0][1]

    def save(extra: list[OutputFile]) -> None:
        files = [*written, *extra]
        manifest["files"] = [{**x.as_dict(), "recipe": recipe[x.quant]} for x in files]
        done = {x.name for x in files}
        manifest["files"] += [v for k, v in old_files.items() if k not in done and (out / k).is_file()]
        write_manifest(manifest_path, manifest)

    for i, (quant, path, est) in enumerate(steps):
        if reuse[quant]:
            f = file_numbers(path, quant, reused=True)
            if f.sha256 != old_files[path.name]["sha256"]:
                raise OutputExists(f"{path} changed since it was written", hint="pass --force to rebuild it")
        else:
            finished: list[OutputFile] = []

            def record(tmp: Path, quant: str = quant, path: Path = path, finished: list[OutputFile] = finished) -> None:
                # Recorded before the rename: a kill after it leaves a file whose sha256 the manifest
                # already has, so the rerun reuses it instead of asking for --force.
                finished.append(file_numbers(tmp, quant, final=path))
                save(finished)

            hooks: dict[str, Any] = {"before_rename": record, "progress": progress}
            if i == 0 and conv is not None:
                _reference_convert(conv, ckpt, path, outtype=base_type, model_name=model_name, **hooks)
            elif i == 0:
                convert_to_gguf(ckpt, path, outtype=base_type, model_name=model_name, file_index=0,
                                n_files=len(steps), need_bytes=est, **hooks)  # fmt: skip
            else:
                _quantize(base_path, path, quant, threads=threads, imatrix=im, file_index=i, n_files=len(steps),
                          need_bytes=est, **hooks)  # fmt: skip
            f = finished[0]
        written.append(f)
        save([])
    return ConvertResult(name, manifest["arch"], out, manifest_path, tuple(written), manifest)


def _quantize(
    src: Path,
    out: Path,
    quant: WeightQuant | str,
    *,
    threads: int | None,
    imatrix: Imatrix | None,
    progress: ProgressFn | None,
    file_index: int,
    n_files: int,
    need_bytes: int | None = None,
    before_rename: BeforeRename | None = None,
) -> None:
    """One rung of the ladder through llama.cpp's quantizer, reporting progress per tensor."""
    src_bytes = src.stat().st_size

    def on_tensor(i: int, n: int) -> None:
        if progress is not None:
            progress(ConvertProgress(out.name, "quantize", src_bytes * i // max(n, 1), src_bytes, file_index, n_files))

    quantize_gguf(src, out, quant, threads=threads, imatrix=imatrix, on_tensor=on_tensor, need_bytes=need_bytes,
                  before_rename=before_rename)  # fmt: skip
