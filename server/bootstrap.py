"""Composition root: builds every adapter, use case, servicer and the interceptor chain
from Settings. Nothing else in the server constructs infrastructure, and any adapter can be
replaced by a keyword of `build` (tests pass fakes: tests/fakes/)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from uuid import UUID

import grpc
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from customers.v1 import (
    accounts_pb2_grpc,
    auth_pb2_grpc,
    customers_pb2_grpc,
    events_pb2_grpc,
    kyc_pb2_grpc,
    operator_pb2_grpc,
    simulator_pb2_grpc,
    webhooks_pb2_grpc,
)
from server.adapters.clock import SystemClock
from server.adapters.http_signatures import RequestSignatureVerifier
from server.adapters.kyc import SandboxKyc
from server.adapters.screening import SandboxScreener
from server.adapters.signing_keys import parse_submitted_key
from server.adapters.tokens import JwtTokens
from server.adapters.wallet import EthereumWallets
from server.config import Settings
from server.domain.deliveries import DisablePolicy
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
from server.services.ports import (
    Clock,
    KycProvider,
    NonceRegistry,
    PublicKeyParser,
    Screener,
    SignatureVerifier,
    TokenCodec,
    UnitOfWorkFactory,
    Wallets,
)
from server.services.signing_keys import SigningKeyService
from server.services.webhook_operations import WebhookOperations
from server.services.webhooks import WebhookService
from server.store.engine import make_engine, sqlite_inline_engine
from server.store.idempotency import IdempotencyKeys, IdempotencyStore
from server.store.nonces import MemoryNonceRegistry, SqlNonceRegistry
from server.store.retention import RetentionPruner
from server.store.tables import ServerSecretRow
from server.store.unit_of_work import SqlUnitOfWorkFactory
from server.store.webhook_operations import SqlWebhookOperations
from server.store.webhooks import SqlWebhookStore
from server.transport import convert
from server.transport.accounts import AccountServicer, CardServicer
from server.transport.auth import AuthServicer
from server.transport.customers import CustomerServicer, SimulatorServicer
from server.transport.events import EventServicer
from server.transport.kyc import KycCallbackServicer, KycPortalServicer
from server.transport.operator import OperatorServicer
from server.transport.webhooks import WebhookServicer, webhook_payload

Background = Callable[[], Coroutine[Any, Any, None]]
"""A loop app.py runs as a task for the server's lifetime (and cancels on stop)."""

# How often a worker on a shared SQLite file looks for another worker's events (a PRAGMA).
STREAM_WATCH_S = 0.01


class AddToServer(Protocol):
    def __call__(self, servicer: Any, server: Any, /) -> None: ...


@dataclass(frozen=True)
class Registration:
    """One servicer and the generated function that adds it to a grpc.aio server."""

    add: AddToServer
    servicer: object

    def register(self, server: grpc.aio.Server) -> None:
        self.add(self.servicer, server)


@dataclass
class Database:
    """The SQL store: engines and the one unit-of-work factory on them."""

    engine: AsyncEngine
    uow: SqlUnitOfWorkFactory
    read_engine: Engine | None = None  # SQLite only: statements inline (store/engine.py)
    # PostgreSQL only: wakes us when other replicas commit (also in Container.background).
    listener: PostgresListener | None = None

    @classmethod
    def open(cls, settings: Settings) -> Database:
        """Engines do not connect until first used: building one costs no round trip."""
        engine = make_engine(settings.database_url)
        inline = sqlite_inline_engine(settings.database_url) if settings.is_sqlite else None
        uow = SqlUnitOfWorkFactory(engine, inline=inline, shape=convert.payload)
        return cls(engine, uow, inline)

    async def close(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()


@dataclass
class Container:
    """Everything one worker runs, built once. No field is optional: what a deployment may
    lack (the PostgreSQL listener, the SQLite watcher, the sandbox portal) is folded into
    `background` and `servicers` here, so app.py starts what it is given."""

    settings: Settings
    clock: Clock
    database: Database
    uow: UnitOfWorkFactory  # the one factory every use case shares (database.uow unless a test's)
    auth: AuthService
    customers: CustomerService
    accounts: AccountService
    kyc: KycService
    signing_keys: SigningKeyService
    operator: OperatorService  # the programme operator's use cases
    events: EventService
    webhooks: WebhookService  # subscriptions (the API)
    # delivery log, redelivery, replay, rotation, enable (the API)
    webhook_operations: WebhookOperations
    hub: EventHub  # live fan-out to WatchCustomers streams
    watch: CustomerWatch
    watch_all: EveryoneWatch  # the cross-partner stream (internal watchers)
    idempotency: IdempotencyKeys
    webhook_store: SqlWebhookStore  # operators' and tests' view of deliveries
    webhook_worker: WebhookWorker  # relay + dispatcher (background)
    retention: RetentionPruner  # old events and deliveries (app.py loop)
    interceptors: list[grpc.aio.ServerInterceptor]
    servicers: list[Registration]  # every gRPC service this worker serves, once
    background: list[Background]  # hub, webhook worker, and the listener or watcher if any

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    @property
    def read_engine(self) -> Engine | None:
        return self.database.read_engine

    @property
    def listener(self) -> PostgresListener | None:
        return self.database.listener

    async def close(self) -> None:
        await self.database.close()


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


def _nonce_registry(settings: Settings, database: Database) -> NonceRegistry:
    # One SQLite process sees every request: memory suffices. Several processes (workers or
    # replicas) share the table, or a nonce used on one would pass again on another.
    single = settings.is_sqlite and settings.workers == 1
    return MemoryNonceRegistry() if single else SqlNonceRegistry(database.uow)


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
        production=settings.production,
    )


