"""Build llama.cpp-loadable GGUFs from a Hugging Face config, for tests.

``write_sparse_gguf`` writes only the header (metadata, a tiny SPM tokenizer, tensor infos) and
then extends the file with ``truncate``: the data region is a sparse file of zeros, so a 32B
model's shapes cost a few MB of disk and a fraction of a second. ``write_tiny_gguf`` writes real
random weights for tiny configs, so llama.cpp can load and generate from the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgekv.fsutil import atomic_output
from edgekv.model.archs import ArchParams, gguf_tensors
from edgekv.model.quant import FILE_TYPES, WeightQuant, tensor_bytes
from edgekv.model.quantrules import quantized_types
from edgekv.model.spec import TensorInfo

__all__ = ["write_sparse_gguf", "write_tiny_gguf", "tiny_config"]

_N_SPECIAL = 3  # <unk>, <s>, </s> at ids 0, 1, 2: llama.cpp's SPM defaults
_N_BYTES = 256


def tiny_config(arch: str = "Qwen3ForCausalLM", **overrides: Any) -> dict[str, Any]:
    """A small HF config (hidden 256, 2 layers, 4 heads, 2 KV heads, head_dim 64, vocab 512).

    MoE architectures get experts of width 256: Qwen3MoeForCausalLM 8 experts (2 used), GptOssForCausalLM
    4 experts (2 used), sliding window 128 on even layers, attention biases and MXFP4 experts (as the
    published gpt-oss checkpoints are). Phi3ForCausalLM gets Phi-4-mini's partial rotary (0.75: 48 of
    64 dims, 24 LongRoPE factors) and tied embeddings. ExaoneForCausalLM is written with EXAONE's own
    keys (``num_layers``, ``layer_norm_epsilon``, ``activation_function``, as ExaoneConfig saves them), its
    head_dim and EXAONE 3.5 / Deep's llama3 RoPE scaling (so the converter's ``rope_freqs`` is there).
    """
    config: dict[str, Any] = {
        "architectures": [arch],
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "vocab_size": 512,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": arch == "Qwen3ForCausalLM",
    }
    if arch == "Qwen3MoeForCausalLM":
        config.update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=256, tie_word_embeddings=False)
    elif arch == "GptOssForCausalLM":
        config.update(
            num_local_experts=4, num_experts_per_tok=2, intermediate_size=256, sliding_window=128,
            attention_bias=True, tie_word_embeddings=False, quantization_config={"quant_method": "mxfp4"},
        )  # fmt: skip
    elif arch == "Phi3ForCausalLM":  # Phi-4-mini's shape: partial rotary, LongRoPE factors, tied
        del config["head_dim"]
        config.update(
            partial_rotary_factor=0.75, tie_word_embeddings=True, original_max_position_embeddings=1024,
            rope_scaling={"type": "longrope", "long_factor": [1.0] * 24, "short_factor": [1.0] * 24},
        )  # fmt: skip
    elif arch == "ExaoneForCausalLM":  # EXAONE 3.5 / Deep: head_dim given, llama3 RoPE scaling
        config.update(
            activation_function="silu", rope_scaling={
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 1024,
            },
        )  # fmt: skip
    elif arch != "Qwen3ForCausalLM":
        del config["head_dim"]  # derived as hidden_size // num_attention_heads
    config.update(overrides)
    if arch == "ExaoneForCausalLM":  # ExaoneConfig's names for the layer count and the norm epsilon
        config["num_layers"] = config.pop("num_hidden_layers")
        config["layer_norm_epsilon"] = config.pop("rms_norm_eps")
    return config


def _writer(
    path: Path, config: dict[str, Any], *, outtype: str, n_expert: int = 0, file_type: str | None = None
) -> tuple[gguf.GGUFWriter, ArchParams]:
    """A GGUFWriter with the metadata llama.cpp's loader and a minimal SPM vocab need."""
    p = ArchParams.from_config(config)
    a = p.arch
    w = gguf.GGUFWriter(path, a)
    w.add_string(gguf.Keys.General.NAME, f"edgekv-test-{a}")
    w.add_uint32(gguf.Keys.General.FILE_TYPE, FILE_TYPES[(file_type or outtype).upper()])
    w.add_uint32(gguf.Keys.LLM.BLOCK_COUNT.format(arch=a), p.n_layer)
    w.add_uint32(gguf.Keys.LLM.CONTEXT_LENGTH.format(arch=a), p.n_ctx_train)
    w.add_uint32(gguf.Keys.LLM.EMBEDDING_LENGTH.format(arch=a), p.n_embd)
    w.add_uint32(gguf.Keys.LLM.FEED_FORWARD_LENGTH.format(arch=a), p.n_ff)
    w.add_uint32(gguf.Keys.Attention.HEAD_COUNT.format(arch=a), p.n_head)
    w.add_uint32(gguf.Keys.Attention.HEAD_COUNT_KV.format(arch=a), p.n_head_kv)
    w.add_uint32(gguf.Keys.Attention.KEY_LENGTH.format(arch=a), p.head_dim)
    w.add_uint32(gguf.Keys.Attention.VALUE_LENGTH.format(arch=a), p.head_dim)
    w.add_float32(gguf.Keys.Attention.LAYERNORM_RMS_EPS.format(arch=a), p.rms_norm_eps)
    w.add_float32(gguf.Keys.Rope.FREQ_BASE.format(arch=a), p.rope_theta)
    # phi3 LongRoPE: the factors cover the rotated dims only (partial_rotary_factor)
    w.add_uint32(gguf.Keys.Rope.DIMENSION_COUNT.format(arch=a), 2 * p.rope_factor_dims or p.head_dim)
    if a == "llama":
        w.add_uint32(gguf.Keys.LLM.VOCAB_SIZE.format(arch=a), p.n_vocab)
    if p.n_expert:  # a MoE config: the keys llama.cpp's converter writes for it
        w.add_uint32(gguf.Keys.LLM.EXPERT_COUNT.format(arch=a), p.n_expert)
        w.add_uint32(gguf.Keys.LLM.EXPERT_USED_COUNT.format(arch=a), p.n_expert_used)
        w.add_uint32(gguf.Keys.LLM.EXPERT_FEED_FORWARD_LENGTH.format(arch=a), p.n_ff_exp)
    elif n_expert:
        w.add_uint32(gguf.Keys.LLM.EXPERT_COUNT.format(arch=a), n_expert)
        w.add_uint32(gguf.Keys.LLM.EXPERT_USED_COUNT.format(arch=a), 2)
    if p.n_swa:
        w.add_uint32(gguf.Keys.Attention.SLIDING_WINDOW.format(arch=a), p.n_swa)
    elif a == "phi3":  # conversion/phi.py writes the config's window, 0 when it has none
        w.add_uint32(gguf.Keys.Attention.SLIDING_WINDOW.format(arch=a), int(config.get("sliding_window") or 0))
    # llama.cpp's vocab setup for a model named *phi3* looks up <|endoftext|> (llama-vocab.cpp), as Phi
    # vocabularies have it
    add_vocab(w, p.n_vocab, extra=("<|endoftext|>",) if a == "phi3" else ())
    return w, p


