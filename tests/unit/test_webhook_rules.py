"""Webhook rules without I/O: callback URLs (SSRF in production), types, secrets, the retry
schedule, and the signed request a delivery sends."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from server.domain.errors import InvalidField
from server.domain.events import EventType
from server.domain.webhooks import (
    RetrySchedule,
    address_allowed,
    check_callback_url,
    new_secret,
    parse_types,
    receiver,
)
from server.events.egress import AddressNotAllowed, GuardedNetworkBackend, HostNotResolved
from server.events.webhooks import signed_request
from server.store.webhooks import Claimed, body

PUBLIC = ["https://hooks.example.com/x", "http://93.184.216.34:8080/", "https://[2606:4700::1]/"]
INTERNAL = [
    "http://127.0.0.1/",
    "http://127.8.9.10:9000/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://0.0.0.0/",
    "http://224.0.0.1/",  # multicast
    "http://240.0.0.1/",  # reserved
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
    "http://[ff02::1]/",
    "http://localhost:8080/",
    "http://LOCALHOST./",
    "http://api.localhost/",
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_urls_pass_in_production(url: str) -> None:
    assert check_callback_url(url, production=True) == url


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_targets_are_refused_in_production_only(url: str) -> None:
    with pytest.raises(InvalidField) as refused:
        check_callback_url(url, production=True)
    assert refused.value.field == "callbackUrl"
    assert check_callback_url(url, production=False) == url  # development: local receivers


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://hooks.example.com/",
        "javascript:alert(1)",
        "hooks.example.com/path",
        "https:///path",
        "https://user:secret@hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com:0/",
        "https://[::1/",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/\x00",
        "http://127.1/",  # inet_aton shorthand: loopback to a resolver
        "http://2130706433/",
        "http://0x7f000001/",
        "https://hooks.example.com/" + "a" * 2048,
    ],
)
def test_malformed_urls_are_refused_everywhere(url: str) -> None:
    for production in (False, True):
        with pytest.raises(InvalidField):
            check_callback_url(url, production=production)


def test_a_url_of_exactly_2048_characters_is_accepted() -> None:
    url = "https://hooks.example.com/" + "a" * (2048 - len("https://hooks.example.com/"))
    assert len(url) == 2048
    assert check_callback_url(url, production=True) == url


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("169.254.1.1", False),
        ("::", False),
        ("::ffff:8.8.8.8", True),
        ("::ffff:192.168.0.1", False),
        ("2001::1", False),  # Teredo server/client addresses are not global
    ],
)
def test_address_rules(address: str, allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is allowed


def test_types_need_one_known_type_each_once() -> None:
    assert parse_types(["card.updated", "customer.updated"]) == (
        EventType.CARD_UPDATED,
        EventType.CUSTOMER_UPDATED,
    )
    for bad in ([], ["customer.created"], ["card.updated", "card.updated"], [""]):
        with pytest.raises(InvalidField) as refused:
            parse_types(bad)
        assert refused.value.field == "types"


def test_secrets_are_standard_webhooks_secrets() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 32
    assert secret != new_secret()
    Webhook(secret)


def test_receiver_is_host_and_port() -> None:
    assert receiver("https://Hooks.Example.com/a") == "hooks.example.com:443"
    assert receiver("http://hooks.example.com/a") == "hooks.example.com:80"
    assert receiver("http://127.0.0.1:9000/a") == "127.0.0.1:9000"


def test_backoff_doubles_with_jitter_and_stops_at_the_max_age() -> None:
    schedule = RetrySchedule(base=timedelta(seconds=5), max_age=timedelta(hours=24))
    assert schedule.delay(1, 0.5) == timedelta(seconds=5)
    assert schedule.delay(2, 0.5) == timedelta(seconds=10)
    assert schedule.delay(4, 0.5) == timedelta(seconds=40)
    assert schedule.delay(3, 0.0) == timedelta(seconds=15)  # 20 s x 0.75
    assert schedule.delay(3, 0.999999) < timedelta(seconds=25)  # 20 s x 1.25
    assert schedule.delay(30, 0.5) == timedelta(hours=6)  # capped
    assert schedule.delay(10_000, 0.5) == timedelta(hours=6)  # no overflow

    created = datetime(2026, 1, 1, tzinfo=UTC)
    now, attempt, tries = created, 1, []
    while due := schedule.next_attempt(attempt=attempt, created_at=created, now=now, jitter=0.5):
        tries.append(due)
        now, attempt = due, attempt + 1
    assert tries == sorted(tries)
    assert tries[-1] == created + timedelta(hours=24)  # the last try lands on the deadline
    assert 12 <= len(tries) <= 20  # a day of retries, not thousands


def test_a_short_schedule_for_tests() -> None:
    schedule = RetrySchedule(base=timedelta(seconds=0.2), max_age=timedelta(seconds=3))
    created = datetime(2026, 1, 1, tzinfo=UTC)
    due = schedule.next_attempt(attempt=1, created_at=created, now=created, jitter=0.0)
    assert due == created + timedelta(seconds=0.15)
    assert (
        schedule.next_attempt(
            attempt=5, created_at=created, now=created + timedelta(seconds=3), jitter=0.0
        )
        is None
    )


def test_a_delivery_is_signed_with_the_event_id_and_verifies() -> None:
    secret = new_secret()
    event_id = uuid.uuid4()
    claimed = Claimed(
        delivery_id=1,
        attempt=1,
        event_id=event_id,
        subscription_id=uuid.uuid4(),
        callback_url="https://hooks.example.com/",
        secret=secret,
        payload=body("customer.updated", event_id, {"id": "c1", "status": "active"}),
        created_at=datetime.now(UTC),
    )
    content, headers = signed_request(claimed, at=datetime.now(UTC))
    assert headers["webhook-id"] == str(event_id)
    verified = Webhook(secret).verify(content, headers)
    assert verified == {
        "webhookType": "customer.updated",
        "eventId": str(event_id),
        "id": "c1",
        "status": "active",
    }
    assert list(verified)[:2] == ["webhookType", "eventId"]
    with pytest.raises(Exception):  # noqa: B017 - any verification error
        Webhook(new_secret()).verify(content, headers)


async def test_the_connect_step_refuses_names_that_resolve_inside_in_production() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        # A public-looking name whose DNS answer (one of several) is internal: rebinding.
        return ["93.184.216.34", "127.0.0.1"]

    backend = GuardedNetworkBackend(resolve=resolve, production=True)
    with pytest.raises(AddressNotAllowed):
        await backend.connect_tcp("hooks.example.com", 443, timeout=1)


async def test_the_connect_step_goes_to_the_address_it_resolved() -> None:
    import asyncio

    seen: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append("connected")
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "receiver.test"  # never given to the system resolver
        return ["127.0.0.1"]

    backend = GuardedNetworkBackend(resolve=resolve, production=False)
    stream = await backend.connect_tcp("receiver.test", port, timeout=2)
    await stream.aclose()
    server.close()
    await server.wait_closed()
    assert seen == ["connected"]

    async def nowhere(host: str, port: int) -> list[str]:
        return []

    async def unknown(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # No address, or a resolver error: one exception the dispatcher records as a failed
    # attempt ("could not resolve callback host"), not a gaierror escaping httpx unmapped.
    for resolver in (nowhere, unknown):
        with pytest.raises(HostNotResolved):
            await GuardedNetworkBackend(resolve=resolver, production=False).connect_tcp(
                "receiver.test", port, timeout=1
            )
