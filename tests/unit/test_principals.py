"""The service principals file (SPEC section 13): roles, lookups by SAN, and every way a file
can be wrong, each a clear error at start."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from pydantic import ValidationError

from server.config import Settings
from server.domain.principals import InvalidPrincipals, Principals, Role, parse

COMPLIANCE = "spiffe://customers.internal/compliance"


def _file(**entry: Any) -> dict[str, Any]:
    base = {"name": "compliance", "identity": COMPLIANCE, "roles": ["operator"]}
    base.update(entry)
    return {"services": [base]}


def test_an_operator_is_also_a_reader_but_not_a_watcher() -> None:
    found = parse(_file()).find([COMPLIANCE])
    assert found is not None and found.name == "compliance"
    assert found.may(Role.OPERATOR) and found.may(Role.READER)
    assert not found.may(Role.WATCHER)


def test_a_reader_and_a_watcher_hold_only_their_own_role() -> None:
    principals = parse(
        {
            "services": [
                {"name": "support", "identity": "spiffe://x/support", "roles": ["reader"]},
                {"name": "streams", "identity": "streams.internal", "roles": ["watcher"]},
            ]
        }
    )
    support = principals.find(["spiffe://x/support"])
    streams = principals.find(["other.example", "streams.internal"])  # any SAN of the cert
    assert support is not None and streams is not None
    assert support.may(Role.READER) and not support.may(Role.OPERATOR)
    assert streams.may(Role.WATCHER) and not streams.may(Role.READER)


def test_an_identity_not_listed_names_no_principal() -> None:
    assert parse(_file()).find(["spiffe://customers.internal/other"]) is None
    assert Principals().find([COMPLIANCE]) is None


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([], '"services"'),
        ({"services": {}}, "must be a list"),
        ({"services": [], "extra": 1}, '"services"'),
        ({"services": ["compliance"]}, "services[0] must be an object"),
        (_file(name=""), "'name'"),
        (_file(identity=" spiffe://x"), "'identity'"),
        (_file(identity="https://example.com/x"), "URI SAN"),
        (_file(roles=[]), "'roles'"),
        (_file(roles="operator"), "'roles'"),
        (_file(roles=["admin"]), "reader, operator, watcher"),
        (_file(team="x"), "unknown keys"),
        (
            {"services": [_file()["services"][0], _file(name="b")["services"][0]]},
            "listed twice",
        ),
    ],
)
def test_a_bad_principals_document_is_refused_naming_the_problem(document: Any, says: str) -> None:
    with pytest.raises(InvalidPrincipals) as refused:
        parse(document)
    assert says in str(refused.value)


def _tls(tmp_path: pathlib.Path) -> dict[str, str]:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("placeholder")
    return {
        "grpc_tls_cert_file": str(tmp_path / "cert.pem"),
        "grpc_tls_key_file": str(tmp_path / "key.pem"),
        "grpc_client_ca_file": str(tmp_path / "ca.pem"),
    }


def test_settings_load_the_principals_file_once_at_start(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "services.json"
    path.write_text(json.dumps(_file()))
    settings = Settings(**_tls(tmp_path), internal_services=str(path))
    assert settings.grpc_tls and len(settings.principals) == 1


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        (json.dumps(_file(roles=["root"])), "roles must be among"),
    ],
)
def test_a_bad_principals_file_stops_the_server_at_start(
    tmp_path: pathlib.Path, content: str | None, says: str
) -> None:
    path = tmp_path / "services.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValidationError) as refused:
        Settings(**_tls(tmp_path), internal_services=str(path))
    assert "CUSTOMERS_INTERNAL_SERVICES" in str(refused.value) and says in str(refused.value)


def test_principals_without_tls_or_half_the_tls_settings_are_refused(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "services.json"
    path.write_text(json.dumps(_file()))
    with pytest.raises(ValidationError, match="needs the gRPC TLS settings"):
        Settings(internal_services=str(path))
    tls = _tls(tmp_path)
    del tls["grpc_client_ca_file"]
    with pytest.raises(ValidationError, match="without CUSTOMERS_GRPC_CLIENT_CA_FILE"):
        Settings(**tls)
    with pytest.raises(ValidationError, match="no such file"):
        Settings(**{**_tls(tmp_path), "grpc_tls_cert_file": str(tmp_path / "missing.pem")})


def test_the_default_settings_serve_plain_grpc_with_no_principals() -> None:
    settings = Settings()
    assert not settings.grpc_tls and len(settings.principals) == 0


def test_the_gateways_own_identity_can_never_be_a_principal(tmp_path: pathlib.Path) -> None:
    """Envoy vouches for the client certificates it forwards; it must not be one itself."""
    path = tmp_path / "services.json"
    path.write_text(json.dumps(_file()))
    listed = json.loads(path.read_text())["services"][0]["identity"]
    with pytest.raises(ValidationError, match="CUSTOMERS_GATEWAY_IDENTITY"):
        Settings(**_tls(tmp_path), internal_services=str(path), gateway_identity=listed)


def test_https_and_the_gateways_hop_certificate_are_both_files_or_neither(
    tmp_path: pathlib.Path,
) -> None:
    (tmp_path / "cert.pem").write_text("placeholder")
    with pytest.raises(ValidationError, match="without CUSTOMERS_TLS_KEY_FILE"):
        Settings(tls_cert_file=str(tmp_path / "cert.pem"))
    with pytest.raises(ValidationError, match="without CUSTOMERS_GATEWAY_TLS_CERT_FILE"):
        Settings(gateway_tls_key_file=str(tmp_path / "cert.pem"))
    with pytest.raises(ValidationError, match="no such file"):
        Settings(tls_cert_file=str(tmp_path / "cert.pem"), tls_key_file=str(tmp_path / "no"))
    assert not Settings().rest_tls