def add_vocab(w: gguf.GGUFWriter, n_vocab: int, extra: tuple[str, ...] = ()) -> None:
    """An SPM vocab: 3 control tokens, the 256 byte tokens (so '\\n' exists), then filler (its last
    entries replaced by ``extra``)."""
    if n_vocab < _N_SPECIAL + _N_BYTES:
        raise ValueError(f"vocab_size {n_vocab} is below the {_N_SPECIAL + _N_BYTES} tokens of the test vocab")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(_N_BYTES)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * _N_BYTES
    n_rest = n_vocab - len(tokens)
    tokens += [f"\u2581t{i}" for i in range(n_rest - len(extra))] + list(extra)
    types += [gguf.TokenType.NORMAL] * n_rest
    w.add_string(gguf.Keys.Tokenizer.MODEL, "llama")
    w.add_array(gguf.Keys.Tokenizer.LIST, tokens)
    w.add_array(gguf.Keys.Tokenizer.SCORES, [0.0] * _N_SPECIAL + [0.0] * _N_BYTES + [-float(i) for i in range(n_rest)])
    w.add_array(gguf.Keys.Tokenizer.TOKEN_TYPE, [int(t) for t in types])
    w.add_uint32(gguf.Keys.Tokenizer.UNK_ID, 0)
    w.add_uint32(gguf.Keys.Tokenizer.BOS_ID, 1)
    w.add_uint32(gguf.Keys.Tokenizer.EOS_ID, 2)
    w.add_bool(gguf.Keys.Tokenizer.ADD_BOS, False)


def _qtype(t: TensorInfo) -> gguf.GGMLQuantizationType:
    return gguf.GGMLQuantizationType[t.type]


