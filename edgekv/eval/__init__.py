"""Reasoning accuracy measured the paper's way: a token budget, G samples per problem, majority voting.

The pure core: answer extraction (``answers``), equivalence and vote grouping (``equivalence``),
metrics with intervals (``metrics``) and problem sets (``datasets``, ``synth``). Nothing here imports
llama_cpp; huggingface_hub is reached only through ``edgekv.hub.datasets``, lazily.
"""
