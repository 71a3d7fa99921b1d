"""Rows <-> domain entities, by one rule instead of a hand-written mirror per entity.

The SQLModel tables (tables.py) are the persistence model; the domain dataclasses never see
them. A table's column and the entity's field share a name, and the field's type says how a
value crosses: an enum is stored as its value, a list as a fresh list (a JSON column), every
other value as it is. Fields that are no column (`changes`, the pending audit records) are
not persisted here. `EntityMapping` checks at import that every column has its field, so a
column added to tables.py without a field (or renamed on one side) fails at once.

`load` takes a Core result row of the table's columns; `values` gives the column values a
Core INSERT or UPDATE writes. No ORM instance is built on either path (see repositories.py).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import Row

from server.domain.accounts import Account, Card
from server.domain.customer import Customer
from server.domain.partner import Partner
from server.domain.signing_keys import PublicKey, SigningKey
from server.store.tables import AccountRow, CardRow, CustomerRow, PartnerRow

T = TypeVar("T")

Convert = Callable[[Any], Any]


def _enum_of(hint: Any) -> type[enum.Enum] | None:
    """The enum a field holds (`Status` or `Status | None`), else None."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    for option in options:
        if isinstance(option, type) and issubclass(option, enum.Enum):
            return option
    return None


def _crossing(hint: Any) -> tuple[Convert, Convert] | None:
    """(column value -> field value, field value -> column value), or None for as-is."""
    kind = _enum_of(hint)
    if kind is not None:
        # An empty string read back counts as no value, as a missing one does.
        return (lambda value: kind(value) if value else None), (lambda value: value.value)
    if typing.get_origin(hint) is list:
        return list, list
    return None


class EntityMapping(Generic[T]):
    def __init__(self, entity: type[T], table: sa.Table) -> None:
        hints = typing.get_type_hints(entity)
        fields = {field.name for field in dataclasses.fields(entity)}  # type: ignore[arg-type]
        missing = [column.name for column in table.c if column.name not in fields]
        if missing:
            raise TypeError(f"{entity.__name__} has no field for {table.name} columns {missing}")
        self._entity = entity
        self._plain: list[str] = []
        self._converted: list[tuple[str, Convert, Convert]] = []
        for column in table.c:
            crossing = _crossing(hints[column.name])
            if crossing is None:
                self._plain.append(column.name)
            else:
                self._converted.append((column.name, *crossing))

    def load(self, row: Row[Any]) -> T:
        columns = row._mapping
        values = {name: columns[name] for name in self._plain}
        for name, load, _ in self._converted:
            value = columns[name]
            values[name] = None if value is None else load(value)
        return self._entity(**values)

    def load_labeled(self, row: Row[Any], prefix: str) -> T:
        """The entity from a row whose columns for it are labelled `prefix` + column name
        (a join of two tables that share column names)."""
        columns = row._mapping
        values = {name: columns[prefix + name] for name in self._plain}
        for name, load, _ in self._converted:
            value = columns[prefix + name]
            values[name] = None if value is None else load(value)
        return self._entity(**values)

    def values(self, entity: T) -> dict[str, Any]:
        values = {name: getattr(entity, name) for name in self._plain}
        for name, _, dump in self._converted:
            value = getattr(entity, name)
            values[name] = None if value is None else dump(value)
        return values


def _table(row: type[Any]) -> sa.Table:
    return row.__table__  # type: ignore[no-any-return]


PARTNERS = EntityMapping(Partner, _table(PartnerRow))
CUSTOMERS = EntityMapping(Customer, _table(CustomerRow))
ACCOUNTS = EntityMapping(Account, _table(AccountRow))
CARDS = EntityMapping(Card, _table(CardRow))


def signing_key_from_row(row: Row[Any]) -> SigningKey:
    """The one entity whose shape is not its table's: the key itself is a value object."""
    return SigningKey(
        partner_id=row.partner_id,
        public=PublicKey(row.key_id, row.algorithm, row.public_key_pem),
        created_at=row.created_at,
    )
