"""The floor of stream fan-out with grpc.aio: WatchCustomers with nothing of ours around it.

No auth, no database, no interceptors: every stream gets a heartbeat at once, then the
same prebuilt event, `--rounds` times, `--interval` apart, once `--streams` streams are
open. bench/streams.py runs it beside the real server with the same client processes, so
"our fan-out costs X us per message" has "grpc.aio alone costs Y" from the same run.
Prints one JSON line at the end: the server's CPU per message over the rounds.

    python -m bench.baseline.fanout --port 50111 --streams 2000 --rounds 10 --interval 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import uvloop
from google.protobuf import timestamp_pb2

from bench.procs import own_cpu_seconds
from customers.v1 import customers_pb2 as pb
from customers.v1 import customers_pb2_grpc


class Fanout(customers_pb2_grpc.CustomerServiceServicer):
    def __init__(self, streams: int) -> None:
        self.queues: list[asyncio.Queue[pb.CustomerEvent]] = []
        self._streams = streams
        self.all_open = asyncio.Event()

    async def WatchCustomers(
        self, request: pb.WatchCustomersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.CustomerEvent]:
        queue: asyncio.Queue[pb.CustomerEvent] = asyncio.Queue()
        self.queues.append(queue)
        if len(self.queues) == self._streams:
            self.all_open.set()
        yield pb.CustomerEvent(heartbeat=True)
        while True:
            yield await queue.get()


async def serve(port: int, streams: int, rounds: int, interval: float) -> None:
    server = grpc.aio.server(
        options=[  # as the real server: a burst of opens is taken up whole
            ("grpc.server.max_pending_requests", 20_000),
            ("grpc.server.max_pending_requests_hard_limit", 40_000),
        ]
    )
    fanout = Fanout(streams)
    customers_pb2_grpc.add_CustomerServiceServicer_to_server(fanout, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await fanout.all_open.wait()
    await asyncio.sleep(2)  # as the real bench: the clients settle, then the changes
    before = own_cpu_seconds()
    for seq in range(1, rounds + 1):
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(time.time_ns())
        event = pb.CustomerEvent(
            seq=seq, event_id="0" * 36, webhook_type="customer.updated", occurred_at=stamp
        )
        for queue in fanout.queues:
            queue.put_nowait(event)
        await asyncio.sleep(interval)
    await asyncio.sleep(3)  # the last deliveries, as the real bench waits
    used = own_cpu_seconds() - before
    print(json.dumps({"server_us_per_delivery": used / (streams * rounds) * 1e6}), flush=True)
    # Serving on until the bench kills it, once its clients have hung up: stopping here would
    # cancel their streams under them (and grpc logs every GOAWAY).
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline.fanout")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.streams, args.rounds, args.interval))


if __name__ == "__main__":
    main()
