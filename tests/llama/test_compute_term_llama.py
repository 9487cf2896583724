"""The compute-buffer term against llama.cpp's own reserve on the CPU backend (issue #29).

A small model's three figures are measured with llama.cpp's no_alloc dry run at the calibration
configurations (``ComputeFigures.calibration_configs``); the term must then give what llama.cpp
logs at every other context, G, unified or not, and KV type: the KQ mask's growth with the context,
its G-fold shrink with G streams, the rounding of the reserved tokens to a multiple of G. The CPU
backend makes no f16 copies of a quantized K/V (the CUDA part is checked against the GPU's dry runs
in tests/plan/test_compute_grid.py). Expected values are llama.cpp's logged buffers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from edgekv.llama import build  # noqa: E402
from edgekv.model.gguf_reader import read_spec  # noqa: E402
from edgekv.model.quant import KvType  # noqa: E402
from edgekv.model.spec import ModelSpec  # noqa: E402
from edgekv.plan.memory import ComputeFigures, RunConfig, compute_breakdown, kq_mask_bytes  # noqa: E402
from edgekv.units import MIB  # noqa: E402
from tests.ggufgen import tiny_config, write_sparse_gguf  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from compute_grid import Dry, device_bytes  # noqa: E402

Tiny = tuple[ModelSpec, Dry, ComputeFigures]
LOG_STEP = 0.01 * MIB  # llama.cpp prints the buffer in MiB with two decimals

pytestmark = pytest.mark.skipif(build.is_cuda_build(build.system_info()), reason="checks the CPU backend")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    path = write_sparse_gguf(tmp_path_factory.mktemp("term") / "tiny.gguf", tiny_config(), outtype="F16")
    spec = read_spec(path)
    dry = Dry(path, RunConfig(n_ctx=4096))
    cal = ComputeFigures.calibration_configs(spec)
    measured = {k: device_bytes(dry.compute(c)) for k, c in cal.items()}
    figs = ComputeFigures.from_calibration(spec, measured, backend="cpu")
    yield spec, dry, figs
    dry.close()


CASES = [
    (n_ctx_seq, g, unified)
    for g in (1, 2, 3, 6, 7)
    for n_ctx_seq in (2048, 8192, 40960, 100000)
    for unified in (False, True)
]


@pytest.mark.parametrize(("n_ctx_seq", "g", "unified"), CASES)
def test_f16_term_equals_llama_cpp(tiny: Tiny, n_ctx_seq: int, g: int, unified: bool) -> None:
    spec, dry, figs = tiny
    cfg = RunConfig(n_ctx=n_ctx_seq * g, n_seq=g, kv_unified=unified)
    got = device_bytes(dry.compute(cfg))
    parts = compute_breakdown(spec, cfg, figs, backend="cpu")
    assert parts["phase"] == "layer"  # past 2k tokens the layers (with the mask) are the largest moment
    assert abs(int(parts["exact"]) - got) <= LOG_STEP, (got / MIB, parts)


@pytest.mark.parametrize("g", [1, 3, 6])
def test_quantized_kv_is_on_the_safe_side(tiny: Tiny, g: int) -> None:
    """No f16 copies on the CPU; the f16 layer figure bounds the quantized layer from above by < 0.5 MiB."""
    spec, dry, figs = tiny
    for kv in (KvType.Q8_0, KvType.Q4_0):
        cfg = RunConfig(n_ctx=40960 * g, n_seq=g, type_k=kv, type_v=kv)
        got = device_bytes(dry.compute(cfg))
        err = int(compute_breakdown(spec, cfg, figs, backend="cpu")["exact"]) - got
        assert -LOG_STEP <= err <= 0.5 * MIB, (kv, g, err / MIB)


def test_the_mask_is_what_grows(tiny: Tiny) -> None:
    """Between two contexts llama.cpp's buffer grows by the hand-derived mask difference:
    2 bytes x 512 tokens per cell of one stream; with G streams, 2 x 516 / 6 per cell of the total."""
    spec, dry, _ = tiny
    for g, n1, n2 in ((1, 65536, 131072), (6, 6 * 65536, 6 * 131072)):
        a, b = RunConfig(n_ctx=n1, n_seq=g), RunConfig(n_ctx=n2, n_seq=g)
        grown = device_bytes(dry.compute(b)) - device_bytes(dry.compute(a))
        by_hand = 2 * 512 * (n2 - n1) if g == 1 else 2 * 86 * 6 * (n2 - n1) // 6
        assert by_hand == kq_mask_bytes(spec, b) - kq_mask_bytes(spec, a)
        assert abs(grown - by_hand) <= LOG_STEP, (g, grown / MIB, by_hand / MIB)
