"""Measure end-to-end latencies of NAS-Bench-201 networks under a runtime.

    from maple_edge_lite.device import measure as M
    rows = M.measure(M.sample_archs(10, seed=0), runtime="onnxruntime", threads=1)
    M.write_csv(rows, "measurements.csv")      # + measurements.csv.json, the conditions
    rows[0].latency_ms, rows[0].timing.stable

Each network is timed by the rule in :mod:`maple_edge_lite.device.timing` (re-exported here:
``time_session``, ``Timing``, ``summarize``, ``trimmed_mean``); what is recorded about the machine
comes from :mod:`maple_edge_lite.device.host`.

**Files.** :func:`write_csv` writes the shared latency-table format
(``nb201_index,arch_str,device,latency_ms``, ms) and a JSON sidecar ``<csv>.json`` with the
conditions (schema :data:`SIDECAR_SCHEMA`). ``nb201_index`` is the official NAS-Bench-201 index
when the caller knows it (``index=``, or an ``--archs`` CSV with an ``nb201_index`` column) and
empty otherwise: the official order is not derivable from the string, and the package does not
ship the 15,625-row table."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._errors import InputError, MapleEdgeError, MapleEdgePermissionError
from .host import _now, _package_version, cpu_model, default_device, host_facts, parse_cpus, pinned  # noqa: F401  (re-exported)
from .timing import TRIM, Timing, _check_timing, summarize, time_session, trimmed_mean  # noqa: F401  (re-exported)

#: Schema of the JSON sidecar written next to a measurements CSV.
SIDECAR_SCHEMA = "maple_edge_lite.measurements/1"
#: Columns of the CSV, the shared latency-table format.
CSV_COLUMNS = ("nb201_index", "arch_str", "device", "latency_ms")
#: Columns of the CSV of measured FBNet networks: the shared FBNet tables' (``learn.data.SPACES``),
#: so ``adapt --model fbnet`` reads it.
FBNET_CSV_COLUMNS = ("fbnet_index", "arch_ops", "device", "latency_ms")
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: Defaults of ``measure`` (per window): tuned on this project's shared 2-core development VM,
#: where separate runs of one 32x32 NB201 network under onnxruntime at one thread agree within
#: about 2% while a CPU is free; more load moves every run (docs/profile.md, "Measured here").
MEASURE_TIMING = dict(warmup=10, warmup_s=0.1, min_runs=30, min_time_s=0.6, max_runs=100_000, budget_s=2.0,
                      rel_tol=0.005)
#: Windows per network (each a fresh session); the latency is the smallest window median.
MEASURE_PASSES = 3


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


def is_connected(arch: str) -> bool:
    """Whether a NAS-Bench-201 cell connects its input to its output through edges that are not
    ``none`` (the 341 disconnected cells output zeros whatever the input)."""
    ops = [e.split("~")[0] for node in check_arch(arch).strip("|").split("|+|") for e in node.split("|")]
    live = [o != "none" for o in ops]  # edges (1,0), (2,0), (2,1), (3,0), (3,1), (3,2)
    n1 = live[0]
    n2 = live[1] or (n1 and live[2])
    return live[3] or (n1 and live[4]) or (n2 and live[5])


def sample_connected(n: int, seed: int = 0) -> List[str]:
    """``n`` distinct connected NAS-Bench-201 cells: the connected ones among the seeded
    permutation of :func:`sample_archs`, in its order (so a larger ``n`` extends a smaller one)."""
    total = len(NB201_OPS) ** 6
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= total - 341:
        raise InputError(f"sample size must be an integer in 1..{total - 341}, got {n!r}")
    return [a for a in sample_archs(total, seed) if is_connected(a)][: int(n)]


def check_arch(arch: str) -> str:
    """``arch`` if it is a valid NAS-Bench-201 string, else ``InputError`` naming the problem
    (the C++ encoder's verdict, the one the predictor uses)."""
    from .builders.nb201 import parse

    try:
        parse(arch)
    except InputError as e:
        raise InputError(f"invalid NAS-Bench-201 architecture {arch!r}: {e}") from None
    return arch


def arch_space(arch: str) -> str:
    """``"nb201"`` or ``"fbnet"``: the search space whose notation ``arch`` is in (the C++
    encoders' verdict), else ``InputError`` saying what is wrong with it in both."""
    from .. import encode as enc

    if enc.notation(arch) == "nb201":
        check_arch(arch)
        return "nb201"
    try:
        enc.encode("fbnet", [arch])
    except InputError as e:
        raise InputError(f"invalid architecture {arch!r}: neither a NAS-Bench-201 cell "
                         f"(|op~0|+|op~0|op~1|+|op~0|op~1|op~2|) nor an FBNet string ({e})") from None
    return "fbnet"


def sample_fbnet(n: int, seed: int = 0) -> List[str]:
    """``n`` distinct random FBNet architectures (22 ops, each uniform over the 9), seeded
    (numpy's PCG64 ``default_rng``): the same list on every machine, a larger ``n`` extends a
    smaller one."""
    from .builders.fbnet import OPS

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 1_000_000:
        raise InputError(f"sample size must be an integer in 1..1000000, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    out: Dict[str, None] = {}
    while len(out) < n:
        out.setdefault("|".join(OPS[i] for i in rng.integers(0, len(OPS), 22)), None)
    return list(out)


def read_archs(path) -> Tuple[List[str], Dict[str, int]]:
    """Architecture strings from a file: one per line (blank lines and ``#`` comments skipped), or
    a CSV whose header has an ``arch_str`` column (an ``nb201_index`` column, as in the shared
    ``nb201_archs.csv`` or a latency table, fills the index). Returns ``(archs, index)``;
    duplicates are kept once, in first-seen order."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        from .._errors import ModelNotFoundError

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
    resolution: Optional[int] = None,
    *,
    device: Optional[str] = None,
    index: Optional[Mapping[str, int]] = None,
    cpus=None,
    passes: int = None,
    runtime_options: Optional[Dict[str, Any]] = None,
    progress: Optional[Callable[[int, int, str, Optional[Row]], None]] = None,
    **timing: Any,
) -> Measurements:
    """Build each network (NAS-Bench-201 cells with ``builders.nb201_onnx`` at ``resolution``,
    default 32; FBNet strings with ``builders.fbnet_onnx``, default 224: all of one space, see
    :func:`arch_space`), run it under ``runtime`` at ``threads`` threads, and return
    :class:`Measurements` in the order given. Each network is timed in ``passes`` windows
    (default :data:`MEASURE_PASSES`), each a fresh session timed by :func:`time_session`; the
    passes go round the whole list, so a network's windows are spread over the run.
    ``latency_ms`` is the smallest window median (ms): a window can only be slowed, by another
    process or by an unlucky memory layout of its session, never sped up, so the fastest median
    is the one that reproduces.

    ``timing`` overrides :data:`MEASURE_TIMING` (``warmup``, ``warmup_s``, ``min_runs``,
    ``min_time_s``, ``max_runs``, ``budget_s`` per window, ``rel_tol``). ``index`` maps arch
    strings to official NAS-Bench-201 indices (unknown: empty in the CSV). ``cpus`` pins the
    process (and so the runtime's threads) to those CPUs for the call (see :func:`parse_cpus`).
    ``progress(step, steps, arch, row)`` is called before each window (row None) and after a
    network's last one. Every string is validated before anything is measured: an invalid
    one raises ``InputError`` naming it; a missing runtime raises ``RuntimeNotInstalledError``.
    A network the runtime rejects (twice) is left out of the rows and listed, with the error, in
    ``conditions["rejected"]``; the call fails only when the runtime rejects them all."""
    from . import builders

    archs = list(dict.fromkeys(archs))
    if not archs:
        raise InputError("no architectures to measure")
    spaces = {a: arch_space(a) for a in archs}
    space = spaces[archs[0]]
    other = next((a for a in archs if spaces[a] != space), None)
    if other is not None:
        raise InputError(f"one search space per call: {archs[0]!r} is {space}, {other!r} is {spaces[other]}")
    if space == "fbnet":
        resolution = 224 if resolution is None else resolution
        network = {"space": "fbnet", "builder": "maple_edge_lite.device.builders.fbnet_onnx",
                   "resolution": resolution, "num_classes": 1000, "batch": 1, "seed": 0}
        build = lambda a: builders.fbnet_onnx(a, resolution=resolution)  # noqa: E731
    else:
        resolution = 32 if resolution is None else resolution
        network = {"space": "nb201", "builder": "maple_edge_lite.device.builders.nb201_onnx",
                   "resolution": resolution, "channels": 16, "cells": 5, "num_classes": 10, "batch": 1, "seed": 0}
        build = lambda a: builders.nb201_onnx(a, resolution=resolution)  # noqa: E731
    return _measured(archs, build, runtime, threads, network, device=device, index=index, cpus=cpus, passes=passes,
                     runtime_options=runtime_options, progress=progress, timing=timing)


#: Columns of ``measure --onnx``'s CSV.
ONNX_CSV_COLUMNS = ("path", "sha256", "device", "latency_ms")


def measure_onnx(paths: Sequence[str], runtime: str = "onnxruntime", threads: int = 1, *,
                 device: Optional[str] = None, cpus=None, passes: Optional[int] = None,
                 runtime_options: Optional[Dict[str, Any]] = None, progress=None,
                 input_shapes: Optional[Dict[str, Sequence[int]]] = None, **timing: Any) -> Measurements:
    """``measure`` for ONNX files: each file is read (and hashed) first, then timed by the same
    rule; rows carry the path in ``arch_str``; ``conditions["files"]`` lists each file's path,
    sha256 and size. A missing or unreadable file raises before anything is measured.
    ``input_shapes`` ({input name: full shape}, for every file; needs onnx): fixed in the model
    the runtime loads, for inputs with dynamic dimensions besides the batch
    (``conditions["input_shapes"]``)."""
    import hashlib

    from ..format import read_bytes

    files = {p: read_bytes(p, "ONNX model") for p in dict.fromkeys(os.fspath(x) for x in paths)}
    if not files:
        raise InputError("no ONNX files to measure")
    runnable = {p: _runnable(p, b, input_shapes) for p, b in files.items()}
    rows = _measured(list(files), runnable.__getitem__, runtime, threads, {"onnx": True}, device=device, cpus=cpus,
                     passes=passes, runtime_options=runtime_options, progress=progress, timing=timing)
    rows.conditions["files"] = [{"path": p, "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}
                                for p, b in files.items()]
    if input_shapes:
        rows.conditions["input_shapes"] = {k: [int(d) for d in v] for k, v in input_shapes.items()}
    return rows


def _runnable(path: str, data: bytes, input_shapes: Optional[Dict[str, Sequence[int]]] = None) -> bytes:
    """``data`` (the file at ``path``) as a runtime should load it, the model parsed once: the
    tensors it keeps in external data files (as ``torch.onnx.export(..., dynamo=True)`` writes:
    ``net.onnx.data``) read into it from the file's folder, since runtimes load a model from bytes
    and would look for those files in the working directory; with ``input_shapes``, the inputs
    they name set to those full shapes (needs onnx). The bytes as they are when nothing changes, or
    (without ``input_shapes``) when onnx is not installed or cannot parse them: the runtime then
    says what is wrong."""
    if input_shapes:
        from .layers._onnx import require_onnx

        onnx = require_onnx()
    else:
        try:
            import onnx
        except ImportError:
            return data
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:
        if input_shapes:
            raise InputError(f"{path} is not an ONNX model, or a truncated one ({type(e).__name__})") from None
        return data
    changed = _read_external_data(onnx, proto, path)
    if input_shapes:
        _fix_input_shapes(proto, path, input_shapes)
    return proto.SerializeToString() if changed or input_shapes else data


def _read_external_data(onnx, proto, path: str) -> bool:
    """Read the tensors ``proto`` keeps in external data files into it, from ``path``'s folder;
    whether it had any. ``InputError`` naming the file when they cannot be read."""
    from onnx import external_data_helper

    ext = onnx.TensorProto.EXTERNAL
    tensors = list(proto.graph.initializer) + [a.t for n in proto.graph.node for a in n.attribute if a.HasField("t")]
    if not any(t.data_location == ext for t in tensors):
        return False
    try:
        external_data_helper.load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
    except Exception as e:
        raise InputError(f"{path} keeps tensors in an external data file that could not be read ({type(e).__name__}: "
                         f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}): keep the data file beside "
                         "the .onnx file") from None
    return True


def _fix_input_shapes(proto, path: str, shapes: Dict[str, Sequence[int]]) -> None:
    """Set the inputs ``shapes`` names to those full shapes (their static dimensions must agree);
    ``InputError`` for a name the model has no input of, another rank, or a contradicted dimension."""
    inits = {t.name for t in proto.graph.initializer}
    inputs = {vi.name: vi for vi in proto.graph.input if vi.name not in inits}
    for name, shape in shapes.items():
        vi = inputs.get(name)
        if vi is None:
            raise InputError(f"{path}: --input-shape names {name!r}, which is not an input of the model (inputs: "
                             f"{', '.join(map(repr, inputs))})")
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise InputError(f"{path}: --input-shape gives {name!r} {len(shape)} dimensions; the model's has "
                             f"{len(dims)}")
        for i, (d, v) in enumerate(zip(dims, shape)):
            if d.HasField("dim_value") and d.dim_value not in (0, int(v)):
                raise InputError(f"{path}: --input-shape sets dimension {i} of {name!r} to {v}, but the model fixes "
                                 f"it at {d.dim_value}")
            d.Clear()
            d.dim_value = int(v)


def _measured(names, build, runtime, threads, network: Dict[str, Any], *, device=None, index=None, cpus=None,
              passes=None, runtime_options=None, progress=None, timing=None) -> Measurements:
    """What ``measure`` and ``measure_onnx`` share: :func:`time_models` over ``names``, a
    :class:`Row` per model (the fastest window), and the conditions (the sidecar) with
    ``network`` describing what was built."""
    cpus = parse_cpus(cpus)
    index = dict(index or {})
    facts_before = host_facts()
    t0 = time.perf_counter()
    rows = Measurements()
    name_of = [device]

    def on_window(step, steps, name, ts):
        row = None
        if ts is not None:
            best = min(ts, key=lambda t: t.median_ms)
            row = Row(index.get(name), name, name_of[0], best.median_ms, best, [t.median_ms for t in ts])
            rows.append(row)
        if progress is not None:
            progress(step, steps, name, row)

    _, info, settings, rejected = time_models(
        names, build, runtime, threads, cpus=cpus, passes=passes, runtime_options=runtime_options,
        progress=on_window, device_name=name_of, **(timing or {}))
    facts = host_facts()
    facts["loadavg_before"] = facts_before["loadavg"]
    rows.conditions = {
        "schema": SIDECAR_SCHEMA,
        "created": _now(),
        "package": {"name": "maple_edge_lite", "version": _package_version()},
        "device": name_of[0],
        "host": facts,
        "runtime": info,
        "threads": int(info.get("threads", threads)),
        "pinned_cpus": cpus,
        "cpu_affinity": cpus if cpus is not None else facts["cpu_affinity"],
        "network": network,
        "timing": {**settings, "per": "window (one network, one pass, one fresh session)",
                   "statistic": "min over windows of the window's median", "clock": "time.perf_counter_ns per run",
                   "trim": TRIM},
        "wall_s": round(time.perf_counter() - t0, 3),
        "archs": [r.summary() for r in rows],
        "rejected": [{"arch_str": a, "error": why} for a, why in rejected.items()],
    }
    return rows


def onnx_csv_text(rows: Measurements) -> str:
    """``measure --onnx``'s CSV: path, sha256 (from the conditions), device, latency_ms."""
    sha = {f["path"]: f["sha256"] for f in rows.conditions.get("files", [])}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ONNX_CSV_COLUMNS)
    for r in rows:
        w.writerow([r.arch_str, sha.get(r.arch_str, ""), r.device, repr(round(float(r.latency_ms), 6))])
    return buf.getvalue()

def time_models(names: Sequence[str], build: Callable[[str], bytes], runtime: str = "onnxruntime", threads: int = 1,
                *, cpus=None, passes: Optional[int] = None, runtime_options: Optional[Dict[str, Any]] = None,
                progress: Optional[Callable] = None, device_name: Optional[list] = None, **timing: Any):
    """The timing loop ``measure`` runs, for any ONNX models: ``build(name)`` gives a model's
    bytes (called once per name, on first use). Each model is timed in ``passes`` windows, each
    a fresh session timed by :func:`time_session`, the passes going round the whole list.
    Returns ``({name: [Timing per window]}, runtime info, the timing settings with "passes",
    {name: why} of the models the runtime rejected)``: a model the runtime rejects twice in a row
    (``ModelRejectedError``; a converter crash can be a one-off) is left out and the others are
    timed; when it rejects every model, the error is raised.
    ``progress(step, steps, name, None)`` is called before each window and
    ``progress(step, steps, name, windows)`` after a model's last one. ``device_name``: a
    one-item list whose item, if None, is set to the runtime's default device name."""
    from . import runtimes

    passes = MEASURE_PASSES if passes is None else passes
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
        raise InputError(f"passes must be an integer >= 1, got {passes!r}")
    unknown = set(timing) - set(MEASURE_TIMING)
    if unknown:
        raise InputError(f"unknown timing settings {sorted(unknown)}; known: {sorted(MEASURE_TIMING)}")
    settings = {**MEASURE_TIMING, **timing}
    _check_timing(**{k: settings[k] for k in ("warmup", "warmup_s", "min_runs", "max_runs", "budget_s",
                                              "rel_tol", "min_time_s")})
    from .runtimes import ModelRejectedError

    names = list(names)
    windows: Dict[str, List[Timing]] = {n: [] for n in names}
    rejected: Dict[str, str] = {}
    with pinned(parse_cpus(cpus)):
        rt = runtimes.get(runtime, threads=threads, **(runtime_options or {}))
        if device_name is not None and device_name[0] is None:
            prec = (runtime_options or {}).get("precision")  # e.g. vm-openvino-f32-1t, as benchmarks/zoo.py names it
            device_name[0] = default_device(rt.name + (f"-{prec}" if prec else ""), rt.threads)
        models: Dict[str, bytes] = {}
        steps, step = passes * len(names), 0
        for p in range(passes):
            for n in names:
                if progress is not None:
                    progress(step, steps, n, None)
                step += 1
                if n in rejected:
                    continue
                if n not in models:
                    models[n] = build(n)
                session = None
                for attempt in (0, 1):  # a converter crash can be a one-off (pnnx): one retry
                    try:
                        session = rt.load(models[n])
                        break
                    except ModelRejectedError as e:
                        if attempt:
                            rejected[n] = str(e)
                if session is None:
                    windows.pop(n)
                    continue
                with session as s:
                    windows[n].append(time_session(s, **settings))
                if p == passes - 1 and progress is not None:
                    progress(step, steps, n, windows[n])
        info = rt.info()
    if rejected and not windows:
        raise ModelRejectedError(f"{runtime} rejected every model; the first: {next(iter(rejected.values()))}")
    return windows, info, {**settings, "passes": passes}, rejected


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


def csv_text(rows: Iterable[Row], columns: Sequence[str] = CSV_COLUMNS) -> str:
    """The CSV (header + one line per row, ``\\n`` line ends); latency in ms with 6 significant
    digits beyond the point as needed (``repr`` of the value rounded to 1 ns). ``columns``:
    :data:`CSV_COLUMNS` or, for FBNet networks, :data:`FBNET_CSV_COLUMNS` (same fields)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.nb201_index is None else int(r.nb201_index), r.arch_str, r.device,
                    repr(round(float(r.latency_ms), 6))])
    return buf.getvalue()


def write_csv(rows: Measurements, path) -> Tuple[str, str]:
    """Write the CSV and its sidecar (``sidecar_path``), each atomically (a reader sees the old
    file or the new one, never half of one). Returns the two paths. Rows of ``measure_onnx``
    get its columns (:data:`ONNX_CSV_COLUMNS`)."""
    from ..format import write_atomic

    check_writable(path)
    side = sidecar_path(path)
    check_writable(side)
    conditions = dict(getattr(rows, "conditions", {}) or {})
    conditions.setdefault("schema", SIDECAR_SCHEMA)
    conditions["csv"] = os.path.basename(os.fspath(path))
    write_atomic(side, (json.dumps(conditions, indent=2, allow_nan=False) + "\n").encode())
    network = conditions.get("network") or {}
    text = (onnx_csv_text(rows) if network.get("onnx")
            else csv_text(rows, FBNET_CSV_COLUMNS if network.get("space") == "fbnet" else CSV_COLUMNS))
    write_atomic(path, text.encode())
    return os.fspath(path), side


def read_csv(path) -> List[Dict[str, Any]]:
    """Rows of a measurements CSV as dicts (``nb201_index`` int or None, ``latency_ms`` float);
    an FBNet CSV's ``fbnet_index`` / ``arch_ops`` come back under the same keys."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = tuple(reader.fieldnames or ())
        if cols not in (CSV_COLUMNS, FBNET_CSV_COLUMNS):
            raise InputError(f"{path}: header {reader.fieldnames} is not {','.join(CSV_COLUMNS)} "
                             f"(or {','.join(FBNET_CSV_COLUMNS)})")
        i, a = cols[:2]
        return [{"nb201_index": int(r[i]) if r[i] else None, "arch_str": r[a], "device": r["device"],
                 "latency_ms": float(r["latency_ms"])} for r in reader]


__all__ = [
    "Timing",
    "time_session",
    "trimmed_mean",
    "summarize",
    "Row",
    "Measurements",
    "measure",
    "sample_archs",
    "sample_connected",
    "sample_fbnet",
    "arch_space",
    "is_connected",
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
    "FBNET_CSV_COLUMNS",
]
