"""MoE specs and tensor groups against gguf-py's own reading (gguf.GGUFReader) of generated GGUFs.

The files are written by tests/ggufgen.py from Hugging Face configs: tiny qwen3moe and gpt-oss models
with real data (gpt-oss's experts quantized to MXFP4 by gguf-py), and sparse files of the real
Qwen3-30B-A3B and gpt-oss-20b shapes. The expected bytes are GGUFReader's ``n_bytes`` (gguf-py's size
table), grouped by a table of gguf-py's MODEL_TENSOR kinds written here, not by edgekv's name patterns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from edgekv.errors import GGUFError, SpecError, UnsupportedModel
from edgekv.model.gguf_reader import read_spec
from edgekv.model.quant import GGML_TYPES
from edgekv.model.spec import from_hf_config
from edgekv.model.tensor_groups import expert_layer_bytes, layer_groups, tensor_group, tensor_groups
from tests.ggufgen import tiny_config, write_sparse_gguf, write_tiny_gguf

MT = gguf.MODEL_TENSOR
# gguf-py's tensor kinds -> the group a placement plan moves them with (the groups)
GROUP_OF: dict[gguf.MODEL_TENSOR, str] = {
    MT.TOKEN_EMBD: "embeddings", MT.OUTPUT: "output",
    MT.ATTN_Q: "attention", MT.ATTN_K: "attention", MT.ATTN_V: "attention", MT.ATTN_OUT: "attention",
    MT.ATTN_SINKS: "attention",
    MT.FFN_GATE: "ffn", MT.FFN_UP: "ffn", MT.FFN_DOWN: "ffn",
    MT.FFN_GATE_EXP: "experts", MT.FFN_UP_EXP: "experts", MT.FFN_DOWN_EXP: "experts",
    MT.FFN_GATE_SHEXP: "shared_experts", MT.FFN_UP_SHEXP: "shared_experts", MT.FFN_DOWN_SHEXP: "shared_experts",
    MT.FFN_GATE_INP_SHEXP: "shared_experts",
    MT.FFN_GATE_INP: "router", MT.FFN_EXP_PROBS_B: "router",
    MT.OUTPUT_NORM: "other", MT.ATTN_NORM: "other", MT.ATTN_POST_NORM: "other", MT.FFN_NORM: "other",
    MT.ATTN_Q_NORM: "other", MT.ATTN_K_NORM: "other",
}  # fmt: skip
GROUPS = ["attention", "ffn", "experts", "shared_experts", "router", "embeddings", "output", "other"]
CATALOG: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "catalog_configs.json").read_text()
)


def _kinds(n_layer: int) -> dict[str, str]:
    """GGUF base name (without .weight/.bias) -> group, through gguf-py's tensor kinds (some kinds share
    a name, e.g. FFN_NORM and FFN_PRE_NORM: only the kinds in GROUP_OF count)."""
    out: dict[str, str] = {}
    for kind, template in gguf.TENSOR_NAMES.items():
        if kind not in GROUP_OF:
            continue
        for bid in range(n_layer) if "{bid}" in template else (0,):
            name = template.format(bid=bid)
            assert out.setdefault(name, GROUP_OF[kind]) == GROUP_OF[kind], name
    return out


def reader_groups(path: Path, n_layer: int) -> tuple[dict[str, int], list[dict[str, int]]]:
    """(bytes per group, bytes per group of each block) from gguf.GGUFReader's tensors."""
    kinds = _kinds(n_layer)
    total = dict.fromkeys(GROUPS, 0)
    per_layer = [dict.fromkeys(GROUPS, 0) for _ in range(n_layer)]
    for t in gguf.GGUFReader(path).tensors:
        base, _, _suffix = t.name.rpartition(".")
        group = kinds[base]
        total[group] += int(t.n_bytes)
        if t.name.startswith("blk."):
            per_layer[int(t.name.split(".")[1])][group] += int(t.n_bytes)
    return total, per_layer


def _named(groups: dict[Any, int]) -> dict[str, int]:
    return {g.value: n for g, n in groups.items()}


@pytest.fixture(scope="module")
def tiny_moe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("moe")
    configs = {
        "qwen3moe": tiny_config("Qwen3MoeForCausalLM"),
        "gpt-oss": tiny_config("GptOssForCausalLM", num_hidden_layers=4),
    }
    return {a: (write_tiny_gguf(d / f"{a}.gguf", c), c) for a, c in configs.items()}


@pytest.mark.parametrize("arch", ["qwen3moe", "gpt-oss"])
def test_tiny_groups_match_gguf_reader(tiny_moe: dict[str, tuple[Path, dict[str, Any]]], arch: str) -> None:
    path, config = tiny_moe[arch]
    spec = read_spec(path)
    total, per_layer = reader_groups(path, spec.n_layer)
    assert _named(tensor_groups(spec)) == total
    assert [_named(g) for g in layer_groups(spec)] == per_layer
    assert expert_layer_bytes(spec) == tuple(g["experts"] for g in per_layer)
    assert sum(total.values()) == spec.weights_bytes
    assert total["experts"] > 0 and total["router"] > 0 and total["ffn"] == total["shared_experts"] == 0


