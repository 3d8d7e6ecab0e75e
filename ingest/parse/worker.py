"""The parsing worker process: what runs on the far side of :class:`ingest.parse.sandbox.IsolatedParser`.

The parent starts it with :data:`BOOTSTRAP` in a fresh interpreter and talks to it over a
pipe: first it sends the :class:`ParseLimits`; the worker limits its own address space,
imports every parser, answers ``("ready", seconds)``, then answers one :data:`Reply` per
path it receives until it receives ``None`` or its parent dies. Only this module runs in
the worker before the parsers are imported; the parent never calls its functions.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final, Literal

from core.errors import DocumentParseError
from ingest.parse.elements import ParsedDocument
from ingest.parse.registry import ParseLimits

# Exit status of a worker that ran out of memory: it leaves at once rather than reply,
# since after a MemoryError even pickling the reply may fail, and a heap that grew to
# the limit is better thrown away than reused.
EXIT_OUT_OF_MEMORY: Final = 75
_MB: Final = 1024 * 1024
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
# The worker's first lines: mark torch and sentence-transformers unimportable (`import
# torch` then raises ImportError) before anything is imported, since spaCy's thinc
# imports torch whenever it can, and `ingest.parse` imports spaCy; then take the parent's
# import path and run the worker loop. Arguments: the path list (JSON), the request
# pipe's descriptor, the parent-alive pipe's descriptor.
BOOTSTRAP: Final = (
    f"import json, sys; sys.modules.update(dict.fromkeys({_FORBIDDEN_MODULES!r})); "
    "sys.path[:] = json.loads(sys.argv[1]); "
    "from ingest.parse.worker import worker_main; worker_main(int(sys.argv[2]), int(sys.argv[3]))"
)

Reply = (
    tuple[Literal["ready"], float]
    | tuple[Literal["ok"], ParsedDocument, bool]  # the document; whether the worker retires
    | tuple[Literal["error"], str]
    | tuple[Literal["failed"], str]
)


def worker_main(request_fd: int, alive_fd: int) -> None:
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
            os._exit(EXIT_OUT_OF_MEMORY)
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
            os._exit(EXIT_OUT_OF_MEMORY)
        except DocumentParseError as exc:
            if _caused_by_memory(exc) or _near_memory_limit(limits):
                os._exit(EXIT_OUT_OF_MEMORY)
            reply: Reply = ("error", exc.reason)
        else:
            reply = ("ok", document, _near_memory_limit(limits))
        try:
            connection.send(reply)
        except MemoryError:
            os._exit(EXIT_OUT_OF_MEMORY)
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
