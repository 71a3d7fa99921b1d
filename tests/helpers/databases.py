"""Throwaway databases: a SQLite file, or a fresh PostgreSQL database per use."""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from server.store.migrate import upgrade

PG_SERVER = os.environ.get("CUSTOMERS_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@contextmanager
def sqlite_database(folder: pathlib.Path) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{folder / f'{uuid.uuid4().hex}.db'}"
    upgrade(url)
    yield url


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"customers_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG_SERVER.split('://', 1)[1]}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database(kind: str, folder: pathlib.Path) -> Iterator[str]:
    if kind == "sqlite":
        with sqlite_database(folder) as url:
            yield url
    else:
        with postgres_database() as url:
            yield url
