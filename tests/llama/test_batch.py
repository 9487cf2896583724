"""edgekv.llama.batch on real llama.cpp (CPU) with gemma-3-270m: budget forcing, seeds, batching."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from pathlib import Path

import pytest

from edgekv.errors import KvConfigError
from edgekv.eval.run import FINAL_ANSWER_CUE, WAIT
from edgekv.llama import runner as runtime
from edgekv.llama import session
from edgekv.llama.batch import Engine
from edgekv.llama.generation import EngineStats, Finished, Forcing, Request, Sample
from edgekv.llama.sampling import SamplerPlace, Sampling
from edgekv.plan.memory import RunConfig
from edgekv.units import MIB

THREADS = 1  # robust on a busy 2-core runner
QUESTIONS = ("What is 2+3?", "Name a primary color.", "What is 7 times 8?")


@pytest.fixture(scope="module")
def model(gemma_gguf: Path) -> Iterator[runtime.LoadedModel]:
    with runtime.LoadedModel(gemma_gguf) as m:
        yield m


def prompts(model: runtime.LoadedModel) -> list[tuple[int, ...]]:
    return [tuple(model.tokenize(model.apply_chat_template([{"role": "user", "content": q}]))) for q in QUESTIONS]


def run(
    model: runtime.LoadedModel,
    requests: list[Request],
    *,
    slots: int,
    forcing: Forcing,
    sampling: Sampling,
    sampler: SamplerPlace = SamplerPlace.HOST,
    stats: list[EngineStats] | None = None,
) -> dict[Hashable, Finished]:
    done: dict[Hashable, Finished] = {}
    with model.runner(RunConfig(n_ctx=512 * slots, n_seq=slots), n_threads=THREADS) as r:
        engine = Engine(r, sampling=sampling, forcing=forcing, sampler=sampler)
        st = engine.run(requests, on_finished=lambda f: done.__setitem__(f.key, f))
    if stats is not None:
        stats.append(st)
    return done


GREEDY = Sampling(greedy=True)


def test_cue_tokens_injected_exactly_at_the_budget(model: runtime.LoadedModel) -> None:
    cue = tuple(model.tokenize(FINAL_ANSWER_CUE, add_special=False, parse_special=True))
    # the exact tokens of "\n\n**Final Answer**\n\\boxed{" in gemma-3's vocabulary
    assert cue == (108, 1018, 17667, 25685, 1018, 107, 236785, 57296, 236782)
    budget = 6
    forcing = Forcing(budget_tokens=budget, reserve_tokens=5, cue_tokens=cue, ignore_eog=True)
    prompt = prompts(model)[0]
    done = run(model, [Request("q", prompt, (1,))], slots=1, forcing=forcing, sampling=GREEDY)
    s = done["q"].samples[0]
    assert s.cut
    assert s.injected == ((budget, cue),)
    assert s.tokens[budget : budget + len(cue)] == cue
    assert "**Final Answer**\n\\boxed{" in s.text
    assert s.n_sampled == len(s.tokens) - len(cue)
    assert 1 <= s.n_sampled - budget <= 5 and s.finish in ("boxed", "reserve")


def test_no_cue_stops_at_the_budget(model: runtime.LoadedModel) -> None:
    done = run(
        model,
        [Request("q", prompts(model)[0], (1,))],
        slots=1,
        forcing=Forcing(budget_tokens=4, ignore_eog=True),
        sampling=GREEDY,
    )
    s = done["q"].samples[0]
    assert (s.finish, s.cut, s.n_sampled, s.injected) == ("length", True, 4, ())


def test_end_of_thinking_gets_the_answer_cue_and_force_length_waits(model: runtime.LoadedModel) -> None:
    prompt = prompts(model)[0]
    free = run(model, [Request("q", prompt, (1,))], slots=1, forcing=Forcing(budget_tokens=3, ignore_eog=True),
               sampling=GREEDY)  # fmt: skip
    first = free["q"].samples[0].tokens[0]  # stands in for </think>: greedy writes it first
    think_cue, answer_cue = (7, 7, 7), (9, 9)
    forcing = Forcing(budget_tokens=5, reserve_tokens=2, cue_tokens=think_cue, answer_cue_tokens=answer_cue,
                      end_think_token=first, stop_when_boxed=False, ignore_eog=True)  # fmt: skip
    s = run(model, [Request("q", prompt, (1,))], slots=1, forcing=forcing, sampling=GREEDY)["q"].samples[0]
    assert s.tokens[0] == first and s.injected == ((5, answer_cue),)  # thinking closed before the budget
    wait = tuple(model.tokenize(WAIT, add_special=False))
    forced = Forcing(budget_tokens=5, reserve_tokens=2, cue_tokens=think_cue, end_think_token=first,
                     wait_tokens=wait, stop_when_boxed=False, ignore_eog=True)  # fmt: skip
    s = run(model, [Request("q", prompt, (1,))], slots=1, forcing=forced, sampling=GREEDY)["q"].samples[0]
    assert s.injected[0] == (0, wait)  # the early end of thinking became "Wait"
    assert s.injected[-1][1] == think_cue and s.cut


def test_same_seed_same_samples_other_seed_differs(model: runtime.LoadedModel) -> None:
    hot = Sampling(temperature=1.0, top_p=1.0, top_k=40)
    forcing = Forcing(budget_tokens=24, ignore_eog=True)
    prompt = prompts(model)[1]
    a = run(model, [Request("q", prompt, (11, 12, 11))], slots=3, forcing=forcing, sampling=hot)["q"].samples
    b = run(model, [Request("q", prompt, (11, 12, 13))], slots=2, forcing=forcing, sampling=hot)["q"].samples
    assert a[0].tokens == a[2].tokens == b[0].tokens  # seed 11 in different slots and batches
    assert a[1].tokens == b[1].tokens
    assert a[0].tokens != a[1].tokens


def test_host_cut_gives_the_full_chains_tokens(model: runtime.LoadedModel) -> None:
    """``host`` (the default): the numpy top-k cut of all rows, then each chain on its k candidates:
    the same tokens as llama.cpp's chain over the whole 262k-logit row, refills and moves included."""
    cut = matches_full(model, Sampling(temperature=0.8, top_p=0.95, top_k=20), SamplerPlace.HOST, seeds=(5, 6))
    assert len(set(sampled(cut["long"].samples[0]))) > 3  # really sampled, not one token repeated
    matches_full(model, Sampling(temperature=1.5, top_p=1.0, top_k=40, min_p=0.05), SamplerPlace.HOST, seeds=(8, 9))
    matches_full(model, GREEDY, SamplerPlace.HOST, seeds=(1, 2))


