"""edgekv.plan.devices: llama.cpp's layer split, per-device footprints and the multi-device fit."""

from __future__ import annotations

import re

import pytest

from edgekv.errors import DoesNotFit, NoFeasiblePlan, SpecError
from edgekv.model.quant import KvType
from edgekv.plan import devices as multi
from edgekv.plan.fit import FitTerms, footprint_at
from edgekv.plan.memory import RunConfig, WeightLayout
from edgekv.plan.pick import pick
from edgekv.plan.preflight import preflight_split
from edgekv.plan.requests import PickRequest
from edgekv.store.catalog import catalog_options
from edgekv.units import GIB

# Hand-computed from llama-model.cpp load_tensors: splits = cumulative shares / sum (float32),
# act = min(ngl, n_layer + 1), layer il -> first device whose split point is > (il - start) / act.
SPLITS = [
    # 36 blocks + output = 37 layers; 12,8 -> point 0.6: il/37 < 0.6 <=> il <= 22
    (36, (12, 8), -1, [(0, 23), (23, 37)]),
    (36, (3, 2), -1, [(0, 23), (23, 37)]),  # the same shares
    (36, (1, 1), -1, [(0, 19), (19, 37)]),  # il/37 < 0.5 <=> il <= 18
    (9, (1, 1), -1, [(0, 5), (5, 10)]),  # il = 5: 5/10 == 0.5 is not < 0.5 (upper_bound): device 1
    # float32: the point 1/3 rounds up to 0.33333334f, and so does float(1)/3: equal, so device 1
    # (in float64 layer 1 would be on device 0)
    (2, (1, 2), -1, [(0, 1), (1, 3)]),
    (10, (1, 1, 1), -1, [(0, 4), (4, 8), (8, 11)]),  # 3/11 < 1/3 < 4/11; 7/11 < 2/3 < 8/11
    (36, (1, 0), -1, [(0, 37), (0, 0)]),  # a zero share holds nothing
    (36, (0, 1), -1, [(0, 0), (0, 37)]),
    # partial offload: start = 37 - 20 = 17, act = 20: (il - 17)/20 < 0.6 <=> il <= 28
    (36, (12, 8), 20, [(17, 29), (29, 37)]),
]


@pytest.mark.parametrize(("n_layer", "split", "ngl", "want"), SPLITS)
def test_split_layers_mirrors_llama_cpp(n_layer: int, split: tuple[float, ...], ngl: int, want: list) -> None:
    got = multi.split_layers(n_layer, split, n_gpu_layers=ngl)
    assert [(r.start, r.stop) if r else (0, 0) for r in got] == want


def test_output_layer_is_on_the_last_device_with_a_share() -> None:
    assert multi.output_device(multi.split_layers(36, (12, 8)), 36) == 1
    assert multi.output_device(multi.split_layers(36, (1, 0)), 36) == 0
    assert multi.output_device(multi.split_layers(36, (1, 1), n_gpu_layers=0), 36) is None


@pytest.mark.parametrize("bad", [(1,), (1, -1), (0, 0)])
def test_bad_splits_are_refused(bad: tuple[float, ...]) -> None:
    with pytest.raises(SpecError):
        multi.check_split(bad, 2)


@pytest.fixture(scope="module")
def q8_8b():  # type: ignore[no-untyped-def]
    return catalog_options("qwen3", ["Qwen3-8B"], ["Q8_0"])[0]


@pytest.mark.parametrize("split", [(12, 8), (1, 1), (1, 2, 3)])
@pytest.mark.parametrize("kv", [KvType.F16, KvType.Q8_0])
def test_device_footprints_add_up_to_the_single_device_weights_and_kv(q8_8b, split, kv) -> None:  # type: ignore[no-untyped-def]
    cfg = RunConfig(n_ctx=32768, type_k=kv, type_v=kv, n_seq=2, tensor_split=split)
    single = footprint_at(q8_8b.spec, cfg, FitTerms(q8_8b.layout))
    fps = multi.multi_footprint(q8_8b.spec, cfg, multi.DeviceTerms(split, q8_8b.layout))
    assert len(fps) == len(split)
    assert sum(f.weights_gpu for f in fps) == single.weights_gpu
    assert sum(f.kv_gpu for f in fps) == single.kv_gpu
    total = multi.combined(fps, layout=q8_8b.layout)
    assert (total.weights_gpu, total.kv, total.weights_host) == (single.weights_gpu, single.kv, single.weights_host)
    # every device pays its own CUDA context and margin; only the output device the logits
    assert all(f.overhead == single.overhead and f.margin == single.margin for f in fps)
    assert max(fps, key=lambda f: f.compute) is fps[-1]


