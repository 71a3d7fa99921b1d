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

from gateway.__main__ import DEFAULT_DESCRIPTOR, SERVICES
from gateway.config import render
from gateway.process import envoy_binary

HTTP_PORT = 18_123
ADMIN_PORT = 19_123


def _render(**overrides: Any) -> str:
    params: dict[str, Any] = {
        "http_port": HTTP_PORT,
        "admin_port": ADMIN_PORT,
        "backends": [("127.0.0.1", 50_051), ("127.0.0.1", 50_052)],
        "descriptor_path": str(DEFAULT_DESCRIPTOR),
        "services": list(SERVICES),
        "gateway_key": "test-key",
    }
    params.update(overrides)
    return render(**params)


def _http_filters(config: dict[str, Any]) -> list[str]:
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"] for f in hcm["http_filters"]]


@pytest.mark.parametrize("backend_host", ["127.0.0.1", "localhost"])
def test_envoy_accepts_the_rendered_config(tmp_path: pathlib.Path, backend_host: str) -> None:
    config = tmp_path / "envoy.json"
    config.write_text(_render(backends=[(backend_host, 50_051)]), encoding="utf-8")
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
    ports = [
        e["endpoint"]["address"]["socket_address"]["port_value"]
        for e in endpoints[0]["lb_endpoints"]
    ]
    assert ports == [50_051, 50_052]


def test_filter_order_puts_status_rewrite_first_and_router_last() -> None:
    # Responses pass the filters in reverse: the status rewrite must see the transcoder's
    # output, and the /v1 strip must run before the transcoder matches the path.
    names = _http_filters(json.loads(_render()))
    assert names[0] == "customers.status"
    assert names.index("customers.request") < names.index("envoy.filters.http.grpc_json_transcoder")
    assert names[-1] == "envoy.filters.http.router"


def test_signature_check_sees_the_raw_request_before_rewrite_and_transcoding() -> None:
    names = _http_filters(json.loads(_render()))
    authz = names.index("envoy.filters.http.ext_authz")
    assert (
        authz
        < names.index("customers.request")
        < names.index("envoy.filters.http.grpc_json_transcoder")
    )