@pytest.mark.parametrize("arch", ["qwen3moe", "gpt-oss"])
def test_tiny_spec_reads_the_experts(tiny_moe: dict[str, tuple[Path, dict[str, Any]]], arch: str) -> None:
    """The header's expert keys, as the config that made the file says."""
    path, config = tiny_moe[arch]
    spec = read_spec(path)
    n_expert = config.get("num_experts") or config["num_local_experts"]
    n_ff_exp = config.get("moe_intermediate_size") or config["intermediate_size"]
    assert (spec.arch, spec.is_moe) == (arch, True)
    assert (spec.n_expert, spec.n_expert_used, spec.n_ff_exp) == (n_expert, config["num_experts_per_tok"], n_ff_exp)
    assert (spec.n_expert_shared, spec.n_ff_shexp) == (0, 0)
    up = next(t for t in gguf.GGUFReader(path).tensors if t.name == "blk.0.ffn_up_exps.weight")
    assert [int(x) for x in up.shape] == [config["hidden_size"], n_ff_exp, n_expert]  # ne0, ne1, ne2


def test_tiny_gpt_oss_experts_are_real_mxfp4(tiny_moe: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """gguf-py quantized the experts to MXFP4: its bytes are 17 per 32 weights, and they decode."""
    path, config = tiny_moe["gpt-oss"]
    assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.MXFP4] == (32, 17)
    assert (GGML_TYPES["MXFP4"].block_size, GGML_TYPES["MXFP4"].type_size) == (32, 17)
    reader = gguf.GGUFReader(path)
    exps = [t for t in reader.tensors if "_exps.weight" in t.name]
    assert len(exps) == 3 * config["num_hidden_layers"]
    for t in exps:
        assert t.tensor_type == gguf.GGMLQuantizationType.MXFP4
        assert int(t.n_bytes) == int(t.n_elements) // 32 * 17 == t.data.nbytes
        values = gguf.quants.dequantize(t.data, gguf.GGMLQuantizationType.MXFP4)
        assert np.isfinite(values).all() and 0 < float(np.abs(values).max()) < 1  # N(0, 0.02) weights
    spec = read_spec(path)
    biases = sum(int(t.n_bytes) for t in reader.tensors if t.name.endswith("_exps.bias"))  # F32, moved with them
    experts = tensor_groups(spec)[tensor_group("blk.0.ffn_up_exps.weight")]
    assert experts == spec.tensor_type_bytes()["MXFP4"] + biases == sum(int(t.n_bytes) for t in exps) + biases


def test_tiny_gpt_oss_sliding_window_layers(tiny_moe: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """llama.cpp's gpt-oss: pattern 2, even blocks use the 128-token window (HF layer_types agree)."""
    path, _config = tiny_moe["gpt-oss"]
    spec = read_spec(path)
    assert spec.swa_layers == (True, False, True, False) and spec.n_swa == 128


@pytest.mark.parametrize(("model", "quant"), [("Qwen3-30B-A3B", "Q4_K_M"), ("gpt-oss-20b", "MXFP4_MOE")])
def test_real_shape_groups_match_gguf_reader(model: str, quant: str, tmp_path: Path) -> None:
    """Sparse files of the real block shapes (the catalog's configs), quantized as llama.cpp's rules say;
    the vocabulary is cut to 4096 tokens (GGUFReader takes ~20 s over a 200k-token vocab)."""
    config = {**CATALOG[model], "vocab_size": 4096}
    path = write_sparse_gguf(tmp_path / "m.gguf", config, quant=quant)
    spec = read_spec(path)
    total, per_layer = reader_groups(path, spec.n_layer)
    assert _named(tensor_groups(spec)) == total
    assert [_named(g) for g in layer_groups(spec)] == per_layer
    assert sum(total.values()) == spec.weights_bytes
    hf = from_hf_config(config)
    assert (spec.n_expert, spec.n_expert_used, spec.n_ff_exp) == (hf.n_expert, hf.n_expert_used, hf.n_ff_exp)
    assert spec.swa_layers == hf.swa_layers and spec.n_swa == hf.n_swa


def test_catalog_configs_as_published() -> None:
    """The HF config values (config.json of Qwen/Qwen3-30B-A3B and openai/gpt-oss-20b) become the spec."""
    q = from_hf_config(CATALOG["Qwen3-30B-A3B"])
    assert (q.arch, q.n_layer, q.n_embd, q.n_head, q.n_head_kv[0], q.head_dim_k) == ("qwen3moe", 48, 2048, 32, 4, 128)
    assert (q.n_expert, q.n_expert_used, q.n_ff_exp, q.n_vocab, q.swa_layers) == (128, 8, 768, 151936, ())
    g = from_hf_config(CATALOG["gpt-oss-20b"])
    assert (g.arch, g.n_layer, g.n_embd, g.n_head, g.n_head_kv[0], g.head_dim_k) == ("gpt-oss", 24, 2880, 64, 8, 64)
    assert (g.n_expert, g.n_expert_used, g.n_ff_exp, g.n_vocab, g.n_swa) == (32, 4, 2880, 201088, 128)
    layer_types = CATALOG["gpt-oss-20b"]["layer_types"]
    assert list(g.swa_layers) == [t == "sliding_attention" for t in layer_types]


def test_dense_model_has_no_expert_groups() -> None:
    config = tiny_config("Qwen3ForCausalLM")
    spec = from_hf_config(config)
    assert not spec.is_moe and (spec.n_expert, spec.n_expert_used, spec.n_ff_exp) == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("blk.3.ffn_gate_exps.weight", "experts"), ("blk.3.ffn_down_exps.bias", "experts"),
        ("blk.3.ffn_gate_up_exps.weight", "experts"), ("blk.3.ffn_up_chexps.weight", "experts"),
        ("blk.3.ffn_gate_inp.weight", "router"), ("blk.3.ffn_gate_inp.bias", "router"),
        ("blk.3.exp_probs_b.bias", "router"), ("blk.3.ffn_gate_inp_shexp.weight", "shared_experts"),
        ("blk.3.ffn_down_shexp.weight", "shared_experts"), ("blk.3.attn_sinks.weight", "attention"),
        ("blk.3.attn_output.bias", "attention"), ("blk.3.attn_q_norm.weight", "other"),
        ("blk.3.post_attention_norm.weight", "other"), ("blk.3.ffn_down.weight", "ffn"),
        ("token_embd.weight", "embeddings"), ("output.weight", "output"), ("output_norm.weight", "other"),
        ("rope_freqs.weight", "other"),
    ],
)  # fmt: skip
def test_tensor_group_names(name: str, group: str) -> None:
    """Names llama.cpp uses (gguf-py's TENSOR_NAMES); experts are what its -ot/--n-cpu-moe pattern matches."""
    assert tensor_group(name).value == group


