"""A layer split over an RPC device and a local GPU: llama.cpp's ``rpc-server`` on localhost.

llama.cpp puts RPC devices first in the model's device list (src/llama.cpp: "add RPC servers at
the front of the list"), so ``tensor_split`` = (RPC share, local share) and the output layer lands
on the local GPU. The rpc-server is started on GPU 1 (CUDA_VISIBLE_DEVICES=1) and this process
uses GPU 0 only; the per-device buffers llama.cpp logs must equal edgekv's per-device weights and
KV (plan/devices.py), the same check as for two local GPUs.

Needs: a CUDA build of llama-cpp-python with GGML_RPC (``llama_supports_rpc()``) and llama.cpp's
``rpc-server`` binary (on PATH or EDGEKV_RPC_SERVER), two GPUs. Skipped otherwise.
Run: CUDA_VISIBLE_DEVICES=0 pytest -m gpu tests/gpu/test_gpu_rpc.py
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ggufgen import write_sparse_gguf

pytestmark = pytest.mark.gpu

ROOT = Path(__file__).resolve().parents[2]
llama_cpp = pytest.importorskip("llama_cpp")
RPC_SERVER = os.environ.get("EDGEKV_RPC_SERVER") or shutil.which("rpc-server")
if not llama_cpp.llama_supports_rpc() or not RPC_SERVER:
    pytest.skip("llama-cpp-python without GGML_RPC, or no rpc-server binary", allow_module_level=True)
MIB = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def rpc_endpoint() -> Iterator[str]:
    port = _free_port()
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="1")
    assert RPC_SERVER is not None
    proc = subprocess.Popen([RPC_SERVER, "-H", "127.0.0.1", "-p", str(port)], env=env)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("rpc-server did not start listening")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def add_rpc_server(endpoint: str) -> None:
    """common/arg.cpp's add_rpc_devices: ggml_backend_rpc_add_server through the RPC registry."""
    from llama_cpp._ggml import libggml

    libggml.ggml_backend_reg_by_name.restype = ctypes.c_void_p
    libggml.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
    libggml.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    libggml.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    libggml.ggml_backend_register.argtypes = [ctypes.c_void_p]
    reg = libggml.ggml_backend_reg_by_name(b"RPC")
    assert reg, "no RPC backend registered"
    fn = libggml.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_rpc_add_server")
    assert fn, "the RPC backend has no ggml_backend_rpc_add_server"
    add = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)(fn)
    server_reg = add(endpoint.encode())
    assert server_reg, f"cannot reach rpc-server at {endpoint}"
    libggml.ggml_backend_register(server_reg)


def test_split_over_rpc_and_a_local_gpu(rpc_endpoint: str, tmp_path: Path) -> None:
    from edgekv.llama import runner as runtime
    from edgekv.model.gguf_reader import read_spec
    from edgekv.plan import devices as multi
    from edgekv.plan.memory import RunConfig

    config = json.loads((ROOT / "models" / "qwen3-1.7b.json").read_text())["config"]
    path = write_sparse_gguf(tmp_path / "qwen3-1.7b-Q8_0.gguf", config, quant="Q8_0")
    spec = read_spec(path)
    add_rpc_server(rpc_endpoint)
    cfg = RunConfig(n_ctx=8192, tensor_split=(1.0, 1.0))
    with runtime.load(path, cfg) as r:
        b = r.buffers
    fps = multi.multi_footprint(spec, cfg, multi.DeviceTerms(cfg.tensor_split))
    rpc = [k for k in b.model if k.startswith("RPC")]
    assert rpc and "CUDA0" in b.model, b.as_dict()
    # device 0 is the RPC server (first in llama.cpp's list), device 1 the local GPU
    assert abs(b.model[rpc[0]] - fps[0].weights_gpu) <= MIB // 100 + 1, (b.as_dict(), fps)
    assert abs(b.model["CUDA0"] - fps[1].weights_gpu) <= MIB // 100 + 1, (b.as_dict(), fps)
    kv_rpc = next(v for k, v in b.kv.items() if k.startswith("RPC"))
    assert abs(kv_rpc - fps[0].kv) <= MIB // 100 + 1 and abs(b.kv["CUDA0"] - fps[1].kv) <= MIB // 100 + 1