def sampled(s: Sample) -> list[int]:
    """The tokens the model sampled (what budget forcing injected left out)."""
    skip = {off + i for off, toks in s.injected for i in range(len(toks))}
    return [t for i, t in enumerate(s.tokens) if i not in skip]


RESERVE = 6
OWN = Forcing(budget_tokens=2)  # the engine's forcing where every request brings its own
SHORT, MID, LONG = 4, 8, 40  # budgets: every sample of SHORT/MID ends before any of LONG can


def staggered(model: runtime.LoadedModel, seeds: tuple[int, int]) -> list[Request]:
    """Requests whose samples end at set steps whatever the model writes, on 4 slots.

    An end of generation is just a token (``ignore_eog``) and a closed ``\boxed{}`` does not stop a
    sample, so every sample of budget b ends exactly b + RESERVE steps after it starts: "short"
    (2 samples) takes slots 0-1 and ends at step 10, "long" takes slots 2-3 and ends at step 46,
    "mid" waits, refills slot 0 at step 10 and ends at step 24. Then nothing waits, and "long"
    moves down from slots 2-3: one move when "short" leaves slot 1 free, one when "mid" leaves 0.
    """
    cue = tuple(model.tokenize(FINAL_ANSWER_CUE, add_special=False, parse_special=True))
    p = prompts(model)

    def forcing(budget: int) -> Forcing:
        return Forcing(budget_tokens=budget, reserve_tokens=RESERVE, cue_tokens=cue, ignore_eog=True,
                       stop_when_boxed=False)  # fmt: skip

    return [
        Request("short", p[0], seeds, forcing(SHORT)),
        Request("long", p[1], seeds, forcing(LONG)),
        Request("mid", p[2], seeds[:1], forcing(MID)),
    ]


def matches_full(
    model: runtime.LoadedModel, sampling: Sampling, place: SamplerPlace, *, seeds: tuple[int, int]
) -> dict[Hashable, Finished]:
    """Every request's samples on ``place`` are those of llama.cpp's chain over the whole row, with
    slots refilled and moved (by construction: :func:`staggered`); returns ``place``'s results."""
    reqs = staggered(model, seeds)
    stats: list[EngineStats] = []
    full = run(model, reqs, slots=4, forcing=OWN, sampling=sampling, sampler=SamplerPlace.FULL, stats=stats)
    dev = run(model, reqs, slots=4, forcing=OWN, sampling=sampling, sampler=place, stats=stats)
    for st in stats:
        assert st.max_live == 4 and st.n_moves == 2  # the two "long" samples moved down from slots 2-3
    assert stats[1].sampler == place
    for r in reqs:
        assert [s.tokens for s in dev[r.key].samples] == [s.tokens for s in full[r.key].samples]
        assert all(s.cut for s in dev[r.key].samples)
    return dev


