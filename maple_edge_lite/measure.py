"""Measure end-to-end latencies of NAS-Bench-201 networks under a runtime, and the timing rule
the operator profiler shares.

    from maple_edge_lite import measure as M
    rows = M.measure(M.sample_archs(10, seed=0), runtime="onnxruntime", threads=1)
    M.write_csv(rows, "measurements.csv")      # + measurements.csv.json, the conditions
    rows[0].latency_ms, rows[0].timing.stable

**The timing rule** (:func:`time_session`). Warm up (at least ``warmup`` runs and ``warmup_s``
seconds, whichever is longer, capped at a quarter of the budget), then time single runs with
``time.perf_counter_ns`` around each ``session.run()``, the garbage collector off. After
``min_runs`` runs and ``min_time_s`` seconds, the loop checks, in blocks of a quarter of the
runs so far, whether the median of the second half of the runs is within ``rel_tol`` of the
median of all of them; it stops when it is (``stable = True``), at ``max_runs``, or when the
whole call has used ``budget_s`` (``stable = False`` then, unless the last check passed). The
median is the latency: on a shared machine, runs slowed by another process sit in the upper
tail, and the median ignores them as long as they are fewer than half.

**Files.** :func:`write_csv` writes the shared latency-table format
(``nb201_index,arch_str,device,latency_ms``, ms) and a JSON sidecar ``<csv>.json`` with the
conditions (schema :data:`SIDECAR_SCHEMA`). ``nb201_index`` is the official NAS-Bench-201 index
when the caller knows it (``index=``, or an ``--archs`` CSV with an ``nb201_index`` column) and
empty otherwise: the official order is not derivable from the string, and the package does not
ship the 15,625-row table."""

from __future__ import annotations

import csv
import datetime
import gc
import io
import json
import math
import os
import platform
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._errors import InputError, MapleEdgeError, MapleEdgePermissionError

#: Schema of the JSON sidecar written next to a measurements CSV.
SIDECAR_SCHEMA = "maple_edge_lite.measurements/1"
#: Columns of the CSV, the shared latency-table format.
CSV_COLUMNS = ("nb201_index", "arch_str", "device", "latency_ms")
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Fraction cut from each end for the trimmed mean.
TRIM = 0.10

#: Defaults of ``measure`` (per window): tuned on this project's shared 2-core development VM,
#: where separate runs of one 32x32 NB201 network under onnxruntime at one thread agree within
#: about 2% while a CPU is free; more load moves every run (docs/profile.md, "Measured here").
MEASURE_TIMING = dict(warmup=10, warmup_s=0.1, min_runs=30, min_time_s=0.6, max_runs=100_000, budget_s=2.0,
                      rel_tol=0.005)
#: Windows per network (each a fresh session); the latency is the smallest window median.
MEASURE_PASSES = 3


# --- the timing core -------------------------------------------------------------------------


