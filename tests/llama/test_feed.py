"""The engine fed by a Feed (a server's): requests taken as they come, a cancelled one dropped at
once, a cut ending every running and queued sample with finish "shutdown"; on the tiny model."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator

import pytest

from edgekv.llama import runner as runtime
from edgekv.llama.batch import Engine
from edgekv.llama.feed import Feed
from edgekv.llama.generation import Finished, Forcing, Request
from edgekv.llama.sampling import Sampling
from edgekv.plan.memory import RunConfig
from tests.ggufgen import tiny_config, write_tiny_gguf

LONG = Forcing(budget_tokens=3000, ignore_eog=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime.LoadedModel]:
    path = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny_config(), outtype="F16")
    with runtime.LoadedModel(path) as m:
        yield m


def serve(model: runtime.LoadedModel, feed: Feed, done: dict[Hashable, Finished]) -> tuple[Engine, threading.Thread]:
    r = model.runner(RunConfig(n_ctx=2 * 4096, n_seq=2), n_threads=1)
    engine = Engine(r, sampling=Sampling(), forcing=Forcing(budget_tokens=8))

    def run() -> None:
        try:
            engine.run(feed, on_finished=lambda f: done.__setitem__(f.key, f))
        finally:
            r.close()

    t = threading.Thread(target=run)
    t.start()
    return engine, t


def wait(ok: Callable[[], bool], timeout: float = 10) -> None:
    t0 = time.monotonic()
    while not ok() and time.monotonic() - t0 < timeout:
        time.sleep(0.01)


def test_requests_come_and_go_and_a_cancel_frees_the_slots(model: runtime.LoadedModel) -> None:
    feed, done = Feed(), dict[Hashable, Finished]()
    engine, t = serve(model, feed, done)
    feed.put(Request("short", (1, 5, 6), (1,), Forcing(budget_tokens=8, ignore_eog=True)))
    wait(lambda: "short" in done)
    assert [(len(s.tokens), s.finish) for s in done["short"].samples] == [(8, "length")]
    feed.put(Request("long", (1, 5, 6), (1, 2), LONG))
    wait(lambda: engine.slots_busy == 2)
    feed.cancel("long")
    wait(lambda: engine.slots_busy == 0, timeout=2)
    assert engine.slots_busy == 0 and engine.n_cancelled == 1 and "long" not in done
    feed.close()
    t.join(10)
    assert not t.is_alive()


def test_a_cut_ends_running_and_queued_samples_with_shutdown(model: runtime.LoadedModel) -> None:
    feed, done = Feed(), dict[Hashable, Finished]()
    engine, t = serve(model, feed, done)
    feed.put(Request("running", (1, 5, 6), (1, 2), LONG))
    wait(lambda: engine.slots_busy == 2)
    feed.put(Request("queued", (1, 7), (3,), LONG))
    feed.close(cut=True)
    t.join(10)
    assert not t.is_alive()
    assert [s.finish for s in done["running"].samples] == ["shutdown", "shutdown"]
    assert all(len(s.tokens) > 0 for s in done["running"].samples)  # what was written so far is kept
    assert [(s.finish, s.tokens) for s in done["queued"].samples] == [("shutdown", ())]
