"""Collect a cross-runtime pool on this machine: for each (runtime, threads) pair, the
hardware-runtime descriptor and the end-to-end latencies of one seeded sample of NAS-Bench-201
networks (32x32), so that MAPLE-Edge's leave-one-runtime-out test can be run on real runtimes.

    /tmp/venv-rt/bin/python -P tools/collect_pool.py --n 500 --out benchmarks/data/pool

Resumable: the work is done in chunks of ``--chunk`` architectures, the outer loop over chunks
and the inner loop over pairs, so every pair grows together and a partial run is a usable (smaller)
pool. Each finished chunk is appended to the pair's CSV (rewritten atomically); on restart the
archs already in a pair's CSV are skipped, and a descriptor whose JSON exists is not profiled
again. ``manifest.json`` records the conditions: runtime versions, threads, timing, host facts,
start/end times, per-pair counts and the load average around every chunk.

Files under ``--out`` (device names ``<prefix>-<runtime>-<threads>t``):

- ``<device>.csv``: ``nb201_index,arch_str,device,latency_ms`` (the shared data format, ms);
- ``<device>.descriptor.json``: ``maple_edge_lite.device.profile`` descriptor;
- ``manifest.json``: schema :data:`MANIFEST_SCHEMA`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

MANIFEST_SCHEMA = "maple_edge_lite.pool_manifest/1"
DEFAULT_PAIRS = ("onnxruntime:1", "onnxruntime:2", "openvino:1", "openvino:2",
                 "mnn:1", "mnn:2", "torch:1", "torch:2")
#: Light timing for the pool (per window): a quarter of measure()'s default cost. The pool's
#: purpose is many (network, pair) points; per-point noise of a few % is what it buys.
POOL_TIMING = dict(warmup=3, warmup_s=0.03, min_runs=10, min_time_s=0.1, budget_s=0.5, rel_tol=0.01)
POOL_PASSES = 2
DEFAULT_ARCHS_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nb201_archs.csv"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _load() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _option_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        return text


def parse_pair(spec: str) -> Tuple[str, int, Dict[str, Any]]:
    """``RUNTIME:THREADS[:KEY=VALUE[,KEY=VALUE...]]`` -> (runtime, threads, options). The options
    are the adapter's own settings (``runtimes.get(name, threads, **options)``), so one runtime
    under two configurations (e.g. ``openvino:1:precision=f32``) is two pairs of one runtime."""
    rt, _, rest = spec.partition(":")
    th, _, opts = rest.partition(":")
    if not rt or not th.isdigit() or int(th) < 1:
        raise SystemExit(f"error: pair {spec!r} is not RUNTIME:THREADS[:KEY=VALUE,...] (e.g. onnxruntime:1)")
    options: Dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, eq, val = item.partition("=")
        if not eq or not key.isidentifier() or not val:
            raise SystemExit(f"error: pair {spec!r}: option {item!r} is not KEY=VALUE (e.g. precision=f32)")
        options[key] = _option_value(val)
    return rt, int(th), options


def device_name(prefix: str, runtime: str, threads: int, options: Optional[Dict[str, Any]] = None) -> str:
    """``<prefix>-<runtime>[-<option>...]-<threads>t``: an option is named by its value, a true
    flag by its key, a false one by ``no`` + key (``vm-openvino-f32-1t``, ``vm-torch-jit-1t``)."""
    tags = [(k if v else f"no{k}") if isinstance(v, bool) else str(v).replace("-", "") for k, v in
            sorted((options or {}).items())]
    return "-".join([prefix, runtime, *tags, f"{threads}t"])


def _write_atomic(path: Path, data: bytes) -> None:
    from maple_edge_lite.format import write_atomic

    write_atomic(path, data)


def _read_rows(path: Path) -> List[Dict[str, Any]]:
    from maple_edge_lite.device import measure as M

    return M.read_csv(path) if path.exists() else []


def _append_rows(path: Path, old: List[Dict[str, Any]], new) -> List[Dict[str, Any]]:
    """Rewrite ``path`` (atomically) with the old rows and the new ``measure.Row``s."""
    from maple_edge_lite.device import measure as M

    rows = list(old) + [{"nb201_index": r.nb201_index, "arch_str": r.arch_str, "device": r.device,
                         "latency_ms": float(r.latency_ms)} for r in new]
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(M.CSV_COLUMNS)
    for r in rows:
        w.writerow(["" if r["nb201_index"] is None else int(r["nb201_index"]), r["arch_str"], r["device"],
                    repr(round(float(r["latency_ms"]), 6))])
    _write_atomic(path, buf.getvalue().encode())
    return rows


def load_index(path: Optional[Path]) -> Dict[str, int]:
    from maple_edge_lite.device import measure as M

    if path is None or not Path(path).exists():
        return {}
    _, index = M.read_archs(path)
    return index


class Manifest:
    """The manifest file: read on start (so a resumed run keeps its history), saved after every step."""

    def __init__(self, path: Path):
        self.path = path
        if path.exists():
            self.data = json.loads(path.read_text())
        else:
            self.data = {"schema": MANIFEST_SCHEMA, "runs": [], "pairs": {}, "chunks": []}

    def save(self) -> None:
        _write_atomic(self.path, (json.dumps(self.data, indent=1, allow_nan=False) + "\n").encode())


@contextlib.contextmanager
def torch_build_single_threaded(enabled: bool = True):
    """Build torch sessions' modules at one thread; runs keep the pair's thread count.

    Why: constructing the interpreted ``nn.Module`` runs many tiny parallel regions (weight
    initialisation of every Conv2d/BatchNorm); at 2 threads on this shared 2-core VM each of them
    waits on a preempted OpenMP worker, so building a session took ~3.6 s per network against
    ~0.2 s at one thread, which alone made torch-2t ~2/3 of the collection. The timed loop is
    unaffected: ``TorchSession.run`` re-applies the runtime's thread count before every run, and
    the warm-up absorbs the pool's restart."""
    if not enabled:
        yield
        return
    try:
        from maple_edge_lite.device.runtimes import _torch
    except ImportError:
        yield
        return
    orig = _torch.build_module

    def build(proto, torch):
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return orig(proto, torch)
        finally:
            torch.set_num_threads(n)

    _torch.build_module = build
    try:
        yield
    finally:
        _torch.build_module = orig


