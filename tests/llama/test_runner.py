"""edgekv.llama.runner / vram / bench on real llama.cpp (CPU build): buffers vs the memory model."""

from __future__ import annotations

import ctypes
import json
from dataclasses import replace
from pathlib import Path

import pytest

from edgekv.errors import DoesNotFit, KvConfigError, LlamaError
from edgekv.llama import bench, build, session, vram
from edgekv.llama import log as rlog
from edgekv.llama import records as rec
from edgekv.llama import runner as runtime
from edgekv.llama.batch import generate
from edgekv.llama.sampling import Sampling
from edgekv.model.gguf_reader import read_spec
from edgekv.model.quant import KvType
from edgekv.plan import preflight
from edgekv.plan.memory import RunConfig, kv_bytes
from edgekv.units import MIB
from tests.ggufgen import tiny_config, write_tiny_gguf

llama_cpp = pytest.importorskip("llama_cpp")

KV_TYPES = [KvType.F16, KvType.Q8_0, KvType.Q4_0]
THREADS = 1  # robust on a busy 2-core runner


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-qwen3-F16.gguf", tiny_config(), outtype="F16")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama-F16.gguf"
    return write_tiny_gguf(path, tiny_config("LlamaForCausalLM"), outtype="F16", seed=1)


def mib2(n_bytes: int) -> str:
    """A byte count the way llama.cpp's log prints it ("%8.2f MiB")."""
    return f"{n_bytes / MIB:.2f}"


def assert_kv_matches(spec, cfg: RunConfig, buffers: rlog.LlamaBuffers) -> None:
    """Each ``llama_kv_cache: size`` line equals memory.kv_bytes for its layer kind, to 0.01 MiB."""
    assert buffers.kv_caches, "llama.cpp logged no KV cache"
    for cache in buffers.kv_caches:
        want = kv_bytes(spec, cfg, swa=cache.swa if spec.swa_layers else None)
        assert (cache.type_k, cache.type_v) == (cfg.type_k.value, cfg.type_v.value)
        assert f"{cache.k_mib:.2f}" == mib2(want.k_bytes), (cache, want)
        assert f"{cache.v_mib:.2f}" == mib2(want.v_bytes), (cache, want)
        assert cache.n_seq == want.n_stream
        assert cache.cells == (want.swa_cells if cache.swa else want.cells)


@pytest.mark.parametrize("kv", KV_TYPES, ids=lambda k: k.value)
@pytest.mark.parametrize("n_ctx", [512, 2048])
def test_tiny_kv_and_model_buffers_match_prediction(tiny_qwen3: Path, kv: KvType, n_ctx: int) -> None:
    spec = read_spec(tiny_qwen3)
    cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv)
    with runtime.load(tiny_qwen3, cfg, n_threads=THREADS) as r:
        b = r.buffers
    assert_kv_matches(spec, cfg, b)
    assert abs(b.model_host - spec.weights_bytes) < MIB
    assert b.flash_attn is True
    assert not b.on_gpu


@pytest.mark.parametrize("kv", KV_TYPES, ids=lambda k: k.value)
@pytest.mark.parametrize(("n_ctx", "n_seq"), [(4096, 1), (8192, 2)])
def test_gemma_kv_matches_prediction(gemma_gguf: Path, kv: KvType, n_ctx: int, n_seq: int) -> None:
    """gemma-3-270m: sliding-window and global layers, two KV caches, as llama.cpp logs them."""
    spec = read_spec(gemma_gguf)
    cfg = RunConfig(n_ctx=n_ctx, type_k=kv, type_v=kv, n_seq=n_seq)
    with runtime.load(gemma_gguf, cfg, n_threads=THREADS) as r:
        b = r.buffers
    assert {c.swa for c in b.kv_caches} == {True, False}
    assert_kv_matches(spec, cfg, b)
    assert abs(b.model_host - spec.weights_bytes) < MIB
    # the "KV buffer size" lines (one per cache) add up to the prediction, each to the log's 0.01 MiB
    assert abs(sum(b.kv.values()) - kv_bytes(spec, cfg).total) <= 0.0051 * MIB * len(b.kv_caches)


