"""One measured run: the pre-flight check, loading under the cap, and measuring what it used.

Shared by ``edgekv run``, ``bench`` and ``eval``: :func:`prepare` reads the GGUF header, measures
the compute buffer with a dry run and checks the memory model against the cap (refusing before
anything loads); :func:`open_run` reserves the cap and loads; :func:`measure` reads back what
llama.cpp allocated and what the process holds (NVML on a GPU, peak RSS on a CPU).
"""

from __future__ import annotations

import os
import platform
import resource
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgekv.errors import KvConfigError, RuntimeUnavailable
from edgekv.llama import build as lbuild
from edgekv.llama import runner as runtime
from edgekv.llama import vram
from edgekv.llama.batch import generate
from edgekv.llama.compute_cache import ComputeCache, cache_key
from edgekv.llama.generation import Generation, SequenceTokenCallback
from edgekv.llama.log import is_host_buffer
from edgekv.llama.records import Measured
from edgekv.llama.sampling import Sampling
from edgekv.logconfig import get_logger
from edgekv.model.gguf_reader import read_spec
from edgekv.model.markers import DEFAULT_MARKERS, ThinkMarkers
from edgekv.model.spec import ModelSpec
from edgekv.plan import preflight
from edgekv.plan.devices import check_split, default_split, devices_from_caps
from edgekv.plan.memory import Footprint, RunConfig
from edgekv.plan.plans import kv_types_load
from edgekv.store.catalog import resolve_markers
from edgekv.units import format_bytes

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A configuration the pre-flight check accepted."""

    path: Path
    spec: ModelSpec
    check: preflight.Preflight
    vram_bytes: int | None  # the sum over a split's devices
    vram_per_device: tuple[int, ...] = ()  # a layer split: each device's cap (reserved on GPU 0, 1, ...)

    @property
    def cfg(self) -> RunConfig:
        return self.check.cfg

    @property
    def gpu(self) -> bool:
        return self.check.gpu

    @property
    def footprint(self) -> Footprint:
        return self.check.footprint

    @property
    def device_footprints(self) -> tuple[Footprint, ...]:
        return self.check.device_footprints


def host_memory_bytes() -> int:
    """MemAvailable (Linux), else total RAM, and no more than this process's address-space limit
    (``ulimit -v``, RLIMIT_AS) less what it already maps: the budget of a CPU run without --vram, so
    a run the limit cannot hold is refused by the pre-flight rather than by a failed allocation."""
    have = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                have = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if have is None:
        have = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        have = min(have, max(soft - _mapped_bytes(), 0))
    return have


def _mapped_bytes() -> int:
    """This process's virtual size (VmSize), which RLIMIT_AS limits; 0 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def compute_probe(
    path: Path, *, gpu: bool, verbose: bool = False, cache: ComputeCache | None = None
) -> Callable[[RunConfig], int | None]:
    """The compute buffer llama.cpp reserves for a configuration: from the on-disk cache
    (model x build x settings, see ``compute_cache``) or else measured by a dry run and stored."""
    seen: dict[RunConfig, int | None] = {}
    store = cache or ComputeCache()
    spec: ModelSpec | None = None
    build = ""

    def probe(cfg: RunConfig) -> int | None:
        nonlocal spec, build
        if cfg in seen:
            return seen[cfg]
        if spec is None:
            spec, build = read_spec(path), lbuild.system_info()
        key = cache_key(spec, cfg, build=build, gpu=gpu)
        value = store.get(key)
        if value is None:
            b = lbuild.dry_run(path, cfg, verbose=verbose)
            value = (b.compute_device if gpu else b.compute_host) or None
            if value:
                store.put(key, value)
        seen[cfg] = value
        return value

    return probe


