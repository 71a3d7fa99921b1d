"""The gRPC services this server exposes, as proto descriptors: SERVICES (Envoy transcodes
them, the OpenAPI document describes them) and INTERNAL_SERVICES (gRPC only, for service
principals over mTLS; never given to the gateway)."""

from __future__ import annotations

from google.protobuf.descriptor import ServiceDescriptor

from customers.v1 import (
    accounts_pb2,
    auth_pb2,
    customers_pb2,
    events_pb2,
    kyc_pb2,
    operator_pb2,
    simulator_pb2,
    webhooks_pb2,
)

SERVICES: list[ServiceDescriptor] = [
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
    customers_pb2.DESCRIPTOR.services_by_name["CustomerService"],
    accounts_pb2.DESCRIPTOR.services_by_name["AccountService"],
    accounts_pb2.DESCRIPTOR.services_by_name["CardService"],
    simulator_pb2.DESCRIPTOR.services_by_name["SimulatorService"],
    kyc_pb2.DESCRIPTOR.services_by_name["KycPortalService"],
    kyc_pb2.DESCRIPTOR.services_by_name["KycCallbackService"],
    events_pb2.DESCRIPTOR.services_by_name["EventService"],
    webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"],
]

SERVICE_NAMES: list[str] = [service.full_name for service in SERVICES]

INTERNAL_SERVICES: list[ServiceDescriptor] = [
    operator_pb2.DESCRIPTOR.services_by_name["OperatorService"],
]

INTERNAL_SERVICE_NAMES: list[str] = [service.full_name for service in INTERNAL_SERVICES]
