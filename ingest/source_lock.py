"""A per-source lock in Redis, renewed while its job runs, so two workers never ingest one source at once.

The lock is redis-py's :class:`redis.lock.Lock` (a random token under one key, set
with NX and a TTL; release and renewal check the token in a Lua script). A
thread renews it every third of its TTL while the job runs, so a job of any
length keeps it, and a worker that dies stops renewing: its lock expires after
the TTL and another worker may take the source over. The key names the tenant
and the source root by a digest, never by path.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from types import TracebackType

import redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.lock import Lock

log = logging.getLogger(__name__)


def source_lock_key(*, namespace: str, tenant_id: str, root: str) -> str:
    digest = hashlib.sha256(f"{tenant_id}|{root}".encode()).hexdigest()[:32]
    return f"{namespace}:source-lock:{digest}"


class SourceLock:
    """One source's lock: ``acquire()`` never waits; while held, a thread keeps it alive."""

    def __init__(self, *, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        # thread_local=False: the renewing thread must see the token the acquiring thread stored.
        self._lock = Lock(client, key, timeout=ttl_seconds, blocking=False, thread_local=False)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._held = False
        self._lost = False

    @property
    def lost(self) -> bool:
        """True when the lock expired or was taken while held (renewal failed for a whole TTL)."""
        return self._lost

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; start renewing it. False when another job holds it."""
        if not self._lock.acquire(blocking=False):
            return False
        self._held = True
        self._renewer = threading.Thread(target=self._renew, name="source-lock-renewal", daemon=True)
        self._renewer.start()
        return True

    def release(self) -> None:
        """Stop renewing and give the lock up (once; later calls do nothing)."""
        if not self._held:
            return
        self._held = False
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self._lock.release()
        except LockNotOwnedError:
            self._lost = True  # it expired under us: say so in the log, there is nothing to release
            log.error("source lock %s had expired before its job ended", self._lock.name)
        except (LockError, RedisError):
            # Unreachable Redis: the lock expires by itself after its TTL.
            log.warning("could not release source lock %s; it expires in %.0f s", self._lock.name, self._ttl)

    def __enter__(self) -> SourceLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            try:
                self._lock.reacquire()  # back to the full TTL, only while our token is still there
            except LockNotOwnedError:
                self._lost = True
                log.error(
                    "source lock %s expired while its job ran (renewal failed for %.0f s); "
                    "another worker may now ingest the same source",
                    self._lock.name,
                    self._ttl,
                )
                return
            except (LockError, RedisError):
                log.warning("could not renew source lock %s; trying again", self._lock.name, exc_info=True)
