"""Renders the Envoy bootstrap that turns the REST/JSON contract into calls on the gRPC API.

The config is built as a Python dict (one function per piece, each commented where Envoy
surprises) and dumped as JSON, which Envoy reads as YAML too. Building it in code keeps the
ports, backends and services parameters rather than template holes, and lets tests inspect
the structure instead of grepping text.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Sequence
from typing import Any

from gateway import docs, methods, tls
from gateway.tls import Certificate, GrpcEdge

Json = dict[str, Any]

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
STATUS_LUA = PACKAGE_DIR / "status.lua"
REQUEST_LUA = PACKAGE_DIR / "request.lua"
EARLY_LUA = PACKAGE_DIR / "early.lua"

CLUSTER = "customers_grpc"
# Same domain as the server's ErrorInfo details (server/rpc/status.py).
ERROR_DOMAIN = "customers.v1"
MAX_REQUEST_BODY_BYTES = 64 * 1024
# Idle limit for a stream (no bytes either way). WatchCustomers must heartbeat more often.
STREAM_IDLE_TIMEOUT = "300s"
# Limits on what a client may send in headers (the URL included). The request then grows by
# what request.lua forwards (the target again, the body as base64: 64 KiB -> 88 KiB) and the
# transcoder's own headers; the server accepts up to SERVER_MAX_METADATA_BYTES
# (server/app.py), so whatever Envoy lets through the server takes, and anything larger is
# Envoy's JSON 431 here, not a gRPC error there.
MAX_REQUEST_HEADERS_KB = 32
MAX_REQUEST_HEADERS_COUNT = 80  # Envoy's own limit is 100; ours leaves room for the forwarded
# A slow or stalled upload cannot hold Envoy's memory for long (issue 13 row 4): the whole
# request must have arrived within this time, one connection buffers about one request, and
# Envoy as a whole stays under its heap cap (the overload manager).
REQUEST_TIMEOUT_SECONDS = 30.0
PER_CONNECTION_BUFFER_BYTES = 128 * 1024
MAX_HEAP_BYTES = 512 * 1024 * 1024

_API = "type.googleapis.com/envoy."
_TRANSCODER = _API + "extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder"
_LUA = _API + "extensions.filters.http.lua.v3.Lua"
_BUFFER = _API + "extensions.filters.http.buffer.v3.Buffer"
_ROUTER = _API + "extensions.filters.http.router.v3.Router"
_HCM = _API + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_HTTP_OPTIONS = _API + "extensions.upstreams.http.v3.HttpProtocolOptions"
_STDOUT_LOG = _API + "extensions.access_loggers.stream.v3.StdoutAccessLog"
_PREVIOUS_HOSTS = _API + "extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
_FIXED_HEAP = _API + "extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig"
_MAX_CONNECTIONS = (
    _API + "extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
)

# Envoy's own error replies (local replies) as google.rpc.Status JSON, like the transcoder's
# converted gRPC errors: HTTP status -> (gRPC code, ErrorInfo reason).
LOCAL_REPLY_CODES: dict[int, tuple[int, str]] = {
    400: (3, "INVALID_REQUEST"),  # unknown query parameter, bad JSON, wrong types, bad UTF-8
    401: (16, "UNAUTHENTICATED"),
    403: (7, "PERMISSION_DENIED"),
    404: (5, "ROUTE_NOT_FOUND"),  # no http binding matches method + path
    405: (12, "METHOD_NOT_ALLOWED"),
    408: (4, "REQUEST_TIMEOUT"),
    413: (8, "REQUEST_TOO_LARGE"),  # like gRPC's "message larger than max" (RESOURCE_EXHAUSTED)
    429: (8, "RATE_LIMITED"),
    431: (3, "HEADERS_TOO_LARGE"),
    500: (13, "GATEWAY_ERROR"),
    502: (14, "UPSTREAM_UNAVAILABLE"),
    503: (14, "UPSTREAM_UNAVAILABLE"),  # no healthy backend, connection refused or reset
    504: (4, "UPSTREAM_TIMEOUT"),
}
_FALLBACK_CODE = (2, "GATEWAY_ERROR")  # UNKNOWN, for any other local reply
_TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
_REQUEST_FILTER = "customers.request"
# Filters that must not run on routes Envoy answers itself (the transcoder would refuse a
# path or method no rpc is bound to; request.lua would forward a body nobody reads).
_LOCAL_ONLY = [_TRANSCODER_FILTER, _REQUEST_FILTER]

# Envoy's own replies whose status the contract does not allow (SPEC 9: malformed input is a
# 4xx naming the problem): HTTP status -> (status sent instead, gRPC code, reason, message).
# Envoy's HTTP/1 codec answers 501 to a Transfer-Encoding other than plain `chunked`
# (`gzip, chunked`, say), as RFC 9112 suggests; to the partner it is a request we refuse.
LOCAL_REPLY_REWRITES: dict[int, tuple[int, int, str, str]] = {
    501: (
        400,
        3,
        "UNSUPPORTED_TRANSFER_ENCODING",
        "Transfer-Encoding must be chunked alone (or absent): other codings are not supported"
        " (%RESPONSE_CODE_DETAILS%)",
    ),
}


def render(
    *,
    http_port: int,
    admin_port: int,
    backends: Sequence[str],
    descriptor_path: str,
    services: Sequence[str],
    bind_address: str = "127.0.0.1",
    access_log: bool = True,
    openapi_path: str | None = None,
    token_bindings: Sequence[tuple[str, str]] = (),
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    rest_tls: Certificate | None = None,
    grpc_edge: GrpcEdge | None = None,
) -> str:
    """The Envoy bootstrap as text (JSON, which is also valid YAML)."""
    return json.dumps(
        bootstrap(
            http_port=http_port,
            admin_port=admin_port,
            backends=backends,
            descriptor_path=descriptor_path,
            services=services,
            bind_address=bind_address,
            access_log=access_log,
            openapi_path=openapi_path,
            token_bindings=token_bindings,
            request_timeout_seconds=request_timeout_seconds,
            rest_tls=rest_tls,
            grpc_edge=grpc_edge,
        ),
        indent=2,
    )


def bootstrap(
    *,
    http_port: int,
    admin_port: int,
    backends: Sequence[str],
    descriptor_path: str,
    services: Sequence[str],
    bind_address: str = "127.0.0.1",
    access_log: bool = True,
    openapi_path: str | None = None,
    token_bindings: Sequence[tuple[str, str]] = (),
    request_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    rest_tls: Certificate | None = None,
    grpc_edge: GrpcEdge | None = None,
) -> Json:
    """The Envoy bootstrap as a dict, for callers and tests that want the structure.

    `backends`: the server workers' gateway sockets (absolute Unix socket paths). Only calls
    that arrive over such a socket may carry the REST request's components for the server to
    verify; the server's TCP port is for native gRPC callers (docs/DECISIONS.md).
    `openapi_path`: the document `GET /openapi.json` serves; by default the openapi.json
    generated beside the descriptor set.
    `token_bindings`: (HTTP verb, google.api.http path template) of every REST binding of
    a method that needs a token (from the proto's access option): such a request that has a
    body but no Authorization header is refused before its body is read (early.lua).
    `request_timeout_seconds`: the whole request, body included, must have arrived by then.
    `rest_tls`: the REST listener's certificate (HTTPS, HTTP/2 and HTTP/1.1 by ALPN); None
    for plain HTTP (development).
    `grpc_edge`: the public native gRPC listener with its mTLS hop to the workers
    (gateway/tls.py); None when the workers serve native gRPC themselves (development).
    """
    openapi = pathlib.Path(openapi_path or pathlib.Path(descriptor_path).with_name("openapi.json"))
    if not backends:
        raise ValueError("at least one backend is needed")
    if not services:
        raise ValueError("at least one gRPC service is needed")
    for path in backends:
        if not path.startswith("/"):
            raise ValueError(f"backend {path!r} is not an absolute Unix socket path")
    listeners = [
        _listener(
            bind_address=bind_address,
            port=http_port,
            descriptor_path=descriptor_path,
            services=services,
            access_log=access_log,
            openapi=openapi.resolve(),
            token_bindings=token_bindings,
            request_timeout_seconds=request_timeout_seconds,
            rest_tls=rest_tls,
        )
    ]
    clusters = [
        _cluster(CLUSTER, [{"endpoint": {"address": {"pipe": {"path": p}}}} for p in backends])
    ]
    if grpc_edge is not None:
        if not grpc_edge.backends:
            raise ValueError("the gRPC listener needs at least one backend port")
        listeners.append(_grpc_listener(bind_address, grpc_edge, access_log=access_log))
        endpoints = [
            {"endpoint": {"address": _socket_address(host, port)}}
            for host, port in grpc_edge.backends
        ]
        clusters.append(
            {
                **_cluster(tls.GRPC_CLUSTER, endpoints),
                "transport_socket": tls.hop_transport_socket(grpc_edge),
            }
        )
    return {
        "node": {"id": "customers-gateway", "cluster": "customers-gateway"},
        "admin": {
            "address": _socket_address("127.0.0.1", admin_port),
            "access_log": [],
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
        "overload_manager": _overload_manager(),
    }


def _overload_manager() -> Json:
    """The overall budget: a cap on connections (without one Envoy warns at start) and on
    Envoy's heap, under which it first resets the streams holding the most buffered bytes
    (buffer accounting tracks those of 64 KiB and more: a full request body), then stops
    taking new requests until memory is back below the threshold."""
    heap = "envoy.resource_monitors.fixed_heap"
    return {
        "refresh_interval": "0.25s",
        "buffer_factory_config": {"minimum_account_to_track_power_of_two": 16},
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": _MAX_CONNECTIONS,
                    "max_active_downstream_connections": 50_000,
                },
            },
            {
                "name": heap,
                "typed_config": {"@type": _FIXED_HEAP, "max_heap_size_bytes": MAX_HEAP_BYTES},
            },
        ],
        "actions": [
            {
                "name": "envoy.overload_actions.reset_high_memory_stream",
                "triggers": [
                    {
                        "name": heap,
                        "scaled": {"scaling_threshold": 0.80, "saturation_threshold": 0.95},
                    }
                ],
            },
            {
                "name": "envoy.overload_actions.stop_accepting_requests",
                "triggers": [{"name": heap, "threshold": {"value": 0.95}}],
            },
        ],
    }


def _socket_address(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _listener(
    *,
    bind_address: str,
    port: int,
    descriptor_path: str,
    services: Sequence[str],
    access_log: bool,
    openapi: pathlib.Path,
    token_bindings: Sequence[tuple[str, str]],
    request_timeout_seconds: float,
    rest_tls: Certificate | None,
) -> Json:
    chain: Json = {
        "filters": [
            {
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": _http_connection_manager(
                    descriptor_path=descriptor_path,
                    services=services,
                    access_log=access_log,
                    openapi=openapi,
                    token_bindings=token_bindings,
                    request_timeout_seconds=request_timeout_seconds,
                ),
            }
        ]
    }
    if rest_tls is not None:
        chain["transport_socket"] = tls.https_transport_socket(rest_tls)
    return {
        "name": "rest",
        "address": _socket_address(bind_address, port),
        # What one connection may hold in Envoy's buffers before it stops reading from it:
        # a whole request (headers and the largest body) and some, not the default 1 MiB.
        "per_connection_buffer_limit_bytes": PER_CONNECTION_BUFFER_BYTES,
        # Envoy defaults to SO_REUSEPORT on Linux: a second Envoy on a busy port would then
        # start "fine" and share the traffic. Fail loudly instead.
        "enable_reuse_port": False,
        "filter_chains": [chain],
    }


def _grpc_listener(bind_address: str, edge: GrpcEdge, *, access_log: bool) -> Json:
    """The public native gRPC port (gateway/tls.py): TLS with optional client
    certificates, then straight to the workers' internal mTLS ports."""
    hcm = tls.grpc_connection_manager(
        hcm_type=_HCM,
        router={
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _ROUTER, "suppress_envoy_headers": True},
        },
        idle_timeout=STREAM_IDLE_TIMEOUT,
        access_log=_access_log() if access_log else None,
    )
    return {
        "name": "grpc",
        "address": _socket_address(bind_address, edge.port),
        "per_connection_buffer_limit_bytes": PER_CONNECTION_BUFFER_BYTES,
        "enable_reuse_port": False,
        "filter_chains": [
            {
                "transport_socket": tls.grpc_transport_socket(edge),
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ],
            }
        ],
    }