def prepare(
    path: str | os.PathLike[str],
    cfg: RunConfig,
    *,
    vram_bytes: int | Sequence[int] | None,
    auto_ctx: bool = False,
    probe: bool = True,
    margin_bytes: int = 0,
    cap_text: str | None = None,
    spec: ModelSpec | None = None,
    compute: preflight.ComputeProbe | None = None,
    verbose: bool = False,
    ram_bytes: int | None = None,
) -> Prepared:
    """Size ``cfg`` with the memory model (compute buffer from a dry run) against ``vram_bytes``,
    and on a GPU its host side (experts kept in RAM by ``cfg.n_cpu_moe``, ...) against ``ram_bytes``.

    Without ``vram_bytes`` the budget is the card's free memory (GPU) or available RAM (CPU).
    Several caps (one per device, with ``cfg.tensor_split``, default proportional to the caps)
    plan llama.cpp's layer split: every device is checked against its own cap (``prepare_split``).
    ``compute`` replaces the dry-run probe (see :func:`compute_probe`); ``probe=False`` uses the formula.

    Raises:
        DoesNotFit: the configuration would not fit; nothing was loaded.
        KvConfigError: the K/V types and flash attention cannot run on this build.
    """
    lbuild.resolve_flash_attn(cfg.type_k, cfg.type_v, cfg.flash_attn)
    p = Path(path)
    spec = spec or read_spec(p)
    check_kv_blocks(spec, cfg)
    if vram_bytes is not None and not isinstance(vram_bytes, int):
        caps = tuple(vram_bytes)
        if len(caps) > 1:
            return prepare_split(p, cfg, caps, spec=spec, auto_ctx=auto_ctx, probe=probe, margin_bytes=margin_bytes)
        vram_bytes = caps[0] if caps else None
    gpu = lbuild.device_is_gpu(cfg)
    if gpu:
        have = vram.usable_bytes(vram_bytes) if vram_bytes else _gpu_free()
    else:
        have = vram_bytes or host_memory_bytes()
    measure = (compute or compute_probe(p, gpu=gpu, verbose=verbose)) if probe else None
    check = preflight.preflight(
        spec, cfg, have_bytes=have, gpu=gpu, compute=measure, auto_ctx=auto_ctx,
        margin_bytes=margin_bytes, cap_text=cap_text, ram_bytes=ram_bytes,
    )  # fmt: skip
    return Prepared(p, spec, check, vram_bytes)


def check_kv_blocks(spec: ModelSpec, cfg: RunConfig) -> None:
    """Refuse, before loading, the cache types llama.cpp's context creation refuses: a quantized K (V)
    type whose block does not divide the K (V) head size (``plans.kv_types_load``: EXAONE Deep 2.4B's
    80-wide heads take no q8_0 or q4_0).

    Raises:
        KvConfigError: the message names the type, its block and the head size.
    """
    if kv_types_load(spec, cfg.type_k, cfg.type_v):
        return
    bad = [(half, t, dim) for half, t, dim in (("K", cfg.type_k, spec.head_dim_k), ("V", cfg.type_v, spec.head_dim_v))
           if dim % t.ggml.block_size]  # fmt: skip
    half, t, dim = bad[0]
    raise KvConfigError(
        f"a {t.value} {half} cache stores blocks of {t.ggml.block_size} values, which do not divide this model's "
        f"{dim}-wide heads: llama.cpp refuses it",
        hint="use --kv f16 (or bf16, f32)",
    )


def prepare_split(
    path: Path,
    cfg: RunConfig,
    caps: tuple[int, ...],
    *,
    spec: ModelSpec,
    auto_ctx: bool = False,
    probe: bool = True,
    margin_bytes: int = 0,
    verbose: bool = False,
) -> Prepared:
    """``prepare`` across devices: GPU ``i`` gets ``caps[i]`` (less where it has less free memory).

    Raises:
        RuntimeUnavailable: a build without GPU offload (a CPU run has one memory), or fewer GPUs
            than caps.
        DoesNotFit: a device would not fit; the message names each one and its shortfall.
    """
    n = len(caps)
    shown = ",".join(format_bytes(c) for c in caps)
    if not lbuild.gpu_offload_supported():
        raise RuntimeUnavailable(
            f"--vram {shown} names {n} devices, but this llama-cpp-python build has no GPU offload: a CPU run "
            "has one memory",
            hint=f"give one --vram, or install a CUDA build: {lbuild.CUDA_REINSTALL}",
        )
    infos = vram.gpu_infos()
    if infos and len(infos) < n:
        raise RuntimeUnavailable(f"--vram {shown} names {n} devices, but NVML sees {len(infos)} GPU(s)")
    if cfg.n_gpu_layers >= 0:
        raise KvConfigError("a layer split over several devices offloads every layer", hint="drop --ngl")
    split = cfg.tensor_split or default_split(devices_from_caps(caps))
    cfg = replace(cfg, tensor_split=check_split(split, n))
    devs = devices_from_caps([vram.usable_bytes(c, index=i) for i, c in enumerate(caps)])
    measure = split_compute_probe(path, n, verbose=verbose) if probe else None
    check = preflight.preflight_split(spec, cfg, devs, compute=measure, auto_ctx=auto_ctx, margin_bytes=margin_bytes)
    return Prepared(path, spec, check, sum(caps), caps)


