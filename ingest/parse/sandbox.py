"""Parse documents in separate, bounded worker processes.

A hostile or merely unlucky file can make a parser run for minutes, inflate gigabytes
or crash the interpreter. :class:`IsolatedParser` runs :func:`parse_document` in
long-lived worker processes so that none of this reaches the process that calls it:

* **time**: the caller waits at most ``time_limit_s`` for one parse, then kills the
  worker's whole process group (so a pandoc it started dies with it);
* **memory**: each worker sets ``RLIMIT_AS`` to ``memory_limit_bytes`` before it imports
  any parser, so an allocation past it fails in that worker only; programs it starts
  (pandoc) inherit the limit. A parse that fails with MemoryError, or with its address
  space at the limit (lxml reports a failed allocation as a syntax error), ends the
  worker and reports "parser ran out of memory";
* **crashes**: a worker that dies takes only the current file with it; the next call
  starts a fresh worker.

With ``workers=N`` up to N parses run at once, each in its own worker under the same
limits (so the memory the parsers may take is N times ``memory_limit_bytes``); callers
past N wait for a free worker. A worker starts when a call first needs it. The
size, ratio, page and text limits of :class:`ParseLimits` are applied by
:func:`parse_document` itself, in the worker, so the isolated and in-process paths
refuse the same files with the same reasons.

How a worker starts: a fresh interpreter (``sys.executable``, the parent's
``sys.path``), never a fork, which would copy torch's thread pools and locks out of the
API process. It is launched with :mod:`subprocess` and talks over a
:func:`multiprocessing.Pipe`, rather than through ``multiprocessing.Process`` with the
"spawn" context, because spawn re-runs the parent's main script in the child: a script
without an ``if __name__ == "__main__"`` guard then fails to start the worker, and any
module the script imports at the top (the embedder, torch) would load in the worker
too. What runs in the worker is :mod:`ingest.parse.worker`: it marks torch and
sentence-transformers unimportable before it imports anything (spaCy's thinc would load
torch otherwise), and imports every parser once, at start-up, so that a parse's time
limit measures the parse and not the imports. Linux only (``RLIMIT_AS``, process groups).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from core.errors import ClearanceError, DocumentParseError
from ingest.parse.elements import ParsedDocument
from ingest.parse.registry import DEFAULT_LIMITS, ParseLimits
from ingest.parse.worker import BOOTSTRAP, EXIT_OUT_OF_MEMORY, Reply

log = logging.getLogger(__name__)

_MB: Final = 1024 * 1024
_STOP_GRACE_S: Final = 2.0
# One thread per numeric library: each extra BLAS thread reserves address space that
# counts against RLIMIT_AS, and parsing gains nothing from them.
_THREAD_ENV: Final = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ParserUnavailableError(ClearanceError):
    """A worker could not be started, or the parser was closed during a parse.

    Not a :class:`DocumentParseError`: it says nothing about the file. The ingestion
    pipeline still records it as that file's error and, failing closed, removes the
    file's earlier version from the index (the next run indexes it again).
    """


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    connection: Connection
    alive_writer: int  # never written: the worker sees it close when this process ends
    started_s: float = 0.0  # how long its start-up (imports and warm-up) took


class IsolatedParser:
    """``parse_document`` in reused worker processes, under :class:`ParseLimits`.

    Call it like ``parse_document``: ``parser(path) -> ParsedDocument``, or
    :class:`DocumentParseError` with a short reason. Up to ``workers`` calls run at once,
    from as many threads, each in its own worker process; further calls wait their
    turn. A worker starts on the first call that needs it, or on :meth:`start`;
    start-up is counted against ``start_timeout_s``, not against ``time_limit_s``.
    :meth:`close` (or leaving a ``with`` block) ends them all.
    """

    def __init__(
        self, limits: ParseLimits = DEFAULT_LIMITS, *, workers: int = 1, start_timeout_s: float = 120.0
    ) -> None:
        if start_timeout_s <= 0:
            raise ValueError("start_timeout_s must be positive")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.limits = limits
        self._slots = tuple(_Slot(limits, start_timeout_s) for _ in range(workers))
        # Last in, first out: a lightly loaded parser keeps reusing one warm worker
        # instead of starting every worker in turn.
        self._idle: queue.LifoQueue[_Slot] = queue.LifoQueue()
        for slot in reversed(self._slots):
            self._idle.put(slot)
        self._closed = False

    # -- public --------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """How many parses may run at once (one worker process each)."""
        return len(self._slots)

    def __call__(self, path: Path) -> ParsedDocument:
        # Absolute: the worker's working directory is fixed when it starts.
        request = str(Path(path).absolute())
        if self._closed:
            raise ParserUnavailableError("the parser is closed")
        slot = self._idle.get()
        try:
            return slot.parse(request)
        finally:
            self._idle.put(slot)

    def start(self) -> float:
        """Start every worker that is not running, together; return the longest start-up (s)."""
        if self._closed:
            raise ParserUnavailableError("the parser is closed")
        if len(self._slots) == 1:
            return self._slots[0].start()
        with ThreadPoolExecutor(len(self._slots), thread_name_prefix="parser-start") as starting:
            return max(starting.map(_Slot.start, self._slots))

    @property
    def worker_pid(self) -> int | None:
        """A running worker's process id, or ``None`` (for operators and tests)."""
        return next(iter(self.worker_pids), None)

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The process ids of the running workers."""
        return tuple(pid for slot in self._slots if (pid := slot.pid) is not None)

    def close(self) -> None:
        """End every worker. A parse in progress in another thread fails with :class:`ParserUnavailableError`."""
        self._closed = True
        for slot in self._slots:
            slot.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class _Slot:
    """One worker process at a time, for one parse at a time: started, reused, replaced, stopped."""

    def __init__(self, limits: ParseLimits, start_timeout_s: float) -> None:
        self._limits = limits
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        worker = self._worker
        return worker.process.pid if worker is not None and worker.process.poll() is None else None

    def parse(self, request: str) -> ParsedDocument:
        with self._lock:
            if self._closed:
                raise ParserUnavailableError("the parser is closed")
            worker = self._ensure_worker()
            if self._closed:  # closed while the worker was starting: `close` could not reach it
                raise ParserUnavailableError("the parser is closed")
            try:
                worker.connection.send(request)
            except OSError:  # the worker died between two calls: a fresh one takes the file
                self._discard(worker)
                worker = self._ensure_worker()
                worker.connection.send(request)
            if not worker.connection.poll(self._limits.time_limit_s):
                self._discard(worker)
                raise DocumentParseError(f"parsing took longer than {self._limits.time_limit_s:g} s")
            try:
                reply: Reply = worker.connection.recv()
            except (EOFError, OSError):
                if self._closed:
                    self._discard(worker)
                    raise ParserUnavailableError("the parser was closed during the parse") from None
                reason = self._death_reason(worker)
                self._discard(worker)
                raise DocumentParseError(reason) from None
            match reply:
                case ("ok", ParsedDocument() as document, bool(retiring)):
                    if retiring:
                        self._discard(worker)
                    return document
                case ("error", str(reason)):
                    raise DocumentParseError(reason)
                case _:
                    self._discard(worker)
                    raise DocumentParseError("parser crashed (unexpected reply)")

    def start(self) -> float:
        with self._lock:
            if self._closed:
                raise ParserUnavailableError("the parser is closed")
            return self._ensure_worker().started_s

    def close(self) -> None:
        self._closed = True
        if not self._lock.acquire(blocking=False):
            # A parse is running: kill its worker so that the caller returns now, not at
            # the end of the time limit; it then sees `_closed` and reports the shutdown.
            worker = self._worker
            if worker is not None:
                _kill_group(worker.process, signal.SIGKILL)
            self._lock.acquire()
        try:
            if self._worker is not None:
                self._stop(self._worker)
        finally:
            self._lock.release()

    # -- worker management (called with the lock held) ----------------------------------

    def _ensure_worker(self) -> _Worker:
        if self._worker is not None and self._worker.process.poll() is None:
            return self._worker
        if self._worker is not None:
            self._discard(self._worker)
        started = time.monotonic()
        worker = _launch(self._limits)
        reply: Reply | None = None
        reason = f"start-up took longer than {self._start_timeout_s:g} s"
        if worker.connection.poll(self._start_timeout_s):
            with contextlib.suppress(EOFError, OSError):
                reply = worker.connection.recv()
            if reply is None:
                reason = self._death_reason(worker)
            elif reply[0] == "failed":
                reason = str(reply[1])
        if reply is None or reply[0] != "ready":
            self._discard(worker)
            raise ParserUnavailableError(f"parser could not start: {reason}")
        worker.started_s = time.monotonic() - started
        log.info("parser worker %s started in %.1f s", worker.process.pid, worker.started_s)
        self._worker = worker
        return worker

    def _death_reason(self, worker: _Worker) -> str:
        """Why a worker that stopped answering is gone, in a few words."""
        try:
            code = worker.process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("parser worker %s closed its pipe but did not exit", worker.process.pid)
            return "parser crashed"
        if code == EXIT_OUT_OF_MEMORY:
            return f"parser ran out of memory (limit {self._limits.memory_limit_bytes // _MB} MB)"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            log.warning("parser worker %s died of %s", worker.process.pid, name)
            return f"parser crashed ({name})"
        log.warning("parser worker %s ended with status %s", worker.process.pid, code)
        return "parser crashed"

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker that cannot be trusted with another file, and forget it."""
        _kill_group(worker.process, signal.SIGTERM)
        try:
            worker.process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(worker.process, signal.SIGKILL)
            worker.process.wait()
        worker.connection.close()
        os.close(worker.alive_writer)
        if self._worker is worker:
            self._worker = None

    def _stop(self, worker: _Worker) -> None:
        """Ask an idle worker to leave; kill it if it does not."""
        with contextlib.suppress(OSError):
            worker.connection.send(None)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(_STOP_GRACE_S)
        self._discard(worker)


def _launch(limits: ParseLimits) -> _Worker:
    """Start a worker interpreter in its own session (and so its own process group)."""
    ours, theirs = Pipe(duplex=True)
    alive_reader, alive_writer = os.pipe()
    import_path = json.dumps([str(entry) for entry in sys.path])
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", BOOTSTRAP, import_path, str(theirs.fileno()), str(alive_reader)],
            pass_fds=(theirs.fileno(), alive_reader),
            env={**os.environ, **_THREAD_ENV},
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a group to kill on timeout, and no Ctrl-C from the terminal
        )
    except BaseException:
        ours.close()
        os.close(alive_writer)
        raise
    finally:
        # The worker holds these ends now; closing ours lets a dead worker read as EOF.
        theirs.close()
        os.close(alive_reader)
    worker = _Worker(process=process, connection=ours, alive_writer=alive_writer)
    with contextlib.suppress(OSError):  # a worker that died at once reads as EOF next
        ours.send(limits)
    return worker


def _kill_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Signal the worker's process group: the worker and any program it started.

    Only while the worker is not yet reaped, so its id (which is also the group's) has
    not been reused.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
