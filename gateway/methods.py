"""405 Method Not Allowed for the REST paths, derived from the proto's google.api.http rules.

The transcoder only knows (verb, path) pairs: an undeclared verb on a known path (QUERY,
TRACE, OPTIONS, PATCH where nothing is bound) came back as its 400 or 404, where HTTP
(RFC 9110 15.5.6) and the contract fuzz want 405 with an `Allow` header. One Envoy route
per path template, before the catch-all, matches the path (with or without `/v1`) and any
method the template does not declare, and answers 405 itself (a direct response, shaped as
google.rpc.Status JSON by local_reply_config like every gateway error); declared methods
fall through to the transcoder as before. A path no template matches stays the
transcoder's 404.

Where one concrete path matches two templates (`/kyc/callbacks` is also `/kyc/{session_id}`),
the template with fewer variables is tried first and wins, as a partner reads the document:
`GET /kyc/callbacks` is a 405 naming POST, not the portal page of a session called
"callbacks". Its declared methods fall through to the wider template's route, which lets
them pass too (so `POST /kyc/callbacks` reaches the transcoder, and `POST /kyc/x` is the
transcoder's 404 rather than a 405: a small gap, on a path no partner calls).
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

Json = dict[str, Any]
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True, slots=True)
class PathMethods:
    template: str  # "/customers/{customer_id}"
    methods: tuple[str, ...]  # declared, upper case, in a stable order: ("GET", "PUT")
    # Methods the route lets through besides those: a more specific template's (tried
    # first) on the paths both match, which would otherwise fall through to this route.
    also_passes: tuple[str, ...] = ()

    @property
    def regex(self) -> str:
        """RE2 for the request path (Envoy matches it without the query), `/v1` optional."""
        return "(/v1)?" + template_regex(self.template)

    @property
    def allow(self) -> str:
        return ", ".join(self.methods)


def template_regex(template: str) -> str:
    """A google.api.http path template as a regex: `{x}` and `*` one segment, `**` any."""
    out: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char == "{":
            end = template.index("}", i)
            _, _, pattern = template[i + 1 : end].partition("=")
            out.append(template_regex(pattern)[1:] if pattern else "[^/]+")
            i = end + 1
        elif template.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]+")
            i += 1
        else:
            out.append(re.escape(char))
            i += 1
    regex = "".join(out)
    return regex if regex.startswith("/") else "/" + regex


def _rules(rule: http_pb2.HttpRule) -> Iterator[tuple[str, str]]:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        yield rule.custom.kind.upper(), rule.custom.path
    elif pattern is not None:
        yield pattern.upper(), getattr(rule, pattern)
    for additional in rule.additional_bindings:
        yield from _rules(additional)


def untranscoded(descriptor_set: bytes, services: Iterable[str]) -> list[str]:
    """The full names of the descriptor set's services that are not among `services`: the
    ones the REST listener must refuse when called as native gRPC (internal services)."""
    transcoded = set(services)
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    names = (f"{file.package}.{service.name}" for file in files.file for service in file.service)
    return [name for name in names if name not in transcoded]


def path_methods(descriptor_set: bytes, services: Iterable[str]) -> list[PathMethods]:
    """Every REST path template of the given services with its declared methods, the most
    specific first (fewest variables, then longest), the order Envoy must try them in."""
    wanted = set(services)
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    by_template: dict[str, set[str]] = {}
    for file in files.file:
        for service in file.service:
            if f"{file.package}.{service.name}" not in wanted:
                continue
            for method in service.method:
                rule = method.options.Extensions[annotations_pb2.http]
                for verb, template in _rules(rule):
                    by_template.setdefault(template, set()).add(verb)
    order = {verb.upper(): n for n, verb in enumerate(_VERBS)}

    def ordered(verbs: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(set(verbs), key=lambda v: (order.get(v, 99), v)))

    templates = sorted(
        by_template,
        key=lambda t: (t.count("{") + t.count("*"), -len(t), t),
    )
    found = []
    for n, template in enumerate(templates):
        regex = re.compile(template_regex(template))
        before = [t for t in templates[:n] if regex.fullmatch(_sample(t))]
        passes = [verb for t in before for verb in by_template[t]]
        found.append(
            PathMethods(
                template,
                ordered(by_template[template]),
                ordered(set(passes) - by_template[template]),
            )
        )
    return found


def _sample(template: str) -> str:
    """A concrete path the template matches (each variable or wildcard one segment)."""
    return re.sub(r"{[^}]*}|\*\*|\*", "sample", template)


def table(
    descriptor_path: str, services: Sequence[str], *, extra: Sequence[PathMethods] = ()
) -> list[PathMethods]:
    """`extra` (exact paths, such as the published contract's own files) first, then every
    template of the services, most specific first."""
    return [*extra, *path_methods(pathlib.Path(descriptor_path).read_bytes(), services)]


def _message(item: PathMethods) -> str:
    return f"This path answers {item.allow} only (see /openapi.json)."


def _allow(item: PathMethods) -> Json:
    return {
        "header": {"key": "allow", "value": item.allow},
        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
    }


def routes(paths: Sequence[PathMethods], *, disabled: Json) -> list[Json]:
    """Envoy routes answering 405 for undeclared methods; `disabled`: typed_per_filter_config
    that turns off the filters that must not see these requests (the transcoder would
    answer its own error)."""
    return [
        {
            "name": f"405 {item.template}",
            "match": {
                "safe_regex": {"regex": item.regex},
                "headers": [
                    {
                        "name": ":method",
                        "string_match": {
                            "safe_regex": {"regex": "|".join(item.methods + item.also_passes)}
                        },
                        "invert_match": True,
                    }
                ],
            },
            "direct_response": {"status": 405, "body": {"inline_string": _message(item)}},
            "response_headers_to_add": [_allow(item)],
            "typed_per_filter_config": disabled,
        }
        for item in paths
    ]


def query_mappers(paths: Sequence[PathMethods], error_body: Json, not_found: Json) -> list[Json]:
    """local_reply_config mappers for the one undeclared method no route sees: Envoy 1.40
    answers a QUERY without a Content-Type 400 itself, before routing (RFC 10008 section 2).
    None of our paths serves QUERY, so on a known path it is the same 405 with `Allow` as
    from the routes; elsewhere the 404 any unknown path gets. `error_body`: the 405's
    body_format with %LOCAL_REPLY_BODY% as its message; `not_found`: the 404's."""

    def when(*filters: Json) -> Json:
        return {
            "and_filter": {
                "filters": [
                    {
                        "status_code_filter": {
                            "comparison": {
                                "op": "EQ",
                                "value": {
                                    "default_value": 400,
                                    "runtime_key": "customers.local_reply.query",
                                },
                            }
                        }
                    },
                    _header(":method", {"string_match": {"exact": "QUERY"}}),
                    _header("content-type", {"present_match": True, "invert_match": True}),
                    *filters,
                ]
            }
        }

    mappers = [
        {
            "filter": when(
                _header(
                    ":path", {"string_match": {"safe_regex": {"regex": item.regex + r"(\?.*)?"}}}
                )
            ),
            "status_code": 405,
            "headers_to_add": [_allow(item)],
            "body": {"inline_string": _message(item)},
            "body_format_override": error_body,
        }
        for item in paths
    ]
    mappers.append(
        {
            "filter": when(),
            "status_code": 404,
            "body": {"inline_string": "No REST path of this API matches (see /openapi.json)."},
            "body_format_override": not_found,
        }
    )
    return mappers


def _header(name: str, match: Json) -> Json:
    return {"header_filter": {"header": {"name": name, **match}}}
