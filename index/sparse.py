"""BM25-style term weights for chunks and queries, and how a search fuses them with the dense vectors.

The encoder is Qdrant's own BM25 (``qdrant_edge.Bm25``, Rust, in the package the
embedded engine already needs; no model download): word tokenizer, lower case,
English stop words, Snowball stemmer, each term hashed to a 32-bit index, and a
document term's weight saturated by term frequency and normalised by length,
``tf * (k + 1) / (tf + k * (1 - b + b * len / avg_len))``. A query term weighs 1.
IDF is not in the weights: the index applies it at query time (Qdrant's IDF
modifier), computed over the chunks the *caller* may read. Collection-wide IDF
would let a caller measure, through the scores of their own chunks, how many
chunks they cannot read contain a word ("Nimbus", an acquisition target). The
embedded engine counts a large population over a fixed sample of it
(:mod:`index.idf_sample`), still only of chunks the caller may read.

Its parameters are Qdrant's BM25 defaults (k 1.2, b 0.75, avg_len 256), so the
hashes and weights match what a Qdrant server's ``qdrant/bm25`` inference makes.
The ``fingerprint`` is stored with every chunk: a chunk written by another encoder
version or setting is found and re-encoded by ``backfill_sparse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

import qdrant_edge as qe

from index.ports import RetrievalMode, SparseVector

#: The named sparse vector in every implementation, beside ``index.qdrant.DENSE_VECTOR``.
SPARSE_VECTOR = "sparse"
#: Payload field naming the encoder that wrote a chunk's term weights (absent: none yet).
ENCODER_FIELD = "sparse_encoder"


@dataclass(frozen=True, slots=True)
class Bm25Params:
    k: float = 1.2
    b: float = 0.75
    avg_len: float = 256.0
    language: str = "english"


class Bm25Encoder:
    """Qdrant's BM25 tokenizer and term weighting, in-process (implements :class:`index.ports.SparseEncoder`)."""

    def __init__(self, params: Bm25Params | None = None) -> None:
        self._params = params or Bm25Params()
        p = self._params
        self._model = qe.Bm25(qe.Bm25Config(k=p.k, b=p.b, avg_len=p.avg_len, language=p.language))
        # The engine's version is part of the name: a tokenizer change in an upgrade is then detectable.
        self._fingerprint = f"qdrant-bm25/{version('qdrant-edge-py')}/{p.language}/k={p.k}/b={p.b}/avg={p.avg_len}"

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode_document(self, text: str) -> SparseVector:
        return _vector(self._model.embed_document(text))

    def encode_query(self, text: str) -> SparseVector:
        return _vector(self._model.embed_query(text))


def _vector(found: qe.SparseVector) -> SparseVector:
    return SparseVector(indices=tuple(int(i) for i in found.indices), values=tuple(float(v) for v in found.values))


@dataclass(frozen=True, slots=True)
class FusionParams:
    """How a search ranks: the default mode, and for hybrid the reciprocal-rank fusion of two branches.

    ``candidates``: chunks each branch passes to the fusion (at least ``top_k``).
    ``rrf_k``: the rank offset of RRF, score = sum of weight / (rrf_k + rank); 60 is the
    usual constant (Cormack et al.), under which one branch's first place cannot
    swamp agreement between the two. Weights scale each branch's votes.
    """

    mode: RetrievalMode = RetrievalMode.DENSE
    candidates: int = 50
    rrf_k: int = 60
    dense_weight: float = 1.0
    sparse_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.rrf_k < 0 or self.dense_weight < 0 or self.sparse_weight < 0:
            raise ValueError("fusion needs candidates >= 1, rrf_k >= 0 and non-negative weights")

    def mode_for(self, mode: RetrievalMode | None, text: str | None) -> RetrievalMode:
        """The mode a search runs in: the asked one or the default; dense when there is no text to match."""
        chosen = mode or self.mode
        return RetrievalMode.DENSE if not (text and text.strip()) else chosen
