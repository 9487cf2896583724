"""config.json and the GGUF hyperparameter keys of a checkpoint, as llama.cpp's converter writes them.

TextModel.set_gguf_parameters plus LlamaModel's / Qwen2Model's additions, sentence-transformers
pooling and Llama 3 rope factors. Part of the conversion ``edgekv.convert.checkpoint`` runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekv.errors import CheckpointFileError, ConfigFileError, ModelFileNotFound, SpecError, UnsupportedModel

if TYPE_CHECKING:
    import gguf
    from numpy.typing import NDArray

# HF architectures[0] -> llama.cpp arch (conversion/llama.py, conversion/qwen.py registrations).
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "Qwen3ForCausalLM": "qwen3",
    "Qwen2ForCausalLM": "qwen2",
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
}

# Hyperparameter defaults transformers' AutoConfig fills in (the reference reads AutoConfig's
# to_dict(), edgekv reads config.json): (head_dim default or None, max_position_embeddings).
_HF_DEFAULTS: dict[str, tuple[int | None, int]] = {
    "Qwen3ForCausalLM": (128, 32768),
    "Qwen2ForCausalLM": (None, 32768),
    "LlamaForCausalLM": (0, 2048),  # 0: hidden_size // num_attention_heads
    "MistralForCausalLM": (0, 131072),
}


def load_config(ckpt: Path) -> tuple[dict[str, Any], str]:
    """config.json with AutoConfig's defaults for the fields the converter reads; (config, HF arch).

    Raises:
        ModelFileNotFound: there is no config.json.
        ConfigFileError: it is not a JSON object, or a key the converter uses has the wrong type or range.
        UnsupportedModel: an architecture edgekv's converter does not handle.
    """
    path = ckpt / "config.json"
    if not path.is_file():
        raise ModelFileNotFound(f"{path}: missing", hint="a Hugging Face checkpoint needs its config.json")
    config = read_json_object(path, ConfigFileError)
    if "text_config" in config:
        text_config = config["text_config"]
        if not isinstance(text_config, dict):
            raise ConfigFileError("is not an object", path=str(path), key="text_config", value=text_config)
        config = {**config, **text_config}
    archs = config.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConfigFileError("is not a list of class names", path=str(path), key="architectures", value=archs)
    hf_arch = archs[0] if archs else str(config.get("model_type"))
    if hf_arch not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModel(
            f"architecture {hf_arch} is not supported by edgekv's converter",
            hint=f"it converts {', '.join(SUPPORTED_ARCHITECTURES)}; try --converter with llama.cpp's "
            "convert_hf_to_gguf.py for others",
        )
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    if missing := [k for k in required if k not in config]:
        raise SpecError(f"{path} lacks {', '.join(missing)}", hint="is it a complete Hugging Face config?")
    head_dim, n_ctx = _HF_DEFAULTS[hf_arch]
    config.setdefault("num_key_value_heads", config.get("num_attention_heads"))
    config.setdefault("max_position_embeddings", n_ctx)
    config.setdefault("rope_theta", 10000.0)
    _check_config(path, config, hf_arch)
    if head_dim is not None and "head_dim" not in config:
        config["head_dim"] = head_dim or config["hidden_size"] // config["num_attention_heads"]
    return config, hf_arch


def read_json_object(path: Path, error: type[CheckpointFileError]) -> dict[str, Any]:
    """A JSON file that must hold an object; ``error`` (naming the file) if it is not JSON or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise error("is not UTF-8 text", path=str(path), hint="download it again") from None
    except ValueError as e:
        raise error(f"is not JSON ({e})", path=str(path), hint="download it again") from None
    if not isinstance(data, dict):
        raise error(f"holds a JSON {type(data).__name__}, not an object", path=str(path), hint="download it again")
    return data


_MAX_DIM = 1 << 24  # larger than any hidden size, head count or layer count a converter has seen
_POSITIVE_INTS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "max_position_embeddings")  # fmt: skip
_POSITIVE_NUMBERS = ("rope_theta", "rms_norm_eps", "norm_eps", "layer_norm_eps", "layer_norm_epsilon", "norm_epsilon")


def _check_config(path: Path, config: dict[str, Any], hf_arch: str) -> None:
    """Types and ranges of every key the converter reads, so a bad value is named, not written into a GGUF."""

    def bad(key: str, what: str) -> ConfigFileError:
        return ConfigFileError(what, path=str(path), key=key, value=config[key], hint="fix config.json")

    def positive_int(key: str, limit: int = _MAX_DIM) -> None:
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= limit:
            raise bad(key, f"is not an integer in 1..{limit}")

    for key in _POSITIVE_INTS:
        positive_int(key, (1 << 31) - 1 if key == "max_position_embeddings" else _MAX_DIM)
    for key in ("vocab_size", "head_dim"):
        if config.get(key) is not None:
            positive_int(key, (1 << 31) - 1 if key == "vocab_size" else _MAX_DIM)
    if SUPPORTED_ARCHITECTURES[hf_arch] == "llama" and config.get("vocab_size") is None:
        raise SpecError(f"{path} lacks vocab_size", hint="is it a complete Hugging Face config?")
    for key in _POSITIVE_NUMBERS:
        v = config.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < float("inf")):
            raise bad(key, "is not a positive number")
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    if n_head % n_kv:
        raise bad("num_key_value_heads", f"does not divide num_attention_heads ({n_head})")
    if config.get("head_dim") is None and config["hidden_size"] % n_head:
        raise bad("hidden_size", f"is not a multiple of num_attention_heads ({n_head})")
    for key in ("rope_scaling", "rope_parameters"):
        if config.get(key) is not None and not isinstance(config[key], dict):
            raise bad(key, "is not an object")
    for key in ("tie_word_embeddings", "is_causal"):
        if key in config and not isinstance(config[key], bool):
            raise bad(key, "is not true or false")


