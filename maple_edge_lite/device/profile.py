"""The hardware-runtime descriptor: MAPLE-Edge's operator suite run under one runtime, with CPU
performance counters read in-process around exactly each op's timed loop.

    from maple_edge_lite.device import profile as P
    desc = P.profile("onnxruntime", threads=1)       # a JSON-ready dict
    P.save_descriptor(desc, "desc.json")
    desc = P.load_descriptor("desc.json")           # validated
    values, states = P.descriptor_vector(desc, names)   # NaN where not counted

For each op model of ``builders.default_suite()`` (in suite order, ``passes`` times): load it
in a fresh session, warm it up, then time it with :func:`maple_edge_lite.device.measure.time_session`
while the counter set counts the timed loop and nothing else (counts are summed over the
passes). The counter set is opened once, *before* the runtime creates any
session, so ``inherit`` covers the worker threads every session starts.

Features, in this order (``FEATURE_SCHEMA`` names the rule):

1. ``lat:<op>`` for each op: ms per inference of the op model (the chain of ``repeat`` copies
   for a cell op, as built): the suite is run ``passes`` times (default 6), each op in a fresh
   session each time, and the latency is the smallest of the per-pass medians (see
   :func:`_op_result` for why).
2. ``rate:<event>@<op>`` for each op, then each event: the count per inference divided by the
   op's latency (events per ms, MAPLE-Edge's normalisation; ``task-clock`` is then ns of CPU
   per ms of latency, about 1e6 x the threads kept busy).
3. ``raw:<event>@<op>`` for each op, then each event: the count per inference (the count in
   the op's timed windows / the runs in them).

Each feature is ``{"name", "value", "state"}``; ``state`` is the counter's state (``counted``,
``scaled``, ``not_counted``, ``unsupported``, ``denied``) and ``value`` is null unless it is
``counted`` or ``scaled``. Latency features are ``counted`` (``unsupported`` with a null value
when the runtime rejected that op model). See docs/profile.md."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .._errors import FormatError, InputError, UnsupportedError
from .measure import _check_timing, _now, _package_version, host_facts, pinned, parse_cpus, time_session

#: Schema of the descriptor file.
SCHEMA = "maple_edge_lite.descriptor/1"
#: The rule that orders and names the features (a weights file names the schema it was trained on).
FEATURE_SCHEMA = "maple_edge_lite.descriptor_features/1"
STATES = ("counted", "scaled", "not_counted", "unsupported", "denied")
VALUED = ("counted", "scaled")
#: Software events added to MAPLE-Edge's eleven: CPU time, page faults, context switches.
EXTRA_EVENTS = ("task-clock", "page-faults", "context-switches")

#: Timing of each op. Tuned on the 2-core development VM so the default suite profiles in
#: under 10 s with every latency feature's CV <= 3% over five profiles (docs/profile.md).
PROFILE_TIMING = dict(warmup=5, warmup_s=0.01, min_runs=20, min_time_s=0.03, max_runs=1_000_000,
                      budget_s=0.08, rel_tol=0.01)
#: Times the suite is run (each op in a fresh session each time); see ``_op_result``. Six short
#: windows beat four longer ones at the same total time: more chances for a quiet window.
PROFILE_PASSES = 6


def default_events() -> Tuple[str, ...]:
    """MAPLE-Edge's eleven events, then ``EXTRA_EVENTS`` (no duplicates)."""
    from .counters import MAPLE_EDGE_EVENTS

    return tuple(dict.fromkeys(tuple(MAPLE_EDGE_EVENTS) + EXTRA_EVENTS))


def feature_names(ops: Sequence[str], events: Sequence[str]) -> List[str]:
    """The descriptor's feature names in their fixed order (see the module docstring)."""
    ops, events = list(ops), list(events)
    return ([f"lat:{o}" for o in ops]
            + [f"rate:{e}@{o}" for o in ops for e in events]
            + [f"raw:{e}@{o}" for o in ops for e in events])


