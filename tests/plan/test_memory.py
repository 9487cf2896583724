"""memory.py against the paper's golden numbers and llama.cpp's exact buffer sizes.

The paper (arXiv 2510.10964, ../shared/paper.md) counts weights + KV only; its "GB" are GiB and
its "k" tokens 1,000. llama.cpp values are from ../shared/llama-cpp-memory.md and
bench/results/compute.jsonl (no_alloc dry runs on an H200).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from edgekv.model.quant import KvType, WeightQuant
from edgekv.model.spec import ModelSpec, TensorInfo, from_hf_config
from edgekv.plan import memory
from edgekv.plan.memory import KvCost, RunConfig, WeightLayout, kv_bytes, kv_bytes_per_token, kv_cost
from edgekv.store.catalog import CatalogModel, load_catalog
from edgekv.store.catalog_build import derive
from edgekv.units import GIB, KIB, MIB

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogModel]:
    return {m.name: m for m in load_catalog(ROOT / "models")}


# --- the paper's KV accounting -------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "kib_per_token"),
    [
        ("Qwen3-0.6B", 112),
        ("Qwen3-1.7B", 112),
        ("Qwen3-4B", 144),
        ("Qwen3-8B", 144),
        ("Qwen3-14B", 160),
        ("Qwen3-32B", 256),
    ],  # fmt: skip
)
def test_qwen3_kv_per_token_16bit(catalog: dict[str, CatalogModel], model: str, kib_per_token: int) -> None:
    # Qwen3-8B: 144 KiB = 147,456 B/token, the style guide's golden number (§6)
    assert kv_bytes_per_token(catalog[model].spec, KvType.F16) == kib_per_token * KIB


@pytest.mark.parametrize(
    ("model", "gib_at_30k"), [("Qwen3-0.6B", 3.20), ("Qwen3-4B", 4.12), ("Qwen3-8B", 4.12), ("Qwen3-32B", 7.32)]
)
def test_kv_at_30k_tokens(catalog: dict[str, CatalogModel], model: str, gib_at_30k: float) -> None:
    n_bytes = kv_bytes_per_token(catalog[model].spec, KvType.F16) * 30_000  # paper: k = 1,000
    assert n_bytes / GIB == pytest.approx(gib_at_30k, abs=0.01)


# --- llama.cpp's exact KV buffers ----------------------------------------------------------


@pytest.mark.parametrize(("kv", "mib"), [(KvType.F16, 4608), (KvType.Q8_0, 2448), (KvType.Q4_0, 1296)])
def test_llama_cpp_kv_qwen3_8b_32k(catalog: dict[str, CatalogModel], kv: KvType, mib: int) -> None:
    got = kv_bytes(catalog["Qwen3-8B"].spec, RunConfig(n_ctx=32768, type_k=kv, type_v=kv))
    assert got.total == mib * MIB
    assert got.k_bytes == got.v_bytes == mib * MIB // 2


def test_llama_cpp_kv_llama31_8b_8k() -> None:
    config = {
        "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    }  # fmt: skip
    assert kv_bytes(from_hf_config(config), RunConfig(n_ctx=8192)).total == 1024 * MIB


# --- the paper's Table 1 weight cells -------------------------------------------------------
# The paper's 4- and 8-bit cells are GPTQ (group 128, 16-bit embeddings), which edgekv never
# computes; its 16-bit cells are 2 bytes per weight, which llama.cpp's BF16 GGUF matches (tied
# embeddings stored once, norms F32). edgekv sizes the catalog with ``catalog_build.derive``.


def _derived_bytes(model: CatalogModel, quant: str) -> int:
    return int(derive({"name": model.name, "config": model.config})["weights"][quant]["weights_bytes"])


@pytest.mark.parametrize(("model", "paper_gib"), [("Qwen3-4B", 7.49), ("Qwen3-8B", 15.26), ("Qwen3-32B", 61.02)])
def test_paper_table1_16bit_weights(catalog: dict[str, CatalogModel], model: str, paper_gib: float) -> None:
    got = _derived_bytes(catalog[model], "BF16")
    assert got / GIB == pytest.approx(paper_gib, abs=0.01)
    assert got == catalog[model].quants[WeightQuant.BF16].weights_bytes  # the checked-in catalog agrees


def test_llama_cpp_8bit_thresholds_fall_within_similar(catalog: dict[str, CatalogModel]) -> None:
    """E1/E2 are the paper's GPTQ 8-bit 4B/8B (4.19/8.94 GiB); llama.cpp's Q8_0 of the same models is
    smaller (8-bit embeddings), and ``similar`` is what puts 8-bit 4B in the generation regime."""
    from edgekv.plan.plans import E1_BYTES, E2_BYTES, SIMILAR

    q8_4b, q8_8b = (_derived_bytes(catalog[m], "Q8_0") for m in ("Qwen3-4B", "Qwen3-8B"))
    assert E1_BYTES * (1 - SIMILAR) <= q8_4b < E1_BYTES
    assert E2_BYTES * (1 - SIMILAR) <= q8_8b < E2_BYTES


# --- the compute-buffer formula vs the H200 dry runs ----------------------------------------


def _compute_rows() -> list[dict[str, object]]:
    text = (ROOT / "bench/results/compute.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if r.get("ok") and r.get("quant") == "Q4_K_M" and not r.get("header_only")]


def test_compute_formula_matches_dry_runs(catalog: dict[str, CatalogModel]) -> None:
    rows = _compute_rows()
    assert len(rows) >= 40
    errors: list[tuple[float, str]] = []
    for r in rows:
        spec = catalog[str(r["model"])].spec
        cfg = RunConfig(n_ctx=int(r["n_ctx"]), n_ubatch=int(r["n_ubatch"]), flash_attn=bool(r["flash_attn"]))  # type: ignore[call-overload]
        exact = int(memory.compute_breakdown(spec, cfg)["exact"])  # the estimate's largest moment, no slack
        err_mib = exact / MIB - float(r["cuda_compute_mib"])  # type: ignore[arg-type]
        errors.append((abs(err_mib), f"{r['model']} n_ctx {r['n_ctx']} fa {r['flash_attn']}: {err_mib:+.2f} MiB"))
    worst = max(errors)
    print(f"compute formula: worst error {worst[0]:.2f} MiB over {len(rows)} dry runs ({worst[1]})")
    assert worst[0] <= 8, worst[1]


# --- KvCost (the chooser's fast path) equals kv_bytes ---------------------------------------

GEMMA_LIKE = ModelSpec(
    name="gemma-like", arch="gemma3", n_layer=18, n_embd=640, n_head=4, n_head_kv=(1,) * 18,
    head_dim_k=256, head_dim_v=256, n_ff=2048, n_vocab=262144, n_ctx_train=32768,
    swa_layers=tuple(il % 6 != 5 for il in range(18)), n_swa=512, tied_embeddings=True,
)  # fmt: skip


def _random_spec(rng: random.Random) -> ModelSpec:
    n_layer = rng.randint(1, 48)
    head_dim = rng.choice([64, 128, 256])
    n_head_kv = tuple(rng.choice([0, 1, 2, 4, 8]) if rng.random() < 0.2 else 8 for _ in range(n_layer))
    swa = tuple(rng.random() < 0.7 for _ in range(n_layer)) if rng.random() < 0.5 else ()
    return ModelSpec(
        name="random", arch="test", n_layer=n_layer, n_embd=1024, n_head=16, n_head_kv=n_head_kv,
        head_dim_k=head_dim, head_dim_v=rng.choice([head_dim, 128]), n_ff=4096, n_vocab=32000, n_ctx_train=0,
        swa_layers=swa, n_swa=rng.choice([128, 512, 4096]) if swa else 0,
    )  # fmt: skip


def _random_cfg(rng: random.Random) -> RunConfig:
    k = rng.choice(list(KvType))
    v = rng.choice([k, *[t for t in KvType if t.quantized]])
    return RunConfig(
        n_ctx=rng.randint(1, 140_000), type_k=k, type_v=v, n_seq=rng.choice([1, 1, 2, 3, 4, 8]),
        n_ubatch=rng.choice([128, 512, 2048]), swa_full=rng.random() < 0.5, kv_unified=rng.random() < 0.3,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_kv_cost_total_equals_kv_bytes(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        spec, cfg = _random_spec(rng), _random_cfg(rng)
        assert kv_cost(spec, cfg.type_k, cfg.type_v).total(spec, cfg) == kv_bytes(spec, cfg).total, (spec, cfg)


@pytest.mark.parametrize("swa_full", [True, False])
@pytest.mark.parametrize("n_seq", [1, 2, 4])
@pytest.mark.parametrize("n_ctx", [256, 1024, 4096, 32768])
@pytest.mark.parametrize("kv", [KvType.F16, KvType.Q8_0, KvType.Q4_0])
def test_kv_cost_gemma_like_swa(swa_full: bool, n_seq: int, n_ctx: int, kv: KvType) -> None:
    cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv, n_seq=n_seq, swa_full=swa_full)
    full, swa = kv_bytes(GEMMA_LIKE, cfg, swa=False), kv_bytes(GEMMA_LIKE, cfg, swa=True)
    total = kv_bytes(GEMMA_LIKE, cfg).total
    assert kv_cost(GEMMA_LIKE, kv, kv).total(GEMMA_LIKE, cfg) == total == full.total + swa.total
    cells = memory.pad(n_ctx, 256) // n_seq if n_seq > 1 else memory.pad(n_ctx, 256)
    cells = memory.pad(cells, 256)
    assert full.cells == cells and full.n_stream == n_seq
    assert full.swa_cells == (cells if swa_full else memory.pad(min(cells, 512 + 512), 256))
    per_cell = kv.ggml.type_size * 256 // kv.ggml.block_size  # one KV head of 256
    assert full.total == 2 * 3 * per_cell * cells * n_seq  # 3 global layers, K and V
    assert swa.total == 2 * 15 * per_cell * full.swa_cells * n_seq


# --- WeightLayout.split ---------------------------------------------------------------------

UNTIED = WeightLayout(input_bytes=100, layer_bytes=(10, 20, 30), output_bytes=7, tied_embeddings=False)
# tied: output_bytes = output_norm (1) + a duplicate of token_embd (100)
TIED = WeightLayout(input_bytes=100, layer_bytes=(10, 20, 30), output_bytes=101, tied_embeddings=True)


@pytest.mark.parametrize(
    ("layout", "ngl", "gpu", "host"),
    [
        (UNTIED, -1, 60 + 7, 100),  # full: token_embd stays on the host
        (UNTIED, 4, 60 + 7, 100),  # ngl = n_layer + 1 is full offload
        (UNTIED, 99, 60 + 7, 100),
        # llama.cpp 0.3.36 (llama-model.cpp load_tensors): i_gpu_start = n_layer + 1 - ngl and the
        # output layer is il = n_layer, so it is offloaded first, then the last ngl - 1 blocks.
        (UNTIED, 3, 20 + 30 + 7, 100 + 10),  # ngl = n_layer: layer 0 stays on the host
        (UNTIED, 1, 7, 100 + 60),  # ngl = 1: only the output layer
        (UNTIED, 0, 0, 100 + 60 + 7),
        (TIED, -1, 60 + 101, 100),  # the tied matrix is loaded twice when the output is offloaded
        (TIED, 2, 30 + 101, 100 + 10 + 20),
        (TIED, 1, 101, 100 + 60),
        (TIED, 0, 0, 100 + 60 + 1),  # output on the host reuses token_embd: only its norm is extra
    ],
)
def test_weight_layout_split(layout: WeightLayout, ngl: int, gpu: int, host: int) -> None:
    assert layout.split(ngl) == (gpu, host)


@pytest.mark.parametrize("tied", [True, False])
def test_weight_layout_from_spec(tied: bool) -> None:
    tensors = [TensorInfo("token_embd.weight", "Q8_0", (64, 1000))]
    for il in range(4):
        tensors.append(TensorInfo(f"blk.{il}.attn_q.weight", "Q4_K", (256, 256)))
        tensors.append(TensorInfo(f"blk.{il}.attn_norm.weight", "F32", (256,)))
    tensors.append(TensorInfo("output_norm.weight", "F32", (64,)))
    if not tied:
        tensors.append(TensorInfo("output.weight", "Q6_K", (256, 1000)))
    spec = ModelSpec(
        name="t", arch="llama", n_layer=4, n_embd=64, n_head=1, n_head_kv=(1,) * 4, head_dim_k=64,
        head_dim_v=64, n_ff=64, n_vocab=1000, n_ctx_train=0, tied_embeddings=tied, tensors=tuple(tensors),
    )  # fmt: skip
    layout = WeightLayout.from_spec(spec)
    embd = 1000 * 2 * 34
    assert layout.input_bytes == embd
    assert layout.layer_bytes == (256 * 144 + 1024,) * 4
    assert sum(layout.split(0)) == spec.weights_bytes  # all on the host: each tensor once
    gpu, host = layout.split(-1)
    assert host == embd
    assert gpu + host == spec.weights_bytes + (embd if tied else 0)
    assert memory.weight_bytes_split(spec, 2) == layout.split(2)


def test_kv_cost_first_layer_counts_offloaded_layers(catalog: dict[str, CatalogModel]) -> None:
    spec = catalog["Qwen3-8B"].spec
    full = kv_cost(spec, KvType.F16, KvType.F16)
    part = kv_cost(spec, KvType.F16, KvType.F16, first_layer=30)
    assert full == KvCost(kv_bytes_per_token(spec, KvType.F16), 0)
    assert part.full_per_cell * 36 == full.full_per_cell * 6