def _http_connection_manager(
    *,
    descriptor_path: str,
    services: Sequence[str],
    access_log: bool,
    openapi: pathlib.Path,
    token_bindings: Sequence[tuple[str, str]],
    request_timeout_seconds: float,
) -> Json:
    # Every REST path with the methods it declares (the 405s), the published files included.
    paths = methods.table(
        descriptor_path,
        services,
        extra=[methods.PathMethods(path, ("GET", "HEAD")) for path in docs.files(openapi)],
    )
    hcm: Json = {
        "@type": _HCM,
        "stat_prefix": "rest",
        "codec_type": "AUTO",
        # Envoy is the edge: the client's address is the peer's, not a claimed XFF, and a
        # client's x-request-id is replaced by one Envoy generates (it reaches the server as
        # metadata and comes back on every answer, errors included).
        "use_remote_address": True,
        "generate_request_id": True,
        "preserve_external_request_id": False,
        "always_set_request_id_in_response": True,
        # Envoy's default, said out loud: a client's own x-forwarded-client-cert is removed
        # (the server believes one only from Envoy's gRPC hop, gateway/tls.py).
        "forward_client_cert_details": "SANITIZE",
        "stream_idle_timeout": STREAM_IDLE_TIMEOUT,
        "request_headers_timeout": "10s",
        # The whole request, body included (a body trickled a byte at a time resets the idle
        # timeout forever): 408 past it. Disarmed once the answer starts, so it never cuts
        # a server stream (GET /customers:watch), which has no request body anyway.
        "request_timeout": f"{request_timeout_seconds:g}s",
        "max_request_headers_kb": MAX_REQUEST_HEADERS_KB,
        "common_http_protocol_options": {"max_headers_count": MAX_REQUEST_HEADERS_COUNT},
        "route_config": _route_config(
            openapi,
            paths,
            methods.untranscoded(pathlib.Path(descriptor_path).read_bytes(), services),
        ),
        "http_filters": _http_filters(
            descriptor_path=descriptor_path, services=services, token_bindings=token_bindings
        ),
        "local_reply_config": _local_reply_config(openapi, paths),
    }
    if access_log:
        hcm["access_log"] = [_access_log()]
    return hcm


