"""Shared fixtures. Databases are parametrized: every store-touching test runs on SQLite
and on a real PostgreSQL."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.helpers.databases import database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url
