"""Parse documents in a separate, bounded worker process.

A hostile or merely unlucky file can make a parser run for minutes, inflate gigabytes
or crash the interpreter. :class:`IsolatedParser` runs :func:`parse_document` in a
long-lived worker process so that none of this reaches the process that calls it:

* **time**: the caller waits at most ``time_limit_s`` for one parse, then kills the
  worker's whole process group (so a pandoc it started dies with it);
* **memory**: the worker sets ``RLIMIT_AS`` to ``memory_limit_bytes`` before it imports
  any parser, so an allocation past it fails in the worker only; programs it starts
  (pandoc) inherit the limit. A parse that fails with MemoryError, or with its address
  space at the limit (lxml reports a failed allocation as a syntax error), ends the
  worker and reports "parser ran out of memory";
* **crashes**: a worker that dies takes only the current file with it; the next call
  starts a fresh worker.

The size, ratio, page and text limits of :class:`ParseLimits` are applied by
:func:`parse_document` itself, in the worker, so the isolated and in-process paths
refuse the same files with the same reasons.

How the worker starts: a fresh interpreter (``sys.executable``, the parent's
``sys.path``), never a fork, which would copy torch's thread pools and locks out of the
API process. It is launched with :mod:`subprocess` and talks over a
:func:`multiprocessing.Pipe`, rather than through ``multiprocessing.Process`` with the
"spawn" context, because spawn re-runs the parent's main script in the child: a script
without an ``if __name__ == "__main__"`` guard then fails to start the worker, and any
module the script imports at the top (the embedder, torch) would load in the worker
too. The worker marks torch and sentence-transformers unimportable before it imports
anything (spaCy's thinc would load torch otherwise), and imports every parser once, at
start-up, so that a parse's time limit measures the parse and not the imports.
Linux only (``RLIMIT_AS``, process groups).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from core.errors import ClearanceError, DocumentParseError
from ingest.parse.elements import ParsedDocument
from ingest.parse.registry import DEFAULT_LIMITS, ParseLimits

log = logging.getLogger(__name__)

_MB: Final = 1024 * 1024
# Exit status of a worker that ran out of memory: it leaves at once rather than reply,
# since after a MemoryError even pickling the reply may fail, and a heap that grew to
# the limit is better thrown away than reused.
_EXIT_OUT_OF_MEMORY: Final = 75
_STOP_GRACE_S: Final = 2.0
_NEAR_LIMIT_SHARE: Final = 0.9  # of memory_limit_bytes: see `_near_memory_limit`
# Parsers imported when the worker starts (see `_warm_up`). Each costs import time once,
# instead of counting against the time limit of the first file of its format.
_WARM_MODULES: Final = (
    "unstructured.partition.docx",
    "unstructured.partition.pptx",
    "unstructured.partition.xlsx",
    "unstructured.partition.html",
    "unstructured.partition.md",
    "unstructured.partition.text",
    "unstructured.partition.email",
    "unstructured.partition.msg",
    "unstructured.partition.csv",
    "unstructured.partition.tsv",
    "unstructured.partition.rtf",
    "unstructured.partition.odt",
    "unstructured.partition.epub",
    "unstructured.partition.rst",
    "unstructured.partition.org",
    "pdfminer.high_level",
)
# Libraries that would hold threads and gigabytes of address space in the worker.
_FORBIDDEN_MODULES: Final = ("torch", "sentence_transformers")
# One thread per numeric library: each extra BLAS thread reserves address space that
# counts against RLIMIT_AS, and parsing gains nothing from them.
_THREAD_ENV: Final = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The worker's first lines: mark torch and sentence-transformers unimportable (`import
# torch` then raises ImportError) before anything is imported, since spaCy's thinc
# imports torch whenever it can, and `ingest.parse` imports spaCy; then take the parent's
# import path and run the worker loop. Arguments: the path list (JSON), the request
# pipe's descriptor, the parent-alive pipe's descriptor.
_BOOTSTRAP: Final = (
    f"import json, sys; sys.modules.update(dict.fromkeys({_FORBIDDEN_MODULES!r})); "
    "sys.path[:] = json.loads(sys.argv[1]); "
    "from ingest.parse.sandbox import _worker_main; _worker_main(int(sys.argv[2]), int(sys.argv[3]))"
)

_Reply = (
    tuple[Literal["ready"], float]
    | tuple[Literal["ok"], ParsedDocument, bool]  # the document; whether the worker retires
    | tuple[Literal["error"], str]
    | tuple[Literal["failed"], str]
)


class ParserUnavailableError(ClearanceError):
    """The worker could not be started, or the parser was closed during a parse.

    Not a :class:`DocumentParseError`: it says nothing about the file, so the ingestion
    pipeline records it as an error line without removing the document's indexed content.
    """


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    connection: Connection
    alive_writer: int  # never written: the worker sees it close when this process ends
    started_s: float = 0.0  # how long its start-up (imports and warm-up) took


class IsolatedParser:
    """``parse_document`` in a reused worker process, under :class:`ParseLimits`.

    Call it like ``parse_document``: ``parser(path) -> ParsedDocument``, or
    :class:`DocumentParseError` with a short reason. One call runs at a time (calls from
    other threads wait their turn). The worker starts on the first call, or on
    :meth:`start`; start-up is counted against ``start_timeout_s``, not against
    ``time_limit_s``. :meth:`close` (or leaving a ``with`` block) ends it.
    """

    def __init__(self, limits: ParseLimits = DEFAULT_LIMITS, *, start_timeout_s: float = 120.0) -> None:
        if start_timeout_s <= 0:
            raise ValueError("start_timeout_s must be positive")
        self.limits = limits
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._closed = False

    # -- public --------------------------------------------------------------------------

    def __call__(self, path: Path) -> ParsedDocument:
        # Absolute: the worker's working directory is fixed when it starts.
        request = str(Path(path).absolute())
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
            if not worker.connection.poll(self.limits.time_limit_s):
                self._discard(worker)
                raise DocumentParseError(f"parsing took longer than {self.limits.time_limit_s:g} s")
            try:
                reply: _Reply = worker.connection.recv()
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
        """Start the worker now if none is running; return how long its start-up took (s)."""
        with self._lock:
            if self._closed:
                raise ParserUnavailableError("the parser is closed")
            return self._ensure_worker().started_s

    @property
    def worker_pid(self) -> int | None:
        """The running worker's process id, or ``None`` (for operators and tests)."""
        worker = self._worker
        return worker.process.pid if worker is not None and worker.process.poll() is None else None

    def close(self) -> None:
        """End the worker. A parse in progress in another thread fails with :class:`ParserUnavailableError`."""
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- worker management (called with the lock held) ----------------------------------

    def _ensure_worker(self) -> _Worker:
        if self._worker is not None and self._worker.process.poll() is None:
            return self._worker
        if self._worker is not None:
            self._discard(self._worker)
        started = time.monotonic()
        worker = _launch(self.limits)
        reply: _Reply | None = None
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
        if code == _EXIT_OUT_OF_MEMORY:
            return f"parser ran out of memory (limit {self.limits.memory_limit_bytes // _MB} MB)"
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
            [sys.executable, "-c", _BOOTSTRAP, import_path, str(theirs.fileno()), str(alive_reader)],
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