# Retried on another backend: only failures where the request never reached a server
# (connection refused or failed, reset before the request was sent, HTTP/2 REFUSED_STREAM).
# A plain `reset` is left out on purpose: that request may have reached the server and
# burned its signature nonce, so Envoy's retry would be refused as a replay (401), where a
# 503 tells the client to retry with a fresh signature.
RETRY_ON = "connect-failure,reset-before-request,refused-stream"
NUM_RETRIES = 2
# The REST methods Envoy may retry (safe); other calls only with an Idempotency-Key.
SAFE_METHODS_REGEX = "GET|HEAD|OPTIONS"


def _route_config(
    openapi: pathlib.Path, paths: Sequence[methods.PathMethods], internal: Sequence[str]
) -> Json:
    # `internal`: the gRPC services of the descriptor set the REST listener never forwards
    # (internal principals only, with their client certificates on the public gRPC listener,
    # gateway/tls.py): the transcoder does not know them, and a route refuses them when
    # called as native gRPC on the REST port, before any backend is involved. The server
    # refuses them too (no client certificate arrives over the gateway socket): two locks,
    # either enough.
    # The published contract first (GET /openapi.json, /docs: files Envoy answers itself,
    # gateway/docs.py), then a 405 with `Allow` for a method a REST path does not declare
    # (gateway/methods.py; the transcoder would answer 400 or 404), then catch-all routes:
    # by the time the router runs, the transcoder has rewritten the path to
    # /customers.v1.Service/Method (and the method to POST), and
    # native gRPC calls arrive in that form anyway. What tells the routes apart is the REST
    # request as received: request.lua's x-gateway-method (a client cannot send its own; it
    # is removed first), and the Idempotency-Key that makes a modifying call safe to send
    # twice.
    retried = _route_action(retry=True)
    return {
        "name": "customers",
        "max_direct_response_body_size_bytes": docs.MAX_BODY_BYTES,
        "virtual_hosts": [
            {
                "name": "customers",
                "domains": ["*"],
                "routes": [
                    *docs.routes(openapi, disabled_filters=_LOCAL_ONLY),
                    *(
                        {
                            "name": f"internal-{name}",
                            "match": {"prefix": f"/{name}/"},
                            "direct_response": {
                                "status": 404,
                                "body": {"inline_string": "not served by the gateway"},
                            },
                        }
                        for name in internal
                    ),
                    *methods.routes(paths, disabled=docs.disabled_config(_LOCAL_ONLY)),
                    {
                        "name": "safe",
                        "match": {
                            "prefix": "/",
                            "headers": [
                                {
                                    "name": "x-gateway-method",
                                    "string_match": {"safe_regex": {"regex": SAFE_METHODS_REGEX}},
                                }
                            ],
                        },
                        "route": retried,
                    },
                    {
                        "name": "idempotent",
                        "match": {
                            "prefix": "/",
                            "headers": [{"name": "idempotency-key", "present_match": True}],
                        },
                        "route": retried,
                    },
                    {
                        "name": "other",
                        "match": {"prefix": "/"},
                        "route": _route_action(retry=False),
                    },
                ],
            }
        ],
    }