def test_backend_sampling_greedy_matches_the_host(model: runtime.LoadedModel) -> None:
    """llama.cpp's backend sampling (the chain in the decode graph) picks the host's argmax tokens,
    with slots refilled and moved (each move re-attaches a cloned chain)."""
    matches_full(model, GREEDY, SamplerPlace.BACKEND, seeds=(1, 2))


def test_backend_sampling_seeds_are_the_samples_own(model: runtime.LoadedModel) -> None:
    """On the device path a seed gives the same tokens whatever shares the batch, moves included."""
    hot = Sampling(temperature=1.0, top_p=0.95, top_k=40)
    forcing = Forcing(budget_tokens=20, ignore_eog=True)
    p = prompts(model)
    busy = run(model, [Request("a", p[0], (3,)), Request("q", p[1], (11, 12, 11))], slots=3, forcing=forcing,
               sampling=hot, sampler=SamplerPlace.BACKEND)  # fmt: skip
    alone = run(
        model, [Request("q", p[1], (11,))], slots=1, forcing=forcing, sampling=hot, sampler=SamplerPlace.BACKEND
    )
    q = busy["q"].samples
    assert q[0].tokens == q[2].tokens == alone["q"].samples[0].tokens
    assert q[0].tokens != q[1].tokens and len(set(q[0].tokens)) > 3


def test_split_sampling_gives_the_hosts_tokens_for_a_seed(model: runtime.LoadedModel) -> None:
    """``split``: top-k in the decode graph, the rest of each sample's chain on the host over the k
    candidates: the same tokens as the whole chain on the host, with slots refilled and moved."""
    split = matches_full(model, Sampling(temperature=0.8, top_p=0.95, top_k=20), SamplerPlace.SPLIT, seeds=(5, 6))
    assert len(set(sampled(split["long"].samples[0]))) > 3  # really sampled, not one token repeated


