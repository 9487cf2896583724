"""Start ``edgekv serve`` as a subprocess on 127.0.0.1 with an ephemeral port, for the tests and benches."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ADDRESS = re.compile(r"on (http://127\.0\.0\.1:\d+)/v1")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT
    log: Path

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def metrics(self, api_key: str | None = None) -> dict[str, float]:
        req = urllib.request.Request(self.url + "/metrics")
        if api_key:
            req.add_header("Authorization", f"Bearer {api_key}")
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))}


def start(model: Path, *args: str, log: Path, verbose: bool = True, timeout: float = 120) -> Server:
    """``python -m edgekv [-v] serve MODEL --port 0 ARGS``; returns once /health answers."""
    cmd = [sys.executable, "-m", "edgekv", *(["-v"] if verbose else []), "serve", str(model), "--port", "0", *args]
    fh = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edgekv serve exited {proc.returncode}: {log.read_text()}")
        m = ADDRESS.search(log.read_text(errors="replace"))
        if m:
            url = m.group(1)
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return Server(proc, url, log)
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"edgekv serve did not answer within {timeout} s (address {url}): {log.read_text()}")
