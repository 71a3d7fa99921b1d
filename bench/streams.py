"""Stream fan-out: thousands of concurrent WatchCustomers streams, then customer changes.

    .venv/bin/python -m bench.streams                      # the three cases of issue 10
    .venv/bin/python -m bench.streams --streams 2000 --partners 20 --workers 1 --runs 1

For each case: the server (SQLite, `--workers` processes behind one Envoy) and client
processes that open the streams over native gRPC (100 streams per channel, each channel its
own connection) and read them. Reported, median over `--runs`:

- registration: from the clients' start to the moment every stream has its first message
  (the server sends a heartbeat at once on a stream with no backlog);
- commit-to-delivery latency, p50/p99 over every stream x change, from the change's
  `occurredAt` (stamped just before its commit) to the client reading it (one clock);
- server memory per stream: the growth of the server processes' RSS / streams.

The clients run on the same two cores as the server, in several processes so that one
Python loop reading 2,000 streams is not what is measured; their share of the CPU still
makes the latency an upper bound of the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import httpx

from bench.load import percentile
from bench.procs import group_cpu, used_between
from bench.stack import SignedPartner, Stack, create_partner, free_port, running_stack

if TYPE_CHECKING:
    from client.signing import PrivateSigningKey

STREAMS_PER_CHANNEL = 100
WATCH_METHOD = "/customers.v1.CustomerService/WatchCustomers"
REGISTER_TARGET_S = 10.0
P99_TARGET_MS = 100.0
KIB_TARGET = 50.0


@dataclass(frozen=True)
class Case:
    streams: int
    partners: int
    workers: int

    @property
    def name(self) -> str:
        spread = "one partner" if self.partners == 1 else f"{self.partners} partners"
        return f"{self.streams} streams, {spread}, {self.workers} worker(s)"


CASES = (Case(2_000, 20, 1), Case(2_000, 1, 1), Case(10_000, 20, 2))


@dataclass(frozen=True)
class Watcher:
    """What a client process needs to open one partner's streams."""

    token: str
    key_pem: bytes | None  # None: the unauthenticated baseline (bench/baseline/fanout.py)
    streams: int


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# -- the client processes ----------------------------------------------------------------


def client_main(
    pipe: Connection, target: str, authority: str, watchers: list[Watcher], presign: bool
) -> None:
    asyncio.run(_client(pipe, target, authority, watchers, presign))


def _signed_metadata(
    watcher: Watcher, authority: str, count: int
) -> list[tuple[tuple[str, str], ...]]:
    """`count` WatchCustomers calls' metadata, each signed as client.signing's interceptor
    signs a call (sign_grpc_call, its own nonce)."""
    from client.signing import load_private_key

    bearer = f"Bearer {watcher.token}"
    if watcher.key_pem is None:
        return [(("authorization", bearer),)] * count
    key = load_private_key(watcher.key_pem)
    return [_signed_once(key, bearer, authority) for _ in range(count)]


def _signed_once(
    key: PrivateSigningKey, bearer: str, authority: str
) -> tuple[tuple[str, str], ...]:
    from client.signing import new_nonce, sign_grpc_call

    added = sign_grpc_call(
        key,
        authority=authority,
        method=WATCH_METHOD,
        headers={"authorization": bearer},
        message=b"",  # WatchCustomersRequest(), serialized
        now=int(time.time()),
        nonce=new_nonce(),
    )
    return (("authorization", bearer), *added.items())