def split_compute_probe(path: Path, n_devices: int, *, verbose: bool = False) -> preflight.SplitProbe:
    """Each device's compute buffer from a dry run with the split (not cached: it depends on the
    split and the devices); None when the log does not name one buffer per device."""

    def probe(cfg: RunConfig) -> tuple[int, ...] | None:
        b = lbuild.dry_run(path, cfg, verbose=verbose)
        per = tuple(v for k, v in b.compute.items() if not is_host_buffer(k))
        if len(per) != n_devices:
            log.warning("the dry run logged %d device compute buffers for %d devices", len(per), n_devices)
            return None
        return per

    return probe


def _gpu_free() -> int:
    info = vram.gpu_info()
    return info.free_bytes if info else host_memory_bytes()


@dataclass
class Session:
    """A loaded run: the runner and the cap it runs under (closed together)."""

    prepared: Prepared
    runner: runtime.Runner
    cap: vram.VramCap | None
    owns_cap: bool = False
    caps: tuple[vram.VramCap, ...] = ()  # a layer split: one cap per device (``cap`` is the first)

    def close(self) -> None:
        self.runner.close()
        if self.owns_cap:
            for c in self.caps or ((self.cap,) if self.cap is not None else ()):
                c.release()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cap(vram_bytes: int | None, *, gpu: bool) -> vram.VramCap | None:
    """Reserve the cap on a GPU run with --vram (None on CPU or without --vram)."""
    if not gpu or not vram_bytes:
        return None
    return vram.reserve_cap(vram_bytes)


def open_run(
    prepared: Prepared,
    *,
    cap: vram.VramCap | None = None,
    n_threads: int | None = None,
    n_batch: int | None = None,
    verbose: bool = False,
) -> Session:
    """Load the prepared configuration; reserves the cap first on a GPU unless ``cap`` is given."""
    own_cap = cap is None
    caps: tuple[vram.VramCap, ...] = ()
    if own_cap and prepared.vram_per_device:
        caps = tuple(vram.reserve_caps(prepared.vram_per_device))
        cap = caps[0]
    elif own_cap:
        cap = open_cap(prepared.vram_bytes, gpu=prepared.gpu)
    try:
        runner = runtime.load(prepared.path, prepared.cfg, n_threads=n_threads, n_batch=n_batch, verbose=verbose)
    except BaseException:
        if own_cap:
            for c in caps or ((cap,) if cap is not None else ()):
                c.release()
        raise
    return Session(prepared, runner, cap, owns_cap=own_cap, caps=caps)


def measure(session: Session) -> Measured:
    """Buffers from llama.cpp's log and the process's memory, now (the compute buffer as llama.cpp
    last re-planned it: attaching backend samplers grows it)."""
    b = session.runner.current_buffers()
    if session.prepared.gpu:
        model, compute = b.model_device, b.compute_device
        kv = sum(v for k, v in b.kv.items() if not is_host_buffer(k)) or b.kv_total
        try:
            if session.caps:  # a layer split: the process's VRAM on every device, less each reservation
                each = [c.measured_bytes() for c in session.caps]
                process = None if any(x is None for x in each) else sum(x or 0 for x in each)
            else:
                process = session.cap.measured_bytes() if session.cap else vram.process_vram_bytes()
            source = "nvml" if process is not None else "unavailable"
        except RuntimeUnavailable as e:
            log.warning("%s", e)
            process, source = None, "unavailable"
    else:
        model, compute = b.model_host, b.compute_host
        kv = sum(b.kv.values()) or b.kv_total
        process, source = vram.peak_rss_bytes() or None, "rss"
    output = sum(b.output.values())
    return Measured(model, kv, compute, process, source, output, b.repack, b.kv_k, b.kv_v)


