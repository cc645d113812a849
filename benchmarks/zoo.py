"""The zoo benchmark: real CNNs measured on this machine against the layer cost model.

    python benchmarks/zoo.py measure --runtime onnxruntime --threads 1 --cpu 1   # ~3.5 min per runtime
    python benchmarks/zoo.py measure --runtime openvino --precision f32 --cpu 1 [--what suite|zoo]
    python benchmarks/zoo.py measure --runtime onnxruntime --cpu 1 --what unaligned   # the unaligned set, ~10 s
    python benchmarks/zoo.py score [--shots 5] [--json] [--block-weight W] [--spill-cache-mb 2 | --no-spill]
                                   [--no-align | --joint-align] [--class-sd S] [--calibration-df D]
    python benchmarks/zoo.py calibration --data DIR [DIR ...] [--runtimes R,R] [--sets A,B,C,D,E ...]

``measure`` times every network of ``builders.zoo`` (``measure``'s timing: three windows, the
fastest median) and the layer suite (``builders.layer_suite``, ``profile.LAYER_SUITE_TIMING``) under
one runtime and writes ``benchmarks/data/zoo/vm-<runtime>[-<precision>]-<threads>t.csv`` (kind ``zoo``
or ``suite``, name, family, latency) with a JSON sidecar of the conditions (the runtime's settings,
every window's median). ``--precision`` is the runtime's precision option (OpenVINO's default on a
CPU with AMX or AVX-512 BF16 is bf16; ``f32`` compares with ONNX Runtime's fp32).

``score`` evaluates, per measured runtime, leave one family out: the networks of one family are
predicted from the layer suite plus ``--shots`` whole networks of the other families (drawn at
random, ``--draws`` times), never from their own family. Methods:

- ``layer_cost``: the suite's fit, calibrated on the shots (``learn.layer_cost``), the shipped method,
  with its spill term (the MB each layer moves beyond the measuring machine's per-core cache);
- ``suite_sum``: the suite's fit, uncalibrated (what the layers alone say);
- ``macs_linear``: ``a + b * MACs`` fitted on the same shots (what a user would do first);
- ``scaled_macs``: the suite-free single scale ``y = s * MACs`` through the origin.

The spill term's cache is data: the ``core_cache`` a data file's sidecar records (``measure`` writes
``device.host.core_cache()``), else this machine's (the files here were measured on this VM: a
private 2 MiB L2 per core). ``--spill-cache-mb C`` overrides it (MiB); ``--no-spill`` scores the
model without the term (the README's ablation), as a device whose sysfs tells no cache gets it.

The alignment term (``learn.layer_cost.unaligned_mmacs``: the MACs of convolutions whose channel
counts are off a multiple of 8) is fitted after the per-class costs, as the device cache does;
``--no-align`` scores the model without it, ``--joint-align`` with it fitted together with them.
``benchmarks/data/zoo-same-sitting/`` holds ONNX Runtime, OpenVINO f32 and MNN files whose suite,
zoo and unaligned set were measured in one sitting (``measure --what all --out ...``, then ``--what
unaligned``; score them with ``--data``): the committed files' zoo rows are from a day the VM ran
30-40% slower than when their version-3 suite and the unaligned set were measured.

``calibration`` compares fixed sets of calibration networks, as the device cache calibrates
(``_cache.LAYER_CALIBRATION``), on the zoo networks in none of them.

Reported: ±10% accuracy, MAPE, Spearman and the 90% interval's coverage, per runtime and their mean,
then each held-out network's error by family. A data file measured with an earlier suite version
(its sidecar says) is scored with the entries it has when every one of them is still an entry of
this ``layer_suite.SUITE_VERSION`` built the same way (version 4 only added entries to 3: a version-3
file scores as the version-3 model did); otherwise it is skipped with a note: measure its suite
again."""

from __future__ import annotations

import argparse
import copy
import csv
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "zoo"


