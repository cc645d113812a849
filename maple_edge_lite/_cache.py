"""This device's predictor, built on first use and cached: profile the device, measure the base
predictor's reference architectures, adapt, keep the result.

    import maple_edge_lite as mel
    model = mel.device_model()                     # onnxruntime, one thread; first call ~40 s
    model.predict_archs(["|nor_conv_3x3~0|+|...", ...])    # ms

The cache lives in ``$MAPLE_EDGE_LITE_CACHE``, else ``$XDG_CACHE_HOME/maple_edge_lite``, else
``~/.cache/maple_edge_lite``; one entry per key under ``devices/``::

    devices/<runtime>-<threads>t-<digest> -> .<runtime>-<threads>t-<digest>.<random>/
        manifest.json             schema, key, created, versions, files, build times
        descriptor.json           the profile (maple_edge_lite.descriptor/1)
        measurements.csv          the reference architectures, shared table format
        measurements.csv.json     its sidecar: the measuring conditions
        device.melw               the adapted predictor (architecture -> ms)

The key (``cache_key``) is the device (CPU model, core count, machine, kernel release, the PMUs
the kernel lists and ``perf_event_paranoid``), the runtime (name, version, threads) and the base
predictor (name, version, sha256) and the code that builds entries (package version,
``learn.adapt.ADAPT_VERSION``); ``<digest>`` is the first 16 hex digits of the sha256 of its
canonical JSON. A change to any of them selects another entry, which is built on first use; an
entry that fails to load is rebuilt. Computing the key imports no runtime: a built-in runtime's
version comes from the installed package metadata. Entries are built in a temporary folder
under a per-key lock and swapped in by renaming a symbolic link, so a reader never sees half of
one, nor none while an old one is replaced. docs/predict.md has the details.

The same machinery keeps each device's layer cost model (``layers/``, :func:`layer_model`: ``predict
--onnx`` and the FBNet predictor's prior use it): one cohesive module of cache entries, their keys,
locks and atomic installs, over 600 lines because both kinds of entry share them (a module of its
own for the layer entries would import this one and be imported by it)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

from ._errors import FormatError, InputError, MapleEdgeError

#: Schema of an entry's manifest.json (and of the key inside it).
MANIFEST_SCHEMA = "maple_edge_lite.device_cache/1"
DEFAULT_RUNTIME = "onnxruntime"
FILES = {"manifest": "manifest.json", "descriptor": "descriptor.json", "measurements": "measurements.csv",
         "sidecar": "measurements.csv.json", "model": "device.melw"}

#: progress(stage, i, n, item): stage is "profile", "measure", "adapt", "extend" or "recheck" (and
#: "layers", "calibrate" for a layer cost model); i of n steps are done and ``item`` (an op or an
#: architecture) runs next; i == n once the stage is finished.
Progress = Callable[[str, int, int, str], None]


class CacheError(MapleEdgeError, OSError):
    """The cache folder cannot be created or written."""


def cache_root() -> Path:
    """``$MAPLE_EDGE_LITE_CACHE``, else ``$XDG_CACHE_HOME/maple_edge_lite`` (an absolute
    ``XDG_CACHE_HOME`` only, as the XDG spec says), else ``~/.cache/maple_edge_lite``."""
    env = os.environ.get("MAPLE_EDGE_LITE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "maple_edge_lite"
    return Path.home() / ".cache" / "maple_edge_lite"


def device_facts() -> Dict[str, Any]:
    """What identifies this device for the cache: CPU model, core count, machine, kernel
    release, PMUs (name -> perf type) and ``perf_event_paranoid`` (which counters a profile
    can read). Reads /proc and /sys only; cheap."""
    from .device.counters import pmus
    from .device.host import _read, cpu_model

    paranoid = _read("/proc/sys/kernel/perf_event_paranoid")
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "pmus": {name: (None if t is None else int(t)) for name, t in pmus().items()},
        "perf_event_paranoid": int(paranoid) if paranoid and paranoid.lstrip("-").isdigit() else None,
    }


def runtime_identity(name: str, threads: int) -> Dict[str, Any]:
    """``{"name", "version", "threads"}`` of a runtime without importing it when it is a built-in
    one (its version is the installed distribution's). A registered runtime is constructed (its
    factory is the only source of its version). Raises ``RuntimeNotInstalledError`` for a
    built-in runtime that is not installed, ``InputError`` for an unknown name or bad threads."""
    from importlib import metadata

    from .device import runtimes
    from .device.runtimes import RuntimeNotInstalledError, check_threads

    check_threads(threads)
    # runtimes keeps its tables private; reading them here avoids importing the runtime itself
    # (onnxruntime alone costs ~150 ms, too much for the cached path of `predict`).
    if name in runtimes._USER or name not in runtimes._BUILTIN:
        rt = runtimes.get(name, threads=threads)
        return {"name": name, "version": str(rt.version), "threads": int(rt.threads)}
    _, _, dists, hint = runtimes._BUILTIN[name]
    try:
        version = metadata.version(dists[0])
    except metadata.PackageNotFoundError:
        raise RuntimeNotInstalledError(f"runtime {name!r} is not installed: {hint}") from None
    return {"name": name, "version": version, "threads": int(threads)}


def _base_identity(base) -> Dict[str, Any]:
    from . import registry

    if base is not None and registry.is_path(base):
        p = os.path.abspath(os.fspath(base))
        try:
            return {"name": p, "version": None, "sha256": registry.file_sha256(p)}
        except FileNotFoundError:
            from ._errors import ModelNotFoundError

            raise ModelNotFoundError(f"base predictor not found: {p}") from None
    e = registry.resolve(base)
    return {"name": e.name, "version": e.version, "sha256": e.sha256}


def code_identity() -> Dict[str, Any]:
    """The code that makes a device model: the package version and the adaptation code's version
    (``learn.adapt.ADAPT_VERSION``, bumped whenever profile, measure or adapt change what a device
    model holds). Part of the key: an entry made by other code is rebuilt, never served."""
    from . import __version__
    from .learn.adapt import ADAPT_VERSION

    return {"maple_edge_lite": __version__, "adapt": ADAPT_VERSION}


def cache_key(runtime: str = DEFAULT_RUNTIME, threads: int = 1, base=None) -> Dict[str, Any]:
    """The key of this device's entry for ``runtime`` at ``threads`` threads and ``base`` (a
    registry name or path; default the registry's default), made by this code."""
    return {"schema": MANIFEST_SCHEMA, "device": device_facts(), "runtime": runtime_identity(runtime, threads),
            "base": _base_identity(base), "code": code_identity()}


