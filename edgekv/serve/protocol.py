"""The OpenAI request bodies ``edgekv serve`` takes, checked into a typed :class:`ApiCall` (pure).

Every refusal is an :class:`~edgekv.errors.ApiRequestError`: status 400 (413 for the body size),
OpenAI's error object, the field at fault as ``param`` and the limit in the message.

What is read: ``model`` (any name: one model is served), ``messages`` (chat: role and content, a
string or a list of text parts) or ``prompt`` (completions: a string, or a list of one string),
``max_tokens``/``max_completion_tokens``, ``n``, ``stream``, ``stream_options.include_usage``,
``temperature``, ``top_p``, ``seed``; edgekv's extensions: ``top_k``, ``min_p``,
``thinking_budget`` (budget forcing as in ``edgekv eval``), ``reserve_tokens``, ``force_length``,
``vote`` and ``answer_kind`` (``math`` or ``choice``, how answers are extracted and compared), and
llama-server's ``ignore_eos`` (an end-of-generation token is just a token: benchmarks).

What is refused rather than ignored (a client would get something else than it asked for):
``stop``, ``logprobs``, ``tools``, ``response_format`` other than text, penalties other than 0,
``logit_bias``, ``echo``, ``suffix``, ``best_of`` > 1. Other unknown fields are ignored, as
OpenAI-compatible servers do (clients send ``user``, ``metadata``, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from edgekv.errors import ApiRequestError
from edgekv.model.markers import DEFAULT_MARKERS, ThinkMarkers

Endpoint = Literal["chat", "completion"]
ROLES = ("system", "user", "assistant", "developer")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may ask for (the server's flags; docs/serve.md)."""

    max_body_bytes: int = 1 << 20
    max_prompt_tokens: int = 8192
    max_tokens: int = 8192  # per sample (sampled + injected)
    max_n: int = 4
    max_queue: int = 64  # requests waiting for a slot; beyond it: 429
    body_timeout_s: float = 10.0  # the whole body must arrive within this (slow clients: 408)


@dataclass(frozen=True, slots=True)
class ApiCall:
    """One checked request."""

    endpoint: Endpoint
    messages: tuple[dict[str, str], ...] = ()
    prompt: str = ""
    max_tokens: int | None = None
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    thinking_budget: int | None = None
    reserve_tokens: int | None = None
    force_length: bool = False
    vote: bool = False
    answer_kind: str = "math"
    ignore_eos: bool = False


def _bad(message: str, param: str | None, code: str = "invalid_value") -> ApiRequestError:
    return ApiRequestError(message, param=param, code=code)


def _int(body: dict[str, Any], name: str, lo: int, hi: int | None = None, limit: str = "") -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(f"'{name}' must be an integer, not {type(v).__name__}", name, "invalid_type")
    if v < lo:
        raise _bad(f"'{name}' must be at least {lo}, not {v}", name)
    if hi is not None and v > hi:
        raise _bad(f"'{name}' is {v}; this server's limit is {hi}{limit}", name, "limit_exceeded")
    return v


def _num(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(f"'{name}' must be a finite number, not {v!r}", name, "invalid_type")
    if not lo <= v <= hi:
        raise _bad(f"'{name}' must be within {lo}..{hi}, not {v}", name)
    return float(v)


def _bool(body: dict[str, Any], name: str) -> bool:
    v = body.get(name)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(f"'{name}' must be true or false, not {v!r}", name, "invalid_type")
    return v


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _bad(f"{where}[{i}]: only text parts are supported", where, "unsupported")
            parts.append(part["text"])
        return "".join(parts)
    if value is None:
        return ""
    raise _bad(f"{where} must be a string or a list of text parts", where, "invalid_type")


def _messages(body: dict[str, Any]) -> tuple[dict[str, str], ...]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _bad("'messages' must be a non-empty list", "messages", "invalid_type" if raw is not None else "missing")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}] must be an object with role and content", "messages", "invalid_type")
        role = m.get("role")
        if role not in ROLES:
            raise _bad(f"messages[{i}].role must be one of {', '.join(ROLES)}, not {role!r}", "messages")
        out.append({"role": "system" if role == "developer" else str(role),
                    "content": _content(m.get("content"), f"messages[{i}].content")})  # fmt: skip
    return tuple(out)


def _prompt(body: dict[str, Any]) -> str:
    raw = body.get("prompt")
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        return raw[0]
    if isinstance(raw, str):
        return raw
    if raw is None:
        raise _bad("'prompt' is required", "prompt", "missing")
    raise _bad("'prompt' must be a string (or a list of one string; token arrays are not supported)", "prompt",
               "invalid_type")  # fmt: skip


_REFUSED: tuple[tuple[str, Any], ...] = (
    ("logprobs", (None, False, 0)), ("top_logprobs", (None, 0)), ("tools", (None, [])), ("functions", (None, [])),
    ("frequency_penalty", (None, 0, 0.0)), ("presence_penalty", (None, 0, 0.0)), ("logit_bias", (None, {})),
    ("echo", (None, False)), ("suffix", (None, "")), ("best_of", (None, 1)),
)  # fmt: skip


