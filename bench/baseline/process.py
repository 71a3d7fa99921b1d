"""The baseline as the bench runs it: one uvicorn process (`--loop uvloop --http httptools`,
one worker, no access log) on a free loopback port, against the bench stack's database.

Nothing here imports FastAPI or uvicorn: the app runs in its own process only.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from bench.procs import has_mapped
from bench.stack import ROOT, free_port, postgres_backends

APP = "bench.baseline.app:create_app"
START_TIMEOUT_S = 30.0


class BaselineError(RuntimeError):
    """The baseline did not come up as it must (not started, or not on uvloop/httptools)."""


@dataclass(frozen=True)
class Baseline:
    process: subprocess.Popen[bytes]
    port: int
    database_url: str

    @property
    def authority(self) -> str:
        """`@authority` of requests signed for the baseline: the Host wrk and httpx send."""
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.authority}"

    def processes(self) -> dict[str, list[int]]:
        """Who serves a baseline request, by the roles the runner knows: the uvicorn process
        is the "server"; PostgreSQL's backends for the bench database are "db" (the stack's
        server holds idle connections there too, as the baseline does during its cases)."""
        roles = {"server": [self.process.pid]}
        if self.database_url.startswith("postgresql"):
            roles["db"] = postgres_backends(self.database_url.rsplit("/", 1)[1])
        return roles


def command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        APP,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--lifespan",
        "on",
    ]


@contextlib.contextmanager
def running_baseline(
    database_url: str, public_url: str, folder: pathlib.Path
) -> Iterator[Baseline]:
    port = free_port()
    env = dict(os.environ, BASELINE_DATABASE_URL=database_url, BASELINE_PUBLIC_URL=public_url)
    log_path = folder / "baseline.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command(port),
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, process, log_path)
        # What the SPEC's baseline is: say so if uvicorn fell back to asyncio or h11.
        for fragment in ("uvloop/loop", "httptools/parser"):
            if not has_mapped(process.pid, fragment):
                raise BaselineError(f"the baseline process has no {fragment} loaded")
        yield Baseline(process, port, database_url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: pathlib.Path) -> None:
    """uvicorn listens only once the app's lifespan startup has finished."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise BaselineError(f"baseline exited with {process.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise BaselineError(
                    f"baseline not listening on {port} after {START_TIMEOUT_S:g} s"
                ) from error
            time.sleep(0.1)