def _find(config: dict[str, Any], keys: Sequence[str]) -> Any:
    return next((config[k] for k in keys if k in config), None)


_ROPE_THETA_KEYS = ("global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base")
_CTX_KEYS = ("max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length")


def _rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    """TextModel.__init__: rope_parameters / rope_scaling with the top-level values mirrored in."""
    rp = dict(config.get("rope_parameters", config.get("rope_scaling")) or {})
    if "full_attention" not in rp and "sliding_attention" not in rp:
        theta = _find(config, _ROPE_THETA_KEYS)
        if "rope_theta" not in rp and theta is not None:
            rp["rope_theta"] = theta
        if "rope_type" not in rp and rp.get("type") is not None:
            rp["rope_type"] = rp["type"]
        for key in ("partial_rotary_factor", "original_max_position_embeddings"):
            if key not in rp and config.get(key) is not None:
                rp[key] = config[key]
    return rp


def add_hparams(w: gguf.GGUFWriter, config: dict[str, Any], hf_arch: str, ckpt: Path, ftype: int) -> None:
    """TextModel.set_gguf_parameters plus LlamaModel's / Qwen2Model's additions, key for key."""
    import gguf

    w.add_block_count(config["num_hidden_layers"])
    w.add_context_length(_find(config, _CTX_KEYS))
    w.add_embedding_length(config["hidden_size"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config["num_key_value_heads"])
    if config.get("is_causal") is False:
        w.add_causal_attention(False)
    rp = _rope_parameters(config)
    rope = rp.get("full_attention", rp)
    rope_type, factor = rope.get("rope_type"), rope.get("factor")
    if rope_type == "linear" and factor is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(factor)
    elif rope_type == "yarn" and factor is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(factor)
        w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
        if (v := rope.get("extrapolation_factor")) is not None:
            w.add_rope_scaling_yarn_ext_factor(v)
        if (v := rope.get("attention_factor", rope.get("attn_factor"))) is not None:
            w.add_rope_scaling_yarn_attn_factor(v)
        if (v := rope.get("beta_fast")) is not None:
            w.add_rope_scaling_yarn_beta_fast(v)
        if (v := rope.get("beta_slow")) is not None:
            w.add_rope_scaling_yarn_beta_slow(v)
    elif rope_type in ("su", "longrope"):
        w.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
    if (theta := rope.get("rope_theta")) is not None:
        w.add_rope_freq_base(theta)
    if (eps := _find(config, ("rms_norm_eps", "norm_eps"))) is not None:
        w.add_layer_norm_rms_eps(eps)
    if (eps := _find(config, ("layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"))) is not None:
        w.add_layer_norm_eps(eps)
    if (head_dim := config.get("head_dim")) is not None:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_file_type(ftype)
    if SUPPORTED_ARCHITECTURES[hf_arch] == "llama":
        w.add_vocab_size(config["vocab_size"])
        w.add_rope_dimension_count(head_dim or config["hidden_size"] // config["num_attention_heads"])
    else:
        _add_pooling(w, ckpt)


def _add_pooling(w: gguf.GGUFWriter, ckpt: Path) -> None:
    """Qwen2Model._try_set_pooling_type: sentence-transformers checkpoints (e.g. Qwen3-Embedding)."""
    import gguf

    modules = ckpt / "modules.json"
    if not modules.is_file():
        return
    path = next((m["path"] for m in json.loads(modules.read_text()) if m["type"].endswith("Pooling")), None)
    if path is None:
        return
    pooling = json.loads((ckpt / path / "config.json").read_text())
    modes = {"mean": gguf.PoolingType.MEAN, "cls": gguf.PoolingType.CLS, "lasttoken": gguf.PoolingType.LAST}
    flags = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_lasttoken": "lasttoken"}
    for key, mode in flags.items():
        if pooling.get(key):
            w.add_pooling_type(modes[mode])
            return
    if pooling.get("pooling_mode") in modes:
        w.add_pooling_type(modes[pooling["pooling_mode"]])
        return
    raise UnsupportedModel(f"{ckpt / path}: only mean, cls and last-token pooling are supported")


def llama3_rope_factors(config: dict[str, Any]) -> NDArray[Any] | None:
    """LlamaModel.generate_extra_tensors: rope_freqs for rope_type "llama3" (Llama 3.1+)."""
    import math

    import numpy as np

    rope = _rope_parameters(config)
    rope = rope.get("full_attention", rope)
    if str(rope.get("rope_type", "")).lower() != "llama3":
        return None
    base = rope.get("rope_theta", 10000.0)
    dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    # torch's float32 pow agrees with the correctly rounded float64 result; the loop is float32
    # scalar arithmetic, as torch does with 0-d float32 tensors and Python numbers
    f32 = np.float32
    exps = (np.arange(0, dim, 2, dtype=f32) / f32(dim)).astype(np.float64)
    freqs = f32(1.0) / (np.float64(base) ** exps).astype(f32)
    factor = rope.get("factor", 8.0)
    low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for freq in freqs:
        wavelen = f32(2 * math.pi) / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (f32(old_ctx) / wavelen - f32(low)) / f32(high - low)
            out.append(f32(1) / ((f32(1) - smooth) / f32(factor) + smooth))
    return np.array(out, dtype=np.float32)
