"""Running the Linux `perf` tool and reading `perf stat -x,` output, for the places that compare
maple_edge_lite's counters with it (benchmarks/bench_profile.py, tests/test_counters_perf_stat.py,
tools/aarch64/perf_compare.py). The package itself never needs `perf`: it reads counters with
perf_event_open directly (maple_edge_lite.device.counters)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple


@dataclass
class PerfCount:
    """One event of a `perf stat -x,` report. ``state``: ``counted``, ``not_counted`` or
    ``unsupported``; ``value`` as perf printed it (ms for ``task-clock``, see ``unit``), None
    unless counted; ``running_pct``: the share of the window the event was scheduled, if given."""

    state: str
    value: Optional[float]
    unit: str = ""
    running_pct: Optional[float] = None


def candidates(explicit: Optional[str] = None) -> List[str]:
    """Executable `perf` binaries, most likely first: ``explicit``, ``$MEL_PERF``, `perf` on PATH,
    then versioned binaries. Debian's old `perf` wrapper (linux-base) refuses to run when no
    linux-perf-<kernel version> matches the running kernel, while the versioned binary it would
    have run (/usr/bin/perf_6.1; Ubuntu: /usr/lib/linux-tools/<version>/perf) works."""
    out = [explicit, os.environ.get("MEL_PERF"), shutil.which("perf")]
    out += sorted(glob.glob("/usr/bin/perf_[0-9]*"), reverse=True)
    out += sorted(glob.glob("/usr/lib/linux-tools*/perf") + glob.glob("/usr/lib/linux-tools/*/perf"), reverse=True)
    return list(dict.fromkeys(p for p in out if p and os.access(p, os.X_OK)))


def event_key(field: str) -> str:
    """perf's event column as the event was asked for: ``cpu_core/cycles/u`` or
    ``cpu_core/cycles:u/`` (one line per core PMU on hybrid CPUs) -> ``cycles:u``; ``cycles:u`` stays."""
    if "/" not in field:
        return field
    parts = field.split("/")
    name, mods = parts[1] if len(parts) > 1 else field, parts[2] if len(parts) > 2 else ""
    return name if not mods or ":" in name else f"{name}:{mods}"


def parse(text: str, events: Iterable[str], missing: str = "unsupported") -> Dict[str, PerfCount]:
    """``{event: PerfCount}`` from `perf stat -x,` output (``value,unit,event,run time,running %,...``).
    Hybrid CPUs print one line per core PMU (``cpu_core/cycles/``, ``cpu_atom/cycles/``): their
    values are added. An event perf printed no line for is ``unsupported``, or with
    ``missing="raise"`` a RuntimeError."""
    events = list(events)
    out: Dict[str, PerfCount] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(",")
        if len(parts) < 3 or event_key(parts[2]) not in events:
            continue
        ev, raw, unit = event_key(parts[2]), parts[0], parts[1]
        try:
            pct = float(parts[4])
        except (IndexError, ValueError):
            pct = None
        try:
            got = PerfCount("counted", float(raw), unit, pct)
        except ValueError:
            got = PerfCount("unsupported" if raw.startswith("<not supported>") else "not_counted", None, unit, pct)
        prev = out.get(ev)
        if prev is not None and prev.state == "counted":
            got = PerfCount("counted", prev.value + (got.value or 0.0), unit, pct)
        out[ev] = got
    absent = [e for e in events if e not in out]
    if absent and missing == "raise":
        raise RuntimeError(f"perf stat printed no line for {absent}: {text.strip()[-500:]}")
    for e in absent:
        out[e] = PerfCount("unsupported", None)
    return out


def stat(perf: str, argv: Sequence[str], events: Sequence[str], timeout: Optional[float] = 300) -> Dict[str, PerfCount]:
    """`perf stat -x, -e EVENTS -- argv` (perf forks argv and counts it from exec to exit).
    Raises RuntimeError when perf fails or prints no line for an event."""
    with tempfile.NamedTemporaryFile("r", suffix=".csv") as f:
        r = subprocess.run([perf, "stat", "-x,", "-o", f.name, "-e", ",".join(events), "--", *argv],
                           capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"), timeout=timeout)
        with open(f.name) as g:
            text = g.read()
    if r.returncode != 0:
        raise RuntimeError(f"{perf} stat exited {r.returncode}: {(r.stderr or text).strip()[-500:]}")
    return parse(text, events, missing="raise")


def find(explicit: Optional[str] = None, events: Sequence[str] = ("instructions:u",)) -> Tuple[Optional[str], str]:
    """(path, "") for the first `perf` whose ``events`` all count on /bin/true, else (None, why)."""
    why = []
    for p in candidates(explicit):
        try:
            got = stat(p, ["/bin/true"], events, timeout=60)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            why.append(f"{p}: {e}")
            continue
        if all(got[e].state == "counted" and got[e].value for e in events):
            return p, ""
        why.append(f"{p}: {', '.join(e + ' ' + got[e].state for e in events)}")
    return None, "; ".join(why) or "no perf binary (perf, perf_<version>) found"
