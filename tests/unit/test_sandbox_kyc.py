"""The sandbox KYC partner's callback signature scheme, checked without a network."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from server.adapters.kyc import SandboxKyc, signature_header
from server.config import Settings
from server.domain.customer import KycVerdict
from server.domain.errors import InvalidCallbackSignature, InvalidField
from server.services.ports import KycCallback

SECRET = "unit-test-webhook-secret"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())


class FixedClock:
    def now(self) -> datetime:
        return NOW


KYC = SandboxKyc(public_url="https://api.example.com", webhook_secret=SECRET, clock=FixedClock())
BODY = json.dumps(
    {"sessionId": "s-1", "verdict": "approved", "eventId": "evt-1", "timestamp": T}
).encode()
KYC_CALLBACK = KycCallback(session_id="s-1", verdict=KycVerdict.APPROVED, event_id="evt-1")


async def verify(body: bytes, header: str, now: datetime = NOW) -> object:
    return await KYC.verify_callback(body=body, headers={"x-kyc-signature": header}, now=now)


async def test_sessions_are_unguessable_and_their_url_is_under_the_public_url() -> None:
    first, second = [
        await KYC.open_session(partner_id=uuid.uuid4(), customer_id=uuid.uuid4()) for _ in range(2)
    ]
    assert first.session_id != second.session_id and len(first.session_id) >= 24
    assert first.verification_url == f"https://api.example.com/kyc/{first.session_id}"


async def test_a_correctly_signed_callback_is_parsed() -> None:
    callback = await verify(BODY, signature_header(SECRET.encode(), T, BODY))
    assert callback == KYC_CALLBACK


async def test_any_v1_entry_may_match_so_secrets_can_rotate() -> None:
    good = signature_header(SECRET.encode(), T, BODY).rpartition("v1=")[2]
    assert await verify(BODY, f"t={T},v1={'0' * 64},v1={good}") == KYC_CALLBACK


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"t={T}",
        f"t=soon,v1={'0' * 64}",
        signature_header(b"another-secret", T, BODY),
        signature_header(SECRET.encode(), T, BODY + b" "),
        signature_header(SECRET.encode(), T - 301, BODY),  # too old: a replay
        signature_header(SECRET.encode(), T + 301, BODY),  # from the future
    ],
)
async def test_missing_malformed_wrong_or_stale_signatures_are_refused(header: str) -> None:
    with pytest.raises(InvalidCallbackSignature):
        await verify(BODY, header)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        json.dumps({"sessionId": "s", "verdict": "maybe", "eventId": "e"}).encode(),
        json.dumps({"sessionId": 5, "verdict": "approved", "eventId": "e"}).encode(),
        json.dumps({"verdict": "approved", "eventId": "e"}).encode(),
    ],
)
async def test_signed_but_malformed_bodies_are_invalid(payload: bytes) -> None:
    with pytest.raises(InvalidField):
        await verify(payload, signature_header(SECRET.encode(), T, payload))


async def test_the_portal_refuses_unknown_decisions_before_sending_anything() -> None:
    # The public URL is unreachable: a send would fail with KycPartnerUnavailable instead.
    for form in [b"decision=maybe", b"", b"decision=approve&decision=reject"]:
        with pytest.raises(InvalidField):
            await KYC.decide("s-1", form)


def test_the_portal_page_escapes_the_session_id() -> None:
    page = KYC.portal_page('<script>"x"</script>').decode()
    assert "<script>" not in page and 'value="approve"' in page


def test_production_refuses_the_well_known_development_webhook_secret() -> None:
    with pytest.raises(ValueError, match="CUSTOMERS_KYC_WEBHOOK_SECRET"):
        Settings(env="production")
    assert Settings(env="production", kyc_webhook_secret=SecretStr("x" * 32)).env == "production"