async def _client(
    pipe: Connection, target: str, authority: str, watchers: list[Watcher], presign: bool
) -> None:
    import grpc

    from client.signing import SigningClientInterceptor, load_private_key
    from customers.v1 import customers_pb2, customers_pb2_grpc

    loop = asyncio.get_running_loop()
    total = sum(w.streams for w in watchers)
    latencies: list[float] = []
    ready = 0
    first_ready = float("nan")
    all_ready = asyncio.Event()
    channels: list[grpc.aio.Channel] = []

    async def subscriber(stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        nonlocal ready, first_ready
        call = stub.WatchCustomers(customers_pb2.WatchCustomersRequest(), metadata=metadata)
        first = True
        async for message in call:
            if first:
                first = False
                ready += 1
                if ready == 1:
                    first_ready = time.time()
                if ready == total:
                    all_ready.set()
            if not message.heartbeat:
                latencies.append(time.time() - message.occurred_at.ToDatetime().timestamp())

    # Each stream's own signature (own nonce), made before the clock starts when `presign`:
    # signing 2,500 calls took a client process over a second of CPU before its first call
    # went out, several seconds on a loaded machine, and counted as the server's.
    signed: list[list[tuple[tuple[str, str], ...]]] = [
        _signed_metadata(w, authority, w.streams) if presign else [] for w in watchers
    ]
    pipe.send(("loaded",))  # imports (and signatures) done: the clock may start
    await loop.run_in_executor(None, pipe.recv)  # "go": every client starts together
    tasks = []
    for watcher, presigned in zip(watchers, signed, strict=True):
        interceptors = (
            []
            if watcher.key_pem is None or presign
            else SigningClientInterceptor(
                load_private_key(watcher.key_pem), authority=authority
            ).channel_interceptors()
        )
        metadata = (("authorization", f"Bearer {watcher.token}"),)
        for start in range(0, watcher.streams, STREAMS_PER_CHANNEL):
            channel = grpc.aio.insecure_channel(
                target,
                interceptors=interceptors,
                options=[("grpc.use_local_subchannel_pool", 1)],  # a connection each
            )
            channels.append(channel)
            stub = customers_pb2_grpc.CustomerServiceStub(channel)
            count = min(STREAMS_PER_CHANNEL, watcher.streams - start)
            tasks += [
                asyncio.create_task(
                    subscriber(stub, presigned[start + i] if presigned else metadata)
                )
                for i in range(count)
            ]
    try:
        await asyncio.wait_for(all_ready.wait(), 120)
        pipe.send(("ready", time.time(), ready, first_ready))
    except TimeoutError:
        pipe.send(("ready", float("nan"), ready, first_ready))
    await loop.run_in_executor(None, pipe.recv)  # "stop", once the changes are delivered
    failed = sum(1 for t in tasks if t.done())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    pipe.send(("done", latencies, failed))


# -- the orchestration -------------------------------------------------------------------


def run_case(
    case: Case,
    changes: int,
    clients: int,
    interval: float,
    folder: pathlib.Path,
    presign: bool = True,
) -> dict[str, Any]:
    # The first heartbeat comes at once; later ones must not disturb the measurement.
    os.environ["CUSTOMERS_STREAM_HEARTBEAT_SECONDS"] = "60"
    with (
        running_stack("sqlite", folder, workers=case.workers) as stack,
        httpx.Client(base_url=stack.base_url, timeout=30) as http,
    ):
        partners = [
            SignedPartner(http, create_partner(stack.database_url), "ed25519")
            for _ in range(case.partners)
        ]
        customers = [partner.active_customer() for partner in partners]
        return _measure(stack, case, partners, customers, changes, clients, interval, presign)


def _measure(
    stack: Stack,
    case: Case,
    partners: list[SignedPartner],
    customers: list[dict[str, Any]],
    changes: int,
    clients: int,
    interval: float,
    presign: bool,
) -> dict[str, Any]:
    from client.signing import private_key_pem

    per_partner = case.streams // case.partners
    plans: list[list[Watcher]] = [[] for _ in range(clients)]
    for partner in partners:
        # Each partner's streams split over the clients, so every client sees every partner.
        share, extra = divmod(per_partner, clients)
        for client in range(clients):
            count = share + (1 if client < extra else 0)
            if count:
                plans[client].append(Watcher(partner.token, private_key_pem(partner.key), count))
    time.sleep(1)
    server_pids = stack.processes()["server"]
    idle = rss_kib(server_pids)
    seen: dict[str, float] = {}

    def changes_made() -> None:
        seen["rss"] = rss_kib(server_pids)
        cpu_before = group_cpu(server_pids)
        for round_ in range(changes):
            action = "deactivate" if round_ % 2 == 0 else "activate"
            for partner, customer in zip(partners, customers, strict=True):
                answer = partner.call("PATCH", f"/customers/{customer['id']}/{action}")
                if answer.status_code != 200:
                    raise RuntimeError(f"{action}: {answer.status_code} {answer.text}")
            time.sleep(interval)
        time.sleep(3)  # the last deliveries
        seen["cpu"] = used_between(cpu_before, group_cpu(server_pids))

    watched = _watch(
        stack.grpc_target, stack.authority, plans, changes_made, server_pids, presign=presign
    )
    latencies = watched.latencies
    with_streams = seen["rss"]
    return {
        "case": case.name,
        "streams": case.streams,
        "failed_streams": watched.failed,
        "delivered": len(latencies),
        "expected": per_partner * case.partners * changes,
        "register_s": watched.register_s,
        "register_first_s": watched.first_s,
        "register_server_cpu_s": watched.register_server_cpu_s,
        "register_client_cpu_s": watched.register_client_cpu_s,
        "p50_ms": percentile(sorted(latencies), 50) * 1000 if latencies else float("nan"),
        "p99_ms": percentile(sorted(latencies), 99) * 1000 if latencies else float("nan"),
        # Changes, their fan-out and the idle ticks: the server's side alone.
        "server_us_per_delivery": seen["cpu"] / max(1, len(latencies)) * 1e6,
        "server_rss_idle_mib": idle / 1024,
        "server_rss_streams_mib": with_streams / 1024,
        "kib_per_stream": (with_streams - idle) / case.streams,
    }


@dataclass(frozen=True)
class Watched:
    latencies: list[float]
    register_s: float  # from "go" to the last stream's first message
    first_s: float  # from "go" to the first stream's first message
    register_server_cpu_s: float  # what the server processes spent meanwhile
    register_client_cpu_s: float  # and the client processes
    failed: int  # streams that ended early


def _watch(
    target: str,
    authority: str,
    plans: list[list[Watcher]],
    between: Callable[[], None],
    server_pids: list[int],
    *,
    presign: bool = True,
) -> Watched:
    """Client processes open their streams together; once all are registered `between`
    runs (the changes); then what the clients saw."""
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for plan in plans:
        ours, theirs = context.Pipe()
        process = context.Process(
            target=client_main, args=(theirs, target, authority, plan, presign)
        )
        process.start()
        pipes.append(ours)
        processes.append(process)
    # The clients import grpc and friends before the clock starts: on a loaded machine that
    # took longer than the 2 s slept here before, and was counted as registration.
    for pipe in pipes:
        pipe.recv()
    clients = [process.pid for process in processes if process.pid is not None]
    server_before, clients_before = group_cpu(server_pids), group_cpu(clients)
    started = time.time()
    for pipe in pipes:
        pipe.send("go")
    answers = [pipe.recv() for pipe in pipes]
    registered = max(at for _tag, at, _ready, _first in answers) - started
    first = min(first for _tag, _at, _ready, first in answers) - started
    server_cpu = used_between(server_before, group_cpu(server_pids))
    client_cpu = used_between(clients_before, group_cpu(clients))
    between()
    latencies: list[float] = []
    failed = 0
    for pipe in pipes:
        pipe.send("stop")
    for pipe in pipes:
        _tag, theirs, dead = pipe.recv()
        latencies += theirs
        failed += dead
    for process in processes:
        process.join(30)
    return Watched(latencies, registered, first, server_cpu, client_cpu, failed)


def run_baseline(streams: int, changes: int, clients: int, interval: float) -> dict[str, Any]:
    """The same clients against plain grpc.aio fan-out (bench/baseline/fanout.py)."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.baseline.fanout",
            f"--port={port}",
            f"--streams={streams}",
            f"--rounds={changes}",
            f"--interval={interval}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        per_client = [Watcher("", None, streams // clients) for _ in range(clients)]
        figures: dict[str, float] = {}

        def rounds_done() -> None:
            assert server.stdout is not None
            figures.update(json.loads(server.stdout.readline()))  # after its last round

        watched = _watch(
            f"127.0.0.1:{port}", "", [[w] for w in per_client], rounds_done, [server.pid]
        )
        latencies = watched.latencies
    finally:
        server.kill()
        server.wait()
    return {
        "streams": streams,
        "delivered": len(latencies),
        "expected": streams // clients * clients * changes,
        "register_s": watched.register_s,
        "p50_ms": percentile(sorted(latencies), 50) * 1000 if latencies else float("nan"),
        "p99_ms": percentile(sorted(latencies), 99) * 1000 if latencies else float("nan"),
        **figures,
    }


def summarize(case: Case, runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    return {
        **asdict(case),
        "case": case.name,
        "runs": runs,
        "complete": all(r["delivered"] == r["expected"] and not r["failed_streams"] for r in runs),
        "register_s": median("register_s"),
        "register_first_s": median("register_first_s"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "kib_per_stream": median("kib_per_stream"),
        "register_server_cpu_s": median("register_server_cpu_s"),
        "register_client_cpu_s": median("register_client_cpu_s"),
        "server_us_per_delivery": median("server_us_per_delivery"),
    }


def print_summary(summary: dict[str, Any]) -> None:
    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(
        f"[streams] {summary['case']}: "
        f"{'every change delivered' if summary['complete'] else 'INCOMPLETE'} "
        f"({len(summary['runs'])} runs, medians)\n"
        f"  registered in {summary['register_s']:.1f} s "
        f"(target < {REGISTER_TARGET_S:.0f} s: {mark(summary['register_s'] < REGISTER_TARGET_S)}), "
        f"the first after {summary['register_first_s']:.1f} s; "
        f"CPU meanwhile: server {summary['register_server_cpu_s']:.1f} s, "
        f"clients {summary['register_client_cpu_s']:.1f} s\n"
        f"  commit->client  p50 {summary['p50_ms']:.1f} ms  p99 {summary['p99_ms']:.1f} ms "
        f"(target p99 < {P99_TARGET_MS:.0f} ms: {mark(summary['p99_ms'] < P99_TARGET_MS)})\n"
        f"  {summary['kib_per_stream']:.1f} KiB of server RSS per stream "
        f"(target < {KIB_TARGET:.0f}: {mark(summary['kib_per_stream'] < KIB_TARGET)})\n"
        f"  {summary['server_us_per_delivery']:.0f} us of server CPU per delivered message",
        flush=True,
    )
    if baseline := summary.get("baseline"):
        us = statistics.median(run["server_us_per_delivery"] for run in baseline)
        p99 = statistics.median(run["p99_ms"] for run in baseline)
        print(
            f"  baseline, plain grpc.aio fan-out (bench/baseline/fanout.py), same clients: "
            f"p99 {p99:.1f} ms, {us:.0f} us per message; ours / baseline CPU "
            f"{summary['server_us_per_delivery'] / us:.2f}x",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams")
    parser.add_argument("--streams", type=int, help="one case instead of the three")
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--changes", type=int, default=10, help="rounds of changes")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between rounds")
    parser.add_argument("--clients", type=int, default=0, help="client processes (0: 2 per 5k)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--sign-on-call",
        action="store_true",
        help="sign each call as it is made, on the clock (default: signed before it starts)",
    )
    args = parser.parse_args(argv)
    cases = [Case(args.streams, args.partners, args.workers)] if args.streams is not None else CASES
    summaries = []
    for case in cases:
        clients = args.clients or max(2, 2 * (case.streams // 5_000))
        runs = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="bench-streams-") as scratch:
                runs.append(
                    run_case(
                        case,
                        args.changes,
                        clients,
                        args.interval,
                        pathlib.Path(scratch),
                        presign=not args.sign_on_call,
                    )
                )
        summary = summarize(case, runs)
        if case.workers == 1 and case.partners == 1:  # every change to every stream, as there
            summary["baseline"] = [
                run_baseline(case.streams, args.changes, clients, args.interval)
                for _ in range(args.runs)
            ]
        print_summary(summary)
        summaries.append(summary)
    out = pathlib.Path("var/bench/streams.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summaries, indent=2))
    return 0 if all(s["complete"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