def _measure_tolerant(M, archs, rt, th, rejected: Dict[str, str], log, **kw):
    """``M.measure(archs, rt, th, **kw)``, recording the networks the runtime rejected (measure
    leaves them out after a retry: converters crash intermittently, pnnx did on 2 of ~500
    networks and converted one of them on the next try) in ``rejected``. Returns the rows
    measured (a ``Measurements``), or None if every network was rejected."""
    from maple_edge_lite.device.runtimes import ModelRejectedError

    try:
        rows = M.measure(archs, rt, th, **kw)
    except ModelRejectedError as e:  # every network rejected
        for a in archs:
            rejected[a] = str(e)[:300]
        log(f"{kw.get('device') or rt}: rejected all {len(archs)}: {str(e)[:120]}")
        return None
    for r in rows.conditions.get("rejected") or ():
        rejected[r["arch_str"]] = r["error"][:300]
        log(f"{kw.get('device') or rt}: rejected {r['arch_str']}: {r['error'][:120]}")
    return rows


def collect(out: Path, pairs: Sequence[Tuple], n: int, seed: int = 0, chunk: int = 25,
            prefix: str = "vm", passes: int = POOL_PASSES, timing: Optional[Dict[str, Any]] = None,
            archs_csv: Optional[Path] = DEFAULT_ARCHS_CSV, profile_kwargs: Optional[Dict[str, Any]] = None,
            log: Callable[[str], None] = print, max_chunks: Optional[int] = None,
            torch_build_1t: bool = True) -> Dict[str, Any]:
    """Profile and measure every pair; returns the manifest dict. ``max_chunks`` stops after that
    many chunk rounds (for tests and for splitting a run); a rerun picks up where it stopped."""
    from maple_edge_lite.device import measure as M
    from maple_edge_lite.device import profile as P

    timing = dict(POOL_TIMING if timing is None else timing)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    archs = M.sample_archs(n, seed)
    index = load_index(archs_csv)
    man = Manifest(out / "manifest.json")
    run = {"started": _now(), "finished": None, "argv": sys.argv[1:], "n": n, "seed": seed, "chunk": chunk,
           "passes": passes, "timing": timing, "host": M.host_facts(), "measured": 0,
           "torch_build_single_threaded": torch_build_1t}
    man.data["runs"].append(run)
    man.data.update({"sample": {"n": n, "seed": seed, "rule": "maple_edge_lite.device.measure.sample_archs(n, seed)",
                                "resolution": 32},
                     "timing": {**timing, "passes": passes}})
    man.save()
    pairs = [(p[0], p[1], dict(p[2]) if len(p) > 2 else {}) for p in pairs]
    devs = {device_name(prefix, rt, th, opts): (rt, th, opts) for rt, th, opts in pairs}
    if len(devs) != len(pairs):
        from maple_edge_lite._errors import InputError

        raise InputError("a pair is listed twice")
    have: Dict[str, List[Dict[str, Any]]] = {}
    for dev, (rt, th, opts) in devs.items():
        have[dev] = _read_rows(out / f"{dev}.csv")
        entry = man.data["pairs"].setdefault(dev, {"runtime": rt, "threads": th})
        if opts:
            entry["options"] = opts
        entry["count"] = len(have[dev])
    # Descriptors first: each is ~10-30 s, and without one a pair is useless to the experiment.
    for dev, (rt, th, opts) in devs.items():
        dpath = out / f"{dev}.descriptor.json"
        if dpath.exists():
            continue
        t0 = time.time()
        load0 = _load()
        desc = P.profile(rt, th, runtime_options=opts or None, **(profile_kwargs or {}))
        P.save_descriptor(desc, dpath)
        man.data["pairs"][dev].update({"descriptor": dpath.name, "descriptor_wall_s": round(time.time() - t0, 2),
                                       "descriptor_loadavg": [load0, _load()],
                                       "descriptor_created": _now()})
        man.save()
        log(f"descriptor {dev}: {time.time() - t0:.1f} s")
    chunks = [archs[i:i + chunk] for i in range(0, len(archs), chunk)]
    rounds = 0
    for ci, part in enumerate(chunks):
        if max_chunks is not None and rounds >= max_chunks:
            break
        did = False
        for dev, (rt, th, opts) in devs.items():
            done = {r["arch_str"] for r in have[dev]}
            rejected = man.data["pairs"][dev].setdefault("rejected", {})
            todo = [a for a in part if a not in done and a not in rejected]
            if not todo:
                continue
            did = True
            t0 = time.time()
            load0 = _load()
            with torch_build_single_threaded(torch_build_1t):
                rows = _measure_tolerant(M, todo, rt, th, rejected, log, device=dev, index=index, passes=passes,
                                         runtime_options=opts or None, **timing)
            if rows is None:
                man.save()
                continue
            have[dev] = _append_rows(out / f"{dev}.csv", have[dev], rows)
            wall = time.time() - t0
            entry = man.data["pairs"][dev]
            entry["count"] = len(have[dev])
            entry["runtime_info"] = rows.conditions.get("runtime")
            stable = sum(1 for r in rows if r.timing.stable)
            man.data["chunks"].append({"chunk": ci, "device": dev, "n": len(rows), "stable": stable,
                                       "wall_s": round(wall, 2), "loadavg_before": load0, "loadavg_after": _load(),
                                       "finished": _now()})
            run["measured"] += len(rows)
            man.save()
            log(f"chunk {ci + 1}/{len(chunks)} {dev}: {len(rows)} archs in {wall:.1f} s "
                f"({stable} stable), load {load0}, total {len(have[dev])}")
        if did:
            rounds += 1
    run["finished"] = _now()
    man.data["counts"] = {dev: len(have[dev]) for dev in devs}
    man.save()
    return man.data


