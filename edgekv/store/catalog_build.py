"""Regenerate the derived parts of ``models/*.json``: weight bytes of each quant level.

``python -m edgekv.store.catalog_build [--check]``. For every catalog model, lists the tensors
llama.cpp's converter writes for its config (``archs``), applies llama.cpp's quantize rules
(``quantrules``, proven against llama_model_quantize in tests/model/test_quantrules.py) and stores
per quant: effective size, bytes by tensor type, and the input / per-layer / output split the
memory model needs for (partial) offload. A mixture-of-experts entry also gets its bytes per tensor
group (``tensor_groups``: attention, experts, router, ...) and its experts' bytes per block, what
``--n-cpu-moe N`` / ``-ot exps=CPU`` would keep in RAM. BF16 and F16 are the converter's own
output (no quantize step). An entry may name its quant levels in ``"quants"`` (gpt-oss: only those
that keep its MXFP4 experts; quantized_types refuses the rest as llama.cpp does), else
CATALOG_QUANTS. ``--check`` exits 1 if a file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from edgekv.fsutil import write_atomic
from edgekv.model.archs import gguf_arch, gguf_tensors
from edgekv.model.quant import WeightQuant
from edgekv.model.quantrules import quantized_types
from edgekv.model.spec import ModelSpec, TensorInfo, from_hf_config, hf_n_layer
from edgekv.model.tensor_groups import expert_layer_bytes, tensor_groups
from edgekv.plan.memory import WeightLayout
from edgekv.store.catalog import catalog_quants, models_dir

_CONVERTER_OUTTYPES = (WeightQuant.BF16, WeightQuant.F16)


def quant_spec(config: dict[str, Any], name: str, quant: WeightQuant) -> ModelSpec:
    """The spec of ``config`` at ``quant`` with every tensor's type as llama.cpp's quantize gives it:
    what reading the header of the published GGUF gives (``gguf_reader.read_spec``). BF16 and F16 are
    the converter's own types (gpt-oss keeps its MXFP4 experts)."""
    outtype = "BF16" if quant is WeightQuant.BF16 else "F16"
    shapes = gguf_tensors(config, outtype=outtype)
    if quant in _CONVERTER_OUTTYPES:
        types = {t.name: t.type for t in shapes}
    else:
        types = quantized_types(
            shapes, quant, arch=gguf_arch(config), n_layer=hf_n_layer(config),
            n_head=int(config["num_attention_heads"]),
            n_head_kv=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
            n_expert=from_hf_config(config).n_expert,
        )  # fmt: skip
    infos = tuple(TensorInfo(t.name, types[t.name], t.shape) for t in shapes)
    return from_hf_config(config, name=name, tensors=infos)


def derive(data: dict[str, Any]) -> dict[str, Any]:
    """The generated keys (weights, n_params) for one catalog entry."""
    config = data["config"]
    weights: dict[str, Any] = {}
    n_params = 0
    for q in catalog_quants(data):
        spec = quant_spec(config, data["name"], q)
        n_params = spec.n_params
        weights[q.value] = weights_entry(spec)
    return {"n_params": n_params, "weights": weights}


def weights_entry(spec: ModelSpec) -> dict[str, Any]:
    """One quant's ``weights`` of a catalog entry from a spec with its tensors (a generated one, or a
    published GGUF's header for ``edgekv catalog add``): effective size, the input / per-layer / output
    split, bytes by tensor type; a mixture of experts also its tensor groups and experts per block."""
    layout = WeightLayout.from_spec(spec)
    out: dict[str, Any] = {
        "weights_bytes": spec.weights_bytes,
        "input_bytes": layout.input_bytes,
        "output_bytes": layout.output_bytes,
        "layer_bytes": list(layout.layer_bytes),
        "tensor_type_bytes": spec.tensor_type_bytes(),
    }
    if spec.is_moe:
        out["tensor_group_bytes"] = {g.value: n for g, n in tensor_groups(spec).items()}
        out["expert_layer_bytes"] = list(expert_layer_bytes(spec))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale: list[str] = []
    for path in sorted(Path(models_dir()).glob("*.json")):
        data = json.loads(path.read_text())
        new = dict(data)
        new.update(derive(data))
        if new != data:
            stale.append(path.name)
            if not check:
                write_atomic(path, json.dumps(new, indent=1) + "\n")
    if check and stale:
        sys.stderr.write(f"stale catalog files (run python -m edgekv.store.catalog_build): {', '.join(stale)}\n")
        return 1
    sys.stdout.write(f"{'checked' if check else 'updated'} {len(stale)} file(s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