def test_device_sampling_compute_buffer_is_predicted(gemma_gguf: Path, model: runtime.LoadedModel) -> None:
    """With samplers in the decode graph llama.cpp re-plans its compute buffer (a padded copy of the
    logits); the memory model's compute for ``device_sampling`` is what llama.cpp logs then, and
    without it what llama.cpp logs at load."""
    prompt = prompts(model)[0]
    for n_ctx, place in ((1024, SamplerPlace.SPLIT), (256, SamplerPlace.SPLIT), (1024, SamplerPlace.HOST)):
        device = place.on_device
        cfg = RunConfig(n_ctx=n_ctx, n_seq=n_ctx // 512 or 1, device_sampling=device)  # 256: under n_ubatch
        prepared = session.prepare(gemma_gguf, cfg, vram_bytes=None)
        with session.open_run(prepared, n_threads=THREADS) as s:
            engine = Engine(s.runner, sampling=Sampling(), forcing=Forcing(budget_tokens=2), sampler=place)
            engine.run([Request("q", prompt, (1, 2))], on_finished=lambda _f: None)
            measured = session.measure(s).compute
        assert abs(measured - prepared.footprint.compute) <= 0.01 * MIB, (place, measured, prepared.footprint.compute)
        if n_ctx == 1024 and device:
            assert measured > 1000 * MIB  # gemma-3's 262k vocabulary: 514.50 MiB at load, twice that attached


def test_measure_keeps_a_shared_models_weights(gemma_gguf: Path, model: runtime.LoadedModel) -> None:
    """A runner of a loaded model (as eval opens one) logs no weights itself; measure still has them."""
    prepared = session.prepare(gemma_gguf, RunConfig(n_ctx=512), vram_bytes=None)
    with session.Session(prepared, model.runner(prepared.cfg, n_threads=THREADS), None) as s:
        measured = session.measure(s)
    assert measured.model == model.buffers.model_host > 200 * MIB  # gemma-3-270m Q4_K_M: ~240 MiB of weights


def test_sampler_threads_setting(model: runtime.LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    req = [Request("q", prompts(model)[0], (1, 2))]
    monkeypatch.setenv("EDGEKV_SAMPLER_THREADS", "2")
    two = run(model, req, slots=2, forcing=Forcing(budget_tokens=3), sampling=GREEDY, sampler=SamplerPlace.FULL)
    assert len(two["q"].samples) == 2
    monkeypatch.setenv("EDGEKV_SAMPLER_THREADS", "many")
    with pytest.raises(KvConfigError, match="EDGEKV_SAMPLER_THREADS='many' is not a thread count"):
        run(model, req, slots=2, forcing=Forcing(budget_tokens=3), sampling=GREEDY, sampler=SamplerPlace.FULL)


def test_split_needs_a_top_k_and_host_without_one_runs_the_full_chain(model: runtime.LoadedModel) -> None:
    req, forcing, no_k = [Request("q", prompts(model)[0], (1,))], Forcing(budget_tokens=2), Sampling(top_k=0)
    with pytest.raises(KvConfigError, match="top_k > 0"):
        run(model, req, slots=1, forcing=forcing, sampling=no_k, sampler=SamplerPlace.SPLIT)
    stats: list[EngineStats] = []
    run(model, req, slots=1, forcing=forcing, sampling=no_k, sampler=SamplerPlace.HOST, stats=stats)
    assert stats[0].sampler == "full"  # the place recorded, as results files carry it


def test_batched_problems_match_one_at_a_time(model: runtime.LoadedModel) -> None:
    reqs = staggered(model, (1, 2))
    stats: list[EngineStats] = []
    together = run(model, reqs, slots=4, forcing=OWN, sampling=GREEDY, stats=stats)  # 5 samples, 4 slots
    assert stats[0].max_live == 4 and stats[0].n_moves == 2  # a slot refilled, and "long" moved down to stay dense
    for req in reqs:
        alone = run(model, [req], slots=1, forcing=OWN, sampling=GREEDY)
        assert [s.tokens for s in together[req.key].samples] == [s.tokens for s in alone[req.key].samples]


def test_a_request_keeps_its_own_forcing(model: runtime.LoadedModel) -> None:
    """Per-request budgets: each sample is cut at its own request's budget, whatever the engine's."""
    reqs = staggered(model, (1, 2))
    done = run(model, reqs, slots=4, forcing=OWN, sampling=GREEDY)
    for req, budget in zip(reqs, (SHORT, LONG, MID), strict=True):
        for s in done[req.key].samples:
            assert s.cut and s.injected[0][0] == budget and len(sampled(s)) == budget + RESERVE
            assert s.finish == "reserve"
    with pytest.raises(KvConfigError, match="budget 600"):
        run(model, [Request("q", reqs[0].prompt, (1,), Forcing(budget_tokens=600))], slots=1,
            forcing=OWN, sampling=GREEDY)  # fmt: skip


def test_host_cut_in_parts_on_threads_gives_the_same_tokens(
    model: runtime.LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cut of 8 rows in two parts side by side (as on a GPU run) samples what the full chain does."""
    samp = Sampling(temperature=5.0, top_p=1.0, top_k=20)  # near-flat over 20: 8 seeds give 8 different samples
    req = [Request("q", prompts(model)[2], tuple(range(20, 28)))]
    forcing = Forcing(budget_tokens=10, ignore_eog=True)
    full = run(model, req, slots=8, forcing=forcing, sampling=samp, sampler=SamplerPlace.FULL)
    monkeypatch.setenv("EDGEKV_SAMPLER_THREADS", "2")
    parts = run(model, req, slots=8, forcing=forcing, sampling=samp, sampler=SamplerPlace.HOST)
    assert [s.tokens for s in parts["q"].samples] == [s.tokens for s in full["q"].samples]
    assert len({s.tokens for s in parts["q"].samples}) > 4  # eight seeds, really different samples


def test_a_runner_stops_keeping_llama_cpps_debug_lines_after_load(model: runtime.LoadedModel) -> None:
    """Decoding logs DEBUG lines (a re-planned graph here; on CUDA builds one every step): a long eval
    must not keep them all. What edgekv parses (buffer sizes, problems) is INFO or above."""
    with model.runner(RunConfig(n_ctx=512 * 4, n_seq=4), n_threads=THREADS) as r:
        before = r.log_lines()
        engine = Engine(r, sampling=GREEDY, forcing=Forcing(budget_tokens=8))
        engine.run([Request("q", prompts(model)[0], (1, 2, 3, 4))], on_finished=lambda _f: None)
        assert r.log_lines() == before
        assert r.current_buffers().compute == r.buffers.compute  # still read from the INFO lines
