"""Composition root: builds every adapter, use case, servicer and the interceptor chain
from Settings. Nothing else in the server constructs infrastructure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import grpc
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from server.adapters.clock import SystemClock
from server.adapters.http_signatures import RequestSignatureVerifier
from server.adapters.kyc import SandboxKyc
from server.adapters.screening import SandboxScreener
from server.adapters.signing_keys import parse_submitted_key
from server.adapters.tokens import JwtTokens
from server.adapters.wallet import EthereumWallets
from server.config import Settings
from server.domain.events import ChangeEvent
from server.domain.webhooks import RetrySchedule
from server.events.hub import EventHub
from server.events.notifier import PostgresListener
from server.events.sqlite_watch import SqliteChangeWatcher
from server.events.watch import CustomerWatch, EveryoneWatch
from server.events.webhooks import DeliveryOptions, WebhookWorker
from server.interceptors.auth import AuthInterceptor
from server.interceptors.errors import ErrorsInterceptor
from server.interceptors.idempotency import IdempotencyInterceptor
from server.interceptors.messages import MessagesInterceptor
from server.interceptors.request_context import RequestContextInterceptor
from server.interceptors.retry import RetryInterceptor
from server.logging import access_log
from server.rpc.policy import POLICY
from server.services.accounts import AccountService
from server.services.auth import AuthService
from server.services.authentication import RequestAuthenticator
from server.services.customers import ChallengeSettings, CustomerService
from server.services.events import EventService
from server.services.kyc import KycService
from server.services.limits import PartnerRateLimiter
from server.services.operator import OperatorService
from server.services.ports import Clock, KycProvider, NonceRegistry
from server.services.signing_keys import SigningKeyService
from server.services.webhooks import WebhookService
from server.store.engine import make_engine, sqlite_inline_engine
from server.store.idempotency import IdempotencyStore
from server.store.nonces import MemoryNonceRegistry, SqlNonceRegistry
from server.store.retention import RetentionPruner
from server.store.tables import ServerSecretRow
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.store.webhooks import SqlWebhookStore
from server.transport import convert


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    auth: AuthService
    customers: CustomerService
    accounts: AccountService
    idempotency: IdempotencyStore
    clock: Clock
    interceptors: list[grpc.aio.ServerInterceptor]
    kyc: KycService
    kyc_portal: SandboxKyc | None  # the sandbox partner's pages; None when they are off
    signing_keys: SigningKeyService
    hub: EventHub | None = None  # live fan-out to WatchCustomers streams
    watch: CustomerWatch | None = None
    watch_all: EveryoneWatch | None = None  # the cross-partner stream (internal watchers)
    operator: OperatorService | None = None  # the programme operator's use cases
    events: EventService | None = None
    listener: PostgresListener | None = None  # wakes us when other replicas commit
    sqlite_watcher: SqliteChangeWatcher | None = None  # the same for other SQLite workers
    webhooks: WebhookService | None = None  # subscriptions (the API)
    webhook_worker: WebhookWorker | None = None  # relay + dispatcher (background)
    webhook_store: SqlWebhookStore | None = None  # operators' and tests' view of deliveries
    read_engine: Engine | None = None  # SQLite only: statements inline (store/engine.py)
    uow: SqlUnitOfWorkFactory | None = None  # the one factory every service shares
    retention: RetentionPruner | None = None  # old events and deliveries (app.py loop)

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()


async def server_secret(engine: AsyncEngine, name: str) -> str:
    """A secret every replica shares, made by the migrations ("token")."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(col(ServerSecretRow.value)).where(col(ServerSecretRow.name) == name)
            )
        ).first()
    if row is None:
        raise RuntimeError(f"no {name} secret in the database: run `python -m server migrate`")
    return str(row[0])


def _nonce_registry(settings: Settings, uow: SqlUnitOfWorkFactory) -> NonceRegistry:
    # One SQLite process sees every request: memory suffices. Several processes (workers or
    # replicas) share the table, or a nonce used on one would pass again on another.
    single = settings.is_sqlite and settings.workers == 1
    return MemoryNonceRegistry() if single else SqlNonceRegistry(uow)


def _kyc_provider(settings: Settings, clock: Clock) -> KycProvider:
    """The configured KYC partner. A real one is an adapter implementing KycProvider, chosen
    here by CUSTOMERS_KYC_PROVIDER (docs/KYC.md)."""
    match settings.kyc_provider:
        case "sandbox":
            return SandboxKyc(
                public_url=settings.public_url,
                webhook_secret=settings.kyc_webhook_secret.get_secret_value(),
                clock=clock,
                latency=settings.sandbox_kyc_latency_seconds,
            )


def _rate_limiter(settings: Settings) -> PartnerRateLimiter | None:
    # Per machine: Envoy spreads a partner's calls over this machine's workers, so each
    # takes its share of the quota (services/limits.py). Replicas each admit the whole
    # quota: a deployment of N replicas sets 1/N of the partner's quota here.
    quota = settings.rate_quota
    return None if quota is None else PartnerRateLimiter(quota, share=settings.workers)


def _delivery_options(settings: Settings) -> DeliveryOptions:
    return DeliveryOptions(
        schedule=RetrySchedule(
            base=timedelta(seconds=settings.webhook_retry_base_seconds),
            max_age=timedelta(seconds=settings.webhook_retry_max_age_seconds),
        ),
        timeout=settings.webhook_timeout_seconds,
        production=settings.env == "production",
    )


