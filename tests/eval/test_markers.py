"""Thinking markers per model: parsing --think-markers, finding the pair (catalog, chat template,
default), and what eval does with it: the close marker budget forcing injects, the answer it reads.

Every expected value is written here by hand (the markers the model cards give, the answers a reader
of the sample text would take), not computed by the code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekv.errors import BadArgument
from edgekv.eval.answers import Kind
from edgekv.eval.datasets import Problem
from edgekv.eval.run import EvalConfig, config_dict, forcing_for, is_thinking_model, score
from edgekv.model.gguf_reader import read_spec
from edgekv.model.markers import DEFAULT_MARKERS, ThinkMarkers, markers_in_template, parse_markers
from edgekv.store.catalog import catalog_markers, load_catalog, resolve_markers

ROOT = Path(__file__).resolve().parents[2]
MAGISTRAL = ThinkMarkers("[THINK]", "[/THINK]", "catalog: Magistral-Small-2507")
EXAONE = ThinkMarkers("<thought>", "</thought>", "catalog: EXAONE-Deep-7.8B")
# EXAONE Deep's template as its README gives it for llama.cpp (--chat-template)
EXAONE_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|endofturn|]\\n' }}"
    "{% endif %}{% set content = message['content'] %}{% if '</thought>' in content %}{% set content = "
    "content.split('</thought>')[-1].lstrip('\\n') %}{% endif %}{{ '[|' + message['role'] + '|]' + content }}"
    "{% if not message['role'] == 'user' %}{{ '[|endofturn|]' }}{% endif %}{% if not loop.last %}{{ '\\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '\\n[|assistant|]<thought>\\n' }}{% endif %}"
)


class Vocab:
    """Characters as tokens; ``specials`` are single tokens (ids from 900)."""

    def __init__(self, specials: tuple[str, ...], template: str = "") -> None:
        self.ids = {s: 900 + i for i, s in enumerate(specials)}
        self.template = template

    def token_id(self, text: str) -> int | None:
        return self.ids.get(text)

    def chat_template(self) -> str | None:
        return self.template

    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        out, i = [], 0
        while i < len(text):
            tag = next((t for t in self.ids if text.startswith(t, i)), None)
            out.append(self.ids[tag] if tag else ord(text[i]))
            i += len(tag) if tag else 1
        return out


def test_parse_markers_takes_open_comma_close() -> None:
    m = parse_markers(" [THINK] , [/THINK] ")
    assert (m.open, m.close, m.source) == ("[THINK]", "[/THINK]", "--think-markers")
    for bad, says in (("[THINK]", "OPEN,CLOSE"), (",</x>", "OPEN,CLOSE"), ("a,b,c", "OPEN,CLOSE"), ("x,x", "differ")):
        with pytest.raises(BadArgument, match=says):
            parse_markers(bad)


def test_chat_templates_name_their_pair() -> None:
    assert markers_in_template(EXAONE_TEMPLATE) == ThinkMarkers("<thought>", "</thought>", "chat template")
    qwen3 = "{%- if '</think>' in content %}{%- set content = content.split('</think>')[-1] %}{%- endif %}"
    assert markers_in_template(qwen3) == ThinkMarkers("<think>", "</think>", "chat template")
    assert markers_in_template("[SYSTEM_PROMPT]...[THINK]...[/THINK]...[/SYSTEM_PROMPT]").close == "[/THINK]"
    assert markers_in_template("<|im_start|>{{ m.content }}<|im_end|>") is None and markers_in_template(None) is None


def test_answer_is_read_after_the_models_close_marker() -> None:
    """Magistral thought 12 in a box, then answered 15 after [/THINK]: with its markers the answer is 15;
    read as a <think> model (no </think> in the text) the whole text's last box, 12, is taken."""
    problem = Problem("p", "What is 7 + 8?", "15")
    text = "[THINK]7 + 8 is \\boxed{12}? No, 7 + 8 = 15.[/THINK]\nThe sum is 15.\nAnswer: 15"
    assert score(problem, [text], MAGISTRAL) == (["15"], [True])
    assert score(problem, [text], DEFAULT_MARKERS) == (["12"], [False])
    # EXAONE Deep: the prompt opened <thought>, so the text has only the close marker
    exaone = "Let me try 3: \\boxed{3}. Hmm, 4.\n</thought>\n\nThe answer is 4.\nAnswer: 4"
    assert score(Problem("q", "2 + 2?", "4"), [exaone], EXAONE) == (["4"], [True])
    # nothing after the close marker: the whole text still answers
    assert score(Problem("r", "1 + 1?", "2"), ["\\boxed{2}</thought>\n"], EXAONE) == (["2"], [True])
    choice = Problem("c", "Pick.", "C", Kind.CHOICE, ("w", "x", "y", "z"))
    assert score(choice, ["[THINK]maybe \\boxed{A}[/THINK]\nAnswer: C"], MAGISTRAL) == (["C"], [True])


