"""The bench's output: a table for people, the same figures as JSON for tools and history."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

from bench.runner import CaseReport, Plan, Results

# (header, metric, format) for the table; CPU columns are microseconds per request.
COLUMNS: list[tuple[str, str, str]] = [
    ("req/s", "rps", "{:,.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("server us", "server_us", "{:,.0f}"),
    ("envoy us", "envoy_us", "{:,.0f}"),
    ("db us", "db_us", "{:,.0f}"),
    ("sum us", "stack_us", "{:,.0f}"),
    ("req/core", "per_core", "{:,.0f}"),
    ("client us", "client_us", "{:,.0f}"),
    ("other cpu", "other_cores", "{:.2f}"),
]
WIDTH = 10
NOISY_OTHER_CORES = 0.25


@dataclass
class Section:
    """One stack (one database) and what ran on it; `skipped` when it could not start."""

    database: str
    plans: list[Plan] = field(default_factory=list)
    results: Results | None = None
    skipped: str | None = None


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


def header_lines(meta: dict[str, Any]) -> list[str]:
    return [
        f"bench: {meta['runs']} run(s) x {meta['duration_s']:g} s per case, medians; "
        f"server uvloop: {'yes' if meta['server_uvloop'] else 'NO'}; "
        f"{meta['cores']} cores shared by server, Envoy, database and load tool",
        f"h2load -c {meta['h2load']['clients']} -m {meta['h2load']['streams']}; "
        f"wrk -t{meta['wrk']['threads']} -c{meta['wrk']['connections']}; "
        f"load average {meta['loadavg_before']:.2f} before, {meta['loadavg_after']:.2f} after",
    ]


def table(sections: list[Section], meta: dict[str, Any]) -> str:
    lines = header_lines(meta)
    every = [
        report
        for section in sections
        if section.results
        for report in section.results.cases.values()
    ]
    label_width = max([len(report.label) for report in every] + [40]) + 2
    header = f"{'case':<{label_width}}{'tool':<8}" + "".join(
        f"{title:>{WIDTH}}" for title, _, _ in COLUMNS
    )
    header += f"{'spread':>8}"
    for section in sections:
        lines += ["", f"=== database: {section.database} ==="]
        if section.skipped or section.results is None:
            lines.append(f"SKIPPED: {section.skipped}")
            continue
        for plan in section.plans:
            lines += _plan_lines(plan, section.results, header, label_width)
    lines += [
        "",
        "CPU columns: microseconds of CPU per successful request (/proc utime+stime).",
        "db = PostgreSQL backends (0 with SQLite, which runs in the server);",
        "sum = server + Envoy + db; req/core = requests per CPU-second of that sum",
        "(= req/s per server core); client = load tool; other cpu = busy cores of",
        "everything else on the machine during the run (other sessions, PostgreSQL's",
        "own housekeeping); spread = (max - min) / median of req/s over runs.",
        "micro = measured in the bench process between rounds (server idle), medians.",
    ]
    every_runs = [report for report in every if report.runs]
    failing = [
        f"{report.label} ({sum(run.failed for run in report.runs)})"
        for report in every_runs
        if any(run.failed for run in report.runs)
    ]
    if failing:
        lines.append("NOTE: transport failures (timeouts/resets) in: " + ", ".join(failing))
    noisy = [
        report.label for report in every_runs if report.median("other_cores") > NOISY_OTHER_CORES
    ]
    if noisy:
        lines.append(
            f"WARNING: other processes kept > {NOISY_OTHER_CORES} cores busy during: "
            + ", ".join(noisy)
            + ". Throughput is understated there; CPU per request is still meaningful."
        )
    return "\n".join(lines)


def _plan_lines(plan: Plan, results: Results, header: str, label_width: int) -> list[str]:
    reports = results.cases
    lines = ["", f"[{plan.scenario}] {plan.title}"]
    if plan.cases:
        lines += [header, "-" * len(header)]
    for case in plan.cases:
        report = reports[case.name]
        row = f"{report.label:<{label_width}}{report.tool:<8}"
        if report.skipped:
            lines.append(row + f"  SKIPPED: {report.skipped}")
            continue
        row += "".join(
            f"{fmt.format(report.median(metric)):>{WIDTH}}" for _, metric, fmt in COLUMNS
        )
        row += f"{report.spread():>8.0%}"
        lines.append(row)
    for micro in plan.micros:
        micro_report = results.micros[micro.name]
        if not micro_report.runs:
            continue
        shown = "; ".join(
            f"{label} {fmt.format(micro_report.median(key))}"
            for key, label, fmt in micro_report.fields
        )
        first = micro_report.fields[0][0]
        lines.append(
            f"  micro  {micro_report.label}: {shown}  (spread {micro_report.spread(first):.0%})"
        )
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
    if plan.summary is not None:
        lines += plan.summary(results)
    return lines


def write_json(path: pathlib.Path, sections: list[Section], meta: dict[str, Any]) -> None:
    document = {
        "meta": meta,
        "sections": [_section_json(section) for section in sections],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _section_json(section: Section) -> dict[str, Any]:
    if section.skipped or section.results is None:
        return {"database": section.database, "skipped": section.skipped}
    reports = section.results.cases
    return {
        "database": section.database,
        "scenarios": [
            {
                "name": plan.scenario,
                "title": plan.title,
                "cases": [reports[case.name].as_json() for case in plan.cases],
                "micros": [
                    section.results.micros[micro.name].as_json()
                    for micro in plan.micros
                    if section.results.micros[micro.name].runs
                ],
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
                "summary": plan.summary(section.results) if plan.summary else [],
            }
            for plan in section.plans
        ],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
