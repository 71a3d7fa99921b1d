"""Settings: read once from CUSTOMERS_* environment variables, validated, passed down."""

from __future__ import annotations

import ipaddress
import json
import math
import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.domain import principals
from server.domain.limits import Quota
from server.domain.webhooks import MAX_SUBSCRIPTIONS

# Known to everyone, so only good for a local sandbox: production refuses to start with it.
DEVELOPMENT_KYC_WEBHOOK_SECRET = "sandbox-kyc-webhook-secret-not-for-production"


class Settings(BaseSettings):
    """Everything an operator can set. Defaults are safe for a local sandbox."""

    model_config = SettingsConfigDict(env_prefix="CUSTOMERS_", env_file=None, extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/customers.db"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    # Server worker processes on this machine, each with its own event loop: they share the
    # gRPC port (SO_REUSEPORT) and each has its own gateway socket for Envoy.
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)
    # Where the workers' gateway sockets live (worker-0.sock, ...): a directory only the
    # service's user may enter, because a call over such a socket is trusted to come through
    # the gateway (docs/DECISIONS.md).
    gateway_socket_dir: str = "./var/run"
    http_port: int = Field(default=8080, ge=0, le=65535)
    # Where Envoy's REST and public gRPC listeners bind (its admin stays on loopback):
    # 0.0.0.0 (or a host address) to serve other machines, as in production.
    envoy_bind_address: str = "127.0.0.1"
    envoy_admin_port: int = Field(default=9901, ge=0, le=65535)
    public_url: str = "http://localhost:8080"
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    metrics_port: int = Field(default=9464, ge=0, le=65535)  # 0: no metrics endpoint
    screening_deny_list: list[str] = Field(default_factory=list)  # sandbox screener
    # The KYC partner (server/bootstrap.py picks the adapter; docs/KYC.md) and the secret its
    # callbacks are signed with. Only the built-in sandbox partner exists so far.
    kyc_provider: Literal["sandbox"] = "sandbox"
    kyc_webhook_secret: SecretStr = SecretStr(DEVELOPMENT_KYC_WEBHOOK_SECRET)
    # The sandbox KYC partner takes this long to open a session, to try a slow partner.
    sandbox_kyc_latency_seconds: float = Field(default=0.0, ge=0, le=60)
    # Idle WatchCustomers streams get a heartbeat this often (Envoy's idle timeout is 300 s).
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=120)
    # Webhook deliveries: jittered exponential backoff from `base` until `max_age` after the
    # event, then failed; each POST has `timeout` seconds in all (tests shorten all three).
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    webhook_retry_max_age_seconds: float = Field(default=86400.0, gt=0, le=7 * 86400)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # A subscription whose every attempt failed for this long (since its last success) is
    # disabled, and a webhook.disabled event recorded; default 3 days.
    webhook_disable_after_seconds: float = Field(default=3 * 86400.0, gt=0, le=90 * 86400)
    # Retention (server/store/retention.py): events older than this are pruned once the
    # webhook relay has passed them; the contract promises partners at least 30 days.
    event_retention_days: int = Field(default=30, ge=30, le=3650)
    # Delivered or failed webhook deliveries, counted from their last attempt.
    delivery_retention_days: int = Field(default=7, ge=1, le=3650)
    # How often each worker runs a pruning round (the first one an interval after start).
    retention_interval_seconds: float = Field(default=3600.0, gt=0, le=86400)
    # Per-partner limits (SPEC section 14; docs/DECISIONS.md "Limits"). The request rate is
    # for the whole machine: each of its CUSTOMERS_WORKERS processes keeps its own buckets
    # and takes its share. The default is a guard against a runaway client, above what one
    # machine serves; the production profile (README) sets a partner's real quota. 0: off.
    rate_limit_per_second: float = Field(default=5000.0, ge=0, le=1_000_000)
    # Requests a partner may send at once after a quiet spell; unset: one second's worth.
    rate_limit_burst: int | None = Field(default=None, ge=1, le=10_000_000)
    # Open WatchCustomers streams per partner, in each worker process; 0: no cap.
    max_streams_per_partner: int = Field(default=5000, ge=0, le=1_000_000)
    # Live webhook subscriptions per partner, counted in the database (every replica).
    max_webhooks_per_partner: int = Field(default=MAX_SUBSCRIPTIONS, ge=1, le=10_000)
    log_level: str = "INFO"
    log_json: bool = True
    # HTTPS on Envoy's REST listener (HTTP/2 and HTTP/1.1 by ALPN): both or neither.
    # Unset: plain HTTP (development).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # TLS on the public gRPC port, client certificates from this CA (docs/OPERATOR.md): all
    # three or none. Unset: the workers serve plain gRPC on CUSTOMERS_GRPC_PORT themselves
    # (development). Set: Envoy serves the public port (client certificates optional,
    # verified when presented) and reaches the workers on their internal mTLS ports,
    # CUSTOMERS_GRPC_INTERNAL_PORT + the worker's index, presenting its own certificate
    # (CUSTOMERS_GATEWAY_TLS_*, whose URI or DNS SAN is CUSTOMERS_GATEWAY_IDENTITY).
    grpc_tls_cert_file: str | None = None
    grpc_tls_key_file: str | None = None
    grpc_client_ca_file: str | None = None
    grpc_internal_port: int = Field(default=50061, ge=0, le=65535)
    gateway_tls_cert_file: str | None = None
    gateway_tls_key_file: str | None = None
    gateway_identity: str = "spiffe://customers.internal/gateway"
    # The service principals file (SPEC section 13); needs the TLS settings above.
    internal_services: str | None = None
    _principals: principals.Principals = PrivateAttr(default_factory=principals.Principals)

    @model_validator(mode="after")
    def _tls_is_whole(self) -> Settings:
        _all_or_none(
            {
                "CUSTOMERS_TLS_CERT_FILE": self.tls_cert_file,
                "CUSTOMERS_TLS_KEY_FILE": self.tls_key_file,
            }
        )
        _all_or_none(
            {
                "CUSTOMERS_GATEWAY_TLS_CERT_FILE": self.gateway_tls_cert_file,
                "CUSTOMERS_GATEWAY_TLS_KEY_FILE": self.gateway_tls_key_file,
            }
        )
        given = _all_or_none(
            {
                "CUSTOMERS_GRPC_TLS_CERT_FILE": self.grpc_tls_cert_file,
                "CUSTOMERS_GRPC_TLS_KEY_FILE": self.grpc_tls_key_file,
                "CUSTOMERS_GRPC_CLIENT_CA_FILE": self.grpc_client_ca_file,
            }
        )
        if self.internal_services:
            if not given:
                raise ValueError(
                    "CUSTOMERS_INTERNAL_SERVICES needs the gRPC TLS settings: principals are"
                    " known by their client certificates"
                )
            self._principals = _load_principals(self.internal_services)
            if self._principals.find([self.gateway_identity]) is not None:
                raise ValueError(
                    f"CUSTOMERS_INTERNAL_SERVICES {self.internal_services!r} lists the gateway's"
                    f" own identity {self.gateway_identity!r} (CUSTOMERS_GATEWAY_IDENTITY):"
                    " Envoy vouches for others, it is no principal"
                )
        return self

    @property
    def production(self) -> bool:
        """CUSTOMERS_ENV=production: callback URLs must be public (SSRF), delivery refuses
        internal addresses, and the sandbox's own-approval paths are off. Decided here once;
        everything else asks this or `sandbox`."""
        return self.env == "production"

    @property
    def sandbox(self) -> bool:
        """Development: the KYC simulator and the sandbox partner's portal are served."""
        return not self.production

    @property
    def rate_quota(self) -> Quota | None:
        """The per-partner request quota of this machine; None when rate limits are off."""
        if not self.rate_limit_per_second:
            return None
        burst = self.rate_limit_burst or max(1, math.ceil(self.rate_limit_per_second))
        return Quota(self.rate_limit_per_second, burst)

    @property
    def rest_tls(self) -> bool:
        """Envoy's REST listener serves HTTPS."""
        return self.tls_cert_file is not None

    @property
    def grpc_tls(self) -> bool:
        """The public gRPC port is Envoy's TLS listener; workers serve internal mTLS ports."""
        return self.grpc_tls_cert_file is not None

    def internal_grpc_port(self, worker: int) -> int:
        """Worker `worker`'s internal mTLS port (0: any free port, for one worker)."""
        return self.grpc_internal_port + worker if self.grpc_internal_port else 0

    def internal_grpc_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every worker's internal port: the gRPC listener's backends."""
        return [(self.grpc_host, self.internal_grpc_port(w)) for w in range(self.workers)]

    @property
    def principals(self) -> principals.Principals:
        """The service principals (empty without CUSTOMERS_INTERNAL_SERVICES)."""
        return self._principals

    @field_validator("envoy_bind_address")
    @classmethod
    def _an_ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("CUSTOMERS_ENVOY_BIND_ADDRESS must be an IP address") from None
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_has_host(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("CUSTOMERS_PUBLIC_URL must be an http(s) URL with a host")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _production_has_its_own_secrets(self) -> Settings:
        if (
            self.production
            and self.kyc_webhook_secret.get_secret_value() == DEVELOPMENT_KYC_WEBHOOK_SECRET
        ):
            raise ValueError("CUSTOMERS_KYC_WEBHOOK_SECRET must be set in production")
        if len(self.kyc_webhook_secret.get_secret_value()) < 16:
            raise ValueError("CUSTOMERS_KYC_WEBHOOK_SECRET must be at least 16 characters")
        return self

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # Operators write the usual URLs; the server needs the async drivers.
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @property
    def public_authority(self) -> str:
        """Host[:port] of the public URL: the SIWE domain and the signed @authority."""
        parts = urlsplit(self.public_url)
        default_port = {"http": 80, "https": 443}[parts.scheme]
        host = (parts.hostname or "").lower()
        if parts.port and parts.port != default_port:
            return f"{host}:{parts.port}"
        return host

    @property
    def public_scheme(self) -> str:
        return urlsplit(self.public_url).scheme

    def gateway_socket(self, worker: int) -> str:
        """Absolute path of worker `worker`'s gateway socket."""
        return os.path.join(os.path.abspath(self.gateway_socket_dir), f"worker-{worker}.sock")

    def gateway_sockets(self) -> list[str]:
        return [self.gateway_socket(worker) for worker in range(self.workers)]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _all_or_none(files: dict[str, str | None]) -> bool:
    """Whether the group of file settings is given: all of them (each an existing file) or
    none; a partial group is a ValueError naming what is missing."""
    given = [name for name, value in files.items() if value]
    if given and len(given) != len(files):
        missing = sorted(set(files) - set(given))
        raise ValueError(f"{', '.join(given)} set without {', '.join(missing)}")
    for name, value in files.items():
        if value and not os.path.isfile(value):
            raise ValueError(f"{name}: no such file {value!r}")
    return bool(given)


def _load_principals(path: str) -> principals.Principals:
    """The principals file, parsed; any problem is a ValueError naming the file."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as exc:
        raise ValueError(f"CUSTOMERS_INTERNAL_SERVICES: cannot read {path!r}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"CUSTOMERS_INTERNAL_SERVICES: {path!r} is not JSON: {exc}") from None
    try:
        return principals.parse(document)
    except principals.InvalidPrincipals as exc:
        raise ValueError(f"CUSTOMERS_INTERNAL_SERVICES {path!r}: {exc}") from None
