"""Ethereum wallet signatures: who signed a SIWE challenge, and fresh challenge nonces.

The crypto (keccak, secp256k1 recovery) lives here, outside the domain. eth-account does the
recovery; with `coincurve` installed eth-keys uses libsecp256k1 automatically, which is ~50x
faster than its pure-Python fallback.
"""

from __future__ import annotations

import secrets
import string

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

__all__ = [
    "NONCE_LENGTH",
    "SIGNATURE_LENGTH",
    "EthereumWallets",
    "InvalidWalletSignature",
    "new_nonce",
    "recover_signer",
]

SIGNATURE_LENGTH = 65  # r (32) || s (32) || v (1)
# 24 of 62 symbols is ~143 bits: unguessable, and above EIP-4361's and the spec's minimums.
NONCE_LENGTH = 24
_NONCE_ALPHABET = string.ascii_letters + string.digits
# personal_sign wallets emit 27/28; some libraries and hardware wallets emit the raw
# recovery id 0/1. EIP-155 style v (35+) belongs to transactions, never to messages.
_RECOVERY_IDS = {0: 27, 1: 28, 27: 27, 28: 28}


class InvalidWalletSignature(ValueError):
    """The signature is malformed or recovers no public key: it proves nothing."""


def recover_signer(message_text: str, signature: bytes) -> str:
    """The EIP-55 address whose key made this EIP-191 personal_sign signature of the text.

    A well-formed signature by the wrong key still recovers *some* address: callers must
    compare the result with the address they expect.
    """
    if len(signature) != SIGNATURE_LENGTH:
        raise InvalidWalletSignature(
            f"signature must be {SIGNATURE_LENGTH} bytes (r||s||v), got {len(signature)}"
        )
    v = _RECOVERY_IDS.get(signature[64])
    if v is None:
        raise InvalidWalletSignature("signature v byte must be 27, 28, 0 or 1")
    try:
        message = encode_defunct(text=message_text)
        address = Account.recover_message(message, signature=signature[:64] + bytes([v]))
    except (ValueError, TypeError, BadSignature, ValidationError):
        # Out-of-range r/s, no curve point for r, text that is not encodable: all "invalid".
        raise InvalidWalletSignature("signature does not recover a wallet address") from None
    return str(address)


def new_nonce() -> str:
    """A fresh SIWE nonce: NONCE_LENGTH ASCII letters and digits from the OS CSPRNG."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(NONCE_LENGTH))


class EthereumWallets:
    """The `Wallets` port (services/ports.py) backed by eth-account."""

    def recover_signer(self, message_text: str, signature: bytes) -> str:
        return recover_signer(message_text, signature)

    def new_nonce(self) -> str:
        return new_nonce()
