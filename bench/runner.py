"""Runs cases, accounts CPU per request, and takes medians.

Runs are interleaved (run 1 of every case, then run 2 ...) so a slow drift of the machine,
or a neighbour process waking up, hits every case alike instead of one. Micro-measurements
(a verify rate, a store operation in a loop) run once per round too, after the round's
loads, so each figure has its baseline from the same rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from bench.load import LoadError, LoadResult, missing
from bench.procs import (
    children_cpu_seconds,
    group_cpu,
    machine_busy_seconds,
    others_busy_cores,
    used_between,
)

# Role ("server", "envoy", "db") -> pids, asked afresh before and after every run.
Processes = Callable[[], dict[str, list[int]]]


@dataclass(frozen=True)
class Case:
    """One load to measure. `name` is unique across scenarios: a case two scenarios share
    (a baseline) runs once."""

    name: str
    label: str
    tool: str
    run: Callable[[float], LoadResult]
    # Raises LoadError unless the answers were the real successes the case is about.
    check: Callable[[LoadResult], None] = lambda _result: None
    # Called with the duration before each run, outside the CPU accounting: fresh signatures
    # (a signature is valid 300 s), pre-signed request files.
    prepare: Callable[[float], None] | None = None
    # Who serves this case's requests, by role, when not the stack (the plain-framework
    # baseline's uvicorn process): their CPU is the case's cost. The stack still has to be
    # idle before the run.
    processes: Processes | None = None


@dataclass(frozen=True)
class Micro:
    """A measurement in the bench process itself, not a load: `run` returns figures by key;
    `fields` says which to show: (key, label, format)."""

    name: str
    label: str
    run: Callable[[], dict[str, float]]
    fields: list[tuple[str, str, str]]


@dataclass(frozen=True)
class Ratio:
    label: str
    numerator: str  # case names; the ratio is of median requests/s
    denominator: str
    target: float | None = None  # SPEC figure, shown beside the ratio


@dataclass(frozen=True)
class Plan:
    """What one scenario wants measured."""

    scenario: str
    title: str
    cases: list[Case]
    ratios: list[Ratio] = field(default_factory=list)
    micros: list[Micro] = field(default_factory=list)
    # Scenario-specific lines under its table (targets, per-core figures), from the medians.
    summary: Callable[[Results], list[str]] | None = None


@dataclass(frozen=True)
class Figures:
    """One run of one case. CPU figures are microseconds per successful request."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    server_us: float
    envoy_us: float
    db_us: float  # PostgreSQL backends; 0 with SQLite, which runs inside the server
    stack_us: float  # server + Envoy + db: the cost of serving, load tool excluded
    client_us: float
    other_cores: float  # busy cores spent by everything else on the machine meanwhile
    # Requests per CPU-second of the stack, i.e. req/s / (stack CPU s / wall s): the SPEC's
    # "requests/s per server core" (server + Envoy + db; Python alone for direct gRPC).
    per_core: float = 0.0
    failed: int = 0  # transport failures (timeouts, resets), tolerated up to MAX_FAILED_SHARE
    settle_s: float = 0.0  # waited before the run for the stack to go idle


METRICS = [
    name
    for name in Figures.__dataclass_fields__
    if name not in ("requests", "seconds", "failed", "settle_s")
]
# The stack is "idle" below this many busy cores; a run starts only then (or after
# SETTLE_TIMEOUT_S), so work left over from the previous case (the webhook relay catching
# up after a burst of creates, a checkpoint) is not billed to the next one.
IDLE_CORES = 0.1
SETTLE_TIMEOUT_S = 30.0
MAX_FAILED_SHARE = 0.01


@dataclass
class MicroReport:
    name: str
    label: str
    fields: list[tuple[str, str, str]]
    runs: list[dict[str, float]] = field(default_factory=list)

    def median(self, key: str) -> float:
        return float(statistics.median(run[key] for run in self.runs))

    def spread(self, key: str) -> float:
        values = [run[key] for run in self.runs]
        middle = statistics.median(values)
        return (max(values) - min(values)) / middle if middle else 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.label,
            "median": {key: round(self.median(key), 3) for key in self.runs[0]},
            "runs": self.runs,
        }


@dataclass
class CaseReport:
    name: str
    label: str
    tool: str
    skipped: str | None = None
    runs: list[Figures] = field(default_factory=list)

    def median(self, metric: str) -> float:
        return float(statistics.median(getattr(run, metric) for run in self.runs))

    def spread(self, metric: str = "rps") -> float:
        """(max - min) / median, to tell a steady figure from a noisy one."""
        values = [getattr(run, metric) for run in self.runs]
        middle = statistics.median(values)
        return (max(values) - min(values)) / middle if middle else 0.0

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {"name": self.name, "label": self.label, "tool": self.tool}
        if self.skipped:
            body["skipped"] = self.skipped
            return body
        body["median"] = {metric: round(self.median(metric), 3) for metric in METRICS}
        body["rps_spread"] = round(self.spread(), 3)
        body["runs"] = [asdict(run) for run in self.runs]
        return body


@dataclass
class Results:
    """Medians by case and micro name, for a plan's summary."""

    cases: dict[str, CaseReport]
    micros: dict[str, MicroReport]

    def case(self, name: str, metric: str) -> float | None:
        report = self.cases.get(name)
        if report is None or not report.runs:
            return None
        return report.median(metric)

    def micro(self, name: str, key: str) -> float | None:
        report = self.micros.get(name)
        if report is None or not report.runs:
            return None
        return report.median(key)