def _moe_fields(**over: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "general.architecture": "qwen3moe", "qwen3moe.block_count": 2, "qwen3moe.embedding_length": 256,
        "qwen3moe.attention.head_count": 4, "qwen3moe.expert_count": 8, "qwen3moe.expert_used_count": 2,
    }  # fmt: skip
    fields.update(over)
    return fields


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"qwen3moe.expert_used_count": 9}, "expert_used_count is 9 with 8 experts"),
        ({"qwen3moe.expert_used_count": 0}, "expert_used_count is 0 with 8 experts"),
        ({"qwen3moe.expert_count": 4096}, "expert_count is 4096"),
        ({"qwen3moe.expert_count": -1}, "expert_count is -1"),
    ],
)
def test_impossible_expert_keys(over: dict[str, Any], message: str) -> None:
    from edgekv.model.gguf_spec import from_gguf_fields

    with pytest.raises(SpecError, match=message):
        from_gguf_fields(_moe_fields(**over), [])


def test_shared_experts_and_expert_width_from_the_header() -> None:
    """Shared-expert keys are read as written; without expert_feed_forward_length the width is the rows
    of blk.0's ffn_up_exps (ne1), which llama.cpp's n_ff / n_expert_used must equal to load the file."""
    from edgekv.model.gguf_spec import from_gguf_fields
    from edgekv.model.spec import TensorInfo

    shared = {"qwen3moe.expert_shared_count": 1, "qwen3moe.expert_shared_feed_forward_length": 1408}
    spec = from_gguf_fields(_moe_fields(**shared, **{"qwen3moe.expert_feed_forward_length": 512}), [])
    got = (spec.n_expert, spec.n_expert_used, spec.n_ff_exp, spec.n_expert_shared, spec.n_ff_shexp)
    assert got == (8, 2, 512, 1, 1408)
    up = TensorInfo("blk.0.ffn_up_exps.weight", "F16", (256, 384, 8))
    assert from_gguf_fields(_moe_fields(), [up]).n_ff_exp == 384
    assert from_gguf_fields(_moe_fields(**{"qwen3moe.expert_used_count": [2, 4]}), []).n_expert_used == 4


def test_impossible_expert_keys_in_a_file(tmp_path: Path) -> None:
    """A file whose header routes more experts than it has: one GGUFError naming the file and the key."""
    path = tmp_path / "bad.gguf"
    w = gguf.GGUFWriter(path, "qwen3moe")
    for key, value in _moe_fields(**{"qwen3moe.expert_used_count": 9}).items():
        if key != "general.architecture":
            w.add_uint32(key, value)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((256, 256), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(GGUFError, match=r"bad\.gguf: qwen3moe\.expert_used_count is 9"):
        read_spec(path)


@pytest.mark.parametrize(
    ("over", "error", "message"),
    [
        ({"num_experts_per_tok": 0}, SpecError, "num_experts >= num_experts_per_tok > 0"),
        ({"num_experts": 2, "num_experts_per_tok": 4}, SpecError, "it has 2 and 4"),
        ({"mlp_only_layers": [0]}, UnsupportedModel, "dense blocks"),
    ],
)
def test_bad_moe_configs(over: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        from_hf_config(tiny_config("Qwen3MoeForCausalLM", **over))