def _route_action(*, retry: bool) -> Json:
    action: Json = {
        "cluster": CLUSTER,
        # No overall deadline: server streams (GET /customers:watch) stay open; a silent
        # stream is ended by the idle timeout instead, and streams have no maximum duration.
        "timeout": "0s",
        "idle_timeout": STREAM_IDLE_TIMEOUT,
    }
    if retry:
        # A replica that just died (kill -9) refuses connections until the health check or
        # outlier detection drops it; the retry goes to another backend meanwhile.
        action["retry_policy"] = {
            "retry_on": RETRY_ON,
            "num_retries": NUM_RETRIES,
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {"@type": _PREVIOUS_HOSTS},
                }
            ],
            "host_selection_retry_max_attempts": 5,
        }
    return action


def _http_filters(
    *, descriptor_path: str, services: Sequence[str], token_bindings: Sequence[tuple[str, str]]
) -> list[Json]:
    # Order matters. Requests pass the filters top to bottom, responses bottom to top.
    filters: list[Json] = [
        # 1. Status rewrite. FIRST, so on the way back it sees the transcoder's JSON answer.
        _lua("customers.status", STATUS_LUA),
        # 2. Refusals that cannot wait for the body (early.lua): CONNECT, whose body is a
        #    tunnel that never ends, would otherwise hang in the buffer filter unanswered;
        #    a body without any Authorization header, for a method that needs a token.
        _lua("customers.early", EARLY_LUA, prelude=_token_bindings_lua(token_bindings)),
        # 3. Body size cap. The transcoder's own max_request_body_size is only enforced when
        #    a body arrives in one piece: over HTTP/2 (16 KiB DATA frames) a 10 MiB body
        #    went through to the server. The buffer filter counts every byte: 413.
        {
            "name": "envoy.filters.http.buffer",
            "typed_config": {"@type": _BUFFER, "max_request_bytes": MAX_REQUEST_BODY_BYTES},
        },
        # 4. The request as the client sent it (method, Host, raw target, raw body) forwarded
        #    for the server's one check of token, signature and Content-Digest; /v1 prefix
        #    strip; REST request hygiene (request.lua). Before the transcoder, which matches
        #    paths before routing and replaces the body with the protobuf message.
        _lua(_REQUEST_FILTER, REQUEST_LUA),
        # 5. REST <-> gRPC.
        {
            "name": _TRANSCODER_FILTER,
            "typed_config": _transcoder(descriptor_path, services),
        },
        # 6. Router. suppress_envoy_headers keeps x-envoy-upstream-service-time and friends
        #    out of partners' answers.
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _ROUTER, "suppress_envoy_headers": True},
        },
    ]
    return filters


