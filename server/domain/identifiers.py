"""Identifiers: CAIP-10 account ids (`chainId`), partner `externalId`s, and the UUIDs of
our own resources as a request names them.

There is no CAIP-10 package on PyPI, so the grammar lives here as strict regexes: the general
CAIP-10 shape for every namespace, plus the eip155 rules (decimal chain id, 20-byte hex
address, EIP-55 checksum on mixed case). Messages name the JSON field so the transport can
answer 400 with something a partner can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from eth_utils.address import is_checksum_address, to_checksum_address

__all__ = [
    "EVM_NAMESPACE",
    "MAX_EVM_CHAIN_ID",
    "AccountId",
    "InvalidIdentifier",
    "parse_account_id",
    "validate_external_id",
]

EVM_NAMESPACE = "eip155"
# Chain ids are stored and sent as signed 64-bit integers; nothing real comes near this.
MAX_EVM_CHAIN_ID = 2**63 - 1
MAX_EXTERNAL_ID_LENGTH = 128

# CAIP-2 / CAIP-10 general grammar. Explicit ASCII classes: `\d` would admit other scripts.
_NAMESPACE = re.compile(r"[-a-z0-9]{3,8}")
_REFERENCE = re.compile(r"[-_a-zA-Z0-9]{1,32}")
_ADDRESS = re.compile(r"[-.%a-zA-Z0-9]{1,128}")
# eip155 specifics.
_EVM_REFERENCE = re.compile(r"[1-9][0-9]{0,18}")
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# namespace:reference:address is at most 8 + 1 + 32 + 1 + 128 characters.
_MAX_ACCOUNT_ID_LENGTH = 170
_EXAMPLE = "eip155:1:0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb"


class InvalidIdentifier(ValueError):
    """An identifier a partner sent is malformed; the message says which field and why."""


@dataclass(frozen=True)
class AccountId:
    """A CAIP-10 account id, validated on construction so an invalid one cannot exist.

    For eip155 the address is normalised to its EIP-55 checksum form: that is what is
    stored, returned to partners (`str(account)`) and put in the SIWE challenge, because
    wallets display and sign for that form. Other namespaces keep the address verbatim
    (their encodings, e.g. base58, are case-sensitive).

    Equality on the dataclass compares the normalised fields; use `canonical` as the
    uniqueness key (it ignores eip155 address case explicitly).
    """

    namespace: str
    reference: str
    address: str

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace):
            raise InvalidIdentifier(
                "chainId namespace must be 3-8 lowercase letters, digits or '-' "
                f"(CAIP-10, e.g. {_EXAMPLE})"
            )
        if not _REFERENCE.fullmatch(self.reference):
            raise InvalidIdentifier(
                "chainId reference must be 1-32 letters, digits, '-' or '_' "
                f"(CAIP-10, e.g. {_EXAMPLE})"
            )
        if not _ADDRESS.fullmatch(self.address):
            raise InvalidIdentifier(
                "chainId address must be 1-128 letters, digits, '-', '.' or '%' "
                f"(CAIP-10, e.g. {_EXAMPLE})"
            )
        if self.namespace == EVM_NAMESPACE:
            _check_evm_reference(self.reference)
            object.__setattr__(self, "address", _evm_checksum_address(self.address))

    def __str__(self) -> str:
        """The CAIP-10 string as stored and returned (EIP-55 address for eip155)."""
        return f"{self.namespace}:{self.reference}:{self.address}"

    @classmethod
    def parse(cls, value: str) -> AccountId:
        """Same as `parse_account_id`; here so callers can write `AccountId.parse(...)`."""
        return parse_account_id(value)

    @property
    def is_evm(self) -> bool:
        """Only eip155 accounts can answer the SIWE ownership challenge today."""
        return self.namespace == EVM_NAMESPACE

    @property
    def chain_id(self) -> int:
        """The EIP-155 chain id, as the SIWE message's `Chain ID` needs it."""
        self._require_evm("chain_id")
        return int(self.reference)

    @property
    def checksum_address(self) -> str:
        """The EIP-55 form of an eip155 address (what the wallet signs for)."""
        self._require_evm("checksum_address")
        return self.address

    @property
    def canonical(self) -> str:
        """Uniqueness key: one wallet is one customer whatever letter case was sent.

        eip155 addresses are case-insensitive (case only carries the checksum), so the key
        uses the lowercase address; other namespaces are compared verbatim.
        """
        if self.is_evm:
            return f"{self.namespace}:{self.reference}:{self.address.lower()}"
        return str(self)

    def _require_evm(self, what: str) -> None:
        if not self.is_evm:
            raise InvalidIdentifier(
                f"chainId {what} exists only for {EVM_NAMESPACE} accounts, not '{self.namespace}'"
            )


def parse_account_id(value: str) -> AccountId:
    """Parses and validates a CAIP-10 `chainId`; raises InvalidIdentifier naming the problem."""
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier(f"chainId is required: a CAIP-10 account id like {_EXAMPLE}")
    if len(value) > _MAX_ACCOUNT_ID_LENGTH:
        raise InvalidIdentifier(
            f"chainId is too long: a CAIP-10 account id has at most {_MAX_ACCOUNT_ID_LENGTH} "
            "characters"
        )
    parts = value.split(":")
    if len(parts) != 3:
        raise InvalidIdentifier(
            f"chainId must be a CAIP-10 account id like {_EXAMPLE} (namespace:reference:address)"
        )
    namespace, reference, address = parts
    return AccountId(namespace=namespace, reference=reference, address=address)


def validate_external_id(value: str) -> str:
    """Checks a partner's own user id: 1-128 printable characters, returned unchanged.

    Printable is Python's definition (no control, format, surrogate or separator characters
    other than the ASCII space), so the id is safe in logs, URLs' query values and JSON.
    """
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier("externalId is required: 1-128 printable characters")
    if len(value) > MAX_EXTERNAL_ID_LENGTH:
        raise InvalidIdentifier(
            f"externalId is too long: at most {MAX_EXTERNAL_ID_LENGTH} characters, got {len(value)}"
        )
    if not value.isprintable():
        raise InvalidIdentifier("externalId must contain only printable characters")
    return value


def _check_evm_reference(reference: str) -> None:
    if not _EVM_REFERENCE.fullmatch(reference) or int(reference) > MAX_EVM_CHAIN_ID:
        raise InvalidIdentifier(
            "chainId reference must be a decimal EIP-155 chain id without leading zeros "
            f"(1 to {MAX_EVM_CHAIN_ID}), e.g. eip155:1:0x..."
        )


def _evm_checksum_address(address: str) -> str:
    if not _EVM_ADDRESS.fullmatch(address):
        raise InvalidIdentifier(
            "chainId address must be 0x followed by 40 hex digits for eip155 accounts"
        )
    digits = address[2:]
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if mixed_case and not is_checksum_address(address):
        raise InvalidIdentifier(
            "chainId address fails its EIP-55 checksum (mixed-case addresses must be "
            "checksummed; send it all lowercase to skip the check)"
        )
    return str(to_checksum_address(address))


def parse_id(value: str, not_found: type[Exception]) -> UUID:
    """Ids that are not UUIDs cannot name anything: answer as for an unknown id."""
    try:
        return UUID(value)
    except ValueError:
        raise not_found() from None
