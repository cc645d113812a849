"""A new user's `predict --onnx` on networks no part of the layer cost model was tuned on.

    python benchmarks/onnx_new_user.py OUT [--runtime onnxruntime] [--precision f32] [--cpu 1] [--keep-cache]
    python benchmarks/onnx_new_user.py OUT --refit     # score a run again with the installed model code

Writes :data:`NETWORKS` (the zoo's families at widths and resolutions the zoo does not hold, the
YOLOv8 detector of ``builders.yolov8_onnx`` and a U-Net, :func:`unet`; random He-scaled weights) as
ONNX files to ``OUT``, then runs the CLI as a user would, pinned to
``--cpu`` with ``taskset`` when given: ``maple-edge-lite predict --onnx ... --json`` with an empty
cache (``OUT/cache`` as ``$MAPLE_EDGE_LITE_CACHE``, removed first unless ``--keep-cache``: the first
call profiles the layer suite and measures the five calibration networks), the same call again
(cached), then ``maple-edge-lite measure --onnx ...`` of the same files. Prints each network's
prediction, its 90% interval and the measurement, then ±10% accuracy, MAPE, the interval's
coverage and both calls' wall times, beside the baseline a user would fit (latency linear in MACs
through the five calibration networks the first call measured); ``OUT/report.json`` keeps it all.

``--refit`` measures nothing: it fits the layer cost model again, with the installed
maple_edge_lite's code, to the suite and calibration latencies the run's cache entry recorded
(copied to ``OUT/layer_manifest.json``) and scores it against ``OUT/measured.csv``, so two versions
of the model are compared on the same measurements (install the other version, run ``--refit``;
it fits as the device cache does, with what every version has: ``from_suite``, ``calibrate``).
``benchmarks/data/new-user/<runtime>/`` holds committed runs (no ONNX files: ``--refit`` builds
them again, same bytes).

Needs onnx and the runtime; about 5 minutes at one thread here (19 networks)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

#: name -> (family function of ``builders.zoo``, its arguments after the graph, resolution); none of
#: these width/resolution pairs is a zoo network (``zoo_names()``), the calibration networks included.
NETWORKS = {
    "mobilenet_v2_1.3_176": ("mobilenet_v2", (1.3,), 176),
    "mobilenet_v1_0.45_160": ("mobilenet_v1", (0.45,), 160),
    "mobilenet_v1_0.6_192": ("mobilenet_v1", (0.6,), 192),
    "mobilenet_v1_0.85_224": ("mobilenet_v1", (0.85,), 224),
    "resnet34_160": ("resnet", (34,), 160),
    "resnet50_192": ("resnet", (50,), 192),
    "mnasnet0.75_224": ("mnasnet", (0.75,), 224),
    "efficientnet_b0_192": ("efficientnet", ("b0",), 192),
    "regnet_x_400mf_160": ("regnet_x", ("400mf",), 160),
    "shufflenet_v2_x1.0_176": ("shufflenet_v2", ("1.0",), 176),
    "mobilenet_v3_large_192": ("mobilenet_v3", ("large",), 192),
    # Small networks (0.3-1.5 ms here), the layer suite's small end (version 4) was added for; runs
    # made before hold the fifteen without them.
    "mobilenet_v1_0.25_160": ("mobilenet_v1", (0.25,), 160),
    "mobilenet_v2_0.5_96": ("mobilenet_v2", (0.5,), 96),
    "mobilenet_v3_small_160": ("mobilenet_v3", ("small",), 160),
    "shufflenet_v2_x0.5_160": ("shufflenet_v2", ("0.5",), 160),
    # Beyond classification: a detector (C2f blocks, SPPF's max pools, nearest Resize and the
    # concatenations of an FPN/PAN neck, three heads) and a segmenter (full-resolution convolutions,
    # max-pool downsampling, Resize and skip concatenations). Runs made before these were added
    # (benchmarks/data/new-user/squeezenet-calibration) hold the eleven above; --refit scores what a
    # run measured.
    "yolov8n_320": ("yolov8", ("n",), 320),
    "yolov8n_640": ("yolov8", ("n",), 640),
    "yolov8s_416": ("yolov8", ("s",), 416),
    "unet16_256": ("unet", (16,), 256),
}


def unet(g, base: int, classes: int = 2) -> str:
    """A U-Net (Ronneberger et al. 2015) as edge ports write it: four levels of two 3x3 Conv + BN +
    ReLU (``base`` channels, doubling per level) with MaxPool 2x2 between them, a bottom pair, then
    up each level: nearest 2x Resize, a 1x1 Conv + BN + ReLU halving the channels, concatenation with
    the level's skip, two 3x3 Conv + BN + ReLU; a 1x1 Conv (bias) to ``classes`` at full size."""
    import numpy as np

    from maple_edge_lite.device.builders._zoo_common import conv_bn

    x, cin, c, skips = "input", 3, base, []
    for i in range(4):
        x = conv_bn(g, conv_bn(g, x, cin, c, 3, f"down{i}.a", act="relu"), c, c, 3, f"down{i}.b", act="relu")
        skips.append((x, c))
        x, cin, c = g.max_pool(x, 2, 2, 0, f"down{i}.pool"), c, 2 * c
    x = conv_bn(g, conv_bn(g, x, cin, c, 3, "mid.a", act="relu"), c, c, 3, "mid.b", act="relu")
    for i in reversed(range(4)):
        skip, cs = skips[i]
        # Graph.upsample's Resize, its scales named as in the committed runs' files (their sha256)
        scales = g.const(f"up{i}.scales", np.array([1.0, 1.0, 2.0, 2.0], np.float32))
        up = g.node("Resize", [x, "", scales], f"up{i}.resize", mode="nearest")
        x = conv_bn(g, up, c, cs, 1, f"up{i}.reduce", act="relu")
        x = g.concat([x, skip], f"up{i}.cat")
        x = conv_bn(g, conv_bn(g, x, 2 * cs, cs, 3, f"up{i}.a", act="relu"), cs, cs, 3, f"up{i}.b", act="relu")
        c = cs
    return g.conv(x, c, classes, 1, "head", bias=True, gain=1.0)


