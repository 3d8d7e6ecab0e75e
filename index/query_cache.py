"""Query embeddings reused for repeated questions (an :class:`index.ports.Embedder` wrapper).

Embedding the question is the largest cost of a search on the CPU, and people
ask the same questions again (the travel per diem, the holiday calendar).
:class:`QueryEmbeddingCache` keeps the vectors of recent query texts in a
bounded LRU keyed by the exact text.

Why this is safe: a query vector is a function of the text alone (same model,
same weights, no caller in the input), and it carries no access information.
Permission trimming happens after it, inside the index query, with the
caller's own security filter, so two callers asking the same question get the
same vector and each their own trimmed results. Document embeddings are never
cached: they pass straight through (ingestion embeds each chunk once anyway,
and chunk text is content under an ACL).

What a cache does reveal: timing. A hit answers in microseconds instead of a
forward pass, so a caller who guesses the exact text of a recent question can
tell that someone asked it (not who, and nothing of any document). Set the size
to 0 where the wording of other people's questions is itself confidential.

Vectors are stored as ``array('d')`` (3 KB for 384 dimensions, exact for any
float) rather than lists of Python floats (~12 KB), and every hit returns a new
list, so a caller mutating its vector cannot change what the next caller gets.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from index.ports import Embedder

# Texts longer than this pass through uncached, so the cache's memory is bounded by entries x this.
DEFAULT_MAX_TEXT_CHARS = 4096


@dataclass(frozen=True, slots=True)
class QueryCacheStats:
    hits: int
    misses: int
    entries: int


class QueryEmbeddingCache:
    """An embedder whose ``embed_query`` answers recently seen texts from memory; thread-safe and bounded."""

    def __init__(self, *, inner: Embedder, max_entries: int, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1 (use the inner embedder to disable caching)")
        self._inner = inner
        self._max_entries = max_entries
        self._max_text_chars = max_text_chars
        self._entries: OrderedDict[str, array[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def fingerprint(self) -> str:
        return self._inner.fingerprint

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            cached = self._entries.get(text)
            if cached is not None:
                self._entries.move_to_end(text)
                self._hits += 1
                return cached.tolist()
            self._misses += 1
        # The forward pass runs outside the lock: a miss never delays hits. Two concurrent misses of one
        # text both compute it; they store the same vector.
        vector = self._inner.embed_query(text)
        if len(text) <= self._max_text_chars:
            with self._lock:
                self._entries[text] = array("d", vector)
                self._entries.move_to_end(text)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return vector

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> QueryCacheStats:
        with self._lock:
            return QueryCacheStats(hits=self._hits, misses=self._misses, entries=len(self._entries))
