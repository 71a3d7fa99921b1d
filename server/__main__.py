"""Operator CLI: `python -m server serve | dev | migrate | partners create NAME [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import pathlib
import sys

from server.config import Settings


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency
        asyncio.run(coro)  # type: ignore[arg-type]


# Allocations between young collections (CPython's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def _tune_gc() -> None:
    """The objects made at startup (modules, the container, compiled statements) move to
    the permanent generation, and young collections run 30 times less often. Why: while
    10,000 streams opened, the cyclic collector was 8 % of a worker's samples (py-spy
    --native), mostly walking the same long-lived objects again and again."""
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def _worker(settings: Settings, index: int) -> None:
    """One worker process: the gRPC server on the shared port and its own gateway socket."""
    from server import app
    from server.logging import configure

    configure(settings.log_level, json=settings.log_json)
    _start_metrics(settings, index)
    running = await app.start(settings, worker=index)
    _tune_gc()
    if settings.workers == 1:
        what = "internal mTLS port" if settings.grpc_tls else "listening on"
        print(f"gRPC {what} {settings.grpc_host}:{running.port}", flush=True)
    await app.serve_until_signalled(running)


async def _serve(settings: Settings) -> None:
    if settings.workers == 1:
        await _worker(settings, 0)
        return
    from server.logging import configure
    from server.workers import supervise

    configure(settings.log_level, json=settings.log_json)
    await supervise(settings)


async def _dev(settings: Settings) -> None:
    """The whole local stack: the gRPC workers plus Envoy in front of them."""
    from gateway.lifetime import EnvoyPidfile
    from gateway.process import start_envoy, stop_envoy
    from server.edge import public_grpc, render_gateway, rest_certificate
    from server.logging import configure
    from server.workers import supervise

    configure(settings.log_level, json=settings.log_json)
    envoys = []
    # Envoy dies with this process (PR_SET_PDEATHSIG); the pidfile lets the next `dev` stop
    # one left behind anyway before it needs the same ports (gateway/lifetime.py).
    pidfile = EnvoyPidfile(pathlib.Path(settings.gateway_socket_dir) / "envoy.pid")

    async def ready(running: Settings) -> None:
        config = render_gateway(
            http_port=settings.http_port,
            admin_port=settings.envoy_admin_port,
            backends=settings.gateway_sockets(),
            rest_tls=rest_certificate(settings),
            grpc_edge=public_grpc(running),
            bind_address=settings.envoy_bind_address,
        )
        stale = await pidfile.replace_stale()
        if stale is not None:
            print(f"stopped Envoy {stale}, left behind by an earlier dev run", flush=True)
        envoys.append(await start_envoy(config, admin_port=settings.envoy_admin_port))
        pidfile.write(envoys[-1].pid)
        scheme = "https" if settings.rest_tls else "http"
        grpc_line = (
            f"127.0.0.1:{running.grpc_port} (Envoy, TLS, client certificates optional;"
            f" {settings.workers} workers behind it over mTLS)"
            if settings.grpc_tls
            else f"{settings.grpc_host}:{running.grpc_port} ({settings.workers} workers)"
        )
        print(
            f"\n  REST (Envoy)  {scheme}://127.0.0.1:{settings.http_port}\n"
            f"  API docs      {scheme}://127.0.0.1:{settings.http_port}/docs\n"
            f"  gRPC          {grpc_line}\n"
            f"  Envoy admin   http://127.0.0.1:{settings.envoy_admin_port}\n"
            f"  database      {settings.database_url}\n\n  Ctrl-C stops both.\n",
            flush=True,
        )

    try:
        await supervise(settings, ready=ready)
    finally:
        for envoy in envoys:
            await stop_envoy(envoy)
        if envoys:
            pidfile.remove()


def _start_metrics(settings: Settings, worker: int) -> None:
    """Prometheus on CUSTOMERS_METRICS_PORT + the worker's index (one endpoint each)."""
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port + worker, addr="127.0.0.1")


async def _create_partner(settings: Settings, name: str, as_json: bool) -> None:
    from server.bootstrap import build

    container = await build(settings)
    try:
        created = await container.auth.create_partner(name)
    finally:
        await container.close()
    payload = {
        "partnerId": str(created.partner_id),
        "apiKey": str(created.api_key),
        "apiSecret": created.api_secret,
    }
    if as_json:
        print(json.dumps(payload))
    else:
        print("Partner created. The secret is shown only now; store it safely.")
        for key, value in payload.items():
            print(f"  {key}: {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC server (CUSTOMERS_WORKERS processes)")
    worker = commands.add_parser("worker", help="run one worker (started by serve)")
    worker.add_argument("index", type=int)
    commands.add_parser("dev", help="run the gRPC server and Envoy (local sandbox)")
    commands.add_parser("migrate", help="bring the database schema up to date")
    edge = commands.add_parser("gateway-config", help="print the Envoy config for this database")
    edge.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="SOCKET",
        help="a worker's gateway socket (repeatable; default: this machine's workers')",
    )
    partners = commands.add_parser("partners", help="manage partners")
    partner_commands = partners.add_subparsers(dest="partner_command", required=True)
    create = partner_commands.add_parser("create", help="create a partner; prints its secret once")
    create.add_argument("name")
    create.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)

    settings = Settings()
    if args.command == "migrate":
        from server.store.migrate import upgrade

        upgrade(settings.database_url)
        return 0
    if args.command == "gateway-config":
        from server.edge import public_grpc, render_gateway, rest_certificate

        try:
            grpc_edge = public_grpc(settings)
        except ValueError as exc:
            parser.error(str(exc))
        print(
            render_gateway(
                http_port=settings.http_port,
                admin_port=settings.envoy_admin_port,
                backends=args.backend or settings.gateway_sockets(),
                rest_tls=rest_certificate(settings),
                grpc_edge=grpc_edge,
                bind_address=settings.envoy_bind_address,
            )
        )
        return 0
    if args.command == "worker":
        _run(_worker(settings, args.index))
        return 0
    if args.command == "serve":
        _run(_serve(settings))
    elif args.command == "dev":
        from server.edge import public_grpc

        try:  # a gRPC TLS setup Envoy cannot serve stops here, before any worker starts
            public_grpc(settings)
        except ValueError as exc:
            parser.error(str(exc))
        _run(_dev(settings))
    elif args.command == "partners":
        if len(args.name) > 128 or not args.name.strip():
            parser.error("NAME must be 1-128 characters")
        _run(_create_partner(settings, args.name, args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
