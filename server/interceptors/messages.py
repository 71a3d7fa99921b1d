"""The request as a message the contract allows, checked after authentication (so an
unauthenticated caller learns nothing) and before anything runs or is recorded (so a refused
request changes nothing, idempotency records included):

- bytes that do not parse are INVALID_ARGUMENT (MALFORMED_REQUEST);
- a field the proto marks REQUIRED (google.api.field_behavior) left empty is INVALID_FIELD
  naming it, over REST and gRPC (rpc/required.py; the document's `required`);
- a REST call's raw JSON body and query, as gateway/request.lua forwards them, must have the
  JSON types of gen/openapi.json, not merely what proto3 JSON parsing accepts
  (rpc/rest_json.py): 400 INVALID_REQUEST naming the field.

Cheap on the hot path: a REST call without a body and without a query (a signed GET of one
resource) costs a header lookup; native gRPC calls are not looked at.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor

from server.domain.errors import MalformedRequest
from server.interceptors.auth import GATEWAY_METHOD, rest_request, via_gateway
from server.interceptors.handlers import BehaviourInterceptor, Context, Undecodable
from server.rpc import rest_json
from server.rpc.context import current
from server.rpc.policy import MethodPolicies
from server.rpc.required import check_required


@dataclass(frozen=True, slots=True)
class _RestShape:
    """Where a method's REST request puts its fields (from its google.api.http binding)."""

    body: Descriptor | None  # the message the JSON body fills; None: no body binding
    body_prefix: str  # the body field's json name when the binding names one
    query: Descriptor | None  # the message query parameters fill; None: no query allowed


class MessagesInterceptor(BehaviourInterceptor):
    def __init__(self, policy: MethodPolicies) -> None:
        super().__init__()
        self._policy = policy
        self._shapes: dict[str, _RestShape] = {}

    async def around(
        self, method: str, request: Any, context: Context, proceed: Callable[[], Awaitable[Any]]
    ) -> Any:
        if isinstance(request, Undecodable):
            raise MalformedRequest(f"The request message is not valid protobuf: {request.problem}")
        headers = current().headers
        if GATEWAY_METHOD in headers and via_gateway(context):
            self._check_rest(method, request, headers)
        if hasattr(request, "DESCRIPTOR"):  # health and reflection pass their own types
            check_required(request)
        return await proceed()

    def _check_rest(self, method: str, request: Any, headers: dict[str, str]) -> None:
        target = headers.get("x-gateway-target", "")
        if "?" not in target and "x-gateway-body" not in headers:
            return  # the hot path: nothing but the path, which the transcoder matched
        shape = self._shapes.get(method)
        if shape is None:
            shape = self._shapes[method] = self._shape(method, request.DESCRIPTOR)
        rest = rest_request(headers)
        if rest.query and shape.query is not None:
            rest_json.check_query(rest.query, shape.query)
        if rest.body and shape.body is not None:
            rest_json.check_body(rest.body, shape.body, shape.body_prefix)

    def _shape(self, method: str, message: Descriptor) -> _RestShape:
        bindings = self._policy.policy(method).bindings
        body = bindings[0].body if bindings else ""
        if body == "*":
            return _RestShape(body=message, body_prefix="", query=None)
        if body:
            field = message.fields_by_name[body]
            return _RestShape(body=field.message_type, body_prefix=field.json_name, query=message)
        return _RestShape(body=None, body_prefix="", query=message)
