"""The bench's output: a table for people, the same figures as JSON for tools and history."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from bench.runner import CaseReport, Plan

# (header, metric, format) for the table; CPU columns are microseconds per request.
COLUMNS: list[tuple[str, str, str]] = [
    ("req/s", "rps", "{:,.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("server us", "server_us", "{:,.0f}"),
    ("envoy us", "envoy_us", "{:,.0f}"),
    ("db us", "db_us", "{:,.0f}"),
    ("sum us", "stack_us", "{:,.0f}"),
    ("client us", "client_us", "{:,.0f}"),
    ("other cores", "other_cores", "{:.2f}"),
]
NOISY_OTHER_CORES = 0.25


def ratio(reports: dict[str, CaseReport], numerator: str, denominator: str) -> float | None:
    """Of median requests/s: what the SPEC asks, but swayed by whatever else runs."""
    top, bottom = reports.get(numerator), reports.get(denominator)
    if not top or not bottom or not top.runs or not bottom.runs:
        return None
    below = bottom.median("rps")
    return top.median("rps") / below if below else None


def cpu_ratio(reports: dict[str, CaseReport], numerator: str, denominator: str) -> float | None:
    """The same ratio predicted from CPU per request (denominator's sum us / numerator's):
    the throughput ratio if both were bound by the same cores. Steadier on a busy machine."""
    top, bottom = reports.get(numerator), reports.get(denominator)
    if not top or not bottom or not top.runs or not bottom.runs:
        return None
    cost = top.median("stack_us")
    return bottom.median("stack_us") / cost if cost else None


def table(plans: list[Plan], reports: dict[str, CaseReport], meta: dict[str, Any]) -> str:
    lines = [
        f"bench: {meta['runs']} run(s) x {meta['duration_s']:g} s per case, medians; "
        f"db {meta['database']}; server uvloop: {'yes' if meta['server_uvloop'] else 'NO'}; "
        f"{meta['cores']} cores shared by server, Envoy and load tool",
        f"h2load -c {meta['h2load']['clients']} -m {meta['h2load']['streams']}; "
        f"wrk -t{meta['wrk']['threads']} -c{meta['wrk']['connections']}",
    ]
    label_width = max(len(report.label) for report in reports.values()) + 2
    header = f"{'case':<{label_width}}{'tool':<8}" + "".join(
        f"{title:>12}" for title, _, _ in COLUMNS
    )
    header += f"{'spread':>8}"
    for plan in plans:
        lines += ["", f"[{plan.scenario}] {plan.title}", header, "-" * len(header)]
        for case in plan.cases:
            report = reports[case.name]
            row = f"{report.label:<{label_width}}{report.tool:<8}"
            if report.skipped:
                lines.append(row + f"  SKIPPED: {report.skipped}")
                continue
            row += "".join(f"{fmt.format(report.median(metric)):>12}" for _, metric, fmt in COLUMNS)
            row += f"{report.spread():>8.0%}"
            lines.append(row)
        for wanted in plan.ratios:
            value = ratio(reports, wanted.numerator, wanted.denominator)
            by_cpu = cpu_ratio(reports, wanted.numerator, wanted.denominator)
            if value is None or by_cpu is None:
                shown = "n/a (a case was skipped)"
            else:
                shown = f"{value:.2f} by req/s, {by_cpu:.2f} by CPU per request"
                if wanted.target is not None:
                    verdict = "meets" if value >= wanted.target else "BELOW"
                    shown += f"  (req/s {verdict} target >= {wanted.target:.2f})"
            lines.append(f"  {wanted.label}: {shown}")
    lines += [
        "",
        "CPU columns: microseconds of CPU per successful request (/proc utime+stime).",
        "db = PostgreSQL backends (0 with SQLite, which runs in the server);",
        "sum = server + Envoy + db; client = load tool; other cores = busy cores of",
        "everything else on the machine during the run (other sessions, PostgreSQL's",
        "own housekeeping); spread = (max - min) / median of req/s over runs.",
    ]
    failing = [
        f"{report.label} ({sum(run.failed for run in report.runs)})"
        for report in reports.values()
        if any(run.failed for run in report.runs)
    ]
    if failing:
        lines.append("NOTE: transport failures (timeouts/resets) in: " + ", ".join(failing))
    noisy = [
        report.label
        for report in reports.values()
        if report.runs and report.median("other_cores") > NOISY_OTHER_CORES
    ]
    if noisy:
        lines.append(
            f"WARNING: other processes kept > {NOISY_OTHER_CORES} cores busy during: "
            + ", ".join(noisy)
            + ". Throughput is understated there; CPU per request is still meaningful."
        )
    return "\n".join(lines)


def write_json(
    path: pathlib.Path, plans: list[Plan], reports: dict[str, CaseReport], meta: dict[str, Any]
) -> None:
    document = {
        "meta": meta,
        "scenarios": [
            {
                "name": plan.scenario,
                "title": plan.title,
                "cases": [reports[case.name].as_json() for case in plan.cases],
                "ratios": [
                    {
                        "label": wanted.label,
                        "numerator": wanted.numerator,
                        "denominator": wanted.denominator,
                        "value": _rounded(ratio(reports, wanted.numerator, wanted.denominator)),
                        "by_cpu": _rounded(
                            cpu_ratio(reports, wanted.numerator, wanted.denominator)
                        ),
                        "target": wanted.target,
                    }
                    for wanted in plan.ratios
                ],
            }
            for plan in plans
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