def digest(key: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def entry_dir(key: Dict[str, Any], root: Optional[Path] = None, folder: str = "devices") -> Path:
    """Where the entry for ``key`` is found: a symbolic link to the folder that holds it (see
    :func:`_install`); ``folder``: "devices" (cell predictors) or "layers" (layer cost models)."""
    rt = key["runtime"]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(rt["name"]))[:40]
    return Path(root if root is not None else cache_root()) / folder / f"{safe}-{rt['threads']}t-{digest(key)}"


def _load_entry(d: Path, key: Dict[str, Any]):
    """The cached Model if ``d`` holds a complete entry for exactly ``key``, else None."""
    from ._model import Model

    try:
        with open(d / FILES["manifest"], "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA or manifest.get("key") != key:
        return None
    try:
        model = Model.load(d / FILES["model"])
    except (MapleEdgeError, OSError):
        return None
    if model.metadata.get("model_kind") != "device":
        return None
    return model


def device_model(runtime: str = DEFAULT_RUNTIME, threads: int = 1, *, base=None, refresh: bool = False,
                 cache_dir: Union[str, os.PathLike, None] = None, progress: Optional[Progress] = None,
                 profile_options: Optional[Dict[str, Any]] = None, measure_options: Optional[Dict[str, Any]] = None,
                 shots=None, budget_s: Optional[float] = None):
    """This device's adapted predictor for ``runtime`` at ``threads`` threads, as a ``Model``
    (architecture strings -> ms): from the cache when an entry for the current key exists (a few
    milliseconds), else built now and cached (profile + measure the base's reference
    architectures + adapt: about 40 s under onnxruntime on a small CPU). ``refresh`` rebuilds
    it. ``base``: a registry name or path (default: the registry's default). ``cache_dir``:
    instead of :func:`cache_root`. ``progress``: see :data:`Progress`. ``profile_options`` /
    ``measure_options``: keyword arguments for ``profile.profile`` / ``measure.measure`` (e.g.
    cheaper, noisier timing settings for tests: ``passes``, ``budget_s``, ``min_time_s``); they
    are not part of the key. ``shots``: an int >= 10 makes sure at least that many measurements
    are behind the model (a cached entry with fewer is extended: random further
    architectures are measured, no new profile), ``"auto"`` extends in rounds of 5 until the
    model expects 90% of architectures within ±10% or ``budget_s`` seconds are spent."""
    return _device_model(runtime, threads, base=base, refresh=refresh, cache_dir=cache_dir, progress=progress,
                         profile_options=profile_options, measure_options=measure_options, shots=shots,
                         budget_s=budget_s)[0]


def _device_model(runtime=DEFAULT_RUNTIME, threads=1, *, base=None, refresh=False, cache_dir=None, progress=None,
                  profile_options=None, measure_options=None, shots=None, budget_s=None) -> Tuple[Any, Path, bool]:
    """(model, entry folder, whether it was built or extended by this call).

    ``shots``: None (what the cache has; 10 when building), an int >= 10 (at least that many
    measurements behind the model: an entry with fewer is extended with random further
    architectures, without profiling again) or ``"auto"`` (extend in small batches until the
    model expects SHARE_TARGET of the architectures within ±10%, or ``budget_s`` seconds of
    measuring are spent).

    Builders of one key take turns under a lock, and each looks again once it holds it: two first
    calls at once build the entry once and both answer from it. Readers take no lock: the entry
    is swapped in by one atomic rename, so they find either the old one or the new one; an
    interrupted build or extension leaves the old entry as it was."""
    want = _check_shots(shots, budget_s)
    key = cache_key(runtime, threads, base)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    d = entry_dir(key, root)
    if not refresh:
        model = _load_entry(d, key)
        if model is not None and not _wants_more(d, want):
            return model, d, False
    with _build_lock(d):
        model = None if refresh else _load_entry(d, key)  # another process may have built it meanwhile
        if model is None:
            _build(d, key, runtime, threads, base, progress, profile_options or {}, measure_options or {})
        if _wants_more(d, want):
            _extend(d, key, runtime, threads, base, want, budget_s, progress, measure_options or {})
        elif model is not None:
            return model, d, False
    model = _load_entry(d, key)
    if model is None:  # pragma: no cover - only if another process broke the entry meanwhile
        raise CacheError(f"the cache entry {d} was built but does not load; remove it and retry")
    return model, d, True


@contextlib.contextmanager
def _staged(d: Path):
    """A new folder beside the entry ``d`` to write an entry into; installed at ``d`` when the block
    ends normally (:func:`_install`), removed when it raises (Ctrl-C included): the old entry stays."""
    import shutil
    import tempfile

    try:
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", suffix=".tmp", dir=d.parent))
    except OSError as e:
        raise CacheError(f"cannot create the cache folder {d.parent}: {e.strerror or e} (set MAPLE_EDGE_LITE_CACHE "
                         "to a writable folder)") from None
    try:
        yield tmp
        _install(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(d: Path, key, runtime, threads, base, progress, profile_options, measure_options) -> None:
    from . import __version__, registry
    from .device import measure, profile
    from .learn.adapt import adapt_base
    from .format import write_atomic

    note = progress or (lambda *a: None)
    with _staged(d) as tmp:
        model = registry.load(base)
        refs = registry.reference_archs(model)
        times = {}
        t = time.perf_counter()
        # Both report before each step (result None: i steps done) and, on the last pass, after
        # each item: pass on the steps and the end.
        desc = profile.profile(runtime, threads,
                               progress=lambda i, n, op, r: (r is None or i == n) and note("profile", i, n, op),
                               **profile_options)
        times["profile_s"] = round(time.perf_counter() - t, 3)
        profile.save_descriptor(desc, tmp / FILES["descriptor"])
        t = time.perf_counter()
        rows = measure.measure(refs, runtime, threads, device=measure.default_device(runtime, threads),
                               progress=lambda i, n, a, r: (r is None or i == n) and note("measure", i, n, a),
                               **measure_options)
        times["measure_s"] = round(time.perf_counter() - t, 3)
        measure.write_csv(rows, tmp / FILES["measurements"])
        layer_costs, prior_mean = _prior_costs(model, runtime, threads, d, progress)
        note("adapt", 0, 1, key["base"]["name"])
        t = time.perf_counter()
        adapt_base(model, [r.arch_str for r in rows], [r.latency_ms for r in rows], out=tmp / FILES["model"],
                   descriptor=desc, provenance={"cache_key": digest(key), "measurements_file": FILES["measurements"]},
                   layer_costs=layer_costs)
        times["adapt_s"] = round(time.perf_counter() - t, 4)
        note("adapt", 1, 1, key["base"]["name"])
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "key": key,
            "digest": digest(key),
            "created": measure._now(),
            "versions": {"maple_edge_lite": __version__, "runtime": desc["runtime"].get("version"),
                         "base": key["base"], "descriptor_schema": desc.get("schema"),
                         "feature_schema": desc.get("feature_schema"),
                         "measurements_schema": measure.SIDECAR_SCHEMA},
            "files": {k: v for k, v in FILES.items() if k != "manifest"},
            "reference_archs": refs,
            "prior_mean": prior_mean,
            "shots": len(rows),
            "build": times,
        }
        write_atomic(tmp / FILES["manifest"], (json.dumps(manifest, indent=2) + "\n").encode())


def _prior_costs(model, runtime, threads, d: Path, progress):
    """``(layer_costs or None, what centres the prior)`` for building a device model from the base
    ``model``: an fbnet base is centred on this device's layer cost model (built first if the
    cache has none: the layer suite and five zoo networks measured, about 65 s here; see
    ``learn.layer_prior``); a NAS-Bench-201 base on its descriptor's operator sum (``adapt_base``)."""
    if model.metadata.get("search_space") != "fbnet":
        return None, "operator sum of the descriptor's latencies"
    from ._model import Model
    from .learn.layer_prior import fbnet_layer_costs

    _, entry, _ = layer_model(runtime, threads, cache_dir=d.parent.parent, progress=progress)
    return fbnet_layer_costs(Model.load(entry / LAYER_FILES["core"])), f"layer cost model {entry.name}"


@contextlib.contextmanager
def _build_lock(d: Path):
    """An exclusive lock (``flock``) on ``.<entry>.lock`` beside the entry, held while it is built
    and installed; released when the process dies, so a killed build never blocks the next."""
    try:
        d.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(d.parent / f".{d.name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise CacheError(f"cannot create the cache folder {d.parent}: {e.strerror or e} (set MAPLE_EDGE_LITE_CACHE "
                         "to a writable folder)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


#: ``shots="auto"`` stops once the model expects this share of architectures within ±10%.
SHARE_TARGET = 0.90
#: Architectures measured per round of ``shots="auto"``.
AUTO_BATCH = 5
MIN_SHOTS = 10


def _check_shots(shots, budget_s):
    if shots is None:
        if budget_s is not None:
            raise InputError("a measuring budget goes with shots='auto'")
        return None
    if shots == "auto":
        if budget_s is None or not (isinstance(budget_s, (int, float)) and budget_s > 0):
            raise InputError(f"shots='auto' needs a budget in seconds > 0 (got {budget_s!r})")
        return "auto"
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < MIN_SHOTS:
        raise InputError(f"shots must be an integer >= {MIN_SHOTS} or 'auto', got {shots!r}")
    if budget_s is not None:
        raise InputError("a measuring budget goes with shots='auto'")
    return shots


def _wants_more(d: Path, want) -> bool:
    if want is None:
        return False
    if want == "auto":
        return True
    return _shots_of(read_manifest(d)) < want


def _shots_of(manifest) -> int:
    return int(manifest["shots"])  # every manifest of this code's key has it (``_build``, ``_extend``)


def _extend(d: Path, key, runtime, threads, base, want, budget_s, progress, measure_options) -> None:
    """Measure more architectures on this device and adapt again (no new profile): random
    connected cells, or random FBNet networks for an FBNet base (1,000 candidates, in an order
    seeded by the key). Written into a copy of the
    entry and installed atomically, under the build lock."""

    import numpy as np

    from . import encode as enc, registry
    from .device import measure, profile
    from .format import write_atomic
    from .learn.adapt import adapt_base

    note = progress or (lambda *a: None)
    manifest = read_manifest(d)
    desc = profile.load_descriptor(d / FILES["descriptor"])
    old = measure.read_csv(d / FILES["measurements"])
    model = registry.load(base)
    space = model.metadata.get("search_space")
    archs = [r["arch_str"] for r in old]
    ms = [r["latency_ms"] for r in old]
    layer_costs, _ = _prior_costs(model, runtime, threads, d, progress)
    seed = int(digest(key)[:8], 16)
    sample = measure.sample_fbnet if space == "fbnet" else measure.sample_connected
    pool = [a for a in sample(1200, seed=seed) if a not in set(archs)][:1000]
    X = enc.encode(space, pool) if want == "auto" else None  # what share_within judges
    per_arch = float((manifest.get("build") or {}).get("measure_s") or 0.0) / max(len(archs), 1)
    t0 = time.perf_counter()
    added = []
    conditions = {}
    share = None
    while True:
        if want == "auto":
            share = adapt_base(model, archs, np.array(ms), descriptor=desc, layer_costs=layer_costs,
                               speed_sd=speed_sd(manifest)).share_within(X)
            left = budget_s - (time.perf_counter() - t0)
            if share >= SHARE_TARGET or (added and left <= 0):
                break
            k = min(AUTO_BATCH, int(left // per_arch)) if per_arch > 0 else (AUTO_BATCH if left > 0 else 0)
            if k < 1:
                if not added:
                    raise InputError(f"a budget of {budget_s:g} s is too small for one measurement here (about "
                                     f"{per_arch:.1f} s each): give --budget-s {int(per_arch) + 1} or more")
                break
        else:
            k = want - len(archs)
            if k <= 0:
                break
        k = min(k, len(pool))
        if k < 1:  # every candidate measured
            break
        # Random connected cells, in the key's seeded order. Measured on this VM (200 random cells
        # under ONNX Runtime, the main job's 10 references plus k - 10 more): random ones gave ±10%
        # accuracy 0.744 / 0.791 / 0.847 at k = 20 / 50 / 100, the greedy A-optimal ones among the
        # rest 0.716 / 0.750 / 0.855: the design favours untypical cells, as for the references.
        chosen, pool = pool[:k], pool[k:]
        if X is not None:
            X = X[k:]
        t = time.perf_counter()
        rows = measure.measure(chosen, runtime, threads, device=measure.default_device(runtime, threads),
                               progress=lambda i, n, a, r: (r is None or i == n) and note("extend", i, n, a),
                               **measure_options)
        per_arch = (time.perf_counter() - t) / len(chosen)
        added += list(rows)
        conditions = dict(getattr(rows, "conditions", None) or {})
        archs += [r.arch_str for r in rows]
        ms += [r.latency_ms for r in rows]
    if not added:
        return
    with _staged(d) as tmp:
        sidecar = _copy_entry(d, tmp)
        all_rows = measure.Measurements(
            [measure.Row(r["nb201_index"], r["arch_str"], r["device"], r["latency_ms"], None) for r in old] + added,
            conditions={**sidecar, "extended": (sidecar.get("extended") or []) + [
                {"rows": len(added), "conditions": conditions}]})
        measure.write_csv(all_rows, tmp / FILES["measurements"])
        adapt_base(model, archs, np.array(ms), out=tmp / FILES["model"], descriptor=desc,
                   provenance={"cache_key": digest(key), "measurements_file": FILES["measurements"]},
                   layer_costs=layer_costs, speed_sd=speed_sd(manifest))
        manifest = dict(manifest)
        manifest["shots"] = len(archs)
        manifest["updated"] = measure._now()
        manifest["extensions"] = (manifest.get("extensions") or []) + [{
            "added": len(added), "shots": "auto" if want == "auto" else want, "budget_s": budget_s,
            "measure_s": round(time.perf_counter() - t0, 3),
            "expected_share_within_10pct": None if share is None else round(share, 4)}]
        write_atomic(tmp / FILES["manifest"], (json.dumps(manifest, indent=2) + "\n").encode())


#: A speed recheck (:func:`recheck`) times this many of the entry's measured architectures again,
#: spread over their latencies, and rescales the model when their median ratio (now over then)
#: moves by RECHECK_MIN or more: ``measure``'s own repeatability here is 1-3% (median).
RECHECK_REFS = 5
RECHECK_MIN = 0.02


def recheck_archs(rows, n: int = RECHECK_REFS) -> list:
    """``n`` of the measured ``rows`` (dicts with arch_str, latency_ms), evenly spaced over their
    latencies from the fastest to the slowest: the architectures a speed recheck times again."""
    import numpy as np

    by_ms = sorted(rows, key=lambda r: float(r["latency_ms"]))
    if len(by_ms) <= n:
        return [r["arch_str"] for r in by_ms]
    return [by_ms[int(i)]["arch_str"] for i in np.round(np.linspace(0, len(by_ms) - 1, n))]


def recheck(runtime: str = DEFAULT_RUNTIME, threads: int = 1, *, base=None,
            cache_dir: Union[str, os.PathLike, None] = None, progress: Optional[Progress] = None,
            measure_options: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """Has this device's speed moved since its cached predictor was measured (thermal throttling,
    a governor, a busy neighbour)? Times :data:`RECHECK_REFS` of the entry's measured
    architectures again (:func:`recheck_archs`; about 15 s here); when their median ratio now /
    then is off 1 by :data:`RECHECK_MIN` or more, every measurement behind the model is scaled by
    it (closed form: the predictions scale by exactly that ratio, the prior being centred
    relative to the measurements). Either way the model is adapted again with its interval
    widened by how far the speed has moved at the rechecks so far (:func:`speed_sd`). The
    manifest keeps every recheck; the new entry is installed atomically under the build lock
    (Ctrl-C leaves the old one). Returns the recheck's record ({"time", "archs", "ratio",
    "applied", "measure_s"}), or None when there is no cached predictor to recheck
    (``device_model`` builds one)."""
    key = cache_key(runtime, threads, base)
    d = entry_dir(key, Path(cache_dir) if cache_dir is not None else None)
    if _load_entry(d, key) is None:
        return None
    with _build_lock(d):
        if _load_entry(d, key) is None:  # pragma: no cover - removed by another process meanwhile
            return None
        return _recheck(d, key, runtime, threads, base, progress, measure_options or {})


def speed_sd(manifest: Dict[str, Any]) -> float:
    """The relative sd by which this entry's device has moved between measuring and using its
    model: the root mean square of log(ratio) over the entry's rechecks (0 before the first).
    The model's interval includes it (``adapt_base(speed_sd=)``)."""
    import math

    logs = [math.log(float(r["ratio"])) for r in manifest.get("rechecks") or []]
    return math.sqrt(sum(v * v for v in logs) / len(logs)) if logs else 0.0


def _recheck(d: Path, key, runtime, threads, base, progress, measure_options) -> Dict[str, Any]:
    """:func:`recheck`'s work, under the build lock: time, record, rescale if applied, adapt again."""
    import numpy as np

    from . import registry
    from .device import measure, profile
    from .format import write_atomic
    from .learn.adapt import adapt_base

    note = progress or (lambda *a: None)
    manifest = read_manifest(d)
    old = measure.read_csv(d / FILES["measurements"])
    then = {r["arch_str"]: float(r["latency_ms"]) for r in old}
    t0 = time.perf_counter()
    rows = measure.measure(recheck_archs(old), runtime, threads, device=measure.default_device(runtime, threads),
                           progress=lambda i, n, a, r: (r is None or i == n) and note("recheck", i, n, a),
                           **measure_options)
    ratio = float(np.median([r.latency_ms / then[r.arch_str] for r in rows]))
    record = {"time": measure._now(), "archs": len(rows), "ratio": round(ratio, 5),
              "applied": bool(abs(ratio - 1) >= RECHECK_MIN), "measure_s": round(time.perf_counter() - t0, 3)}
    with _staged(d) as tmp:
        sidecar = _copy_entry(d, tmp)
        manifest = dict(manifest)
        manifest["rechecks"] = (manifest.get("rechecks") or []) + [record]
        scale = ratio if record["applied"] else 1.0
        if record["applied"]:
            measure.write_csv(measure.Measurements(
                [measure.Row(r["nb201_index"], r["arch_str"], r["device"], r["latency_ms"] * scale, None) for r in old],
                conditions={**sidecar, "rescaled": (sidecar.get("rescaled") or []) + [record]}),
                tmp / FILES["measurements"])
            manifest["speed_ratio"] = round(float(manifest.get("speed_ratio", 1.0)) * ratio, 5)
        model = registry.load(base)
        layer_costs, _ = _prior_costs(model, runtime, threads, d, progress)
        adapt_base(model, [r["arch_str"] for r in old], np.array([r["latency_ms"] * scale for r in old]),
                   out=tmp / FILES["model"], descriptor=profile.load_descriptor(d / FILES["descriptor"]),
                   provenance={"cache_key": digest(key), "measurements_file": FILES["measurements"]},
                   layer_costs=layer_costs, speed_sd=speed_sd(manifest))
        manifest["updated"] = record["time"]
        write_atomic(tmp / FILES["manifest"], (json.dumps(manifest, indent=2) + "\n").encode())
    return record


def _copy_entry(d: Path, tmp: Path) -> Dict[str, Any]:
    """Copy entry ``d``'s files but its manifest into the staged folder ``tmp`` (an extension or
    a recheck then rewrites some of them); returns the measurements' sidecar ({} if none)."""
    import shutil

    for f in FILES.values():
        if f != FILES["manifest"] and (d / f).exists():
            shutil.copy2(d / f, tmp / f)
    return json.loads((d / FILES["sidecar"]).read_text()) if (d / FILES["sidecar"]).exists() else {}


def _install(tmp: Path, d: Path) -> None:
    """Put the finished entry folder ``tmp`` in place at ``d``, replacing an old entry, in one
    atomic step: ``d`` is a symbolic link to a folder ``.<name>.<random>`` beside it, and a new
    link replaces it with ``rename`` (which cannot fail half-way): a reader opens files of the old
    entry or of the new one, never finds none. The old folder is removed after the swap. Called
    under :func:`_build_lock`."""
    import shutil
    import uuid

    token = uuid.uuid4().hex[:12]
    target = d.with_name(f".{d.name}.{token}")
    os.rename(tmp, target)
    link = d.with_name(f".{d.name}.{token}.link")
    os.symlink(target.name, link)
    old = None
    if os.path.islink(d):
        old = d.parent / os.readlink(d)
    elif d.exists():  # an entry made before entries were links: a real folder, moved aside first
        old = d.with_name(f".{d.name}.old-{token}")
        os.rename(d, old)
    os.replace(link, d)
    if old is not None and old.name != target.name:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(d: Union[str, os.PathLike]) -> Dict[str, Any]:
    p = Path(d) / FILES["manifest"]
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"no cache entry at {d} (missing {p.name})") from None
    except ValueError as e:
        raise FormatError(f"{p}: not valid JSON ({e})") from None


__all__ = ["device_model", "cache_root", "cache_key", "device_facts", "runtime_identity", "entry_dir", "digest",
           "read_manifest", "CacheError", "MANIFEST_SCHEMA", "FILES", "layer_model", "layer_key", "LAYER_CALIBRATION",
           "recheck", "recheck_archs", "speed_sd", "RECHECK_REFS", "RECHECK_MIN", "layer_recheck",
           "layer_speed_ratio"]


# --- the layer cost model (any ONNX CNN): `predict --onnx` -------------------------------------

#: Zoo networks measured to calibrate a device's layer cost model (five families, 1.3-20 ms here):
#: inverted residuals, squeeze-excite with hardswish and with SiLU, dense 3x3 convolutions, channel
#: split and shuffle. SqueezeNet 1.1 was the fifth until the layer suite's pools were seen to
#: over-price it 12-39%: calibrated with EfficientNet-B0 in its place, the 24 zoo networks of
#: neither set scored ±10% 0.84 instead of 0.75 (three sittings, ONNX Runtime and OpenVINO f32;
#: docs/layers.md).
LAYER_CALIBRATION = ("mobilenet_v2_1.0_224", "mobilenet_v3_small", "resnet18", "shufflenet_v2_x1.0", "efficientnet_b0")
#: ``core``: the same model as a ``.melw`` (format 6 with a nonzero channel term, else 5 with a nonzero alignment
#: term, else 4 with the spill term, else 3) the C core evaluates (``mel_model_predict_layers``),
#: for a scheduler; ``predict --onnx`` predicts through it too.
LAYER_FILES = {"manifest": "manifest.json", "model": "layer_model.json", "core": "layer_model.melw"}


def layer_key(runtime: str = DEFAULT_RUNTIME, threads: int = 1,
              runtime_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The key of this device's layer cost model entry for ``runtime`` at ``threads`` threads
    (with ``runtime_options``, e.g. OpenVINO's ``{"precision": "f32"}``, another entry)."""
    from .device.builders.layer_suite import SUITE_VERSION
    from .device.host import core_cache
    from .learn.layer_cost import FEATURE_SCHEMA

    rt = runtime_identity(runtime, threads)
    if runtime_options:
        from .device import runtimes

        runtimes.check_options(runtime, threads, **runtime_options)  # one the adapter does not take: InputError
        rt["options"] = {k: runtime_options[k] for k in sorted(runtime_options)}
    return {"schema": MANIFEST_SCHEMA, "kind": "layers", "device": device_facts(),
            "runtime": rt, "suite": SUITE_VERSION,
            "feature_schema": FEATURE_SCHEMA, "cache_bytes": core_cache()["bytes"],
            "calibration": list(LAYER_CALIBRATION), "code": code_identity()}


def _load_layer_entry(d: Path, key: Dict[str, Any]):
    from .learn.layer_cost import LayerCostModel

    try:
        with open(d / LAYER_FILES["manifest"], "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("key") != key:
            return None
        with open(d / LAYER_FILES["model"], "rb") as f:
            return LayerCostModel.from_dict(json.loads(f.read().decode("utf-8")))
    except (OSError, ValueError, MapleEdgeError):
        return None


def layer_model(runtime: str = DEFAULT_RUNTIME, threads: int = 1, *, refresh: bool = False, cache_dir=None,
                progress: Optional[Progress] = None, suite_timing: Optional[Dict[str, Any]] = None,
                measure_options: Optional[Dict[str, Any]] = None, runtime_options: Optional[Dict[str, Any]] = None):
    """``(LayerCostModel, entry folder, built)``: this device's layer cost model for ``runtime``
    at ``threads`` threads (``runtime_options``: the adapter's settings, e.g. OpenVINO's
    ``{"precision": "f32"}``; part of the key), from the cache, else built now (about 65 s here): the layer suite is
    measured and fitted, the :data:`LAYER_CALIBRATION` networks are measured and calibrate it, and
    the result is cached beside the cell predictors (``<cache>/layers/``), installed atomically
    under the same lock discipline. ``suite_timing`` / ``measure_options`` override the timing
    (tests); they are not part of the key."""
    key = layer_key(runtime, threads, runtime_options)
    d = entry_dir(key, Path(cache_dir) if cache_dir is not None else None, folder="layers")
    if not refresh:
        m = _load_layer_entry(d, key)
        if m is not None and _layer_core_loads(d):
            return m, d, False
    with _build_lock(d):
        m = None if refresh else _load_layer_entry(d, key)
        if m is not None:
            if not _layer_core_loads(d):  # made before the .melw existed, or damaged: pack it again
                _pack_layer_core(d / LAYER_FILES["core"], m, key)
            return m, d, False
        _build_layers(d, key, runtime, threads, progress or (lambda *a: None), suite_timing, measure_options,
                      runtime_options)
    m = _load_layer_entry(d, key)
    if m is None:  # pragma: no cover - only if another process broke the entry meanwhile
        raise CacheError(f"the cache entry {d} was built but does not load; remove it and retry")
    return m, d, True


def _layer_core_loads(d: Path) -> bool:
    """Whether the entry's .melw loads as a layer cost model over this version's layer tables
    (schema, kinds and activations in the same order)."""
    from ._model import Model
    from .device.layers import ACTIVATIONS, KINDS, table_schema_number

    try:
        m = Model.load(d / LAYER_FILES["core"])
        return (m.kind == "layer_cost" and m.layer_table_schema == table_schema_number() and m.layer_kinds == KINDS
                and m.layer_activations == ACTIVATIONS)
    except (MapleEdgeError, OSError):
        return False


def _pack_layer_core(path: Path, model, key: Dict[str, Any]) -> None:
    from .learn.layer_cost import pack

    pack(model, path, metadata={"provenance": {"cache_key": digest(key), "runtime": key["runtime"],
                                               "device": key["device"]}})


def _build_layers(d: Path, key, runtime, threads, note, suite_timing, measure_options, runtime_options=None) -> None:
    import numpy as np

    from .device import layers, measure, profile
    from .device.builders import layer_suite, zoo
    from .device.host import core_cache
    from .learn.layer_cost import ALIGN, ALIGN_CLASSES, LayerCostModel, network_features

    suite = {s.name: s for s in layer_suite.default_suite()}
    t = time.perf_counter()
    doc = profile.profile_layers(runtime, threads, progress=lambda i, n, name, ts: (ts is None and (i % 5 == 0))
                                 and note("layers", i, n, name), runtime_options=runtime_options,
                                 **(suite_timing or {}))
    info, s_settings, s_rej = doc["runtime"], doc["timing"], doc["rejected"]
    suite_s = time.perf_counter() - t
    note("layers", 1, 1, "")
    t = time.perf_counter()
    built: Dict[str, bytes] = {}  # each calibration network built once, for its timing and its table

    def build(name: str) -> bytes:
        if name not in built:
            built[name] = zoo.zoo_onnx(name)
        return built[name]

    zw, _, z_settings, z_rej = measure.time_models(
        list(LAYER_CALIBRATION), build, runtime, threads, runtime_options=runtime_options,
        progress=lambda i, n, name, ts: ts is None and note("calibrate", i, n, name), **(measure_options or {}))
    calib_s = time.perf_counter() - t
    note("calibrate", 1, 1, "")
    sn = [e["name"] for e in doc["entries"]]
    # The spill term's threshold: this device's per-core cache (None, the term off, where sysfs
    # does not tell it; the manifest records why). The key holds the same number.
    cache = core_cache()
    cb = key["cache_bytes"]
    # The alignment term: the MMACs of layers whose channel counts are off a multiple of ALIGN.
    F = np.array([network_features(layers.from_onnx(layer_suite.layer_onnx(suite[n])), cb, ALIGN) for n in sn])
    y = np.array([e["latency_ms"] for e in doc["entries"]])
    specs = [suite[n] for n in sn]
    model = LayerCostModel.from_suite(F, y, layer_suite.fit_weights(specs), cache_bytes=cb, align=ALIGN,
                                      class_fit=layer_suite.class_fit_mask(specs))
    noise = model.noise
    zn = list(zw)
    Fz = np.array([model.features(layers.from_onnx(build(n))) for n in zn])
    yz = np.array([min(x.median_ms for x in zw[n]) for n in zn])
    model.calibrate(Fz, yz)
    manifest = {"schema": MANIFEST_SCHEMA, "key": key, "digest": digest(key), "created": measure._now(),
                "runtime": info, "suite": {n: round(float(v), 6) for n, v in zip(sn, y)},
                "suite_rejected": s_rej, "suite_noise": noise, "suite_timing": s_settings,
                "calibration": {n: round(float(v), 6) for n, v in zip(zn, yz)},
                "calibration_weights": {n: round(float(u), 4) for n, u in zip(zn, model.weights)},
                "calibration_rejected": z_rej,
                "calibration_timing": z_settings, "files": dict(LAYER_FILES),
                "core_cache": dict(cache, bytes=cb, spill_ms_per_mb=model.w_spill if model.has_spill else None),
                "align": {"channels": model.align, "ms_per_unaligned_mmac": dict(zip(ALIGN_CLASSES,
                                                                                     model.w_align.tolist())),
                          "ms_per_unaligned_kchannel": {"depthwise": model.w_chan}},
                "build": {"suite_s": round(suite_s, 1), "calibration_s": round(calib_s, 1)}}
    _install_layer_entry(d, key, model, manifest)


def _install_layer_entry(d: Path, key, model, manifest: Dict[str, Any]) -> None:
    """Write a layer model's entry (its JSON model, the ``.melw`` the core loads, the manifest) in a
    staged folder and install it at ``d`` (:func:`_staged`): the build's and a recheck's."""
    from .format import write_atomic

    with _staged(d) as tmp:
        write_atomic(tmp / LAYER_FILES["model"], (json.dumps(model.to_dict(), indent=1) + "\n").encode())
        _pack_layer_core(tmp / LAYER_FILES["core"], model, key)
        write_atomic(tmp / LAYER_FILES["manifest"], (json.dumps(manifest, indent=2) + "\n").encode())


def layer_recheck(runtime: str = DEFAULT_RUNTIME, threads: int = 1, *,
                  runtime_options: Optional[Dict[str, Any]] = None, cache_dir: Union[str, os.PathLike, None] = None,
                  progress: Optional[Progress] = None,
                  measure_options: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """:func:`recheck` for this device's layer cost model (``predict --onnx --recheck``): times
    the entry's calibration networks again (:data:`LAYER_CALIBRATION`, about 20 s here) and, when
    their median ratio now / then is off 1 by :data:`RECHECK_MIN` or more, rescales the model by it
    (``LayerCostModel.rescaled``: what fitting suite and calibration again on every measurement
    times the ratio gives). Either way the interval is widened by how far the speed has moved at
    the rechecks so far (:func:`speed_sd`, the model's ``speed_sd``). The manifest keeps every
    recheck and the speed ratio since the build; the entry is installed again atomically under
    the build lock (Ctrl-C leaves the old one). Returns the recheck's record ({"time",
    "networks", "ratio", "applied", "measure_s"}), or None when there is no cached layer model
    to recheck (:func:`layer_model` builds one)."""
    key = layer_key(runtime, threads, runtime_options)
    d = entry_dir(key, Path(cache_dir) if cache_dir is not None else None, folder="layers")
    if _load_layer_entry(d, key) is None:
        return None
    with _build_lock(d):
        model = _load_layer_entry(d, key)
        if model is None:  # pragma: no cover - removed by another process meanwhile
            return None
        return _layer_recheck(d, key, model, runtime, threads, runtime_options, progress or (lambda *a: None),
                              measure_options or {})


def layer_speed_ratio(manifest: Dict[str, Any], runtime: str, threads: int, runtime_options=None,
                      progress: Optional[Progress] = None,
                      measure_options: Optional[Dict[str, Any]] = None) -> Tuple[Optional[float], int]:
    """``(ratio, networks)``: the calibration networks of a layer model's cache entry (its
    ``manifest``) timed again, the median of now / then (then at the model's speed: the
    calibration times the rechecks' ``speed_ratio``) over the ``networks`` the runtime ran (None
    when it ran none). Changes nothing (``layer_recheck`` applies it; ``validate --onnx`` reports it)."""
    import numpy as np

    from .device import measure
    from .device.builders import zoo

    note = progress or (lambda *a: None)
    then = {n: float(v) * float(manifest.get("speed_ratio", 1.0)) for n, v in manifest["calibration"].items()}
    zw, _, _, _ = measure.time_models(list(then), zoo.zoo_onnx, runtime, threads, runtime_options=runtime_options,
                                      progress=lambda i, n, name, ts: ts is None and note("recheck_layers", i, n, name),
                                      **(measure_options or {}))
    note("recheck_layers", 1, 1, "")
    if not zw:
        return None, 0
    return float(np.median([min(t.median_ms for t in ts) / then[n] for n, ts in zw.items()])), len(zw)


def _layer_recheck(d: Path, key, model, runtime, threads, runtime_options, note, measure_options) -> Dict[str, Any]:
    """:func:`layer_recheck`'s work, under the build lock: time, record, rescale if applied, install."""
    from .device import measure

    manifest = read_manifest(d)
    speed = float(manifest.get("speed_ratio", 1.0))
    t0 = time.perf_counter()
    ratio, timed = layer_speed_ratio(manifest, runtime, threads, runtime_options, note, measure_options)
    if ratio is None:
        raise CacheError(f"the runtime ran none of the calibration networks again ({', '.join(manifest['calibration'])}):"
                         " the cached layer cost model is left as it was")
    record = {"time": measure._now(), "networks": timed, "ratio": round(ratio, 5),
              "applied": bool(abs(ratio - 1) >= RECHECK_MIN), "measure_s": round(time.perf_counter() - t0, 3)}
    manifest = dict(manifest, rechecks=(manifest.get("rechecks") or []) + [record], updated=record["time"])
    if record["applied"]:
        model = model.rescaled(ratio)
        manifest["speed_ratio"] = round(speed * ratio, 5)
    model.speed_sd = speed_sd(manifest)
    _install_layer_entry(d, key, model, manifest)
    return record
