"""The timing rule ``measure`` and ``profile`` share: warm up, time single runs, stop when the
median is stable or the budget is spent.

**The rule** (:func:`time_session`). Warm up (at least ``warmup`` runs and ``warmup_s``
seconds, whichever is longer, capped at a quarter of the budget), then time single runs with
``time.perf_counter_ns`` around each ``session.run()``, the garbage collector off. After
``min_runs`` runs and ``min_time_s`` seconds, the loop checks, in blocks of a quarter of the
runs so far, whether the median of the second half of the runs is within ``rel_tol`` of the
median of all of them; it stops when it is (``stable = True``), at ``max_runs``, or when the
whole call has used ``budget_s`` (``stable = False`` then, unless the last check passed). The
median is the latency: on a shared machine, runs slowed by another process sit in the upper
tail, and the median ignores them as long as they are fewer than half."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .._errors import InputError

#: Fraction cut from each end for the trimmed mean.
TRIM = 0.10


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
    ``counters`` (a :class:`maple_edge_lite.device.counters.Counters`, opened *before* the session was
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

