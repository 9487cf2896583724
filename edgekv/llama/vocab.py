"""Tokenizer and chat template of a loaded llama.cpp model, shared by ``Runner`` and ``LoadedModel``."""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from typing import Any

from edgekv.errors import LlamaError
from edgekv.llama.log import LlamaLog
from edgekv.logconfig import get_logger

log = get_logger(__name__)


class Vocab:
    """Tokenizer and chat template of a loaded model (shared by :class:`Runner` and :class:`LoadedModel`)."""

    _lib: Any
    _vocab: Any
    _model: Any
    _log: LlamaLog
    _pieces: dict[int, bytes] | None = None  # token_bytes' cache, made on first use (per instance)

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 16
        buf = (self._lib.llama_token * n_max)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (self._lib.llama_token * n_max)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, n_max, add_special, parse_special)
        if n < 0:
            raise LlamaError("llama_tokenize failed", reason=self._log.last_problem())
        return list(buf[:n])

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        """A token's bytes (a piece of UTF-8, possibly partial); cached, since generation asks for
        the same pieces again and again."""
        pieces = self._pieces
        if pieces is None:
            pieces = self._pieces = {}
        key = token if special else ~token
        piece = pieces.get(key)
        if piece is None:
            piece = pieces[key] = self._token_bytes(token, special)
        return piece

    def _token_bytes(self, token: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        return buf.raw[: max(n, 0)]

    def detokenize(self, tokens: Sequence[int], *, special: bool = False) -> str:
        return b"".join(self.token_bytes(t, special=special) for t in tokens).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    def chat_template(self) -> str | None:
        raw = self._lib.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def apply_chat_template(self, messages: Sequence[Mapping[str, str]], *, add_assistant: bool = True) -> str:
        """Format a conversation with the model's template (llama.cpp's built-in matcher).

        A model without a template, or with one llama.cpp does not know, gets ChatML.
        """
        lib = self._lib
        arr = (lib.llama_chat_message * len(messages))()
        keep = []
        for i, msg in enumerate(messages):
            role, content = msg["role"].encode(), msg["content"].encode()
            keep += [role, content]
            arr[i].role, arr[i].content = role, content
        tmpl = lib.llama_model_chat_template(self._model, None)
        if not tmpl:
            if not getattr(self, "_warned_no_template", False):  # once per model, not once per prompt
                log.warning("the model file has no chat template; formatting the prompt as ChatML (--raw sends it "
                            "as is)")  # fmt: skip
                self._warned_no_template = True
            tmpl = b"chatml"
        for candidate in (tmpl, b"chatml"):
            size = 256 + sum(len(x) for x in keep) * 2
            buf = ctypes.create_string_buffer(size)
            n = lib.llama_chat_apply_template(candidate, arr, len(messages), add_assistant, buf, size)
            if n > size:
                buf = ctypes.create_string_buffer(n + 1)
                n = lib.llama_chat_apply_template(candidate, arr, len(messages), add_assistant, buf, n + 1)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            log.warning("llama.cpp does not know the model's chat template; formatting the prompt as ChatML")
        raise LlamaError("llama_chat_apply_template failed", reason=self._log.last_problem())

    def token_id(self, text: str) -> int | None:
        """The id of a special/added token spelled ``text`` (``<think>``), or None if the vocab has none."""
        ids = self.tokenize(text, add_special=False, parse_special=True)
        return ids[0] if len(ids) == 1 else None