def network_onnx(name: str) -> bytes:
    """The ONNX model of a :data:`NETWORKS` entry (seed 0, 1000 classes, batch 1)."""
    from maple_edge_lite.device.builders import zoo
    from maple_edge_lite.device.builders._graph import Graph

    fam, args, r = NETWORKS[name]
    if fam == "yolov8":
        return zoo.yolov8_onnx(*args, resolution=r)
    g = Graph(0)
    if fam == "unet":
        g.rename_output(unet(g, *args))
        return g.serialize(name, [1, 3, r, r], [1, 2, r, r], f"{name} (benchmarks/onnx_new_user.py)", {})
    fn = getattr(zoo, fam)
    out = fn(g, *args, 1000, r) if fam == "shufflenet_v2" else fn(g, *args, 1000)
    g.rename_output(out)
    return g.serialize(name, [1, 3, r, r], [1, 1000], f"{name} (benchmarks/onnx_new_user.py)", {})


@functools.lru_cache(maxsize=None)
def _table(name: str, zoo_network: bool = False):
    """The layer table of a :data:`NETWORKS` entry, or of a zoo network (a calibration network),
    built once per process (``--refit`` and the MACs-linear baseline both read them)."""
    from maple_edge_lite.device import layers
    from maple_edge_lite.device.builders import zoo

    return layers.from_onnx(zoo.zoo_onnx(name) if zoo_network else network_onnx(name))


def refit(out: Path):
    """``{network: predicted ms}``: the layer cost model refitted to the measurements of the run in
    ``out`` (its cache entry's suite and calibration latencies) as the device cache fits it."""
    import numpy as np

    from maple_edge_lite.device import layers
    from maple_edge_lite.device.builders import layer_suite
    from maple_edge_lite.learn.layer_cost import ALIGN, LayerCostModel, network_features

    man = json.loads((out / "layer_manifest.json").read_text())
    suite = {s.name: s for s in layer_suite.default_suite()}
    names = list(man["suite"])
    specs = [suite[n] for n in names]
    cb = man["key"]["cache_bytes"]
    F = np.array([network_features(layers.from_onnx(layer_suite.layer_onnx(s)), cb, ALIGN) for s in specs])
    m = LayerCostModel.from_suite(F, [man["suite"][n] for n in names], layer_suite.fit_weights(specs),
                                  cache_bytes=cb, align=ALIGN, class_fit=layer_suite.class_fit_mask(specs))
    cal = list(man["calibration"])
    m.calibrate(np.array([m.features(_table(n, True)) for n in cal]),
                [man["calibration"][n] for n in cal])
    ms, lo, hi = {}, {}, {}
    for name in _measured(out):
        f = m.features(_table(name))[None]
        ms[name] = float(m.predict(f)[0])
        a, b = m.interval(f)
        lo[name], hi[name] = float(a[0]), float(b[0])
    return {n: {"latency_ms": ms[n], "lo_ms": lo[n], "hi_ms": hi[n]} for n in ms}


def _measured(out: Path) -> dict:
    """``{network: measured ms}`` of the run in ``out`` (``OUT/measured.csv``), in :data:`NETWORKS`'
    order: a run made before networks were added holds fewer."""
    import csv

    with open(out / "measured.csv", newline="") as f:
        meas = {Path(r["path"]).stem: float(r["latency_ms"]) for r in csv.DictReader(f)}
    return {n: meas[n] for n in NETWORKS if n in meas}


