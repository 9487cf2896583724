"""``edgekv serve``: the plan's model as an OpenAI-compatible HTTP server on edgekv's engine.

``protocol`` checks request bodies (pure), ``worker`` owns llama.cpp on one engine thread, ``app``
is the Starlette app on uvicorn (the ``edgekv[serve]`` extra) and its shutdown. docs/serve.md.
"""