class _NoCounters:
    """Stands in for a counter set where perf_event is unavailable: every event unsupported."""

    def __init__(self, names, reason):
        self.names = tuple(names)
        self.reason = reason

    def start(self):
        pass

    def stop(self):
        return self.results

    @property
    def results(self):
        from types import SimpleNamespace

        return {n: SimpleNamespace(name=n, state="unsupported", value=None, reason=self.reason, running_ratio=None,
                                   kernel_excluded=False, inherited=False) for n in self.names}

    def close(self):
        pass


def _open_counters(events):
    from . import counters as C

    try:
        return C.Counters(events)
    except UnsupportedError as e:
        return _NoCounters(events, str(e))


def _suite(suite, repeat):
    from . import builders

    if suite is None:
        return builders.default_suite(repeat=repeat)
    specs = list(suite)
    if not specs:
        raise InputError("the operator suite is empty")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"the operator suite names an op twice: {names}")
    return specs


def profile(
    runtime: str = "onnxruntime",
    threads: int = 1,
    *,
    suite=None,
    repeat: Optional[int] = None,
    events: Optional[Sequence[str]] = None,
    cpus=None,
    runtime_options: Optional[Dict[str, Any]] = None,
    passes: int = PROFILE_PASSES,
    progress: Optional[Callable[[int, int, str, Optional[Dict[str, Any]]], None]] = None,
    **timing: Any,
) -> Dict[str, Any]:
    """Profile ``runtime`` at ``threads`` threads and return the descriptor (a JSON-ready dict;
    schema :data:`SCHEMA`).

    ``suite``: a list of ``builders.OpSpec`` (default ``builders.default_suite(repeat=repeat)``,
    ``repeat`` defaulting to the builder's). ``events``: counter names (default
    :func:`default_events`). ``timing`` overrides :data:`PROFILE_TIMING` (per op). ``cpus`` pins
    the process for the call. ``progress(i, n, op_name, op_result)`` is called before (result
    None) and after each op. Raises ``RuntimeNotInstalledError`` for a missing runtime; an op the
    runtime rejects becomes ``unsupported`` features, not an error."""
    from . import builders, counters as C, runtimes
    from .builders.ops import DEFAULT_REPEAT
    from .runtimes import ModelRejectedError

    unknown = set(timing) - set(PROFILE_TIMING)
    if unknown:
        raise InputError(f"unknown timing settings {sorted(unknown)}; known: {sorted(PROFILE_TIMING)}")
    settings = {**PROFILE_TIMING, **timing}
    _check_timing(**{k: settings[k] for k in ("warmup", "warmup_s", "min_runs", "max_runs", "budget_s",
                                              "rel_tol", "min_time_s")})
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
        raise InputError(f"passes must be an integer >= 1, got {passes!r}")
    specs = _suite(suite, repeat if repeat is not None else DEFAULT_REPEAT)
    events = tuple(dict.fromkeys(events)) if events is not None else default_events()
    if not events:
        raise InputError("no counter events given")
    cpus = parse_cpus(cpus)
    t_begin = time.perf_counter()
    ops_out: Dict[str, Dict[str, Any]] = {}
    with pinned(cpus):
        # Opened before the runtime is even imported: inherit then covers every thread the
        # runtime starts (its sessions' pools, any global pool an import creates).
        counters = _open_counters(events)
        try:
            rt = runtimes.get(runtime, threads=threads, **(runtime_options or {}))
            models: Dict[str, bytes] = {}
            windows: Dict[str, list] = {s.name: [] for s in specs}
            rejected: Dict[str, str] = {}
            n_steps, step = passes * len(specs), 0
            for _ in range(passes):
                for spec in specs:
                    if progress is not None:
                        progress(step, n_steps, spec.name, None)
                    step += 1
                    if spec.name in rejected:
                        continue
                    if spec.name not in models:
                        models[spec.name] = builders.op_onnx(spec)
                    try:
                        session = rt.load(models[spec.name])
                    except ModelRejectedError as e:
                        rejected[spec.name] = str(e)
                        continue
                    with session:
                        windows[spec.name].append(time_session(session, counters=counters, **settings))
                    if progress is not None:
                        progress(step, n_steps, spec.name, {"timing": windows[spec.name][-1]})
            for spec in specs:
                if spec.name in rejected:
                    ops_out[spec.name] = {"state": "unsupported", "reason": rejected[spec.name], "timing": None,
                                          "counters": {}}
                else:
                    ops_out[spec.name] = _op_result(windows[spec.name], events)
        finally:
            counters.close()
        info = rt.info()
    features = []
    names = [s.name for s in specs]
    for o in names:
        r = ops_out[o]
        ok = r["timing"] is not None
        features.append({"name": f"lat:{o}", "value": r["timing"]["latency_ms"] if ok else None,
                         "state": "counted" if ok else "unsupported"})
    for kind in ("rate", "raw"):
        for o in names:
            for e in events:
                c = ops_out[o]["counters"].get(e)
                state = c["state"] if c else "unsupported"
                value = c[kind] if c and state in VALUED else None
                features.append({"name": f"{kind}:{e}@{o}", "value": value, "state": state})
    try:
        paranoid = C.paranoid_level()
    except UnsupportedError:
        paranoid = None
    host = host_facts()
    device = {**host, "cores": host["cpu_count"], "pmus": C.pmus(), "perf_event_paranoid": paranoid}
    return {
        "schema": SCHEMA,
        "feature_schema": FEATURE_SCHEMA,
        "created": _now(),
        "package": {"name": "maple_edge_lite", "version": _package_version()},
        "device": device,
        "runtime": info,
        "pinned_cpus": cpus,
        "suite": {
            "builder": "maple_edge_lite.device.builders.op_onnx",
            "builder_version": builders.BUILDER_VERSION,
            "ops": [{"name": s.name, "op": s.op, "channels": s.channels, "hw": s.hw, "repeat": s.repeat}
                    for s in specs],
            "repeat": DEFAULT_REPEAT if repeat is None else repeat,
            "model_seed": 0,
            "input_seed": runtimes.INPUT_SEED,
        },
        "events": list(events),
        "timing": {**settings, "passes": passes, "per": "window (one op, one pass, one fresh session)",
                   "statistic": "min over windows of the window's median",
                   "clock": "time.perf_counter_ns per run",
                   "window": "counters start before a window's first timed run and stop after its last"},
        "features": features,
        "ops": ops_out,
        "wall_s": round(time.perf_counter() - t_begin, 3),
    }


