"""A new edge shard keeps its payload storage in Qdrant's ``Cached`` tier, its payload indexes in the heap.

``Cached`` pages are read into the page cache when the shard is opened; ``Cold``
ones (the engine's default for payload storage) on first touch, which made every
question a fresh process had not seen before read its candidates' payload from disk
(docs/scale.md). Payload indexes stay where the engine puts them by default, in the
heap: moved to ``Cached`` they measured slower. A shard created before keeps its
segments as they were created: it must still open and answer exactly as before,
with its denials intact.
"""

from __future__ import annotations

import json
from pathlib import Path

import qdrant_edge as qe

from acl.principal import group_key, user_key
from index.edge import EdgeChunkIndex, EdgeTuning
from tests.conftest import TENANT
from tests.test_index_congruence import ALICE, DIM, ENG, FIN, GRACE, acl, document, embed, member

QUERY = "quarterly budget forecast"


def _placements(index: EdgeChunkIndex) -> dict[str, qe.Memory | None]:  # the engine's Memory is unhashable
    schema = index._call(lambda shard: shard.info().payload_schema)
    return {field: getattr(info.params, "memory", None) for field, info in schema.items()}


def _persisted_payload_memory(folder: Path) -> str | None:
    """The shard's payload placement as the engine persisted it (``edge_config.json``)."""
    stored: dict[str, object] = json.loads((folder / "shard" / "edge_config.json").read_text())
    value = stored.get("payload_memory")
    return None if value is None else str(value)


def _write_corpus(index: EdgeChunkIndex) -> None:
    index.replace_document(document("eng/plan.md", acl({group_key(TENANT, ENG)}), "quarterly budget forecast for eng"))
    index.replace_document(
        document(
            "fin/budget.md",
            acl({group_key(TENANT, FIN)}, deny={user_key(TENANT, GRACE)}),
            "quarterly budget forecast for finance",
        )
    )


def test_a_new_shard_creates_its_payload_storage_cached_and_leaves_its_payload_indexes_in_the_heap(
    tmp_path: Path,
) -> None:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM)
    try:
        index.ensure_schema()
        placements = _placements(index)
        assert placements, "the schema created no payload index"
        assert all(memory is None for memory in placements.values()), placements
    finally:
        index.close()
    assert _persisted_payload_memory(tmp_path / "edge") == "cached"


def test_without_prewarming_the_engine_default_is_left_alone(tmp_path: Path) -> None:
    index = EdgeChunkIndex(path=tmp_path / "edge", dimension=DIM, tuning=EdgeTuning(prewarmed=False))
    try:
        index.ensure_schema()
    finally:
        index.close()
    assert _persisted_payload_memory(tmp_path / "edge") is None


def test_a_shard_created_cold_opens_prewarmed_and_answers_the_same_with_its_denials(tmp_path: Path) -> None:
    folder = tmp_path / "edge"
    alice_fin, grace_fin = member(ALICE, FIN), member(GRACE, FIN)
    cold = EdgeChunkIndex(path=folder, dimension=DIM, tuning=EdgeTuning(prewarmed=False))
    try:
        cold.ensure_schema()
        _write_corpus(cold)
        before = [p.chunk_id for p in cold.search(alice_fin, list(embed(QUERY)), top_k=5, text=QUERY)]
    finally:
        cold.close()
    assert before, "the cold shard found nothing for a reader of the finance plan"

    warm = EdgeChunkIndex(path=folder, dimension=DIM)
    try:
        warm.ensure_schema()
        assert [p.chunk_id for p in warm.search(alice_fin, list(embed(QUERY)), top_k=5, text=QUERY)] == before
        budget = {p.chunk_id for p in warm.search(alice_fin, list(embed(QUERY)), top_k=5) if "finance" in p.text}
        assert budget, "the finance plan is readable to a member of finance"
        denied = warm.search(grace_fin, list(embed(QUERY)), top_k=5, text=QUERY)
        assert not budget & {p.chunk_id for p in denied}, "a deny entry stopped holding after reopening"
        # New writes land in the reopened shard and are found; the old indexes are kept as created.
        warm.replace_document(document("fin/q3.md", acl({group_key(TENANT, FIN)}), "quarterly budget forecast q3"))
        found = warm.search(alice_fin, list(embed("quarterly budget forecast q3")), top_k=5, text=QUERY)
        assert any("q3" in p.text for p in found)
    finally:
        warm.close()
