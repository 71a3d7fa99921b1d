"""Settings: read once from CUSTOMERS_* environment variables, validated, passed down."""

from __future__ import annotations

import json
import os
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.domain import principals

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
    log_level: str = "INFO"
    log_json: bool = True
    # TLS on the gRPC TCP port, with client certificates from this CA (docs/OPERATOR.md):
    # all three or none. Unset: the plain port of development.
    grpc_tls_cert_file: str | None = None
    grpc_tls_key_file: str | None = None
    grpc_client_ca_file: str | None = None
    # The service principals file (SPEC section 13); needs the TLS settings above.
    internal_services: str | None = None
    _principals: principals.Principals = PrivateAttr(default_factory=principals.Principals)

    @model_validator(mode="after")
    def _grpc_tls_is_whole(self) -> Settings:
        files = {
            "CUSTOMERS_GRPC_TLS_CERT_FILE": self.grpc_tls_cert_file,
            "CUSTOMERS_GRPC_TLS_KEY_FILE": self.grpc_tls_key_file,
            "CUSTOMERS_GRPC_CLIENT_CA_FILE": self.grpc_client_ca_file,
        }
        given = [name for name, value in files.items() if value]
        if given and len(given) != len(files):
            missing = sorted(set(files) - set(given))
            raise ValueError(f"{', '.join(given)} set without {', '.join(missing)}")
        for name, value in files.items():
            if value and not os.path.isfile(value):
                raise ValueError(f"{name}: no such file {value!r}")
        if self.internal_services:
            if not given:
                raise ValueError(
                    "CUSTOMERS_INTERNAL_SERVICES needs the gRPC TLS settings: principals are"
                    " known by their client certificates"
                )
            self._principals = _load_principals(self.internal_services)
        return self

    @property
    def grpc_tls(self) -> bool:
        return self.grpc_tls_cert_file is not None

    @property
    def principals(self) -> principals.Principals:
        """The service principals (empty without CUSTOMERS_INTERNAL_SERVICES)."""
        return self._principals

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
            self.env == "production"
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