_DEFAULT: Any = object()  # "not overridden", where None is a meaningful override


async def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
    uow: UnitOfWorkFactory | None = None,
    tokens: TokenCodec | None = None,
    kyc: KycProvider | None = None,
    screener: Screener | None = None,
    wallets: Wallets | None = None,
    parse_key: PublicKeyParser | None = None,
    verifier: SignatureVerifier | None = None,
    nonces: NonceRegistry | None = None,
    limiter: PartnerRateLimiter | None = _DEFAULT,
    idempotency: IdempotencyKeys | None = None,
) -> Container:
    """The one place adapters are chosen. Every keyword replaces one adapter, as
    cosmicpython's `bootstrap(uow=..., notifications=...)` does: tests pass fakes (a fake
    unit of work and token codec build without touching any database). Left out, each is
    the production adapter Settings configures."""
    clock = clock or SystemClock()
    database = database or Database.open(settings)
    uow = uow or database.uow
    if tokens is None:
        tokens = JwtTokens(await server_secret(database.engine, "token"))
    auth = AuthService(
        uow=uow,
        clock=clock,
        tokens=tokens,
        token_ttl=timedelta(seconds=settings.token_ttl_seconds),
    )
    kyc_provider = kyc or _kyc_provider(settings, clock)
    customers = CustomerService(
        uow=uow,
        clock=clock,
        wallets=wallets or EthereumWallets(),
        kyc=kyc_provider,
        screener=screener or SandboxScreener(settings.screening_deny_list),
        challenge=ChallengeSettings(domain=settings.public_authority, uri=settings.public_url),
        sandbox=settings.sandbox,
    )
    accounts = AccountService(uow=uow, clock=clock)
    kyc_service = KycService(uow=uow, clock=clock, provider=kyc_provider)
    hub = EventHub(database.uow, heartbeat=settings.stream_heartbeat_seconds)
    idempotency = idempotency or IdempotencyStore(database.uow)
    webhook_store = SqlWebhookStore(
        database.uow,
        disable=DisablePolicy(timedelta(seconds=settings.webhook_disable_after_seconds)),
        shape=webhook_payload,
    )
    webhook_worker = WebhookWorker(webhook_store, clock, _delivery_options(settings))
    signing_keys = SigningKeyService(uow=uow, clock=clock, parse=parse_key or parse_submitted_key)
    background: list[Background] = [hub.run, webhook_worker.run]
    _connect_notifications(settings, database, auth, signing_keys, hub, webhook_worker, background)
    webhook_store.on_new_cursor = webhook_worker.forget_relayed
    authenticator = RequestAuthenticator(
        auth=auth,
        keys=signing_keys,
        verifier=verifier or RequestSignatureVerifier(),
        nonces=nonces or _nonce_registry(settings, database),
        clock=clock,
        limiter=_rate_limiter(settings) if limiter is _DEFAULT else limiter,
    )
    watch = CustomerWatch(hub=hub, uow=database.uow, max_streams=settings.max_streams_per_partner)
    watch_all = EveryoneWatch(hub=hub, uow=database.uow)
    operator = OperatorService(uow=uow, clock=clock)
    events = EventService(uow=uow)
    webhooks = WebhookService(
        store=webhook_store,
        clock=clock,
        production=settings.production,
        max_subscriptions=settings.max_webhooks_per_partner,
    )
    webhook_operations = WebhookOperations(store=SqlWebhookOperations(database.uow), clock=clock)
    # Like the simulator, the sandbox portal would let anyone approve their own KYC: never
    # in production.
    portal = kyc_provider if settings.sandbox and isinstance(kyc_provider, SandboxKyc) else None
    servicers = [
        Registration(
            auth_pb2_grpc.add_AuthServiceServicer_to_server, AuthServicer(auth, signing_keys)
        ),
        Registration(
            customers_pb2_grpc.add_CustomerServiceServicer_to_server,
            CustomerServicer(customers, watch),
        ),
        Registration(events_pb2_grpc.add_EventServiceServicer_to_server, EventServicer(events)),
        Registration(
            webhooks_pb2_grpc.add_WebhookServiceServicer_to_server,
            WebhookServicer(webhooks, webhook_operations),
        ),
        Registration(
            simulator_pb2_grpc.add_SimulatorServiceServicer_to_server,
            SimulatorServicer(customers),
        ),
        Registration(
            accounts_pb2_grpc.add_AccountServiceServicer_to_server, AccountServicer(accounts)
        ),
        Registration(accounts_pb2_grpc.add_CardServiceServicer_to_server, CardServicer(accounts)),
        Registration(
            kyc_pb2_grpc.add_KycPortalServiceServicer_to_server,
            KycPortalServicer(portal, kyc_service),
        ),
        Registration(
            kyc_pb2_grpc.add_KycCallbackServiceServicer_to_server,
            KycCallbackServicer(kyc_service),
        ),
        Registration(
            operator_pb2_grpc.add_OperatorServiceServicer_to_server,
            OperatorServicer(operator, watch_all),
        ),
    ]
    return Container(
        settings=settings,
        clock=clock,
        database=database,
        uow=uow,
        auth=auth,
        customers=customers,
        accounts=accounts,
        kyc=kyc_service,
        signing_keys=signing_keys,
        operator=operator,
        events=events,
        webhooks=webhooks,
        webhook_operations=webhook_operations,
        hub=hub,
        watch=watch,
        watch_all=watch_all,
        idempotency=idempotency,
        webhook_store=webhook_store,
        webhook_worker=webhook_worker,
        retention=RetentionPruner(
            database.uow,
            events=timedelta(days=settings.event_retention_days),
            deliveries=timedelta(days=settings.delivery_retention_days),
        ),
        interceptors=interceptors(settings, authenticator, idempotency, clock),
        servicers=servicers,
        background=background,
    )


