"""The catalog entries of issue 25 against their cited sources, and their architectures against llama.cpp.

Every expected value is typed here from the source each entry's ``sources`` cites (a config.json copy, a
model card), not read from the entry or computed by edgekv: shapes, parameter counts of the model cards,
the publishers' file naming. llama.cpp itself (a no_alloc load of a sparse GGUF of the entry's shape and
quant) and gguf-py (reading a generated GGUF of each new architecture) check the sizes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from edgekv.model.gguf_reader import read_spec
from edgekv.model.quant import KvType, WeightQuant
from edgekv.model.spec import from_hf_config
from edgekv.plan.memory import RunConfig, kv_bytes
from edgekv.store.catalog import CatalogModel, load_catalog

ROOT = Path(__file__).resolve().parents[2]

# name -> (llama.cpp arch, hidden, layers, q heads, KV heads, head dim, ffn, vocab, tied, max positions),
# as the sources the entry cites give them (config.json copies; the model card for the context).
SOURCES: dict[str, tuple[Any, ...]] = {
    "Qwen3-4B-Thinking-2507": ("qwen3", 2560, 36, 32, 8, 128, 9728, 151936, True, 262144),
    "Qwen3-30B-A3B-Thinking-2507": ("qwen3moe", 2048, 48, 32, 4, 128, 6144, 151936, False, 262144),
    "DeepSeek-R1-0528-Qwen3-8B": ("qwen3", 4096, 36, 32, 8, 128, 12288, 151936, False, 131072),
    "Phi-4-reasoning": ("phi3", 5120, 40, 40, 10, 128, 17920, 100352, False, 32768),
    "Phi-4-reasoning-plus": ("phi3", 5120, 40, 40, 10, 128, 17920, 100352, False, 32768),
    "Phi-4-mini-reasoning": ("phi3", 3072, 32, 24, 8, 128, 8192, 200064, True, 131072),
    "SmolLM3-3B": ("smollm3", 2048, 36, 16, 4, 128, 11008, 128256, True, 65536),
    "Magistral-Small-2506": ("llama", 5120, 40, 32, 8, 128, 32768, 131072, False, 131072),
    "OpenReasoning-Nemotron-7B": ("qwen2", 3584, 28, 28, 4, 128, 18944, 152064, False, 131072),
    "OpenReasoning-Nemotron-14B": ("qwen2", 5120, 48, 40, 8, 128, 13824, 152064, False, 131072),
    "OpenReasoning-Nemotron-32B": ("qwen2", 5120, 64, 40, 8, 128, 27648, 152064, False, 131072),
    "DeepSeek-R1-Distill-Llama-8B": ("llama", 4096, 32, 32, 8, 128, 14336, 128256, False, 131072),
    "DeepSeek-R1-Distill-Llama-70B": ("llama", 8192, 80, 64, 8, 128, 28672, 128256, False, 131072),
    "QwQ-32B": ("qwen2", 5120, 64, 40, 8, 128, 27648, 152064, False, 32768),
    "AceReason-Nemotron-7B": ("qwen2", 3584, 28, 28, 4, 128, 18944, 152064, False, 131072),
    "AceReason-Nemotron-14B": ("qwen2", 5120, 48, 40, 8, 128, 13824, 152064, False, 131072),
    "Magistral-Small-2507": ("llama", 5120, 40, 32, 8, 128, 32768, 131072, False, 131072),
    # EXAONE Deep: EXAONE 3.5's config.json copies (the 32B's Deep copy: mlx-community/EXAONE-Deep-32B-4bit);
    # the 2.4B's head_dim 80 (not hidden / heads = 80 by chance: it is the config's head_dim) and tying
    "EXAONE-Deep-2.4B": ("exaone", 2560, 30, 32, 8, 80, 7168, 102400, True, 32768),
    "EXAONE-Deep-7.8B": ("exaone", 4096, 32, 32, 8, 128, 14336, 102400, False, 32768),
    "EXAONE-Deep-32B": ("exaone", 5120, 64, 40, 8, 128, 27392, 102400, False, 32768),
    "OpenReasoning-Nemotron-1.5B": ("qwen2", 1536, 28, 12, 2, 128, 8960, 151936, True, 32768),
}
# Parameter counts the model cards (or hub pages) print, in billions, to their precision.
CARD_PARAMS = {
    "Qwen3-4B-Thinking-2507": ("4.0", 1), "Qwen3-30B-A3B-Thinking-2507": ("30.5", 1), "SmolLM3-3B": ("3.08", 2),
    "Phi-4-mini-reasoning": ("3.8", 1), "Magistral-Small-2506": ("23.6", 1), "OpenReasoning-Nemotron-32B": ("32.8", 1),
    "Phi-4-reasoning": ("14.7", 1), "DeepSeek-R1-Distill-Llama-8B": ("8.0", 1),
    "DeepSeek-R1-Distill-Llama-70B": ("70.6", 1), "EXAONE-Deep-2.4B": ("2.4", 1), "EXAONE-Deep-7.8B": ("7.8", 1),
    "EXAONE-Deep-32B": ("32", 0), "OpenReasoning-Nemotron-1.5B": ("1.54", 2),
}  # fmt: skip
# Each publisher's naming: {repo name without -GGUF} (bartowski: org_Model; unsloth, LG AI Research: Model) +
# -QUANT.gguf, the 16-bit file as bartowski (bf16 / f16 for the R1 distills), unsloth or LG (BF16) spell it; a
# split file by its first shard (LG's EXAONE-Deep-32B-BF16-00001-of-00002.gguf, README "Run Locally").
PUBLISHERS = {"bartowski": ("bf16", "f16"), "unsloth": ("BF16",), "LGAI-EXAONE": ("BF16",)}
SHARD = re.compile(r"-00001-of-\d{5}(?=\.gguf$)")


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogModel]:
    return {m.name: m for m in load_catalog(ROOT / "models")}


def test_catalog_has_the_issue_models(catalog: dict[str, CatalogModel]) -> None:
    assert len(catalog) >= 29
    assert set(SOURCES) <= set(catalog)
    dense = [m for m in catalog.values() if not m.spec.is_moe]
    assert len(dense) >= 26 and len(catalog) - len(dense) >= 3


@pytest.mark.parametrize("name", list(SOURCES))
def test_entry_shapes_agree_with_cited_config(catalog: dict[str, CatalogModel], name: str) -> None:
    arch, hidden, layers, heads, kv, head_dim, ffn, vocab, tied, ctx = SOURCES[name]
    s = catalog[name].spec
    assert (s.arch, s.n_embd, s.n_layer, s.n_head, s.n_head_kv[0], s.head_dim_k) == (
        arch, hidden, layers, heads, kv, head_dim,
    )  # fmt: skip
    assert (s.n_ff, s.n_vocab, s.tied_embeddings, s.n_ctx_train) == (ffn, vocab, tied, ctx)
    assert set(s.n_head_kv) == {kv} and s.swa_layers == ()  # no sliding window in any of them (phi3's is off)
    entry = catalog[name]
    data_keys = {"config", "files"}
    assert all(k in entry_sources(name) for k in data_keys), "every entry cites its config and its files"
    if name in CARD_PARAMS:
        text, digits = CARD_PARAMS[name]
        assert f"{entry.n_params / 1e9:.{digits}f}" == text


def entry_sources(name: str) -> dict[str, str]:
    import json

    for path in (ROOT / "models").glob("*.json"):
        data = json.loads(path.read_text())
        if data["name"] == name:
            return dict(data.get("sources", {}))
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(SOURCES))
def test_file_names_follow_the_publisher(catalog: dict[str, CatalogModel], name: str) -> None:
    entry = catalog[name]
    repos = {e.repo for e in entry.quants.values() if e.file}
    assert len(repos) == 1
    repo = repos.pop()
    assert repo is not None
    publisher, _, repo_name = repo.partition("/")
    assert publisher in PUBLISHERS and repo_name.endswith("-GGUF")
    stem = repo_name.removesuffix("-GGUF")
    for q, e in entry.quants.items():
        if not e.file:
            continue
        label = q.value if q.value not in ("BF16", "F16") else None
        file = SHARD.sub("", e.file)
        if label is None:
            assert any(file == f"{stem}-{spelling}.gguf" for spelling in PUBLISHERS[publisher]), e.file
        else:
            assert file == f"{stem}-{label}.gguf"
    if publisher == "bartowski" and "_" in stem:  # bartowski's newer repos: org_Model
        org = stem.split("_", 1)[0]
        assert entry.hf_repo.split("/")[0] == org


def test_scores_have_sources(catalog: dict[str, CatalogModel]) -> None:
    import json

    for path in (ROOT / "models").glob("*.json"):
        data = json.loads(path.read_text())
        for s in data.get("scores", []):
            assert s["source"] and 0 < s["value"] <= 100 and re.fullmatch(r"[A-Z0-9-]+", s["benchmark"]), s


# --- the new architectures against llama.cpp and gguf-py ------------------------------------------------

LOADS = [
    ("Phi-4-reasoning", "Q4_K_M"), ("Phi-4-mini-reasoning", "Q4_K_M"), ("SmolLM3-3B", "Q8_0"),
    ("Magistral-Small-2506", "Q4_K_M"), ("DeepSeek-R1-Distill-Llama-8B", "Q4_K_M"),
    ("OpenReasoning-Nemotron-7B", "Q4_K_M"), ("Qwen3-4B-Thinking-2507", "Q6_K"),
    ("DeepSeek-R1-Distill-Llama-70B", "Q3_K_M"), ("EXAONE-Deep-2.4B", "Q4_K_M"), ("EXAONE-Deep-7.8B", "Q8_0"),
    ("EXAONE-Deep-32B", "Q4_K_M"), ("OpenReasoning-Nemotron-1.5B", "Q4_K_M"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "quant"), LOADS)
def test_entry_bytes_match_llama_cpp(catalog: dict[str, CatalogModel], model: str, quant: str, tmp_path: Path) -> None:
    """llama.cpp loads a sparse file of the entry's shape and quant and sizes it as the catalog does."""
    llama_cpp: Any = pytest.importorskip("llama_cpp")
    from tests.ggufgen import write_sparse_gguf
    from tests.model.test_quantrules import captured_log

    m, entry = catalog[model], catalog[model].quants[WeightQuant(quant)]
    path = write_sparse_gguf(tmp_path / "m.gguf", m.config, quant=quant)
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.no_alloc = True
    mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    with captured_log() as log:
        handle = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    assert handle, "".join(log)[-2000:]
    try:
        assert llama_cpp.llama_model_size(handle) == entry.weights_bytes
        assert llama_cpp.llama_model_n_params(handle) == m.n_params
    finally:
        llama_cpp.llama_model_free(handle)


