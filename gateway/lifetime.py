"""Processes that do not outlive the one that started them, and the pidfile that finds an
Envoy a killed `python -m server dev` left behind anyway.

A supervisor killed with SIGKILL runs no cleanup: its Envoy used to live on, keep the REST
and admin ports and answer 503 (no backends), and the next `make run` failed with "Address
already in use" (issue 13 row 2). Two layers:

- `die_with_parent` (Linux `PR_SET_PDEATHSIG`, set between fork and exec): the kernel sends
  the child SIGTERM the moment its parent dies, however it died.
- `EnvoyPidfile`: `dev` records its Envoy's pid; the next `dev` stops a recorded Envoy that
  is still alive but no longer the child of the process that started it (orphaned: killed
  by an older release, another OS, or still exiting from its SIGTERM) before it starts its
  own. An Envoy whose starter is alive belongs to a running stack and is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pathlib
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05


def _find_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Looked up here, before any fork: between fork and exec the child of a process with
# threads (grpc starts some) should do as little as possible, and no dlopen/dlsym.
_PRCTL = _find_prctl()


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGTERM when the thread that started it exits (for
    our starters, their main thread: the process). A no-op where prctl does not exist."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def parent_of(pid: int) -> int | None:
    """The live process's parent pid; None when there is no such process, or only its
    zombie (which holds no ports; PID 1 in a container may never reap it)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ")".
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return None if state in ("Z", "X") else int(ppid)


def _is_envoy(pid: int) -> bool:
    try:
        argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and os.path.basename(argv[0]).startswith(b"envoy")


class EnvoyPidfile:
    """`<run dir>/envoy.pid`: "ENVOY_PID STARTER_PID"."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def write(self, envoy_pid: int) -> None:
        self.path.write_text(f"{envoy_pid} {os.getpid()}\n", encoding="ascii")

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def stale_envoy(self) -> int | None:
        """The recorded Envoy's pid if it is alive and orphaned, else None."""
        try:
            envoy_pid, starter_pid = (int(n) for n in self.path.read_text("ascii").split())
        except (OSError, ValueError):
            return None
        parent = parent_of(envoy_pid)
        if parent is None or parent == starter_pid or not _is_envoy(envoy_pid):
            return None
        return envoy_pid

    async def replace_stale(self) -> int | None:
        """Stops an orphaned Envoy (SIGTERM, then SIGKILL after a grace period) and waits
        until it is gone, so its ports are free; the pid it stopped, if any."""
        pid = self.stale_envoy()
        if pid is None:
            self.remove()
            return None
        for sig, wait in ((signal.SIGTERM, _STOP_GRACE_SECONDS), (signal.SIGKILL, 1.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if await _gone(pid, within=wait):
                break
        self.remove()
        return pid


async def _gone(pid: int, *, within: float) -> bool:
    """Whether the process is gone (or a zombie) within the time; polled, since another
    process's exit has no event to wait on."""
    for _ in range(int(within / _POLL_SECONDS)):
        if parent_of(pid) is None:
            return True
        await asyncio.sleep(_POLL_SECONDS)
    return parent_of(pid) is None
