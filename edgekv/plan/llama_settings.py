"""A plan as llama.cpp settings: llama-server flags and ``llama_cpp.Llama`` keyword arguments.

pick's text output prints them for #1; the plan file (``edgekv.store.planfile.pick_dict``) stores them for
every plan. Pure, stdlib only.
"""

from __future__ import annotations

from typing import Any

from edgekv.plan.placement import cpu_moe_patterns
from edgekv.plan.plans import Plan


def llama_args(plan: Plan, *, n_ubatch: int = 512) -> dict[str, Any]:
    """The exact llama.cpp settings: llama-server flags and llama_cpp.Llama keyword arguments."""
    opt = plan.option
    model_flags = (
        ["-m", opt.path]
        if opt.path
        else (["-hfr", opt.repo, "-hff", opt.file] if opt.repo and opt.file else ["-m", f"{opt.name}-{opt.quant}.gguf"])
    )
    ngl = "999" if plan.n_gpu_layers < 0 else str(plan.n_gpu_layers)
    server = [
        "llama-server", *model_flags, "-ngl", ngl, "-c", str(plan.n_ctx), "-np", str(plan.parallel),
        "-fa", "on", "-ctk", plan.type_k.value, "-ctv", plan.type_v.value, "-ub", str(n_ubatch),
    ]  # fmt: skip
    if plan.tensor_split:  # llama.cpp's layer split across the devices (plan/devices.py)
        server += ["-sm", "layer", "-ts", split_text(plan.tensor_split)]
    if plan.n_cpu_moe:  # the experts of the first N blocks in RAM (-ot with cpu_moe_patterns is the same)
        server += ["--n-cpu-moe", str(plan.n_cpu_moe)]
    python: dict[str, Any] = {
        "model_path": opt.path or opt.file or f"{opt.name}-{opt.quant}.gguf",
        "n_gpu_layers": plan.n_gpu_layers,
        "n_ctx": plan.n_ctx,
        "n_ubatch": n_ubatch,
        "flash_attn": True,
        "type_k": plan.type_k.ggml.id,
        "type_v": plan.type_v.ggml.id,
    }
    if plan.tensor_split:
        python["split_mode"] = 1  # llama_cpp.LLAMA_SPLIT_MODE_LAYER
        python["tensor_split"] = list(plan.tensor_split)
    out: dict[str, Any] = {"server": server, "server_cmd": " ".join(server), "python": python,
                           "n_seq_max": plan.parallel}  # fmt: skip
    if plan.n_cpu_moe:
        # llama_cpp.Llama has no argument for it (llama-cpp-python 0.3.36 leaves tensor_buft_overrides
        # unset): edgekv's runner sets them from n_cpu_moe (edgekv run --n-cpu-moe N, or the plan file)
        out["edgekv"] = {"n_cpu_moe": plan.n_cpu_moe}
        out["override_tensor"] = [f"{p}=CPU" for p in cpu_moe_patterns(plan.n_cpu_moe)]  # llama-server -ot
    return out


def split_text(tensor_split: tuple[float, ...]) -> str:
    """llama.cpp's ``-ts`` value: 12,8 or 2.5,1."""
    return ",".join(f"{x:g}" for x in tensor_split)
