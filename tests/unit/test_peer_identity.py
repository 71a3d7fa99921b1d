"""The client identity Envoy forwards in x-forwarded-client-cert (server/interceptors/
peer_identity.py): URI and DNS SANs of exactly one element, as SANITIZE_SET writes it."""

from __future__ import annotations

import pytest

from server.interceptors.peer_identity import caller_identities, forwarded_identities

GATEWAY = "spiffe://customers.internal/gateway"


class _Context:
    def __init__(self, sans: list[str] | None) -> None:
        self._sans = sans

    def auth_context(self) -> dict[str, list[bytes]]:
        if self._sans is None:
            return {}
        return {
            "transport_security_type": [b"ssl"],
            "x509_subject_alternative_name": [s.encode() for s in self._sans],
        }


def test_uri_and_dns_sans_of_envoys_element_are_read_in_order() -> None:
    header = (
        'By=spiffe://edge;Hash=4a2b;Subject="CN=a;b,c";'
        "URI=spiffe://customers.internal/compliance;DNS=one.example;DNS=two.example"
    )
    assert forwarded_identities(header) == [
        "spiffe://customers.internal/compliance",
        "one.example",
        "two.example",
    ]


@pytest.mark.parametrize(
    "header",
    [
        "",  # no client certificate
        "Hash=1;URI=spiffe://a,Hash=2;URI=spiffe://b",  # a chain: Envoy's SANITIZE_SET never
        "Hash=1;URI",  # a pair without a value
        "Hash=1",  # a certificate without URI or DNS SANs
    ],
)
def test_anything_but_one_well_formed_element_names_nobody(header: str) -> None:
    assert forwarded_identities(header) == []


def test_a_quoted_value_is_unquoted() -> None:
    assert forwarded_identities('Hash=1;URI="spiffe://x/a;b"') == ["spiffe://x/a;b"]


def test_the_header_counts_only_on_envoys_own_connection() -> None:
    forwarded = {"x-forwarded-client-cert": "Hash=1;URI=spiffe://customers.internal/ops"}
    via_envoy = caller_identities(_Context([GATEWAY]), forwarded, GATEWAY)
    assert via_envoy == ["spiffe://customers.internal/ops"]
    # Envoy without a forwarded certificate: nobody, never Envoy's own identity.
    assert caller_identities(_Context([GATEWAY]), {}, GATEWAY) == []
    # Someone else's certificate: its own SANs, the header ignored.
    assert caller_identities(_Context(["acme.example"]), forwarded, GATEWAY) == ["acme.example"]
    # No TLS at all (the gateway socket, a plain port): nobody.
    assert caller_identities(_Context(None), forwarded, GATEWAY) == []
