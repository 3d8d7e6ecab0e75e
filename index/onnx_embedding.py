"""Text embedding with an int8 ONNX model on onnxruntime (implements :class:`index.ports.Embedder`).

The model is all-MiniLM-L6-v2 exported and quantized by :mod:`index.onnx_export`;
this module only runs it: the fast tokenizer, one ``InferenceSession``, mean
pooling and normalisation in numpy, as sentence-transformers does for the same
weights. No torch at run time.

One text per run, never a padded batch: dynamic quantization picks each
activation's int8 scale from the whole input tensor, so in a batch a text's
vector would depend on its batch-mates and on padding (cosine 0.976 between
"hi" alone and "hi" batched with long texts). Alone, a vector is a function of
its text only, the same at ingestion and at query time; and it costs nothing:
batches of 1 ran at least as fast as batches of 8 or 32 (no padding work).

Threads: onnxruntime's intra-op pool is per session, so documents (batches, during
ingestion) and queries (one text, from the API's thread pool) get a session each
when their thread settings differ. Spinning of idle pool threads is off: on a small
machine the spinning threads take the core that parsing processes or another
request need (the same trap that made two torch threads 60x slower per query).

Thread safety: ``InferenceSession.run`` is safe to call concurrently, and the
tokenizer is configured once in the constructor and only read afterwards, so
concurrent calls need no lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime

MODEL_FILE = "model_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True, slots=True)
class ExportedModel:
    """An int8 ONNX model folder and what a runtime needs to feed it."""

    folder: Path
    fingerprint: str  # which vectors it makes: recipe and source weights (not exporter versions)
    max_seq_length: int

    @property
    def model_file(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / TOKENIZER_FILE


def open_session(model_file: Path, *, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])


def load_tokenizer(path: Path, *, max_seq_length: int) -> Any:
    """The fast tokenizer as sentence-transformers drives it: truncated at the model's length, never padded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json may carry a fixed padding and truncation of its own (all-MiniLM-L6-v2's says 128): replace both.
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.no_padding()
    return tokenizer


def mean_pool(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Mean of the token vectors the attention mask keeps, scaled to unit length (sentence-transformers' pooling)."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
    return result


class OnnxEmbedder:
    """An exported int8 model on the CPU; thread-safe, no process-wide state."""

    def __init__(self, *, model: ExportedModel, threads: int = 1, query_threads: int = 1) -> None:
        self._model = model
        self._tokenizer = load_tokenizer(model.tokenizer_file, max_seq_length=model.max_seq_length)
        self._documents = open_session(model.model_file, threads=threads)
        self._queries = (
            self._documents if query_threads == threads else open_session(model.model_file, threads=query_threads)
        )
        self._inputs = {i.name for i in self._documents.get_inputs()}
        self._dimension = int(self._documents.get_outputs()[0].shape[-1])

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def fingerprint(self) -> str:
        return self._model.fingerprint

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        # The tokenizer encodes a whole list in parallel native threads; the model then runs text by text.
        encodings = self._tokenizer.encode_batch(list(texts)) if texts else []
        return [self._run(encoding, self._documents) for encoding in encodings]

    def embed_query(self, text: str) -> list[float]:
        return self._run(self._tokenizer.encode(text), self._queries)

    def _run(self, encoding: Any, session: onnxruntime.InferenceSession) -> list[float]:
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.ones_like(ids)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, {name: value for name, value in feeds.items() if name in self._inputs})[0]
        vector: list[float] = mean_pool(hidden, mask)[0].tolist()
        return vector
