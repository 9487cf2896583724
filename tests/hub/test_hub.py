"""edgekv.hub.download against the fake hub (tests/fakes/hub.py): real HTTP, real huggingface_hub, no mocks.

The conftest's autouse fixture gives every test its own HF_HOME, so each test starts with an
empty huggingface_hub cache; hub.py reads HF_HOME at call time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import gguf
import pytest
from huggingface_hub import constants

from edgekv.errors import DiskFull, HubError, ModelFileNotFound, SpecError
from edgekv.hub import download as H
from edgekv.hub import listing as hub_listing
from edgekv.hub import names as hub_names
from edgekv.hub import remote
from edgekv.model.gguf_reader import read_header, read_spec, spec_from_header
from tests.fakes.hub import GATED, SPLIT, TINY, FakeHub, dead_endpoint

Q4 = "Tiny-Q4_K_M.gguf"
Q8 = "Tiny-Q8_0.gguf"
SHARDS = [f"Q4_K_M/Tiny-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]


def served(hub: FakeHub, repo: str, path: str, rev: str = "main") -> bytes:
    repo_ = hub.repos[repo]
    return repo_.trees[repo_.resolve(rev) or ""][path]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_root(repo: str) -> Path:
    return Path(os.environ["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}"


# --- choosing a file by quant name ------------------------------------------------------------

BARTOWSKI = ["Qwen_Qwen3-8B-Q4_K_M.gguf", "Qwen_Qwen3-8B-Q4_K_S.gguf", "Qwen_Qwen3-8B-Q4_K_L.gguf",
             "Qwen_Qwen3-8B-Q4_0.gguf", "Qwen_Qwen3-8B-Q4_0_4_4.gguf", "Qwen_Qwen3-8B-IQ4_XS.gguf",
             "Qwen_Qwen3-8B-bf16.gguf", "Qwen_Qwen3-8B-Q8_0.gguf", "Qwen_Qwen3-8B-Q3_K_XL.gguf"]  # fmt: skip


def files(*names: str) -> list[hub_names.HubFile]:
    return [hub_names.HubFile(n, 100, None, hub_names.quant_of(n)) for n in names]


@pytest.mark.parametrize(
    ("filename", "quant"),
    [
        ("Qwen3-8B-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen3-8b-q4_k_m.gguf", "Q4_K_M"),
        ("Qwen_Qwen3-8B-Q4_K_M.gguf", "Q4_K_M"),
        ("llama-2-7b.Q4_K_M.gguf", "Q4_K_M"),
        ("Q4_K_M/Qwen3-8B-Q4_K_M-00001-of-00003.gguf", "Q4_K_M"),
        ("Q8_0/model-00002-of-00002.gguf", "Q8_0"),  # quant only in the folder
        ("Qwen3-8B-Q4_K_S.gguf", "Q4_K_S"),
        ("Qwen3-8B-Q4_0_4_4.gguf", "Q4_0_4_4"),
        ("Qwen3-8B-Q4_0.gguf", "Q4_0"),
        ("Qwen3-8B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
        ("Qwen3-8B.i1-IQ3_XXS.gguf", "IQ3_XXS"),
        ("Qwen3-8B-bf16.gguf", "BF16"),
        ("Qwen3-8B-fp16.gguf", "F16"),
        ("Qwen3-8B-BF16-Q8_0.gguf", "Q8_0"),  # the last quant named wins
        ("Qwen3-8B.gguf", None),
    ],
)
def test_quant_of_reads_hub_naming(filename: str, quant: str | None) -> None:
    assert hub_names.quant_of(filename) == quant


@pytest.mark.parametrize(
    ("asked", "expected"),
    [("Q4_K_M", "Qwen_Qwen3-8B-Q4_K_M.gguf"), ("q4-k-s", "Qwen_Qwen3-8B-Q4_K_S.gguf"),
     ("Q4_0", "Qwen_Qwen3-8B-Q4_0.gguf"), ("Q4_0_4_4", "Qwen_Qwen3-8B-Q4_0_4_4.gguf"),
     ("BF16", "Qwen_Qwen3-8B-bf16.gguf"), ("Q3_K_XL", "Qwen_Qwen3-8B-Q3_K_XL.gguf")],
)  # fmt: skip
def test_choose_never_confuses_neighbour_quants(asked: str, expected: str) -> None:
    assert [f.filename for f in hub_names.choose_files(files(*BARTOWSKI), quant=asked)] == [expected]


def test_choose_takes_every_shard_in_order_and_unsloth_ud_prefix() -> None:
    names = [f"Q4_K_M/M-Q4_K_M-0000{i}-of-00003.gguf" for i in (3, 1, 2)] + ["M-UD-Q4_K_XL.gguf"]
    assert [f.shard for f in hub_names.choose_files(files(*names), quant="Q4_K_M")] == [(1, 3), (2, 3), (3, 3)]
    assert [f.filename for f in hub_names.choose_files(files(*names), quant="Q4_K_XL")] == ["M-UD-Q4_K_XL.gguf"]
    shards = hub_names.choose_files(files(*names), filename="Q4_K_M/M-Q4_K_M-00002-of-00003.gguf")
    assert len(shards) == 3  # any shard's name fetches the whole GGUF
    with pytest.raises(ModelFileNotFound, match="2 of 3 shards"):
        hub_names.choose_files(files(*names[:2]), quant="Q4_K_M")


def test_choose_missing_quant_lists_what_there_is() -> None:
    with pytest.raises(ModelFileNotFound) as e:
        hub_names.choose_files(files(*BARTOWSKI, "mmproj-Qwen3-8B-F16.gguf"), quant="Q5_K_M", repo_id="org/r")
    msg = str(e.value)
    assert msg.startswith("org/r has no Q5_K_M GGUF")
    assert "BF16, Q8_0, Q4_K_M, Q4_K_S, Q4_0, IQ4_XS" in msg and "Q4_0_4_4" in msg
    assert " F16" not in msg  # the mmproj file is no model


def test_choose_ambiguous_or_unspecified_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="several Q8_0 files"):
        hub_names.choose_files(files("a-Q8_0.gguf", "b-Q8_0.gguf"), quant="Q8_0")
    with pytest.raises(SpecError, match="a quant or a file"):
        hub_names.choose_files(files("a-Q8_0.gguf"))


def test_split_keys_match_gguf_py() -> None:
    assert remote.SPLIT_NO == gguf.Keys.Split.LLM_KV_SPLIT_NO
    assert remote.SPLIT_COUNT == gguf.Keys.Split.LLM_KV_SPLIT_COUNT
    assert remote.SPLIT_TENSORS_COUNT == gguf.Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT


# --- listing and downloading ------------------------------------------------------------------


def test_listing_has_sizes_sha256_and_quants(hub: FakeHub) -> None:
    listing = hub_listing.list_gguf_files(TINY, endpoint=hub.url)
    by_name = {f.filename: f for f in listing.files}
    assert by_name[Q4].n_bytes == len(served(hub, TINY, Q4))
    assert by_name[Q4].sha256 == sha(served(hub, TINY, Q4))
    assert listing.commit == hub.repos[TINY].refs["main"]
    assert hub_names.available_quants(listing.files) == ["Q8_0", "Q4_K_M"]


def test_download_single_file_and_second_call_uses_cache(hub: FakeHub) -> None:
    calls: list[tuple[int, int]] = []
    result = H.download(TINY, quant="q4_k_m", endpoint=hub.url, progress=lambda d, t: calls.append((d, t)))
    data = served(hub, TINY, Q4)
    assert result.path == cache_root(TINY) / "snapshots" / hub.repos[TINY].refs["main"] / Q4
    assert sha(result.path.read_bytes()) == sha(data)
    assert result.n_bytes_fetched == len(data)
    assert calls[-1] == (len(data), len(data))  # huggingface_hub reports every 10 MiB chunk
    assert read_spec(result.path).file_type == "Q4_K_M"
    n_get = len(hub.requests_for(Q4))
    again = H.download(TINY, quant="Q4_K_M", endpoint=hub.url)
    assert again.path == result.path and again.n_bytes_fetched == 0
    assert len(hub.requests_for(Q4)) == n_get  # no second GET of the file


def test_download_split_gguf_fetches_every_shard(hub: FakeHub) -> None:
    result = H.download(SPLIT, quant="Q4_K_M", endpoint=hub.url)
    assert [p.name for p in result.paths] == [Path(s).name for s in SHARDS]
    assert result.path == result.paths[0]
    for shard, path in zip(SHARDS, result.paths, strict=True):
        assert sha(path.read_bytes()) == sha(served(hub, SPLIT, shard))
    assert result.n_bytes_fetched == sum(len(served(hub, SPLIT, s)) for s in SHARDS)


def test_dry_run_fetches_nothing_and_sizes_the_plan(hub: FakeHub) -> None:
    result = H.download(SPLIT, filename=SHARDS[0], endpoint=hub.url, dry_run=True)
    assert result.dry_run and result.paths == ()
    assert result.plan.n_bytes == result.plan.n_bytes_to_fetch == sum(len(served(hub, SPLIT, s)) for s in SHARDS)
    assert not any(r.path.endswith(".gguf") for r in hub.requests)
    assert not result.plan.path.exists()


def test_revision_pinning(hub: FakeHub) -> None:
    old = served(hub, TINY, Q4, rev="v1")
    tagged = H.download(TINY, quant="Q4_K_M", revision="v1", endpoint=hub.url)
    assert sha(tagged.path.read_bytes()) == sha(old)
    commit = hub.repos[TINY].refs["v1"]
    pinned = H.download(TINY, filename=Q4, revision=commit, endpoint=hub.url)
    assert pinned.path == tagged.path and pinned.n_bytes_fetched == 0
    main = H.download(TINY, quant="Q4_K_M", endpoint=hub.url)
    assert main.path != tagged.path and sha(main.path.read_bytes()) == sha(served(hub, TINY, Q4))


def test_resume_after_the_connection_drops(hub: FakeHub) -> None:
    data = served(hub, TINY, Q8)
    # huggingface_hub writes in DOWNLOAD_CHUNK_SIZE (10 MiB) pieces, so cut the connection past one.
    drop = len(data) - 200_000
    assert drop > constants.DOWNLOAD_CHUNK_SIZE
    hub.drop_after[(TINY, Q8)] = drop
    result = H.download(TINY, quant="Q8_0", endpoint=hub.url)
    gets = hub.requests_for(Q8)
    assert len(gets) == 2
    assert gets[0].range_start is None
    resumed = gets[1].range_start
    assert resumed is not None and 0 < resumed <= drop  # it resumed from the bytes it had written
    assert hub.bytes_sent[(TINY, Q8)] == len(data) + drop - resumed
    assert sha(result.path.read_bytes()) == sha(data)
    assert not list(cache_root(TINY).rglob("*.incomplete"))


def test_corrupted_download_is_caught_and_removed(hub: FakeHub) -> None:
    hub.corrupt.add((TINY, Q8))
    with pytest.raises(HubError, match="failed its checksum") as e:
        H.download(TINY, quant="Q8_0", endpoint=hub.url)
    assert sha(served(hub, TINY, Q8)) in str(e.value)
    snapshot = cache_root(TINY) / "snapshots" / hub.repos[TINY].refs["main"]
    assert not (snapshot / Q8).exists() and not (snapshot / Q8).is_symlink()
    assert not list((cache_root(TINY) / "blobs").iterdir())
    assert not list(cache_root(TINY).rglob("*.incomplete"))
    hub.corrupt.clear()  # a retry now succeeds
    assert sha(H.download(TINY, quant="Q8_0", endpoint=hub.url).path.read_bytes()) == sha(served(hub, TINY, Q8))


def test_file_not_found_on_the_hub(hub: FakeHub) -> None:
    hub.not_found.add((TINY, Q8))
    with pytest.raises(HubError, match=f"{Q8} not found in {TINY}"):
        H.download(TINY, quant="Q8_0", endpoint=hub.url)
    assert not (cache_root(TINY) / "snapshots").exists() or not list((cache_root(TINY) / "snapshots").rglob(Q8))


def test_repo_and_revision_not_found(hub: FakeHub) -> None:
    with pytest.raises(HubError, match="repository edgekv-test/Nope not found") as e:
        H.download("edgekv-test/Nope", quant="Q4_K_M", endpoint=hub.url)
    assert "HF_TOKEN" in str(e.value)  # a private repo looks the same
    with pytest.raises(HubError, match="revision 'v9' not found"):
        hub_listing.list_gguf_files(TINY, revision="v9", endpoint=hub.url)


def test_gated_repo_needs_hf_token(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(HubError, match="is gated") as e:
        H.download(GATED, quant="Q4_K_M", endpoint=hub.url)
    assert "HF_TOKEN" in str(e.value) and "accept" in str(e.value)
    hub.tokens.add("hf_accepted")
    monkeypatch.setenv("HF_TOKEN", "hf_accepted")  # read by huggingface_hub at call time
    result = H.download(GATED, quant="Q4_K_M", endpoint=hub.url)
    assert hub.requests_for("Gated-Q4_K_M.gguf")[-1].authorization == "Bearer hf_accepted"
    assert sha(result.path.read_bytes()) == sha(served(hub, GATED, "Gated-Q4_K_M.gguf"))


def test_quant_not_in_repo_lists_available(hub: FakeHub) -> None:
    with pytest.raises(ModelFileNotFound, match=f"{TINY} has no Q5_K_M GGUF.*It has: Q8_0, Q4_K_M"):
        H.download(TINY, quant="Q5_K_M", endpoint=hub.url)


def test_disk_full_is_checked_before_downloading(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    free = 1024 * 1024
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10 * free, 9 * free, free))  # type: ignore[attr-defined]
    with pytest.raises(DiskFull, match=r"Tiny-Q8_0.gguf needs 10\.41 MiB but .* has 1\.00 MiB free"):
        H.download(TINY, quant="Q8_0", endpoint=hub.url)
    assert not hub.requests_for(Q8) and not hub.requests_for(Q8, "HEAD")


# --- the fake hub between tests ---------------------------------------------------------------


def test_reset_puts_back_the_populated_repos(hub: FakeHub) -> None:
    """A repo a test adds, and a revision it adds to TINY, are gone after reset (the hub fixture's), so a
    later test sees the repos the fake hub started with whatever ran before it."""
    main_before, files_before = hub.repos[TINY].refs["main"], set(served_tree(hub, TINY))
    hub.add_repo("someone/Extra-GGUF", {"Extra-Q4_K_M.gguf": b"GGUF extra"})
    hub.add_repo(TINY, {"Tiny-Q4_K_M.gguf": b"GGUF other"})
    assert set(served_tree(hub, TINY)) == {"Tiny-Q4_K_M.gguf"}
    hub.reset()
    assert "someone/Extra-GGUF" not in hub.repos
    assert hub.repos[TINY].refs["main"] == main_before and set(served_tree(hub, TINY)) == files_before
    assert files_before == {"Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf", "README.md", "mmproj-Tiny-F16.gguf"}
    assert H.download(TINY, quant="Q8_0", endpoint=hub.url).path.name == "Tiny-Q8_0.gguf"


def served_tree(hub: FakeHub, repo: str) -> dict[str, bytes]:
    r = hub.repos[repo]
    return r.trees[r.refs["main"]]


# --- offline and network down -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["env", "constant"])
def test_offline_uses_the_cache(hub: FakeHub, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    first = H.download(TINY, quant="Q4_K_M", endpoint=hub.url)
    hub.reset()
    if how == "env":  # set after huggingface_hub was imported: hub.py reads it at call time
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # as huggingface_hub read it at import
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = H.download(TINY, quant="Q4_K_M", endpoint=hub.url)
    assert again.path == first.path and again.plan.from_cache
    assert hub.requests == []
    spec, stats = remote.inspect_remote(TINY, Q4, endpoint=hub.url)  # offline: read from the cache
    assert spec == read_spec(first.path) and stats.bytes_read == 0
    with pytest.raises(HubError, match="HF_HUB_OFFLINE=1 is set") as e:
        H.download(TINY, quant="Q8_0", endpoint=hub.url)
    assert "download it once" in str(e.value)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE=1 is set"):
        H.download(SPLIT, quant="Q4_K_M", endpoint=hub.url)


def test_network_down_falls_back_to_the_cache(hub: FakeHub) -> None:
    first = H.download(TINY, quant="Q4_K_M", endpoint=hub.url)
    down = dead_endpoint()
    assert H.download(TINY, quant="Q4_K_M", endpoint=down).path == first.path
    with pytest.raises(HubError, match="cannot reach the hub") as e:
        H.download(SPLIT, quant="Q4_K_M", endpoint=down)
    assert "HF_HUB_OFFLINE=1" in str(e.value) and "connection" in str(e.value)
    with pytest.raises(HubError, match="cannot reach the hub"):
        remote.inspect_remote(SPLIT, SHARDS[0], endpoint=down)


# --- remote inspection ------------------------------------------------------------------------


def test_inspect_remote_reads_a_small_fraction_and_matches_the_local_spec(hub: FakeHub) -> None:
    size = len(served(hub, TINY, Q8))
    spec, stats = remote.inspect_remote(TINY, Q8, endpoint=hub.url)
    assert stats.bytes_read < size / 10 and hub.bytes_sent[(TINY, Q8)] < size / 10
    assert stats.file_bytes == size and stats.n_requests >= 2  # the 256 KiB start had to grow
    local = H.download(TINY, quant="Q8_0", endpoint=hub.url).path
    assert spec == read_spec(local)
    assert spec.tensor_type_bytes() == read_spec(local).tensor_type_bytes()


def test_inspect_remote_merges_split_shards(hub: FakeHub) -> None:
    spec, stats = remote.inspect_remote(SPLIT, SHARDS[1], endpoint=hub.url)  # any shard names the GGUF
    total = sum(len(served(hub, SPLIT, s)) for s in SHARDS)
    assert stats.n_shards == 3 and stats.file_bytes == total and stats.bytes_read < total / 10
    paths = H.download(SPLIT, quant="Q4_K_M", endpoint=hub.url).paths
    headers = [read_header(p) for p in paths]
    assert headers[0].fields[remote.SPLIT_COUNT] == 3
    assert [t.name for t in spec.tensors] == [t.name for h in headers for t in h.tensors]
    expected = spec_from_header(remote.merge_shards(headers, "local"), name=Path(SHARDS[0]).name)
    assert spec == expected and spec.file_type == "Q4_K_M"


def test_inspect_remote_by_quant_and_options_from_repo(hub: FakeHub) -> None:
    spec, _ = remote.inspect_remote(TINY, "Q4_K_M", endpoint=hub.url)
    assert spec.name == Q4 and spec == remote.inspect_remote_cli(TINY, Q4, endpoint=hub.url)
    options = remote.options_from_repo(TINY, endpoint=hub.url)
    assert sorted((o.quant, o.file, o.repo) for o in options) == [("Q4_K_M", Q4, TINY), ("Q8_0", Q8, TINY)]
    assert all(o.effective_bytes == o.spec.weights_bytes > 0 and o.name == "Tiny" for o in options)


def test_inspect_remote_errors_are_hub_errors(hub: FakeHub) -> None:
    with pytest.raises(HubError, match="is gated"):
        remote.inspect_remote(GATED, "Gated-Q4_K_M.gguf", endpoint=hub.url)
    with pytest.raises(HubError, match="not found"):
        remote.inspect_remote(TINY, "nope.gguf", endpoint=hub.url)