def measure_devices(session: Session) -> list[dict[str, int | str | None]]:
    """Per device of a layer split: llama.cpp's buffers on it (the log's CUDA0, CUDA1, ...) and
    NVML's figure for this process there, less that device's reservation."""
    b = session.runner.current_buffers()
    out: list[dict[str, int | str | None]] = []
    for i in range(len(session.prepared.vram_per_device)):
        name = f"CUDA{i}"
        process: int | None = None
        try:
            process = session.caps[i].measured_bytes() if i < len(session.caps) else vram.process_vram_bytes(index=i)
        except RuntimeUnavailable as e:
            log.warning("%s", e)
        out.append({
            "device": f"GPU {i}", "buffer": name, "model": b.model.get(name, 0), "kv": b.kv.get(name, 0),
            "compute": b.compute.get(name, 0), "process": process,
            "process_source": "nvml" if process is not None else "unavailable",
        })  # fmt: skip
    return out


def device_name(gpu: bool) -> str:
    if gpu:
        info = vram.gpu_info()
        if info:
            return info.name
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True, slots=True)
class RunOutput:
    """What one ``run`` produced: the generations (one per turn) and the memory measured after."""

    generations: list[Generation]
    measured: Measured
    measured_per_device: list[dict[str, int | str | None]] = field(default_factory=list)  # a layer split
    context: LoadedContext | None = None  # the context llama.cpp made


@dataclass(frozen=True, slots=True)
class LoadedContext:
    """The context llama.cpp made, which may be larger than asked: it rounds each sample's share up
    to a multiple of 256 cells (``n_ctx_seq``), and the whole is that times the samples."""

    n_ctx: int
    n_ctx_seq: int
    n_seq: int

    @staticmethod
    def of(runner: runtime.Runner) -> LoadedContext:
        return LoadedContext(runner.n_ctx, runner.n_ctx_seq, runner.n_seq_max)


OpenCallback = Callable[[LoadedContext], None]


def run_prompt(
    prepared: Prepared,
    prompt: str,
    *,
    max_tokens: int,
    sampling: Sampling,
    raw: bool = False,
    n_threads: int | None = None,
    verbose: bool = False,
    on_token: SequenceTokenCallback | None = None,
    on_open: OpenCallback | None = None,
) -> RunOutput:
    """Load the prepared configuration, sample ``n_seq`` continuations of ``prompt`` and measure.

    The model's chat template is applied unless ``raw``. ``on_open`` gets the context llama.cpp made,
    once it is loaded (before the prompt decodes).
    """
    with open_run(prepared, n_threads=n_threads, verbose=verbose) as session:
        runner = session.runner
        loaded = LoadedContext.of(runner)
        if on_open is not None:
            on_open(loaded)
        text = prompt if raw else runner.apply_chat_template([{"role": "user", "content": prompt}])
        tokens = runner.tokenize(text)
        gen = generate(runner, tokens, max_tokens, n_seq=prepared.cfg.n_seq, sampling=sampling, on_token=on_token)
        return RunOutput([gen], measure(session), measure_devices(session), loaded)


def strip_thinking(text: str, markers: ThinkMarkers = DEFAULT_MARKERS) -> str:
    """An earlier turn as the history keeps it: what follows its last close marker (Qwen3's and EXAONE
    Deep's templates drop the reasoning; a prefilled open marker is not in the text, so cut there)."""
    _, sep, tail = text.rpartition(markers.close)
    return (tail if sep else text).strip()


def run_chat(
    prepared: Prepared,
    lines: Iterator[str],
    *,
    max_tokens: int,
    sampling: Sampling,
    n_threads: int | None = None,
    verbose: bool = False,
    on_token: SequenceTokenCallback | None = None,
    on_turn_end: Callable[[Generation], None] | None = None,
    on_open: OpenCallback | None = None,
) -> RunOutput:
    """One turn per line; earlier turns stay in the KV cache (only the new tokens decode)."""
    messages: list[dict[str, str]] = []
    gens = []
    with open_run(prepared, n_threads=n_threads, verbose=verbose) as session:
        runner = session.runner
        loaded = LoadedContext.of(runner)
        if on_open is not None:
            on_open(loaded)
        markers = resolve_markers(None, prepared.path.name, prepared.spec, runner.chat_template())
        for line in lines:
            if not line.strip():
                continue
            messages.append({"role": "user", "content": line.strip()})
            tokens = runner.tokenize(runner.apply_chat_template(messages))
            gen = generate(runner, tokens, max_tokens, sampling=sampling, on_token=on_token)
            if on_turn_end is not None:
                on_turn_end(gen)
            messages.append({"role": "assistant", "content": strip_thinking(gen.sequences[0].text, markers)})
            gens.append(gen)
        return RunOutput(gens, measure(session), measure_devices(session), loaded)