def parse_call(body: Any, endpoint: Endpoint, limits: Limits) -> ApiCall:
    """Check a decoded JSON body against the endpoint's fields and the server's limits."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", None, "invalid_type")
    for name, allowed in _REFUSED:
        if name in body and body[name] not in allowed:
            raise _bad(f"'{name}' is not supported by edgekv serve", name, "unsupported")
    stop = body.get("stop")
    if stop not in (None, "", []):
        raise _bad("'stop' sequences are not supported by edgekv serve", "stop", "unsupported")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise _bad("only response_format {'type': 'text'} is supported", "response_format", "unsupported")
    if "model" in body and not isinstance(body["model"], str):
        raise _bad("'model' must be a string", "model", "invalid_type")
    messages = _messages(body) if endpoint == "chat" else ()
    prompt = _prompt(body) if endpoint == "completion" else ""
    mt = _int(body, "max_completion_tokens", 1, limits.max_tokens, " tokens (max_tokens)")
    if mt is None:
        mt = _int(body, "max_tokens", 1, limits.max_tokens, " tokens (max_tokens)")
    n = _int(body, "n", 1, limits.max_n, " samples (n)") or 1
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise _bad("'stream_options' must be an object", "stream_options", "invalid_type")
    kind = body.get("answer_kind", "math")
    if kind not in ("math", "choice"):
        raise _bad(f"'answer_kind' must be 'math' or 'choice', not {kind!r}", "answer_kind")
    budget = _int(body, "thinking_budget", 1, limits.max_tokens, " tokens")
    reserve = _int(body, "reserve_tokens", 1, limits.max_tokens, " tokens")
    if reserve is not None and budget is None:
        raise _bad("'reserve_tokens' goes with 'thinking_budget'", "reserve_tokens")
    if budget is not None and mt is not None and budget >= mt:
        raise _bad(f"'thinking_budget' ({budget}) must be below max_tokens ({mt}): the answer's tokens come after it",
                   "thinking_budget")  # fmt: skip
    vote = _bool(body, "vote")
    return ApiCall(
        endpoint=endpoint, messages=messages, prompt=prompt, max_tokens=mt, n=n, stream=_bool(body, "stream"),
        include_usage=_bool(opts or {}, "include_usage"), temperature=_num(body, "temperature", 0.0, 2.0),
        top_p=_num(body, "top_p", 0.0, 1.0), top_k=_int(body, "top_k", 0), min_p=_num(body, "min_p", 0.0, 1.0),
        seed=_int(body, "seed", -(2**63), 2**63 - 1), thinking_budget=budget, reserve_tokens=reserve,
        force_length=_bool(body, "force_length"), vote=vote, answer_kind=str(kind),
        ignore_eos=_bool(body, "ignore_eos"),
    )  # fmt: skip


class ThinkSplitter:
    """Splits a thinking model's text into reasoning and answer, piece by piece (``reasoning_content``
    as llama-server returns it). The same pieces give the same split whether fed at once or streamed.

    The reasoning is what comes before the close marker (``markers``: the model's own, ``</think>``,
    ``[/THINK]`` or ``</thought>``; after an opening marker, or from the start when the prompt opened
    it, as DeepSeek-R1-Distill's and EXAONE Deep's templates do); whitespace at the start of each part
    is dropped. A text that never opens thinking is all answer.
    """

    def __init__(self, *, opened: bool, markers: ThinkMarkers = DEFAULT_MARKERS) -> None:
        self.state = "reasoning_lead" if opened else "start"
        self._held = ""
        self.open, self.close = markers.open, markers.close

    def feed(self, piece: str) -> tuple[str, str]:
        """(reasoning delta, answer delta) for the next piece of text."""
        reasoning: list[str] = []
        answer: list[str] = []
        text = self._held + piece
        self._held = ""
        while text:
            if self.state == "start":
                stripped = text.lstrip()
                if not stripped:
                    self._held = text
                    return "", ""
                if stripped.startswith(self.open):
                    self.state, text = "reasoning_lead", stripped[len(self.open) :]
                elif self.open.startswith(stripped):  # the tag may still be coming
                    self._held = text
                    return "", ""
                else:
                    self.state = "answer_lead"
            elif self.state in ("reasoning_lead", "answer_lead"):
                stripped = text.lstrip()
                if not stripped:
                    return "".join(reasoning), "".join(answer)
                self.state, text = self.state.removesuffix("_lead"), stripped
            elif self.state == "reasoning":
                head, sep, tail = text.partition(self.close)
                if not sep:  # hold a tail that may be the start of the close marker
                    keep = next((k for k in range(min(len(head), len(self.close) - 1), 0, -1)
                                 if self.close.startswith(head[-k:])), 0)  # fmt: skip
                    reasoning.append(head[: len(head) - keep])
                    self._held = head[len(head) - keep :]
                    break
                reasoning.append(head)
                self.state, text = "answer_lead", tail
            else:
                answer.append(text)
                break
        return "".join(reasoning), "".join(answer)

    def flush(self) -> tuple[str, str]:
        """What was held back at the end (a lone, unfinished start)."""
        held, self._held = self._held, ""
        if self.state == "reasoning":
            return held, ""
        return ("", held.lstrip()) if self.state == "start" and held.strip() else ("", "")
