"""Webhook subscriptions: what a partner wants POSTed where, the rules a callback URL must
follow (SSRF), and the retry schedule of a delivery.

No I/O here. Host names are resolved when a delivery is made (server/events/webhooks.py),
and every address they resolve to goes through `address_allowed` then.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID

from server.domain.errors import DomainError, ErrorKind, InvalidField, NotFound
from server.domain.events import EventType

MAX_URL_LENGTH = 2048
# Per partner, by default (CUSTOMERS_MAX_WEBHOOKS_PER_PARTNER): bounds every event's fan-out.
MAX_SUBSCRIPTIONS = 20
SECRET_PREFIX = "whsec_"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_TYPE_NAMES = ", ".join(t.value for t in EventType)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: embeds an IPv4


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    DELIVERING = "delivering"  # a worker holds it until lease_until (then it is due again)
    DELIVERED = "delivered"  # a 2xx came back
    FAILED = "failed"  # retries exhausted, or the subscription was deleted
    PAUSED = "paused"  # its subscription is disabled: waits, untried, until it is enabled


@dataclass(frozen=True)
class WebhookSubscription:
    id: UUID
    partner_id: UUID
    callback_url: str
    types: tuple[EventType, ...]
    secret: str  # Standard Webhooks `whsec_<base64>`; shown to the partner only on create
    created_at: datetime
    updated_at: datetime
    # The secret before the last rotation, signed with beside the new one until then.
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    disabled_at: datetime | None = None  # set: its endpoint failed too long; nothing is sent

    def wants(self, event_type: EventType) -> bool:
        return event_type in self.types

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


class WebhookNotFound(NotFound):
    reason = "WEBHOOK_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("Webhook subscription not found")


class WebhookLimitReached(DomainError):
    kind = ErrorKind.CONFLICT
    reason = "WEBHOOK_LIMIT_REACHED"

    def __init__(self, limit: int = MAX_SUBSCRIPTIONS) -> None:
        super().__init__(
            f"A partner holds at most {limit} webhook subscriptions; delete one first",
            metadata={"limit": str(limit)},
        )


def new_secret() -> str:
    """The Standard Webhooks secret format: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def parse_types(values: Sequence[str]) -> tuple[EventType, ...]:
    """At least one known type, none twice (a duplicate is a partner's mistake worth telling)."""
    if not values:
        raise InvalidField("types", f"types must name at least one of: {_TYPE_NAMES}")
    found: list[EventType] = []
    for value in values:
        try:
            kind = EventType(value)
        except ValueError:
            raise InvalidField(
                "types", f"'{value[:40]}' is not a webhook type; use {_TYPE_NAMES}"
            ) from None
        if kind in found:
            raise InvalidField("types", f"'{value}' is listed twice")
        found.append(kind)
    return tuple(found)


def address_allowed(address: IPAddress) -> bool:
    """True for a publicly routable unicast address: the only kind a production server may
    POST to. Refuses loopback, private, link-local, multicast, reserved and unspecified
    ranges, also when an IPv6 address merely wraps such an IPv4 one (mapped, 6to4, Teredo,
    NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 host itself
            return address_allowed(address.ipv4_mapped)
        embedded: list[ipaddress.IPv4Address] = []
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if not all(address_allowed(inner) for inner in embedded):
            return False
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_callback_url(url: str, *, production: bool) -> str:
    """The URL as given, if a delivery may be sent to it; InvalidField saying why not.

    Everywhere: http(s), a host, no userinfo (credentials would sit in our database and
    logs; receivers authenticate us by the signature), at most 2048 characters. Outside
    development mode also no loopback/private/link-local/... target: literal IPs are checked
    here, `localhost` is refused by name, and other names are checked when resolved.
    """
    field = "callbackUrl"
    if not url:
        raise InvalidField(field, "callbackUrl is required")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidField(field, f"callbackUrl must be at most {MAX_URL_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise InvalidField(field, "callbackUrl must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidField(field, "callbackUrl is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidField(field, "callbackUrl must be an http or https URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidField(field, "callbackUrl must name a host")
    if "@" in parts.netloc:
        raise InvalidField(field, "callbackUrl must not contain a user name or password")
    if port == 0:
        raise InvalidField(field, "callbackUrl must not use port 0")
    literal = _literal_address(host)
    last_label = host.rsplit(".", 1)[-1].lower()
    if literal is None and (last_label.isdigit() or last_label.startswith("0x")):
        # "127.1", "2130706433", "0x7f.1": no dotted quad to ipaddress, yet loopback to the
        # system resolver (inet_aton). No real domain name ends in a numeric label.
        raise InvalidField(field, "callbackUrl host is neither a domain name nor an IP address")
    if production:
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidField(field, "callbackUrl must not point at this machine")
        if literal is not None and not address_allowed(literal):
            raise InvalidField(
                field, "callbackUrl must not point at a private, loopback or reserved address"
            )
    return url


def receiver(url: str) -> str:
    """`host:port` of a callback URL: the unit concurrency limits apply to, so one slow
    receiver cannot take every delivery slot."""
    parts = urlsplit(url)
    default = 443 if parts.scheme.lower() == "https" else 80
    try:
        port = parts.port or default
    except ValueError:
        port = default
    return f"{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class RetrySchedule:
    """Jittered exponential backoff: after the n-th failed attempt wait base·2^(n-1) (at most
    `max_delay`), times a random factor in [0.75, 1.25); keep trying until `max_age` after
    the delivery was created (the last attempt lands on that deadline), then give up."""

    base: timedelta = timedelta(seconds=5)
    max_age: timedelta = timedelta(hours=24)
    max_delay: timedelta = timedelta(hours=6)

    def delay(self, attempt: int, jitter: float) -> timedelta:
        """`attempt` counts from 1; `jitter` is uniform in [0, 1)."""
        exponent = min(max(attempt, 1) - 1, 40)  # 2**40 seconds is already past any cap
        plain = min(self.base * (1 << exponent), self.max_delay)
        return plain * (0.75 + 0.5 * jitter)

    def next_attempt(
        self, *, attempt: int, created_at: datetime, now: datetime, jitter: float
    ) -> datetime | None:
        """When to try again after failed attempt number `attempt`; None: give up."""
        deadline = created_at + self.max_age
        if now >= deadline:
            return None
        return min(now + self.delay(attempt, jitter), deadline)
