"""Several devices on the command line: ``pick --vram 12G,8G``, ``run --vram A,B`` on a CPU build,
and the llama_model_params a split builds (inspected without loading)."""

from __future__ import annotations

import ctypes
import json
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edgekv.cli import cli
from edgekv.errors import RuntimeUnavailable, SpecError
from edgekv.plan.memory import RunConfig
from edgekv.store.planfile import read_plan
from edgekv.units import GIB


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def pick_json(*args: str) -> dict[str, Any]:
    r = invoke("pick", *args, "--json")
    assert r.exit_code == 0, (r.output, r.exception)
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def test_pick_two_cards_json() -> None:
    d = pick_json("--vram", "12G,8G", "--family", "qwen3")
    assert d["devices"] == [{"device": "GPU 0", "vram_bytes": 12 * GIB}, {"device": "GPU 1", "vram_bytes": 8 * GIB}]
    assert d["vram_bytes"] == 20 * GIB and d["tensor_split"] == [12.0, 8.0]
    for plan in d["plans"]:
        per = plan["memory_per_device"]
        assert [p["device"] for p in per] == ["GPU 0", "GPU 1"]
        assert all(p["total"] <= p["vram_bytes"] for p in per)
        assert sum(p["weights"] for p in per) == plan["memory"]["weights"]
        assert sum(p["kv"] for p in per) == plan["memory"]["kv"]
        assert plan["tensor_split"] == [12.0, 8.0]
        server = plan["llama_args"]["server"]
        assert server[server.index("-ts") + 1] == "12,8" and server[server.index("-sm") + 1] == "layer"
        assert plan["llama_args"]["python"]["tensor_split"] == [12.0, 8.0]
        assert plan["llama_args"]["python"]["split_mode"] == 1
    # the pair holds a model neither card holds alone
    assert "Qwen3-14B" in [p["model"] for p in d["plans"]]


def test_pick_one_card_json_keeps_its_shape() -> None:
    d = pick_json("--vram", "8G", "--top", "1")
    plan = d["plans"][0]
    assert d["devices"] is None and plan["tensor_split"] is None
    assert plan["memory_per_device"] == [plan["memory"]]
    assert "-ts" not in plan["llama_args"]["server"] and "tensor_split" not in plan["llama_args"]["python"]


def test_pick_tensor_split_given() -> None:
    d = pick_json("--vram", "12G,8G", "--tensor-split", "3,2", "--top", "1")
    assert d["plans"][0]["tensor_split"] == [3.0, 2.0]
    assert "-ts 3,2" in d["plans"][0]["llama_args"]["server_cmd"]


def test_pick_two_cards_text_shows_each_device() -> None:
    r = invoke("pick", "--vram", "12G,8G", "--top", "3")
    assert r.exit_code == 0, r.output
    assert "12.00 GiB + 8.00 GiB (2 devices, -ts 12,8)" in r.output
    assert "GPU 0: weights" in r.output and "of 8.00 GiB" in r.output


@pytest.mark.parametrize(("args", "words"), [
    (["--vram", "12G,8G", "--tensor-split", "3"], "1 shares for 2 devices"),
    (["--vram", "12G", "--tensor-split", "3,2"], "needs a --vram per device"),
    (["--vram", "12G,8G", "--tensor-split", "0,0"], "not all 0"),
    (["--vram", "12G,8G", "--tensor-split", "a,b"], "not a list of numbers"),
])  # fmt: skip
def test_pick_bad_split_is_refused(args: list[str], words: str) -> None:
    r = invoke("pick", *args)
    assert r.exit_code != 0 and isinstance(r.exception, SpecError) and words in str(r.exception)


def test_plan_file_carries_the_devices(tmp_path: Path) -> None:
    d = pick_json("--vram", "12G,8G", "--tensor-split", "3,2", "--top", "1")
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(d))
    plan = read_plan(path)
    assert plan.vram_per_device == (12 * GIB, 8 * GIB) and plan.tensor_split == (3.0, 2.0)


# -- run on this CPU build, and the params a split builds ------------------------------------

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.mark.skipif(bool(llama_cpp.llama_supports_gpu_offload()), reason="a CPU build refuses a split")
@pytest.mark.parametrize("verb", ["run", "bench"])
def test_split_is_refused_on_a_cpu_build(tiny: Path, verb: str) -> None:
    extra = ["--prompt", "hi"] if verb == "run" else ["--kv", "f16", "--reps", "1", "--json"]
    r = invoke(verb, str(tiny), "--vram", "12G,8G", *extra)
    assert r.exit_code != 0 and isinstance(r.exception, RuntimeUnavailable), r.output
    msg = str(r.exception).lower()
    assert "names 2 devices" in msg and "no gpu offload" in msg and "give one --vram" in msg


def _params(cfg: RunConfig, *, gpu_build: bool) -> Any:
    from edgekv.llama import build

    lib = types.SimpleNamespace(**{k: getattr(llama_cpp, k) for k in dir(llama_cpp) if not k.startswith("__")})
    lib.llama_supports_gpu_offload = lambda: gpu_build
    return build.model_params(lib, cfg, dry_run=False)


def test_tensor_split_goes_into_the_model_params() -> None:
    mp = _params(RunConfig(n_ctx=4096, tensor_split=(12.0, 8.0)), gpu_build=True)
    assert mp.split_mode == llama_cpp.LLAMA_SPLIT_MODE_LAYER
    n = int(llama_cpp.llama_max_devices())
    shares = [mp.tensor_split[i] for i in range(n)]
    assert shares[:2] == [12.0, 8.0] and not any(shares[2:])
    assert mp.n_gpu_layers == 999
    # the float array outlives the call that built it (the struct holds it)
    del mp
    mp = _params(RunConfig(n_ctx=4096, tensor_split=(3.0, 2.0)), gpu_build=True)
    assert ctypes.cast(mp.tensor_split, ctypes.c_void_p).value and mp.tensor_split[1] == 2.0


def test_one_device_on_a_gpu_build_uses_only_gpu_0() -> None:
    mp = _params(RunConfig(n_ctx=4096), gpu_build=True)
    assert mp.split_mode == llama_cpp.LLAMA_SPLIT_MODE_NONE and mp.main_gpu == 0
    assert not mp.tensor_split  # NULL


def test_one_device_on_a_cpu_build_keeps_the_defaults() -> None:
    mp = _params(RunConfig(n_ctx=4096), gpu_build=False)
    default = llama_cpp.llama_model_default_params()
    assert (mp.split_mode, mp.main_gpu) == (default.split_mode, default.main_gpu)
