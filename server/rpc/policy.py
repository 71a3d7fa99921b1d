"""Who may call each method, and which methods need an Idempotency-Key, read once from the
proto: the `(customers.v1.access)` method option (proto/customers/v1/options.proto) and the
google.api.http bindings. Nothing here lists a method by name except the infrastructure rule.

- access: SIGNED (token and signature; what an unmarked method means), PUBLIC (neither), or
  FIRST_KEY (signed, but a partner with no key yet may call it with the token alone).
- idempotent (needs an Idempotency-Key): a binding is POST, PUT, PATCH or DELETE, and the
  method is not PUBLIC.
- role: a method carrying `(customers.v1.role)` is INTERNAL: authorized by a service
  principal's verified client certificate with that role (never a partner token), with no
  google.api.http binding (it is never transcoded) and no Idempotency-Key.
- A method this table does not know is SIGNED and needs no Idempotency-Key (fail closed: it
  must authenticate, and then it is UNIMPLEMENTED anyway).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import ServiceDescriptor

from customers.v1 import options_pb2
from server.domain.principals import Role
from server.rpc.services import INTERNAL_SERVICES, SERVICES

MODIFYING_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Infrastructure services the server serves besides SERVICES; they are not in our proto, so
# they carry no option. Public by this rule, matched by exact service name (any other
# service we do not know is SIGNED):
# - health: probed by Envoy, load balancers and orchestrators, which hold no token;
# - reflection (v1alpha is served; v1 is listed so that a client trying v1 first gets
#   UNIMPLEMENTED and falls back, not UNAUTHENTICATED): it describes the API, no data.
INFRASTRUCTURE_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class Access(enum.Enum):
    SIGNED = "signed"
    PUBLIC = "public"
    FIRST_KEY = "first_key"
    INTERNAL = "internal"  # a service principal with the method's role


_FROM_PROTO: Mapping[int, Access] = {
    options_pb2.ACCESS_UNSPECIFIED: Access.SIGNED,
    options_pb2.SIGNED: Access.SIGNED,
    options_pb2.PUBLIC: Access.PUBLIC,
    options_pb2.FIRST_KEY: Access.FIRST_KEY,
}


_ROLES: Mapping[int, Role | None] = {
    options_pb2.ROLE_UNSPECIFIED: None,
    options_pb2.READER: Role.READER,
    options_pb2.OPERATOR: Role.OPERATOR,
    options_pb2.WATCHER: Role.WATCHER,
}


@dataclass(frozen=True, slots=True)
class RestBinding:
    verb: str  # upper case: "POST"
    template: str  # google.api.http path template: "/auth/signing/{key_id}"
    body: str  # the binding's body field: "*", "form", or "" for none


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    method: str  # gRPC method path: "/customers.v1.AuthService/CreateToken"
    access: Access
    idempotent: bool  # needs an Idempotency-Key
    bindings: tuple[RestBinding, ...]  # the primary binding first, then additional_bindings
    role: Role | None = None  # INTERNAL methods: the role the principal needs


def service_of(method: str) -> str | None:
    """The service of a gRPC method path ("/pkg.Service/Method" -> "pkg.Service"); None for
    anything not shaped like one."""
    before, slash, rest = method.partition("/")
    service, sep, name = rest.partition("/")
    if before or not slash or not sep or not service or not name or "/" in name:
        return None
    return service


class MethodPolicies(Mapping[str, MethodPolicy]):
    """The policy of every method of the given services, by gRPC method path. Immutable."""

    def __init__(self, policies: Iterable[MethodPolicy]) -> None:
        table: dict[str, MethodPolicy] = {}
        for policy in policies:
            if policy.method in table:
                raise ValueError(f"{policy.method}: two policies")
            table[policy.method] = policy
        self._table = MappingProxyType(table)
        self._idempotent = frozenset(m for m, p in table.items() if p.idempotent)
        self._public = frozenset(m for m, p in table.items() if p.access is Access.PUBLIC)

    def __getitem__(self, method: str) -> MethodPolicy:
        return self._table[method]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def policy(self, method: str) -> MethodPolicy:
        """The method's policy; for an infrastructure service PUBLIC, for anything else this
        table does not know SIGNED, neither needing an Idempotency-Key."""
        known = self._table.get(method)
        if known is not None:
            return known
        access = Access.PUBLIC if service_of(method) in INFRASTRUCTURE_SERVICES else Access.SIGNED
        return MethodPolicy(method=method, access=access, idempotent=False, bindings=())

    def access(self, method: str) -> Access:
        return self.policy(method).access

    def is_public(self, method: str) -> bool:
        """No token, no signature: a PUBLIC method or an infrastructure service's."""
        return self.access(method) is Access.PUBLIC

    def is_first_key(self, method: str) -> bool:
        """Signed, but callable with the bearer token alone by a partner with no key yet."""
        return self.access(method) is Access.FIRST_KEY

    def role(self, method: str) -> Role | None:
        """The role an INTERNAL method needs; None for every other method."""
        return self.policy(method).role

    def needs_idempotency_key(self, method: str) -> bool:
        return method in self._idempotent

    def idempotent_methods(self) -> frozenset[str]:
        return self._idempotent

    def public_methods(self) -> frozenset[str]:
        """The PUBLIC methods of the proto (infrastructure services not included)."""
        return self._public


def _bindings(rule: http_pb2.HttpRule) -> Iterator[RestBinding]:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        yield RestBinding(rule.custom.kind.upper(), rule.custom.path, rule.body)
    elif pattern is not None:
        yield RestBinding(pattern.upper(), getattr(rule, pattern), rule.body)
    for additional in rule.additional_bindings:
        yield from _bindings(additional)


def build(services: Iterable[ServiceDescriptor]) -> MethodPolicies:
    """Reads the policies from the descriptors. Raises ValueError for what the rules cannot
    decide: a method with no google.api.http binding, bindings that disagree on whether the
    method modifies, an access value this module does not know."""
    policies = []
    for service in services:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            options = method.GetOptions()
            # The generated .pyi types the extension as a plain FieldDescriptor.
            value: int = options.Extensions[options_pb2.access]  # type: ignore[index]
            access = _FROM_PROTO.get(value)
            if access is None:
                raise ValueError(f"{path}: (customers.v1.access) = {value} is not known here")
            role_value: int = options.Extensions[options_pb2.role]  # type: ignore[index]
            if role_value not in _ROLES:
                raise ValueError(f"{path}: (customers.v1.role) = {role_value} is not known here")
            bindings = tuple(_bindings(options.Extensions[annotations_pb2.http]))
            role = _ROLES[role_value]
            if role is not None:
                # Internal: never reachable through the transcoder, never partner-signed.
                if bindings or value != options_pb2.ACCESS_UNSPECIFIED:
                    raise ValueError(f"{path}: a method with a role has no http binding or access")
                policies.append(
                    MethodPolicy(
                        method=path,
                        access=Access.INTERNAL,
                        idempotent=False,
                        bindings=(),
                        role=role,
                    )
                )
                continue
            if not bindings:
                raise ValueError(f"{path}: no google.api.http binding")
            modifying = {binding.verb in MODIFYING_VERBS for binding in bindings}
            if len(modifying) != 1:
                raise ValueError(f"{path}: bindings disagree on modifying: {bindings}")
            policies.append(
                MethodPolicy(
                    method=path,
                    access=access,
                    idempotent=modifying == {True} and access is not Access.PUBLIC,
                    bindings=bindings,
                )
            )
    return MethodPolicies(policies)


POLICY: MethodPolicies = build([*SERVICES, *INTERNAL_SERVICES])
