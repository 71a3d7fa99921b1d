"""CAIP-10 chainIds and externalIds: what partners may send and how it is normalised."""

from __future__ import annotations

import pytest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.identifiers import (
    AccountId,
    InvalidIdentifier,
    parse_account_id,
    validate_external_id,
)

SPEC_EXAMPLE = "eip155:1:0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb"
SPEC_ADDRESS = "0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb"
SOLANA = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:7S3P4HxJpyyigGzodYwHtCxZyUQe9JiBMHyRWXArAaKv"

hex_addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


def test_the_spec_example_is_a_valid_checksummed_account_id() -> None:
    account = parse_account_id(SPEC_EXAMPLE)

    assert account == AccountId("eip155", "1", SPEC_ADDRESS)
    assert str(account) == SPEC_EXAMPLE
    assert account.is_evm
    assert account.chain_id == 1
    assert account.checksum_address == SPEC_ADDRESS


def test_lowercase_address_is_accepted_and_returned_in_checksum_form() -> None:
    account = parse_account_id(SPEC_EXAMPLE.lower())

    assert str(account) == SPEC_EXAMPLE


def test_uppercase_address_is_accepted_without_checksum() -> None:
    account = parse_account_id("eip155:1:0x" + SPEC_ADDRESS[2:].upper())

    assert account.address == SPEC_ADDRESS


def test_mixed_case_address_with_bad_checksum_is_rejected() -> None:
    bad = SPEC_EXAMPLE.replace("0xab16a96D", "0xAb16a96D")

    with pytest.raises(InvalidIdentifier, match="chainId address fails its EIP-55 checksum"):
        parse_account_id(bad)


def test_same_wallet_in_different_letter_case_has_one_canonical_key() -> None:
    keys = {
        parse_account_id(SPEC_EXAMPLE).canonical,
        parse_account_id(SPEC_EXAMPLE.lower()).canonical,
        parse_account_id("eip155:1:0x" + SPEC_ADDRESS[2:].upper()).canonical,
    }

    assert keys == {SPEC_EXAMPLE.lower()}


def test_same_address_on_another_chain_is_another_account() -> None:
    assert (
        parse_account_id(SPEC_EXAMPLE).canonical
        != parse_account_id(SPEC_EXAMPLE.replace(":1:", ":137:")).canonical
    )


def test_account_id_parse_is_the_same_as_parse_account_id() -> None:
    assert AccountId.parse(SPEC_EXAMPLE) == parse_account_id(SPEC_EXAMPLE)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "chainId is required"),
        (
            "0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdb",
            "CAIP-10 account id like eip155:1:0x",
        ),
        ("eip155:1", "CAIP-10 account id like"),
        ("eip155:1:0xab:extra", "CAIP-10 account id like"),
        ("EIP155:1:" + SPEC_ADDRESS, "namespace"),
        ("ab:1:" + SPEC_ADDRESS, "namespace"),
        ("eip155::" + SPEC_ADDRESS, "reference"),
        ("eip155:" + "1" * 33 + ":" + SPEC_ADDRESS, "reference"),
        ("eip155:01:" + SPEC_ADDRESS, "without leading zeros"),
        ("eip155:0:" + SPEC_ADDRESS, "without leading zeros"),
        ("eip155:mainnet:" + SPEC_ADDRESS, "decimal EIP-155 chain id"),
        (f"eip155:{2**63}:" + SPEC_ADDRESS, "decimal EIP-155 chain id"),
        ("eip155:1:", "address must be 1-128"),
        ("eip155:1:0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcd", "0x followed by 40 hex"),
        (
            "eip155:1:0xab16a96D359eC26a11e2C2b3d8f8B8942d5Bfcdbb",
            "0x followed by 40 hex",
        ),
        (
            "eip155:1:0Xab16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb",
            "0x followed by 40 hex",
        ),
        (
            "eip155:1:0xzb16a96d359ec26a11e2c2b3d8f8b8942d5bfcdb",
            "0x followed by 40 hex",
        ),
        (" " + SPEC_EXAMPLE, "namespace"),
        (SPEC_EXAMPLE + "\n", "address must be 1-128"),
        ("eip155:1:" + "a" * 200, "too long"),
    ],
)
def test_malformed_chain_id_is_rejected_with_a_message_naming_the_problem(
    value: str, problem: str
) -> None:
    with pytest.raises(InvalidIdentifier) as raised:
        parse_account_id(value)

    assert problem in str(raised.value)
    assert str(raised.value).startswith("chainId")