#: The unaligned set: networks whose channel counts are off a multiple of 8 (the blocked layout
#: ONNX Runtime converts convolutions to needs them on it), measured beside the zoo (``measure --what
#: unaligned``) and scored apart (``score``'s second table): name -> (family, build(g, classes), side).
#: Built with the zoo's family functions at a chosen width and resolution. MobileNetV2 has no such
#: width: its make_divisible rounds every count to a multiple of 8.
UNALIGNED = {
    "mobilenet_v1_0.6_192": ("mobilenet_v1", lambda g, n: _zoo().mobilenet_v1(g, 0.6, n), 192),  # 19, 38, ... 614
    "mobilenet_v1_0.35_192": ("mobilenet_v1", lambda g, n: _zoo().mobilenet_v1(g, 0.35, n), 192),  # 11, 22, ... 358
    "shufflenet_v2_x1.0_176": ("shufflenet_v2", lambda g, n: _zoo().shufflenet_v2(g, "1.0", n, 176), 176),  # 58, 116
}


def _zoo():
    from maple_edge_lite.device.builders import zoo

    return zoo


def unaligned_onnx(name: str) -> bytes:
    """The ONNX model of an :data:`UNALIGNED` network (seed 0, 1000 classes, batch 1)."""
    from maple_edge_lite.device.builders._graph import Graph

    fam, build, r = UNALIGNED[name]
    g = Graph(0)
    g.rename_output(build(g, 1000))
    return g.serialize(name, [1, 3, r, r], [1, 1000], f"{name} (benchmarks/zoo.py unaligned set)", {})


def _measure(args) -> int:
    from maple_edge_lite.device import host, measure as M, profile as P
    from maple_edge_lite.device.builders import layer_suite as LS, zoo

    if args.what == "unaligned":
        names = list(UNALIGNED) if not args.names else args.names.split(",")
    else:
        names = zoo.zoo_names() if not args.names else args.names.split(",")
    suite = {s.name: s for s in LS.default_suite()}
    t0 = time.time()

    def progress(step, steps, name, ts):
        if ts is not None:
            best = min(t.median_ms for t in ts)
            print(f"  [{step}/{steps}] {name:34s} {best:9.3f} ms", file=sys.stderr, flush=True)

    opts = {"precision": args.precision} if args.precision else {}
    dev = f"vm-{args.runtime}{'-' + args.precision if args.precision else ''}-{args.threads}t"
    out = Path(args.out or DATA / f"{dev}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    old_side = json.loads(Path(str(out) + ".json").read_text()) if out.exists() and args.what != "all" else {}
    kept = []
    if args.what != "all" and out.exists():  # keep the other part's rows and conditions
        with open(out, newline="") as f:
            kept = [(r["kind"], r["name"], r["family"], float(r["latency_ms"])) for r in csv.DictReader(f)
                    if r["kind"] != args.what]
    sw, zw, info, s_settings, z_settings = {}, {}, None, old_side.get("suite_timing"), old_side.get("zoo_timing")
    if args.what in ("all", "suite"):
        sw, info, s_settings, _ = M.time_models(list(suite), lambda n: LS.layer_onnx(suite[n]), args.runtime,
                                             args.threads, cpus=args.cpu, progress=progress, runtime_options=opts,
                                             **P.LAYER_SUITE_TIMING)
    uw, u_settings = {}, old_side.get("unaligned_timing")
    if args.what in ("all", "zoo"):
        zw, info, z_settings, _ = M.time_models(names, zoo.zoo_onnx, args.runtime, args.threads, cpus=args.cpu,
                                             progress=progress, runtime_options=opts)
    if args.what == "unaligned":
        uw, info, u_settings, _ = M.time_models(names, unaligned_onnx, args.runtime, args.threads, cpus=args.cpu,
                                               progress=progress, runtime_options=opts)
    rows = [("suite", n, suite[n].kind, min(t.median_ms for t in ts)) for n, ts in sw.items()]
    rows += [("zoo", n, zoo.zoo_family(n), min(t.median_ms for t in ts)) for n, ts in zw.items()]
    rows += [("unaligned", n, UNALIGNED[n][0], min(t.median_ms for t in ts)) for n, ts in uw.items()]
    rows = sorted(kept + rows, key=lambda r: ("suite", "zoo", "unaligned").index(r[0]))
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "name", "family", "latency_ms"])
        for r in rows:
            w.writerow([r[0], r[1], r[2], f"{r[3]:.6f}"])
    windows = {**{n: v for n, v in (old_side.get("windows_ms") or {}).items() if any(r[1] == n for r in kept)},
               **{n: [round(t.median_ms, 6) for t in ts] for n, ts in {**sw, **zw, **uw}.items()}}
    side = {"schema": "maple_edge_lite.zoo_bench/1", "device": dev, "runtime": info or old_side.get("runtime"),
            "suite_version": LS.SUITE_VERSION, "suite_timing": s_settings, "zoo_timing": z_settings,
            "unaligned_timing": u_settings,
            "pinned_cpus": args.cpu, "host": host.host_facts(), "core_cache": host.core_cache(), "measured": args.what,
            "wall_s": round(time.time() - t0, 1), "windows_ms": windows}
    Path(str(out) + ".json").write_text(json.dumps(side, indent=1) + "\n")
    print(f"wrote {out} ({len(rows)} rows) in {time.time() - t0:.0f} s")
    return 0


