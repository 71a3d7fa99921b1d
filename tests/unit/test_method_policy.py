"""The auth and idempotency policy read from the proto (server/rpc/policy.py)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor

from customers.v1 import options_pb2
from server.domain.principals import Role
from server.rpc.policy import (
    POLICY,
    Access,
    MethodPolicy,
    build,
    service_of,
)
from server.rpc.services import INTERNAL_SERVICES, SERVICES

PUBLIC = frozenset(
    {
        "/customers.v1.AuthService/CreateToken",
        "/customers.v1.KycPortalService/GetPortalPage",
        "/customers.v1.KycPortalService/SubmitDecision",
        "/customers.v1.KycCallbackService/ReceiveCallback",
    }
)
FIRST_KEY = "/customers.v1.AuthService/RegisterSigningKey"
ALL_METHODS = frozenset(
    f"/{service.full_name}/{method.name}" for service in SERVICES for method in service.methods
)


INTERNAL_METHODS = frozenset(
    f"/{service.full_name}/{method.name}"
    for service in INTERNAL_SERVICES
    for method in service.methods
)


def test_every_method_of_every_service_has_a_policy_with_a_rest_binding() -> None:
    assert frozenset(POLICY) == ALL_METHODS | INTERNAL_METHODS
    assert len(POLICY) == len(ALL_METHODS) + len(INTERNAL_METHODS)
    for method in ALL_METHODS:
        policy = POLICY[method]
        assert policy.method == method
        assert policy.bindings, method
        assert POLICY.policy(method) is policy


def test_internal_methods_need_a_role_and_have_no_rest_binding_nor_idempotency_key() -> None:
    operator = "/customers.v1.OperatorService/"
    roles = {m.removeprefix(operator): POLICY.role(m) for m in INTERNAL_METHODS}
    assert roles == {
        "GetCustomer": Role.READER,
        "ListCustomers": Role.READER,
        "GetAccount": Role.READER,
        "ListAccounts": Role.READER,
        "GetCard": Role.READER,
        "ListCards": Role.READER,
        "SuspendCustomer": Role.OPERATOR,
        "ReinstateCustomer": Role.OPERATOR,
        "RejectCustomer": Role.OPERATOR,
        "WatchAllCustomers": Role.WATCHER,
    }
    for method in INTERNAL_METHODS:
        policy = POLICY[method]
        assert policy.access is Access.INTERNAL and not policy.bindings, method
        assert not POLICY.needs_idempotency_key(method) and not POLICY.is_public(method)
    assert all(POLICY.role(m) is None for m in ALL_METHODS)
    assert POLICY.role("/customers.v1.OperatorService/Unknown") is None  # fail closed: SIGNED


def test_exactly_the_four_public_methods_are_public() -> None:
    assert POLICY.public_methods() == PUBLIC
    assert {m for m in ALL_METHODS if POLICY.is_public(m)} == PUBLIC
    assert {m for m in ALL_METHODS if POLICY.access(m) is Access.PUBLIC} == PUBLIC


def test_register_signing_key_alone_is_first_key_and_still_signed() -> None:
    assert POLICY.access(FIRST_KEY) is Access.FIRST_KEY
    assert {m for m in ALL_METHODS if POLICY.is_first_key(m)} == {FIRST_KEY}
    assert not POLICY.is_public(FIRST_KEY)
    assert POLICY.needs_idempotency_key(FIRST_KEY)  # PUT


def test_everything_else_is_signed() -> None:
    for method in ALL_METHODS - PUBLIC - {FIRST_KEY}:
        assert POLICY.access(method) is Access.SIGNED, method


def modifying_methods(services: Any, *, exempt: frozenset[str] = frozenset()) -> set[str]:
    """Independently of policy.py: methods whose primary http binding modifies."""
    found = set()
    for service in services:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            if rule.WhichOneof("pattern") in {"post", "put", "patch", "delete"}:
                found.add(path)
    return found - exempt


def test_idempotent_methods_are_the_modifying_ones_less_the_public_ones() -> None:
    expected = modifying_methods(SERVICES, exempt=PUBLIC)
    assert POLICY.idempotent_methods() == expected
    assert {m for m in ALL_METHODS if POLICY.needs_idempotency_key(m)} == expected
    assert {m for m, p in POLICY.items() if p.idempotent} == expected
    # Public methods with a modifying verb exist, and need no key.
    assert modifying_methods(SERVICES) & PUBLIC == {
        "/customers.v1.AuthService/CreateToken",
        "/customers.v1.KycPortalService/SubmitDecision",
        "/customers.v1.KycCallbackService/ReceiveCallback",
    }
    assert not POLICY.needs_idempotency_key("/customers.v1.CustomerService/ListCustomers")


@pytest.mark.parametrize(
    "method",
    [
        "/customers.v1.AuthService/NoSuchMethod",
        "/customers.v1.NoSuchService/CreateToken",
        "/evil.v1.Service/Anything",
        "/grpc.health.v1.HealthX/Check",  # infrastructure matches by exact service name
        "/grpc.reflection.v1alpha.Other/ServerReflectionInfo",
        "/envoy.service.auth.v3.Authorization/Check",  # no longer served: nothing special
        "/grpc.health.v1.Health",  # not a method path
        "/grpc.health.v1.Health/Check/extra",
        "grpc.health.v1.Health/Check",
        "//Check",
        "",
    ],
)
def test_an_unknown_method_is_signed_and_not_public(method: str) -> None:
    assert POLICY.access(method) is Access.SIGNED
    assert not POLICY.is_public(method)
    assert not POLICY.is_first_key(method)
    assert not POLICY.needs_idempotency_key(method)
    assert method not in POLICY
    assert POLICY.policy(method) == MethodPolicy(method, Access.SIGNED, False, ())


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    ],
)
def test_infrastructure_services_are_public_by_their_own_rule(method: str) -> None:
    assert POLICY.is_public(method)
    assert not POLICY.needs_idempotency_key(method)
    assert method not in POLICY
    assert method not in POLICY.public_methods()


def test_service_of() -> None:
    assert service_of("/customers.v1.AuthService/CreateToken") == "customers.v1.AuthService"
    assert service_of("/a/") is None
    assert service_of("a/b") is None


def test_the_table_is_immutable() -> None:
    with pytest.raises(TypeError):
        POLICY["/x.Y/Z"] = POLICY[FIRST_KEY]  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        POLICY[FIRST_KEY].access = Access.PUBLIC  # type: ignore[misc]


def test_additional_bindings_are_included() -> None:
    bindings = POLICY["/customers.v1.CustomerService/CreateCustomer"].bindings
    assert [(b.verb, b.template, b.body) for b in bindings] == [
        ("POST", "/customers", "*"),
        ("POST", "/customer", "*"),
    ]


def test_the_option_is_an_in_house_extension_of_method_options() -> None:
    extension = options_pb2.access
    assert 50000 <= extension.number <= 99999
    assert extension.containing_type.full_name == "google.protobuf.MethodOptions"


# build() refuses what its rules cannot decide; fixtures are services in a pool of their own.


def _service(*methods: tuple[str, list[http_pb2.HttpRule], int]) -> ServiceDescriptor:
    pool = descriptor_pool.DescriptorPool()
    for module in (descriptor_pb2, http_pb2, annotations_pb2, options_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    fixture = descriptor_pb2.FileDescriptorProto(
        name="fixture.proto",
        package="fixture",
        syntax="proto3",
        dependency=["google/protobuf/descriptor.proto"],
    )
    fixture.message_type.add(name="M")
    service = fixture.service.add(name="S")
    for name, rules, access in methods:
        method = service.method.add(name=name, input_type=".fixture.M", output_type=".fixture.M")
        if rules:
            rule = method.options.Extensions[annotations_pb2.http]
            rule.CopyFrom(rules[0])
            rule.additional_bindings.extend(rules[1:])
        if access:
            method.options.Extensions[options_pb2.access] = access
    pool.Add(fixture)
    return pool.FindServiceByName("fixture.S")


def test_build_reads_a_fixture_service() -> None:
    service = _service(
        ("Put", [http_pb2.HttpRule(put="/m")], 0),
        ("Open", [http_pb2.HttpRule(post="/open")], options_pb2.PUBLIC),
        ("Get", [http_pb2.HttpRule(get="/m"), http_pb2.HttpRule(get="/n")], options_pb2.SIGNED),
        ("Odd", [http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/m"))], 0),
    )
    policies = build([service])
    assert {m: (p.access, p.idempotent) for m, p in policies.items()} == {
        "/fixture.S/Put": (Access.SIGNED, True),
        "/fixture.S/Open": (Access.PUBLIC, False),
        "/fixture.S/Get": (Access.SIGNED, False),
        "/fixture.S/Odd": (Access.SIGNED, False),
    }


def test_build_refuses_a_method_with_no_binding() -> None:
    with pytest.raises(ValueError, match=r"no google\.api\.http binding"):
        build([_service(("Bare", [], 0))])


def test_build_refuses_bindings_that_disagree_on_modifying() -> None:
    rules = [http_pb2.HttpRule(get="/m"), http_pb2.HttpRule(post="/m")]
    with pytest.raises(ValueError, match="disagree"):
        build([_service(("Mixed", rules, 0))])


def test_build_refuses_an_access_value_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="not known"):
        build([_service(("Future", [http_pb2.HttpRule(get="/m")], 7))])
