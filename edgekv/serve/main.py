"""``serve``: pre-flight the plan, bind the port, load the model, and run the server until a signal."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edgekv.errors import RuntimeUnavailable
from edgekv.llama.sampling import SamplerPlace
from edgekv.logconfig import get_logger
from edgekv.requests.serve import ServeSettings
from edgekv.serve.protocol import Limits

log = get_logger("edgekv.serve")


def check_extra() -> None:
    """The serve extra's packages are installed, or one line saying how to get them."""
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise RuntimeUnavailable(
            f"edgekv serve needs {' and '.join(missing)}", hint='install the serve extra: pip install "edgekv[serve]"'
        )


def serve(settings: ServeSettings, *, sampler: SamplerPlace, verbose: bool, echo: Callable[[str], None]) -> None:
    """Serve ``settings`` until SIGTERM/SIGINT (docs/serve.md).

    Raises:
        RuntimeUnavailable: the serve extra is not installed.
        DoesNotFit: the plan does not fit the cap (nothing was loaded).
        OSError: the address cannot be bound.
    """
    check_extra()
    from edgekv.llama import session
    from edgekv.serve.app import bind, run_server
    from edgekv.serve.worker import Worker
    from edgekv.store.catalog import resolve_markers

    s, req = settings.run, settings.request
    cfg = replace(s.config, device_sampling=sampler.on_device)
    prepared = session.prepare(s.model, cfg, vram_bytes=s.vram_bytes, auto_ctx=s.auto_ctx,
                               margin_bytes=s.margin_bytes, cap_text=s.cap_text, verbose=verbose)  # fmt: skip
    sock = bind(req.host, req.port)  # before loading: a port in use fails in a second, not after the load
    host, port = sock.getsockname()[:2]
    if settings.exposed and not req.api_key:
        log.warning("listening on %s without --api-key: anyone who reaches this address can use the model", host)
    with sock, session.open_run(prepared, n_threads=req.run.threads, verbose=verbose) as sess:
        runner = sess.runner
        slot = runner.n_ctx_seq
        limits = Limits(
            max_body_bytes=settings.max_body_bytes, max_prompt_tokens=req.max_prompt_tokens or slot - 1,
            max_tokens=req.max_tokens or slot - 1, max_n=req.max_n or runner.n_seq_max, max_queue=req.queue,
            body_timeout_s=req.body_timeout_s,
        )  # fmt: skip
        model_id = req.name or Path(s.model).name.removesuffix(".gguf")
        markers = resolve_markers(settings.think_markers, Path(s.model).name, prepared.spec, runner.chat_template())
        worker = Worker(runner, sampling=s.sampling, sampler=sampler, model_id=model_id, limits=limits,
                        log_text=req.log_text, markers=markers)  # fmt: skip
        shown = f"[{host}]" if ":" in host else host
        echo(f"edgekv serve: {model_id} on http://{shown}:{port}/v1 ({runner.n_seq_max} slots of {slot} tokens; "
             f"queue {limits.max_queue}; {'API key required' if req.api_key else 'no API key'})")  # fmt: skip
        if worker.thinking:
            echo(f"thinking markers: {markers.describe()}")
        elif settings.think_markers is not None:
            echo(
                f"thinking markers: {markers.describe()}, but the chat template names neither: "
                "no reasoning is split off"
            )
        run_server(worker, sock, api_key=req.api_key, grace_s=req.grace_s)
    echo("edgekv serve: stopped")