def load(path: Path):
    """``(suite, zoo, unaligned)``: name -> (family or kind, latency ms) of a data file's rows."""
    out: dict = {"suite": {}, "zoo": {}, "unaligned": {}}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out[r["kind"]][r["name"]] = (r["family"], float(r["latency_ms"]))
    return out["suite"], out["zoo"], out["unaligned"]


_TABLES: dict = {}


def features(kind: str, name: str, cache_bytes: Optional[float] = None, align: Optional[int] = None):
    """(feature vector, MACs) of a suite entry, zoo or unaligned network: ``network_features(table,
    cache_bytes, align)``, with the unaligned MMACs and the spill MB after the per-class features
    when ``align`` and ``cache_bytes`` are given (layer tables cached per process)."""
    from maple_edge_lite.device import layers as L
    from maple_edge_lite.device.builders import layer_suite as LS, zoo
    from maple_edge_lite.learn.layer_cost import network_features

    key = (kind, name)
    if key not in _TABLES:
        if kind == "suite":
            spec = {s.name: s for s in LS.default_suite()}[name]
            t = L.from_onnx(LS.layer_onnx(spec))
        elif kind == "unaligned":
            t = L.from_onnx(unaligned_onnx(name))
        else:
            t = L.from_onnx(zoo.zoo_onnx(name))
        _TABLES[key] = (t, float(t.totals()["macs"]))
    t, macs = _TABLES[key]
    return network_features(t, cache_bytes, align), macs


def cache_of(path: Path, spill_cache_mb: Optional[float], no_spill: bool):
    """``(cache bytes or None, where it comes from)`` for the spill term of a data file's model."""
    from maple_edge_lite.device.host import core_cache

    if no_spill:
        return None, "--no-spill"
    if spill_cache_mb is not None:
        return spill_cache_mb * 2**20, "--spill-cache-mb"
    side = json.loads(Path(str(path) + ".json").read_text()).get("core_cache")
    if side is not None:
        return side["bytes"], "the data file's sidecar"
    c = core_cache()
    return c["bytes"], "this machine" if c["bytes"] is not None else f"this machine: {c['reason']}"


def _metrics(p, y, lo=None, hi=None):
    rel = p / y - 1
    rk = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    out = {"acc10": float(np.mean(np.abs(rel) <= 0.10)), "mape": float(np.mean(np.abs(rel)) * 100),
           "spearman": float(np.corrcoef(rk(p), rk(y))[0, 1])}
    if lo is not None:
        out["cover"] = float(np.mean((y >= lo) & (y <= hi)))
    return out


def fit_suite_model(suite: dict, cache_bytes: Optional[float] = None, align: Optional[int] = None,
                    block_weight: Optional[float] = None, joint_align: bool = False):
    """The layer cost model fitted to a data file's suite rows (``load``'s first part), as the
    device cache fits it: whole blocks weighted ``block_weight`` (default ``layer_suite.BLOCK_WEIGHT``),
    the alignment term after the per-class costs (``joint_align``: with them); ``cache_bytes`` /
    ``align`` None: without the spill / alignment term."""
    from maple_edge_lite.device.builders import layer_suite as LS
    from maple_edge_lite.learn.layer_cost import LayerCostModel

    bw = LS.BLOCK_WEIGHT if block_weight is None else block_weight
    weights = [bw if kind in LS.BLOCK_KINDS else 1.0 for kind, _ in suite.values()]
    # The features with the alignment term (per conv-like class, the MMACs of unaligned layers) and
    # the spill term (the MB each network's layers move beyond the cache) when they are on.
    Fs = np.array([features("suite", n, cache_bytes, align)[0] for n in suite])
    ys = np.array([v[1] for v in suite.values()])
    class_fit = None
    if align is not None and not joint_align:
        class_fit = [n not in LS.UNALIGNED_PROBES for n in suite]
    return LayerCostModel.from_suite(Fs, ys, weights, cache_bytes=cache_bytes, align=align, class_fit=class_fit)


