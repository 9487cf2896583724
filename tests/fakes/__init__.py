"""Fakes that speak real protocols (style guide §6): ``hub.FakeHub`` is an HTTP server on 127.0.0.1."""
