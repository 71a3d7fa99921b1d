"""RFC 9421 signatures built by hand, with `cryptography` only (not the SDK, not its library).

Two uses: requests the SDK never produces (fewer covered components, a wrong `alg`, a DER
ECDSA signature, two labels), and an independent check that the server verifies what the RFC
says rather than one library's reading of it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from client.signing import PrivateSigningKey

LABEL = "sig1"
FULL_COVERAGE = ("@method", "@authority", "@path", "authorization")


def content_digest(body: bytes) -> str:
    """RFC 9530 `sha-256=:<base64>:`."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode('ascii')}:"


def _sf_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def signature_params(components: Sequence[str], params: Mapping[str, str | int]) -> str:
    """The inner list with its parameters, in the given order (RFC 9421 section 2.3)."""
    inner = " ".join(_sf_string(name) for name in components)
    rendered = "".join(
        f";{name}={value}" if isinstance(value, int) else f";{name}={_sf_string(value)}"
        for name, value in params.items()
    )
    return f"({inner}){rendered}"


def hand_sign(
    key: PrivateSigningKey,
    *,
    method: str,
    authority: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    components: Sequence[str],
    params: Mapping[str, str | int],
    der: bool = False,
) -> dict[str, str]:
    """`Signature-Input` and `Signature` over exactly `components` (RFC 9421 section 2.5).

    `der=True` signs ECDSA in DER instead of the raw r||s that RFC 9421 requires.
    """
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    derived = {
        "@method": method.upper(),
        "@authority": authority,
        "@path": path,
        "@query": f"?{query}",
    }
    listed = signature_params(components, params)
    lines = [f'"{name}": {derived.get(name, lowered.get(name, ""))}' for name in components]
    lines.append(f'"@signature-params": {listed}')
    base = "\n".join(lines).encode("utf-8")
    private = key.private_key
    if isinstance(private, ed25519.Ed25519PrivateKey):
        signature = private.sign(base)
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        signature = private.sign(base, ec.ECDSA(hashes.SHA384()))
        if not der:
            r, s = decode_dss_signature(signature)
            signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    encoded = base64.b64encode(signature).decode("ascii")
    return {"Signature-Input": f"{LABEL}={listed}", "Signature": f"{LABEL}=:{encoded}:"}
