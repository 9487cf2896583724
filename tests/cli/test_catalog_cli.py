"""``edgekv catalog add/list/remove`` against the fake hub (tests/fakes/hub.py), and pick using added entries
offline. The conftest gives each test its own EDGEKV_HOME (so its own user catalog) and HF_HOME.

Expected values come from the fake hub's files: the tiny GGUFs' shapes (tests/fakes/hub.py make_gguf:
2 layers, hidden 256, 4 heads, 2 KV heads, vocab 16384) and their sizes as gguf-py reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edgekv.cli import cli
from edgekv.errors import OutputExists, SpecError
from tests.fakes.hub import SPLIT, TINY, FakeHub

gguf: Any = pytest.importorskip("gguf")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr, result.exception


def catalog_dir() -> Path:
    return Path(os.environ["EDGEKV_HOME"]) / "catalog"


def served_bytes(hub: FakeHub, repo: str, path: str, tmp_path: Path) -> int:
    """Weight bytes of a served file as gguf-py reads them."""
    r = hub.repos[repo]
    f = tmp_path / Path(path).name
    f.write_bytes(r.trees[r.refs["main"]][path])
    return sum(int(t.n_bytes) for t in gguf.GGUFReader(f).tensors)


def test_add_list_pick_offline_remove(hub: FakeHub, tmp_path: Path) -> None:
    code, out, err, exc = run("catalog", "add", TINY, "--endpoint", hub.url, "--json")
    assert code == 0, (err, exc)
    [added] = json.loads(out)
    assert (added["name"], added["arch"], added["quants"]) == ("Tiny", "qwen3", ["Q8_0", "Q4_K_M"])
    assert added["skipped"] == []  # the mmproj file is not a model file
    path = Path(added["path"])
    assert path.parent == catalog_dir() and path.name == "tiny.json"
    entry = json.loads(path.read_text())
    assert entry["spec"]["n_layer"] == 2 and entry["spec"]["n_head_kv"] == [2, 2] and entry["spec"]["n_embd"] == 256
    assert entry["revision"] == hub.repos[TINY].refs["main"]
    for quant, name in (("Q4_K_M", "Tiny-Q4_K_M.gguf"), ("Q8_0", "Tiny-Q8_0.gguf")):
        assert entry["files"][quant] == name
        assert entry["weights"][quant]["weights_bytes"] == served_bytes(hub, TINY, name, tmp_path)

    code, out, err, exc = run("catalog", "list", "--json")
    assert code == 0, exc
    rows = {r["name"]: r for r in json.loads(out)["models"]}
    assert rows["Tiny"]["origin"] == "user" and rows["Tiny"]["source"] == str(path) and rows["Tiny"]["ranked"]
    assert rows["Qwen3-8B"]["origin"] == "built-in" and len(rows) >= 27
    code, out, _, _ = run("catalog", "list")
    assert code == 0 and f"user: {path}" in out and "Tiny" in out

    requests_before = len(hub.requests)
    offline = {"HF_HUB_OFFLINE": "1"}
    code, out, err, exc = run("pick", "--vram", "2G", "--model", "Tiny", "--json", env=offline)
    assert code == 0, (err, exc)
    plans = json.loads(out)["plans"]
    assert {p["model"] for p in plans} == {"Tiny"} and plans[0]["quant"] == "Q8_0"
    assert len(hub.requests) == requests_before  # pick read the added entry, not the hub
    code, out, err, exc = run("pick", "--vram", "8G", "--family", "all", "--top", "3", env=offline)
    assert code == 0 and err == "", (err, exc)

    code, out, err, exc = run("catalog", "remove", "tiny")
    assert code == 0 and out == f"removed tiny: {path}\n" and not path.exists()
    code, out, _, _ = run("catalog", "list", "--json")
    assert "Tiny" not in {r["name"] for r in json.loads(out)["models"]}
    code, out, err, exc = run("pick", "--vram", "2G", "--model", "Tiny", env=offline)
    assert code == 1 and isinstance(exc, SpecError) and "no catalog model matches" in str(exc)


def test_add_refuses_to_overwrite_without_force(hub: FakeHub) -> None:
    assert run("catalog", "add", TINY, "--endpoint", hub.url, "--quants", "Q4_K_M")[0] == 0
    path = catalog_dir() / "tiny.json"
    before = path.read_text()
    code, _, _, exc = run("catalog", "add", TINY, "--endpoint", hub.url)
    assert code == 1 and isinstance(exc, OutputExists) and "--force" in str(exc)
    assert path.read_text() == before
    code, out, _, exc = run("catalog", "add", TINY, "--endpoint", hub.url, "--force", "--json")
    assert code == 0, exc
    assert json.loads(out)[0]["quants"] == ["Q8_0", "Q4_K_M"] and path.read_text() != before


def test_add_a_split_gguf_and_a_name(hub: FakeHub, tmp_path: Path) -> None:
    code, out, err, exc = run("catalog", "add", SPLIT, "--endpoint", hub.url, "--name", "Tiny-Split", "--json")
    assert code == 0, (err, exc)
    [added] = json.loads(out)
    entry = json.loads(Path(added["path"]).read_text())
    assert entry["name"] == "Tiny-Split" and entry["files"] == {"Q4_K_M": "Q4_K_M/Tiny-Q4_K_M-00001-of-00003.gguf"}
    shards = [f"Q4_K_M/Tiny-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert entry["weights"]["Q4_K_M"]["weights_bytes"] == sum(served_bytes(hub, SPLIT, s, tmp_path) for s in shards)


def test_add_refuses_a_builtin_name_and_writes_nothing(hub: FakeHub) -> None:
    code, _, _, exc = run("catalog", "add", TINY, "--endpoint", hub.url, "--name", "Qwen3-8B")
    assert code == 1 and isinstance(exc, SpecError) and "built-in" in str(exc)
    assert not catalog_dir().exists() or not any(catalog_dir().iterdir())


def test_remove_refuses_builtin_and_unknown() -> None:
    code, _, _, exc = run("catalog", "remove", "Qwen3-8B")
    assert code == 1 and "built-in" in str(exc)
    code, _, _, exc = run("catalog", "remove", "Nothing-Here")
    assert code == 1 and "no added catalog entry" in str(exc)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "is not JSON"),
        (b"\xff\xfe garbage", "is not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (json.dumps({"schema": 2, "name": "X"}).encode(), "schema is 2"),
        (json.dumps({"schema": 1, "name": "Qwen3-8B", "family": "x", "gguf_repo": "a/b"}).encode(), "'spec'"),
    ],
)
def test_a_corrupt_user_file_gives_one_line_and_pick_still_works(content: bytes, says: str) -> None:
    catalog_dir().mkdir(parents=True)
    bad = catalog_dir() / "broken.json"
    bad.write_bytes(content)
    code, out, err, exc = run("pick", "--vram", "8G", "--family", "all", "--json")
    assert code == 0, exc
    assert err.count("\n") == 1 and err.startswith(f"warning: user catalog file {bad}") and says in err
    assert json.loads(out)["plans"]  # ranked from the built-in catalog
    code, out, err, _ = run("catalog", "list")
    assert code == 0 and err.count("\n") == 1 and str(bad) in err
    assert run("catalog", "remove", "broken")[0] == 0 and not bad.exists()


def test_a_user_entry_is_data_only(hub: FakeHub) -> None:
    """Values are checked, never evaluated: a name with a path or code in it is refused."""
    assert run("catalog", "add", TINY, "--endpoint", hub.url, "--quants", "Q8_0")[0] == 0
    path = catalog_dir() / "tiny.json"
    data = json.loads(path.read_text())
    data["name"] = "__import__('os').system('true')"
    path.write_text(json.dumps(data))
    code, _, err, _ = run("pick", "--vram", "8G")
    assert code == 0 and "not a plain name" in err and err.count("\n") == 1


def test_the_user_catalog_lives_in_edgekvs_user_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Beside the calibration profiles: settings.user_dir()/catalog, spelled without pathlib for pick."""
    from edgekv.settings import user_dir
    from edgekv.store.catalog import user_catalog_dir

    assert user_catalog_dir() == str(user_dir() / "catalog")
    monkeypatch.delenv("EDGEKV_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_catalog_dir() == str(user_dir() / "catalog") == str(tmp_path / "xdg" / "edgekv" / "catalog")
    monkeypatch.setenv("EDGEKV_CATALOG", str(tmp_path / "mine"))
    assert user_catalog_dir() == str(tmp_path / "mine")