def _num(x: float) -> float:
    return float(f"{x:.9g}")


def _combined_state(states: Sequence[str]) -> str:
    """The state of a sum of windows: any window without a value makes the sum unknown."""
    for bad in ("denied", "unsupported", "not_counted"):
        if bad in states:
            return bad
    return "scaled" if "scaled" in states else "counted"


def _op_result(windows, events) -> Dict[str, Any]:
    """One op's result from its timed windows (one per pass, each a fresh session): latency =
    the smallest of the windows' medians; counts summed over the windows, per inference = sum /
    runs, per ms = per inference / latency.

    Why per inference / latency and not count / window time: a window's wall time includes the
    time other processes held the CPU, which the counts (CPU work) do not; dividing by it made
    ``rate:task-clock`` a measure of machine load (CV 6-20% over five profiles here).

    Why the smallest median: where a session's buffers land in memory changes some ops' speed
    for the whole life of the session (avg_pool_3x3 here: two modes 5-10% apart, sessions
    falling on either), and another process can slow a whole window; neither makes a window
    faster than the op can run. The median of the windows flips between modes from one profile
    to the next (CV 5-6% over five profiles); the smallest is reproducible (<= 2%)."""
    from .measure import summarize

    runs = sum(t.runs for t in windows)
    window_ms = sum(t.window_ms for t in windows)
    medians = [t.median_ms for t in windows]
    latency = min(medians)
    pooled = summarize([x for t in windows for x in t.samples_ms])
    timing = {
        "latency_ms": round(latency, 9),
        "window_medians_ms": [round(m, 9) for m in medians],
        **{k: round(v, 9) for k, v in pooled.items()},  # over all windows' runs pooled
        "runs": runs,
        "warmup_runs": sum(t.warmup_runs for t in windows),
        "windows": len(windows),
        "stable": all(t.stable for t in windows),
        "wall_s": round(sum(t.wall_s for t in windows), 6),
        "window_ms": round(window_ms, 6),
        "thread_cpu_ms": round(sum(t.thread_cpu_ms for t in windows), 6),
    }
    out = {}
    for e in events:
        rs = [t.counters.get(e) if t.counters else None for t in windows]
        if any(r is None for r in rs):
            out[e] = {"state": "unsupported", "value": None, "raw": None, "rate": None, "reason": "not opened"}
            continue
        state = _combined_state([r.state for r in rs])
        valued = state in VALUED and all(r.value is not None for r in rs)
        total = sum(r.value for r in rs) if valued else None
        ratios = [r.running_ratio for r in rs if r.running_ratio is not None]
        out[e] = {
            "state": state,
            "value": int(total) if valued else None,  # count in the windows
            "raw": _num(total / runs) if valued else None,  # per inference
            "rate": _num(total / runs / latency) if valued and latency > 0 else None,  # per ms
            "running_ratio": round(min(ratios), 6) if ratios else None,
            "kernel_excluded": any(bool(getattr(r, "kernel_excluded", False)) for r in rs),
            "inherited": all(bool(getattr(r, "inherited", False)) for r in rs),
            "reason": next((r.reason for r in rs if r.reason), ""),
        }
    return {"state": "counted", "timing": timing, "counters": out}


