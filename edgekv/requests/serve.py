"""``edgekv serve``'s request: the model, cap, KV, context, slots and sampler flags exactly as ``edgekv
run`` reads them (flag > --plan file > default; a :class:`~edgekv.requests.run.RunRequest` without a
prompt), and the server's own: where it listens, the API key, and the limits on each request."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from edgekv.requests.run import RunRequest

if TYPE_CHECKING:
    from edgekv.model.markers import ThinkMarkers
    from edgekv.requests.run import RunSettings

DEFAULT_SLOTS = 4  # parallel sequences when neither --parallel nor a plan says
DEFAULT_PORT = 8080  # llama-server's
DEFAULT_QUEUE = 64
DEFAULT_GRACE_S = 20.0  # under Kubernetes' default 30 s termination grace
DEFAULT_BODY_TIMEOUT_S = 10.0
DEFAULT_MAX_BODY = "1M"


@dataclass(frozen=True, slots=True)
class ServeRequest:
    """The flags of ``edgekv serve``; ``None`` limits are set from the loaded context (docs/serve.md)."""

    run: RunRequest
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str | None = None
    name: str | None = None
    max_body: str = DEFAULT_MAX_BODY
    max_prompt_tokens: int | None = None
    max_tokens: int | None = None
    max_n: int | None = None
    queue: int = DEFAULT_QUEUE
    grace_s: float = DEFAULT_GRACE_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    log_text: bool = False
    think_markers: str | None = None  # "OPEN,CLOSE"; None: the catalog's, the chat template's, else <think>

    def resolve(self) -> ServeSettings:
        """The run settings (as ``edgekv run`` resolves them) and the server's.

        Raises:
            click.UsageError: as ``RunRequest.resolve``; an empty API key.
            BadArgument: a malformed --think-markers (a usage error, exit 2).
        """
        import io

        from edgekv.model.markers import parse_markers
        from edgekv.units import parse_size

        markers = parse_markers(self.think_markers) if self.think_markers is not None else None

        if self.api_key is not None and not self.api_key.strip():
            raise click.UsageError("--api-key is empty")
        if self.run.model is None and self.run.plan_path is None and (self.run.vram or self.run.gpu):
            run = self._top_plan()
        else:
            run = self.run.resolve(stdin=io.StringIO())  # a server has no prompt: RunRequest.prompt is ""
        max_body = parse_size(self.max_body)
        return ServeSettings(run=run, request=self, max_body_bytes=max_body, exposed=not _loopback(self.host),
                             think_markers=markers)  # fmt: skip

    def _top_plan(self) -> RunSettings:
        """``edgekv serve --vram 8G`` alone: pick's top plan for the card (pick's defaults, as ``edgekv
        download --vram 8G`` fetches it), served from huggingface_hub's cache with the plan's settings."""
        import dataclasses
        import io
        import json
        import tempfile
        from pathlib import Path

        from edgekv.plan.requests import DEFAULT_FAMILY
        from edgekv.requests.card import resolve_card
        from edgekv.requests.pick import PickFlags, run_pick
        from edgekv.store.planfile import pick_dict

        r = self.run
        flags = PickFlags(
            vram=r.vram, gpu=r.gpu, max_time=None, tensor_split=r.tensor_split, task="math", family=DEFAULT_FAMILY,
            model=None, quants=None, kv=None, mixed_kv=False, min_ctx="0", allow_offload=False, overhead="auto",
            margin=None, accounting="runtime", gguf_path=None, repo=None, e1=None, e2=None, token_floor=None,
            saturation=None, max_parallel=None, similar=None, cap_precision=True, profile=None,
        )  # fmt: skip
        result = run_pick(flags, resolve_card(r.gpu, r.vram), top=1)
        with tempfile.TemporaryDirectory() as tmp:
            plan = Path(tmp) / "plan.json"
            plan.write_text(json.dumps(pick_dict(result)))
            return dataclasses.replace(r, plan_path=str(plan)).resolve(stdin=io.StringIO())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """What to serve: ``run`` (model, cap, llama.cpp settings, sampler) and the server's flags."""

    run: RunSettings
    request: ServeRequest
    max_body_bytes: int
    exposed: bool  # listening beyond the loopback interface
    think_markers: ThinkMarkers | None = None  # --think-markers; None: resolved from the model when it loads