def test_gemma_swa_cache_shrinks_without_swa_full(gemma_gguf: Path) -> None:
    spec = read_spec(gemma_gguf)
    cfg = RunConfig(n_ctx=4096, type_k=KvType.Q8_0, type_v=KvType.Q8_0, swa_full=False)
    b = build.dry_run(gemma_gguf, cfg)
    assert_kv_matches(spec, cfg, b)
    swa = next(c for c in b.kv_caches if c.swa)
    assert swa.cells < 4096


def test_dry_run_matches_real_load(gemma_gguf: Path) -> None:
    cfg = RunConfig(n_ctx=4096, type_k=KvType.Q8_0, type_v=KvType.Q8_0)
    dry = build.dry_run(gemma_gguf, cfg)
    with runtime.load(gemma_gguf, cfg, n_threads=THREADS) as r:
        real = r.buffers
    assert dry.dry_run and not real.dry_run
    assert dry.compute == real.compute and dry.compute_host > 0
    assert dry.kv_caches == real.kv_caches
    assert dry.model_host == 0  # dummy buffers: nothing was allocated


def test_quantized_v_gets_flash_attention(tiny_qwen3: Path) -> None:
    fa = build.resolve_flash_attn(KvType.F16, KvType.Q4_0, None)
    assert fa is True
    cfg = RunConfig(n_ctx=512, type_k=KvType.F16, type_v=KvType.Q4_0, flash_attn=fa)
    with runtime.load(tiny_qwen3, cfg, n_threads=THREADS) as r:
        assert r.buffers.flash_attn is True
        assert r.buffers.kv_caches[0].type_v == "q4_0"


def test_quantized_v_without_flash_attention_refused_before_loading(tmp_path: Path) -> None:
    not_a_model = tmp_path / "garbage.gguf"
    not_a_model.write_bytes(b"not a gguf at all")  # loading it would raise LlamaError instead
    cfg = RunConfig(n_ctx=512, type_k=KvType.Q8_0, type_v=KvType.Q4_0, flash_attn=False)
    with pytest.raises(KvConfigError, match="needs flash attention"):
        runtime.load(not_a_model, cfg)
    with pytest.raises(KvConfigError):
        build.dry_run(not_a_model, cfg)
    # quantized K with f16 V runs without flash attention
    assert build.resolve_flash_attn(KvType.Q8_0, KvType.F16, False) is False


def test_llama_failure_carries_the_log_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(LlamaError) as e:
        runtime.load(bad, RunConfig(n_ctx=512))
    assert e.value.reason and "failed to load model" in e.value.reason  # llama.cpp's last error line


def test_log_callback_is_restored(tiny_qwen3: Path) -> None:
    def current() -> int | None:
        cb, ud = llama_cpp.llama_log_callback(), ctypes.c_void_p()
        llama_cpp.llama_log_get(ctypes.byref(cb), ctypes.byref(ud))
        return ctypes.cast(cb, ctypes.c_void_p).value

    before = current()
    with runtime.load(tiny_qwen3, RunConfig(n_ctx=512), n_threads=THREADS) as r:
        assert current() != before
        assert any("llama_kv_cache" in line for line in r.log_lines())
    assert current() == before


