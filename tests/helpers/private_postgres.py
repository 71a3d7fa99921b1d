"""A PostgreSQL server of the test's own, in a temporary folder, that a test may stop,
restart or break without touching the machine's shared one (other tests run on that)."""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from server.store.migrate import upgrade
from tests.helpers.processes import free_port

DATABASE = "customers"


def _binaries() -> pathlib.Path:
    """Debian's versioned folder of server programs (initdb and pg_ctl are not on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL server programs under /usr/lib/postgresql")
    return pathlib.Path(found[-1]).parent


def _as_owner(folder: pathlib.Path) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    shutil.chown(folder, "postgres", "postgres")
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PrivatePostgres:
    folder: pathlib.Path
    port: int
    _prefix: list[str]

    @property
    def url(self) -> str:
        """The service's database on it, as CUSTOMERS_DATABASE_URL."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def plain_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self._prefix, str(_binaries() / "pg_ctl"), "-D", str(self.folder / "data"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-w", "-l", str(self.folder / "postgres.log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-w", "-m", mode, "stop")

    def restart(self) -> None:
        """Every connection is cut; the server comes back on the same port."""
        self.stop()
        self.start()

    def terminate_backends(self) -> int:
        """pg_terminate_backend on every other connection to the service's database."""
        with psycopg.connect(self.plain_url, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (DATABASE,),
            ).fetchall()
        return len(rows)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb, start, create and migrate the service's database; stopped and removed
    afterwards. Its folder is directly under the temporary directory: as root, the server
    runs as `postgres`, which cannot enter pytest's private tmp_path."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="pg-"))
    prefix = _as_owner(folder)
    subprocess.run(
        [
            *prefix,
            str(_binaries() / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    server = PrivatePostgres(folder, free_port(), prefix)
    server.start()
    try:
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{server.port}/postgres", autocommit=True
        ) as admin:
            admin.execute(f'CREATE DATABASE "{DATABASE}"')
        upgrade(server.url)
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already down
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
