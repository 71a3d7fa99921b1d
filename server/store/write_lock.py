"""The queue SQLite's writers wait in: one per database file, shared by every worker process.

In a process, writers queue on an asyncio.Lock. Across worker processes (CUSTOMERS_WORKERS
on one SQLite file) they also take an exclusive `flock` of a file beside the database before
BEGIN IMMEDIATE. Why not let SQLite arbitrate: its wait for the write lock is a busy handler
that sleeps inside the statement, on the event loop, stalling every other call of that
worker (1 ms, then 2, 5, 10 ... up to the busy timeout). Here a worker that finds the file
locked polls it without blocking and yields to its loop between tries, so it keeps serving
reads and signatures meanwhile. (A thread blocked in flock would wake sooner, but a
cancelled call could leave that thread to take the lock later for no one.)
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time

FIRST_WAIT = 0.0002  # seconds; transactions hold the lock for about a millisecond
LONGEST_WAIT = 0.005
GIVE_UP_AFTER = 10.0  # as long as SQLite's own busy timeout would have waited, and more


class WriteLockTimeout(TimeoutError):
    """Another process held the database's write lock for GIVE_UP_AFTER seconds."""


class SqliteWriteLock:
    def __init__(self, lock_file: str | None) -> None:
        """`lock_file`: beside the database; None for an in-memory database (one process)."""
        self._local = asyncio.Lock()
        self._fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600) if lock_file else None

    async def acquire(self) -> None:
        await self._local.acquire()
        if self._fd is None:
            return
        try:
            await self._lock_file(self._fd)
        except BaseException:
            self._local.release()
            raise

    @staticmethod
    async def _lock_file(fd: int) -> None:
        wait, deadline = FIRST_WAIT, time.monotonic() + GIVE_UP_AFTER
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    held = "the database stayed locked by another process"
                    raise WriteLockTimeout(held) from None
            await asyncio.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._local.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_file_of(database: str | None) -> str | None:
    """The lock file of a SQLite database path (None, '' or ':memory:': no file)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return f"{database}-writers.lock"
