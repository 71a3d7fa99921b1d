"""The baseline app: `uvicorn --factory bench.baseline.app:create_app`.

Configuration from the environment (read in the factory, nothing at import):
BASELINE_DATABASE_URL (the bench stack's database) and BASELINE_PUBLIC_URL (the service's
public URL: the SIWE challenge's domain and the KYC link, as the service answers them).

- `GET /customers/{customerId}`: authenticated (security.py), then one SQLModel read of the
  customer row scoped by partner; the service's JSON.
- `POST /customers`: the same checks (Content-Digest over the raw body included), an
  Idempotency-Key (a UUID) required, then in ONE commit: the customer row, its outbox event
  (the next per-partner `seq`) and the idempotency record holding the answer; 201 with the
  service's JSON (challenge and verification URL included). A repeated key replays the stored
  answer (same request), or answers 422 (another request) or 409 (still in flight).

It writes the service's own tables through the service's SQLModel classes
(server/store/tables.py), so both write the same database, row for row. Its idempotency
records hold its own answers (JSON, where the service stores protobuf bytes): a key used
with one implementation is not to be replayed through the other (the bench never does).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from bench.baseline.database import Database
from bench.baseline.errors import ApiError
from bench.baseline.security import Gatekeeper, Nonces, Signed
from server.adapters.wallet import new_nonce
from server.domain import siwe
from server.domain.identifiers import InvalidIdentifier, parse_account_id, validate_external_id
from server.store.tables import CustomerRow, EventRow, IdempotencyRow, PartnerSequenceRow

KEY_LIFETIME = timedelta(hours=1)
EVENTS_CHANNEL = "customer_events"  # the service's LISTEN/NOTIFY channel (store/outbox.py)


class NewCustomer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")

    chain_id: str
    external_id: str


class CustomerOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: str
    external_id: str
    chain_id: str
    status: str
    created_at: str
    updated_at: str
    challenge: str | None = None
    verification_url: str | None = None

    @classmethod
    def of(cls, row: CustomerRow, **extra: Any) -> CustomerOut:
        return cls(
            id=str(row.id),
            external_id=row.external_id,
            chain_id=row.chain_id,
            status=row.status,
            created_at=rfc3339(row.created_at),
            updated_at=rfc3339(row.updated_at),
            **extra,
        )

    def json_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


async def signed(request: Request) -> Signed:
    """Every route here is authenticated; FastAPI runs this before the handler."""
    gate: Gatekeeper = request.app.state.gate
    return await gate.authenticate(request, await request.body())


Caller = Annotated[Signed, Depends(signed)]


# The read is one indexed SELECT: run inline on the event loop (as the service runs its
# SQLite reads) rather than handed to FastAPI's thread pool, whose hand-off and GIL
# ping-pong measured ~0.4 ms more CPU per request here. The stronger baseline.
async def get_customer(customer_id: str, request: Request, who: Caller) -> Response:
    state = request.app.state
    state.nonces.burn(who)
    try:
        wanted = UUID(customer_id)
    except ValueError:
        raise _not_found() from None
    query = select(CustomerRow).where(
        CustomerRow.id == wanted, CustomerRow.partner_id == who.partner_id
    )
    with state.db.read() as session:
        row = session.exec(query).first()
    if row is None:
        raise _not_found()
    return _json(200, CustomerOut.of(row).json_bytes())


# SQLite: the write runs inline on the event loop, like the read above and like the
# service's SQLite writes (a few statements, ~0.2 ms, serialized by the write lock anyway).
# PostgreSQL: in FastAPI's thread pool, since each statement waits on the network. Each is
# the stronger baseline on its database (measured: the thread pool hand-off cost SQLite
# creates ~0.4 ms of CPU; inline PostgreSQL would serialize the loop on round trips).
async def create_customer_inline(request: Request, who: Caller) -> Response:
    return _create_customer(request, who)


def create_customer_threaded(request: Request, who: Caller) -> Response:
    return _create_customer(request, who)


def _create_customer(request: Request, who: Signed) -> Response:
    state = request.app.state
    raw_key = request.headers.get("idempotency-key")
    if not raw_key:
        raise ApiError(400, "IDEMPOTENCY_KEY_MISSING", "Idempotency-Key header is required")
    try:
        key = UUID(raw_key)
    except ValueError:
        raise ApiError(400, "IDEMPOTENCY_KEY_INVALID", "Idempotency-Key must be a UUID") from None
    fingerprint = hashlib.sha256(b"POST /customers\n" + who.body).hexdigest()
    now = datetime.now(UTC)
    db: Database = state.db
    try:
        with db.write() as session:
            state.nonces.burn(who, session)
            record = session.get(IdempotencyRow, (who.partner_id, key), with_for_update=True)
            if record is not None and record.expires_at > now:
                return _repeated(record, fingerprint)
            try:
                status, code = 201, 0
                answer = _create(session, db, state.public, who, now)
            except ApiError as error:  # a 4xx is the answer, stored like a success
                status, code, answer = error.status, error.code, error.json_bytes()
            values: dict[str, Any] = {
                "fingerprint": fingerprint,
                "state": "completed",
                "claim_id": uuid.uuid4(),
                "lease_until": now,
                "expires_at": now + KEY_LIFETIME,
                "grpc_code": code,
                "http_status": status,
                "response": answer,
                "created_at": now,
            }
            if record is None:
                session.add(IdempotencyRow(partner_id=who.partner_id, key=key, **values))
            else:  # an expired record of the same key
                record.sqlmodel_update(values)
                session.add(record)
            session.commit()
    except IntegrityError as exc:
        if "idempotency" in str(exc.orig):
            raise _in_flight() from None
        raise ApiError(409, "CUSTOMER_ALREADY_EXISTS", "Customer already exists") from None
    return _json(status, answer)


def _create(
    session: Session, db: Database, public: tuple[str, str], who: Signed, now: datetime
) -> bytes:
    try:
        given = NewCustomer.model_validate_json(who.body)
    except ValidationError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid body: {exc.errors()[0]['msg']}") from None
    try:
        account = parse_account_id(given.chain_id)
        external_id = validate_external_id(given.external_id)
    except InvalidIdentifier as exc:
        field = "externalId" if str(exc).startswith("externalId") else "chainId"
        raise ApiError(400, "INVALID_FIELD", str(exc), metadata={"field": field}) from None
    partner_id = who.partner_id
    duplicate = select(CustomerRow.chain_key).where(
        CustomerRow.partner_id == partner_id,
        or_(
            col(CustomerRow.chain_key) == account.canonical,
            col(CustomerRow.external_id) == external_id,
        ),
    )
    found = session.exec(duplicate.limit(1)).first()
    if found is not None:
        field = "chainId" if found == account.canonical else "externalId"
        raise ApiError(
            409, "CUSTOMER_ALREADY_EXISTS", "Customer already exists", metadata={"field": field}
        )

    domain, public_url = public
    challenge, expires_at = "", now
    if account.is_evm:
        message = siwe.issue_challenge(
            domain=domain,
            uri=public_url,
            address=account.checksum_address,
            chain_id=int(account.reference),
            now=now,
            nonce=new_nonce(),
        )
        challenge, expires_at = message.to_text(), message.expiration_time
    session_id = secrets.token_urlsafe(18)
    row = CustomerRow(
        id=uuid.uuid4(),
        partner_id=partner_id,
        external_id=external_id,
        chain_id=str(account),
        chain_key=account.canonical,
        status="initiating",
        kyc_session_id=session_id,
        challenge_message=challenge,
        challenge_expires_at=expires_at,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    shown = CustomerOut.of(row)
    session.add(
        EventRow(
            event_id=uuid.uuid4(),
            partner_id=partner_id,
            seq=_next_seq(session, db, partner_id),
            type="customer.updated",
            entity_id=row.id,
            payload=shown.model_dump(by_alias=True, exclude_none=True),
            occurred_at=now,
        )
    )
    if db.dialect == "postgresql":  # wakes the service's streams and webhook relay
        session.exec(select(sa.func.pg_notify(EVENTS_CHANNEL, str(partner_id))))
    challenge_b64 = base64.b64encode(challenge.encode()).decode() if challenge else None
    return CustomerOut.of(
        row, challenge=challenge_b64, verification_url=f"{public_url}/kyc/{session_id}"
    ).json_bytes()


def _next_seq(session: Session, db: Database, partner_id: UUID) -> int:
    """The partner's next event sequence; the row's lock orders commits (as the service)."""
    insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    bump = (
        insert(PartnerSequenceRow)
        .values(partner_id=partner_id, last_seq=1)
        .on_conflict_do_update(
            index_elements=["partner_id"], set_={"last_seq": col(PartnerSequenceRow.last_seq) + 1}
        )
        .returning(col(PartnerSequenceRow.last_seq))
    )
    return int(session.exec(bump).scalar_one())


def _repeated(record: IdempotencyRow, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise ApiError(
            422, "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key was used for a different request"
        )
    if record.state != "completed" or record.response is None:
        raise _in_flight()
    replay = _json(record.http_status or 200, record.response)
    replay.headers["idempotent-replayed"] = "true"
    return replay


def rfc3339(value: datetime) -> str:
    """As protobuf's JSON prints a Timestamp: UTC, 'Z', 0, 3 or 6 fraction digits."""
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def _json(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def _in_flight() -> ApiError:
    return ApiError(409, "IDEMPOTENCY_KEY_IN_FLIGHT", "Request is still in flight", code=10)


def _not_found() -> ApiError:
    return ApiError(404, "CUSTOMER_NOT_FOUND", "Customer not found")


async def _api_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return _json(error.status, error.json_bytes())


def create_app() -> FastAPI:
    database_url = os.environ["BASELINE_DATABASE_URL"]
    public_url = os.environ["BASELINE_PUBLIC_URL"].rstrip("/")
    domain = public_url.split("://", 1)[1].split("/", 1)[0].lower()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(database_url)
        app.state.db = db
        app.state.gate = Gatekeeper(db, db.server_secret("token"))
        app.state.nonces = Nonces(db)
        app.state.public = (domain, public_url)
        try:
            yield
        finally:
            db.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(ApiError, _api_error)
    router = APIRouter()
    router.add_api_route("/customers/{customer_id}", get_customer, methods=["GET"])
    inline = database_url.startswith("sqlite")
    create = create_customer_inline if inline else create_customer_threaded
    router.add_api_route("/customers", create, methods=["POST"])
    app.include_router(router)
    return app
