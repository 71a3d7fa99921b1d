"""Replay refusal by signature nonce, in the in-process registry (store/nonces.py
MemoryNonceRegistry: one SQLite process, and the service tests' stand-in). The request
authenticator's use of it (only after a good signature, remembered for the signature window
plus the allowed skew) is tests/unit/test_authentication.py; the shared table is
tests/integration/test_nonce_store.py."""

from __future__ import annotations

from server.store.nonces import MemoryNonceRegistry

NOW = 1_800_000_000
KEEP = 300  # seconds a nonce is remembered


async def test_a_nonce_seen_again_inside_its_window_is_a_replay() -> None:
    nonces = MemoryNonceRegistry()
    assert not await nonces.seen("kid-a", "n-1", keep_until=NOW + KEEP, now=NOW)
    assert await nonces.seen("kid-a", "n-1", keep_until=NOW + KEEP, now=NOW + 1)
    assert await nonces.seen("kid-a", "n-1", keep_until=NOW + KEEP + 9, now=NOW + KEEP - 1)


async def test_a_replay_does_not_extend_how_long_the_nonce_is_remembered() -> None:
    nonces = MemoryNonceRegistry()
    await nonces.seen("kid-a", "n-1", keep_until=NOW + KEEP, now=NOW)
    assert await nonces.seen("kid-a", "n-1", keep_until=NOW + 10 * KEEP, now=NOW + 1)
    assert not await nonces.seen("kid-a", "n-1", keep_until=NOW + 2 * KEEP, now=NOW + KEEP)


async def test_a_nonce_is_forgotten_once_its_window_has_passed_and_then_remembered_anew() -> None:
    nonces = MemoryNonceRegistry()
    await nonces.seen("kid-a", "n-1", keep_until=NOW + KEEP, now=NOW)
    later = NOW + KEEP
    assert not await nonces.seen("kid-a", "n-1", keep_until=later + KEEP, now=later)
    assert await nonces.seen("kid-a", "n-1", keep_until=later + KEEP, now=later + 1)


async def test_nonces_are_per_key_and_distinct_nonces_are_never_replays() -> None:
    nonces = MemoryNonceRegistry()
    assert not await nonces.seen("kid-a", "shared", keep_until=NOW + KEEP, now=NOW)
    assert not await nonces.seen("kid-b", "shared", keep_until=NOW + KEEP, now=NOW)
    assert not await nonces.seen("kid-a", "other", keep_until=NOW + KEEP, now=NOW)
    assert await nonces.seen("kid-b", "shared", keep_until=NOW + KEEP, now=NOW)


async def test_only_the_expired_nonces_are_forgotten() -> None:
    nonces = MemoryNonceRegistry()
    await nonces.seen("kid-a", "short", keep_until=NOW + 10, now=NOW)
    await nonces.seen("kid-a", "long", keep_until=NOW + KEEP, now=NOW)
    assert not await nonces.seen("kid-a", "short", keep_until=NOW + KEEP, now=NOW + 10)
    assert await nonces.seen("kid-a", "long", keep_until=NOW + KEEP, now=NOW + 10)
