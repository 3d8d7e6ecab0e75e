"""Retention in the roof: the policy from settings, and the scheduled run inside ``clearance serve``.

The schedule is a daemon thread that wakes every interval.

It is started when the app starts and stopped when it shuts down (the app's
lifespan), and it never takes the server down with it: a run that fails (the
store unreachable, a database error) is logged and tried again at the next
interval. Replicas may each run it: every step is idempotent, and audit cuts
are serialized on each chain's head lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from clearance.settings import Settings
from core.errors import StoreUnavailableError
from store.retention import SCHEDULER_ACTOR, RetainedKind, Retention, RetentionPolicy
from store.retention_sources import expiring_records, personal_records
from store.state import Store

log = logging.getLogger(__name__)


class RetentionSchedule:
    """Calls ``run`` after ``first_delay_seconds``, then every ``interval_seconds``, until stopped."""

    def __init__(
        self, *, run: Callable[[], object], interval_seconds: float, first_delay_seconds: float | None = None
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("the retention interval must be positive")
        self._run = run
        self._interval = interval_seconds
        self._first_delay = interval_seconds if first_delay_seconds is None else first_delay_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed runs (for tests and the log)
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the retention schedule was already started")
        self._thread = threading.Thread(target=self._loop, name="clearance-retention", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_seconds: float = 30.0) -> None:
        """Stops waiting at once; a run in progress finishes its current step (bounded by ``timeout_seconds``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
            if self._thread.is_alive():
                log.warning("retention run still in progress at shutdown; it ends with the process")

    def _loop(self) -> None:
        delay = self._first_delay
        while not self._stop.wait(delay):
            try:
                self._run()
                self.runs += 1
            except StoreUnavailableError as exc:
                self.failures += 1
                log.warning("scheduled retention skipped: %s; next try in %.0f s", exc, self._interval)
            except Exception:
                self.failures += 1
                log.exception("scheduled retention failed; next try in %.0f s", self._interval)
            delay = self._interval


def retention_policy(settings: Settings) -> RetentionPolicy:
    config = settings.retention
    return RetentionPolicy(
        days={
            RetainedKind.CONVERSATIONS: config.conversations_days,
            RetainedKind.FEEDBACK: config.feedback_days,
            RetainedKind.REVIEW: config.review_days,
            RetainedKind.AUDIT: config.audit_days,
        }
    )


def build_retention(settings: Settings, store: Store, *, clock: Callable[[], float] = time.time) -> Retention:
    """The retention policy over ``store``'s records (also what forget-user runs)."""
    return Retention(
        log=store.audit,
        policy=retention_policy(settings),
        expiring=expiring_records(store),
        personal=personal_records(store),
        clock=clock,
    )


def build_schedule(settings: Settings, retention: Retention) -> RetentionSchedule | None:
    """The scheduled run for ``clearance serve``; None when the setting turns it off."""
    config = settings.retention
    if not config.schedule:
        return None

    def run() -> None:
        report = retention.run(actor=SCHEDULER_ACTOR)
        log.info("retention: removed %s", report.removed)
        for chain in report.refused:
            log.warning("retention left an audit chain whole, it does not verify: %s", chain.refused)

    return RetentionSchedule(
        run=run, interval_seconds=config.interval_seconds, first_delay_seconds=config.first_run_delay_seconds
    )