def test_parallel_sequences_share_the_prompt(tiny_qwen3: Path) -> None:
    spec = read_spec(tiny_qwen3)
    cfg = RunConfig(n_ctx=1024, n_seq=2)
    with runtime.load(tiny_qwen3, cfg, n_threads=THREADS) as r:
        assert r.n_seq_max == 2 and r.n_ctx_seq == 512
        assert_kv_matches(spec, cfg, r.buffers)
        assert r.buffers.kv_total == kv_bytes(spec, cfg).total
        prompt = r.tokenize("hello world")
        seen: list[tuple[int, int]] = []
        greedy = Sampling(greedy=True)
        g = generate(r, prompt, 6, n_seq=2, sampling=greedy, on_token=lambda s, t, _: seen.append((s, t)))
        assert len(g.sequences) == 2
        a, b = g.sequences
        assert a.tokens == b.tokens and len(a.tokens) == 6 and a.finish == "length"  # greedy: same prompt, same KV
        assert sorted({s for s, _ in seen}) == [0, 1]
        one = generate(r, prompt, 6, sampling=Sampling(greedy=True))
        assert one.sequences[0].tokens[0] == a.tokens[0]
        sampled = generate(r, prompt, 6, n_seq=2, sampling=Sampling(seed=3))
        assert len(sampled.sequences) == 2 and all(s.tokens for s in sampled.sequences)


def test_prompt_cache_reuses_the_prefix(tiny_llama: Path) -> None:
    with runtime.load(tiny_llama, RunConfig(n_ctx=512), n_threads=THREADS) as r:
        prompt = r.tokenize("the same prompt")
        first = generate(r, prompt, 4, sampling=Sampling(greedy=True))
        again = generate(r, prompt, 4, sampling=Sampling(greedy=True))
        assert first.n_prompt_evaluated == len(prompt)
        assert again.n_prompt_evaluated == 1
        assert again.sequences[0].tokens == first.sequences[0].tokens


def test_generate_refuses_more_sequences_than_the_context(tiny_qwen3: Path) -> None:
    with runtime.load(tiny_qwen3, RunConfig(n_ctx=512), n_threads=THREADS) as r:
        with pytest.raises(KvConfigError):
            generate(r, [1, 2, 3], 2, n_seq=2)


def test_chat_template_and_tokens(gemma_gguf: Path, tiny_qwen3: Path) -> None:
    with runtime.load(tiny_qwen3, RunConfig(n_ctx=512), n_threads=THREADS) as r:
        text = r.apply_chat_template([{"role": "user", "content": "hi"}])
        assert "<|im_start|>user\nhi" in text and text.endswith("assistant\n")  # ChatML fallback
    with runtime.load(gemma_gguf, RunConfig(n_ctx=512), n_threads=THREADS) as r:
        toks = r.tokenize("Hello world", add_special=False)
        assert r.detokenize(toks) == "Hello world"
        assert r.is_eog(1) and not r.is_eog(toks[0])


def test_parse_cuda_log() -> None:
    """The CUDA forms of the buffer lines (as seen on the H200), parsed without a GPU."""
    lines = [
        "load_tensors:        CUDA0 model buffer size =  3888.47 MiB",
        "load_tensors:   CPU_Mapped model buffer size =   593.50 MiB",
        "llama_context:  CUDA_Host  output buffer size =     0.58 MiB",
        "llama_kv_cache:      CUDA0 KV buffer size =  2448.00 MiB",
        "llama_kv_cache: size = 2448.00 MiB ( 32768 cells,  36 layers,  1/1 seqs), "
        "K (q8_0): 1224.00 MiB, V (q8_0): 1224.00 MiB",
        "llama_context: flash_attn            = enabled",
        "sched_reserve:      CUDA0 compute buffer size =   301.75 MiB",
        "sched_reserve:  CUDA_Host compute buffer size =    72.01 MiB",
    ]
    b = rlog.parse_buffers(lines)
    assert b.on_gpu and b.flash_attn is True
    assert b.model_device == round(3888.47 * MIB) and b.model_host == round(593.50 * MIB)
    assert b.compute_device == round(301.75 * MIB) and b.compute_host == round(72.01 * MIB)
    assert b.kv_k == b.kv_v == 1224 * MIB and b.kv["CUDA0"] == 2448 * MIB
    assert b.output == {"CUDA_Host": round(0.58 * MIB)}


