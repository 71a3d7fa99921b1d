"""`python -m bench.soak [--minutes 10] [--db postgresql] [--workers 2]`: a soak run.

The real stack (database, server workers, Envoy) under a steady mixed load for a long time:
signed reads (`GET /customers/{id}`, 80 %) and idempotent creates (20 %) from several
partners, an SSE stream per partner open the whole time and a webhook subscription per
partner delivering to local receivers. First a short closed-loop run finds the peak
requests/s of that mix on this machine; the soak then runs open-loop at half of it.

Every minute it prints what would show a leak or a slow build-up: server RSS, open file
descriptors (server and Envoy), database connections, p50/p99 latency, requests and errors,
webhook deliveries and streamed events. At the end: the growth from the second minute to
the last (the first warms caches and pools) and whether every event reached its webhook
receiver and its stream. Figures only, no pass/fail beyond "flat" in the summary line; a
bench, not a test (bench/RESULTS.md has a run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench.load import percentile
from bench.stack import (
    PG_SERVER,
    ROOT,
    SignedPartner,
    Stack,
    children,
    create_partner,
    postgres_unavailable,
    running_stack,
)
from bench.webhooks import Receiver
from client.idempotency import new_key
from client.signing import SigningAuth

PARTNERS = 4
CUSTOMERS_PER_PARTNER = 20  # read targets made before the run
READ_SHARE = 0.8
CALIBRATION_SECONDS = 15.0
CALIBRATION_CONCURRENCY = 16
MAX_IN_FLIGHT = 256
OUTPUT = ROOT / "var" / "bench" / "soak.json"


@dataclass
class Minute:
    minute: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_rss_mib: float
    server_fds: int
    envoy_fds: int
    db_connections: int
    deliveries: int  # webhook deliveries received so far (distinct webhook-id)
    streamed: int  # stream events received so far


@dataclass
class Load:
    """The partners' clients and what they have seen."""

    partners: list[tuple[SignedPartner, httpx.AsyncClient]]
    customer_ids: list[list[str]]
    latencies: list[float] = field(default_factory=list)  # ms, since the last sample
    errors: int = 0
    creates: list[int] = field(default_factory=lambda: [0] * PARTNERS)
    streamed: list[int] = field(default_factory=lambda: [0] * PARTNERS)
    expected_deliveries: int = 0  # every customer.updated event of the run
    expected_streamed: int = 0  # the events committed while the streams were open
    streamed_in_soak: int = 0

    async def one(self) -> None:
        index = random.randrange(PARTNERS)
        partner, http = self.partners[index]
        headers = {"Authorization": f"Bearer {partner.token}"}
        started = time.perf_counter()
        try:
            if random.random() < READ_SHARE:
                target = random.choice(self.customer_ids[index])
                answer = await http.get(f"/customers/{target}", headers=headers)
                ok = answer.status_code == 200
            else:
                wallet = os.urandom(20).hex()
                answer = await http.post(
                    "/customers",
                    json={"chainId": f"eip155:1:0x{wallet}", "externalId": wallet},
                    headers={**headers, "Idempotency-Key": new_key()},
                )
                ok = answer.status_code == 201
                if ok:
                    self.creates[index] += 1
        except httpx.HTTPError:
            ok = False
        self.latencies.append((time.perf_counter() - started) * 1000)
        if not ok:
            self.errors += 1

    async def watch(self, index: int, stop: asyncio.Event) -> None:
        """One SSE stream from now on; counts the events (a reconnect would lose none, but
        this bench counts on it never being needed)."""
        partner, http = self.partners[index]
        headers = {"Authorization": f"Bearer {partner.token}"}
        async with http.stream("GET", "/customers:watch", headers=headers) as answer:
            async for line in answer.aiter_lines():
                if stop.is_set():
                    return
                if line.startswith("data:") and '"heartbeat"' not in line:
                    self.streamed[index] += 1


def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _fds(pids: list[int]) -> int:
    count = 0
    for pid in pids:
        with contextlib.suppress(OSError):  # the process is gone
            count += len(os.listdir(f"/proc/{pid}/fd"))
    return count


def _db_connections(stack: Stack, server_pids: list[int]) -> int:
    """PostgreSQL: the backends of the run's database. SQLite: open handles on its file."""
    if stack.kind == "postgresql":
        import psycopg

        name = stack.database_url.rsplit("/", 1)[1]
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone()
        return int(row[0]) if row else 0
    database = str(stack.folder / "bench.db")  # bench/stack.py's SQLite file
    handles = 0
    for pid in server_pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == database:
                    handles += 1
        except OSError:
            pass
    return handles


