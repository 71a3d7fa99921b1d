"""Service principals: internal services known by the identity in their client certificate
(a URI SAN such as spiffe://customers.internal/compliance, or a DNS SAN), with roles.

The directory is read from the CUSTOMERS_INTERNAL_SERVICES file (SPEC section 13):
`{"services": [{"name", "identity", "roles": [...]}]}`. Anything unexpected in it is an
error naming the entry, so a bad file stops the server at start, never at the first call.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


class Role(enum.StrEnum):
    READER = "reader"  # any partner's customers, accounts and cards
    OPERATOR = "operator"  # reader, plus suspend, reinstate and reject
    WATCHER = "watcher"  # the cross-partner event stream


# What holding a role lets a principal do besides the role itself.
_IMPLIES: Mapping[Role, frozenset[Role]] = {
    Role.READER: frozenset({Role.READER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.READER}),
    Role.WATCHER: frozenset({Role.WATCHER}),
}


class InvalidPrincipals(ValueError):
    """The principals file cannot be used; the message says where and why."""


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    name: str
    identity: str
    roles: frozenset[Role]

    def may(self, role: Role) -> bool:
        return any(role in _IMPLIES[held] for held in self.roles)


class Principals:
    """The known principals by identity. Immutable; empty when no file is configured."""

    def __init__(self, principals: Iterable[ServicePrincipal] = ()) -> None:
        table: dict[str, ServicePrincipal] = {}
        for principal in principals:
            table[principal.identity] = principal
        self._by_identity = MappingProxyType(table)

    def __len__(self) -> int:
        return len(self._by_identity)

    def find(self, identities: Iterable[str]) -> ServicePrincipal | None:
        """The principal the first listed identity of a certificate names (SAN order)."""
        for identity in identities:
            found = self._by_identity.get(identity)
            if found is not None:
                return found
        return None


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise InvalidPrincipals(f"{where}: '{key}' must be a non-empty string")
    return value


def parse(document: Any) -> Principals:
    """The directory from the file's parsed JSON; raises InvalidPrincipals."""
    if not isinstance(document, dict) or set(document) != {"services"}:
        raise InvalidPrincipals('the file must be an object with one key, "services"')
    services = document["services"]
    if not isinstance(services, list):
        raise InvalidPrincipals('"services" must be a list')
    principals: list[ServicePrincipal] = []
    names: set[str] = set()
    identities: set[str] = set()
    for index, entry in enumerate(services):
        where = f"services[{index}]"
        if not isinstance(entry, dict):
            raise InvalidPrincipals(f"{where} must be an object")
        unknown = set(entry) - {"name", "identity", "roles"}
        if unknown:
            raise InvalidPrincipals(f"{where}: unknown keys {sorted(unknown)}")
        name = _text(entry, "name", where)
        identity = _text(entry, "identity", where)
        if not identity.startswith("spiffe://") and ("://" in identity or " " in identity):
            raise InvalidPrincipals(
                f"{where}: identity must be a URI SAN (spiffe://...) or a DNS name"
            )
        roles = entry.get("roles")
        if not isinstance(roles, list) or not roles:
            raise InvalidPrincipals(f"{where}: 'roles' must be a non-empty list")
        try:
            held = frozenset(Role(role) for role in roles)
        except ValueError:
            known = ", ".join(role.value for role in Role)
            raise InvalidPrincipals(f"{where}: roles must be among {known}") from None
        if name in names:
            raise InvalidPrincipals(f"{where}: name {name!r} is listed twice")
        if identity in identities:
            raise InvalidPrincipals(f"{where}: identity {identity!r} is listed twice")
        names.add(name)
        identities.add(identity)
        principals.append(ServicePrincipal(name=name, identity=identity, roles=held))
    return Principals(principals)