def score_runtime(path: Path, shots: int, draws: int, block_weight: Optional[float] = None,
                  cache_bytes: Optional[float] = None, align: Optional[int] = None, joint_align: bool = False,
                  without: Sequence[str] = ()):
    """Leave one family out on one data file; ``cache_bytes`` None scores the layer cost model
    without its spill term, ``align`` None without its alignment term. The unaligned set (rows of
    kind ``unaligned``), when measured, is scored apart: each network predicted from the suite and
    ``shots`` zoo networks of other families than its own, as the zoo's are. The alignment term is
    fitted after the per-class costs (``layer_suite.class_fit_mask``), as the device cache fits it;
    ``joint_align`` fits it with them instead (what was tried first). The suite entries named in
    ``without`` are left out of the fit (``--without-small-end``: version 3's model on a version-4 file)."""
    suite, nets, unal = load(path)
    drop = set(without)
    suite = {n: v for n, v in suite.items() if n not in drop}
    base = fit_suite_model(suite, cache_bytes, align, block_weight, joint_align)
    names = list(nets)
    fam = np.array([nets[n][0] for n in names])
    y = np.array([nets[n][1] for n in names])
    F, macs = (np.array(v) for v in zip(*(features("zoo", n, cache_bytes, align) for n in names)))
    un = list(unal)
    Fu = np.array([features("unaligned", n, cache_bytes, align)[0] for n in un]).reshape(len(un), F.shape[1])
    preds = {m: np.zeros((draws, len(y))) for m in ("layer_cost", "suite_sum", "macs_linear", "scaled_macs")}
    los, his = np.zeros((draws, len(y))), np.zeros((draws, len(y)))
    for f in sorted(set(fam)):
        test = np.flatnonzero(fam == f)
        other = np.flatnonzero(fam != f)
        for d in range(draws):
            rng = np.random.default_rng([d, sum(map(ord, f))])
            shot = rng.choice(other, min(shots, len(other)), replace=False)
            _predict(base, F, y, macs, shot, test, d, F[test], macs[test], preds, los, his)
    # The unaligned set: each network held out, its family's zoo networks kept out of the shots.
    yu = np.array([unal[n][1] for n in un])
    macs_u = np.array([features("unaligned", n)[1] for n in un])
    preds_u = {m: np.zeros((draws, len(un))) for m in preds}
    los_u, his_u = np.zeros((draws, len(un))), np.zeros((draws, len(un)))
    for i, n in enumerate(un):
        other = np.flatnonzero(fam != unal[n][0])
        for d in range(draws):
            rng = np.random.default_rng([d, sum(map(ord, n))])
            shot = rng.choice(other, min(shots, len(other)), replace=False)
            _predict(base, F, y, macs, shot, [i], d, Fu[[i]], macs_u[[i]], preds_u, los_u, his_u)

    def summary(preds, y, los, his, names, fams):
        res = {}
        for mname, P in preds.items():
            runs = [_metrics(P[d], y, *((los[d], his[d]) if mname == "layer_cost" else ())) for d in range(draws)]
            res[mname] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        per_net = {n: {"family": fams[i], "measured_ms": y[i],
                       **{f"{m}_ms": float(np.median(preds[m][:, i])) for m in preds}} for i, n in enumerate(names)}
        return res, per_net

    res, per_net = summary(preds, y, los, his, names, fam)
    res_u, per_net_u = summary(preds_u, yu, los_u, his_u, un, [unal[n][0] for n in un]) if un else ({}, {})
    fit = {"spill": None if cache_bytes is None else {"cache_bytes": cache_bytes, "ms_per_mb": base.w_spill},
           "align": None if align is None else {"channels": align, "ms_per_unaligned_mmac": base.w_align.tolist(),
                                                "ms_per_unaligned_kchannel": base.w_chan}}
    return res, per_net, len(names), len(set(fam)), fit, res_u, per_net_u