async def build(settings: Settings, *, clock: Clock | None = None) -> Container:
    clock = clock or SystemClock()
    engine = make_engine(settings.database_url)
    read_engine = sqlite_inline_engine(settings.database_url) if settings.is_sqlite else None
    uow = SqlUnitOfWorkFactory(engine, inline=read_engine, shape=convert.payload)
    auth = AuthService(
        uow=uow,
        clock=clock,
        tokens=JwtTokens(await server_secret(engine, "token")),
        token_ttl=timedelta(seconds=settings.token_ttl_seconds),
    )
    kyc_provider = _kyc_provider(settings, clock)
    # Like the simulator, the sandbox portal would let anyone approve their own KYC: never
    # in production.
    sandbox_portal = kyc_provider if isinstance(kyc_provider, SandboxKyc) else None
    customers = CustomerService(
        uow=uow,
        clock=clock,
        wallets=EthereumWallets(),
        kyc=kyc_provider,
        screener=SandboxScreener(settings.screening_deny_list),
        challenge=ChallengeSettings(domain=settings.public_authority, uri=settings.public_url),
        sandbox=settings.env == "development",
    )
    accounts = AccountService(uow=uow, clock=clock)
    hub = EventHub(uow, heartbeat=settings.stream_heartbeat_seconds)
    idempotency = IdempotencyStore(uow)
    webhook_store = SqlWebhookStore(uow)
    webhook_worker = WebhookWorker(webhook_store, clock, _delivery_options(settings))

    def committed(events: list[ChangeEvent]) -> None:
        """This process committed events: its streams and webhook relay look at once."""
        hub.published(events)
        webhook_worker.wake({event.partner_id for event in events})

    def notified(partner_id: UUID) -> None:
        """Another replica committed events for the partner (PostgreSQL NOTIFY)."""
        hub.wake(partner_id)
        webhook_worker.wake((partner_id,))

    signing_keys = SigningKeyService(uow=uow, clock=clock, parse=parse_submitted_key)

    def credentials_changed(partner_id: UUID) -> None:
        """A replica changed the partner's credentials or signing keys (PostgreSQL NOTIFY
        partner_credentials): forget what we remember of them."""
        auth.invalidate(partner_id)
        signing_keys.invalidate(partner_id)

    def reconnected() -> None:
        """Notifications may have been lost: everyone re-reads from their cursor, and the
        remembered credentials and keys are dropped."""
        hub.wake_all()
        webhook_worker.wake()
        auth.invalidate_all()
        signing_keys.invalidate_all()

    uow.on_commit = committed
    webhook_store.on_new_cursor = webhook_worker.forget_relayed
    listener = (
        None
        if settings.is_sqlite
        else PostgresListener(
            settings.database_url,
            on_partner=notified,
            on_credentials=credentials_changed,
            on_reconnect=reconnected,
        )
    )
    # Several SQLite workers on one file: another worker's commit may have changed anything
    # (events, credentials, keys), so look again at everything, as after a lost NOTIFY.
    sqlite_watcher = (
        SqliteChangeWatcher(settings.database_url, on_change=reconnected)
        if settings.is_sqlite and settings.workers > 1
        else None
    )
    authenticator = RequestAuthenticator(
        auth=auth,
        keys=signing_keys,
        verifier=RequestSignatureVerifier(),
        nonces=_nonce_registry(settings, uow),
        clock=clock,
        limiter=_rate_limiter(settings),
    )
    interceptors: list[grpc.aio.ServerInterceptor] = [
        # Outermost: opens the call scope (raw request bytes, request id); every call gets a
        # log line and metrics, whatever happens.
        RequestContextInterceptor(access_log(settings.log_level)),
        # Turns exceptions from everything below into rich statuses (and REST statuses).
        ErrorsInterceptor(),
        # Who is calling, proven: bearer token + RFC 9421 signature + Content-Digest, over
        # the REST request as the client sent it (via the gateway socket) or over the
        # serialized message (native gRPC).
        AuthInterceptor(
            authenticator=authenticator,
            policy=POLICY,
            public_authority=settings.public_authority,
            public_scheme=settings.public_scheme,
            # Internal methods: the service principal named by the verified client cert,
            # forwarded by Envoy's hop (known by this identity) from the public gRPC port.
            principals=settings.principals,
            gateway_identity=settings.gateway_identity,
        ),
        # Undecodable request bytes, and REST JSON the published contract does not allow
        # (null, a bare value for a list, enum numbers): 400, once the caller is known.
        MessagesInterceptor(POLICY),
        # Modifying calls run once per Idempotency-Key (per partner, so after auth).
        IdempotencyInterceptor(idempotency, clock, POLICY.idempotent_methods()),
        # Innermost: the other calls run again after a deadlock or a lost connection when
        # none of their transactions reached COMMIT (modifying calls: the one above).
        RetryInterceptor(POLICY.idempotent_methods()),
    ]
    return Container(
        settings,
        engine,
        auth,
        customers,
        accounts,
        idempotency,
        clock,
        interceptors,
        kyc=KycService(uow=uow, clock=clock, provider=kyc_provider),
        kyc_portal=sandbox_portal if settings.env == "development" else None,
        signing_keys=signing_keys,
        hub=hub,
        watch=CustomerWatch(hub=hub, uow=uow, max_streams=settings.max_streams_per_partner),
        watch_all=EveryoneWatch(hub=hub, uow=uow),
        operator=OperatorService(uow=uow, clock=clock),
        events=EventService(uow=uow),
        listener=listener,
        sqlite_watcher=sqlite_watcher,
        webhooks=WebhookService(
            store=webhook_store,
            clock=clock,
            production=settings.env == "production",
            max_subscriptions=settings.max_webhooks_per_partner,
        ),
        webhook_worker=webhook_worker,
        webhook_store=webhook_store,
        read_engine=read_engine,
        uow=uow,
        retention=RetentionPruner(
            uow,
            events=timedelta(days=settings.event_retention_days),
            deliveries=timedelta(days=settings.delivery_retention_days),
        ),
    )
