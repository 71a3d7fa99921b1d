"""One OpenAPI operation per google.api.http binding of an rpc.

Statuses and reasons come from the method's `(customers.v1.responses)` option, plus what
follows from its access rule and verb (the same rules server/rpc/policy.py applies):
authentication for every non-public method, idempotency for modifying ones, and the
gateway's own rejections (bad JSON or query, bodies over 64 KiB).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2, http_pb2

from customers.v1 import options_pb2
from scripts.openapi.descriptors import DescriptorIndex, Method
from scripts.openapi.reasons import Reason
from scripts.openapi.schemas import Schemas, is_required

Json = dict[str, Any]

MODIFYING_VERBS = frozenset({"post", "put", "patch", "delete"})
_ACCESS: dict[int, str] = {
    options_pb2.ACCESS_UNSPECIFIED: "signed",
    options_pb2.SIGNED: "signed",
    options_pb2.PUBLIC: "public",
    options_pb2.FIRST_KEY: "first_key",
}
_PHRASES = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}
_ERROR_PHRASES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    422: "Idempotency-Key reused",
    429: "Too many requests",
    503: "Unavailable",
}
_TEMPLATE_VARIABLE = re.compile(r"\{([a-z0-9_.]+)(=[^}]*)?\}")
_JSON_EXAMPLE = re.compile(r"(?:--json|-d)\s+'(\{.*?\})'", re.DOTALL)
_ERROR_DOMAIN = "customers.v1"
# Sent with every RATE_LIMITED answer (server/rpc/status.py rate_limit_headers).
RATE_LIMIT_HEADERS = ("Retry-After", "RateLimit-Policy", "RateLimit")
_HTTP_BODY = "google.api.HttpBody"
_EMPTY = "google.protobuf.Empty"


@dataclass(frozen=True, slots=True)
class Binding:
    verb: str  # lower case, as OpenAPI path items spell it
    template: str  # "/customers/{customer_id}"
    body: str  # "*", a field name, or ""


def bindings(method: Method) -> list[Binding]:
    rule = method.proto.options.Extensions[annotations_pb2.http]
    return list(_walk(rule))


def _walk(rule: http_pb2.HttpRule) -> Any:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        yield Binding(rule.custom.kind.lower(), rule.custom.path, rule.body)
    elif pattern is not None:
        yield Binding(pattern, getattr(rule, pattern), rule.body)
    for additional in rule.additional_bindings:
        yield from _walk(additional)


def access_of(method: Method) -> str:
    # The generated .pyi types extensions as plain FieldDescriptors.
    value: int = method.proto.options.Extensions[options_pb2.access]  # type: ignore[index]
    return _ACCESS[value]


def _declared(method: Method) -> options_pb2.Responses:
    """The method's `(customers.v1.responses)` option (empty when absent)."""
    found: options_pb2.Responses = method.proto.options.Extensions[options_pb2.responses]  # type: ignore[index]
    return found