def _predict(base, F, y, macs, shot, test, d, Ft, macs_t, preds, los, his):
    """One draw's predictions of the networks ``test`` (features Ft, MACs macs_t) by every method,
    calibrated on the zoo networks ``shot``."""
    from maple_edge_lite.learn.layer_cost import macs_linear

    m = copy.deepcopy(base)  # the suite's fit, every term of it, calibrated apart for this draw
    m.calibrate(F[shot], y[shot])
    preds["layer_cost"][d, test] = m.predict(Ft)
    los[d, test], his[d, test] = m.interval(Ft)
    preds["suite_sum"][d, test] = base.predict(Ft)
    a, b = macs_linear(macs[shot], y[shot])
    preds["macs_linear"][d, test] = np.maximum(a + b * macs_t, 1e-6)
    s = float(np.exp(np.mean(np.log(y[shot] / macs[shot]))))
    preds["scaled_macs"][d, test] = s * macs_t


#: Earlier suite versions whose entries this one still has, built the same way: a data file of one
#: is scored with the entries it has (the model of that version).
SUBSET_SUITE_VERSIONS = (3,)


def _scorable(path: Path) -> bool:
    """Whether a data file's suite rows can be scored by this suite version's code: measured with
    this version, or with one of :data:`SUBSET_SUITE_VERSIONS` and every suite row an entry of this
    version."""
    from maple_edge_lite.device.builders import layer_suite as LS

    v = json.loads(Path(str(path) + ".json").read_text()).get("suite_version")
    if v == LS.SUITE_VERSION:
        return True
    if v not in SUBSET_SUITE_VERSIONS:
        return False
    names = {s.name for s in LS.default_suite()}
    return set(load(path)[0]) <= names


