"""`python -m server dev` (what `make run` starts) killed with SIGKILL leaves nothing behind:
its Envoy and workers die with it, and the next start on the same ports serves (issue 13
row 2). Before, the orphaned Envoy kept the ports and answered 503, and the next start
failed with "Address already in use"."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from gateway.lifetime import parent_of
from gateway.process import envoy_binary
from server.edge import render_gateway
from tests.helpers.databases import sqlite_database
from tests.helpers.processes import ROOT, free_port, server_env


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc)."""
    found: list[int] = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        found += [int(n) for n in (task / "children").read_text().split()]
    return found


def wait_answering(base_url: str, process: subprocess.Popen[bytes], within: float = 40) -> None:
    """Until a REST call reaches a worker through Envoy (a refused token: 401)."""
    body = {"apiKey": str(uuid.uuid4()), "apiSecret": "wrong"}
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dev exited with {process.returncode}"
        try:
            answer = httpx.post(f"{base_url}/auth/token", json=body, timeout=2)
            if answer.status_code == 401:
                return
            last = f"{answer.status_code} {answer.text}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"dev did not answer within {within}s: {last}")


@contextmanager
def dev_stack(env: dict[str, str], log: pathlib.Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "dev"], env=env, cwd=ROOT, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def dev_env(database_url: str, http_port: int, admin_port: int, socket_dir: str) -> dict[str, str]:
    return server_env(
        database_url,
        free_port(),
        CUSTOMERS_WORKERS="2",
        CUSTOMERS_HTTP_PORT=str(http_port),
        CUSTOMERS_ENVOY_ADMIN_PORT=str(admin_port),
        CUSTOMERS_PUBLIC_URL=f"http://127.0.0.1:{http_port}",
        CUSTOMERS_GATEWAY_SOCKET_DIR=socket_dir,
    )


def test_dev_killed_with_sigkill_leaves_nothing_and_starts_again_on_its_ports(
    tmp_path: pathlib.Path,
) -> None:
    http_port, admin_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{http_port}"
    left_behind: list[int] = []
    with sqlite_database(tmp_path) as url:
        env = dev_env(url, http_port, admin_port, tempfile.mkdtemp(prefix="cust-dev-"))
        log = tmp_path / "dev.log"
        try:
            with dev_stack(env, log) as first:
                wait_answering(base_url, first)
                left_behind = children(first.pid)
                assert len(left_behind) == 3, left_behind  # Envoy and two workers
                first.send_signal(signal.SIGKILL)
                first.wait()
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and any(map(parent_of, left_behind)):
                    time.sleep(0.1)
                alive = [pid for pid in left_behind if parent_of(pid) is not None]
                assert alive == [], f"outlived their dev process: {alive}\n{log.read_text()}"

            with dev_stack(env, log) as second:
                wait_answering(base_url, second)
                assert second.poll() is None
        finally:
            for pid in left_behind:  # only on failure: never leak them into other tests
                if parent_of(pid) is not None:
                    os.kill(pid, signal.SIGKILL)


def start_orphaned_envoy(config: str, admin_port: int, folder: pathlib.Path) -> tuple[int, int]:
    """An Envoy whose starter has exited (as one a killed dev of an older release, or of a
    system without PR_SET_PDEATHSIG, leaves behind): (its pid, the starter's pid)."""
    path = folder / "orphan.json"
    path.write_text(config, encoding="utf-8")
    command = f"'{envoy_binary()}' -c '{path}' --disable-hot-restart >/dev/null 2>&1 & echo $!"
    starter = subprocess.Popen(["sh", "-c", command], stdout=subprocess.PIPE)
    out, _ = starter.communicate(timeout=10)
    envoy_pid = int(out)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{admin_port}/ready", timeout=1).status_code == 200:
                return envoy_pid, starter.pid
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    os.kill(envoy_pid, signal.SIGKILL)
    raise AssertionError("the orphaned Envoy did not start")


def test_dev_stops_an_orphaned_envoy_its_pidfile_names_and_takes_the_ports(
    tmp_path: pathlib.Path,
) -> None:
    http_port, admin_port = free_port(), free_port()
    socket_dir = tempfile.mkdtemp(prefix="cust-dev-")
    config = render_gateway(
        http_port=http_port,
        admin_port=admin_port,
        backends=[os.path.join(socket_dir, f"worker-{n}.sock") for n in range(2)],
        access_log=False,
    )
    envoy_pid, starter_pid = start_orphaned_envoy(config, admin_port, tmp_path)
    try:
        assert parent_of(envoy_pid) != starter_pid
        pathlib.Path(socket_dir, "envoy.pid").write_text(f"{envoy_pid} {starter_pid}\n")
        with (
            sqlite_database(tmp_path) as url,
            dev_stack(dev_env(url, http_port, admin_port, socket_dir), tmp_path / "dev.log") as dev,
        ):
            # The orphan forwards to the same sockets, so answers alone prove nothing.
            deadline = time.monotonic() + 20
            while parent_of(envoy_pid) is not None and time.monotonic() < deadline:
                assert dev.poll() is None, (tmp_path / "dev.log").read_text()
                time.sleep(0.1)
            assert parent_of(envoy_pid) is None, "the orphan was stopped"
            wait_answering(f"http://127.0.0.1:{http_port}", dev)
            # dev records its Envoy once start_envoy saw it ready, which may be just after
            # our first answer from it.
            pidfile = pathlib.Path(socket_dir, "envoy.pid")
            deadline = time.monotonic() + 10
            recorded: list[str] = []
            while time.monotonic() < deadline:
                recorded = pidfile.read_text().split() if pidfile.exists() else []
                if recorded and recorded[1] == str(dev.pid):
                    break
                time.sleep(0.05)
            assert recorded[1] == str(dev.pid)  # the new Envoy, started by this dev
    finally:
        if parent_of(envoy_pid) is not None:
            os.kill(envoy_pid, signal.SIGKILL)
