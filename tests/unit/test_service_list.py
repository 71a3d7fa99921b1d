"""The services the server exposes, read from the proto (server/rpc/services.py), and the one
list the gateway, the policy and the server all take."""

from __future__ import annotations

import json

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import ServiceDescriptor

from customers.v1 import options_pb2
from gateway.__main__ import default_config
from server.rpc.policy import POLICY, service_of
from server.rpc.services import (
    INTERNAL_SERVICE_NAMES,
    INTERNAL_SERVICES,
    SERVICE_NAMES,
    SERVICES,
    is_internal,
)


def test_every_customers_v1_service_is_exposed_in_proto_file_then_declaration_order() -> None:
    assert SERVICE_NAMES == [
        "customers.v1.AccountService",  # accounts.proto
        "customers.v1.CardService",
        "customers.v1.AuthService",  # auth.proto
        "customers.v1.CustomerService",  # customers.proto
        "customers.v1.EventService",  # events.proto
        "customers.v1.KycPortalService",  # kyc.proto
        "customers.v1.KycCallbackService",
        "customers.v1.SimulatorService",  # simulator.proto
        "customers.v1.WebhookService",  # webhooks.proto
    ]
    assert INTERNAL_SERVICE_NAMES == ["customers.v1.OperatorService"]
    assert [s.full_name for s in SERVICES] == SERVICE_NAMES
    assert [s.full_name for s in INTERNAL_SERVICES] == INTERNAL_SERVICE_NAMES


def test_the_gateway_transcodes_the_public_list_and_the_policy_covers_both() -> None:
    config = json.loads(default_config())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    transcoder = next(
        f["typed_config"]
        for f in hcm["typed_config"]["http_filters"]
        if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    )
    assert transcoder["services"] == SERVICE_NAMES
    assert {service_of(method) for method in POLICY} == {*SERVICE_NAMES, *INTERNAL_SERVICE_NAMES}


def _service(*roles: int) -> ServiceDescriptor:
    """A fixture service with one method per role value (0: no role)."""
    pool = descriptor_pool.DescriptorPool()
    for module in (descriptor_pb2, options_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    fixture = descriptor_pb2.FileDescriptorProto(
        name="fixture.proto", package="fixture", syntax="proto3"
    )
    fixture.message_type.add(name="M")
    service = fixture.service.add(name="S")
    for index, role in enumerate(roles):
        method = service.method.add(
            name=f"M{index}", input_type=".fixture.M", output_type=".fixture.M"
        )
        if role:
            method.options.Extensions[options_pb2.role] = role
    pool.Add(fixture)
    return pool.FindServiceByName("fixture.S")


def test_a_service_is_internal_when_all_its_methods_have_a_role() -> None:
    assert is_internal(_service(options_pb2.READER, options_pb2.OPERATOR))
    assert not is_internal(_service(0, 0))


def test_a_service_mixing_role_and_partner_methods_is_refused() -> None:
    with pytest.raises(ValueError, match="some methods have a role"):
        is_internal(_service(options_pb2.READER, 0))
