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
- ``<device>.descriptor.json``: ``maple_edge_lite.profile`` descriptor;
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


def parse_pair(spec: str) -> Tuple[str, int]:
    rt, _, th = spec.partition(":")
    if not rt or not th.isdigit() or int(th) < 1:
        raise SystemExit(f"error: pair {spec!r} is not RUNTIME:THREADS (e.g. onnxruntime:1)")
    return rt, int(th)


def device_name(prefix: str, runtime: str, threads: int) -> str:
    return f"{prefix}-{runtime}-{threads}t"


def _write_atomic(path: Path, data: bytes) -> None:
    from maple_edge_lite.format import write_atomic

    write_atomic(path, data)


def _read_rows(path: Path) -> List[Dict[str, Any]]:
    from maple_edge_lite import measure as M

    return M.read_csv(path) if path.exists() else []


def _append_rows(path: Path, old: List[Dict[str, Any]], new) -> List[Dict[str, Any]]:
    """Rewrite ``path`` (atomically) with the old rows and the new ``measure.Row``s."""
    from maple_edge_lite import measure as M

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
    from maple_edge_lite import measure as M

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
        from maple_edge_lite.runtimes import _torch
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


def collect(out: Path, pairs: Sequence[Tuple[str, int]], n: int, seed: int = 0, chunk: int = 25,
            prefix: str = "vm", passes: int = POOL_PASSES, timing: Optional[Dict[str, Any]] = None,
            archs_csv: Optional[Path] = DEFAULT_ARCHS_CSV, profile_kwargs: Optional[Dict[str, Any]] = None,
            log: Callable[[str], None] = print, max_chunks: Optional[int] = None,
            torch_build_1t: bool = True) -> Dict[str, Any]:
    """Profile and measure every pair; returns the manifest dict. ``max_chunks`` stops after that
    many chunk rounds (for tests and for splitting a run); a rerun picks up where it stopped."""
    from maple_edge_lite import measure as M
    from maple_edge_lite import profile as P

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
    man.data.update({"sample": {"n": n, "seed": seed, "rule": "maple_edge_lite.measure.sample_archs(n, seed)",
                                "resolution": 32},
                     "timing": {**timing, "passes": passes}})
    man.save()
    devs = {(rt, th): device_name(prefix, rt, th) for rt, th in pairs}
    have: Dict[str, List[Dict[str, Any]]] = {}
    for (rt, th), dev in devs.items():
        have[dev] = _read_rows(out / f"{dev}.csv")
        entry = man.data["pairs"].setdefault(dev, {"runtime": rt, "threads": th})
        entry["count"] = len(have[dev])
    # Descriptors first: each is ~10-30 s, and without one a pair is useless to the experiment.
    for (rt, th), dev in devs.items():
        dpath = out / f"{dev}.descriptor.json"
        if dpath.exists():
            continue
        t0 = time.time()
        load0 = _load()
        desc = P.profile(rt, th, **(profile_kwargs or {}))
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
        for (rt, th), dev in devs.items():
            done = {r["arch_str"] for r in have[dev]}
            todo = [a for a in part if a not in done]
            if not todo:
                continue
            did = True
            t0 = time.time()
            load0 = _load()
            with torch_build_single_threaded(torch_build_1t):
                rows = M.measure(todo, rt, th, device=dev, index=index, passes=passes, **timing)
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
    man.data["counts"] = {dev: len(have[dev]) for dev in devs.values()}
    man.save()
    return man.data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/pool"))
    ap.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), help="RUNTIME:THREADS ...")
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
    ap.add_argument("--torch-build-threads", choices=("1", "same"), default="1",
                    help="threads for building a torch session's module (timed runs always use the pair's)")
    ap.add_argument("--archs-csv", type=Path, default=DEFAULT_ARCHS_CSV,
                    help="nb201_archs.csv for the official index (default: ../shared/data/nb201_archs.csv)")
    a = ap.parse_args(argv)
    timing = {**POOL_TIMING, "min_time_s": a.min_time_s, "warmup_s": a.warmup_s, "budget_s": a.budget_s,
              "min_runs": a.min_runs}
    pairs = [parse_pair(p) for p in a.pairs]
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