# --- files ------------------------------------------------------------------------------------


def save_descriptor(desc: Dict[str, Any], path) -> str:
    """Validate ``desc`` and write it as JSON, atomically."""
    from ..format import write_atomic
    from .measure import check_writable

    validate(desc, where="descriptor")
    check_writable(path)
    write_atomic(path, (json.dumps(desc, indent=2, allow_nan=False) + "\n").encode())
    return os.fspath(path)


def validate(desc: Any, where: str = "descriptor") -> Dict[str, Any]:
    """Check the structure a consumer relies on; raise ``FormatError`` naming the field."""

    def bad(msg):
        raise FormatError(f"{where}: {msg}")

    if not isinstance(desc, dict):
        bad(f"expected a JSON object, got {type(desc).__name__}")
    schema = desc.get("schema")
    if not isinstance(schema, str) or not schema.startswith("maple_edge_lite.descriptor/"):
        bad(f"schema is {schema!r}, not a maple_edge_lite descriptor")
    if schema != SCHEMA:
        bad(f"schema {schema!r} is not supported (this version reads {SCHEMA!r}); upgrade maple_edge_lite")
    for key, typ in (("features", list), ("device", dict), ("runtime", dict), ("suite", dict), ("timing", dict)):
        if not isinstance(desc.get(key), typ):
            bad(f"field {key!r} is missing or not a JSON {'array' if typ is list else 'object'}")
    seen = set()
    for i, f in enumerate(desc["features"]):
        if not isinstance(f, dict) or set(f) != {"name", "value", "state"}:
            bad(f"features[{i}] must be an object with exactly name, value, state")
        name, value, state = f["name"], f["value"], f["state"]
        if not isinstance(name, str) or not name:
            bad(f"features[{i}].name must be a non-empty string")
        if name in seen:
            bad(f"features[{i}]: feature {name!r} appears twice")
        seen.add(name)
        if state not in STATES:
            bad(f"features[{i}] ({name}): state {state!r} is not one of {', '.join(STATES)}")
        if state in VALUED:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                bad(f"features[{i}] ({name}): state {state} needs a finite number, got {value!r}")
        elif value is not None:
            bad(f"features[{i}] ({name}): state {state} must have value null, got {value!r}")
    return desc