def _lua(name: str, source: pathlib.Path, *, prelude: str = "") -> Json:
    """`prelude`: generated Lua put before the file's code (tables the script reads)."""
    code = prelude + source.read_text(encoding="utf-8")
    return {
        "name": name,
        "typed_config": {"@type": _LUA, "default_source_code": {"inline_string": code}},
    }


_LUA_MAGIC = re.compile(r"([\^$()%.\[\]*+\-?])")


def path_pattern(template: str) -> str:
    """A google.api.http path template as an anchored Lua pattern: `{var}` is one segment,
    `{var=**}` the rest of the path; Lua's magic characters in literal text are escaped."""
    pattern = ""
    for literal, variable in re.findall(r"([^{]*)(\{[^}]*\}|$)", template):
        pattern += _LUA_MAGIC.sub(r"%\1", literal)
        if variable:
            pattern += ".+" if variable.endswith("**}") else "[^/]+"
    return f"^{pattern}$"


def _token_bindings_lua(bindings: Sequence[tuple[str, str]]) -> str:
    """TOKEN_BINDINGS = { {"POST", "^/customers$"}, ... } for early.lua."""
    entries = ", ".join(
        f"{{ {json.dumps(verb)}, {json.dumps(path_pattern(template))} }}"
        for verb, template in sorted(set(bindings))
    )
    header = "-- Generated by gateway/config.py: the REST bindings of methods needing a token.\n"
    return f"{header}TOKEN_BINDINGS = {{ {entries} }}\n\n"


