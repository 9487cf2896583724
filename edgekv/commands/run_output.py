"""``edgekv run``'s output: the settings line, streamed samples, and memory predicted vs measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


def header(prepared: Any, model: str, tk: Any, tv: Any, fa: bool, *, cap_text: str | None) -> None:
    """One line on stderr: context, KV, samples, flash attention, the prediction (and per GPU)."""
    from edgekv.units import format_bytes

    kv_text = tk.value if tk == tv else f"{tk.value}/{tv.value}"
    budget = f"--vram {cap_text}" if cap_text else "the free memory"
    click.echo(
        f"{Path(model).name}: {prepared.cfg.n_ctx} tokens, {kv_text} KV, {prepared.cfg.n_seq} sample(s), flash "
        f"attention {'on' if fa else 'off'}; predicted {format_bytes(prepared.footprint.gpu_total)} of {budget}",
        err=True,
    )
    for i, fp in enumerate(prepared.device_footprints):
        click.echo(
            f"  GPU {i}: predicted {format_bytes(fp.gpu_total)} of {format_bytes(prepared.vram_per_device[i])}",
            err=True,
        )


def show(prepared: Any, out: Any, *, model: str, vram_bytes: Any, as_json: bool) -> None:
    """--json: one object; else the speeds and the memory table on stderr."""
    from edgekv.llama import build as lbuild
    from edgekv.llama import session
    from edgekv.report import common as rcommon
    from edgekv.report import run as rrun

    if as_json:
        device = session.device_name(prepared.gpu)
        build = lbuild.build_info()
        total = sum(vram_bytes) if isinstance(vram_bytes, list) else vram_bytes
        data = rrun.run_dict(prepared, out, model=model, vram_bytes=total, device=device, build=build)
        click.echo(json.dumps(data, indent=2))
        return
    con = rcommon.console(stderr=True)
    for g in out.generations:
        con.print(
            f"prompt {g.n_prompt} tokens ({g.prompt_tps:.1f} tokens/s); generated {g.n_generated} tokens "
            f"({g.decode_tps:.1f} tokens/s)"
        )
    title = "memory: predicted vs measured"
    con.print(rrun.memory_table(prepared.footprint, out.measured, gpu=prepared.gpu, title=title))


def generate(prepared: Any, prompt: str | None, o: dict[str, Any], samp: Any, *, verbose: bool) -> Any:
    """Stream sample 1 to stdout (unless --json); print the other samples after it."""
    from edgekv.llama import session

    quiet = o["as_json"]
    common: dict[str, Any] = {"max_tokens": o["max_tokens"], "sampling": samp, "n_threads": o["threads"]}
    if o["chat"]:
        tty = sys.stdin.isatty()

        def lines() -> Any:
            while True:
                if tty:
                    click.echo("> ", nl=False, err=True)
                line = sys.stdin.readline()
                if not line:
                    return
                yield line

        return session.run_chat(
            prepared, lines(), verbose=verbose, **common,
            on_token=None if quiet else (lambda s, t, p: click.echo(p, nl=False)),
            on_turn_end=None if quiet else (lambda: click.echo("")),
        )  # fmt: skip

    def stream(seq: int, _tok: int, piece: str) -> None:
        if seq == 0 and not quiet:
            click.echo(piece, nl=False)

    assert prompt is not None
    out = session.run_prompt(prepared, prompt, raw=o["raw"], verbose=verbose, on_token=stream, **common)
    if not quiet:
        click.echo("")
        for i, s in enumerate(out.generations[0].sequences[1:], start=2):
            click.echo(f"\n--- sample {i} ---\n{s.text}")
    return out
