"""Test wallets: real secp256k1 keys, and CAIP-10 ids for them."""

from __future__ import annotations

import base64

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount


def new_wallet() -> LocalAccount:
    return Account.create()


def caip10(wallet: LocalAccount, chain: int = 1) -> str:
    return f"eip155:{chain}:{wallet.address}"


def sign_challenge(wallet: LocalAccount, challenge_b64: str) -> str:
    """The wallet's personal_sign of the decoded challenge, base64 as the API wants it."""
    text = base64.b64decode(challenge_b64).decode()
    signed = wallet.sign_message(encode_defunct(text=text))
    return base64.b64encode(bytes(signed.signature)).decode()
