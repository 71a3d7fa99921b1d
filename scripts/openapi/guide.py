"""The prose of the OpenAPI document: what a schema cannot say about calling this API
(tokens, RFC 9421 signatures, Content-Digest, idempotency, errors, streams, /v1).

Kept beside the generator, not in the proto, because it describes the whole contract
(SPEC sections 3, 4, 8, 9) rather than one rpc; the README points partners here (/docs).
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

DESCRIPTION = """\
REST/JSON API of the customer onboarding service: partners onboard their end users as
**customers** identified by a wallet (CAIP-10 id), prove wallet ownership with a Sign-In With
Ethereum challenge, run KYC, and open **accounts** and **cards**. Every path also answers
under the `/v1` prefix (`/v1/customers`), listed as a second server.

## Authentication

1. `POST /auth/token` with `{"apiKey","apiSecret"}` returns a bearer token
   (`{"token","expiresAt","tokenType":"Bearer"}`, `expiresAt` in Unix seconds). Every other
   call sends `Authorization: Bearer <token>`. `PUT /auth/credentials` rotates the secret and
   revokes every earlier token.
2. `PUT /auth/signing` with `{"publicKey": "<base64 of the PEM SubjectPublicKeyInfo>"}`
   registers a signing key: **ECDSA P-384** (`ecdsa-p384-sha384`, the default) or
   **Ed25519** (`ed25519`). The answer's `keyId` (the key's RFC 7638 JWK thumbprint) is the
   `keyid` of your signatures. The first key needs the bearer token only; a partner holds
   at most two keys at once, so keys rotate without downtime (register the new one signed by
   the old, switch, `DELETE /auth/signing/{keyId}` the old one).
3. Every other request is signed.

## Signing a request (RFC 9421 HTTP Message Signatures)

Send one signature: `Signature-Input` and `Signature` with a single label (e.g. `sig1`).

**Covered components**, in any order:

| component | when |
|---|---|
| `@method` | always |
| `@authority` | always: the host (and port, if not the default) you address, lower case |
| `@path` | always, exactly as sent (not decoded); `/v1/...` when you call the prefix |
| `@query` | when the URL has a query, exactly as sent (`?pageSize=10`) |
| `authorization` | always |
| `content-digest` | when there is a body |
| `idempotency-key` | when the header is sent |

A signature over fewer components is refused (`SIGNATURE_COMPONENTS_MISSING`), however
valid it is cryptographically.

