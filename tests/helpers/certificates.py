"""Test certificate authorities and certificates, made with `cryptography`: the server's
TLS certificate, internal services' client certificates (URI or DNS SANs), partners'
client certificates, and the bad ones (another CA, expired)."""

from __future__ import annotations

import ipaddress
import pathlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A key and its certificate (PEM), and where both were written."""

    key_pem: bytes
    cert_pem: bytes
    key_file: pathlib.Path
    cert_file: pathlib.Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class TestCA:
    """A self-signed CA that issues leaf certificates into `folder`."""

    __test__ = False  # not a pytest test class

    def __init__(self, folder: pathlib.Path, name: str = "customers test CA") -> None:
        self.folder = folder
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.cert_file = folder / f"{_slug(name)}.pem"
        self.cert_file.write_bytes(self.cert_pem)

    def issue(
        self,
        name: str,
        *,
        uris: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        server: bool = False,
        expired: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        not_after = now - timedelta(hours=1) if expired else now + timedelta(days=7)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=2))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(
            key_pem=_key_pem(key),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_file=self.folder / f"{_slug(name)}.key",
            cert_file=self.folder / f"{_slug(name)}.crt",
        )
        issued.key_file.write_bytes(issued.key_pem)
        issued.cert_file.write_bytes(issued.cert_pem)
        return issued

    def server_certificate(self) -> Issued:
        """The gRPC port's own certificate, for 127.0.0.1 and localhost."""
        return self.issue("customers-server", dns=("localhost",), ips=("127.0.0.1",), server=True)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def client_credentials(ca: TestCA, client: Issued | None) -> grpc.ChannelCredentials:
    """TLS trusting `ca` for the server, presenting `client`'s certificate (or none)."""
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.cert_pem)
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem,
        private_key=client.key_pem,
        certificate_chain=client.cert_pem,
    )