@pytest.mark.parametrize("arch", ["Phi3ForCausalLM", "SmolLM3ForCausalLM", "ExaoneForCausalLM"])
def test_new_arch_gguf_reads_as_gguf_py_reads_it(arch: str, tmp_path: Path) -> None:
    """edgekv's header reader and gguf-py agree tensor by tensor on a generated GGUF of the architecture."""
    gguf: Any = pytest.importorskip("gguf")
    from tests.ggufgen import tiny_config, write_sparse_gguf

    config = tiny_config(arch, num_hidden_layers=4)
    path = write_sparse_gguf(tmp_path / "m.gguf", config, quant="Q4_K_M")
    spec = read_spec(path)
    theirs = {t.name: (t.tensor_type.name, int(t.n_bytes)) for t in gguf.GGUFReader(path).tensors}
    assert {t.name: (t.type, t.n_bytes) for t in spec.tensors} == theirs
    assert spec.weights_bytes == sum(n for _, n in theirs.values())
    want = {"Phi3ForCausalLM": "phi3", "SmolLM3ForCausalLM": "smollm3", "ExaoneForCausalLM": "exaone"}
    assert spec.arch == want[arch]
    if arch == "ExaoneForCausalLM":  # the llama block (separate q/k/v), llama3 RoPE factors: head_dim 64 / 2
        assert spec.n_layer == 4 and {"blk.3.attn_q.weight", "blk.0.ffn_gate.weight", "output.weight"} <= set(theirs)
        assert theirs["rope_freqs.weight"] == ("F32", 32 * 4)
        known = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.EXAONE]}  # gguf-py's exaone list
        assert {re.sub(r"^blk\.\d+\.", "blk.{bid}.", n).removesuffix(".weight") for n in theirs} <= known
    if arch == "Phi3ForCausalLM":  # fused q|k|v: 256 + 2 x 2 x 64 rows; gate|up: 2 x 768
        assert theirs["blk.0.attn_qkv.weight"][1] == theirs["blk.0.ffn_down.weight"][1] * (512 * 256) // (768 * 256)
        assert "rope_factors_long.weight" in theirs and "blk.0.attn_q.weight" not in theirs


