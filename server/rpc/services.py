"""The gRPC services this server exposes, read from the generated descriptors of the
customers.v1 proto files: SERVICES (Envoy transcodes them, the OpenAPI document describes
them) and INTERNAL_SERVICES (gRPC only, for service principals over mTLS; never given to the
gateway).

Nothing here names a service. Every service declared in a customers.v1 file is served. It is
internal when its methods carry the `(customers.v1.role)` option (proto/customers/v1/
options.proto): a role is what makes a method internal, so a service is internal when all of
its methods have one and public when none has; a service mixing the two is refused, since
the gateway transcodes whole services. The order is the proto's: files by name, then
services as each file declares them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

from google.protobuf.descriptor import ServiceDescriptor

import customers.v1
from customers.v1 import options_pb2


def _declared() -> Iterator[ServiceDescriptor]:
    """Every service of the customers.v1 files, files by name, services in declaration
    order."""
    modules = sorted(
        info.name
        for info in pkgutil.iter_modules(customers.v1.__path__)
        if info.name.endswith("_pb2")
    )
    for name in modules:
        file = importlib.import_module(f"customers.v1.{name}").DESCRIPTOR
        yield from sorted(file.services_by_name.values(), key=lambda service: service.index)


def is_internal(service: ServiceDescriptor) -> bool:
    """True when every method has a `(customers.v1.role)`; ValueError when only some do."""
    # The generated .pyi types the extension as a plain FieldDescriptor.
    roles: list[bool] = [
        method.GetOptions().Extensions[options_pb2.role]  # type: ignore[index]
        != options_pb2.ROLE_UNSPECIFIED
        for method in service.methods
    ]
    if any(roles) and not all(roles):
        raise ValueError(f"{service.full_name}: some methods have a role and some do not")
    return any(roles)


_ALL = list(_declared())

SERVICES: list[ServiceDescriptor] = [service for service in _ALL if not is_internal(service)]

SERVICE_NAMES: list[str] = [service.full_name for service in SERVICES]

INTERNAL_SERVICES: list[ServiceDescriptor] = [service for service in _ALL if is_internal(service)]

INTERNAL_SERVICE_NAMES: list[str] = [service.full_name for service in INTERNAL_SERVICES]