# -- the worker ------------------------------------------------------------------------


def _worker_main(request_fd: int, alive_fd: int) -> None:
    """The worker's life: limit itself, import the parsers, then parse until told to stop."""
    connection = Connection(request_fd)
    _exit_with_parent(alive_fd)
    limits: ParseLimits = connection.recv()
    _limit_resources(limits)
    started = time.monotonic()
    try:
        _warm_up(limits)
    except Exception as exc:
        if _caused_by_memory(exc):
            os._exit(_EXIT_OUT_OF_MEMORY)
        connection.send(("failed", f"{type(exc).__name__}: {exc}"[:200]))
        return
    if _near_memory_limit(limits):
        # Every parse would retire the worker: say so once, as a configuration error.
        connection.send(("failed", f"memory limit too low for the parsers ({limits.memory_limit_bytes // _MB} MB)"))
        return
    connection.send(("ready", time.monotonic() - started))
    _serve(connection, limits)


def _limit_resources(limits: ParseLimits) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    # Soft and hard: nothing the worker runs can raise it again. Never above a hard
    # limit the service already runs under (setrlimit would refuse).
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = limits.memory_limit_bytes if hard == resource.RLIM_INFINITY else min(limits.memory_limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _serve(connection: Connection, limits: ParseLimits) -> None:
    from ingest.parse.registry import parse_document

    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if request is None:
            return
        try:
            document = parse_document(Path(request), limits)
        except MemoryError:
            os._exit(_EXIT_OUT_OF_MEMORY)
        except DocumentParseError as exc:
            if _caused_by_memory(exc) or _near_memory_limit(limits):
                os._exit(_EXIT_OUT_OF_MEMORY)
            reply: _Reply = ("error", exc.reason)
        else:
            reply = ("ok", document, _near_memory_limit(limits))
        try:
            connection.send(reply)
        except MemoryError:
            os._exit(_EXIT_OUT_OF_MEMORY)
        if reply[0] == "ok" and reply[2]:
            return  # retire: the parent starts a fresh worker for the next file


def _near_memory_limit(limits: ParseLimits) -> bool:
    """Whether this process's address space has ever come within 10 % of the limit.

    Not every parser raises MemoryError when an allocation fails: lxml (python-docx,
    python-pptx, openpyxl) reports libxml2's failure as ``XMLSyntaxError: unknown
    error``. Such a failure leaves the peak at the limit, so a parse that fails with the
    peak near it is taken to have run out of memory. A worker whose peak came that near
    is retired even after a success: it would misread the next file's failure, and its
    heap is better thrown away.
    """
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024 >= _NEAR_LIMIT_SHARE * limits.memory_limit_bytes
    return False


def _warm_up(limits: ParseLimits) -> None:
    """Import every parser and load the language pipeline, once, before the first file."""
    import importlib

    from ingest.parse.offline_nlp import ensure_offline
    from ingest.parse.registry import parse_document

    ensure_offline()  # before `unstructured` is first imported
    for module in _WARM_MODULES:
        importlib.import_module(module)
    # One tiny parse loads the spaCy pipeline that text classification uses.
    with tempfile.TemporaryDirectory(prefix="clearance-parser-") as folder:
        sample = Path(folder) / "warm-up.txt"
        sample.write_text("Warm-up\n\nThe parser is ready.\n", encoding="utf-8")
        parse_document(sample, limits)


def _caused_by_memory(exc: BaseException) -> bool:
    """Whether a MemoryError is anywhere in the exception's chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, MemoryError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _exit_with_parent(alive_fd: int) -> None:
    """Leave as soon as the parent process ends, even in the middle of a parse.

    The parent never writes to this pipe; the read returns only when its end closes,
    which the kernel does when the parent dies. Without this, an orphaned worker would
    finish a slow parse that nobody waits for.
    """

    def watch() -> None:
        with contextlib.suppress(OSError):
            os.read(alive_fd, 1)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
