"""Schemathesis hooks for the signed contract fuzz (tests/e2e/test_contract_fuzz.py).

Loaded by `schemathesis run` through SCHEMATHESIS_HOOKS; the partner it acts as comes from
FUZZ_* environment variables the test sets. Every generated request is signed the way a
partner's SDK signs it (client/signing.py), so the fuzzer reaches the handlers instead of
stopping at 401. The signature headers are the signer's to write, not the fuzzer's: they
are removed from the schema it generates from (what a bad signature gets is
tests/e2e/test_rest_signatures.py's subject).
"""

from __future__ import annotations

import os
import pathlib
import zlib
from typing import Any
from urllib.parse import urlsplit

import requests
import schemathesis

from client.idempotency import MODIFYING_HTTP_METHODS, new_key
from client.signing import load_private_key, new_nonce, sign_headers

SIGNER_HEADERS = {"signature", "signature-input", "content-digest", "idempotency-key"}
# Path parameters that name a seeded entity about half of the time, so handlers run on real
# rows (and the other half exercises not-found and malformed ids).
SEEDED = {
    "customerId": "FUZZ_CUSTOMER_ID",
    "accountId": "FUZZ_ACCOUNT_ID",
    "cardId": "FUZZ_CARD_ID",
}


class PartnerSigning(requests.auth.AuthBase):
    """Bearer token, a fresh Idempotency-Key on modifying requests, Content-Digest and an
    RFC 9421 signature over the request exactly as it goes out."""

    def __init__(self, token: str, key_pem: bytes) -> None:
        self._token = token
        self._key = load_private_key(key_pem)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        for name in [h for h in request.headers if h.lower() in SIGNER_HEADERS]:
            del request.headers[name]
        request.headers["Authorization"] = f"Bearer {self._token}"
        method = (request.method or "GET").upper()
        if method in MODIFYING_HTTP_METHODS:
            request.headers["Idempotency-Key"] = new_key()
        target = urlsplit(request.url or "")
        body = request.body.encode() if isinstance(request.body, str) else request.body
        request.headers.update(
            sign_headers(
                self._key,
                method=method,
                authority=target.netloc.lower(),
                path=target.path,
                query=target.query,
                headers=dict(request.headers),
                body=body,
                nonce=new_nonce(),
            )
        )
        return request


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """Drop the signer's header parameters from every operation."""
    shared = raw_schema.get("components", {}).get("parameters", {})
    for methods in raw_schema.get("paths", {}).values():
        for operation in methods.values():
            if not isinstance(operation, dict) or "parameters" not in operation:
                continue
            operation["parameters"] = [
                p for p in operation["parameters"] if not _is_signer_header(p, shared)
            ]


@schemathesis.hook
def map_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> dict[str, Any] | None:
    if not isinstance(path_parameters, dict):
        return path_parameters  # negative mode may generate no mapping at all
    for name, variable in SEEDED.items():
        value = path_parameters.get(name)
        seeded = os.environ.get(variable)
        if value is not None and seeded and zlib.crc32(str(value).encode()) % 2 == 0:
            path_parameters[name] = seeded
    return path_parameters


def _is_signer_header(parameter: dict[str, Any], shared: dict[str, Any]) -> bool:
    if "$ref" in parameter:
        parameter = shared.get(parameter["$ref"].rsplit("/", 1)[-1], {})
    return parameter.get("in") == "header" and parameter.get("name", "").lower() in SIGNER_HEADERS


if os.environ.get("FUZZ_TOKEN"):
    schemathesis.auth.set_from_requests(
        PartnerSigning(
            os.environ["FUZZ_TOKEN"], pathlib.Path(os.environ["FUZZ_KEY_FILE"]).read_bytes()
        )
    )


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: Any, response: Any) -> None:
    if os.environ.get("FUZZ_DEBUG") and response.status_code == 401:
        with open(os.environ["FUZZ_DEBUG"], "a") as log:
            log.write(f"{case.method} {case.path} {response.text[:300]}\n")


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Any, **kwargs: Any) -> None:
    """A page token is valid only as the server issued it (opaque, tied to one list), which
    no schema can state: a generated one is a 400 INVALID_FIELD, rightly. Positive cases go
    without it (to the first page); negative ones keep whatever they were given."""
    meta = getattr(case, "meta", None)
    positive = meta is not None and meta.generation.mode.is_positive
    if positive and isinstance(case.query, dict):
        case.query.pop("pageToken", None)