@pytest.mark.parametrize(
    ("info", "pair", "ok"),
    [
        ("CUDA : ARCHS = 900 | USE_GRAPHS = 1 | ", ("q8_0", "q8_0"), True),
        ("CUDA : ARCHS = 900 | USE_GRAPHS = 1 | ", ("q8_0", "q4_0"), False),
        ("CUDA : ARCHS = 900 | FA_QUANTS = q4_0-q4_0,q8_0-q8_0,f16-f16,bf16-bf16 | ", ("f16", "q8_0"), False),
        ("CUDA : ARCHS = 900 | FA_QUANTS = all | ", ("q8_0", "q4_0"), True),
        ("CUDA : ARCHS = 900 | FA_ALL_QUANTS = 1 | ", ("f16", "q4_0"), True),
        ("CUDA : FA_QUANTS = q8_0-q4_0 | ", ("q8_0", "q4_0"), True),
        ("CPU : AVX2 = 1 | ", ("q8_0", "q4_0"), True),
    ],
)
def test_cuda_fa_pairs(info: str, pair: tuple[str, str], ok: bool) -> None:
    k, v = KvType(pair[0]), KvType(pair[1])
    if ok:
        assert build.resolve_flash_attn(k, v, None, info=info)
    else:
        with pytest.raises(KvConfigError, match="flash-attention kernel"):
            build.resolve_flash_attn(k, v, None, info=info)


def test_preflight_auto_ctx_is_the_largest_that_fits(gemma_gguf: Path) -> None:
    spec = read_spec(gemma_gguf)
    cfg = RunConfig(n_ctx=4096, type_k=KvType.F16, type_v=KvType.F16)
    probe = session.compute_probe(gemma_gguf, gpu=False)
    have = 800 * MIB
    pf = preflight.preflight(spec, cfg, have_bytes=have, gpu=False, compute=probe, auto_ctx=True)
    n = pf.cfg.n_ctx
    assert n % 256 == 0 and 256 <= n <= spec.n_ctx_train
    assert pf.need_bytes <= have
    c_top = probe(cfg.with_ctx(preflight.max_ctx(spec, cfg)))
    over = preflight.predict(spec, cfg.with_ctx(n + 256), gpu=False, compute_bytes=c_top)
    assert over.gpu_total > have
    # trained context when everything fits
    assert preflight.preflight(spec, cfg, have_bytes=8 << 30, gpu=False, auto_ctx=True).cfg.n_ctx == spec.n_ctx_train


def test_preflight_refuses_with_the_shortfall(gemma_gguf: Path) -> None:
    spec = read_spec(gemma_gguf)
    cfg = RunConfig(n_ctx=32768, type_k=KvType.F16, type_v=KvType.F16)
    probe = session.compute_probe(gemma_gguf, gpu=False)
    with pytest.raises(DoesNotFit) as e:
        preflight.preflight(spec, cfg, have_bytes=1100 * MIB, gpu=False, compute=probe, cap_text="1100M")
    err = e.value
    assert err.need_bytes > err.have_bytes == 1100 * MIB
    short = (err.need_bytes - err.have_bytes) / MIB
    msg = str(err)
    assert "at 32768 tokens with f16 KV needs" in msg and "--vram 1100M leaves 1.07 GiB" in msg
    assert f"{short:.2f} MiB short" in msg and "Try --ctx" in msg and "--kv q8_0" in msg


def test_gpu_prediction_adds_cuda_overhead(gemma_gguf: Path) -> None:
    spec = read_spec(gemma_gguf)
    cfg = RunConfig(n_ctx=4096)
    cpu = preflight.predict(spec, cfg, gpu=False, compute_bytes=100 * MIB)
    gpu = preflight.predict(spec, cfg, gpu=True, compute_bytes=100 * MIB)
    assert cpu.overhead == 0 and gpu.overhead >= 520 * MIB
    assert cpu.weights_gpu == spec.weights_bytes