@dataclass
class Timing:
    """What :func:`time_session` measured. Times are milliseconds per inference except
    ``wall_s`` (seconds for the whole call, warm-up included) and ``window_ms`` (wall time of
    the timed loop, from the counters' start to their stop)."""

    median_ms: float
    trimmed_mean_ms: float  # mean of the runs left after cutting 10% from each end
    p10_ms: float
    p90_ms: float
    mad_ms: float  # median absolute deviation from the median
    cv: float  # robust coefficient of variation: 1.4826 * mad / median
    runs: int  # timed runs
    warmup_runs: int
    stable: bool  # the stopping rule's check passed (False: stopped by budget_s or max_runs)
    wall_s: float
    window_ms: float
    thread_cpu_ms: float  # CPU time of the calling thread in the window (the rest ran in other threads)
    samples_ms: List[float] = field(default_factory=list, repr=False)
    counters: Optional[Dict[str, Any]] = field(default=None, repr=False)  # name -> CounterResult

    def summary(self) -> Dict[str, Any]:
        """JSON-ready statistics (no samples, no counters)."""
        d = asdict(self)
        d.pop("samples_ms")
        d.pop("counters")
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def trimmed_mean(values: Sequence[float], trim: float = TRIM) -> float:
    """Mean after removing ``floor(trim * n)`` values from each end of the sorted values."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        raise InputError("trimmed_mean of no values")
    k = int(math.floor(trim * x.size))
    return float(x[k: x.size - k].mean())


def summarize(samples_ms: Sequence[float]) -> Dict[str, float]:
    """median, trimmed mean, p10, p90, MAD and robust CV of per-run times (ms)."""
    x = np.asarray(samples_ms, dtype=np.float64)
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    return {
        "median_ms": med,
        "trimmed_mean_ms": trimmed_mean(x),
        "p10_ms": float(np.percentile(x, 10)),
        "p90_ms": float(np.percentile(x, 90)),
        "mad_ms": mad,
        "cv": 1.4826 * mad / med if med > 0 else float("nan"),
    }


def _is_stable(samples: List[int], rel_tol: float) -> bool:
    n = len(samples)
    whole = float(np.median(samples))
    half = float(np.median(samples[n // 2:]))
    return whole > 0 and abs(half - whole) <= rel_tol * whole


def _check_timing(warmup, warmup_s, min_runs, max_runs, budget_s, rel_tol, min_time_s) -> None:
    for name, v in (("warmup", warmup), ("min_runs", min_runs), ("max_runs", max_runs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(f"{name} must be an integer >= 0, got {v!r}")
    if min_runs < 1 or max_runs < min_runs:
        raise InputError(f"need 1 <= min_runs <= max_runs, got min_runs={min_runs}, max_runs={max_runs}")
    for name, v in (("warmup_s", warmup_s), ("budget_s", budget_s), ("min_time_s", min_time_s)):
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputError(f"{name} must be a finite number of seconds >= 0, got {v!r}")
    if budget_s <= 0:
        raise InputError(f"budget_s must be > 0, got {budget_s!r}")
    if not isinstance(rel_tol, (int, float)) or not 0 < rel_tol < 1:
        raise InputError(f"rel_tol must be in (0, 1), got {rel_tol!r}")


def time_session(
    session,
    *,
    warmup: int = 10,
    warmup_s: float = 0.05,
    min_runs: int = 20,
    max_runs: int = 100_000,
    budget_s: float = 1.0,
    rel_tol: float = 0.01,
    min_time_s: float = 0.0,
    counters=None,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Timing:
    """Time ``session.run()`` (any object with a blocking ``run()``) by the rule in the module
    docstring and return a :class:`Timing` (ms per inference).

    ``budget_s`` bounds the whole call, warm-up included; at least one timed run is always
    made, so a run longer than the budget overshoots it by that run. ``min_runs`` and
    ``min_time_s`` are the least the stability check needs before it may stop the loop.
    ``counters`` (a :class:`maple_edge_lite.counters.Counters`, opened *before* the session was
    created so that ``inherit`` covers the runtime's threads) is started right before the first
    timed run and stopped right after the last: its window is exactly the timed loop (plus the
    clock reads and the loop's bookkeeping, about a microsecond per run). The results are in
    ``Timing.counters`` and the window's wall time in ``Timing.window_ms``."""
    _check_timing(warmup, warmup_s, min_runs, max_runs, budget_s, rel_tol, min_time_s)
    run = session.run
    t_begin = clock()
    budget_ns = int(budget_s * 1e9)
    warm_end = t_begin + int(min(warmup_s, budget_s / 4) * 1e9)
    # The collector off for the whole call (a full collection before it would cost tens of ms
    # per window with onnx and a runtime imported; young-generation pauses are what matter).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    started = False
    try:
        n_warm = 0
        while n_warm < warmup or clock() < warm_end:
            run()
            n_warm += 1
            if clock() - t_begin >= budget_ns / 4 and n_warm >= 1:
                break
        samples: List[int] = []
        append = samples.append
        min_time_ns = int(min_time_s * 1e9)
        next_check = min_runs
        stable = False
        if counters is not None:
            counters.start()
            started = True
        cpu0 = time.thread_time_ns()
        t_loop = clock()
        while True:
            t0 = clock()
            run()
            t1 = clock()
            append(t1 - t0)
            n = len(samples)
            if n >= max_runs or t1 - t_begin >= budget_ns:
                stable = n >= min_runs and t1 - t_loop >= min_time_ns and _is_stable(samples, rel_tol)
                break
            if n >= next_check and t1 - t_loop >= min_time_ns:
                if _is_stable(samples, rel_tol):
                    stable = True
                    break
                next_check = n + max(1, n // 4)
        t_end = clock()
        cpu1 = time.thread_time_ns()
        if started:
            started = False
            counters.stop()
    finally:
        if started:  # run() raised inside the window: close it so the set can be reused
            counters.stop()
        if gc_was_enabled:
            gc.enable()
    ms = [s / 1e6 for s in samples]
    stats = summarize(ms)
    return Timing(
        runs=len(samples),
        warmup_runs=n_warm,
        stable=bool(stable),
        wall_s=(clock() - t_begin) / 1e9,
        window_ms=(t_end - t_loop) / 1e6,
        thread_cpu_ms=(cpu1 - cpu0) / 1e6,
        samples_ms=ms,
        counters=dict(counters.results) if counters is not None else None,
        **stats,
    )


# --- architectures ----------------------------------------------------------------------------


def arch_string(ops: Sequence[str]) -> str:
    """The NAS-Bench-201 string of six edge ops in edge order ((1,0), (2,0), (2,1), (3,0),
    (3,1), (3,2))."""
    o = list(ops)
    if len(o) != 6 or any(x not in NB201_OPS for x in o):
        raise InputError(f"need six ops from {', '.join(NB201_OPS)}, got {o!r}")
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def sample_archs(n: int, seed: int = 0) -> List[str]:
    """``n`` distinct NAS-Bench-201 architecture strings drawn uniformly without replacement from
    the 15,625 (5 ops on 6 edges; the 341 disconnected cells included): the first ``n`` of a
    permutation seeded with ``seed`` (numpy's PCG64 ``default_rng``), so the same list on every
    machine, and a larger ``n`` extends a smaller one."""
    total = len(NB201_OPS) ** 6
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
        raise InputError(f"sample size must be an integer in 1..{total}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    # A prefix of one seeded permutation: --sample 20 extends --sample 10 of the same seed.
    codes = np.random.default_rng(int(seed)).permutation(total)[: int(n)]
    out = []
    for c in codes.tolist():
        digits = []
        for _ in range(6):
            c, d = divmod(c, len(NB201_OPS))
            digits.append(NB201_OPS[d])
        out.append(arch_string(digits))
    return out


def check_arch(arch: str) -> str:
    """``arch`` if it is a valid NAS-Bench-201 string, else ``InputError`` naming the problem
    (the C++ encoder's verdict, the one the predictor uses)."""
    from .builders.nb201 import parse

    try:
        parse(arch)
    except InputError as e:
        raise InputError(f"invalid NAS-Bench-201 architecture {arch!r}: {e}") from None
    return arch


def read_archs(path) -> Tuple[List[str], Dict[str, int]]:
    """Architecture strings from a file: one per line (blank lines and ``#`` comments skipped), or
    a CSV whose header has an ``arch_str`` column (an ``nb201_index`` column, as in the shared
    ``nb201_archs.csv`` or a latency table, fills the index). Returns ``(archs, index)``;
    duplicates are kept once, in first-seen order."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        from ._errors import ModelNotFoundError

        raise ModelNotFoundError(f"architecture file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"architecture file {path} is a directory") from None
    lines = text.splitlines()
    first = next((l for l in lines if l.strip() and not l.lstrip().startswith("#")), "")
    archs: List[str] = []
    index: Dict[str, int] = {}
    if "arch_str" in [c.strip() for c in first.split(",")]:
        reader = csv.DictReader(io.StringIO(text))
        for i, row in enumerate(reader, start=2):
            a = (row.get("arch_str") or "").strip()
            if not a:
                raise InputError(f"{path}:{i}: empty arch_str")
            archs.append(a)
            idx = (row.get("nb201_index") or "").strip()
            if idx:
                try:
                    index[a] = int(idx)
                except ValueError:
                    raise InputError(f"{path}:{i}: nb201_index {idx!r} is not an integer") from None
    else:
        archs = [l.strip() for l in lines if l.strip() and not l.lstrip().startswith("#")]
    if not archs:
        raise InputError(f"{path}: no architecture strings found")
    return list(dict.fromkeys(archs)), index


# --- the machine ------------------------------------------------------------------------------


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (``model name``, or ARM's ``Hardware``/``CPU part``),
    else ``platform.processor()``, else "unknown"."""
    info = _read("/proc/cpuinfo") or ""
    fields: Dict[str, str] = {}
    for line in info.splitlines():
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k and v and k not in fields:
            fields[k] = v
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        if key in fields:
            return fields[key]
    if "CPU implementer" in fields:
        return f"ARM implementer {fields['CPU implementer']} part {fields.get('CPU part', '?')}"
    return platform.processor() or "unknown"


def _affinity() -> Optional[List[int]]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_frequencies() -> Dict[str, Dict[str, Any]]:
    """Per online CPU, what /sys/devices/system/cpu/cpuN/cpufreq exposes (kHz, governor); an
    empty dict where there is no cpufreq (VMs)."""
    out: Dict[str, Dict[str, Any]] = {}
    base = "/sys/devices/system/cpu"
    try:
        cpus = sorted((d for d in os.listdir(base) if d.startswith("cpu") and d[3:].isdigit()),
                      key=lambda d: int(d[3:]))
    except OSError:
        return out
    for d in cpus:
        facts: Dict[str, Any] = {}
        for name in ("cpuinfo_min_freq", "cpuinfo_max_freq", "scaling_min_freq", "scaling_max_freq",
                     "scaling_cur_freq", "scaling_governor", "scaling_driver"):
            v = _read(os.path.join(base, d, "cpufreq", name))
            if v is not None:
                facts[name] = int(v) if v.isdigit() else v
        if facts:
            out[d] = facts
    return out


def host_facts() -> Dict[str, Any]:
    """What a measurement depends on besides the runtime: CPU model, counts, affinity, kernel,
    frequencies, load. JSON-ready."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "os": platform.system(),
        "cpu_count": os.cpu_count(),
        "online_cpus": _read("/sys/devices/system/cpu/online"),
        "cpu_affinity": _affinity(),
        "cpufreq": cpu_frequencies(),
        "loadavg": load,
        "python": platform.python_version(),
    }


def default_device(runtime: str, threads: int) -> str:
    """``<hostname>-<runtime>-<threads>t``: the device column when none is given."""
    return f"{socket.gethostname()}-{runtime}-{threads}t"


def parse_cpus(spec) -> Optional[List[int]]:
    """``"2"``, ``"0,2"`` or ``"0-3"`` (or an iterable of ints) -> sorted CPU ids; None -> None."""
    if spec is None:
        return None
    if isinstance(spec, int) and not isinstance(spec, bool):
        cpus = {spec}
    elif isinstance(spec, str):
        cpus = set()
        for part in spec.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    a, b = part.split("-", 1)
                    cpus.update(range(int(a), int(b) + 1))
                elif part:
                    cpus.add(int(part))
            except ValueError:
                raise InputError(f"bad CPU list {spec!r}: expected e.g. 2, 0,2 or 0-3") from None
    else:
        cpus = set(int(c) for c in spec)
    if not cpus or min(cpus) < 0:
        raise InputError(f"bad CPU list {spec!r}")
    allowed = _affinity()
    if allowed is not None and not cpus <= set(allowed):
        raise InputError(f"CPUs {sorted(cpus - set(allowed))} are not available to this process "
                         f"(allowed: {allowed})")
    return sorted(cpus)


class pinned:
    """Context manager: run the block with this process's CPU affinity set to ``cpus`` (None:
    unchanged), restoring the previous affinity after. Set it before the runtime creates its
    threads: they inherit it."""

    def __init__(self, cpus: Optional[Sequence[int]]):
        self.cpus = None if cpus is None else list(cpus)
        self._old = None

    def __enter__(self):
        if self.cpus is not None:
            if not hasattr(os, "sched_setaffinity"):
                from ._errors import UnsupportedError

                raise UnsupportedError("CPU pinning needs os.sched_setaffinity (Linux)")
            self._old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.cpus)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            os.sched_setaffinity(0, self._old)


def _package_version() -> str:
    from . import __version__

    return __version__


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# --- measure ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One measured network: the CSV row plus how it was timed. ``latency_ms`` is the median
    of ``timing``, the fastest of the network's windows; ``window_medians_ms`` lists every
    window's median in the order measured."""

    nb201_index: Optional[int]
    arch_str: str
    device: str
    latency_ms: float
    timing: Timing
    window_medians_ms: List[float] = field(default_factory=list)

    def summary(self) -> Dict[str, Any]:
        return {"arch_str": self.arch_str, "nb201_index": self.nb201_index, "latency_ms": round(self.latency_ms, 6),
                "window_medians_ms": [round(m, 6) for m in self.window_medians_ms], **self.timing.summary()}


class Measurements(list):
    """The rows ``measure`` returns (a list of :class:`Row`), with ``conditions``: the
    JSON-ready description of how they were measured, written as the sidecar."""

    def __init__(self, rows: Iterable[Row] = (), conditions: Optional[Dict[str, Any]] = None):
        super().__init__(rows)
        self.conditions: Dict[str, Any] = dict(conditions or {})


def measure(
    archs: Sequence[str],
    runtime: str = "onnxruntime",
    threads: int = 1,
    resolution: int = 32,
    *,
    device: Optional[str] = None,
    index: Optional[Mapping[str, int]] = None,
    cpus=None,
    passes: int = None,
    runtime_options: Optional[Dict[str, Any]] = None,
    progress: Optional[Callable[[int, int, str, Optional[Row]], None]] = None,
    **timing: Any,
) -> Measurements:
    """Build each NAS-Bench-201 network (``builders.nb201_onnx`` at ``resolution``), run it
    under ``runtime`` at ``threads`` threads, and return :class:`Measurements` in the order
    given. Each network is timed in ``passes`` windows (default :data:`MEASURE_PASSES`), each a
    fresh session timed by :func:`time_session`; the passes go round the whole list, so a
    network's windows are spread over the run. ``latency_ms`` is the smallest window median
    (ms): a window can only be slowed, by another process or by an unlucky memory layout of its
    session, never sped up, so the fastest median is the one that reproduces.

    ``timing`` overrides :data:`MEASURE_TIMING` (``warmup``, ``warmup_s``, ``min_runs``,
    ``min_time_s``, ``max_runs``, ``budget_s`` per window, ``rel_tol``). ``index`` maps arch
    strings to official NAS-Bench-201 indices (unknown: empty in the CSV). ``cpus`` pins the
    process (and so the runtime's threads) to those CPUs for the call (see :func:`parse_cpus`).
    ``progress(step, steps, arch, row)`` is called before each window (row None) and after a
    network's last one. Every string is validated before anything is measured: an invalid
    one raises ``InputError`` naming it; a missing runtime raises ``RuntimeNotInstalledError``."""
    from . import builders, runtimes

    archs = list(dict.fromkeys(archs))
    if not archs:
        raise InputError("no architectures to measure")
    for a in archs:
        check_arch(a)
    passes = MEASURE_PASSES if passes is None else passes
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
        raise InputError(f"passes must be an integer >= 1, got {passes!r}")
    unknown = set(timing) - set(MEASURE_TIMING)
    if unknown:
        raise InputError(f"unknown timing settings {sorted(unknown)}; known: {sorted(MEASURE_TIMING)}")
    settings = {**MEASURE_TIMING, **timing}
    _check_timing(**{k: settings[k] for k in ("warmup", "warmup_s", "min_runs", "max_runs", "budget_s",
                                              "rel_tol", "min_time_s")})
    cpus = parse_cpus(cpus)
    index = dict(index or {})
    facts_before = host_facts()
    t0 = time.perf_counter()
    windows: Dict[str, List[Timing]] = {a: [] for a in archs}
    rows = Measurements()
    with pinned(cpus):
        rt = runtimes.get(runtime, threads=threads, **(runtime_options or {}))
        name = device or default_device(rt.name, rt.threads)
        models: Dict[str, bytes] = {}
        steps, step = passes * len(archs), 0
        for p in range(passes):
            for arch in archs:
                if progress is not None:
                    progress(step, steps, arch, None)
                step += 1
                if arch not in models:
                    models[arch] = builders.nb201_onnx(arch, resolution=resolution)
                with rt.load(models[arch]) as s:
                    windows[arch].append(time_session(s, **settings))
                if p == passes - 1:
                    ts = windows[arch]
                    best = min(ts, key=lambda t: t.median_ms)
                    row = Row(index.get(arch), arch, name, best.median_ms, best, [t.median_ms for t in ts])
                    rows.append(row)
                    if progress is not None:
                        progress(step, steps, arch, row)
        info = rt.info()
    facts = host_facts()
    facts["loadavg_before"] = facts_before["loadavg"]
    rows.conditions = {
        "schema": SIDECAR_SCHEMA,
        "created": _now(),
        "package": {"name": "maple_edge_lite", "version": _package_version()},
        "device": name,
        "host": facts,
        "runtime": info,
        "threads": int(info.get("threads", threads)),
        "pinned_cpus": cpus,
        "cpu_affinity": cpus if cpus is not None else facts["cpu_affinity"],
        "network": {"space": "nb201", "builder": "maple_edge_lite.builders.nb201_onnx", "resolution": resolution,
                    "channels": 16, "cells": 5, "num_classes": 10, "batch": 1, "seed": 0},
        "timing": {**settings, "passes": passes, "per": "window (one network, one pass, one fresh session)",
                   "statistic": "min over windows of the window's median", "clock": "time.perf_counter_ns per run",
                   "trim": TRIM},
        "wall_s": round(time.perf_counter() - t0, 3),
        "archs": [r.summary() for r in rows],
    }
    return rows


# --- files ------------------------------------------------------------------------------------


def sidecar_path(csv_path) -> str:
    """Where the JSON sidecar of ``csv_path`` goes: ``<csv_path>.json`` (``out.csv`` ->
    ``out.csv.json``), so any CSV name has exactly one sidecar and it sorts beside it."""
    return os.fspath(csv_path) + ".json"


def check_writable(path) -> None:
    """Fail before any work if ``path`` cannot be written: its folder is missing or not
    writable, or the path is a folder. Raises ``MapleEdgeError``/``MapleEdgePermissionError``."""
    p = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(p))
    if os.path.isdir(p):
        raise MapleEdgeError(f"cannot write {p}: it is a directory")
    if not os.path.isdir(parent):
        raise MapleEdgeError(f"cannot write {p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MapleEdgePermissionError(f"cannot write {p}: permission denied in {parent}")
    if os.path.exists(p) and not os.access(p, os.W_OK) and not os.access(parent, os.W_OK):
        raise MapleEdgePermissionError(f"cannot write {p}: permission denied")


def csv_text(rows: Iterable[Row]) -> str:
    """The CSV (header + one line per row, ``\\n`` line ends); latency in ms with 6 significant
    digits beyond the point as needed (``repr`` of the value rounded to 1 ns)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow(["" if r.nb201_index is None else int(r.nb201_index), r.arch_str, r.device,
                    repr(round(float(r.latency_ms), 6))])
    return buf.getvalue()


def write_csv(rows: Measurements, path) -> Tuple[str, str]:
    """Write the CSV and its sidecar (``sidecar_path``), each atomically (a reader sees the old
    file or the new one, never half of one). Returns the two paths."""
    from .format import write_atomic

    check_writable(path)
    side = sidecar_path(path)
    check_writable(side)
    conditions = dict(getattr(rows, "conditions", {}) or {})
    conditions.setdefault("schema", SIDECAR_SCHEMA)
    conditions["csv"] = os.path.basename(os.fspath(path))
    write_atomic(side, (json.dumps(conditions, indent=2, allow_nan=False) + "\n").encode())
    write_atomic(path, csv_text(rows).encode())
    return os.fspath(path), side


def read_csv(path) -> List[Dict[str, Any]]:
    """Rows of a measurements CSV as dicts (``nb201_index`` int or None, ``latency_ms`` float)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
            raise InputError(f"{path}: header {reader.fieldnames} is not {','.join(CSV_COLUMNS)}")
        return [{"nb201_index": int(r["nb201_index"]) if r["nb201_index"] else None, "arch_str": r["arch_str"],
                 "device": r["device"], "latency_ms": float(r["latency_ms"])} for r in reader]


__all__ = [
    "Timing",
    "time_session",
    "trimmed_mean",
    "summarize",
    "Row",
    "Measurements",
    "measure",
    "sample_archs",
    "arch_string",
    "check_arch",
    "read_archs",
    "write_csv",
    "read_csv",
    "csv_text",
    "sidecar_path",
    "host_facts",
    "default_device",
    "parse_cpus",
    "pinned",
    "MEASURE_TIMING",
    "MEASURE_PASSES",
    "SIDECAR_SCHEMA",
    "CSV_COLUMNS",
]
