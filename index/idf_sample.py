"""IDF from a fixed sample of the chunks a caller may read, when they are too many to count per query.

Sparse and hybrid searches weigh query terms by IDF over the caller's readable chunks
(never the whole collection: see :mod:`index.sparse`). The engine computes it by
walking every chunk of that population through the security filter on each query,
0.7-1.5 µs a chunk on 2 cores: 81 ms for a caller who reads 10 % of a million chunks,
167 ms at 45 % (medians), while the rest of the search takes 10-30 ms.

So every chunk gets a slot, a stable hash of its id into :data:`SLOTS` slots, written
with the chunk (:data:`FIELD`, range-indexed). When a caller's population is large, the
IDF population is narrowed to the first ``n`` slots: the same security filter *and*
``slot < n``. The statistics still come only from chunks the caller may read (the sample
is the security filter narrowed further, never wider), each term's document frequency
and the population are counted over the same sample, so their ratio stays an unbiased
estimate, and the sample is the same for every query of a caller, so rankings are
stable. Which chunks are in it depends on nothing a document says.

Only the walk is bounded: the engine walks the smaller of the caller's population and
the slots' chunks (of every caller), so ``n`` is chosen from the shard's size.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

#: Payload field holding a chunk's slot (an integer, range-indexed).
FIELD = "idf_slot"
#: Slots a shard's chunks are hashed into: the sample's granularity (1/1024 of the shard).
SLOTS = 1024


def slot_of(chunk_id: str) -> int:
    """A chunk's slot: a hash of its id alone, so the same chunk always lands in the same one."""
    return zlib.crc32(chunk_id.encode("utf-8")) % SLOTS


@dataclass(frozen=True, slots=True)
class IdfSampling:
    """When and how far the IDF population is narrowed to a sample of slots.

    ``max_walked``: chunks the engine may walk for IDF statistics per query; a caller whose
    estimated population is at most this counts every readable chunk (0: never sample).
    ``min_sample``: readable chunks (estimated) a sample must hold; where the walk bound
    would leave fewer, the sample grows and the walk with it. Measured on SciFact
    (``python -m benchmarks.retrieval_modes --idf-sample``) and at 1M chunks (docs/scale.md).
    """

    max_walked: int = 10_000
    min_sample: int = 1_000

    def __post_init__(self) -> None:
        if self.max_walked < 0 or self.min_sample < 1:
            raise ValueError("IDF sampling needs max_walked >= 0 and min_sample >= 1")

    def slots(self, *, estimate: int, points: int) -> int | None:
        """Slots the IDF population is narrowed to (``slot < n``), or None to count every readable chunk.

        ``estimate`` is the engine's estimate of the caller's readable chunks, ``points``
        the shard's chunks. None also where a sample would walk as many chunks as the
        whole population (a small share of a large shard).
        """
        if self.max_walked == 0 or estimate <= self.max_walked or points <= 0:
            return None
        share = max(self.max_walked / points, self.min_sample / estimate)
        slots = math.ceil(SLOTS * share)
        if slots >= SLOTS or slots * points / SLOTS >= estimate:
            return None
        return slots
