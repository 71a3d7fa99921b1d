"""In-memory stand-ins for the ports of server/services/ports.py (cosmicpython's fakes):
the service rules run in milliseconds, without gRPC or a database, through
`server.bootstrap.build(settings, uow=FakeUnitOfWorkFactory(), ...)` or the service classes
themselves."""

from tests.fakes.providers import (
    FakeKyc,
    FakeScreener,
    FakeTokens,
    FakeWallets,
    FixedClock,
    fake_key_parser,
)
from tests.fakes.unit_of_work import FakeStore, FakeUnitOfWork, FakeUnitOfWorkFactory

__all__ = [
    "FakeKyc",
    "FakeScreener",
    "FakeStore",
    "FakeTokens",
    "FakeUnitOfWork",
    "FakeUnitOfWorkFactory",
    "FakeWallets",
    "FixedClock",
    "fake_key_parser",
]
