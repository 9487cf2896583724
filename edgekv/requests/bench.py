"""``edgekv bench``'s request: the KV pairs x contexts (or the parallel counts) to time, parsed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from edgekv.llama.records import BenchSettings
    from edgekv.model.quant import KvType
    from edgekv.plan.memory import RunConfig


@dataclass(frozen=True, slots=True)
class BenchRequest:
    """The flags of ``edgekv bench`` (each as given; its defaults are the flags')."""

    model: str
    kv: str = "f16,q8_0,q4_0"
    contexts: str = "4k"
    depths: str = "0"
    n_prompt: int = 512
    n_gen: int = 128
    reps: int = 5
    vram: str | None = None
    tensor_split: str | None = None
    ngl: int = -1
    flash_attn: bool = True
    threads: int | None = None
    parallel: str | None = None
    ram: str | None = None  # --ram (host side on a GPU; 0 = GPU only); None: EDGEKV_RAM, else available less a margin
    n_cpu_moe: int = 0  # --n-cpu-moe: the experts of the first N blocks in RAM

    def plan(self) -> BenchPlan:
        """What to time.

        Raises:
            click.UsageError: a split without a cap per device.
            BadArgument: --n-prompt and --n-gen both 0 (every speed would be 0/0).
            SpecError: no context, no KV type, a bad --parallel.
        """
        from edgekv.errors import BadArgument, SpecError
        from edgekv.fsutil import input_file
        from edgekv.llama import bench
        from edgekv.llama.records import BenchSettings
        from edgekv.plan.memory import RunConfig
        from edgekv.requests.card import parse_vram
        from edgekv.requests.flags import kv_pairs, parse_tensor_split
        from edgekv.store.hostmem import host_ram
        from edgekv.units import parse_list, parse_tokens

        if self.n_prompt == 0 and self.n_gen == 0:
            raise BadArgument("--n-prompt 0 and --n-gen 0: nothing to time", hint="e.g. --n-prompt 512 --n-gen 128")
        ram = host_ram(self.ram)  # before the file: a bad value is a usage error first
        input_file(self.model)
        vram_bytes = parse_vram(self.vram) if self.vram is not None else None
        split = tuple(parse_tensor_split(self.tensor_split)) if self.tensor_split is not None else ()
        if split and not isinstance(vram_bytes, list):
            raise click.UsageError("--tensor-split needs a --vram per device (e.g. --vram 12G,8G --tensor-split 3,2)")
        base = RunConfig(n_ctx=4096, n_gpu_layers=self.ngl, flash_attn=self.flash_attn, tensor_split=split,
                         n_cpu_moe=self.n_cpu_moe)  # fmt: skip
        contexts = [parse_tokens(c) for c in parse_list(self.contexts)]
        if not contexts or min(contexts) < 1:
            raise SpecError(
                f"--ctx {self.contexts!r}: every context must be a positive token count", hint="e.g. --ctx 4k,16k"
            )
        pairs = kv_pairs(self.kv)
        if not pairs:
            raise SpecError("--kv is empty", hint="e.g. --kv f16,q8_0,q4_0")
        settings = BenchSettings(n_prompt=self.n_prompt, n_gen=self.n_gen, reps=self.reps, n_threads=self.threads)
        depths = [parse_tokens(d) for d in parse_list(self.depths)]
        if not depths:
            raise BadArgument(f"--depth {self.depths!r} names no depth", hint="e.g. --depth 0,8k")
        return BenchPlan(bench.grid(pairs, contexts, base=base), settings, depths, vram_bytes, pairs, base,
                         self._counts(), ram.ram_bytes if ram is not None else None)  # fmt: skip

    def _counts(self) -> list[int] | None:
        if self.parallel is None:
            return None
        from edgekv.errors import SpecError
        from edgekv.units import parse_list

        try:
            counts = [int(x) for x in parse_list(self.parallel)]
        except ValueError:
            raise SpecError(
                f"--parallel {self.parallel!r} is not a list of counts", hint="e.g. --parallel 1,4,16"
            ) from None
        if not counts or min(counts) < 1 or self.n_prompt < 1 or self.n_gen < 1:
            raise SpecError("--parallel needs counts >= 1 and --n-prompt, --n-gen >= 1", hint="e.g. --parallel 1,4,16")
        from edgekv.plan.bounds import check_sequences

        check_sequences("--parallel", counts)
        return counts


@dataclass(frozen=True)
class BenchPlan:
    """Each configuration (KV pair x context) at each depth; or, with --parallel, each pair at each G."""

    configs: list[RunConfig]
    settings: BenchSettings
    depths: list[int]
    vram_bytes: int | list[int] | None
    pairs: list[tuple[KvType, KvType]]
    base: RunConfig
    counts: list[int] | None  # --parallel's G values
    ram_bytes: int | None = None  # --ram: the host side's budget on a GPU

    def pair_bases(self) -> list[RunConfig]:
        """--parallel: the base settings of each KV pair (a quantized V turns flash attention on)."""
        return [
            replace(self.base, type_k=k, type_v=v, flash_attn=self.base.flash_attn or v.quantized)
            for k, v in self.pairs
        ]
