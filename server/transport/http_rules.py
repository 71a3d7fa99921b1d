"""Facts read from the proto's google.api.http bindings, so there is one source of truth."""

from __future__ import annotations

from collections.abc import Iterable

from google.api import annotations_pb2
from google.protobuf.descriptor import ServiceDescriptor

MODIFYING_VERBS = frozenset({"post", "put", "patch", "delete"})


def modifying_methods(
    services: Iterable[ServiceDescriptor], *, exempt: Iterable[str] = ()
) -> frozenset[str]:
    """gRPC method paths ("/pkg.Service/Method") whose REST binding modifies state, less
    those starting with an `exempt` prefix."""
    skip = tuple(exempt)
    found: set[str] = set()
    for service in services:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            if rule.WhichOneof("pattern") in MODIFYING_VERBS and not path.startswith(skip):
                found.add(path)
    return frozenset(found)