def test_smollm3_no_rope_layers_keep_their_kv() -> None:
    """Every 4th SmolLM3 layer has no RoPE, but llama.cpp caches K and V there too (one KV cache, all
    layers): 36 layers x 2 x 4 KV heads x 128 x 2 bytes per cell at f16."""
    import json

    data = json.loads((ROOT / "models" / "smollm3-3b.json").read_text())
    spec = from_hf_config(data["config"])
    got = kv_bytes(spec, RunConfig(n_ctx=32768, type_k=KvType.F16, type_v=KvType.F16))
    assert got.total == 36 * 2 * 4 * 128 * 2 * 32768


def test_phi3_sliding_window_is_off_as_in_llama_cpp(tmp_path: Path) -> None:
    """Phi-4-mini's config names sliding_window 262144 and the converter writes it, but llama.cpp's phi3
    turns it off (models/phi3.cpp): no layer is sliding-window, from the config or from the GGUF."""
    from tests.ggufgen import tiny_config, write_sparse_gguf

    config = tiny_config("Phi3ForCausalLM", sliding_window=64)
    assert from_hf_config(config).swa_layers == ()
    path = write_sparse_gguf(tmp_path / "phi.gguf", config)
    spec = read_spec(path)
    assert spec.swa_layers == () and spec.n_swa == 0