def _transcoder(descriptor_path: str, services: Sequence[str]) -> Json:
    return {
        "@type": _TRANSCODER,
        # Envoy resolves relative paths against its own working directory, not ours.
        "proto_descriptor": str(pathlib.Path(descriptor_path).resolve()),
        "services": list(services),
        # gRPC errors become google.rpc.Status JSON ({"code","message","details"}) with the
        # standard gRPC -> HTTP status mapping; status.lua refines the status.
        "convert_grpc_status": True,
        # The route is a catch-all for the backend; methods are chosen by http bindings.
        "match_incoming_request_route": False,
        # Without these, some malformed REST requests reach the upstream and come back 503.
        # Body/path collisions (a body "customerId" that differs from the path's) are a 400
        # rather than one silently winning.
        "request_validation_options": {
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
            "reject_binding_body_field_collisions": True,
        },
        # Bigger bodies answer 413 (a local reply, so JSON via local_reply_config). The
        # buffer filter before this one is what enforces it for bodies sent in pieces.
        "max_request_body_size": MAX_REQUEST_BODY_BYTES,
        "print_options": {
            "add_whitespace": False,
            # Empty lists and empty page tokens are printed ({"customers": []}), as partners
            # expect; fields that must stay absent are proto3 `optional` (they have presence).
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": False,  # camelCase JSON, as the contract says
            # Server streams as text/event-stream, one `data: {...}` event per message.
            "stream_sse_style_delimited": True,
        },
    }


def _error_body(code: int, reason: str, message: str = "%LOCAL_REPLY_BODY%") -> Json:
    return {
        "json_format": {
            "code": code,
            "message": message,
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": ERROR_DOMAIN,
                }
            ],
        },
        "content_type": "application/json",
    }


