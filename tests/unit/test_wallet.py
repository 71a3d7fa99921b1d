"""Wallet signatures: only the wallet's own key proves ownership of its address."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.backends import get_backend
from eth_keys.backends.coincurve import CoinCurveECCBackend
from hypothesis import given, settings
from hypothesis import strategies as st

from server.adapters.wallet import (
    EthereumWallets,
    InvalidWalletSignature,
    new_nonce,
    recover_signer,
)
from server.domain.identifiers import parse_account_id
from server.domain.siwe import issue_challenge
from server.services.ports import Wallets

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
NOW = datetime(2025, 11, 25, 17, 31, 5, tzinfo=UTC)

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda k: k.to_bytes(32, "big")
)


def _challenge_text(address: str, nonce: str = "k3Jd8sLq0ZpX7vWm2Nc4Rt9Y") -> str:
    return issue_challenge(
        domain="api.example.com",
        uri="https://api.example.com",
        address=address,
        chain_id=1,
        now=NOW,
        nonce=nonce,
    ).to_text()


def _sign(text: str, key: bytes) -> bytes:
    return bytes(Account.sign_message(encode_defunct(text=text), private_key=key).signature)


def test_signature_by_a_fresh_wallet_recovers_its_address() -> None:
    wallet = Account.create()
    text = _challenge_text(wallet.address)

    assert recover_signer(text, _sign(text, wallet.key)) == wallet.address


def test_recovered_address_matches_the_customers_chain_id() -> None:
    wallet = Account.create()
    account = parse_account_id(f"eip155:1:{wallet.address.lower()}")
    text = _challenge_text(account.checksum_address)

    recovered = recover_signer(text, _sign(text, wallet.key))

    assert parse_account_id(f"eip155:1:{recovered}").canonical == account.canonical


@settings(max_examples=25, deadline=None)
@given(private_keys, private_keys)
def test_only_the_matching_keys_signature_recovers_the_address(
    owner_key: bytes, other_key: bytes
) -> None:
    owner = Account.from_key(owner_key).address
    text = _challenge_text(owner)

    assert recover_signer(text, _sign(text, owner_key)) == owner
    if other_key != owner_key:
        assert recover_signer(text, _sign(text, other_key)) != owner


def test_signature_over_another_message_does_not_recover_the_address() -> None:
    wallet = Account.create()
    signature = _sign(_challenge_text(wallet.address), wallet.key)

    other_text = _challenge_text(wallet.address, nonce="ZZZZZZZZZZZZZZZZZZZZZZZZ")

    assert recover_signer(other_text, signature) != wallet.address


def test_raw_recovery_id_0_or_1_is_accepted_like_27_or_28() -> None:
    wallet = Account.create()
    text = _challenge_text(wallet.address)
    signature = _sign(text, wallet.key)

    raw = signature[:64] + bytes([signature[64] - 27])

    assert recover_signer(text, raw) == wallet.address


@pytest.mark.parametrize("length", [0, 64, 66, 130])
def test_signature_of_the_wrong_length_is_invalid(length: int) -> None:
    with pytest.raises(InvalidWalletSignature, match="65 bytes"):
        recover_signer("hello", b"\x01" * length)


@pytest.mark.parametrize("v", [2, 26, 29, 35, 36, 255])
def test_signature_with_an_unknown_v_byte_is_invalid(v: int) -> None:
    with pytest.raises(InvalidWalletSignature, match="v byte"):
        recover_signer("hello", b"\x01" * 64 + bytes([v]))


@pytest.mark.parametrize(
    "rs",
    [
        bytes(64),
        SECP256K1_N.to_bytes(32, "big") + (1).to_bytes(32, "big"),
        (1).to_bytes(32, "big") + SECP256K1_N.to_bytes(32, "big"),
        b"\xff" * 64,
        (5).to_bytes(32, "big") + (1).to_bytes(32, "big"),  # r is no curve point's x
    ],
)
def test_unrecoverable_signature_is_invalid(rs: bytes) -> None:
    with pytest.raises(InvalidWalletSignature, match="does not recover"):
        recover_signer("hello", rs + bytes([27]))


def test_text_that_cannot_be_utf8_encoded_is_an_invalid_signature_not_a_crash() -> None:
    with pytest.raises(InvalidWalletSignature):
        recover_signer("lone \ud800 surrogate", b"\x01" * 64 + bytes([27]))


@settings(max_examples=50)
@given(st.binary(max_size=80), st.text(max_size=50))
def test_arbitrary_bytes_either_recover_an_address_or_are_invalid(
    signature: bytes, text: str
) -> None:
    try:
        address = recover_signer(text, signature)
    except InvalidWalletSignature:
        return
    assert parse_account_id(f"eip155:1:{address}").address == address


def test_nonces_are_24_alphanumerics_and_do_not_repeat() -> None:
    nonces = {new_nonce() for _ in range(1000)}

    assert len(nonces) == 1000
    assert all(len(n) == 24 and n.isascii() and n.isalnum() for n in nonces)


def test_a_new_nonce_is_accepted_by_the_challenge() -> None:
    _challenge_text("0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb", nonce=new_nonce())


def test_ethereum_wallets_implements_the_wallets_port() -> None:
    wallets: Wallets = EthereumWallets()
    wallet = Account.create()
    text = _challenge_text(wallet.address, nonce=wallets.new_nonce())

    assert wallets.recover_signer(text, _sign(text, wallet.key)) == wallet.address


def test_signature_recovery_uses_libsecp256k1_through_coincurve() -> None:
    # Without coincurve eth-keys silently falls back to pure Python, ~50x slower.
    assert isinstance(get_backend(), CoinCurveECCBackend)