def test_weights_follow_the_layers(q8_8b) -> None:  # type: ignore[no-untyped-def]
    layout: WeightLayout = q8_8b.layout
    fps = multi.multi_footprint(q8_8b.spec, RunConfig(n_ctx=4096), multi.DeviceTerms((12, 8), layout))
    assert fps[0].weights_gpu == sum(layout.layer_bytes[:23])
    assert fps[1].weights_gpu == sum(layout.layer_bytes[23:]) + layout.output_bytes


def test_largest_tokens_fits_every_device_and_no_more(q8_8b) -> None:  # type: ignore[no-untyped-def]
    devs = multi.devices_from_caps([7 * GIB, 5 * GIB])
    cfg = RunConfig(n_ctx=256, tensor_split=(7, 5))
    terms = multi.DeviceTerms((7, 5), q8_8b.layout)
    t, fps = multi.largest_tokens_multi(q8_8b.spec, cfg, devs, terms)
    assert fps is not None and t % 256 == 0 and t > 0
    assert all(f.gpu_total <= d.vram_bytes for f, d in zip(fps, devs, strict=True))
    over = multi.multi_footprint(q8_8b.spec, cfg.with_ctx(t + 256), terms)
    assert multi.shortfalls(over, devs)


def test_pick_across_two_cards_fits_each_cap() -> None:
    res = pick(PickRequest(vram_bytes=(12 * GIB, 8 * GIB), top=5), catalog_options("qwen3"))
    assert res.budget.tensor_split == (12.0, 8.0)
    for p in res.plans:
        assert p.tensor_split == (12.0, 8.0) and len(p.device_footprints) == 2
        assert p.device_footprints[0].gpu_total <= 12 * GIB and p.device_footprints[1].gpu_total <= 8 * GIB


def test_a_model_that_fits_neither_card_alone_fits_the_pair() -> None:
    one = catalog_options("qwen3", ["Qwen3-14B"], ["Q8_0"])
    for cap in (12 * GIB, 8 * GIB):
        with pytest.raises(NoFeasiblePlan):
            pick(PickRequest(vram_bytes=cap), one)
    res = pick(PickRequest(vram_bytes=(12 * GIB, 8 * GIB)), one)
    assert res.plans[0].option.name == "Qwen3-14B" and res.plans[0].n_ctx_seq >= 4096


def test_pick_takes_the_tensor_split_given() -> None:
    res = pick(PickRequest(vram_bytes=(12 * GIB, 8 * GIB), tensor_split=(3, 2), top=1), catalog_options("qwen3"))
    assert res.plans[0].tensor_split == (3.0, 2.0)


def test_nothing_fits_names_each_device_short() -> None:
    with pytest.raises(NoFeasiblePlan, match=r"GPU 1: needs .* of 1.00 GiB: .* short"):
        pick(PickRequest(vram_bytes=(1 * GIB, 1 * GIB)), catalog_options("qwen3", ["Qwen3-8B"], ["Q8_0"]))


@pytest.fixture(scope="module")
def q8_8b_file_spec(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Qwen3-8B's real tensors at Q8_0 (a sparse GGUF: what ``run`` reads)."""
    from edgekv.model.gguf_reader import read_spec
    from edgekv.store.catalog import load_catalog
    from tests.ggufgen import write_sparse_gguf

    config = next(m for m in load_catalog() if m.name == "Qwen3-8B").config
    path = tmp_path_factory.mktemp("gguf") / "Qwen3-8B-Q8_0.gguf"
    return read_spec(write_sparse_gguf(path, config, quant="Q8_0"))  # sparse: no disk used for the zeros


def test_preflight_refuses_per_device(q8_8b_file_spec) -> None:  # type: ignore[no-untyped-def]
    devs = multi.devices_from_caps([8 * GIB, 4 * GIB])
    cfg = RunConfig(n_ctx=40960, tensor_split=(8, 4))
    with pytest.raises(DoesNotFit) as e:
        preflight_split(q8_8b_file_spec, cfg, devs)
    msg = str(e.value)
    assert re.search(r"GPU 1: needs \d+\.\d\d GiB of 4\.00 GiB: \d+\.\d\d (GiB|MiB) short", msg), msg
    assert re.search(r"GPU 0: needs \d+\.\d\d GiB of 8\.00 GiB", msg), msg  # both are short at 40k tokens
    assert "--ctx" in msg and "--tensor-split" in msg
    ok = preflight_split(q8_8b_file_spec, cfg, devs, auto_ctx=True)
    assert 0 < ok.cfg.n_ctx < 40960 and len(ok.device_footprints) == 2
    assert all(f.gpu_total <= d.vram_bytes for f, d in zip(ok.device_footprints, devs, strict=True))
