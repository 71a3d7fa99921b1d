"""Whose client certificate a call carries: the identities (URI and DNS SANs) a service
principal is looked up by.

With gRPC TLS, native calls reach a worker over Envoy's mutual-TLS hop (gateway/tls.py):
the TLS peer is Envoy, and the client's own certificate, verified by Envoy in the public
handshake, arrives as `x-forwarded-client-cert` (XFCC), which Envoy sets itself and removes
from what clients send (SANITIZE_SET). That header is believed only when the verified peer
certificate of this very connection names the gateway (CUSTOMERS_GATEWAY_IDENTITY). On any
other connection (a direct caller of the internal port, with a certificate of its own) the
peer certificate is the caller's, and an XFCC header it sent is ignored. A call over the
gateway's Unix socket (REST) or a plain port has no certificate at all.
"""

from __future__ import annotations

from server.interceptors.handlers import Context

XFCC = "x-forwarded-client-cert"
_IDENTITY_KEYS = ("URI", "DNS")


def peer_identities(context: Context) -> list[str]:
    """The SANs (URI and DNS) of the certificate this connection's TLS handshake verified;
    empty for a call that is not over TLS or presented none."""
    auth: dict[str, list[bytes]] = context.auth_context() or {}
    if auth.get("transport_security_type") != [b"ssl"]:
        return []
    return [value.decode() for value in auth.get("x509_subject_alternative_name", ())]


def caller_identities(context: Context, headers: dict[str, str], gateway: str) -> list[str]:
    """The identities of the calling client's certificate (see the module docstring)."""
    peer = peer_identities(context)
    if gateway in peer:
        return forwarded_identities(headers.get(XFCC, ""))
    return peer


def forwarded_identities(header: str) -> list[str]:
    """URI and DNS values of an XFCC header Envoy set, in order. Envoy's SANITIZE_SET
    writes exactly one element; anything else (none, a chain of several, a value that does
    not parse) names nobody."""
    elements = _split(header, ",")
    if len(elements) != 1:
        return []
    identities: list[str] = []
    for pair in _split(elements[0], ";"):
        key, sep, value = pair.partition("=")
        if not sep:
            return []
        if key in _IDENTITY_KEYS:
            identities.append(_unquote(value))
    return identities


def _split(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside double quotes (XFCC quotes values holding ',', ';'
    or '='; a backslash escapes a quote). Empty text: no parts."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if text:
        parts.append("".join(current))
    return [part.strip() for part in parts]


def _unquote(value: str) -> str:
    # Envoy URL-encodes only Cert and Chain; URI and DNS values are the SANs as they are,
    # quoted when they hold a separator.
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value
