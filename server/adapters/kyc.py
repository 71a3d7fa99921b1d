"""The sandbox KYC partner: a stand-in that behaves like a real partner.

It opens sessions whose portal page this service serves through the gateway, and reports a
person's decision the way real partners do: an HMAC-signed HTTP callback to the service's
public `POST /kyc/callbacks`, delivered before the portal answers. Its signature scheme
(Stripe-style, over the exact bytes sent, so no canonicalisation can go wrong):

    X-Kyc-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import httpx

from server.domain.customer import KycVerdict
from server.domain.errors import (
    InvalidCallbackSignature,
    InvalidField,
    KycPartnerUnavailable,
)
from server.services.ports import Clock, KycCallback, KycSession

SIGNATURE_HEADER = "x-kyc-signature"
# A captured callback cannot be replayed after this; both clocks may be off by a little.
TOLERANCE = timedelta(minutes=5)
DECISIONS = {"approve": KycVerdict.APPROVED, "reject": KycVerdict.REJECTED}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox KYC</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}}</style>
</head><body><h1>Sandbox identity verification</h1>
<p>Session <code>{session}</code></p>
{content}
</body></html>
"""
_FORM = """<p>This is the sandbox KYC partner. Choose the verdict it reports to the service.</p>
<form method="post" action="{session}/decision">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="reject">Reject</button>
</form>"""
_DONE = "<p>The verdict <strong>{verdict}</strong> was reported. You can close this page.</p>"


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class SandboxKyc:
    def __init__(
        self,
        *,
        public_url: str,
        webhook_secret: str,
        clock: Clock,
        timeout: float = 10.0,
        latency: float = 0.0,
    ) -> None:
        self._public_url = public_url
        self._secret = webhook_secret.encode()
        self._clock = clock
        self._timeout = timeout
        self._latency = latency  # seconds a session takes to open, as a slow partner's would

    # -- the KycProvider port ------------------------------------------------------------

    async def open_session(self, *, partner_id: UUID, customer_id: UUID) -> KycSession:
        if self._latency:
            await asyncio.sleep(self._latency)
        session_id = secrets.token_urlsafe(18)
        return KycSession(session_id, f"{self._public_url}/kyc/{session_id}")

    async def verify_callback(
        self, *, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> KycCallback:
        self._check_signature(body, headers.get(SIGNATURE_HEADER, ""), now)
        try:
            payload = json.loads(body)
            verdict = KycVerdict(payload["verdict"])
            session_id, event_id = payload["sessionId"], payload["eventId"]
            if not isinstance(session_id, str) or not isinstance(event_id, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise InvalidField(
                "body", 'callback body must be {"sessionId","verdict","eventId","timestamp"}'
            ) from None
        return KycCallback(session_id=session_id, verdict=verdict, event_id=event_id)

    def _check_signature(self, body: bytes, header: str, now: datetime) -> None:
        if not header:
            raise InvalidCallbackSignature("Missing X-Kyc-Signature header")
        parts = [item.partition("=") for item in header.split(",")]
        stamps = [value for key, _, value in parts if key.strip() == "t"]
        candidates = [value.strip() for key, _, value in parts if key.strip() == "v1"]
        if len(stamps) != 1 or not stamps[0].strip().isdigit() or not candidates:
            raise InvalidCallbackSignature("X-Kyc-Signature must be 't=<unix>,v1=<hex>'")
        timestamp = int(stamps[0])
        if abs(now.timestamp() - timestamp) > TOLERANCE.total_seconds():
            raise InvalidCallbackSignature("X-Kyc-Signature timestamp is too old or too new")
        expected = signature_header(self._secret, timestamp, body).rpartition("v1=")[2]
        # Several v1 entries may come during a secret rotation; any one may match.
        if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            raise InvalidCallbackSignature("X-Kyc-Signature does not match the body")

    # -- the partner's own portal (sandbox only, served by transport/kyc.py) -----------------

    def portal_page(self, session_id: str) -> bytes:
        session = html.escape(session_id)
        return _PAGE.format(session=session, content=_FORM.format(session=session)).encode()

    async def decide(self, session_id: str, form: bytes) -> bytes:
        """The portal's form target: reports the verdict, then answers the result page."""
        chosen = parse_qs(form.decode("utf-8", "replace")).get("decision", [])
        if len(chosen) != 1 or chosen[0] not in DECISIONS:
            raise InvalidField("decision", "decision must be 'approve' or 'reject'")
        verdict = DECISIONS[chosen[0]]
        await self._send_callback(session_id, verdict)
        content = _DONE.format(verdict=verdict.value)
        return _PAGE.format(session=html.escape(session_id), content=content).encode()

    async def _send_callback(self, session_id: str, verdict: KycVerdict) -> None:
        timestamp = int(self._clock.now().timestamp())
        event: dict[str, Any] = {
            "sessionId": session_id,
            "verdict": verdict.value,
            "eventId": f"evt_{secrets.token_hex(12)}",
            "timestamp": timestamp,
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, timestamp, body),
        }
        url = f"{self._public_url}/kyc/callbacks"
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                answer = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise KycPartnerUnavailable(
                f"The sandbox KYC partner could not reach {url}: {type(exc).__name__}"
            ) from None
        if not answer.is_success:
            raise KycPartnerUnavailable(
                f"The service answered the sandbox KYC callback with {answer.status_code}"
            )
