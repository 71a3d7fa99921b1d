"""Bearer tokens: a remembered token is still checked for expiry on every use, and only the
exact token string that verified is remembered."""

from __future__ import annotations

import uuid

import pytest

from server.adapters.tokens import JwtTokens
from server.domain.errors import Unauthenticated
from server.services.ports import TokenClaims

NOW = 1_800_000_000


def test_a_verified_token_keeps_working_until_it_expires() -> None:
    tokens = JwtTokens("s" * 32)
    claims = TokenClaims(uuid.uuid4(), 3, NOW + 60)
    token = tokens.encode(claims)
    assert tokens.decode(token, now=NOW) == claims
    assert tokens.decode(token, now=NOW + 59) == claims  # remembered
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.decode(token, now=NOW + 60)


def test_a_token_altered_after_its_genuine_twin_was_remembered_is_refused() -> None:
    tokens = JwtTokens("s" * 32)
    token = tokens.encode(TokenClaims(uuid.uuid4(), 1, NOW + 60))
    tokens.decode(token, now=NOW)
    head, payload, signature = token.split(".")
    forged = ".".join([head, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")])
    with pytest.raises(Unauthenticated, match="Invalid"):
        tokens.decode(forged, now=NOW)
    other = JwtTokens("t" * 32).encode(TokenClaims(uuid.uuid4(), 1, NOW + 60))
    with pytest.raises(Unauthenticated, match="Invalid"):
        tokens.decode(other, now=NOW)


def test_the_memory_of_verified_tokens_is_bounded() -> None:
    tokens = JwtTokens("s" * 32, remember=3)
    for _ in range(10):
        tokens.decode(tokens.encode(TokenClaims(uuid.uuid4(), 1, NOW + 60)), now=NOW)
    assert len(tokens._verified) == 3