def settle(processes: Processes, *, window: float = 0.5) -> float:
    """Wait until server, Envoy and database use under IDLE_CORES; the seconds waited."""
    started = time.monotonic()
    while True:
        pids = [pid for group in processes().values() for pid in group]
        before = group_cpu(pids)
        time.sleep(window)
        busy = used_between(before, group_cpu(pids)) / window
        waited = time.monotonic() - started
        if busy <= IDLE_CORES or waited >= SETTLE_TIMEOUT_S:
            return waited


def _together(*groups: Processes) -> Processes:
    def merged() -> dict[str, list[int]]:
        roles: dict[str, list[int]] = {}
        for group in groups:
            for role, pids in group().items():
                roles[role] = sorted({*roles.get(role, []), *pids})
        return roles

    return merged


def measure(case: Case, duration: float, processes: Processes) -> Figures:
    """One run of the case, with CPU read from /proc before and after."""
    if case.prepare is not None:
        case.prepare(duration)
    serving = case.processes or processes
    waited = settle(processes if serving is processes else _together(processes, serving))
    roles = serving()
    before = {role: group_cpu(pids) for role, pids in roles.items()}
    client_before, busy_before = children_cpu_seconds(), machine_busy_seconds()
    started = time.monotonic()
    result = case.run(duration)
    wall = time.monotonic() - started
    # Asked again: a database backend that the pool opened during the run counts too.
    roles_after = serving()
    after = {role: group_cpu(pids) for role, pids in roles_after.items()}
    client = children_cpu_seconds() - client_before
    busy = machine_busy_seconds() - busy_before

    # An error answer means the case measures the wrong thing: stop. A rare transport
    # failure (a wrk timeout on a starved core) is noted instead, up to 1% of requests.
    if result.non_2xx or result.failed > MAX_FAILED_SHARE * max(result.requests, 1):
        raise LoadError(
            f"{case.label}: {result.non_2xx} non-2xx and {result.failed} failed requests:\n"
            f"{result.output}"
        )
    if result.requests <= 0:
        raise LoadError(f"{case.label}: no successful request:\n{result.output}")
    case.check(result)

    used = {role: used_between(before.get(role, {}), after[role]) for role in after}
    per_request = 1e6 / result.requests
    stack_seconds = sum(used.values())
    return Figures(
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        requests=result.requests,
        seconds=result.seconds,
        server_us=used.get("server", 0.0) * per_request,
        envoy_us=used.get("envoy", 0.0) * per_request,
        db_us=used.get("db", 0.0) * per_request,
        stack_us=sum(used.values()) * per_request,
        client_us=client * per_request,
        other_cores=others_busy_cores(busy, sum(used.values()) + client, wall),
        per_core=result.requests / stack_seconds if stack_seconds > 0 else 0.0,
        failed=result.failed,
        settle_s=waited,
    )


def unique_cases(plans: Iterable[Plan]) -> list[Case]:
    seen: dict[str, Case] = {}
    for plan in plans:
        for case in plan.cases:
            seen.setdefault(case.name, case)
    return list(seen.values())


def unique_micros(plans: Iterable[Plan]) -> list[Micro]:
    seen: dict[str, Micro] = {}
    for plan in plans:
        for micro in plan.micros:
            seen.setdefault(micro.name, micro)
    return list(seen.values())


def run_plans(
    plans: list[Plan],
    *,
    runs: int,
    duration: float,
    warmup: float,
    processes: Processes,
    say: Callable[[str], None],
) -> Results:
    """Every case and micro of the plans, `runs` rounds, interleaved."""
    micros = unique_micros(plans)
    micro_reports = {m.name: MicroReport(m.name, m.label, m.fields) for m in micros}

    def after_round(number: int) -> None:
        for micro in micros:
            waited = settle(processes)  # micros assume an idle server
            if waited > 1:
                say(f"waited {waited:.0f} s for the stack to go idle")
            figures = micro.run()
            micro_reports[micro.name].runs.append(figures)
            shown = ", ".join(
                f"{label} {fmt.format(figures[key])}" for key, label, fmt in micro.fields
            )
            say(f"run {number}/{runs} {micro.label}: {shown}")

    cases = run_cases(
        unique_cases(plans),
        runs=runs,
        duration=duration,
        warmup=warmup,
        processes=processes,
        say=say,
        after_round=after_round,
    )
    return Results(cases, micro_reports)


def run_cases(
    cases: list[Case],
    *,
    runs: int,
    duration: float,
    warmup: float,
    processes: Processes,
    say: Callable[[str], None],
    after_round: Callable[[int], None] = lambda _number: None,
) -> dict[str, CaseReport]:
    reports = {case.name: CaseReport(case.name, case.label, case.tool) for case in cases}
    ready: list[Case] = []
    for case in cases:
        reason = missing(case.tool)
        if reason:
            reports[case.name].skipped = reason
            say(f"SKIPPED {case.label}: {reason}")
            continue
        if warmup > 0:
            # Fills the server's caches and DB pool and opens Envoy's upstream connection.
            say(f"warm-up {case.label} ({warmup:g} s)")
            measure(case, warmup, processes)
        ready.append(case)
    for number in range(1, runs + 1):
        for case in ready:
            figures = measure(case, duration, processes)
            reports[case.name].runs.append(figures)
            waited = f" (waited {figures.settle_s:.0f} s for idle)" if figures.settle_s > 1 else ""
            say(
                f"run {number}/{runs} {case.label}: {figures.rps:,.0f} req/s, "
                f"p99 {figures.p99_ms:.1f} ms, stack {figures.stack_us:,.0f} us/req{waited}"
            )
        after_round(number)
    return reports