def _score(args) -> int:
    paths = sorted(Path(args.data).glob("vm-*.csv"))
    if not paths:
        print(f"no measured runtimes in {args.data}: run `python benchmarks/zoo.py measure` first", file=sys.stderr)
        return 1
    from maple_edge_lite.device.builders import layer_suite as LS

    stale = [p for p in paths if not _scorable(p)]
    for p in stale:
        print(f"skipping {p.name}: its layer suite is neither version {LS.SUITE_VERSION} nor an earlier one whose "
              f"entries this version still has; measure it again with "
              f"`python benchmarks/zoo.py measure --what suite --runtime ...`", file=sys.stderr)
    paths = [p for p in paths if p not in stale]
    if not paths:
        print("no runtime measured with this layer suite", file=sys.stderr)
        return 1
    if args.calibration_df is not None and not args.calibration_df >= 0:
        print(f"--calibration-df must be >= 0 (0: Gaussian), not {args.calibration_df}", file=sys.stderr)
        return 2
    if args.class_sd is not None or args.calibration_df is not None:
        from maple_edge_lite.learn import layer_cost

        if args.class_sd is not None:
            layer_cost.CLASS_SD = args.class_sd
        if args.calibration_df is not None:
            layer_cost.NOISE_DF = args.calibration_df or None
    from maple_edge_lite.learn.layer_cost import ALIGN

    align = None if args.no_align else ALIGN
    report = {"shots": args.shots, "draws": args.draws, "align": align, "runtimes": {}}
    for p in paths:
        cache, source = cache_of(p, args.spill_cache_mb, args.no_spill)
        res, per_net, n, nf, fit, res_u, per_net_u = score_runtime(p, args.shots, args.draws, args.block_weight,
                                                                   cache, align, args.joint_align,
                                                                   LS.SMALL_END if args.without_small_end else ())
        report["runtimes"][p.stem] = {"networks": n, "families": nf, "methods": res, "networks_detail": per_net,
                                      "spill": dict(fit["spill"] or {}, source=source), "align": fit["align"],
                                      "unaligned": {"methods": res_u, "networks_detail": per_net_u}}
    methods = list(next(iter(report["runtimes"].values()))["methods"])
    report["mean"] = {m: {k: float(np.mean([r["methods"][m][k] for r in report["runtimes"].values()]))
                          for k in report["runtimes"][paths[0].stem]["methods"][m]} for m in methods}
    with_u = [r for r in report["runtimes"].values() if r["unaligned"]["methods"]]
    if with_u:
        report["unaligned_mean"] = {m: {k: float(np.mean([r["unaligned"]["methods"][m][k] for r in with_u]))
                                        for k in with_u[0]["unaligned"]["methods"][m]} for m in methods}
    if args.json:
        print(json.dumps(report, indent=1, default=float))
        return 0
    print(f"leave one family out, {args.shots} whole networks of other families + the layer suite, "
          f"{args.draws} draws")
    for rt, blk in report["runtimes"].items():
        sp, al = blk["spill"], blk["align"]
        print(f"  {rt}: spill term " + (f"beyond {sp['cache_bytes'] / 2**20:g} MiB ({sp['source']}), fitted "
                                       f"{1000 * sp['ms_per_mb']:.1f} us per MB" if "cache_bytes" in sp
                                       else f"off ({sp['source']})")
              + "; alignment term " + ("off (--no-align)" if al is None else
                                       f"at {al['channels']} channels, fitted " + ", ".join(
                                           f"{c} {1000 * w:.2f}" for c, w in zip(("conv", "pw", "dw", "grouped"),
                                                                                  al["ms_per_unaligned_mmac"]))
                                       + " us per unaligned MMAC, depthwise off 4 channels "
                                       + f"{al['ms_per_unaligned_kchannel']:.3f} us per channel"))

    def table(title, blocks, mean):
        print(f"\n{title}")
        print(f"{'method':14s}" + "".join(f"{r:>28s}" for r in blocks) + f"{'mean':>28s}")
        print(" " * 14 + "   ±10%   MAPE  rho  cover" * (len(blocks) + 1))
        for m in methods:
            line = f"{m:14s}"
            for r in [b[m] for b in blocks.values()] + [mean[m]]:
                line += f"   {r['acc10']:.2f} {r['mape']:6.1f} {r['spearman']:.3f} " + (
                    f"{r['cover']:.2f}" if "cover" in r else "  - ")
            print(line)

    table("the zoo", {rt: b["methods"] for rt, b in report["runtimes"].items()}, report["mean"])
    if with_u:
        table("the unaligned set (UNALIGNED; rho over its few networks)",
              {rt: b["unaligned"]["methods"] for rt, b in report["runtimes"].items() if b["unaligned"]["methods"]},
              report["unaligned_mean"])
    print("\nlayer_cost per family (held out): ±10% share, then each network's error (median over draws, %)")
    for rt, blk in report["runtimes"].items():
        print(f"{rt}:")
        fams: dict = {}
        for n, v in blk["networks_detail"].items():
            fams.setdefault(v["family"], []).append(v["layer_cost_ms"] / v["measured_ms"] - 1)
        for f, e in fams.items():
            e = np.array(e)
            print(f"  {f:14s} {np.mean(np.abs(e) <= 0.10):4.2f}  " + " ".join(f"{100 * x:+.0f}" for x in e))
        for n, v in blk["unaligned"]["networks_detail"].items():
            print(f"  unaligned {n:24s} measured {v['measured_ms']:7.3f} ms, layer_cost {v['layer_cost_ms']:7.3f} "
                  f"({100 * (v['layer_cost_ms'] / v['measured_ms'] - 1):+.0f}%), macs_linear "
                  f"{100 * (v['macs_linear_ms'] / v['measured_ms'] - 1):+.0f}%")
    return 0