class Operations:
    """Builds path items; message schemas land in the shared `Schemas`."""

    def __init__(
        self, index: DescriptorIndex, schemas: Schemas, reasons: dict[str, Reason], package: str
    ) -> None:
        self._index = index
        self._schemas = schemas
        self._reasons = reasons
        self._package = package
        self._examples: set[str] = set()

    def examples(self) -> Json:
        """An example error body per reason some operation answers (components/examples)."""
        return {
            name: {"summary": self._reasons[name].message or name, "value": self._example(name)}
            for name in sorted(self._examples)
        }

    def add(self, paths: Json, method: Method) -> None:
        found = bindings(method)
        if not found:
            raise ValueError(f"{method.grpc_path}: no google.api.http binding")
        for number, binding in enumerate(found):
            path, operation = self._operation(method, binding, number, found[0])
            item = paths.setdefault(path, {})
            if binding.verb in item:
                raise ValueError(f"{binding.verb.upper()} {path} is bound twice")
            item[binding.verb] = operation

    def _operation(
        self, method: Method, binding: Binding, number: int, primary: Binding
    ) -> tuple[str, Json]:
        request = self._index.messages[method.input_type]
        json_names = {f.name: f.json_name for f in request.proto.field}
        path_fields = [m.group(1) for m in _TEMPLATE_VARIABLE.finditer(binding.template)]
        for name in path_fields:
            if name not in json_names:
                raise ValueError(f"{method.grpc_path}: path variable {name} is not a field")
        path = _TEMPLATE_VARIABLE.sub(
            lambda m: "{" + json_names[m.group(1)] + "}", binding.template
        )
        access = access_of(method)
        idempotent = binding.verb in MODIFYING_VERBS and access != "public"
        summary, description = _describe(method.comments.text)
        service = method.service.removeprefix(self._package + ".")
        operation: Json = {
            "tags": [service],
            "operationId": method.proto.name
            if number == 0
            else f"{method.proto.name}Alias{number}",
            "summary": summary,
        }
        if number:
            operation["summary"] = f"{summary} (also at {primary.verb.upper()} {primary.template})"
        if description:
            operation["description"] = description
        parameters = [self._path_parameter(request, name) for name in path_fields]
        if not binding.body:
            parameters += self._query_parameters(request, set(path_fields))
        parameters += _header_parameters(access, bool(binding.body), idempotent)
        if parameters:
            operation["parameters"] = parameters
        if binding.body:
            operation["requestBody"] = self._body(method, binding, frozenset(path_fields))
        operation["responses"] = self._responses(method, binding, access, idempotent)
        operation["security"] = [] if access == "public" else [{"bearerAuth": []}]
        operation["x-grpc-method"] = method.grpc_path
        operation["x-access"] = access
        operation["x-idempotent"] = idempotent
        return path, operation

    def _path_parameter(self, request: Any, name: str) -> Json:
        field = next(f for f in request.proto.field if f.name == name)
        schema = self._schemas.field(request, field, output=False)
        description = schema.pop("description", "")
        parameter: Json = {"name": field.json_name, "in": "path", "required": True}
        if description:
            parameter["description"] = description
        parameter["schema"] = schema
        return parameter

    def _query_parameters(self, request: Any, bound: set[str]) -> list[Json]:
        parameters = []
        for field in request.proto.field:
            if field.name in bound:
                continue
            schema = self._schemas.field(request, field, output=False)
            description = schema.pop("description", "")
            parameter: Json = {"name": field.json_name, "in": "query", "required": False}
            if description:
                parameter["description"] = description
            bounds = _QUERY_BOUNDS.get(f"{request.proto.name}.{field.name}")
            parameter["schema"] = schema | (bounds or _QUERY_BOUNDS.get(field.name, {}))
            if schema.get("type") == "array":
                parameter["style"] = "form"
                parameter["explode"] = True
            parameters.append(parameter)
        return parameters

    def _body(self, method: Method, binding: Binding, bound: frozenset[str]) -> Json:
        request = self._index.messages[method.input_type]
        body_type = method.input_type
        if binding.body != "*":
            field = next(f for f in request.proto.field if f.name == binding.body)
            body_type = field.type_name.lstrip(".")
        if body_type == _HTTP_BODY:
            return {
                "description": "The raw body, passed on byte for byte (google.api.HttpBody).",
                "required": True,
                "content": {"*/*": {"schema": {"type": "string"}}},
            }
        if bound:
            schema = self._schemas.message(request, output=False, exclude=bound)
        else:
            schema = self._schemas.ref(body_type, output=False)
        media: Json = {"schema": schema}
        example = _body_example(method.comments.text)
        if example is not None:
            media["example"] = example
        # A body is required when a field of it is: the transcoder takes a missing body as
        # every field at its default, so a body of optional fields only may be left out.
        needed = any(f.name not in bound and is_required(f) for f in request.proto.field)
        return {"required": needed, "content": {"application/json": media}}

    def _responses(self, method: Method, binding: Binding, access: str, idempotent: bool) -> Json:
        declared = _declared(method)
        responses: Json = {}
        headers: Json = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
        if idempotent:
            headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/Idempotent-Replayed"}
        for status in list(declared.success) or [200]:
            answer: Json = {"description": _PHRASES.get(status, "Success"), "headers": headers}
            content = self._success_content(method, status)
            if content:
                answer["content"] = content
            responses[str(status)] = answer
        for status, reasons in sorted(
            self._error_reasons(method, binding, access, idempotent).items()
        ):
            responses[str(status)] = self._error_response(status, reasons)
        responses["default"] = {
            "description": (
                "Server or gateway failure (5xx): `INTERNAL` (quote the request id to support), "
                "`UPSTREAM_UNAVAILABLE`, `UPSTREAM_TIMEOUT`, 503 `DATABASE_UNAVAILABLE` (the "
                "database was unreachable or kept refusing). Safe to retry with the same "
                "Idempotency-Key: a failed call is not stored."
            ),
            "content": {"application/json": {"schema": _status_ref()}},
        }
        return responses

    def _success_content(self, method: Method, status: int) -> Json:
        if status in (202, 204):
            return {}  # status.lua drops the `{}` of google.protobuf.Empty
        if method.proto.server_streaming:
            event = self._schemas.ref(method.output_type, output=True)
            return {
                "text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": (
                            "Server-sent events: one `data: <JSON>` line per message, each "
                            "message a `" + event["$ref"].rsplit("/", 1)[-1] + "`."
                        ),
                    },
                    "x-sse-data": event,
                }
            }
        if method.output_type == _HTTP_BODY:
            return {"text/html": {"schema": {"type": "string"}}}  # our HttpBody answers: pages
        if method.output_type == _EMPTY:
            return {"application/json": {"schema": {"type": "object", "properties": {}}}}
        return {"application/json": {"schema": self._schemas.ref(method.output_type, output=True)}}

    def _error_reasons(
        self, method: Method, binding: Binding, access: str, idempotent: bool
    ) -> dict[int, list[str]]:
        wanted: list[str] = ["INVALID_REQUEST"]  # the transcoder: bad JSON, unknown query
        if binding.body:
            wanted.append("REQUEST_TOO_LARGE")
        if access != "public":
            wanted.append("UNAUTHENTICATED")
            wanted += sorted(r.reason for r in self._reasons.values() if r.source == "signature")
            # The partner's rate limit, checked once the token names the partner.
            wanted.append("RATE_LIMITED")
        if idempotent:
            wanted += [
                "IDEMPOTENCY_KEY_MISSING",
                "IDEMPOTENCY_KEY_INVALID",
                "IDEMPOTENCY_KEY_IN_FLIGHT",
                "IDEMPOTENCY_KEY_REUSED",
            ]
        request = self._index.messages.get(method.input_type)
        if request is not None and any(is_required(f) for f in request.proto.field):
            wanted.append("INVALID_FIELD")  # a REQUIRED field missing (interceptors/messages.py)
        declared = _declared(method)
        wanted += list(declared.errors)
        by_status: dict[int, list[str]] = {}
        for name in wanted:
            reason = self._reasons.get(name)
            if reason is None:
                raise ValueError(f"{method.grpc_path}: no error in the server answers {name}")
            if reason.http_status >= 500:
                continue  # documented under `default`
            listed = by_status.setdefault(reason.http_status, [])
            if name not in listed:
                listed.append(name)
        return by_status

    def _error_response(self, status: int, names: list[str]) -> Json:
        reasons = ", ".join(f"`{name}`" for name in names)
        self._examples.update(names)
        examples = {name: {"$ref": f"#/components/examples/{name}"} for name in names}
        response: Json = {
            "description": f"{_ERROR_PHRASES.get(status, 'Error')}. ErrorInfo reasons: {reasons}.",
        }
        if "RATE_LIMITED" in names:
            response["headers"] = {
                name: {"$ref": f"#/components/headers/{name}"} for name in RATE_LIMIT_HEADERS
            }
        response["content"] = {"application/json": {"schema": _status_ref(), "examples": examples}}
        response["x-error-reasons"] = names
        return response

    def _example(self, name: str) -> Json:
        reason = self._reasons[name]
        return {
            "code": reason.grpc_code,
            "message": reason.message or f"({name})",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": name,
                    "domain": _ERROR_DOMAIN,
                    "metadata": {},
                }
            ],
        }


