"""The request fields the proto marks `[(google.api.field_behavior) = REQUIRED]`, enforced
for every call, REST and native gRPC alike: the same annotation the published document's
`required` comes from (scripts/openapi/schemas.py), so the two cannot disagree.

Required means holding a value (google.aip.dev/203): proto3 cannot tell an unset string
from "", so "", an empty list and the zero enum value (`*_UNSPECIFIED`) are missing too.
The services keep their own checks of what a value must look like.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from server.domain.errors import InvalidField


@lru_cache(maxsize=256)
def required_fields(message: Descriptor) -> tuple[FieldDescriptor, ...]:
    """The message's REQUIRED fields (none for most: a plain tuple, checked per call)."""
    return tuple(
        field
        for field in message.fields
        if field_behavior_pb2.REQUIRED
        in field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    )


def check_required(request: Any) -> None:
    """Raises InvalidField (400) naming the first REQUIRED field the request leaves empty."""
    for field in required_fields(request.DESCRIPTOR):
        if field.is_repeated:
            missing = len(getattr(request, field.name)) == 0
        elif field.message_type is not None or field.has_presence:
            missing = not request.HasField(field.name)
        else:
            missing = not getattr(request, field.name)  # "", 0, the zero enum value, False
        if missing:
            raise InvalidField(field.json_name, f"{field.json_name} is required")
