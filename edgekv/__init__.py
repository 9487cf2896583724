"""edgekv: pick, size, convert, download and run reasoning LLMs for a small GPU, on llama.cpp.

Only the pure API is re-exported here, so ``import edgekv`` stays cheap (no llama_cpp,
huggingface_hub, gguf or numpy).
"""

from __future__ import annotations

__version__ = "0.1.0"

from edgekv.errors import EdgekvError
from edgekv.model.quant import KvType, WeightQuant
from edgekv.units import format_bytes, parse_size

__all__ = ["EdgekvError", "KvType", "WeightQuant", "__version__", "format_bytes", "parse_size"]
