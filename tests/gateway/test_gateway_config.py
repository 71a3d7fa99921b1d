"""The rendered Envoy bootstrap: Envoy itself accepts it, and it says what we asked for.

Behaviour through a live Envoy (statuses, JSON errors, /v1) is covered by the end-to-end
tests; these run in a second without a server.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

import pytest

from gateway.__main__ import DEFAULT_DESCRIPTOR
from gateway.config import path_pattern, render
from gateway.process import envoy_binary
from gateway.tls import Certificate, GrpcEdge, certificate_sha256
from server.config import Settings
from server.edge import public_grpc, render_gateway
from server.rpc.services import INTERNAL_SERVICE_NAMES
from server.rpc.services import SERVICE_NAMES as SERVICES
from tests.helpers.certificates import TestCA

HTTP_PORT = 18_123
ADMIN_PORT = 19_123


def _render(**overrides: Any) -> str:
    params: dict[str, Any] = {
        "http_port": HTTP_PORT,
        "admin_port": ADMIN_PORT,
        "backends": ["/run/customers/worker-0.sock", "/run/customers/worker-1.sock"],
        "descriptor_path": str(DEFAULT_DESCRIPTOR),
        "services": list(SERVICES),
    }
    params.update(overrides)
    return render(**params)


def _http_filters(config: dict[str, Any]) -> list[str]:
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"] for f in hcm["http_filters"]]


def test_envoy_accepts_the_rendered_config(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "envoy.json"
    config.write_text(_render(), encoding="utf-8")
    done = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config), "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_config_names_every_service_and_both_ports() -> None:
    text = _render()
    for service in SERVICES:
        assert service in text
    config = json.loads(text)
    transcoder = next(
        f["typed_config"]
        for f in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
            "typed_config"
        ]["http_filters"]
        if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    )
    assert transcoder["services"] == list(SERVICES)
    listener_address = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener_address == {"address": "127.0.0.1", "port_value": HTTP_PORT}
    admin_address = config["admin"]["address"]["socket_address"]
    assert admin_address == {"address": "127.0.0.1", "port_value": ADMIN_PORT}
    endpoints = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
    sockets = [e["endpoint"]["address"]["pipe"]["path"] for e in endpoints[0]["lb_endpoints"]]
    assert sockets == ["/run/customers/worker-0.sock", "/run/customers/worker-1.sock"]


def test_backends_must_be_unix_sockets_because_the_socket_is_the_gateway_credential() -> None:
    with pytest.raises(ValueError, match="Unix socket"):
        _render(backends=["127.0.0.1:50051"])


def test_the_config_holds_no_secret_for_the_admin_interface_to_show() -> None:
    """/config_dump shows every static value: there is no gateway key or ext_authz any more;
    what vouches for a REST call is the socket it reaches the server on."""
    text = _render()
    assert "ext_authz" not in text
    assert "x-gateway-key" not in text


def test_filter_order_puts_status_rewrite_first_and_router_last() -> None:
    # Responses pass the filters in reverse: the status rewrite must see the transcoder's
    # output, and the /v1 strip must run before the transcoder matches the path.
    names = _http_filters(json.loads(_render()))
    assert names[0] == "customers.status"
    assert names.index("customers.request") < names.index("envoy.filters.http.grpc_json_transcoder")
    assert names[-1] == "envoy.filters.http.router"


def test_the_raw_request_is_forwarded_before_the_body_is_transcoded() -> None:
    """request.lua copies the raw body after the buffer filter has it whole and before the
    transcoder replaces it with the protobuf message."""
    names = _http_filters(json.loads(_render()))
    assert (
        names.index("envoy.filters.http.buffer")
        < names.index("customers.request")
        < names.index("envoy.filters.http.grpc_json_transcoder")
    )


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return list(hcm["route_config"]["virtual_hosts"][0]["routes"])


def test_the_contract_is_served_from_files_before_the_catch_all_route() -> None:
    routes = _routes(json.loads(_render()))
    direct = [r for r in routes if "direct_response" in r and "path" in r["match"]]
    assert {r["match"]["path"] for r in direct} >= {"/openapi.json", "/docs"}
    assert routes[-1]["match"] == {"prefix": "/"}  # the API's catch-all stays last
    by_path = {r["match"]["path"]: r for r in direct}
    served = by_path["/openapi.json"]["direct_response"]["body"]["filename"]
    assert served == str(DEFAULT_DESCRIPTOR.with_name("openapi.json").resolve())
    for route in direct:
        # No rpc is bound to these paths: the transcoder would refuse them, and the request
        # filter has nothing to forward.
        disabled = route["typed_per_filter_config"]
        assert set(disabled) == {"envoy.filters.http.grpc_json_transcoder", "customers.request"}
        assert all(c["disabled"] for c in disabled.values())


def test_a_missing_openapi_document_fails_at_render_not_at_envoy_start(
    tmp_path: pathlib.Path,
) -> None:
    with pytest.raises(FileNotFoundError, match=r"openapi\.json"):
        _render(openapi_path=str(tmp_path / "openapi.json"))


def test_refusals_that_cannot_wait_for_a_body_come_before_the_buffer_filter() -> None:
    names = _http_filters(json.loads(_render()))
    assert names.index("customers.early") < names.index("envoy.filters.http.buffer")


def test_only_reads_and_idempotency_keyed_calls_are_retried_and_never_after_a_plain_reset() -> None:
    config = json.loads(_render())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    retried = {r["name"]: r for r in routes if "retry_policy" in r.get("route", {})}
    assert set(retried) == {"safe", "idempotent"}
    assert retried["safe"]["match"]["headers"][0]["name"] == "x-gateway-method"
    assert retried["idempotent"]["match"]["headers"][0]["name"] == "idempotency-key"
    for route in retried.values():
        # A reset request may have burned its signature nonce: a retry would be a 401.
        assert "reset" not in route["route"]["retry_policy"]["retry_on"].split(",")
    assert routes[-1]["match"] == {"prefix": "/"} and "retry_policy" not in routes[-1]["route"]


def test_envoy_memory_is_bounded_per_connection_per_request_and_overall() -> None:
    """Issue 13 row 4: the budgets a flood of stalled uploads runs into (the uploads
    themselves are tests/e2e/test_rest_uploads.py; a real heap exhaustion is not provoked)."""
    config = json.loads(_render())
    listener = config["static_resources"]["listeners"][0]
    assert listener["per_connection_buffer_limit_bytes"] == 128 * 1024
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["request_timeout"] == "30s"
    overload = config["overload_manager"]
    monitors = {m["name"]: m["typed_config"] for m in overload["resource_monitors"]}
    assert monitors["envoy.resource_monitors.fixed_heap"]["max_heap_size_bytes"] == 512 << 20
    actions = {a["name"]: a["triggers"][0] for a in overload["actions"]}
    assert set(actions) == {
        "envoy.overload_actions.reset_high_memory_stream",
        "envoy.overload_actions.stop_accepting_requests",
    }
    assert all(t["name"] == "envoy.resource_monitors.fixed_heap" for t in actions.values())


def test_token_bindings_become_anchored_lua_patterns_before_the_early_filter() -> None:
    bindings = [("POST", "/customers"), ("PATCH", "/customers/{customer_id}/activate")]
    config = json.loads(_render(token_bindings=bindings))
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    early = next(f for f in hcm["http_filters"] if f["name"] == "customers.early")
    code = early["typed_config"]["default_source_code"]["inline_string"]
    assert code.startswith("-- Generated")
    expected = '{ "PATCH", "^/customers/[^/]+/activate$" }, { "POST", "^/customers$" }'
    assert f"TOKEN_BINDINGS = {{ {expected} }}" in code
    assert path_pattern("/a.b/{x=**}") == "^/a%.b/.+$"


def test_undeclared_methods_are_405_routes_before_the_catch_all() -> None:
    routes = _routes(json.loads(_render()))
    refusing = [r for r in routes if r.get("direct_response", {}).get("status") == 405]
    assert refusing, "no 405 routes"
    first_api_route = next(n for n, r in enumerate(routes) if "route" in r)
    assert all(routes.index(r) < first_api_route for r in refusing)
    by_name = {r["name"]: r for r in refusing}
    customers = by_name["405 /customers"]
    assert customers["match"]["safe_regex"]["regex"] == "(/v1)?/customers"
    assert customers["match"]["headers"][0]["invert_match"] is True
    assert customers["response_headers_to_add"][0]["header"] == {
        "key": "allow",
        "value": "GET, POST",
    }
    assert set(customers["typed_per_filter_config"]) == {
        "envoy.filters.http.grpc_json_transcoder",
        "customers.request",
    }


def test_internal_services_are_refused_by_a_route_and_unknown_to_the_transcoder() -> None:
    config = json.loads(_render())
    routes = _routes(config)
    refused = {
        r["match"].get("prefix"): r["direct_response"]["status"]
        for r in routes
        if "direct_response" in r and "prefix" in r["match"]
    }
    for name in INTERNAL_SERVICE_NAMES:
        assert refused[f"/{name}/"] == 404
        assert (
            routes.index(next(r for r in routes if r["match"].get("prefix") == f"/{name}/"))
            < len(routes) - 1
        )
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    transcoder = next(
        f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    )
    assert not set(transcoder["typed_config"]["services"]) & set(INTERNAL_SERVICE_NAMES)


def _tls_render(folder: pathlib.Path) -> tuple[str, Any]:
    """The production profile: HTTPS on REST, the public gRPC listener and its hop."""
    ca = TestCA(folder)
    server = ca.server_certificate()
    hop = ca.issue("gateway", uris=("spiffe://customers.internal/gateway",))
    edge = GrpcEdge(
        port=HTTP_PORT + 1,
        certificate=Certificate(str(server.cert_file), str(server.key_file)),
        client_ca_file=str(ca.cert_file),
        hop=Certificate(str(hop.cert_file), str(hop.key_file)),
        backends=[("127.0.0.1", 50061), ("127.0.0.1", 50062)],
        backend_sha256=certificate_sha256(str(server.cert_file)),
    )
    text = _render(
        rest_tls=Certificate(str(server.cert_file), str(server.key_file)), grpc_edge=edge
    )
    return text, json.loads(text)


def test_envoy_accepts_the_config_with_https_and_the_public_grpc_listener(
    tmp_path: pathlib.Path,
) -> None:
    text, _ = _tls_render(tmp_path)
    config = tmp_path / "envoy.json"
    config.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config), "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_https_offers_http2_and_http1_and_a_client_certificate_header_is_removed(
    tmp_path: pathlib.Path,
) -> None:
    _, config = _tls_render(tmp_path)
    rest = config["static_resources"]["listeners"][0]
    chain = rest["filter_chains"][0]
    tls_context = chain["transport_socket"]["typed_config"]
    assert tls_context["common_tls_context"]["alpn_protocols"] == ["h2", "http/1.1"]
    assert "require_client_certificate" not in tls_context
    hcm = chain["filters"][0]["typed_config"]
    assert hcm["codec_type"] == "AUTO"
    assert hcm["forward_client_cert_details"] == "SANITIZE"
    # Development: no TLS at all, one listener.
    plain = json.loads(_render())
    assert "transport_socket" not in plain["static_resources"]["listeners"][0]["filter_chains"][0]
    assert len(plain["static_resources"]["listeners"]) == 1


def test_the_grpc_listener_verifies_optional_client_certificates_and_sets_the_header(
    tmp_path: pathlib.Path,
) -> None:
    _, config = _tls_render(tmp_path)
    grpc_listener = config["static_resources"]["listeners"][1]
    assert grpc_listener["address"]["socket_address"]["port_value"] == HTTP_PORT + 1
    chain = grpc_listener["filter_chains"][0]
    downstream = chain["transport_socket"]["typed_config"]
    assert downstream["require_client_certificate"] is False
    assert downstream["common_tls_context"]["validation_context"]["trusted_ca"]["filename"]
    hcm = chain["filters"][0]["typed_config"]
    assert hcm["forward_client_cert_details"] == "SANITIZE_SET"
    assert hcm["set_current_client_cert_details"] == {"uri": True, "dns": True}
    # gRPC in, gRPC out: no transcoder, no Lua; only gRPC requests find a route.
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.router"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"] for r in routes] == [{"prefix": "/", "grpc": {}}]
    assert "x-gateway-body" in hcm["route_config"]["request_headers_to_remove"]


def test_the_hop_to_the_workers_is_mutual_tls_pinned_to_the_workers_certificate(
    tmp_path: pathlib.Path,
) -> None:
    _, config = _tls_render(tmp_path)
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    hop = clusters["customers_grpc_tls"]
    upstream = hop["transport_socket"]["typed_config"]["common_tls_context"]
    assert upstream["tls_certificates"][0]["certificate_chain"]["filename"].endswith("gateway.crt")
    (pin,) = upstream["validation_context"]["verify_certificate_hash"]
    assert len(pin) == 64
    endpoints = hop["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ports = [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints]
    assert ports == [50061, 50062]
    assert hop["health_checks"][0]["grpc_health_check"] == {}
    # REST keeps the Unix sockets, and no TLS on them.
    assert "transport_socket" not in clusters["customers_grpc"]


def test_the_public_grpc_listener_comes_from_the_settings_with_a_port_per_worker(
    tmp_path: pathlib.Path,
) -> None:
    ca = TestCA(tmp_path)
    server = ca.server_certificate()
    hop = ca.issue("gateway", uris=("spiffe://customers.internal/gateway",))
    grpc_tls = {
        "grpc_tls_cert_file": str(server.cert_file),
        "grpc_tls_key_file": str(server.key_file),
        "grpc_client_ca_file": str(ca.cert_file),
        "grpc_port": 7443,
        "grpc_internal_port": 7500,
        "workers": 2,
    }
    assert public_grpc(Settings()) is None  # development: the workers' plain port
    with pytest.raises(ValueError, match="CUSTOMERS_GATEWAY_TLS_CERT_FILE"):
        public_grpc(Settings(**grpc_tls))
    edge = public_grpc(
        Settings(
            **grpc_tls,
            gateway_tls_cert_file=str(hop.cert_file),
            gateway_tls_key_file=str(hop.key_file),
        )
    )
    assert edge is not None and edge.port == 7443
    assert edge.backends == [("127.0.0.1", 7500), ("127.0.0.1", 7501)]
    assert edge.backend_sha256 == certificate_sha256(str(server.cert_file))
    assert edge.hop.cert_file == str(hop.cert_file)


def test_both_listeners_bind_the_configured_address_and_admin_stays_on_loopback(
    tmp_path: pathlib.Path,
) -> None:
    ca = TestCA(tmp_path)
    server = ca.server_certificate()
    hop = ca.issue("gateway", uris=("spiffe://customers.internal/gateway",))
    settings = Settings(
        envoy_bind_address="0.0.0.0",
        grpc_tls_cert_file=str(server.cert_file),
        grpc_tls_key_file=str(server.key_file),
        grpc_client_ca_file=str(ca.cert_file),
        gateway_tls_cert_file=str(hop.cert_file),
        gateway_tls_key_file=str(hop.key_file),
    )
    config = json.loads(
        render_gateway(
            http_port=HTTP_PORT,
            admin_port=ADMIN_PORT,
            backends=["/run/customers/worker-0.sock"],
            grpc_edge=public_grpc(settings),
            bind_address=settings.envoy_bind_address,
        )
    )
    bound = [
        listener["address"]["socket_address"]["address"]
        for listener in config["static_resources"]["listeners"]
    ]
    assert bound == ["0.0.0.0", "0.0.0.0"]
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    with pytest.raises(ValueError, match="CUSTOMERS_ENVOY_BIND_ADDRESS"):
        Settings(envoy_bind_address="everywhere")
