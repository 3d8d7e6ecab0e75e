"""Which embedder filled an index: recorded on first use, checked on every open.

Vectors of different embedders (another model, or the same model at another
precision: torch fp32 against int8 ONNX) are close but not interchangeable; an
index searched with query vectors of one and chunk vectors of the other ranks
worse without any error to show for it. So each index records its embedder's
``fingerprint`` and refuses to open under another one, with a message that
says which two met.

Where the record lives: in the collection's metadata for qdrant-client (local
folders and servers alike), in ``embedding.json`` beside the shard for Qdrant's
in-process engine. An index from before records existed was filled by torch
fp32, the only backend then: it is adopted by a torch embedder and refused by
any other.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from qdrant_client import QdrantClient

from core.errors import IndexUnavailableError
from index.ports import ChunkIndex

STAMP_KEY = "clearance_embedding"
STAMP_FILE = "embedding.json"
LEGACY_PREFIX = "torch-fp32/"  # what filled every index written before stamps existed


class EmbeddingMismatchError(IndexUnavailableError):
    """The index holds vectors of another embedder than the one this process uses."""


class EmbeddingStamp(Protocol):
    """Where one index keeps the fingerprint of the embedder that filled it."""

    def read(self) -> str | None: ...

    def write(self, fingerprint: str) -> None: ...


class CollectionStamp:
    """The fingerprint in a qdrant-client collection's metadata (local mode or a server from 1.16)."""

    def __init__(self, *, client: QdrantClient, collection: str) -> None:
        self._client = client
        self._collection = collection

    def read(self) -> str | None:
        metadata = self._client.get_collection(self._collection).config.metadata or {}
        value = metadata.get(STAMP_KEY)
        return value if isinstance(value, str) else None

    def write(self, fingerprint: str) -> None:
        self._client.update_collection(self._collection, metadata={STAMP_KEY: fingerprint})


class FolderStamp:
    """The fingerprint in ``embedding.json`` inside an index folder, replaced atomically."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / STAMP_FILE

    def read(self) -> str | None:
        try:
            value = json.loads(self._path.read_text(encoding="utf-8")).get(STAMP_KEY)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError) as exc:
            # Unreadable is not "absent": adopting it could hide a mismatch.
            raise EmbeddingMismatchError(f"cannot read the embedder record {self._path}: {type(exc).__name__}") from exc
        if not isinstance(value, str):
            raise EmbeddingMismatchError(f"the embedder record {self._path} has no {STAMP_KEY!r} string")
        return value

    def write(self, fingerprint: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".embedding-", dir=self._path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump({STAMP_KEY: fingerprint}, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def verify_embedding(stamp: EmbeddingStamp, *, fingerprint: str, index: ChunkIndex, where: str) -> None:
    """Records ``fingerprint`` on a new index; raises EmbeddingMismatchError when the index was filled by another."""
    recorded = stamp.read()
    if recorded == fingerprint:
        return
    if recorded is not None:
        raise EmbeddingMismatchError(
            f"the index at {where} holds vectors of embedder {recorded!r}, but this process embeds with "
            f"{fingerprint!r}: their vectors are not comparable. Use the embedding backend and model that built "
            "the index, or re-ingest into a new index location"
        )
    if index.count(live_only=False) > 0 and not fingerprint.startswith(LEGACY_PREFIX):
        raise EmbeddingMismatchError(
            f"the index at {where} was filled before embedders were recorded, by the torch fp32 embedder; this "
            f"process embeds with {fingerprint!r}. Use the 'torch' embedding backend, or re-ingest into a new index"
        )
    stamp.write(fingerprint)
    # Two processes opening one new index with different embedders at once: the later write wins and the
    # earlier writer usually learns it here. Not a lock; the window is the two calls above.
    if stamp.read() != fingerprint:
        raise EmbeddingMismatchError(f"the index at {where} was claimed by another embedder while opening it")
