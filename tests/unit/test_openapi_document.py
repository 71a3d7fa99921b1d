"""The published OpenAPI document (gen/openapi.json): valid OpenAPI 3.1, current, and saying
what the descriptor set and the server say. What the live gateway answers is checked
against it in tests/e2e/test_openapi_contract.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from openapi_spec_validator.versions import consts, get_spec_version

from scripts.openapi import DESCRIPTOR, OUTPUT, build, render
from scripts.openapi.reasons import catalogue
from server.domain.errors import DomainError
from server.rpc.policy import POLICY, Access
from server.services.ports import REASONS as SIGNATURE_REASONS

_VERBS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(OUTPUT.read_text(encoding="utf-8"))


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (verb, path, item[verb])
        for path, item in document["paths"].items()
        for verb in _VERBS
        if verb in item
    ]


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(document["components"]["schemas"][name])


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert get_spec_version(document) == consts.OPENAPIV31
    validate(document)


def test_the_committed_document_is_what_the_descriptor_set_generates() -> None:
    assert OUTPUT.read_text(encoding="utf-8") == render(build(DESCRIPTOR.read_bytes()))


def test_every_rest_binding_of_every_rpc_is_an_operation(document: dict[str, Any]) -> None:
    documented = {(verb.upper(), path): op for verb, path, op in _operations(document)}
    expected = set()
    for policy in POLICY.values():
        for binding in policy.bindings:
            # {customer_id} in the proto's template is {customerId} in OpenAPI.
            path = re.sub(
                r"\{([a-z_]+)\}",
                lambda m: "{" + re.sub(r"_([a-z])", lambda c: c.group(1).upper(), m[1]) + "}",
                binding.template,
            )
            expected.add((binding.verb, path))
            assert documented[(binding.verb, path)]["x-grpc-method"] == policy.method
    assert set(documented) == expected


def test_the_contracts_paths_and_success_statuses_are_documented(
    document: dict[str, Any],
) -> None:
    # SPEC sections 3, 5, 7 and 8, word for word.
    wanted = {
        ("post", "/customers"): ["201"],
        ("post", "/customer"): ["201"],
        ("get", "/customers"): ["200"],
        ("get", "/customers/{customerId}"): ["200"],
        ("patch", "/customers/{customerId}/deactivate"): ["200"],
        ("patch", "/customers/{customerId}/activate"): ["200"],
        ("get", "/customers/{customerId}/challenge"): ["200"],
        ("post", "/customers/{customerId}/challenge/sign"): ["204"],
        ("patch", "/simulator/customers/{customerId}/verify"): ["202"],
        ("patch", "/simulator/customers/{customerId}/reject"): ["202"],
        ("post", "/auth/token"): ["200"],
        ("put", "/auth/signing"): ["201", "200"],
        ("delete", "/auth/signing/{keyId}"): ["204"],
        ("put", "/webhooks"): ["201", "200"],
        ("delete", "/webhooks/{id}"): ["204"],
        ("post", "/customers/{customerId}/accounts"): ["201"],
        ("post", "/accounts/{accountId}/cards"): ["201"],
        ("get", "/customers:watch"): ["200"],
    }
    for (verb, path), statuses in wanted.items():
        responses = document["paths"][path][verb]["responses"]
        assert [s for s in responses if s.startswith("2")] == statuses, (verb, path)


def test_security_and_idempotency_headers_follow_the_method_policy(
    document: dict[str, Any],
) -> None:
    for _, path, operation in _operations(document):
        policy = POLICY[operation["x-grpc-method"]]
        refs = {
            p["$ref"].rsplit("/", 1)[-1] for p in operation.get("parameters", []) if "$ref" in p
        }
        if policy.access is Access.PUBLIC:
            assert operation["security"] == [], path
            assert not refs, path
            unauthenticated = operation["responses"].get("401", {}).get("x-error-reasons", [])
            assert not set(unauthenticated) & (set(SIGNATURE_REASONS) | {"UNAUTHENTICATED"})
            continue
        assert operation["security"] == [{"bearerAuth": []}], path
        signature = {"Signature", "Signature-Input"}
        if policy.access is Access.FIRST_KEY:
            signature = {"Signature-FirstKey", "Signature-Input-FirstKey"}
        assert signature <= refs, path
        has_body = "requestBody" in operation
        assert any(r.startswith("Content-Digest") for r in refs) == has_body, path
        assert ("Idempotency-Key" in refs) == POLICY.needs_idempotency_key(policy.method), path
        assert set(SIGNATURE_REASONS) <= set(operation["responses"]["401"]["x-error-reasons"])
        if POLICY.needs_idempotency_key(policy.method):
            assert operation["responses"]["422"]["x-error-reasons"] == ["IDEMPOTENCY_KEY_REUSED"]
            assert "IDEMPOTENCY_KEY_IN_FLIGHT" in operation["responses"]["409"]["x-error-reasons"]
    required = document["components"]["parameters"]["Idempotency-Key"]
    assert required["required"] is True
    assert required["schema"] == {"type": "string", "format": "uuid"}


def test_error_reasons_sit_under_the_status_the_server_answers_them_with(
    document: dict[str, Any],
) -> None:
    reasons = catalogue()
    for _, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            for reason in response.get("x-error-reasons", []):
                assert str(reasons[reason].http_status) == status, (path, reason)
            if status.startswith(("4", "5")) or status == "default":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/google.rpc.Status"}
    get_customer = document["paths"]["/customers/{customerId}"]["get"]["responses"]
    assert get_customer["404"]["x-error-reasons"] == ["CUSTOMER_NOT_FOUND"]
    create = document["paths"]["/customers"]["post"]["responses"]
    assert "CUSTOMER_ALREADY_EXISTS" in create["409"]["x-error-reasons"]
    assert create["413"]["x-error-reasons"] == ["REQUEST_TOO_LARGE"]


def test_every_domain_error_reason_is_in_the_catalogue() -> None:
    def walk(cls: type[DomainError]) -> list[type[DomainError]]:
        return [c for sub in cls.__subclasses__() for c in (sub, *walk(sub))]

    reasons = catalogue()
    for cls in walk(DomainError):
        if "reason" in vars(cls):
            assert cls.reason in reasons, cls


def test_schemas_are_json_as_the_gateway_prints_it(document: dict[str, Any]) -> None:
    customer = _schema(document, "Customer")
    # camelCase names; fields without presence always printed, hence required; `optional`
    # ones (only in the create answer) not.
    assert set(customer["properties"]) == {
        "id",
        "externalId",
        "chainId",
        "status",
        "createdAt",
        "updatedAt",
        "challenge",
        "verificationUrl",
    }
    assert {"id", "externalId", "chainId", "status"} <= set(customer["required"])
    assert "challenge" not in customer["required"]
    assert customer["properties"]["createdAt"]["format"] == "date-time"
    status = _schema(document, "Customer.Status")
    assert {"initiating", "screening", "verifying", "active", "inactive", "rejected"} <= set(
        status["enum"]
    )
    # int64 as strings; the token's uint32 expiresAt as a number.
    assert _schema(document, "Event")["properties"]["seq"]["type"] == "string"
    assert _schema(document, "Token")["properties"]["expiresAt"]["type"] == "integer"
    listed = _schema(document, "ListCustomersResponse")
    assert set(listed["required"]) == {"customers", "nextPageToken"}
    error = _schema(document, "google.rpc.Status")
    assert set(error["properties"]) == {"code", "message", "details"}


def test_parameters_use_json_names_and_the_stream_is_server_sent_events(
    document: dict[str, Any],
) -> None:
    listing = document["paths"]["/customers"]["get"]
    names = {p["name"] for p in listing["parameters"] if "name" in p}
    assert {"pageSize", "pageToken", "status", "externalId"} <= names
    watch = document["paths"]["/customers:watch"]["get"]
    assert set(watch["responses"]["200"]["content"]) == {"text/event-stream"}
    assert {p["name"] for p in watch["parameters"] if "name" in p} >= {"after", "customerId"}
    assert "/v1" in {server["url"] for server in document["servers"]}


def test_descriptions_and_examples_come_from_the_proto_comments(
    document: dict[str, Any],
) -> None:
    create = document["paths"]["/customers"]["post"]
    assert create["summary"].startswith("Creates a customer")
    assert "python -m client call POST /customers" in create["description"]
    example = create["requestBody"]["content"]["application/json"]["example"]
    assert set(example) == {"chainId", "externalId"}
    signing = document["info"]["description"]
    for words in ("@authority", "content-digest", "ecdsa-p384-sha384", "ed25519", "nonce"):
        assert words in signing


def test_request_fields_are_required_in_the_document_exactly_where_the_server_requires_them(
    document: dict[str, Any],
) -> None:
    # The server's check (rpc/required.py) and the document read one annotation; this
    # holds the two readings together, operation by operation.
    from server.rpc.required import required_fields
    from server.rpc.services import SERVICES

    inputs = {
        f"/{service.full_name}/{method.name}": method.input_type
        for service in SERVICES
        for method in service.methods
    }
    schemas = document["components"]["schemas"]
    checked = 0
    for _, _, operation in _operations(document):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            continue
        schema = body["schema"]
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        expected = sorted(f.json_name for f in required_fields(inputs[operation["x-grpc-method"]]))
        assert sorted(schema.get("required", [])) == expected, operation["x-grpc-method"]
        checked += 1
    assert checked >= 7
