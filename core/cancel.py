"""A cancellation flag shared between a request and the work it started.

The API sets it when a streaming client disconnects or presses Stop; a
generator checks it between pieces and stops, releasing its model at once
instead of generating for nobody.
"""

from __future__ import annotations

import threading


class Cancellation:
    """Set once, read from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
