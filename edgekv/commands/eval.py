"""``edgekv eval``: reasoning accuracy of one configuration, measured the paper's way on llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekv.commands.options import given, verbosity
from edgekv.llama.sampling import SamplerPlace
from edgekv.requests.bounded import bounded, bounded_float
from edgekv.requests.eval import DEFAULT_BUDGET, DEFAULT_NGL, DEFAULT_SAMPLES
from edgekv.requests.options import LAYERS, TEMPERATURE, sampler_option, threads_option


@click.command("eval")
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False), help="Model, KV, G and --vram from a plan.")
@click.option("--dataset", required=True, help="synth, gsm8k, math500, aime24, aime25, gpqa, or a JSONL/JSON/CSV file.")
@click.option("--question-field", default="question", show_default=True, help="A local file's question field.")
@click.option("--answer-field", default="answer", show_default=True, help="A local file's reference-answer field.")
@click.option("--id-field", help="A local file's problem-id field (default: id if rows have one, else row numbers).")
@click.option("--limit", type=bounded("--limit"), help="Only the first N problems.")
@click.option("--budget", default=DEFAULT_BUDGET, show_default=True,
              help="Thinking budget T per sample (tokens: 512, 8k).")  # fmt: skip
@click.option("--reserve", default=64, show_default=True, type=bounded("--reserve", lo=1),
              help="Answer tokens after the cue.")  # fmt: skip
@click.option("--samples", default=DEFAULT_SAMPLES, show_default=True, type=bounded("--samples"),
              help="Samples G per problem.")  # fmt: skip
@click.option("--kv", metavar="TYPE", help="K and V cache type (f16, q8_0, q4_0).  [default: q8_0]")
@click.option("--type-k", "type_k", metavar="TYPE", help="K cache type (overrides --kv).")
@click.option("--type-v", "type_v", metavar="TYPE", help="V cache type (overrides --kv).")
@click.option("--vram", metavar="SIZE", help="Memory cap: 8G. Slots are as many as fit it.")
@click.option("--slots", type=bounded("--slots"), help="Sequences decoded together (default: as many as fit).")
@sampler_option
@click.option("--temperature", default=0.6, show_default=True, type=TEMPERATURE, help="0: greedy.")
@click.option("--top-p", default=0.95, show_default=True, type=bounded_float("--top-p"))
@click.option("--top-k", default=20, show_default=True, type=bounded("--top-k"))
@click.option("--seed", default=0, show_default=True, type=bounded("--seed"),
              help="Each sample's seed is a hash of this, the problem's id and the sample's index: a problem gets "
              "the same samples wherever it stands in the dataset.")  # fmt: skip
@click.option("--force-length", is_flag=True, help="Replace an early end of thinking with 'Wait' (the paper's way).")
@click.option("--thinking/--no-thinking", default=None, help="Default: detected from the vocabulary and template.")
@click.option("--think-markers", metavar="OPEN,CLOSE",
              help="The model's thinking markers, e.g. '[THINK],[/THINK]' (default: its catalog entry's, else a known "
              "pair its chat template names, else <think>,</think>).")  # fmt: skip
@click.option("--ngl", default=DEFAULT_NGL, show_default=True, type=LAYERS,
              help="Layers on the GPU (-1: all).")  # fmt: skip
@threads_option()
@click.option("--out", type=click.Path(dir_okay=False), help="Append results (JSONL); a rerun resumes it.  [default: "
              "DATA/results/MODEL--DATASET.jsonl, DATA: $EDGEKV_HOME, else $XDG_DATA_HOME/edgekv or "
              "~/.local/share/edgekv]")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def command(
    ctx: click.Context, /, model: str | None, plan_path: str | None, dataset: str, question_field: str,
    answer_field: str, id_field: str | None, limit: int | None, budget: str, reserve: int, samples: int,
    kv: str | None, type_k: str | None, type_v: str | None, vram: str | None, slots: int | None,
    sampler: SamplerPlace, temperature: float, top_p: float, top_k: int, seed: int, force_length: bool,
    thinking: bool | None, think_markers: str | None, ngl: int, threads: int | None, out: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Measure a configuration's reasoning accuracy: G samples per problem under a token budget.

    At the budget the end of thinking (the model's close marker: </think>, [/THINK], </thought>)
    and the cue "**Final Answer**" + "\\boxed{" are injected and the answer decodes within --reserve
    tokens; the answer is read after the close marker. Reports pass@1, maj@k and pass@k (k = 1..G)
    with 95% intervals, tokens per sample and the fraction cut at the budget. Samples are seeded by
    --seed, the problem's id and the sample's index, not by the problem's position: a reordered or
    filtered dataset samples a problem the same way (docs/eval.md).

    \b
    Examples:
      edgekv eval Qwen3-1.7B-Q8_0.gguf --dataset aime25 --budget 8k --samples 8 --kv q8_0 --vram 8G
      edgekv eval --plan plan.json --dataset math500 --limit 100 --out results.jsonl
      edgekv eval model.gguf --dataset synth --limit 50 --budget 512 --temperature 0 --json
    """
    from edgekv.eval.datasets import load_problems
    from edgekv.eval.run import evaluate
    from edgekv.report import common as rcommon
    from edgekv.report import eval as reval
    from edgekv.report.progress import EvalBar
    from edgekv.requests.eval import EvalRequest, default_out

    request = EvalRequest(
        model=model, dataset=dataset, plan_path=plan_path, budget=budget if given(ctx, "budget") else None,
        reserve=reserve, samples=samples if given(ctx, "samples") else None, kv=kv, type_k=type_k, type_v=type_v,
        vram=vram, slots=slots, sampler=sampler, temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
        force_length=force_length, thinking=thinking, ngl=ngl if given(ctx, "ngl") else None, threads=threads,
        think_markers=think_markers,
    )  # fmt: skip
    config = request.config()
    problems = load_problems(dataset, limit=limit, seed=seed, question_field=question_field,
                             answer_field=answer_field, id_field=id_field)  # fmt: skip
    path = Path(out) if out else default_out(config.model_path, dataset)
    if not out:
        path.parent.mkdir(parents=True, exist_ok=True)
    show = verbosity(ctx) >= 0

    def started(n_resumed: int, n_problems: int) -> None:  # the file was read and the pre-flight passed
        if show:
            there = f" ({n_resumed} of {n_problems} problems there already)" if n_resumed else ""
            click.echo(f"eval: results go to {path}{there}", err=True)

    with EvalBar(enabled=show) as progress:
        result = evaluate(config, problems, out=path, progress=progress, on_start=started)
    if as_json:
        click.echo(json.dumps(reval.eval_dict(result), indent=2))
    else:
        rcommon.console().print(reval.eval_table(result))
    if show:
        n = len(result.problems)
        click.echo(f"eval: results kept in {path} ({n} problem{'s' if n != 1 else ''}; a rerun resumes it)", err=True)