def recheck(out: Path, k: int, devices: Optional[Sequence[str]] = None, log: Callable[[str], None] = print,
            torch_build_1t: bool = True) -> Dict[str, Dict[str, Any]]:
    """Measure the first ``k`` archs of each pair again, with the timing and runtime options the
    manifest recorded, and compare with the pool: how repeatable its numbers are (a pair whose
    re-measurements disagree by more than a predictor's error cannot judge the predictor).
    Stored in the manifest under ``recheck``; returns ``{device: stats}``."""
    import numpy as np

    from maple_edge_lite.device import measure as M

    out = Path(out)
    man = Manifest(out / "manifest.json")
    timing = dict(man.data.get("timing") or POOL_TIMING)
    passes = timing.pop("passes", POOL_PASSES)
    got = {}
    for dev, entry in man.data["pairs"].items():
        if devices and dev not in devices:
            continue
        rows = _read_rows(out / f"{dev}.csv")[:k]
        if not rows:
            continue
        archs = [r["arch_str"] for r in rows]
        load0 = _load()
        t0 = time.time()
        with torch_build_single_threaded(torch_build_1t):
            again = _measure_tolerant(M, archs, entry["runtime"], entry["threads"], {}, log, device=dev,
                                      passes=passes, runtime_options=entry.get("options") or None, **timing)
        before = {r["arch_str"]: r["latency_ms"] for r in rows}
        rel = np.array([b.latency_ms / before[b.arch_str] - 1 for b in again or ()])
        if not len(rel):
            continue
        stats = {"n": len(rel), "median_abs_rel": round(float(np.median(np.abs(rel))), 4),
                 "within_5pct": round(float(np.mean(np.abs(rel) <= 0.05)), 3),
                 "within_10pct": round(float(np.mean(np.abs(rel) <= 0.10)), 3),
                 "median_rel": round(float(np.median(rel)), 4), "wall_s": round(time.time() - t0, 1),
                 "loadavg": [load0, _load()], "when": _now()}
        got[dev] = stats
        man.data.setdefault("recheck", {})[dev] = stats
        man.save()
        log(f"recheck {dev}: {stats['n']} archs, median |diff| {100 * stats['median_abs_rel']:.1f}%, "
            f"within 5% {stats['within_5pct']:.2f}, within 10% {stats['within_10pct']:.2f}")
    return got


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/pool"))
    ap.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS),
                    help="RUNTIME:THREADS[:KEY=VALUE,...] ... (options: the runtime adapter's settings)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=25)
    ap.add_argument("--prefix", default="vm")
    ap.add_argument("--passes", type=int, default=POOL_PASSES)
    ap.add_argument("--min-time-s", type=float, default=POOL_TIMING["min_time_s"])
    ap.add_argument("--warmup-s", type=float, default=POOL_TIMING["warmup_s"])
    ap.add_argument("--budget-s", type=float, default=POOL_TIMING["budget_s"])
    ap.add_argument("--min-runs", type=int, default=POOL_TIMING["min_runs"])
    ap.add_argument("--max-chunks", type=int, default=None)
    ap.add_argument("--recheck", type=int, default=None, metavar="K",
                    help="instead of collecting: measure the first K archs of every pair (or of --pairs) "
                         "again and report how well they agree with the pool (stored in the manifest)")
    ap.add_argument("--torch-build-threads", choices=("1", "same"), default="1",
                    help="threads for building a torch session's module (timed runs always use the pair's)")
    ap.add_argument("--archs-csv", type=Path, default=DEFAULT_ARCHS_CSV,
                    help="nb201_archs.csv for the official index (default: ../shared/data/nb201_archs.csv)")
    a = ap.parse_args(argv)
    timing = {**POOL_TIMING, "min_time_s": a.min_time_s, "warmup_s": a.warmup_s, "budget_s": a.budget_s,
              "min_runs": a.min_runs}
    pairs = [parse_pair(p) for p in a.pairs]
    if a.recheck is not None:
        only = None if a.pairs == list(DEFAULT_PAIRS) else [device_name(a.prefix, *p) for p in pairs]
        try:
            got = recheck(a.out, a.recheck, only, log=lambda s: print(s, flush=True),
                          torch_build_1t=a.torch_build_threads == "1")
        except KeyboardInterrupt:
            return 130
        print(json.dumps(got))
        return 0 if got else 1
    try:
        man = collect(a.out, pairs, a.n, a.seed, a.chunk, a.prefix, a.passes, timing, a.archs_csv,
                      log=lambda s: print(s, flush=True), max_chunks=a.max_chunks,
                      torch_build_1t=a.torch_build_threads == "1")
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:  # one line a person can act on, non-zero exit
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(man["counts"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