def _local_reply_config(openapi: pathlib.Path, paths: Sequence[methods.PathMethods]) -> Json:
    # Applies only to replies Envoy makes itself (transcoder rejections, 413, no upstream);
    # errors that came from the server through the transcoder are left alone.
    mappers = [
        {
            "filter": _status_filter(status),
            "body_format_override": _error_body(code, reason),
        }
        for status, (code, reason) in sorted(LOCAL_REPLY_CODES.items())
    ]
    rewrites = [
        {
            "filter": _status_filter(status),
            "status_code": sent,
            "body_format_override": _error_body(code, reason, message),
        }
        for status, (sent, code, reason, message) in sorted(LOCAL_REPLY_REWRITES.items())
    ]
    # Native gRPC calls through this port get Envoy's message as plain grpc-message text.
    # Transcoded REST calls carry content-type application/grpc by the time the router
    # fails too; x-envoy-original-path (set by the transcoder) tells them apart.
    grpc_passthrough = {
        "filter": {
            "and_filter": {
                "filters": [
                    _header_filter(
                        "content-type", {"string_match": {"prefix": "application/grpc"}}
                    ),
                    _header_filter(
                        "x-envoy-original-path", {"present_match": True, "invert_match": True}
                    ),
                ]
            }
        },
        "body_format_override": {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"}},
    }
    queries = methods.query_mappers(
        paths, _error_body(*LOCAL_REPLY_CODES[405]), _error_body(*LOCAL_REPLY_CODES[404])
    )
    return {
        "mappers": [
            *docs.local_reply_mappers(openapi),
            grpc_passthrough,
            *queries,
            *rewrites,
            *mappers,
        ],
        "body_format": _error_body(*_FALLBACK_CODE),
    }


def _status_filter(status: int) -> Json:
    return {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {
                    "default_value": status,
                    "runtime_key": f"customers.local_reply.{status}",
                },
            }
        }
    }


def _header_filter(name: str, match: Json) -> Json:
    return {"header_filter": {"header": {"name": name, **match}}}


def _access_log() -> Json:
    # One JSON line per request on Envoy's stdout, keyed by the id the server logs too.
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": _STDOUT_LOG,
            "log_format": {
                "json_format": {
                    "time": "%START_TIME%",
                    "request_id": "%REQ(X-REQUEST-ID)%",
                    "method": "%REQ(:METHOD)%",
                    "path": "%REQ(X-GATEWAY-TARGET?:PATH)%",
                    "status": "%RESPONSE_CODE%",
                    "grpc_status": "%GRPC_STATUS%",
                    "flags": "%RESPONSE_FLAGS%",
                    "duration_ms": "%DURATION%",
                    "bytes_in": "%BYTES_RECEIVED%",
                    "bytes_out": "%BYTES_SENT%",
                }
            },
        },
    }


def _cluster(name: str, endpoints: list[Json]) -> Json:
    """A cluster of server workers (`endpoints`: Envoy lb_endpoints), health-checked."""
    cluster: Json = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        # gRPC needs HTTP/2 to the backend; Envoy speaks HTTP/1.1 upstream unless told.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTIONS,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "5s"},
                    }
                },
            }
        },
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]},
        "health_checks": [
            {
                "grpc_health_check": {},  # grpc.health.v1 Check on the server as a whole
                "timeout": "1s",
                # A dead backend is dropped within about two intervals; retries and outlier
                # detection cover the requests in between.
                "interval": "1s",
                "interval_jitter": "0.2s",
                # Without it a failed first probe (server still starting) waits 60 s.
                "no_traffic_interval": "2s",
                # A failed replica is re-probed sooner than a healthy one, so it rejoins fast.
                "unhealthy_interval": "2s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
            }
        ],
        # Passive detection, faster than any probe: a backend that refused or failed
        # connections twice in a row is ejected for a while (local-origin errors counted
        # apart from the answers the server gives, which never eject anyone).
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 2,
            "enforcing_consecutive_local_origin_failure": 100,
            "enforcing_consecutive_5xx": 0,
            "enforcing_consecutive_gateway_failure": 0,
            "enforcing_success_rate": 0,
            "enforcing_local_origin_success_rate": 0,
            "interval": "1s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 50,
        },
        # The defaults (1024 requests per cluster) would refuse the thousands of concurrent
        # WatchCustomers streams the contract asks for with 503s.
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 10_000,
                    "max_pending_requests": 10_000,
                    "max_requests": 100_000,
                    "max_retries": 3,
                    # Replaces max_retries: a burst sent just as a backend died is retried
                    # whole, not three at a time with the rest answering 503 (overflow).
                    "retry_budget": {
                        "budget_percent": {"value": 50.0},
                        "min_retry_concurrency": 32,
                    },
                }
            ]
        },
    }
    return cluster
