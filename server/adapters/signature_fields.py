"""Parsing `Signature-Input`, `Signature` and `Content-Digest` (RFC 8941 structured fields)
far enough to apply the contract's policy before any crypto; checking the digest.

Every failure is SignatureRejected with the reason and message the contract names
(adapters/http_signatures.py lists the checks in order).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, NoReturn

import http_sf

from server.services.ports import (
    DIGEST_MALFORMED,
    DIGEST_MISMATCH,
    DIGEST_UNSUPPORTED,
    SIGNATURE_MALFORMED,
    SignatureRejected,
)

# Bounds on attacker-controlled input before it reaches a parser or the nonce store.
MAX_SIGNATURE_FIELD_CHARS: Final = 4096
MAX_NONCE_CHARS: Final = 128

_SIGNATURE_PARAMETERS: Final = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})
_DIGESTS: Final[Mapping[str, Callable[[bytes], hashlib._Hash]]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}

# The one shape signers send (the SDK, the library, code written from the RFC): a single
# label; plain quoted component names; Integer and String parameters; padded base64. Parsed
# with one regular expression instead of http_sf's character-by-character parser (on the hot
# path it cost a quarter as much as an Ed25519 verify). The result is what http_sf.parse
# returns for the same text; any other spelling is left to http_sf, which then decides and
# words the refusal. tests/unit/test_signature_base.py holds the two to each other.
_KEY = r"[a-z*][a-z0-9_\-.*]*"
_STRING = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\\"])*"'
_INTEGER = r"-?[0-9]{1,15}"
_PLAIN_INNER_LIST: Final = re.compile(
    rf"({_KEY})=\(((?:{_STRING}(?: {_STRING})*)?)\)((?:;{_KEY}=(?:{_INTEGER}|{_STRING}))*)"
)
_ONE_STRING: Final = re.compile(_STRING)
_ONE_PARAMETER: Final = re.compile(rf";({_KEY})=({_INTEGER}|{_STRING})")
_PLAIN_BYTE_SEQUENCE: Final = re.compile(rf"({_KEY})=:([A-Za-z0-9+/]*={{0,2}}):")
_ESCAPE: Final = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    label: str
    components: tuple[tuple[str, bool], ...]  # (name, has parameters), in signed order
    params: Mapping[str, int | str]  # the signature parameters, in received order
    key_id: str
    created: int
    expires: int | None
    alg: str | None
    nonce: str | None
    signature: bytes


def reject(reason: str, message: str) -> NoReturn:
    raise SignatureRejected(reason, message)


def _reject_duplicate(name: str, context: str) -> None:
    if context == "dictionary":
        raise ValueError(f"duplicate member '{name}'")


def _sf_unquote(quoted: str) -> str:
    inner = quoted[1:-1]
    return _ESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def _plain_inner_list(value: str) -> dict[str, object] | None:
    """`label=("a" "b");k=1;k2="v"` as http_sf.parse returns it; None for anything else."""
    match = _PLAIN_INNER_LIST.fullmatch(value)
    if match is None:
        return None
    label, items, params = match.groups()
    names: list[tuple[str, dict[str, object]]] = [
        (_sf_unquote(name), {}) for name in _ONE_STRING.findall(items)
    ]
    parameters: dict[str, object] = {}
    for key, raw in _ONE_PARAMETER.findall(params):
        # A repeated key keeps its first place and its last value, as in http_sf.
        parameters[key] = _sf_unquote(raw) if raw.startswith('"') else int(raw)
    return {label: (names, parameters)}


def _plain_byte_sequence(value: str) -> dict[str, object] | None:
    """`label=:base64:` as http_sf.parse returns it; None for anything else."""
    match = _PLAIN_BYTE_SEQUENCE.fullmatch(value)
    if match is None or len(match.group(2)) % 4:
        return None
    try:
        decoded = base64.b64decode(match.group(2), validate=True)
    except binascii.Error:
        return None
    return {match.group(1): (decoded, {})}


def _parse_dictionary(
    value: str,
    field_name: str,
    reason: str,
    plain: Callable[[str], dict[str, object] | None] | None = None,
) -> dict[str, object]:
    if len(value) > MAX_SIGNATURE_FIELD_CHARS:
        reject(reason, f"{field_name} header is too long ({len(value)} characters)")
    if plain is not None and (parsed_plainly := plain(value)) is not None:
        return parsed_plainly
    try:
        parsed = http_sf.parse(
            value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate
        )
    except (ValueError, TypeError) as exc:  # StructuredFieldError and UnicodeError included
        reject(reason, f"{field_name} header is not a valid structured dictionary: {exc}")
    if not isinstance(parsed, dict):
        reject(reason, f"{field_name} header is not a structured dictionary")
    return dict(parsed)


def parse_signature_fields(signature_input: str, signature: str) -> ParsedSignature:
    """Parse the two fields far enough to apply the contract's policy before any crypto."""
    inputs = _parse_dictionary(
        signature_input, "Signature-Input", SIGNATURE_MALFORMED, _plain_inner_list
    )
    signatures = _parse_dictionary(
        signature, "Signature", SIGNATURE_MALFORMED, _plain_byte_sequence
    )
    if len(inputs) != 1 or len(signatures) != 1:
        reject(
            SIGNATURE_MALFORMED,
            f"Exactly one signature is accepted; Signature-Input has {len(inputs)} labels "
            f"and Signature has {len(signatures)}",
        )
    (label, member), (signature_label, signature_member) = (
        next(iter(inputs.items())),
        next(iter(signatures.items())),
    )
    if label != signature_label:
        reject(
            SIGNATURE_MALFORMED,
            f"Signature label '{signature_label}' does not match Signature-Input label '{label}'",
        )
    if not (isinstance(member, tuple) and len(member) == 2 and isinstance(member[0], list)):
        reject(SIGNATURE_MALFORMED, f"Signature-Input '{label}' is not an inner list")
    items, params = member
    components: list[tuple[str, bool]] = []
    for item in items:
        name, item_params = item
        if not isinstance(name, str):
            reject(SIGNATURE_MALFORMED, "Covered component identifiers must be quoted strings")
        components.append((name, bool(item_params)))

    unknown = sorted(set(params) - _SIGNATURE_PARAMETERS)
    if unknown:
        reject(SIGNATURE_MALFORMED, f"Unsupported signature parameter '{unknown[0][:40]}'")
    key_id = params.get("keyid")
    if key_id is None:
        reject(SIGNATURE_MALFORMED, "Signature parameter 'keyid' is required")
    created = params.get("created")
    if created is None:
        reject(SIGNATURE_MALFORMED, "Signature parameter 'created' is required")
    expires = params.get("expires")
    alg = params.get("alg")
    nonce = params.get("nonce")
    for name, value, kind in (
        ("keyid", key_id, str),
        ("created", created, int),
        ("expires", expires, int),
        ("alg", alg, str),
        ("nonce", nonce, str),
        ("tag", params.get("tag"), str),
    ):
        # `type(...) is` so that a Boolean (an int in Python) is not taken for an Integer.
        if value is not None and type(value) is not kind:
            expected = "an integer" if kind is int else "a quoted string"
            reject(SIGNATURE_MALFORMED, f"Signature parameter '{name}' must be {expected}")
    assert isinstance(key_id, str) and isinstance(created, int)
    if isinstance(nonce, str) and not 0 < len(nonce) <= MAX_NONCE_CHARS:
        reject(SIGNATURE_MALFORMED, f"Signature nonce must be 1 to {MAX_NONCE_CHARS} characters")

    if not (isinstance(signature_member, tuple) and isinstance(signature_member[0], bytes)):
        reject(SIGNATURE_MALFORMED, f"Signature '{label}' is not a byte sequence (:base64:)")
    return ParsedSignature(
        label=label,
        components=tuple(components),
        params=params,
        key_id=key_id,
        created=created,
        expires=expires if isinstance(expires, int) else None,
        alg=alg if isinstance(alg, str) else None,
        nonce=nonce if isinstance(nonce, str) else None,
        signature=signature_member[0],
    )


def check_content_digest(value: str, body: bytes) -> None:
    """RFC 9530 against the body bytes as received.

    Not the library's ContentDigest: it rejects a field that also lists an algorithm it does
    not know (RFC 9530 lets a recipient ignore those) and reports every failure as the same
    InvalidSignature, where the contract wants missing / unsupported / mismatch told apart.
    """
    members = _parse_dictionary(value, "Content-Digest", DIGEST_MALFORMED, _plain_byte_sequence)
    supported = [(name, member) for name, member in members.items() if name in _DIGESTS]
    if not supported:
        listed = ", ".join(sorted(members)[:5]) or "none"
        reject(
            DIGEST_UNSUPPORTED,
            f"Content-Digest has no supported algorithm (got {listed}); use sha-256 or sha-512",
        )
    for name, member in supported:
        digest = member[0] if isinstance(member, tuple) else None
        if not isinstance(digest, bytes):
            reject(DIGEST_MALFORMED, f"Content-Digest {name} is not a byte sequence (:base64:)")
        if not hmac.compare_digest(digest, _DIGESTS[name](body).digest()):
            reject(DIGEST_MISMATCH, f"Content-Digest {name} does not match the request body")