# What the server refuses with a 400 that the field's type alone allows (server/services/
# paging.py, services/events.py): in the document, so a client and a fuzzer know the range
# (0 means the default). Keyed by field name, or `Message.field` where one list differs.
_QUERY_BOUNDS: dict[str, Json] = {
    "page_size": {"minimum": 0, "maximum": 500},
    "ListEventsRequest.page_size": {"minimum": 0, "maximum": 1000},
    "ListEventsRequest.after": {"pattern": "^[0-9]+$"},
}


def _status_ref() -> Json:
    return {"$ref": "#/components/schemas/google.rpc.Status"}


def _header_parameters(access: str, has_body: bool, idempotent: bool) -> list[Json]:
    refs: list[str] = []
    if access == "signed":
        refs += ["Signature", "Signature-Input"]
        if has_body:
            refs.append("Content-Digest")
    elif access == "first_key":
        refs += ["Signature-FirstKey", "Signature-Input-FirstKey"]
        if has_body:
            refs.append("Content-Digest-FirstKey")
    if idempotent:
        refs.append("Idempotency-Key")
    return [{"$ref": f"#/components/parameters/{ref}"} for ref in refs]


def _describe(comment: str) -> tuple[str, str]:
    """(summary, Markdown description) from an rpc's comment: prose paragraphs as they are,
    the indented example commands as shell code blocks."""
    blocks: list[str] = []
    code: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            blocks.append(" ".join(line.strip() for line in prose))
            prose.clear()
        if code:
            indent = min(len(line) - len(line.lstrip()) for line in code if line.strip())
            blocks.append("```sh\n" + "\n".join(line[indent:] for line in code) + "\n```")
            code.clear()

    for line in comment.splitlines():
        if not line.strip():
            flush()
        elif line.startswith("  "):
            if prose:
                flush()
            code.append(line)
        else:
            if code:
                flush()
            prose.append(line)
    flush()
    first = blocks[0] if blocks and not blocks[0].startswith("```") else ""
    summary = re.split(r"(?<=[.;:])\s", first, maxsplit=1)[0].rstrip(".;:")
    # Renderers show summaries as plain text: no Markdown code marks there.
    return summary.replace("`", ""), "\n\n".join(blocks)


def _body_example(comment: str) -> Any:
    """The JSON body of the comment's first example command, if it is valid JSON."""
    joined = re.sub(r"\\\n\s*", " ", comment)
    match = _JSON_EXAMPLE.search(joined)
    if match is None:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None