def _setup(stack: Stack, receivers: list[Receiver]) -> tuple[list[SignedPartner], list[list[str]]]:
    partners: list[SignedPartner] = []
    ids: list[list[str]] = []
    http = httpx.Client(base_url=stack.base_url, timeout=30)
    for index in range(PARTNERS):
        partner = SignedPartner(http, create_partner(stack.database_url), "ed25519")
        subscribed = partner.call(
            "PUT",
            "/webhooks",
            json={"callbackUrl": receivers[index].url, "types": ["customer.updated"]},
        )
        if subscribed.status_code != 201:
            raise RuntimeError(f"webhook subscription failed: {subscribed.text}")
        ids.append([partner.new_customer()[0]["id"] for _ in range(CUSTOMERS_PER_PARTNER)])
        partners.append(partner)
    return partners, ids


async def _calibrate(load: Load) -> float:
    """Closed loop, CALIBRATION_CONCURRENCY at a time: the mix's peak requests/s."""
    deadline = time.monotonic() + CALIBRATION_SECONDS
    done = 0

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await load.one()
            done += 1

    await asyncio.gather(*(worker() for _ in range(CALIBRATION_CONCURRENCY)))
    load.latencies.clear()
    load.errors = 0
    return done / CALIBRATION_SECONDS


async def _soak(
    stack: Stack, load: Load, rate: float, minutes: int, receivers: list[Receiver]
) -> list[Minute]:
    stop = asyncio.Event()
    watchers = [asyncio.create_task(load.watch(index, stop)) for index in range(PARTNERS)]
    await asyncio.sleep(1)  # the streams are registered before anything is counted
    streamed_before = sum(load.streamed)
    creates_before = sum(load.creates)
    expected_deliveries = PARTNERS * CUSTOMERS_PER_PARTNER  # the setup's customers, and:
    pending: set[asyncio.Task[None]] = set()
    samples: list[Minute] = []
    started = time.monotonic()
    next_sample = started + 60
    sent = 0
    while len(samples) < minutes:
        now = time.monotonic()
        due = int((now - started) * rate) - sent
        for _ in range(max(0, min(due, MAX_IN_FLIGHT - len(pending)))):
            task = asyncio.create_task(load.one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        if due > MAX_IN_FLIGHT:  # the server fell behind: drop what cannot be sent
            sent += due - MAX_IN_FLIGHT
            load.errors += due - MAX_IN_FLIGHT
        if now >= next_sample:
            samples.append(_sample(stack, load, len(samples) + 1, receivers, streamed_before))
            next_sample += 60
            print(_row(samples[-1]), flush=True)
        await asyncio.sleep(0.005)
    await asyncio.gather(*pending)
    # Drain: every create's event should reach its receiver and its stream.
    load.expected_deliveries = expected_deliveries + sum(load.creates)
    load.expected_streamed = sum(load.creates) - creates_before
    for _ in range(150):  # up to 30 s
        if (
            sum(len(r.seen) for r in receivers) >= load.expected_deliveries
            and sum(load.streamed) - streamed_before >= load.expected_streamed
        ):
            break
        await asyncio.sleep(0.2)
    load.streamed_in_soak = sum(load.streamed) - streamed_before
    stop.set()
    for watcher in watchers:
        watcher.cancel()
    return samples


def _sample(
    stack: Stack, load: Load, minute: int, receivers: list[Receiver], streamed_before: int
) -> Minute:
    latencies = sorted(load.latencies)
    load.latencies = []
    errors, load.errors = load.errors, 0
    server_pids = [stack.server.pid, *children(stack.server.pid)]
    return Minute(
        minute=minute,
        requests=len(latencies),
        errors=errors,
        p50_ms=round(percentile(latencies, 50), 2) if latencies else 0.0,
        p99_ms=round(percentile(latencies, 99), 2) if latencies else 0.0,
        server_rss_mib=round(_rss_mib(server_pids), 1),
        server_fds=_fds(server_pids),
        envoy_fds=_fds([stack.envoy.pid]),
        db_connections=_db_connections(stack, server_pids),
        deliveries=sum(len(r.seen) for r in receivers),
        streamed=sum(load.streamed) - streamed_before,
    )


TABLE_HEADING = (
    "min  requests  errors  p50 ms  p99 ms  server RSS MiB  server fds  envoy fds"
    "  db conns  deliveries  streamed"
)


def _row(m: Minute) -> str:
    return (
        f"{m.minute:>3}  {m.requests:>8}  {m.errors:>6}  {m.p50_ms:>6.1f}  {m.p99_ms:>6.1f}"
        f"  {m.server_rss_mib:>14.1f}  {m.server_fds:>10}  {m.envoy_fds:>9}"
        f"  {m.db_connections:>8}  {m.deliveries:>10}  {m.streamed:>8}"
    )


def _verdict(samples: list[Minute]) -> dict[str, Any]:
    """Growth from the second minute to the last (the first warms pools and caches)."""
    if len(samples) < 3:
        return {"note": "fewer than 3 minutes: no trend"}
    first, last = samples[1], samples[-1]
    p99s = [m.p99_ms for m in samples[1:]]
    half = samples[len(samples) // 2 :]
    growth = {
        "rss_mib": round(last.server_rss_mib - first.server_rss_mib, 1),
        "rss_pct": round(100 * (last.server_rss_mib / first.server_rss_mib - 1), 1),
        # A cache filling shows as growth that stops; a leak keeps its slope to the end.
        "rss_mib_per_min_second_half": round(
            (half[-1].server_rss_mib - half[0].server_rss_mib) / max(len(half) - 1, 1), 2
        ),
        "server_fds": last.server_fds - first.server_fds,
        "envoy_fds": last.envoy_fds - first.envoy_fds,
        "db_connections": last.db_connections - first.db_connections,
        "p99_last_over_median": round(last.p99_ms / statistics.median(p99s), 2),
    }
    growth["flat"] = (
        growth["rss_pct"] < 2
        and abs(growth["server_fds"]) <= 8
        and abs(growth["envoy_fds"]) <= 8
        and abs(growth["db_connections"]) <= 2
        and growth["p99_last_over_median"] < 2
    )
    return growth


async def _run(
    stack: Stack,
    minutes: int,
    rate: float | None,
    receivers: list[Receiver],
    partners: list[SignedPartner],
    ids: list[list[str]],
) -> dict[str, Any]:
    clients = [
        httpx.AsyncClient(
            base_url=stack.base_url,
            timeout=httpx.Timeout(30, read=None),
            auth=SigningAuth(partner.key),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        for partner in partners
    ]
    try:
        load = Load(list(zip(partners, clients, strict=True)), ids)
        peak = await _calibrate(load)
        target = rate if rate is not None else peak / 2
        print(f"peak of the mix: {peak:.0f} req/s; soaking at {target:.0f} req/s", flush=True)
        print(TABLE_HEADING, flush=True)
        samples = await _soak(stack, load, target, minutes, receivers)
    finally:
        for client in clients:
            await client.aclose()
    return {
        "peak_rps": round(peak, 1),
        "rate_rps": round(target, 1),
        "minutes": [asdict(m) for m in samples],
        "events": load.expected_deliveries,
        "delivered": sum(len(r.seen) for r in receivers),
        "events_while_streaming": load.expected_streamed,
        "streamed": load.streamed_in_soak,
        "growth": _verdict(samples),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=None, help="req/s (default: peak / 2)")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM (make's, or a timeout's): unwind, so the stack is torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.db == "postgresql" and (why := postgres_unavailable()):
        print(why, file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="soak-") as scratch,
        running_stack(args.db, pathlib.Path(scratch), args.workers) as stack,
    ):
        print(f"soak: {args.minutes} min, {args.db}, {args.workers} worker(s)", flush=True)
        receivers = [Receiver() for _ in range(PARTNERS)]
        try:
            partners, ids = _setup(stack, receivers)  # before the event loop starts
            summary = asyncio.run(_run(stack, args.minutes, args.rate, receivers, partners, ids))
        finally:
            for receiver in receivers:
                receiver.close()
    summary.update(db=args.db, workers=args.workers)
    growth = summary["growth"]
    print(
        f"webhooks: {summary['delivered']} of {summary['events']} events delivered;"
        f" streams: {summary['streamed']} of {summary['events_while_streaming']} received"
    )
    print(f"growth, minute 2 -> last: {json.dumps(growth)}")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(summary, indent=2))
    print(f"written to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
