"""Run options the command line names before anything heavy is imported."""

from __future__ import annotations

from enum import StrEnum


class QueryCache(StrEnum):
    """The product's query-embedding cache during a run; answers are the same either way, timings are not."""

    OFF = "off"  # every "embed" timing is a real embedding (each question is asked once per persona)
    AS_CONFIGURED = "as-configured"  # faster when questions repeat: for gates that check quality only
