"""EIP-4361 (Sign-In With Ethereum) messages: build the ownership challenge, parse it back.

The `siwe` package pins an eth-account older than ours and pulls in web3, and the message is
a fixed text layout, so it is built and parsed here. Pure: no I/O, no randomness (the caller
supplies the nonce), no signing (adapters/wallet.py recovers signers).

The address is checked for shape only (0x + 40 hex): EIP-55 needs keccak, which belongs to
identifiers.py, and the challenge's address comes from `AccountId.checksum_address`.

Only the layout this service issues is accepted: statement and Expiration Time present, no
Not Before / Request ID / Resources, no scheme before the domain, LF line ends, no trailing
newline. The text the wallet signs is exactly `to_text()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "DEFAULT_TTL",
    "STATEMENT",
    "VERSION",
    "InvalidSiweMessage",
    "SiweMessage",
    "format_timestamp",
    "issue_challenge",
    "parse_siwe",
]

STATEMENT = "Prove that you control this wallet to open your account."
VERSION = "1"
DEFAULT_TTL = timedelta(hours=1)
MIN_NONCE_LENGTH = 16
MAX_CHAIN_ID = 2**63 - 1

_HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
# RFC 3986 authority without userinfo (EIP-4361 forbids it): host or [IPv6], optional port.
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::[0-9]{1,5})?"
)
# RFC 3986 URI: a scheme, then visible ASCII with no spaces.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]+")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# EIP-4361: statement = *( reserved / unreserved / " " ), i.e. one line of URI-safe ASCII.
_STATEMENT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+")
_NONCE = re.compile(rf"[A-Za-z0-9]{{{MIN_NONCE_LENGTH},}}")
_CHAIN_ID = re.compile(r"[1-9][0-9]{0,18}")
# RFC 3339 date-time (uppercase T/Z as ISO 8601 profiles use); fraction up to microseconds.
_TIMESTAMP = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,6}))?(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})"
)
_FIELD_PREFIXES = (
    "URI: ",
    "Version: ",
    "Chain ID: ",
    "Nonce: ",
    "Issued At: ",
    "Expiration Time: ",
)


class InvalidSiweMessage(ValueError):
    """The text is not a challenge this service could have issued; the message says why."""


@dataclass(frozen=True)
class SiweMessage:
    """One EIP-4361 message. Validated on construction, so `to_text()` is always well formed.

    Timestamps must be timezone-aware and are normalised to UTC (the text uses `Z`).
    """

    domain: str
    address: str
    statement: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime

    def __post_init__(self) -> None:
        if not _DOMAIN.fullmatch(self.domain):
            raise InvalidSiweMessage("domain must be a host name with an optional port")
        if not _ADDRESS.fullmatch(self.address):
            raise InvalidSiweMessage("address must be an Ethereum address: 0x and 40 hex digits")
        if not _STATEMENT.fullmatch(self.statement):
            raise InvalidSiweMessage("statement must be one line of URI-safe ASCII text")
        if not _URI.fullmatch(self.uri):
            raise InvalidSiweMessage("uri must be an absolute RFC 3986 URI")
        if self.version != VERSION:
            raise InvalidSiweMessage(f"version must be {VERSION!r}")
        if (
            not isinstance(self.chain_id, int)
            or isinstance(self.chain_id, bool)
            or not 1 <= self.chain_id <= MAX_CHAIN_ID
        ):
            raise InvalidSiweMessage(f"chain id must be an integer from 1 to {MAX_CHAIN_ID}")
        if not _NONCE.fullmatch(self.nonce):
            raise InvalidSiweMessage(
                f"nonce must be at least {MIN_NONCE_LENGTH} ASCII letters or digits"
            )
        object.__setattr__(self, "issued_at", _utc(self.issued_at, "issued at"))
        object.__setattr__(self, "expiration_time", _utc(self.expiration_time, "expiration time"))
        if self.expiration_time <= self.issued_at:
            raise InvalidSiweMessage("expiration time must be after issued at")

    def to_text(self) -> str:
        """The exact EIP-4361 text the wallet signs (LF line ends, no trailing newline)."""
        return "\n".join(
            (
                f"{self.domain}{_HEADER_SUFFIX}",
                self.address,
                "",
                self.statement,
                "",
                f"URI: {self.uri}",
                f"Version: {self.version}",
                f"Chain ID: {self.chain_id}",
                f"Nonce: {self.nonce}",
                f"Issued At: {format_timestamp(self.issued_at)}",
                f"Expiration Time: {format_timestamp(self.expiration_time)}",
            )
        )

    def is_expired(self, now: datetime) -> bool:
        """Expired at and after the Expiration Time instant."""
        return _utc(now, "now") >= self.expiration_time


def issue_challenge(
    *,
    domain: str,
    uri: str,
    address: str,
    chain_id: int,
    now: datetime,
    nonce: str,
    ttl: timedelta = DEFAULT_TTL,
) -> SiweMessage:
    """A fresh ownership challenge valid for `ttl` from `now` (truncated to whole seconds).

    Whole seconds keep the text short and readable in a wallet's signing prompt; the
    caller supplies the nonce so this stays deterministic and testable.
    """
    if ttl <= timedelta(0):
        raise InvalidSiweMessage("challenge lifetime must be positive")
    issued_at = _utc(now, "now").replace(microsecond=0)
    try:
        expiration_time = issued_at + ttl
    except OverflowError:
        raise InvalidSiweMessage("challenge would expire past the year 9999") from None
    return SiweMessage(
        domain=domain,
        address=address,
        statement=STATEMENT,
        uri=uri,
        version=VERSION,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=expiration_time,
    )


def parse_siwe(text: str) -> SiweMessage:
    """Parses the exact layout `to_text()` produces; anything else raises InvalidSiweMessage."""
    if not isinstance(text, str):
        raise InvalidSiweMessage("message must be text")
    if "\r" in text:
        raise InvalidSiweMessage("message lines must end with LF only, not CRLF")
    lines = text.split("\n")
    if len(lines) != 11:
        raise InvalidSiweMessage(f"message must have exactly 11 lines, found {len(lines)}")
    header, address, blank1, statement, blank2, *fields = lines
    if not header.endswith(_HEADER_SUFFIX):
        raise InvalidSiweMessage(f"first line must end with '{_HEADER_SUFFIX.strip()}'")
    if blank1 or blank2:
        raise InvalidSiweMessage("address and statement must each be followed by a blank line")
    values = [_field(line, prefix) for line, prefix in zip(fields, _FIELD_PREFIXES, strict=True)]
    uri, version, chain_id, nonce, issued_at, expiration_time = values
    if not _CHAIN_ID.fullmatch(chain_id):
        raise InvalidSiweMessage("Chain ID must be a decimal integer without leading zeros")
    return SiweMessage(
        domain=header.removesuffix(_HEADER_SUFFIX),
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=int(chain_id),
        nonce=nonce,
        issued_at=parse_timestamp(issued_at, "Issued At"),
        expiration_time=parse_timestamp(expiration_time, "Expiration Time"),
    )


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`: whole seconds when exact, else milli- or microseconds."""
    value = _utc(value, "timestamp")
    # Not strftime: glibc's %Y does not pad years before 1000 ("25-11-25"), which RFC 3339
    # and parse_timestamp require as four digits.
    text = f"{value.year:04d}-{value:%m-%dT%H:%M:%S}"
    if value.microsecond % 1000:
        text += f".{value.microsecond:06d}"
    elif value.microsecond:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def parse_timestamp(text: str, name: str = "timestamp") -> datetime:
    """RFC 3339 date-time (Z or numeric offset) to an aware UTC datetime."""
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        raise InvalidSiweMessage(f"{name} must be an RFC 3339 date-time like 2025-01-31T12:00:00Z")
    fraction = match["fraction"] or ""
    offset = "+00:00" if match["offset"] == "Z" else match["offset"]
    iso = f"{match['date']}T{match['time']}.{fraction.ljust(6, '0')}{offset}"
    try:
        parsed = datetime.fromisoformat(iso)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidSiweMessage(f"{name} is not a valid date and time") from None


def _field(line: str, prefix: str) -> str:
    if not line.startswith(prefix):
        raise InvalidSiweMessage(f"expected a line starting with '{prefix.strip()}'")
    return line[len(prefix) :]


def _utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidSiweMessage(f"{name} must be a timezone-aware datetime")
    try:
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidSiweMessage(f"{name} is out of range") from None
