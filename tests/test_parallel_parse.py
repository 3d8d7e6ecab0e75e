"""Several parsing workers at once: each parses in its own process under the same limits.

Real worker processes and real files (as in tests/test_parse_limits.py); each test
starts its own workers, a few seconds each on two cores.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ingest.parse import IsolatedParser, ParseLimits, ParserUnavailableError, parse_document
from tests.test_parse_limits import SHARED_LIMITS, make_md, make_slow_text, refusal

MiB = 1024 * 1024


def address_space_limit(pid: int) -> int:
    """The soft RLIMIT_AS of a running process, from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max address space"):
            return int(line.split()[3])
    raise AssertionError(f"no address space line for {pid}")


def test_one_call_at_a_time_keeps_to_one_worker(tmp_path: Path) -> None:
    md = make_md(tmp_path / "policy.md")
    with IsolatedParser(SHARED_LIMITS, workers=2) as parser:
        for _ in range(3):
            assert parser(md) == parse_document(md)
        assert len(parser.worker_pids) == 1  # the second worker is started only when two calls overlap


def test_a_short_file_parses_while_a_slow_one_runs_and_every_worker_has_the_memory_limit(tmp_path: Path) -> None:
    slow = make_slow_text(tmp_path / "slow.txt")  # about 20 s in-process on two busy cores
    md = make_md(tmp_path / "policy.md")
    limits = ParseLimits(time_limit_s=120.0, memory_limit_bytes=1536 * MiB)
    parser = IsolatedParser(limits, workers=2)
    try:
        parser.start()
        pids = parser.worker_pids
        assert len(set(pids)) == 2
        assert all(address_space_limit(pid) == 1536 * MiB for pid in pids)
        outcome: list[BaseException | None] = []

        def parse_slow() -> None:
            try:
                parser(slow)
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        slow_thread = threading.Thread(target=parse_slow)
        slow_thread.start()
        time.sleep(0.5)  # the slow parse has its worker
        assert parser(md) == parse_document(md)
        assert slow_thread.is_alive(), "the slow file finished first: the two parses were not concurrent"
    finally:
        parser.close()  # kills the busy worker: the slow parse returns now
    slow_thread.join(timeout=30)
    assert not slow_thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ParserUnavailableError)
    assert parser.worker_pids == ()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_every_worker_enforces_the_time_limit_and_is_replaced(tmp_path: Path) -> None:
    slow = [make_slow_text(tmp_path / f"slow-{n}.txt") for n in range(2)]
    md = make_md(tmp_path / "policy.md")
    with IsolatedParser(ParseLimits(time_limit_s=2.0), workers=2) as parser:
        parser.start()
        first = set(parser.worker_pids)
        reasons: list[str] = []
        started = time.monotonic()
        threads = [threading.Thread(target=lambda p=path: reasons.append(refusal(parser, p))) for path in slow]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.monotonic() - started
        assert reasons == ["parsing took longer than 2 s"] * 2
        # Both ran at once: about one limit plus the kill, not two limits in a row.
        assert elapsed < 2 * 2.0 + 3.0
        assert not any(Path(f"/proc/{pid}").exists() for pid in first)
        assert parser(md) == parse_document(md)
        assert not set(parser.worker_pids) & first


def test_workers_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="workers"):
        IsolatedParser(workers=0)


def test_closed_pool_refuses_new_files(tmp_path: Path) -> None:
    parser = IsolatedParser(SHARED_LIMITS, workers=2)
    parser.close()
    with pytest.raises(ParserUnavailableError):
        parser(make_md(tmp_path / "policy.md"))
    with pytest.raises(ParserUnavailableError):
        parser.start()
