"""Webhook delivery rate: R local receivers subscribed, a burst of E change events, how fast
do deliveries arrive; then the same with one extra receiver that takes 5 s to answer, to
see how much it slows the others.

    .venv/bin/python -m bench.webhooks --receivers 4 --events 500

The burst is written straight into the outbox by a second process (the same code path a
committing change takes), so the API's own cost does not cap the delivery rate measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from bench.procs import group_cpu, used_between
from bench.stack import SignedPartner, create_partner, free_port, running_stack
from server.domain.events import ChangeEvent, EventType
from server.store import outbox
from server.store.engine import make_engine
from server.store.unit_of_work import SqlUnitOfWorkFactory


class Receiver:
    """A real HTTP server on loopback that counts deliveries (deduplicated by webhook-id)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if delay:
                    time.sleep(delay)
                with receiver.lock:
                    receiver.seen.setdefault(self.headers["webhook-id"], time.monotonic())
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()


def burst(database_url: str, partner_id: str, count: int) -> None:
    async def write() -> None:
        engine = make_engine(database_url)
        uow = SqlUnitOfWorkFactory(engine)
        now = datetime.now(UTC)
        events = [
            ChangeEvent(
                event_id=uuid.uuid4(),
                partner_id=uuid.UUID(partner_id),
                type=EventType.CUSTOMER_UPDATED,
                entity_id=uuid.uuid4(),
                payload={"id": str(uuid.uuid4()), "status": "active"},
                occurred_at=now,
            )
            for _ in range(count)
        ]
        async with uow(write=True) as unit:
            await outbox.write(unit.session, events)
            await unit.commit()
        await engine.dispose()

    asyncio.run(write())


def measure(
    partner: SignedPartner,
    database_url: str,
    receivers: list[Receiver],
    events: int,
    watched: list[Receiver],
    server: list[int],
) -> tuple[float, float]:
    """Deliveries per second to `watched` receivers for a burst of `events` events, and
    the server's CPU per delivery (microseconds)."""
    cpu = group_cpu(server)
    started = time.monotonic()
    burst(database_url, partner.partner.partner_id, events)
    deadline = started + 120
    while time.monotonic() < deadline and any(len(r.seen) < events for r in watched):
        time.sleep(0.05)
    done = max(max(r.seen.values(), default=started) for r in watched)
    delivered = sum(len(r.seen) for r in watched)
    used = used_between(cpu, group_cpu(server))
    return delivered / max(done - started, 1e-6), used / max(delivered, 1) * 1e6


def run_once(receivers: int, events: int) -> dict[str, float]:
    """One stack: the rate to `receivers` alone, then beside a receiver taking 5 s."""
    results: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-webhooks-") as scratch,
        running_stack("sqlite", pathlib.Path(scratch)) as stack,
        httpx.Client(base_url=stack.base_url, timeout=30) as http,
    ):
        partner = SignedPartner(http, create_partner(stack.database_url), "ed25519")
        fast = [Receiver() for _ in range(receivers)]
        for receiver in fast:
            answer = partner.call(
                "PUT",
                "/webhooks",
                json={"callbackUrl": receiver.url, "types": ["customer.updated"]},
            )
            if answer.status_code != 201:
                raise RuntimeError(f"subscribe failed: {answer.status_code} {answer.text}")
        server = stack.processes()["server"]
        results["alone"], results["alone_cpu_us"] = measure(
            partner, stack.database_url, fast, events, fast, server
        )
        slow = Receiver(delay=5.0)
        partner.call(
            "PUT", "/webhooks", json={"callbackUrl": slow.url, "types": ["customer.updated"]}
        )
        for receiver in fast:
            receiver.seen.clear()
        results["with_slow"], results["with_slow_cpu_us"] = measure(
            partner, stack.database_url, fast, events, fast, server
        )
        for receiver in [*fast, slow]:
            receiver.close()
    results["slowdown"] = 1 - results["with_slow"] / results["alone"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    runs = [run_once(args.receivers, args.events) for _ in range(args.runs)]
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    rates = ", ".join(f"{run['alone']:.0f}" for run in runs)
    print(
        f"[webhooks] {args.receivers} receivers x {args.events} events, SQLite, "
        f"median of {len(runs)} runs\n"
        f"  deliveries/s: {median['alone']:.0f} (target >= 500), "
        f"{median['alone_cpu_us']:.0f} us of server CPU per delivery "
        f"(runs: {rates})\n"
        f"  with one receiver taking 5 s per delivery: {median['with_slow']:.0f}/s to the "
        f"others, {median['slowdown'] * 100:.0f}% lower (target < 10%)"
    )
    out = pathlib.Path("var/bench/webhooks.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"median": median, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