def test_exaone_2_4b_kv_cache_stays_unquantized(catalog: dict[str, CatalogModel], tmp_path: Path) -> None:
    """llama.cpp refuses a q8_0 / q4_0 K cache over 80-wide heads (llama_init_from_model: the block of 32
    does not divide 80), so pick offers EXAONE Deep 2.4B f16 KV only, and the 7.8B (128-wide heads) all three."""
    from edgekv.plan.plans import Budget, Policy
    from edgekv.plan.policy import enumerate_plans
    from edgekv.store.catalog import options_from_catalog

    f16, q8, q4 = KvType.F16, KvType.Q8_0, KvType.Q4_0
    pol = Policy(kv_types=(f16, q8, q4), mixed_kv=True)
    budget = Budget(vram_bytes=24 * 1024**3)
    for name, want in (
        ("EXAONE-Deep-2.4B", {(f16, f16)}),
        ("EXAONE-Deep-7.8B", {(k, v) for k in (f16, q8, q4) for v in (f16, q8, q4)}),
    ):
        opts = options_from_catalog([catalog[name]], quants=["Q8_0"])
        assert {(p.type_k, p.type_v) for p in enumerate_plans(opts, budget, pol)} == want, name

    # llama.cpp itself: a tiny EXAONE GGUF with 80-wide heads takes an f16 K cache and refuses q8_0
    llama_cpp: Any = pytest.importorskip("llama_cpp")
    from tests.ggufgen import tiny_config, write_tiny_gguf
    from tests.model.test_quantrules import captured_log

    path = write_tiny_gguf(tmp_path / "e.gguf", tiny_config("ExaoneForCausalLM", hidden_size=320, head_dim=80))
    mparams = llama_cpp.llama_model_default_params()
    with captured_log() as log:
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        assert model, "".join(log)[-2000:]
        try:
            made = {}
            for kv in (f16, q8):
                cparams = llama_cpp.llama_context_default_params()
                cparams.n_ctx, cparams.n_threads = 64, 1
                cparams.type_k = cparams.type_v = kv.ggml.id
                cparams.flash_attn_type = 1  # enabled: a quantized V cache needs flash attention
                ctx = llama_cpp.llama_init_from_model(model, cparams)
                made[kv] = bool(ctx)
                if ctx:
                    llama_cpp.llama_free(ctx)
        finally:
            llama_cpp.llama_model_free(model)
    assert made == {f16: True, q8: False}
    assert "does not divide n_embd_head_k=80" in "".join(log)
    # and edgekv says so before loading (run, eval, serve and bench share session.prepare)
    from edgekv.errors import KvConfigError
    from edgekv.llama import session

    with pytest.raises(KvConfigError) as e:
        session.prepare(path, RunConfig(n_ctx=64, type_k=q8, type_v=q8, flash_attn=True), vram_bytes=None, probe=False)
    assert e.value.message == (
        "a q8_0 K cache stores blocks of 32 values, which do not divide this model's 80-wide heads: "
        "llama.cpp refuses it"
    )
    assert (
        session.prepare(path, RunConfig(n_ctx=64, flash_attn=True), vram_bytes=None, probe=False).spec.head_dim_k == 80
    )