def write_sparse_gguf(
    path: str | os.PathLike[str],
    config: dict[str, Any],
    *,
    outtype: str = "F16",
    n_expert: int = 0,
    quant: str | None = None,
    header_only: bool = False,
) -> Path:
    """A GGUF with ``config``'s real tensor shapes whose data is a sparse run of zeros.

    ``n_expert`` only writes ``{arch}.expert_count`` (the tensors stay dense): llama_model_quantize
    reads just the hparams, so this exercises its n_expert rules, but such a file does not load. A MoE
    config (qwen3moe, gpt-oss) needs no ``n_expert``: its real expert tensors and keys are written.
    ``quant`` (a llama.cpp name, e.g. "Q4_K_M") gives each tensor the type llama_model_quantize
    would (``quantrules.quantized_types``) from a BF16 source for "BF16", else F16; it replaces
    ``outtype``. ``header_only`` leaves the data section out. The file is written under
    ``name.incomplete`` and then renamed.
    """
    path = Path(path)
    q = WeightQuant.parse(quant) if quant is not None else None
    if q is not None:
        if outtype.upper() != "F16":
            raise ValueError("pass outtype or quant, not both")
        outtype = "BF16" if q is WeightQuant.BF16 else "F16"
    tensors = gguf_tensors(config, outtype=outtype)
    types = {t.name: t.type for t in tensors}
    if q is not None:
        p = ArchParams.from_config(config)
        types = quantized_types(
            tensors, q, arch=p.arch, n_layer=p.n_layer, n_head=p.n_head, n_head_kv=p.n_head_kv,
            n_expert=n_expert or p.n_expert,
        )  # fmt: skip
    with atomic_output(path) as tmp:
        layout = write_header(tmp, config, tensors, types, outtype=outtype, n_expert=n_expert,
                              file_type=q.value if q is not None else None)  # fmt: skip
        if not header_only:
            os.truncate(tmp, layout.data_start + layout.data_bytes)
    return path


@dataclass(frozen=True, slots=True)
class DataLayout:
    """Where a header written by :func:`write_header` puts the tensor data: the data region's start,
    its length and each tensor's offset in it."""

    data_start: int
    data_bytes: int
    offsets: dict[str, int]


def write_header(
    tmp: Path, config: dict[str, Any], tensors: Sequence[Any], types: Mapping[str, str], *, outtype: str,
    n_expert: int = 0, file_type: str | None = None,
) -> DataLayout:  # fmt: skip
    """The metadata and tensor infos of ``tensors`` at ``types``, written by gguf-py, which lays the
    data out in order, each tensor padded to the alignment; the data region itself is the caller's."""
    w, _ = _writer(tmp, config, outtype=outtype, n_expert=n_expert, file_type=file_type)
    data_bytes = 0
    offsets: dict[str, int] = {}
    for t in tensors:
        ty = types[t.name]
        n = tensor_bytes(ty, t.shape)
        raw = gguf.GGMLQuantizationType[ty]
        w.add_tensor_info(t.name, tuple(reversed(t.shape)), np.dtype(np.float16), n, raw_dtype=raw)
        offsets[t.name] = data_bytes
        data_bytes += gguf.GGUFWriter.ggml_pad(n, w.data_alignment)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    meta_bytes = w.fout[0].tell()
    w.close()
    return DataLayout(gguf.GGUFWriter.ggml_pad(meta_bytes, w.data_alignment), data_bytes, offsets)


def write_tiny_gguf(
    path: str | os.PathLike[str], config: dict[str, Any], *, outtype: str = "F16", seed: int = 0
) -> Path:
    """A GGUF of ``config`` with random weights (N(0, 0.02); norms 1), for tiny configs.

    The row of the end-of-sequence token (id 2) in the layer that makes the logits (``output``, or the
    tied ``token_embd``) is zero, so its logit is exactly 0 for any input while the 20th-best of the
    other ~500 random logits is well above 0: greedy and top-k 20 never end a sample, on any CPU, and
    tests of lengths do not depend on what the random model writes.
    """
    path = Path(path)
    w, _ = _writer(path, config, outtype=outtype)
    rng = np.random.default_rng(seed)
    tensors = gguf_tensors(config, outtype=outtype)
    logits_layer = "output.weight" if any(t.name == "output.weight" for t in tensors) else "token_embd.weight"
    for t in tensors:
        shape = tuple(reversed(t.shape))
        if t.name.endswith("_norm.weight"):
            data = np.ones(shape, dtype=np.float32)
        elif t.name in ("rope_freqs.weight", "rope_factors_long.weight", "rope_factors_short.weight"):
            data = np.ones(shape, dtype=np.float32)
        else:
            data = (rng.standard_normal(shape) * 0.02).astype(np.float32)
            if t.name == logits_layer:
                data[2] = 0.0  # the EOS_ID below: never the greedy or a top-k token
        qtype = _qtype(t)
        w.add_tensor(t.name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
