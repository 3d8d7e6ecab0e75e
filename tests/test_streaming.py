"""Streaming over a real socket: a client that leaves stops generation and frees the model.

The server is uvicorn on a loopback port and the client httpx, so the disconnect
is a real TCP close, not a test-client shortcut. The model is the real llama.cpp
runtime with SmolLM2-135M: its lock is what a later asker would wait on.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from api.app import create_app
from clearance.compose import Runtime
from retrieval.answer import AnswerService
from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.llama_cpp import LlamaCppGenerator
from tests.conftest import G1
from tests.local_models import smollm2_path
from tests.test_generators import policy_runtime  # noqa: F401  (fixture)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture()
def served(policy_runtime: Runtime) -> Iterator[tuple[str, LlamaCppGenerator, Runtime]]:  # noqa: F811
    generator = LlamaCppGenerator(model_path=smollm2_path(), threads=2, max_tokens=4000, use_grammar=False)
    answers = AnswerService(
        index=policy_runtime.index,
        embedder=policy_runtime.embedder,
        generator=generator,
        fallback=ExtractiveGenerator(),
        top_k=3,
        min_score=-1.0,  # always reach the model
    )
    app = create_app(dataclasses.replace(policy_runtime.api_components(), answers=answers))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", generator, policy_runtime
    server.should_exit = True
    thread.join(timeout=10)


def test_client_disconnect_stops_generation_and_releases_the_model(
    served: tuple[str, LlamaCppGenerator, Runtime],
) -> None:
    url, generator, runtime = served
    assert runtime.dev is not None
    token = runtime.dev.idp.mint(tenant_id=runtime.dev.directory.users[0].tenant, object_id=READER_OID, groups=[G1])
    body = {"question": "Write a very long story about the Berlin per diem, the hotels and the trains.", "stream": True}
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{url}/v1/chat", json=body, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status_code == 200
        # Only checked sentences are streamed, so the first event may come late; the model is busy
        # as soon as the response has started. Wait until it holds its lock, then walk away.
        deadline = time.monotonic() + 30
        while not generator._lock.locked() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert generator._lock.locked(), "the model never started"
        time.sleep(0.5)
    left_at = time.monotonic()
    # The lock is held while the model generates; it must be free soon after the client left.
    acquired = generator._lock.acquire(timeout=5)
    released_after = time.monotonic() - left_at
    assert acquired, "the model was still busy 5 s after the client disconnected"
    generator._lock.release()
    assert released_after < 2.0, released_after


READER_OID = "f0000000-0000-4000-8000-000000000001"