**Signature parameters**: `keyid` (required: one of your live keys), `created` (required,
Unix seconds; at most 5 minutes old and at most 1 minute ahead of the server's clock),
`expires` (honoured when present), `alg` (optional; when present it must be the key's:
`ecdsa-p384-sha384` or `ed25519`), `nonce` (optional; a nonce is accepted once per key, so a
captured request cannot be replayed; send a fresh random one every time).

**Signature bytes**: ECDSA P-384 over SHA-384 as raw `r||s` (96 bytes, not DER), Ed25519 as
its 64 bytes; base64 in the `Signature` header (`sig1=:<base64>:`).

**Content-Digest** (RFC 9530) is required on every request with a body, over the exact
bytes sent: `Content-Digest: sha-256=:<base64 of SHA-256(body)>:` (`sha-512` also accepted).

Example (line breaks added):

```
Signature-Input: sig1=("@method" "@authority" "@path" "authorization" "content-digest"
  "idempotency-key");created=1767225600;keyid="<keyId>";alg="ecdsa-p384-sha384";
  nonce="<random>"
Signature: sig1=:<base64 r||s>:
```

A failed check answers 401 with an ErrorInfo reason naming it: `SIGNATURE_MISSING`,
`SIGNATURE_MALFORMED`, `SIGNATURE_COMPONENTS_MISSING`, `SIGNATURE_EXPIRED`,
`SIGNATURE_NOT_YET_VALID`, `UNKNOWN_KEY`, `ALGORITHM_MISMATCH`, `SIGNATURE_INVALID`,
`NONCE_REPLAYED`, `DIGEST_MISSING`, `DIGEST_MALFORMED`, `DIGEST_UNSUPPORTED`,
`DIGEST_MISMATCH`; a missing, expired or revoked token `UNAUTHENTICATED`. Nothing runs for a
rejected request. Ready signers: the Python SDK and CLI (`python -m client call ...`); any
RFC 9421 library that produces the base above works.

Native gRPC callers (port 50051) sign the same way with `@method` = `POST`, `@path` = the
gRPC method path, `@authority` = the service's public host, and `content-digest` over the
serialized request message.

## Idempotency

Every modifying request (POST, PUT, PATCH, DELETE) except `POST /auth/token` and the KYC
partner's endpoints carries `Idempotency-Key: <UUID>` (missing or not a UUID: 400). Keys are
per partner and live one hour. The same key with the same request replays the stored answer
(status, body, `Idempotent-Replayed: true`) without running it again; with a different
request it is 422 `IDEMPOTENCY_KEY_REUSED`; while the first is still running, 409
`IDEMPOTENCY_KEY_IN_FLIGHT` (retry later). 5xx answers are not stored, so a retry runs again.

## Errors

Every error body is a `google.rpc.Status`: `{"code","message","details"}`, `code` the gRPC
code, with a `google.rpc.ErrorInfo` detail (domain `customers.v1`) whose `reason` is a stable
UPPER_SNAKE code; field errors add a `google.rpc.BadRequest`. Each operation lists the
reasons it can answer under its error statuses.

## Limits

Each partner has a request quota (a token bucket: a sustained rate, and a burst it may send
at once after a quiet spell), shared by REST and native gRPC. A request over it answers 429
(`RESOURCE_EXHAUSTED` over gRPC) with reason `RATE_LIMITED` and the headers `Retry-After`,
`RateLimit-Policy: "default";q=<burst>;w=<seconds>` and `RateLimit: "default";r=0;t=<seconds>`
(IETF draft-ietf-httpapi-ratelimit-headers); nothing of it ran, so the same request (same
signature, same Idempotency-Key) may be sent again after `Retry-After` seconds. Open
`GET /customers:watch` streams are capped per partner (429 `TOO_MANY_STREAMS`: close one
first), and so are webhook subscriptions (409 `WEBHOOK_LIMIT_REACHED`: delete one first).

## Following changes

`GET /customers:watch` is a server-sent event stream (`text/event-stream`): one
`data: {...}` line per customer change, heartbeats (`{"heartbeat":true}`) every 15 s.
Reconnect with `after=<last seq>` and nothing is missed. `GET /events` pages through the same
events for catch-up; webhooks (`PUT /webhooks`) POST them to your URL, signed the Standard
Webhooks way.
"""

SECURITY_SCHEMES: Json = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "The token from `POST /auth/token`. Signed operations also need the Signature "
            "headers (see *Signing a request*)."
        ),
    }
}


def _header(name: str, required: bool, description: str, schema: Json | None = None) -> Json:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_FIRST_KEY = " Not needed for a partner's first key; required once it has one."
_SIGNATURE = "RFC 9421 signature: `sig1=:<base64>:`. See *Signing a request*."
_SIGNATURE_INPUT = (
    'RFC 9421 covered components and parameters: `sig1=("@method" "@authority" "@path" '
    '... "authorization");created=...;keyid="..."`. See *Signing a request*.'
)
_DIGEST = "RFC 9530 digest of the exact body bytes: `sha-256=:<base64>:` (or `sha-512`)."

PARAMETERS: Json = {
    "Signature": _header("Signature", True, _SIGNATURE),
    "Signature-Input": _header("Signature-Input", True, _SIGNATURE_INPUT),
    "Content-Digest": _header("Content-Digest", True, _DIGEST),
    "Signature-FirstKey": _header("Signature", False, _SIGNATURE + _FIRST_KEY),
    "Signature-Input-FirstKey": _header("Signature-Input", False, _SIGNATURE_INPUT + _FIRST_KEY),
    "Content-Digest-FirstKey": _header("Content-Digest", False, _DIGEST + _FIRST_KEY),
    "Idempotency-Key": _header(
        "Idempotency-Key",
        True,
        "A fresh UUID per intended change; resend the same one to retry safely (1 hour).",
        {"type": "string", "format": "uuid"},
    ),
}

HEADERS: Json = {
    "X-Request-Id": {
        "description": "The request's id, also in the server's logs: quote it to support.",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the stored answer of an earlier request.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": (
            "With `RATE_LIMITED`: whole seconds until a request will be admitted again."
        ),
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "example": "1",
    },
    "RateLimit-Policy": {
        "description": (
            "With `RATE_LIMITED` (IETF draft-ietf-httpapi-ratelimit-headers): the partner's "
            "quota, `q` requests per `w` seconds; `q` is also the burst a partner may send "
            "at once after a quiet spell."
        ),
        "schema": {"type": "string"},
        "example": '"default";q=100;w=1',
    },
    "RateLimit": {
        "description": (
            "With `RATE_LIMITED`: `r` requests remaining (0), `t` seconds until the next one "
            "is admitted (the quota refills continuously)."
        ),
        "schema": {"type": "string"},
        "example": '"default";r=0;t=1',
    },
}