def _calibration_sets(args) -> int:
    """``calibration``: the device cache's way (``_cache.LAYER_CALIBRATION``: the suite's fit
    calibrated on a fixed set of zoo networks) scored per data file on the zoo networks in none of
    the compared sets, one row per set."""
    from maple_edge_lite._cache import LAYER_CALIBRATION
    from maple_edge_lite.learn.layer_cost import ALIGN

    sets = [tuple(x.split(",")) for x in args.sets] if args.sets else (
        [LAYER_CALIBRATION] + [LAYER_CALIBRATION[:4] + (n,) for n in ("squeezenet1_1", "mobilenet_v1_1.0_224",
                                                                        "mnasnet1.0", "regnet_x_400mf")])
    paths = [p for d in args.data for p in sorted(Path(d).glob("vm-*.csv"))
             if (args.runtimes is None or p.stem[3:-3] in args.runtimes.split(","))]
    union = set().union(*sets)
    scores = np.zeros((len(sets), len(paths)))
    for j, p in enumerate(paths):
        suite, nets, _ = load(p)
        unknown = union - set(nets)
        if unknown:
            print(f"{p}: no measurement of {sorted(unknown)}", file=sys.stderr)
            return 1
        cache, _ = cache_of(p, None, False)
        test = [n for n in nets if n not in union]
        Ft = np.array([features("zoo", n, cache, ALIGN)[0] for n in test])
        yt = np.array([nets[n][1] for n in test])
        base = fit_suite_model(suite, cache, ALIGN)  # the suite's fit, the same for every set
        for i, cal in enumerate(sets):
            m = copy.deepcopy(base)
            m.calibrate(np.array([features("zoo", n, cache, ALIGN)[0] for n in cal]), [nets[n][1] for n in cal])
            scores[i, j] = np.mean(np.abs(m.predict(Ft) / yt - 1) <= 0.10)
    print(f"±10% accuracy on the {len(test)} zoo networks in no set, calibrated as the device cache does")
    for j, p in enumerate(paths):
        print(f"  file {j}: {p}")
    print("       " + "".join(f"{'file ' + str(j):>8s}" for j in range(len(paths))) + f"{'mean':>8s}")
    for i, cal in enumerate(sets):
        print(f"set {i}: " + "".join(f"{v:8.2f}" for v in scores[i]) + f"{scores[i].mean():8.3f}   {', '.join(cal)}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--runtime", default="onnxruntime")
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--cpu", default=None, help="pin to these CPUs (e.g. 1)")
    m.add_argument("--precision", help="the runtime's precision option (openvino: f32, bf16, f16); the data "
                   "file is then vm-<runtime>-<precision>-<threads>t.csv")
    m.add_argument("--names", help="comma-separated zoo names (default all)")
    m.add_argument("--out")
    m.add_argument("--what", choices=("all", "suite", "zoo", "unaligned"), default="all",
                   help="measure only the layer suite, only the zoo or only the unaligned set (UNALIGNED), keeping "
                   "the other parts' rows (all: the suite and the zoo)")
    m.set_defaults(func=_measure)
    s = sub.add_parser("score")
    s.add_argument("--data", default=str(DATA))
    s.add_argument("--shots", type=int, default=5)
    s.add_argument("--draws", type=int, default=5)
    s.add_argument("--json", action="store_true")
    s.add_argument("--block-weight", type=float, default=None,
                   help="fit weight of the suite's whole-block entries (default layer_suite.BLOCK_WEIGHT)")
    sp = s.add_mutually_exclusive_group()
    sp.add_argument("--spill-cache-mb", type=float, default=None,
                    help="the cache (MiB) of the layer cost model's spill term, instead of the one the data file's "
                    "sidecar records (else this machine's per-core cache, device.host.core_cache)")
    sp.add_argument("--no-spill", action="store_true", help="score the layer cost model without its spill term")
    al = s.add_mutually_exclusive_group()
    al.add_argument("--no-align", action="store_true",
                    help="score the layer cost model without its alignment term (channel counts off a multiple of "
                    "learn.layer_cost.ALIGN)")
    al.add_argument("--joint-align", action="store_true",
                    help="fit the alignment term together with the per-class costs, on every suite entry, instead "
                    "of after them (layer_suite.class_fit_mask)")
    s.add_argument("--without-small-end", action="store_true",
                   help="fit without the suite's small-end entries (layer_suite.SMALL_END): version 3's model")
    s.add_argument("--class-sd", type=float, default=None,
                   help="the calibration prior's per-class deviation (default learn.layer_cost.CLASS_SD, 0: one scale)")
    s.add_argument("--calibration-df", type=float, default=None,
                   help="degrees of freedom of the calibration's Student-t noise (default "
                   "learn.layer_cost.NOISE_DF, 0: Gaussian)")
    s.set_defaults(func=_score)
    c = sub.add_parser("calibration", help="compare sets of calibration networks for the device cache")
    c.add_argument("--data", nargs="+", default=[str(DATA)], help="data folders (each vm-*.csv scored)")
    c.add_argument("--runtimes", help="comma-separated runtimes of the files to score, e.g. onnxruntime,openvino-f32")
    c.add_argument("--sets", nargs="+", help="comma-separated zoo names, one argument per set (default: the "
                   "shipped LAYER_CALIBRATION, then its first four with each of SqueezeNet 1.1, MobileNetV1 1.0, "
                   "MnasNet 1.0 and RegNetX-400MF)")
    c.set_defaults(func=_calibration_sets)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
