"""Schema migrations through alembic, driven from Python (no alembic.ini to keep in sync)."""

from __future__ import annotations

import pathlib

from alembic import command
from alembic.config import Config

MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade(database_url: str) -> None:
    """Brings the schema up to date. Safe to run on every start and from every replica
    (alembic's version table makes a finished upgrade a no-op)."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[-1]
        if path and path != ":memory:":
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), "head")


def autogenerate(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
