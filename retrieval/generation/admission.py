"""A fair, bounded waiting line in front of a model that serves one request at a time.

A local model (one llama.cpp context) writes one answer at a time. A plain
lock in front of it is unfair (any waiter may win) and unbounded (a waiter may
wait forever). Here every request takes a ticket: tickets are served in the
order they were taken (FIFO), at most ``max_waiting`` may wait at once, and no
ticket waits longer than ``max_wait_seconds``. Past either bound the request
gets :class:`~core.errors.ModelBusyError` with a ``Retry-After`` estimate
from how long recent answers held the model. A waiting ticket knows its place
in the line (1: next), so a stream can show it, and a ticket whose request is
cancelled leaves the line at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from core.cancel import Cancellation
from core.errors import ModelBusyError

# A cancelled waiter notices within this long (the line is a condition variable; the flag is not).
_CANCEL_POLL_SECONDS = 0.05


class ModelAdmission:
    """FIFO tickets for ``slots`` concurrent holders of one model, with a bounded line."""

    def __init__(
        self,
        *,
        max_waiting: int,
        max_wait_seconds: float,
        slots: int = 1,
        typical_hold_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots < 1 or max_waiting < 0 or max_wait_seconds <= 0:
            raise ValueError("admission needs slots >= 1, max_waiting >= 0 and max_wait_seconds > 0")
        self.max_waiting = max_waiting
        self.max_wait_seconds = max_wait_seconds
        self._slots = slots
        self._clock = clock
        self._changed = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._holders = 0
        # How long one answer holds the model, smoothed: the basis of Retry-After.
        self._hold_seconds = typical_hold_seconds

    @property
    def waiting(self) -> int:
        with self._changed:
            return len(self._waiting)

    @property
    def holders(self) -> int:
        with self._changed:
            return self._holders

    def retry_after(self) -> int:
        """Seconds after which a new request has a fair chance of a place: the line ahead of it, served."""
        with self._changed:
            return self._retry_after_locked()

    def ensure_room(self) -> None:
        """ModelBusyError when a new ticket would be refused now (checked before a stream's response starts)."""
        with self._changed:
            if self._full_locked():
                raise ModelBusyError(self._retry_after_locked())

    def join(self) -> Ticket:
        """A ticket at the end of the line (admitted at once when a slot is free and nobody waits)."""
        with self._changed:
            if self._full_locked():
                raise ModelBusyError(self._retry_after_locked())
            ticket = Ticket(self, joined=self._clock())
            self._waiting.append(ticket)
            self._admit_locked()
            return ticket

    # -- used by Ticket, under the condition's lock -------------------------------------------

    def _full_locked(self) -> bool:
        return self._holders >= self._slots and len(self._waiting) >= self.max_waiting

    def _retry_after_locked(self) -> int:
        rounds = (len(self._waiting) + self._holders) / self._slots
        return max(1, math.ceil(rounds * self._hold_seconds))

    def _admit_locked(self) -> None:
        while self._waiting and self._holders < self._slots:
            ticket = self._waiting.popleft()
            ticket._admitted_at = self._clock()
            self._holders += 1
        self._changed.notify_all()

    def _position_locked(self, ticket: Ticket) -> int:
        for place, waiting in enumerate(self._waiting, start=1):
            if waiting is ticket:
                return place
        return 0

    def _leave(self, ticket: Ticket) -> None:
        with self._changed:
            if ticket._left:
                return
            ticket._left = True
            if ticket._admitted_at is not None:
                self._holders -= 1
                held = self._clock() - ticket._admitted_at
                self._hold_seconds = 0.7 * self._hold_seconds + 0.3 * held
            else:
                self._waiting.remove(ticket)
            self._admit_locked()


class Ticket:
    """One request's place in the line; ``leave()`` (always, in ``finally``) frees it, waiting or admitted."""

    def __init__(self, line: ModelAdmission, *, joined: float) -> None:
        self._line = line
        self._joined = joined
        self._admitted_at: float | None = None
        self._left = False

    @property
    def admitted(self) -> bool:
        with self._line._changed:
            return self._admitted_at is not None and not self._left

    @property
    def position(self) -> int:
        """1 for the next in line, 2 behind it, ...; 0 once admitted (or gone)."""
        with self._line._changed:
            return self._line._position_locked(self)

    def leave(self) -> None:
        self._line._leave(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *_: object) -> None:
        self.leave()

    def positions(self, cancel: Cancellation | None = None) -> Iterator[int]:
        """Waits for admission, yielding the place in line each time it changes (first: the place now).

        Returns when admitted, or as soon as ``cancel`` is set (the ticket then
        leaves the line: nobody waits behind a request nobody reads). Raises
        ModelBusyError once the ticket has waited ``max_wait_seconds``.
        """
        line = self._line
        deadline = self._joined + line.max_wait_seconds
        shown = -1
        while True:
            with line._changed:
                if self._admitted_at is not None:
                    return
                if cancel is not None and cancel.cancelled:
                    self._leave_locked_free()
                    return
                remaining = deadline - line._clock()
                if remaining <= 0:
                    retry = line._retry_after_locked()
                    self._leave_locked_free()
                    raise ModelBusyError(retry)
                place = line._position_locked(self)
                if place == shown:
                    line._changed.wait(min(remaining, _CANCEL_POLL_SECONDS if cancel is not None else remaining))
                    continue
            shown = place
            yield place

    def wait(self, cancel: Cancellation | None = None) -> bool:
        """Blocks until admitted (True) or cancelled (False); ModelBusyError past the bound."""
        for _ in self.positions(cancel):
            pass
        return self.admitted

    def _leave_locked_free(self) -> None:
        # Called with the line's lock held; the lock is re-entrant only through _leave's own acquire.
        self._left = True
        self._line._waiting.remove(self)
        self._line._admit_locked()