def test_eip155_chain_id_up_to_int64_max_is_accepted() -> None:
    account = parse_account_id(f"eip155:{2**63 - 1}:{SPEC_ADDRESS}")

    assert account.chain_id == 2**63 - 1


def test_other_namespaces_are_stored_verbatim_but_are_not_evm() -> None:
    account = parse_account_id(SOLANA)

    assert str(account) == SOLANA
    assert account.canonical == SOLANA
    assert not account.is_evm


def test_non_evm_account_has_no_checksum_address_or_chain_id() -> None:
    account = parse_account_id(SOLANA)

    with pytest.raises(InvalidIdentifier, match="only for eip155"):
        _ = account.checksum_address
    with pytest.raises(InvalidIdentifier, match="only for eip155"):
        _ = account.chain_id


def test_constructing_an_account_id_directly_validates_and_normalises_it() -> None:
    assert AccountId("eip155", "1", SPEC_ADDRESS.lower()).address == SPEC_ADDRESS
    with pytest.raises(InvalidIdentifier):
        AccountId("eip155", "1", "0x1234")


@settings(max_examples=50)
@given(hex_addresses, st.integers(min_value=1, max_value=2**63 - 1))
def test_any_lowercase_evm_address_parses_to_its_checksum_form(address: str, chain: int) -> None:
    account = parse_account_id(f"eip155:{chain}:{address}")

    assert account.address == to_checksum_address(address)
    assert account.canonical == f"eip155:{chain}:{address}"
    assert parse_account_id(str(account)) == account


@settings(max_examples=50)
@given(hex_addresses, st.data())
def test_flipping_one_letters_case_in_a_checksummed_address_breaks_it(
    address: str, data: st.DataObject
) -> None:
    checksummed = to_checksum_address(address)
    letters = [i for i, c in enumerate(checksummed) if i >= 2 and c.isalpha()]
    if not letters:
        return
    i = data.draw(st.sampled_from(letters))
    flipped = checksummed[:i] + checksummed[i].swapcase() + checksummed[i + 1 :]
    digits = flipped[2:]
    if digits in (digits.lower(), digits.upper()):
        return  # all one case again: accepted without a checksum, by design

    with pytest.raises(InvalidIdentifier, match="EIP-55"):
        parse_account_id(f"eip155:1:{flipped}")


@settings(max_examples=50)
@given(st.text(max_size=200))
def test_arbitrary_text_either_parses_or_raises_invalid_identifier(value: str) -> None:
    try:
        account = parse_account_id(value)
    except InvalidIdentifier:
        return
    assert parse_account_id(str(account)) == account


@pytest.mark.parametrize(
    "value", ["u-42", "a", "Zoë 42", "x" * 128, "ユーザー/7", "id with spaces"]
)
def test_printable_external_id_of_1_to_128_characters_is_accepted(value: str) -> None:
    assert validate_external_id(value) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "externalId is required"),
        ("x" * 129, "externalId is too long"),
        ("tab\there", "externalId must contain only printable"),
        ("new\nline", "externalId must contain only printable"),
        ("nul\x00", "externalId must contain only printable"),
        ("zero\u200bwidth", "externalId must contain only printable"),
        ("lone\ud800surrogate", "externalId must contain only printable"),
    ],
)
def test_bad_external_id_is_rejected_with_a_message_naming_external_id(
    value: str, problem: str
) -> None:
    with pytest.raises(InvalidIdentifier, match=problem):
        validate_external_id(value)
