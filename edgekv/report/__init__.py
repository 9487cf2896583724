"""Formatting only: plans, specs, runs and evaluations as rich tables or JSON-ready dicts.

One module per verb family; no re-exports (import the module you need).
"""
