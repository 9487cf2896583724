"""Pure arithmetic: the memory model, the one fit search, the rule and ``pick()``, on ints of bytes and
tokens; frozen dataclasses out. No file, env, clock or log access (an import-linter contract in
pyproject): what it reads (the catalog, plan files, speed samples, cards, profiles) is ``edgekv.store``.
"""
