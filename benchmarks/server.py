"""The real app under uvicorn on loopback, for benchmarks that measure it over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from clearance.compose import Runtime, build_api


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_app(runtime: Runtime, *, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Serves ``runtime`` on 127.0.0.1 in a background thread; yields the base URL; stops on exit.

    Loopback only: a benchmark never listens where another machine could reach it.
    """
    port = free_port()
    config = uvicorn.Config(
        build_api(runtime.settings, runtime=runtime),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the benchmark server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