def test_budget_forcing_injects_the_models_close_marker() -> None:
    cfg = EvalConfig(model_path="m.gguf", budget_tokens=100, reserve_tokens=10, force_length=True)
    cue = "\n\n**Final Answer**\n\\boxed{"
    magistral = Vocab(("[THINK]", "[/THINK]"), template="...[THINK]...")
    assert is_thinking_model(magistral, MAGISTRAL)  # type: ignore[arg-type]
    f = forcing_for(magistral, cfg, thinking=True, markers=MAGISTRAL)  # type: ignore[arg-type]
    assert f.cue_tokens == (ord("\n"), 901, *map(ord, cue)) and f.end_think_token == 901  # [/THINK] is id 901
    # </thought> as plain text (several tokens): written out at the budget, not watched for
    exaone = Vocab((), template=EXAONE_TEMPLATE)
    assert is_thinking_model(exaone, EXAONE)  # type: ignore[arg-type]
    g = forcing_for(exaone, cfg, thinking=True, markers=EXAONE)  # type: ignore[arg-type]
    assert g.cue_tokens == tuple(map(ord, "\n</thought>" + cue)) and g.end_think_token is None
    # a template naming <think> without the single tokens is no thinking model (the pair came from nowhere)
    assert not is_thinking_model(Vocab((), "<think>"), ThinkMarkers("<think>", "</think>", "chat template"))  # type: ignore[arg-type]


def test_results_record_a_pair_other_than_think() -> None:
    class Spec:
        file_type, weights_bytes, n_params = "Q4_K_M", 1, 1

    cfg = EvalConfig(model_path="m.gguf")
    plain = config_dict(cfg, Spec(), thinking=True, n_ctx=256, memory={})
    assert "think_markers" not in plain  # <think> files keep the ids they had
    assert config_dict(cfg, Spec(), thinking=True, n_ctx=256, memory={}, markers=MAGISTRAL)["think_markers"] == [
        "[THINK]", "[/THINK]",
    ]  # fmt: skip


def test_the_catalog_names_the_pair_of_a_gguf(tmp_path: Path) -> None:
    """By the published file name; else by shape and bytes (a sparse GGUF of EXAONE Deep 2.4B's shape at
    Q4_K_M under another name, read back by edgekv's header reader); else the template, else <think>."""
    pytest.importorskip("gguf")
    from tests.ggufgen import write_sparse_gguf

    models = load_catalog(ROOT / "models")
    anything = read_spec(write_sparse_gguf(tmp_path / "t.gguf", _tiny_qwen3(), quant="Q8_0"))
    m = catalog_markers("mistralai_Magistral-Small-2507-Q4_K_M.gguf", anything, models)
    assert m is not None and (m.open, m.close) == ("[THINK]", "[/THINK]")
    exaone = next(x for x in models if x.name == "EXAONE-Deep-2.4B")
    spec = read_spec(write_sparse_gguf(tmp_path / "renamed.gguf", exaone.config, quant="Q4_K_M"))
    found = catalog_markers("renamed.gguf", spec, models)
    assert found is not None and (found.open, found.close, found.source) == (
        "<thought>", "</thought>", "catalog: EXAONE-Deep-2.4B",
    )  # fmt: skip
    assert catalog_markers("t.gguf", anything, models) is None
    assert resolve_markers(None, "t.gguf", anything, EXAONE_TEMPLATE).close == "</thought>"
    assert resolve_markers(None, "t.gguf", anything, "plain") == DEFAULT_MARKERS
    assert resolve_markers(MAGISTRAL, "renamed.gguf", spec, None) == MAGISTRAL  # --think-markers wins


def _tiny_qwen3() -> dict[str, object]:
    from tests.ggufgen import tiny_config

    return tiny_config("Qwen3ForCausalLM")


def test_run_chat_keeps_what_follows_the_close_marker_in_the_history() -> None:
    """``edgekv run --chat``'s history: an EXAONE Deep turn (its prompt opened <thought>) keeps its answer."""
    pytest.importorskip("llama_cpp")
    from edgekv.llama.session import strip_thinking

    assert strip_thinking("2 + 2 = 4.\n</thought>\n\nIt is 4.", EXAONE) == "It is 4."
    assert strip_thinking("<think>\nhm\n</think>\n\nIt is 4.") == "It is 4."
    assert strip_thinking("still thinking, cut at the budget", EXAONE) == "still thinking, cut at the budget"
