"""EIP-4361 challenges: the exact text wallets sign, and strict parsing of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.siwe import (
    STATEMENT,
    InvalidSiweMessage,
    SiweMessage,
    format_timestamp,
    issue_challenge,
    parse_siwe,
)

ADDRESS = "0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb"
NONCE = "k3Jd8sLq0ZpX7vWm2Nc4Rt9Y"
NOW = datetime(2025, 11, 25, 17, 31, 5, 987654, tzinfo=UTC)

EXPECTED_TEXT = f"""\
api.example.com wants you to sign in with your Ethereum account:
{ADDRESS}

{STATEMENT}

URI: https://api.example.com
Version: 1
Chain ID: 1
Nonce: {NONCE}
Issued At: 2025-11-25T17:31:05Z
Expiration Time: 2025-11-25T18:31:05Z"""


def _challenge(**overrides: object) -> SiweMessage:
    arguments: dict[str, object] = {
        "domain": "api.example.com",
        "uri": "https://api.example.com",
        "address": ADDRESS,
        "chain_id": 1,
        "now": NOW,
        "nonce": NONCE,
    }
    arguments.update(overrides)
    return issue_challenge(**arguments)  # type: ignore[arg-type]


def test_issued_challenge_has_the_exact_eip4361_layout() -> None:
    assert _challenge().to_text() == EXPECTED_TEXT


def test_challenge_expires_one_hour_after_issue_at_whole_seconds() -> None:
    message = _challenge()

    assert message.issued_at == datetime(2025, 11, 25, 17, 31, 5, tzinfo=UTC)
    assert message.expiration_time - message.issued_at == timedelta(hours=1)
    assert message.statement == STATEMENT
    assert message.version == "1"


def test_challenge_is_expired_from_its_expiration_time_on() -> None:
    message = _challenge()

    assert not message.is_expired(message.expiration_time - timedelta(microseconds=1))
    assert message.is_expired(message.expiration_time)


def test_challenge_issued_with_another_offset_is_written_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))

    message = _challenge(now=datetime(2025, 11, 25, 19, 31, 5, tzinfo=plus_two))

    assert message.to_text() == EXPECTED_TEXT


def test_naive_now_is_rejected() -> None:
    with pytest.raises(InvalidSiweMessage, match="timezone-aware"):
        _challenge(now=datetime(2025, 11, 25, 17, 31, 5))


@pytest.mark.parametrize("nonce", ["", "abc", "a" * 15, "k3Jd8sLq0ZpX7vW-", "éééééééééééééééé"])
def test_nonce_shorter_than_16_ascii_alphanumerics_is_rejected(nonce: str) -> None:
    with pytest.raises(InvalidSiweMessage, match="nonce must be at least 16"):
        _challenge(nonce=nonce)


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"domain": "https://api.example.com"}, "domain"),
        ({"domain": "api.example.com/path"}, "domain"),
        ({"domain": ""}, "domain"),
        ({"uri": "not a uri"}, "uri"),
        ({"address": "0x1234"}, "address"),
        ({"chain_id": 0}, "chain id"),
        ({"chain_id": 2**63}, "chain id"),
        ({"ttl": timedelta(0)}, "lifetime"),
    ],
)
def test_challenge_with_a_bad_field_is_refused(override: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidSiweMessage, match=problem):
        _challenge(**override)


def test_domain_may_carry_a_port_or_be_an_ip_literal() -> None:
    assert _challenge(domain="localhost:8080").domain == "localhost:8080"
    assert _challenge(domain="[::1]:8443").domain == "[::1]:8443"


def test_issued_challenge_text_parses_back_to_the_same_message() -> None:
    message = _challenge()

    assert parse_siwe(message.to_text()) == message


def test_sub_second_timestamps_are_written_with_the_precision_they_have() -> None:
    assert format_timestamp(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05Z"
    millis = datetime(2025, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert format_timestamp(millis) == "2025-01-02T03:04:05.120Z"
    micros = datetime(2025, 1, 2, 3, 4, 5, 120001, tzinfo=UTC)
    assert format_timestamp(micros) == "2025-01-02T03:04:05.120001Z"
    message = replace(_challenge(), issued_at=micros)
    assert parse_siwe(message.to_text()) == message


def test_timestamps_with_a_numeric_offset_are_read_as_the_same_instant() -> None:
    text = EXPECTED_TEXT.replace(
        "Issued At: 2025-11-25T17:31:05Z", "Issued At: 2025-11-25T18:31:05+01:00"
    )

    assert parse_siwe(text).issued_at == datetime(2025, 11, 25, 17, 31, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda t: t.replace("\n", "\r\n"), "LF only"),
        (lambda t: t + "\n", "11 lines"),
        (lambda t: t + "\nNot Before: 2025-11-25T17:31:05Z", "11 lines"),
        (lambda t: t.rsplit("\n", 1)[0], "11 lines"),
        (lambda t: "https://" + t, "domain"),
        (
            lambda t: t.replace("wants you to sign in", "wants you to log in"),
            "first line",
        ),
        (lambda t: t.replace("Version: 1", "Version: 2"), "version"),
        (lambda t: t.replace("Chain ID: 1", "Chain ID: 01"), "Chain ID"),
        (lambda t: t.replace("Chain ID: 1", "Chain ID: " + "9" * 5000), "Chain ID"),
        (lambda t: t.replace("Chain ID: 1", "Chain ID:1"), "Chain ID"),
        (lambda t: t.replace(NONCE, NONCE[:15]), "nonce"),
        (lambda t: t.replace("URI: ", "Uri: "), "URI"),
        (lambda t: t.replace("Issued At", "Expiration Time"), "Issued At"),
        (lambda t: t.replace("17:31:05Z", "17:31:05"), "Issued At"),
        (lambda t: t.replace("2025-11-25T17", "2025-13-25T17"), "not a valid date"),
        (lambda t: t.replace("2025-11-25T18", "2025-11-25T16"), "after issued at"),
        (lambda t: t.replace(STATEMENT, "line one\tline two"), "statement"),
        (lambda t: t.replace(f"\n\n{STATEMENT}", f"\n{STATEMENT}"), "11 lines"),
        (lambda t: t.replace(ADDRESS, ADDRESS[:-1]), "address"),
    ],
)
def test_text_that_strays_from_the_layout_is_rejected(
    mangle: Callable[[str], str], problem: str
) -> None:
    with pytest.raises(InvalidSiweMessage, match=problem):
        parse_siwe(mangle(EXPECTED_TEXT))


addresses = st.binary(min_size=20, max_size=20).map(lambda b: str(to_checksum_address(b)))
nonces = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=16,
    max_size=64,
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(9000, 1, 1),
    timezones=st.just(UTC),
)
hosts = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?(:[0-9]{1,5})?", fullmatch=True)


@settings(max_examples=50)
@given(
    domain=hosts,
    address=addresses,
    chain_id=st.integers(min_value=1, max_value=2**63 - 1),
    nonce=nonces,
    now=instants,
    ttl=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=30)),
)
def test_any_issued_challenge_text_parses_back_to_the_same_fields(
    domain: str, address: str, chain_id: int, nonce: str, now: datetime, ttl: timedelta
) -> None:
    message = issue_challenge(
        domain=domain,
        uri=f"https://{domain}/onboarding",
        address=address,
        chain_id=chain_id,
        now=now,
        nonce=nonce,
        ttl=ttl,
    )

    assert parse_siwe(message.to_text()) == message


def test_a_year_before_1000_is_written_with_four_digits() -> None:
    # Found by the one-character-edit property: "Issued At: 0025-..." parsed, then printed "25-".
    text = EXPECTED_TEXT.replace("Issued At: 2025", "Issued At: 0025")
    message = parse_siwe(text)

    assert "Issued At: 0025-11-25T17:31:05Z" in message.to_text()
    assert parse_siwe(message.to_text()) == message


@settings(max_examples=50)
@given(st.text(max_size=600))
def test_random_text_only_ever_raises_invalid_siwe_message(text: str) -> None:
    with pytest.raises(InvalidSiweMessage):
        parse_siwe(text)


@settings(max_examples=50)
@given(
    st.integers(min_value=0, max_value=len(EXPECTED_TEXT) - 1),
    st.characters(),
    st.booleans(),
)
def test_a_one_character_edit_either_parses_or_raises_invalid_siwe_message(
    position: int, character: str, insert: bool
) -> None:
    tail = EXPECTED_TEXT[position:] if insert else EXPECTED_TEXT[position + 1 :]
    text = EXPECTED_TEXT[:position] + character + tail

    try:
        message = parse_siwe(text)
    except InvalidSiweMessage:
        return
    assert parse_siwe(message.to_text()) == message
