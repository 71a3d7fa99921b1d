"""Micro-measurements beside the loads: what one piece of the request path costs alone.

- `raw_verify`: `cryptography`'s verify of one signature in a tight loop (the floor for a
  signed request of that key type);
- `verifier_verify`: `RequestSignatureVerifier.verify` on the request as the auth
  interceptor builds it from the gateway's forwarded headers (parsing, digest and coverage
  policy, the signature base, the crypto);
- `idempotency_record`: `IdempotencyStore.claim` + `store` (+ commit) against the bench's database;
- `rate_limit_admit`: `PartnerRateLimiter.admit`, the per-partner rate limit every signed
  request passes (a quota no loop reaches, so every call is admitted);
- `siwe_recover`: `recover_signer` on a real signed challenge, in a subprocess so that the
  eth-keys backend can be chosen (`ECC_BACKEND_CLASS`, read by eth-keys at first use).

Rates are per CPU-second of the measuring thread (= per core), so a neighbour stealing the
core during the loop does not lower them; the wall-clock rate is kept beside it.
`python -m bench.micro siwe SECONDS` is the subprocess entry (JSON on stdin and stdout).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from client.signing import PrivateSigningKey, public_key_b64
from server.adapters.http_signatures import RequestSignatureVerifier
from server.adapters.signing_keys import parse_submitted_key
from server.services.ports import SignedRequest

NATIVE_ECC_BACKEND = "eth_keys.backends.native.NativeECCBackend"
# The shape of a request fingerprint: a SHA-256 hex digest (the column holds 64 characters).
FINGERPRINT = hashlib.sha256(b"POST /customers bench").hexdigest()
# A signature base of the size a signed GET produces (what the crypto hashes).
_SAMPLE_BASE = (
    b'"@method": GET\n"@authority": 127.0.0.1:8080\n"@path": /customers/'
    + uuid.UUID(int=0).hex.encode()
    + b'\n"authorization": Bearer '
    + b"x" * 180
    + b'\n"@signature-params": ("@method" "@authority" "@path" "authorization");'
    + b'created=1700000000;keyid="'
    + b"k" * 43
    + b'"'
)


def timed_loop(call: Callable[[], object], seconds: float) -> dict[str, float]:
    """Calls per CPU-second of this thread ("per_core") and per wall second, over ~seconds."""
    for _ in range(20):  # warm caches and lazy imports first
        call()
    count = 0
    wall_start, cpu_start = time.perf_counter(), time.thread_time()
    while True:
        for _ in range(10):
            call()
        count += 10
        wall = time.perf_counter() - wall_start
        if wall >= seconds:
            break
    cpu = time.thread_time() - cpu_start
    return {"per_core": count / cpu if cpu else 0.0, "wall_rate": count / wall}


def raw_verify(key: PrivateSigningKey, seconds: float = 1.0) -> dict[str, float]:
    """One signature verified again and again by `cryptography` (OpenSSL), nothing else."""
    private = key.private_key
    public = private.public_key()
    if isinstance(private, ed25519.Ed25519PrivateKey):
        assert isinstance(public, ed25519.Ed25519PublicKey)
        signature = private.sign(_SAMPLE_BASE)
        return timed_loop(lambda: public.verify(signature, _SAMPLE_BASE), seconds)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    algorithm = ec.ECDSA(hashes.SHA384())
    signature = private.sign(_SAMPLE_BASE, algorithm)
    return timed_loop(lambda: public.verify(signature, _SAMPLE_BASE, algorithm), seconds)


def verifier_verify(
    key: PrivateSigningKey, make_request: Callable[[], SignedRequest], seconds: float = 1.0
) -> dict[str, float]:
    """The server's RequestSignatureVerifier on one request built like the auth interceptor
    builds it from what the gateway forwards; the registered key as `PUT /auth/signing` stores it
    (its parsed-key cache warm, as in the server). No nonce: none to record."""
    stored = parse_submitted_key(public_key_b64(key))
    request = make_request()
    verifier = RequestSignatureVerifier()

    def resolve(key_id: str) -> Any:
        return stored if key_id == stored.key_id else None

    def verify() -> object:
        return verifier.verify(request, resolve, now=int(time.time()), scheme="http")

    return timed_loop(verify, seconds)


def verify_micro_fields() -> list[tuple[str, str, str]]:
    return [("per_core", "per core", "{:,.0f}/s"), ("wall_rate", "wall", "{:,.0f}/s")]


def idempotency_record(
    database_url: str, partner_id: str, seconds: float = 1.0
) -> dict[str, float]:
    """The idempotency record's share of a modifying request, for fresh keys in a loop on
    the bench's own database (the server idle meanwhile): `IdempotencyStore.claim` and
    `store` inside one write transaction, as an idempotent call runs them around its change
    (the commit is the change's own; it is timed with the answer)."""
    from sqlalchemy.exc import OperationalError

    from server.store.engine import make_engine
    from server.store.idempotency import IdempotencyStore, StoredAnswer, Ticket
    from server.store.unit_of_work import SqlUnitOfWorkFactory

    answer = StoredAnswer(grpc_code=0, http_status=201, body=b"\x0a" * 320)
    partner = uuid.UUID(partner_id)

    async def loop() -> dict[str, float]:
        engine = make_engine(database_url)
        try:
            uow = SqlUnitOfWorkFactory(engine)
            store = IdempotencyStore(uow)
            retries = 0

            async def one() -> tuple[float, float]:
                # SQLite: the server's own writers (the webhook relay) may hold the write
                # lock past busy_timeout on a starved machine; try again, and say so.
                nonlocal retries
                ticket = Ticket(partner, uuid.uuid4(), FINGERPRINT, datetime.now(UTC))
                for _ in range(5):
                    try:
                        async with uow(write=True) as opened:
                            started = time.perf_counter()
                            outcome = await store.claim(opened.session, ticket)
                            claimed = time.perf_counter()
                            assert outcome.runs, outcome
                            await store.store(opened.session, ticket, answer)
                            await opened.commit()
                            return claimed - started, time.perf_counter() - claimed
                    except OperationalError as error:
                        if "locked" not in str(error):
                            raise
                        retries += 1
                raise RuntimeError("idempotency micro: the database stayed locked")

            for _ in range(10):  # open the pool's connections first
                await one()
            count, claim_s, complete_s = 0, 0.0, 0.0
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            while time.perf_counter() - wall_start < seconds:
                first, second = await one()
                claim_s, complete_s, count = claim_s + first, complete_s + second, count + 1
            wall = time.perf_counter() - wall_start
            cpu = time.process_time() - cpu_start
        finally:
            await engine.dispose()
        return {
            "pair_us": wall / count * 1e6,
            "claim_us": claim_s / count * 1e6,
            "complete_us": complete_s / count * 1e6,
            "cpu_us": cpu / count * 1e6,
            "lock_retries": float(retries),
        }

    return asyncio.run(loop())


def rate_limit_admit(seconds: float = 1.0) -> dict[str, float]:
    """The rate limit's cost per request, as the auth step pays it: one partner's bucket,
    shared by two workers' worth of cost (the default machine)."""
    from server.domain.limits import Quota
    from server.services.limits import PartnerRateLimiter

    limiter = PartnerRateLimiter(Quota(per_second=1e12, burst=10**12), share=2)
    partner = uuid.uuid4()
    return timed_loop(lambda: limiter.admit(partner), seconds)


def siwe_recover(
    text: str, signature: bytes, address: str, *, native: bool, seconds: float = 1.0
) -> dict[str, float]:
    """recover_signer in a fresh interpreter; `native` selects eth-keys' pure-Python backend
    through ECC_BACKEND_CLASS (eth_keys.backends.get_backend_class reads it), and the child
    reports which backend it really used."""
    env = dict(os.environ)
    env.pop("ECC_BACKEND_CLASS", None)
    if native:
        env["ECC_BACKEND_CLASS"] = NATIVE_ECC_BACKEND
    done = subprocess.run(
        [sys.executable, "-m", "bench.micro", "siwe", str(seconds)],
        input=json.dumps({"text": text, "signature": signature.hex(), "address": address}),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=seconds + 60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"siwe micro failed: {done.stderr[-2000:]}")
    answer = json.loads(done.stdout)
    expected = "NativeECCBackend" if native else "CoinCurveECCBackend"
    if answer["backend"] != expected:
        raise RuntimeError(f"siwe micro used {answer['backend']}, not {expected}")
    return {"per_core": answer["per_core"], "wall_rate": answer["wall_rate"]}


def _siwe_child(seconds: float) -> None:
    from eth_account import Account

    from server.adapters.wallet import recover_signer

    given = json.load(sys.stdin)
    signature = bytes.fromhex(given["signature"])
    if recover_signer(given["text"], signature) != given["address"]:
        raise SystemExit("the challenge signature does not recover the wallet's address")
    figures = timed_loop(lambda: recover_signer(given["text"], signature), seconds)
    backend = type(Account._keys.backend).__name__
    print(json.dumps({**figures, "backend": backend}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "siwe":
        _siwe_child(float(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m bench.micro siwe SECONDS")
