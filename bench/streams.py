"""Stream fan-out: N concurrent WatchCustomers streams of one partner on one server process,
then a burst of customer changes. Reports commit-to-delivery latency (p50/p99 over every
stream x event) and server memory per stream (RSS growth / N).

    .venv/bin/python -m bench.streams --streams 1000 --changes 20

Latency is measured from the change's `occurredAt` (stamped just before its commit) to the
moment the client process reads the message; client and server share the machine's clock.
The client's own Python loop is part of the figure, so it is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

import grpc
import httpx

from bench.stack import SignedPartner, Stack, create_partner, running_stack
from client.idempotency import IdempotencyKeyInterceptor
from client.signing import SigningClientInterceptor
from customers.v1 import customers_pb2, customers_pb2_grpc

STREAMS_PER_CHANNEL = 100


def rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(streams: int, changes: int, folder: pathlib.Path) -> dict[str, float]:
    # A stream's first message is a heartbeat: short ones tell us every stream is registered.
    os.environ["CUSTOMERS_STREAM_HEARTBEAT_SECONDS"] = "1"
    with running_stack("sqlite", folder) as stack:
        with httpx.Client(base_url=stack.base_url, timeout=30) as http:
            partner = SignedPartner(http, create_partner(stack.database_url), "ed25519")
            customer = partner.active_customer()
        return asyncio.run(_measure(stack, partner, customer, streams, changes))


async def _measure(
    stack: Stack, partner: SignedPartner, customer: dict[str, Any], streams: int, changes: int
) -> dict[str, float]:
    signer = SigningClientInterceptor(partner.key, authority=stack.authority)
    channels = [
        grpc.aio.insecure_channel(
            stack.grpc_target,
            interceptors=[IdempotencyKeyInterceptor(), *signer.channel_interceptors()],
        )
        for _ in range((streams + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)
    ]
    metadata = (("authorization", f"Bearer {partner.token}"),)
    await asyncio.sleep(1)
    baseline = rss_kib(stack.server.pid)
    latencies: list[float] = []
    received = 0
    ready = 0
    all_ready = asyncio.Event()
    all_received = asyncio.Event()

    async def subscriber(index: int) -> None:
        nonlocal received, ready
        stub = customers_pb2_grpc.CustomerServiceStub(channels[index // STREAMS_PER_CHANNEL])
        call = stub.WatchCustomers(customers_pb2.WatchCustomersRequest(), metadata=metadata)
        first = True
        async for message in call:
            if first:
                first = False
                ready += 1
                if ready == streams:
                    all_ready.set()
            if message.heartbeat:
                continue
            stamp = message.occurred_at.ToDatetime().timestamp()
            latencies.append(time.time() - stamp)
            received += 1
            if received == streams * changes:
                all_received.set()

    tasks = [asyncio.create_task(subscriber(i)) for i in range(streams)]
    await asyncio.wait_for(all_ready.wait(), 120)
    with_streams = rss_kib(stack.server.pid)

    stub = customers_pb2_grpc.CustomerServiceStub(channels[0])
    for index in range(changes):
        request_type = (
            customers_pb2.DeactivateCustomerRequest
            if index % 2 == 0
            else customers_pb2.ActivateCustomerRequest
        )
        method = stub.DeactivateCustomer if index % 2 == 0 else stub.ActivateCustomer
        await method(request_type(customer_id=customer["id"]), metadata=metadata)
        await asyncio.sleep(0.1)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_received.wait(), 60)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return {
        "streams": streams,
        "changes": changes,
        "delivered": received,
        "expected": streams * changes,
        "p50_ms": percentile(latencies, 0.5) * 1000 if latencies else float("nan"),
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "server_rss_base_mib": baseline / 1024,
        "server_rss_streams_mib": with_streams / 1024,
        "kib_per_stream": (with_streams - baseline) / streams,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as scratch:
        result = run(args.streams, args.changes, pathlib.Path(scratch))
    print(
        f"[streams] {result['streams']} WatchCustomers streams (one partner, one server "
        f"process), {result['changes']} changes 100 ms apart\n"
        f"  delivered {result['delivered']}/{result['expected']}\n"
        f"  commit->client latency  p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms"
        f"  (target p99 < 100 ms)\n"
        f"  server RSS {result['server_rss_base_mib']:.1f} MiB idle -> "
        f"{result['server_rss_streams_mib']:.1f} MiB with streams: "
        f"{result['kib_per_stream']:.1f} KiB per stream (target < 50 KiB)"
    )
    out = pathlib.Path("var/bench/streams.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0 if result["delivered"] == result["expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