def _connect_notifications(
    settings: Settings,
    database: Database,
    auth: AuthService,
    signing_keys: SigningKeyService,
    hub: EventHub,
    webhook_worker: WebhookWorker,
    background: list[Background],
) -> None:
    """Who hears of a commit: this process's own at once, other processes' through
    PostgreSQL NOTIFY or the SQLite file watcher (added to `background`)."""

    def committed(events: list[ChangeEvent]) -> None:
        """This process committed events: its streams and webhook relay look at once."""
        hub.published(events)
        webhook_worker.wake({event.partner_id for event in events})

    def notified(partner_id: UUID) -> None:
        """Another replica committed events for the partner (PostgreSQL NOTIFY)."""
        hub.wake(partner_id)
        webhook_worker.wake((partner_id,))

    def credentials_changed(partner_id: UUID) -> None:
        """A replica changed the partner's credentials or signing keys (PostgreSQL NOTIFY
        partner_credentials): forget what we remember of them."""
        auth.invalidate(partner_id)
        signing_keys.invalidate(partner_id)

    def anything_changed() -> None:
        """Something may have changed that no notification named: the webhook worker looks
        again, and the remembered credentials and keys are dropped."""
        webhook_worker.wake()
        auth.invalidate_all()
        signing_keys.invalidate_all()

    def reconnected() -> None:
        """Notifications may have been lost: everyone re-reads from their cursor."""
        hub.wake_all()
        anything_changed()

    database.uow.on_commit = committed
    if not settings.is_sqlite:
        database.listener = PostgresListener(
            settings.database_url,
            on_partner=notified,
            on_credentials=credentials_changed,
            on_reconnect=reconnected,
        )
        background.append(database.listener.run)
    elif settings.workers > 1:
        # Several SQLite workers on one file: another worker's commit may have changed
        # anything (events, credentials, keys), so look again at everything, as after a
        # lost NOTIFY. The streams look more often, and with one read (hub.wake_changed):
        # every 50 ms was up to 50 ms more commit-to-delivery latency for half the streams.
        watch = settings.database_url
        background.append(SqliteChangeWatcher(watch, on_change=anything_changed).run)
        background.append(
            SqliteChangeWatcher(watch, on_change=hub.wake_changed, interval=STREAM_WATCH_S).run
        )


def interceptors(
    settings: Settings,
    authenticator: RequestAuthenticator,
    idempotency: IdempotencyKeys,
    clock: Clock,
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor chain, outermost first."""
    return [
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
