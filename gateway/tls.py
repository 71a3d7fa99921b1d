"""TLS at the edge: HTTPS on the REST listener, and the public native gRPC listener.

- REST: with a certificate, the REST listener serves HTTPS and offers HTTP/2 and HTTP/1.1 by
  ALPN (the connection manager's AUTO codec follows what was negotiated). Without one it
  stays plain HTTP (development).
- Native gRPC (`GrpcEdge`): Envoy terminates the public gRPC port's TLS. A client
  certificate is requested but not required: one that is presented must chain to the
  client CA and be valid (a foreign or expired one fails the handshake), and none at all is
  allowed (a partner: token and signature, as always). The verified certificate's URI and
  DNS SANs travel to the server in `x-forwarded-client-cert`, which Envoy sets itself
  (SANITIZE_SET: whatever a client sent under that name is removed first). The hop to the
  workers is mutual TLS again: Envoy presents its own certificate, which is the only one
  whose forwarded identity the server believes, and accepts only the server's own
  certificate (pinned by its SHA-256, so no CA for the hop is needed on Envoy's side).
  Transcoding never happens here: this listener is gRPC in, gRPC out.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

Json = dict[str, Any]

GRPC_CLUSTER = "customers_grpc_tls"
XFCC = "x-forwarded-client-cert"
# What only request.lua may write on the REST side; a gRPC client's own are removed too
# (the server ignores them on TCP anyway: two locks).
GATEWAY_HEADERS = (
    "x-gateway-method",
    "x-gateway-authority",
    "x-gateway-target",
    "x-gateway-body",
)

_API = "type.googleapis.com/envoy."
_TLS_SOCKET = "envoy.transport_sockets.tls"
_DOWNSTREAM = _API + "extensions.transport_sockets.tls.v3.DownstreamTlsContext"
_UPSTREAM = _API + "extensions.transport_sockets.tls.v3.UpstreamTlsContext"


@dataclass(frozen=True)
class Certificate:
    """A certificate chain and its private key, as PEM files Envoy reads at start."""

    cert_file: str
    key_file: str

    def tls_certificate(self) -> Json:
        return {
            "certificate_chain": {"filename": _absolute(self.cert_file)},
            "private_key": {"filename": _absolute(self.key_file)},
        }


@dataclass(frozen=True)
class GrpcEdge:
    """The public native gRPC listener and Envoy's mutual-TLS hop to the workers."""

    port: int
    certificate: Certificate  # what gRPC clients see (CUSTOMERS_GRPC_TLS_*)
    client_ca_file: str  # presented client certificates must chain to these CAs
    hop: Certificate  # Envoy's own client certificate for the workers' internal ports
    backends: Sequence[tuple[str, int]]  # the workers' internal mTLS ports
    backend_sha256: str  # hex SHA-256 of the workers' certificate (the pin)


def certificate_sha256(cert_file: str) -> str:
    """Hex SHA-256 of the DER of the first certificate in a PEM file (Envoy's
    verify_certificate_hash form)."""
    leaf = x509.load_pem_x509_certificate(pathlib.Path(cert_file).read_bytes())
    return leaf.fingerprint(hashes.SHA256()).hex()


def https_transport_socket(certificate: Certificate) -> Json:
    """The REST listener's HTTPS: HTTP/2 and HTTP/1.1 by ALPN, no client certificate."""
    return {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": _DOWNSTREAM,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [certificate.tls_certificate()],
            },
        },
    }


def grpc_transport_socket(edge: GrpcEdge) -> Json:
    """The public gRPC port: TLS, a client certificate optional but verified if presented."""
    return {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": _DOWNSTREAM,
            "require_client_certificate": False,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [edge.certificate.tls_certificate()],
                # Chain and validity are checked in the handshake; a certificate that fails
                # is refused there, not passed on as "no certificate".
                "validation_context": {"trusted_ca": {"filename": _absolute(edge.client_ca_file)}},
            },
        },
    }


def hop_transport_socket(edge: GrpcEdge) -> Json:
    """Envoy -> worker: Envoy's certificate out, only the workers' certificate accepted."""
    return {
        "name": _TLS_SOCKET,
        "typed_config": {
            "@type": _UPSTREAM,
            "common_tls_context": {
                "alpn_protocols": ["h2"],  # grpc-core's TLS insists on it
                "tls_certificates": [edge.hop.tls_certificate()],
                "validation_context": {"verify_certificate_hash": [edge.backend_sha256]},
            },
        },
    }


def grpc_connection_manager(
    *, hcm_type: str, router: Json, idle_timeout: str, access_log: Json | None
) -> Json:
    """gRPC in, gRPC out: every call to the workers, the client certificate's identity set
    by Envoy alone. The internal services are served here (their callers are known by that
    certificate); anything that is not gRPC finds no route (404)."""
    hcm: Json = {
        "@type": hcm_type,
        "stat_prefix": "grpc",
        "codec_type": "HTTP2",
        "use_remote_address": True,
        "generate_request_id": True,
        "preserve_external_request_id": False,
        "forward_client_cert_details": "SANITIZE_SET",
        "set_current_client_cert_details": {"uri": True, "dns": True},
        "stream_idle_timeout": idle_timeout,
        "request_headers_timeout": "10s",
        "route_config": {
            "name": "grpc",
            "request_headers_to_remove": list(GATEWAY_HEADERS),
            "virtual_hosts": [
                {
                    "name": "grpc",
                    "domains": ["*"],
                    "routes": [
                        {
                            "name": "grpc",
                            "match": {"prefix": "/", "grpc": {}},
                            # Streams stay open (no deadline); a silent one meets the idle
                            # timeout, as on the REST side.
                            "route": {
                                "cluster": GRPC_CLUSTER,
                                "timeout": "0s",
                                "idle_timeout": idle_timeout,
                            },
                        }
                    ],
                }
            ],
        },
        "http_filters": [router],
    }
    if access_log is not None:
        hcm["access_log"] = [access_log]
    return hcm


def _absolute(path: str) -> str:
    # Envoy resolves relative paths against its own working directory, not ours.
    return str(pathlib.Path(path).resolve())
