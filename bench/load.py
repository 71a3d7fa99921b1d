"""The load generators (h2load for gRPC, wrk for REST) and their output, parsed.

Both are C programs, so the client side costs little of the 2 shared cores. Neither is
installed by the bench: a missing tool skips its cases with a message saying what to install.
Signed requests are signed in Python before a run (no nonce, so one signature can be sent
again and again inside its 300 s window), never by the tools themselves.
"""

from __future__ import annotations

import math
import pathlib
import re
import shutil
import subprocess
from dataclasses import dataclass, field

# One command for both: the bench needs both tools, and installing one at a time is a trap.
INSTALL_HINT = "apt-get install -y wrk nghttp2-client"
TOOLS = ("wrk", "h2load")


class LoadError(RuntimeError):
    """A tool failed, or its answers were not the successes the case expects."""


@dataclass(frozen=True)
class LoadResult:
    requests: int  # completed and counted as successes by the tool
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    failed: int = 0  # transport-level failures (reset, timeout, socket errors)
    data_bytes: int | None = None  # h2load: DATA frame payload received, i.e. gRPC messages
    output: str = field(default="", repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def missing(tool: str) -> str | None:
    """None when the tool is on PATH, else a message saying how to get it."""
    if shutil.which(tool):
        return None
    return f"{tool} not found: install it with `{INSTALL_HINT}` (h2load is in nghttp2-client)"


def version(tool: str) -> str:
    if missing(tool):
        return "missing"
    args = [tool, "--version"] if tool == "h2load" else [tool, "-v"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip().splitlines()[0]


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message: flag 0, 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def h2load(
    url: str,
    body: pathlib.Path,
    *,
    duration: float,
    clients: int,
    streams: int,
    headers: dict[str, str],
    log_path: pathlib.Path,
) -> LoadResult:
    """A timed h2load run POSTing `body` (a framed gRPC request) to a gRPC method.

    h2load prints no percentiles, so latencies come from its per-request log file.
    """
    args = ["h2load", "-D", f"{duration:g}", "-c", str(clients), "-m", str(streams), "-t", "1"]
    all_headers = {"content-type": "application/grpc", "te": "trailers", **headers}
    for name, value in all_headers.items():
        args += ["-H", f"{name}: {value}"]
    args += ["-d", str(body), f"--log-file={log_path}", url]
    output = _run(args, timeout=duration + 30)

    finished = _search(r"finished in ([\d.]+)s", output, "finished")
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
    )
    statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    data = re.search(r"traffic: .*?, .*? headers .*?, \S+ \((\d+)\) data", output)
    if not counts or not statuses or not data:
        raise LoadError(f"unexpected h2load output:\n{output}")
    succeeded = int(counts[3])
    failed = int(counts[4]) + int(counts[5]) + int(counts[6])
    non_2xx = sum(int(statuses[i]) for i in (2, 3, 4))
    latencies = sorted(_h2load_latencies_ms(log_path))
    return LoadResult(
        requests=succeeded,
        seconds=float(finished),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        non_2xx=non_2xx,
        failed=failed,
        data_bytes=int(data[1]),
        output=output,
    )


def _h2load_latencies_ms(log_path: pathlib.Path) -> list[float]:
    """Column 3 of h2load's log: microseconds from request start to end of response."""
    values: list[float] = []
    with log_path.open() as log:
        for line in log:
            columns = line.split("\t")
            if len(columns) >= 3 and columns[1].startswith("2"):
                values.append(int(columns[2]) / 1000)
    return values


def wrk(
    url: str,
    *,
    duration: float,
    threads: int,
    connections: int,
    headers: dict[str, str],
    script: pathlib.Path | None = None,
    script_args: list[str] | None = None,
) -> LoadResult:
    """A timed wrk run on one URL (GETs, or whatever `script` sends); percentiles from wrk's
    --latency histogram."""
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    # wrk's default 2 s timeout counts a request stuck behind a starved core as an error.
    args += ["--timeout", "10s", "--latency", url]
    if script_args:
        args += ["--", *script_args]
    output = _run(args, timeout=duration + 30)

    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", output)
    if not total:
        raise LoadError(f"unexpected wrk output:\n{output}")
    non_2xx_match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(non_2xx_match[1]) if non_2xx_match else 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    failed = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return LoadResult(
        requests=int(total[1]) - non_2xx,
        seconds=_to_ms(total[2], total[3]) / 1000,
        p50_ms=_wrk_percentile_ms(output, "50"),
        p99_ms=_wrk_percentile_ms(output, "99"),
        non_2xx=non_2xx,
        failed=failed,
        output=output,
    )


def _wrk_percentile_ms(output: str, pct: str) -> float:
    found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return _to_ms(found[1], found[2]) if found else math.nan


def _to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _run(args: list[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"{args[0]} did not finish in {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise LoadError(f"{args[0]} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _search(pattern: str, text: str, what: str) -> str:
    found = re.search(pattern, text)
    if not found:
        raise LoadError(f"no '{what}' in tool output:\n{text}")
    return found[1]
