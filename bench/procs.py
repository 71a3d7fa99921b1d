"""CPU accounting from /proc, because on 2 shared cores CPU per request is the figure that
survives the load generator competing with the server and Envoy."""

from __future__ import annotations

import os
import pathlib
import resource

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads), in seconds."""
    text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces: count fields after its closing paren.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def group_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds per pid; a process that is gone is left out."""
    found: dict[int, float] = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except (OSError, ValueError):
            continue
    return found


def used_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used by a group between two readings. A process born in between counts whole;
    one that exited in between is lost (the pool churning backends mid-run is rare)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat): what the machine did
    beside our processes shows whether something else competed for the cores during a run."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    # guest time is already counted in user time.
    return (sum(fields[:8]) - idle - iowait) / _TICKS


def own_cpu_seconds() -> float:
    """CPU of this process (the bench's own signing and HTTP), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def others_busy_cores(busy: float, ours: float, wall: float) -> float:
    """Cores everything else on the machine kept busy over `wall` seconds: the machine's
    busy seconds meanwhile less the seconds of the processes we account for."""
    return max(0.0, busy - ours) / wall


def children_cpu_seconds() -> float:
    """CPU of waited-for children (the load tools once they exit), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def has_mapped(pid: int, fragment: str) -> bool:
    """Whether a shared object whose path contains `fragment` is loaded in the process;
    tells whether the running server really uses uvloop, whatever the code intends."""
    try:
        maps = pathlib.Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return any(fragment in line for line in maps.splitlines())