def load_descriptor(path) -> Dict[str, Any]:
    """Read and validate a descriptor file; returns the dict. ``ModelNotFoundError`` if it is
    missing, ``FormatError`` (a ``ValueError``) if it is not a valid descriptor."""
    from ..format import read_bytes

    p = os.fspath(path)
    data = read_bytes(p, "descriptor file")
    try:
        desc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{p}: not a JSON descriptor ({e})") from None
    return validate(desc, where=p)


def descriptor_vector(desc: Dict[str, Any], names: Optional[Iterable[str]] = None) -> Tuple[np.ndarray, List[str]]:
    """``(values, states)`` for ``names`` (default: every feature, in the descriptor's order).
    ``values`` is float64 with NaN wherever the feature is not ``counted``/``scaled`` or is absent
    from the descriptor; ``states[i]`` is its state, or ``"missing"`` when absent."""
    by_name = {f["name"]: f for f in desc["features"]}
    names = [f["name"] for f in desc["features"]] if names is None else list(names)
    values = np.full(len(names), np.nan, dtype=np.float64)
    states: List[str] = []
    for i, n in enumerate(names):
        f = by_name.get(n)
        if f is None:
            states.append("missing")
            continue
        states.append(f["state"])
        if f["state"] in VALUED and f["value"] is not None:
            values[i] = float(f["value"])
    return values, states


__all__ = [
    "profile",
    "save_descriptor",
    "load_descriptor",
    "validate",
    "descriptor_vector",
    "feature_names",
    "default_events",
    "SCHEMA",
    "FEATURE_SCHEMA",
    "PROFILE_TIMING",
    "PROFILE_PASSES",
    "EXTRA_EVENTS",
]


# --- the layer suite (the layer cost model's profile) -----------------------------------------

#: Schema of ``profile_layers``' document.
LAYER_PROFILE_SCHEMA = "maple_edge_lite.layer_profile/1"
#: Timing of the layer suite's entries (lighter than measure's: 73 small models, two windows each).
#: 45-46 s here; 60-64 s with min_time_s 0.25, budget_s 0.6 and measure's 0.1 s of warm-up, which
#: on a slow day of this VM passed the issue's 60 s, and was no more repeatable: four suites in a
#: row, two with each, the entries' spread around the median ratio of two suites (the device's
#: speed between them) 1.9-2.6% median, 4.5-7.5% p90 in every pair, within and across the timings.
LAYER_SUITE_TIMING = dict(passes=2, min_time_s=0.2, budget_s=0.5, warmup_s=0.05)


def profile_layers(runtime: str = "onnxruntime", threads: int = 1, *, cpus=None, progress=None,
                   runtime_options: Optional[Dict[str, Any]] = None, **timing: Any) -> Dict[str, Any]:
    """Measure the layer suite (``builders.layer_suite``) under ``runtime`` with ``measure``'s timing
    loop (:data:`LAYER_SUITE_TIMING`, overridable) and return the JSON-ready document
    (:data:`LAYER_PROFILE_SCHEMA`): per entry its name, kind, latency (the fastest window's
    median, ms) and every window's median; entries the runtime rejected, with why."""
    import time as _time

    from . import host
    from .builders import layer_suite
    from .measure import _now, time_models

    suite = {s.name: s for s in layer_suite.default_suite()}
    t0 = _time.perf_counter()
    windows, info, settings, rejected = time_models(
        list(suite), lambda n: layer_suite.layer_onnx(suite[n]), runtime, threads, cpus=cpus,
        runtime_options=runtime_options, progress=progress, **{**LAYER_SUITE_TIMING, **timing})
    return {"schema": LAYER_PROFILE_SCHEMA, "created": _now(), "suite_version": layer_suite.SUITE_VERSION,
            "runtime": info, "device": host.host_facts(), "timing": settings,
            "entries": [{"name": n, "kind": suite[n].kind, "latency_ms": round(min(t.median_ms for t in ts), 6),
                         "window_medians_ms": [round(t.median_ms, 6) for t in ts]} for n, ts in windows.items()],
            "rejected": rejected, "wall_s": round(_time.perf_counter() - t0, 3)}