def _cli(args, cmd, env):
    pin = ["taskset", "-c", args.cpu] if args.cpu else []
    t = time.perf_counter()
    p = subprocess.run(pin + ["maple-edge-lite"] + cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"maple-edge-lite {' '.join(cmd[:2])} failed (exit {p.returncode})")
    return p.stdout, dt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder for the ONNX files, the cache and report.json")
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--precision", help="the runtime's precision option (openvino: f32, bf16, f16)")
    ap.add_argument("--cpu", help="pin every call to these CPUs (taskset -c), e.g. 1")
    ap.add_argument("--keep-cache", action="store_true", help="keep OUT/cache (default: start from an empty one)")
    ap.add_argument("--refit", action="store_true", help="measure nothing: refit the model to OUT's recorded "
                    "measurements with the installed code and score it against OUT/measured.csv")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.refit:
        return _report(out, refit(out), None, None, args, "report-refit.json")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in NETWORKS:
        f = out / f"{name}.onnx"
        f.write_bytes(network_onnx(name))
        files.append(str(f))
    cache = out / "cache"
    if cache.exists() and not args.keep_cache:
        shutil.rmtree(cache)
    env = dict(os.environ, MAPLE_EDGE_LITE_CACHE=str(cache))
    opts = ["--runtime", args.runtime] + (["--precision", args.precision] if args.precision else [])
    first, t_first = _cli(args, ["predict", "--onnx", *files, "--json", *opts], env)
    _, t_cached = _cli(args, ["predict", "--onnx", *files, "--json", *opts], env)
    csv_path = out / "measured.csv"
    _cli(args, ["measure", "--onnx", *files, "-o", str(csv_path), "-q", *opts], env)
    # The run's layer-model cache entry (a link to a hidden folder beside it: the link's name):
    # its manifest, with the suite's and the calibration's latencies, is what --refit fits to.
    entry = [f for f in sorted((cache / "layers").glob("*/manifest.json")) if not f.parent.name.startswith(".")]
    shutil.copyfile(entry[0], out / "layer_manifest.json")
    pred = {Path(r["path"]).stem: r for r in json.loads(first)["predictions"]}
    return _report(out, pred, t_first, t_cached, args, "report.json")


def macs_linear_ms(out: Path) -> dict:
    """``{network: ms}`` of the baseline a user would fit: latency linear in MACs
    (``learn.layer_cost.macs_linear``) through the run's five calibration networks, as measured by
    its first call (``OUT/layer_manifest.json``), for each network the run measured."""
    from maple_edge_lite.learn.layer_cost import macs_linear

    cal = json.loads((out / "layer_manifest.json").read_text())["calibration"]
    a, b = macs_linear([_table(n, True).totals()["macs"] for n in cal], list(cal.values()))
    return {n: a + b * _table(n).totals()["macs"] for n in _measured(out)}


def _report(out: Path, pred, t_first, t_cached, args, report_name: str) -> int:
    meas = _measured(out)
    base = macs_linear_ms(out)
    rows = []
    print(f"{'network':26s} {'predicted':>10s} {'90% interval':>19s} {'measured':>9s} {'error':>7s} {'MACs-linear':>11s}")
    for name, y in meas.items():
        p = pred[name]
        e, eb = p["latency_ms"] / y - 1, base[name] / y - 1
        rows.append({"network": name, "predicted_ms": p["latency_ms"], "lo_ms": p["lo_ms"], "hi_ms": p["hi_ms"],
                     "measured_ms": y, "error": e, "macs_linear_ms": base[name], "macs_linear_error": eb})
        print(f"{name:26s} {p['latency_ms']:10.3f} {p['lo_ms']:9.3f}-{p['hi_ms']:<9.3f} {y:9.3f} {100 * e:+6.1f}% "
              f"{100 * eb:+10.1f}%")
    err = [abs(r["error"]) for r in rows]
    err_b = [abs(r["macs_linear_error"]) for r in rows]
    summary = {"within_10": sum(e <= 0.10 for e in err) / len(err), "mape": 100 * sum(err) / len(err),
               "coverage": sum(r["lo_ms"] <= r["measured_ms"] <= r["hi_ms"] for r in rows) / len(rows),
               "first_call_s": t_first and round(t_first, 1), "cached_call_s": t_cached and round(t_cached, 2),
               "macs_linear": {"within_10": sum(e <= 0.10 for e in err_b) / len(err_b),
                               "mape": 100 * sum(err_b) / len(err_b)}}
    print(f"±10% {summary['within_10']:.2f} ({sum(e <= 0.10 for e in err)} of {len(err)}), MAPE {summary['mape']:.1f}%, "
          f"90% interval coverage {summary['coverage']:.2f}"
          + (f"; first call {t_first:.0f} s, cached {t_cached:.2f} s" if t_first is not None else " (refitted)")
          + f"; MACs-linear through the five calibration networks: ±10% {summary['macs_linear']['within_10']:.2f}, "
            f"MAPE {summary['macs_linear']['mape']:.1f}%")
    (out / report_name).write_text(json.dumps({"runtime": args.runtime, "precision": args.precision,
                                                 "cpu": args.cpu, "networks": rows, "summary": summary},
                                                indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
