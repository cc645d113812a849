"""Where the layer cost model misprices a network: its milliseconds per layer against ONNX
Runtime's own per-node profile of the same network, on this machine.

    python benchmarks/layer_profile.py squeezenet1_1 [efficientnet_b0 ...] [--data FILE] [--runs 100] [--cpu 1]

The model is the zoo benchmark's (``benchmarks/zoo.py score``): the layer suite's fit from a data
file (default the ONNX Runtime one measured in one sitting), calibrated on every zoo network of
the other families (all of them, not five: the per-layer split is the point, not the draw). ONNX
Runtime runs the zoo network at one thread with its profiler on; each layer-table row is matched
to the node ONNX Runtime ran for it (its blocked-layout ``<name>_nchwc`` or the row's own node
names), and the profile is scaled to the data file's latency of the network (the profiler's own
cost inflates it). The nodes no row explains (NCHWc reorders, a SiLU ONNX Runtime runs as a
``QuickGelu`` node of its own, ...) are listed by op type after the rows.

Needs onnxruntime and onnx; prints a table per network."""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import zoo as Z  # noqa: E402  (the benchmark's loaders and features)


def model_for(path: Path, family: str):
    """The layer cost model of ``zoo.py score`` (spill and alignment terms on), calibrated on
    every zoo network of the data file not of ``family``."""
    from maple_edge_lite.learn.layer_cost import ALIGN

    suite, nets, _ = Z.load(path)
    cache, _ = Z.cache_of(path, None, False)
    m = Z.fit_suite_model(suite, cache, ALIGN)
    other = [n for n in nets if nets[n][0] != family]
    m.calibrate(np.array([Z.features("zoo", n, cache, ALIGN)[0] for n in other]), [nets[n][1] for n in other])
    return m, nets


def ort_profile(data: bytes, runs: int):
    """{node name: (op type, median ms)} over ``runs`` profiled runs at one thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "p")
    s = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal([1] + list(inp.shape[1:])).astype(np.float32)
    for _ in range(runs + 30):
        s.run(None, {inp.name: x})
    path = s.end_profiling()
    events = json.loads(Path(path).read_text())
    os.unlink(path)
    per = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per[(e["args"]["op_name"], e["name"][:-len("_kernel_time")])].append(e["dur"] / 1000)
    return {name: (op, float(np.median(d[-runs:]))) for (op, name), d in per.items()}


def report(name: str, path: Path, runs: int) -> None:
    from maple_edge_lite.device import layers as L
    from maple_edge_lite.device.builders import zoo

    m, nets = model_for(path, zoo.zoo_family(name))
    data = zoo.zoo_onnx(name)
    table = L.from_onnx(data)
    c0, per = m.layer_ms(table)
    prof = ort_profile(data, runs)
    measured = nets[name][1]
    scale = measured / sum(v for _, v in prof.values())
    print(f"\n{name}: measured {measured:.3f} ms (data file), model {c0 + per.sum():.3f} ms; the profile "
          f"scaled by {scale:.3f} to the measurement")
    print(f"  {'layer':44s} {'kind':10s} {'output':18s} {'model':>8s} {'ORT':>8s}")
    used = set()
    for r, v in zip(table, per):
        parts = r.name.split("+")
        hit = next((c for c in [r.name] + [p + "_nchwc" for p in parts[::-1]] + parts[::-1] if c in prof), None)
        got = "" if hit is None else f"{prof[hit][1] * scale:8.4f}"
        used.add(hit)
        kind = r.kind + (f"+{r.activation}" if r.activation else "") + ("+se" if r.se else "")
        print(f"  {r.name[:44]:44s} {kind[:10]:10s} {'x'.join(map(str, r.output))[:18]:18s} {v:8.4f} {got:>8s}")
    rest = collections.defaultdict(lambda: [0, 0.0])
    for n, (op, v) in prof.items():
        if n not in used:
            rest[op][0] += 1
            rest[op][1] += v * scale
    print("  nodes no row explains: " + (", ".join(f"{op} x{k} {v:.3f} ms" for op, (k, v) in
                                                   sorted(rest.items(), key=lambda kv: -kv[1][1])) or "none"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("networks", nargs="+", help="zoo names (builders.zoo.zoo_names())")
    ap.add_argument("--data", default=str(HERE / "data" / "zoo-same-sitting" / "vm-onnxruntime-1t.csv"),
                    help="an ONNX Runtime zoo data file (suite and zoo measured in one sitting)")
    ap.add_argument("--runs", type=int, default=100, help="profiled runs (after 30 unprofiled ones)")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    from maple_edge_lite.device.builders import zoo

    unknown = [n for n in args.networks if n not in zoo.zoo_names()]
    if unknown:
        print(f"unknown zoo networks {unknown}; known: {', '.join(zoo.zoo_names())}", file=sys.stderr)
        return 2
    for n in args.networks:
        report(n, Path(args.data), args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