def test_bench_records(tiny_qwen3: Path) -> None:
    configs = bench.grid([(KvType.F16, KvType.F16), (KvType.Q8_0, KvType.Q8_0)], [512, 1024], base=RunConfig(n_ctx=512))
    settings = rec.BenchSettings(n_prompt=32, n_gen=4, reps=2, n_threads=THREADS)
    spec = read_spec(tiny_qwen3)
    # a cap between the q8_0 and f16 needs at 1024 tokens: that f16 configuration is refused
    probe = session.compute_probe(tiny_qwen3, gpu=False)
    need = {c: preflight.predict(spec, c, gpu=False, compute_bytes=probe(c)).gpu_total for c in configs}
    cap = (need[configs[1]] + need[configs[3]]) // 2
    assert need[configs[0]] <= cap and need[configs[1]] > cap
    steps: list[tuple[int, int]] = []
    records = bench.bench(tiny_qwen3, configs, depths=[0, 64], settings=settings, vram_bytes=cap,
                          progress=lambda d, t, _: steps.append((d, t)))  # fmt: skip
    assert len(records) == 8 and steps[-1] == (8, 8)
    by = {(r.cfg.type_k.value, r.cfg.n_ctx, r.depth): r for r in records}
    refused = by[("f16", 1024, 0)]
    assert refused.status == "refused" and "short" in (refused.reason or "")
    ok = by[("q8_0", 1024, 64)]
    assert ok.status == "ok" and ok.decode_tps and ok.decode_tps.median > 0 and len(ok.decode_tps.values) == 2
    d = ok.as_dict()
    for key in ("model", "type_k", "type_v", "n_ctx", "n_gpu_layers", "depth", "predicted", "measured",
                "prompt_tps", "decode_tps", "build", "device"):  # fmt: skip
        assert key in d
    assert set(d["predicted"]) >= {"weights", "kv", "compute", "overhead", "total"}
    assert set(d["measured"]) >= {"model", "kv", "compute", "process"}
    assert abs(d["measured"]["kv"] - d["predicted"]["kv"]) <= 0.0051 * MIB  # the log prints 0.01 MiB
    assert d["measured"]["compute"] == d["predicted"]["compute"]
    assert set(d["decode_tps"]) >= {"median", "min", "max", "stdev"}
    json.dumps([r.as_dict() for r in records])  # serializable
    flat = rec.flat(d)
    assert "predicted.kv" in flat and "decode_tps.median" in flat


def test_cpu_measurements() -> None:
    assert vram.peak_rss_bytes() >= vram.rss_bytes() > 0
    assert vram.gpu_info() is None or vram.gpu_info().total_bytes > 0


def test_prepare_uses_the_measured_compute_buffer(gemma_gguf: Path) -> None:
    cfg = RunConfig(n_ctx=4096, type_k=KvType.Q8_0, type_v=KvType.Q8_0)
    p = session.prepare(gemma_gguf, cfg, vram_bytes=2 << 30)
    assert p.footprint.compute_source == "measured"
    assert p.footprint.compute == build.dry_run(gemma_gguf, cfg).compute_host
    assert replace(p.cfg) == cfg and not p.gpu


def test_compute_probe_uses_the_disk_cache(gemma_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second probe of the same model/build/settings is answered from the cache, no dry run."""
    from edgekv.llama.compute_cache import ComputeCache

    cfg = RunConfig(n_ctx=1024, n_gpu_layers=0)
    first = session.compute_probe(gemma_gguf, gpu=False, cache=ComputeCache(tmp_path / "c.json"))(cfg)
    assert first and first > 500 * MIB  # gemma's 262k-token vocab: > 512 MiB of logits
    calls: list[object] = []
    real = build.dry_run
    monkeypatch.setattr(build, "dry_run", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = session.compute_probe(gemma_gguf, gpu=False, cache=ComputeCache(tmp_path / "c.json"))(cfg)
    assert again == first and calls == []
