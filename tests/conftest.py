"""Shared fixtures: real components (embedder, Qdrant local, token validation), no mocks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The int8 ONNX embedder (the default backend) is exported once per machine, not once per test
# runtime: runtimes that build their own embedder share this cache (keyed by weights and versions).
os.environ.setdefault("CLEARANCE_EMBEDDING__MODEL_CACHE_DIR", str(Path.home() / ".cache" / "clearance" / "models"))

from acl.dev.entra_stub import EntraStub
from acl.dev.idp import DevIdentityProvider
from clearance.compose import Runtime, build_runtime
from clearance.settings import IndexSettings, IngestSettings, Mode, Settings
from index.embedding import SentenceTransformerEmbedder, default_model_path, set_torch_threads

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLEARANCE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

TENANT = "d1f72fea-086f-4448-9dce-2f71deb8ef72"
OTHER_TENANT = "d397c693-4a32-47ad-9ee4-9ad621108730"
# Entra object ids are GUIDs; tests use recognisable ones.
G1 = "c1000000-0000-4000-8000-000000000001"
G2 = "c2000000-0000-4000-8000-000000000002"
G_FINANCE = "c3000000-0000-4000-8000-000000000003"


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The real all-MiniLM-L6-v2, loaded once for the whole run."""
    set_torch_threads(1)
    return SentenceTransformerEmbedder(model_path=default_model_path())


def write_users(path: Path) -> Path:
    """A small development directory of two tenants for tests that do not use the samples."""
    users = {
        "tenants": [
            {"id": TENANT, "name": "Test Tenant", "domain": "test.example"},
            {"id": OTHER_TENANT, "name": "Other Tenant", "domain": "other.example"},
        ],
        "groups": [],
        "users": [
            {
                "name": "admin",
                "display_name": "Ada Admin",
                "tenant": TENANT,
                "oid": "a0000000-0000-4000-8000-000000000001",
                "groups": [],
                "roles": ["Clearance.Admin"],
                "guest": False,
            },
            {
                "name": "overage",
                "display_name": "Olga Overage",
                "tenant": TENANT,
                "oid": "a0000000-0000-4000-8000-000000000002",
                "groups": [G_FINANCE] + [f"d1000000-0000-4000-8000-{i:012d}" for i in range(230)],
                "roles": [],
                "guest": False,
            },
        ],
    }
    path.write_text(json.dumps(users), encoding="utf-8")
    return path


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        users_file=write_users(tmp_path / "users.json"),
        index=IndexSettings(location=":memory:"),
        mode=Mode.DEVELOPMENT,
        # In-process parsing: a worker process per test runtime would cost seconds each; the
        # isolated parser has its own tests (tests/test_parse_limits.py, tests/test_compose.py).
        ingest=IngestSettings(allowed_roots={TENANT: [tmp_path / "corpus"]}, isolate_parsing=False),
    )


@pytest.fixture()
def runtime(settings: Settings, embedder: SentenceTransformerEmbedder) -> Iterator[Runtime]:
    rt = build_runtime(settings, embedder=embedder)
    yield rt
    rt.close()


@pytest.fixture()
def idp(runtime: Runtime) -> DevIdentityProvider:
    assert runtime.dev is not None
    return runtime.dev.idp


def write_doc(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_acl(folder_or_file: Path, *, allow: list[str], deny: list[str] | None = None, inherit: bool = False) -> None:
    """A folder manifest when given a folder, else the file's sidecar."""
    target = (
        folder_or_file / ".acl.json"
        if folder_or_file.is_dir()
        else folder_or_file.with_name(folder_or_file.name + ".acl.json")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"allow": allow, "deny": deny or [], "inherit": inherit}), encoding="utf-8")


class ManualClock:
    """A clock tests move by hand (``clock.now += 61``), for TTLs and cooldowns."""

    def __init__(self, *, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def stub() -> Iterator[EntraStub]:
    """A local HTTPS Entra ID / Graph stub, one per test module that asks for it."""
    with EntraStub() as server:
        yield server


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fails instead of hanging: a FIFO opened for reading blocks forever (main thread only)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s (blocked on a FIFO?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
