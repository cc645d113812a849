#!/usr/bin/env python3
"""Run every speed benchmark of maple_edge_lite in one go and print a Markdown summary.

    python benchmarks/run.py            # or: PYTHON=/path/to/python benchmarks/run.sh

Steps (all with the Python running this script):
  1. pip install '.[bench]' (the package plus pytest-benchmark, onnx, onnxruntime), building in
     the work directory, not in the checkout's build/;
  2. build the C++ harness csrc/tools/bench_predict with plain CMake (Release,
     -DMEL_BUILD_TOOLS=ON) in the work directory;
  3. pack the benchmark model (64->256->256->1, He init, seed 0) and export its float twin to ONNX;
  4. run the harness (C API, every kernel, measured int8 peak);
  5. run the pytest-benchmark suite in benchmarks/ (Python API, numpy, ONNX Runtime, load,
     import);
  6. print the summary table (also written to WORK/summary.md and, with --out, elsewhere).

The work directory defaults to $TMPDIR/maple_edge_lite-bench-<checkout hash> and is reused, so
re-runs rebuild incrementally. Everything that is timed runs pinned to one CPU, one thread."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
BATCH_ROWS = 15_625


def log(msg):
    print(f"[run.py] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def default_workdir():
    h = hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"maple_edge_lite-bench-{h}"


def bench_env(cpu):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the installed package, not a source folder
    env.pop("MEL_KERNEL", None)  # the automatic kernel choice is what users get
    for v in THREAD_VARS:
        env[v] = "1"
    env["MEL_BENCH_CPU"] = str(cpu if cpu is not None else -1)
    return env


def cpu_busy(seconds=1.0):
    """{cpu: fraction of the time it was busy} over `seconds` (Linux /proc/stat), {} if unknown.
    Nothing of ours runs meanwhile, so this is other processes' load."""

    def snap():
        out = {}
        with open("/proc/stat") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0].startswith("cpu") and parts[0] != "cpu":
                    v = [int(t) for t in parts[1:]]
                    out[int(parts[0][3:])] = (sum(v), v[3] + (v[4] if len(v) > 4 else 0))
        return out

    try:
        s0 = snap()
        time.sleep(seconds)
        s1 = snap()
    except (OSError, ValueError):
        return {}
    busy = {}
    for c, (t1, i1) in s1.items():
        t0, i0 = s0.get(c, (t1, i1))
        if t1 > t0:
            busy[c] = 1 - (i1 - i0) / (t1 - t0)
    return busy


def pick_cpu(arg):
    """--cpu if given, else the least busy CPU this process may use (the last one on a tie)."""
    if arg is not None:
        return None if arg < 0 else arg
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    busy = cpu_busy()
    return min(reversed(allowed), key=lambda c: round(busy.get(c, 0.0), 1))


# --- steps ------------------------------------------------------------------------------------
def install(work):
    run(
        [sys.executable, "-m", "pip", "install", "--quiet", f"{REPO}[bench]", f"-Cbuild-dir={work / 'pip-build'}"],
        cwd=work,
    )


def build_harness(work, jobs, target="bench_predict"):
    cmake = shutil.which("cmake")
    if cmake is None:
        sys.exit("run.py: cmake is not on PATH (pip install cmake, or your distribution's package)")
    bdir = work / "cmake"
    build_log = work / "cmake-build.log"
    with open(build_log, "w") as f:  # compiler chatter goes to the log, shown only on failure
        for cmd in (
            [cmake, "-S", REPO, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DMEL_BUILD_TOOLS=ON", "-DMEL_BUILD_PYTHON=OFF"],
            [cmake, "--build", bdir, "--target", target, "-j", str(jobs)],
        ):
            try:
                run(cmd, stdout=f, stderr=subprocess.STDOUT)
            except subprocess.CalledProcessError:
                f.flush()
                sys.stderr.write("".join(build_log.read_text(errors="replace").splitlines(True)[-40:]))
                sys.exit(f"run.py: building the harness failed; full log in {build_log}")
    if "warning:" in build_log.read_text(errors="replace"):
        log(f"the harness build had compiler warnings: see {build_log}")
    exe = bdir / target
    if not exe.exists():
        sys.exit(f"run.py: the build did not produce {exe}")
    return exe


_PACK = """
import sys
sys.path.insert(0, {bench!r})
import conftest
conftest.pack_model({melw!r})
try:
    conftest.export_onnx({onnx!r})
except ImportError:
    pass
"""


def pack(work, env):
    melw, onnx = work / "mlp_64_256_256_1.melw", work / "mlp_64_256_256_1.onnx"
    code = _PACK.format(bench=str(BENCH_DIR), melw=str(melw), onnx=str(onnx))
    run([sys.executable, "-c", code], cwd=work, env=env)
    return melw, (onnx if onnx.exists() else None)


def run_harness(exe, melw, work, cpu, quick):
    out = work / "harness.json"
    cmd = [exe, melw, "--json-out", out, "--cpu", -1 if cpu is None else cpu]
    if quick:
        cmd.append("--quick")
    if out.exists():
        out.unlink()
    log("$ " + " ".join(str(c) for c in cmd))
    rc = subprocess.run([str(c) for c in cmd]).returncode
    if rc == 3 and out.exists():  # timed, but a kernel's outputs differ from the default kernel's
        log("WARNING: bench_predict: a kernel gives different predictions from the default kernel")
    elif rc != 0:
        sys.exit(f"run.py: bench_predict failed (exit status {rc})")
    h = json.loads(out.read_text())
    h["kernels_agree"] = rc == 0
    return h


def run_pytest(work, env, quick, extra):
    out = work / "pytest-benchmark.json"
    if quick:
        env = dict(env, MEL_BENCH_BATCH_BUDGET="0.4", MEL_BENCH_IMPORT_ROUNDS="5")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        BENCH_DIR,
        "--benchmark-enable",
        "--benchmark-only",
        f"--benchmark-json={out}",
        f"--benchmark-max-time={0.2 if quick else 0.5}",
        "--benchmark-min-rounds=20",
        "--benchmark-warmup=on",
        "--benchmark-warmup-iterations=2000",
        "--benchmark-disable-gc",
        "--benchmark-sort=name",
        "--benchmark-columns=median,iqr,min,max,rounds,iterations",
        "-p",
        "no:cacheprovider",
        "-q",
        *extra,
    ]
    # From the work directory: `python -m pytest` puts the working directory on sys.path, and
    # the checkout's maple_edge_lite/ source folder must not shadow the installed package.
    run(cmd, cwd=work, env=env)
    return json.loads(out.read_text())


# --- summary ----------------------------------------------------------------------------------
def fmt(v, digits=3):
    """A number with `digits` significant digits, thousands separators, no exponent."""
    if v is None:
        return "—"
    if v == 0:
        return "0"
    from math import floor, log10

    decimals = max(0, digits - 1 - int(floor(log10(abs(v)))))
    return f"{v:,.{decimals}f}"


def ratio(a, b):
    """b / a as 'N.N×' (how many times faster a is than b)."""
    if a is None or b is None or a <= 0:
        return "—"
    return f"{b / a:.2f}×" if b / a < 10 else f"{b / a:.1f}×"


def yes_no(ok):
    return "—" if ok is None else ("yes" if ok else "**no**")


def summarise(h, pb):
    """Markdown summary from the harness JSON `h` and the pytest-benchmark JSON `pb`."""
    by = {}  # (group, impl) -> benchmark record
    for b in (pb or {}).get("benchmarks", []):
        impl = b.get("extra_info", {}).get("impl") or b.get("param")
        by[(b["group"], impl)] = b

    def med(group, impl):
        b = by.get((group, impl))
        return None if b is None else b["stats"]["median"]

    def extra(group, impl, key, default=None):
        b = by.get((group, impl))
        return default if b is None else b.get("extra_info", {}).get(key, default)

    macs = h["macs_per_row"] if h else 82_176
    rows = h["batch_rows"] if h else BATCH_ROWS
    peak = h.get("peak_gmacs") if h else None
    kernel = (h or {}).get("default_kernel") or extra("single", "Model.predict", "kernel", "?")
    ort_1 = med("single", "onnxruntime")
    ort_b = med("batch", "onnxruntime")
    ort_ver = (extra("single", "onnxruntime", "kernel") or "onnxruntime").replace("onnxruntime ", "")

    lines = []
    dims = "→".join(str(d) for d in (h["dims"] if h else (64, 256, 256, 1)))
    cpu = (h or {}).get("cpu_model") or pb.get("machine_info", {}).get("cpu", {}).get("brand_raw", "?")
    version = (h or {}).get("version") or extra("single", "Model.predict", "maple_edge_lite", "?")
    lines.append(
        f"**maple_edge_lite {version}**: {dims} MLP ({macs:,} int8 MACs per row), one core of {cpu}, "
        f"one thread, default kernel `{kernel}`."
    )
    lines.append("")
    lines.append(
        "| Predictor | 1 row (µs) | 15,625 rows (ms) | Throughput (GMAC/s) | % of int8 peak "
        "| vs ORT, 1 row | vs ORT, 15,625 rows |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|")

    def row(name, t1_s, tb_s, int8=True):
        g = rows * macs / tb_s / 1e9 if tb_s else None
        pct = f"{100 * g / peak:.1f}%" if (int8 and g and peak) else "—"
        lines.append(
            f"| {name} | {fmt(t1_s * 1e6 if t1_s else None)} | {fmt(tb_s * 1e3 if tb_s else None)} "
            f"| {fmt(g)} | {pct} | {ratio(t1_s, ort_1)} | {ratio(tb_s, ort_b)} |"
        )

    for r in (h or {}).get("results", []):
        name = (
            f"C API `mel_model_predict` (`{r['kernel']}`)" if r["label"] == "default" else f"C API, kernel `{r['kernel']}`"
        )
        row(name, r["single_ns"]["median"] / 1e9, r["batch_ms"]["median"] / 1e3)
    if by:
        row(f"Python `Model.predict` (`{kernel}`)", med("single", "Model.predict"), med("batch", "Model.predict"))
        for k in ("scalar", "avx2", "avx512vnni", "neon"):
            if ("single", f"kernel={k}") in by or ("batch", f"kernel={k}") in by:
                row(f"Python, kernel `{k}`", med("single", f"kernel={k}"), med("batch", f"kernel={k}"))
        row("numpy, float32", med("single", "numpy-float32"), med("batch", "numpy-float32"), int8=False)
        if ort_1 or ort_b:
            row(f"ONNX Runtime {ort_ver}, float32", ort_1, ort_b, int8=False)
        else:
            lines.append("| ONNX Runtime (not installed) | — | — | — | — | — | — |")
    lines.append("")
    lines.append(
        "Medians. C API rows: `csrc/tools/bench_predict` (C++); the others: pytest-benchmark, from Python. "
        "“vs ORT”: ONNX Runtime's time divided by the row's (above 1: faster than ORT), ORT run from Python "
        "(`InferenceSession.run`, CPU provider, one intra-op and one inter-op thread, all graph optimisations) "
        "on the float32 MLP that the int8 model was quantized from."
    )
    lines.append("")
    if peak:
        pk = h["peaks"]
        others = ", ".join(f"{k} {fmt(v['gmacs'])}" for k, v in pk.items() if k != h["peak_name"])
        lines.append(
            f"int8 peak of this core, measured by the harness: {fmt(peak)} GMAC/s with {pk[h['peak_name']]['what']} "
            f"({h['peak_name']}{'; ' + others if others else ''}). Float rows give float32 MAC/s."
        )
    lines.append("")

    # Targets.
    c1 = next((r for r in (h or {}).get("results", []) if r["label"] == "default"), None)
    c1_s = c1["single_ns"]["median"] / 1e9 if c1 else None
    py1 = med("single", "Model.predict")
    pyb = med("batch", "Model.predict")
    cb = c1["batch_ms"]["median"] / 1e3 if c1 else None
    size = extra("load", "Model.load", "file_bytes")
    osize = extra("load", "onnxruntime", "file_bytes")
    imp_cum = extra("import", "maple_edge_lite", "importtime_cumulative_ms")
    imp_wall = med("import", "maple_edge_lite")
    py_wall = med("import", "python")
    np_wall = med("import", "numpy")
    beyond = extra("import", "maple_edge_lite", "beyond_numpy_and_stdlib")
    g_b = rows * macs / cb / 1e9 if cb else None

    if h and not h.get("kernels_agree", True):
        bad = ", ".join(r["kernel"] for r in h["results"] if not r["matches_default"])
        lines.append(f"**Warning: kernel(s) {bad} give different predictions from the default kernel.**")
        lines.append("")
    lines.append("| Target | Goal | Measured | Met |")
    lines.append("|---|---|---|---|")
    lines.append(f"| 1 row, C API | ≤ 2 µs | {fmt(c1_s * 1e6 if c1_s else None)} µs | {yes_no(c1_s and c1_s <= 2e-6)} |")
    lines.append(f"| 1 row, Python `Model.predict` | ≤ 3 µs | {fmt(py1 * 1e6 if py1 else None)} µs | {yes_no(py1 and py1 <= 3e-6)} |")
    lines.append(
        f"| 1 row, Python vs ONNX Runtime (Python) | ≥ 5× faster | {ratio(py1, ort_1)} "
        f"| {yes_no(None if not (py1 and ort_1) else ort_1 / py1 >= 5)} |"
    )
    lines.append(
        f"| 15,625 rows, `Model.predict` vs ONNX Runtime | ≥ 1.5× faster | {ratio(pyb, ort_b)} (C API: {ratio(cb, ort_b)}) "
        f"| {yes_no(None if not (pyb and ort_b) else ort_b / pyb >= 1.5)} |"
    )
    if g_b:
        peak_txt = f" = {100 * g_b / peak:.1f}% of the {fmt(peak)} GMAC/s int8 peak" if peak else ""
        lines.append(f"| 15,625 rows, int8 throughput (C API) | report | {fmt(g_b)} GMAC/s{peak_txt} | — |")
    if size:
        vs = f"; ONNX float32: {osize / 1000:,.1f} KB ({osize / size:.1f}× larger)" if osize else ""
        lines.append(
            f"| Weights file | ≤ 100 KB | {size / 1000:,.1f} KB ({size:,} bytes){vs} | {yes_no(size <= 100_000)} |"
        )
    if imp_cum is not None:
        best = extra("import", "maple_edge_lite", "importtime_cumulative_min_ms")
        best = f", best run {fmt(best)} ms" if best is not None else ""
        wall = ""
        if imp_wall and py_wall:
            wall = f"; `python -c`: {fmt(imp_wall * 1e3)} ms wall incl. {fmt(py_wall * 1e3)} ms interpreter start"
            if np_wall:
                wall += f" (numpy alone: {fmt(np_wall * 1e3)} ms)"
        lines.append(
            f"| `import maple_edge_lite` | ≤ 100 ms | {fmt(imp_cum)} ms (-X importtime, median{best}; numpy included){wall} "
            f"| {yes_no(imp_cum <= 100)} |"
        )
    if beyond is not None:
        lines.append(
            f"| Imports beyond numpy + stdlib | none | {', '.join(beyond) if beyond else 'none'} | {yes_no(not beyond)} |"
        )
    lines.append("")

    # Load / import side by side.
    mload, oload = med("load", "Model.load"), med("load", "onnxruntime")
    ort_imp = med("import", "onnxruntime")
    if mload or oload or imp_wall:
        lines.append("| | maple_edge_lite | ONNX Runtime |")
        lines.append("|---|---:|---:|")
        if size or osize:
            lines.append(
                f"| Model file | {fmt(size / 1000 if size else None)} KB (.melw, int8) "
                f"| {fmt(osize / 1000 if osize else None)} KB (.onnx, float32) |"
            )
        lines.append(
            f"| Load (`Model.load` / `InferenceSession`) | {fmt(mload * 1e3 if mload else None)} ms "
            f"| {fmt(oload * 1e3 if oload else None)} ms |"
        )
        lines.append(
            f"| `python -c \"import …\"` (wall, incl. {fmt(py_wall * 1e3 if py_wall else None)} ms start-up) "
            f"| {fmt(imp_wall * 1e3 if imp_wall else None)} ms | {fmt(ort_imp * 1e3 if ort_imp else None)} ms |"
        )
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work-dir", type=Path, default=None, help="build/output directory (default: %(default)s)")
    ap.add_argument("--skip-install", action="store_true", help="use the maple_edge_lite already installed")
    ap.add_argument("--skip-harness", action="store_true", help="do not build or run the C++ harness")
    ap.add_argument("--skip-pytest", action="store_true", help="do not run the pytest-benchmark suite")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run; noisier)")
    ap.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the least busy one; -1: none)")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown summary here")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    work = (args.work_dir or default_workdir()).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cpu = pick_cpu(args.cpu) if args.cpu is not None else None
    env = bench_env(cpu)
    log(f"python {sys.executable}, work dir {work}")

    if not args.skip_install:
        install(work)
    exe = None if args.skip_harness else build_harness(work, os.cpu_count() or 1)
    melw, _ = pack(work, env)

    if args.cpu is None:  # choose now, after the builds
        cpu = pick_cpu(None)
        env = bench_env(cpu)
        log(f"pinning the benchmarks to CPU {cpu}, the least busy")
    busy = [cpu_busy()]
    h = None if args.skip_harness else run_harness(exe, melw, work, cpu, args.quick)
    busy.append(cpu_busy())
    pb = {} if args.skip_pytest else run_pytest(work, env, args.quick, args.pytest_args)
    busy = [b.get(cpu, max(b.values())) if cpu is not None else sum(b.values()) for b in busy if b]

    md = summarise(h, pb)
    if busy and max(busy) > 0.2:
        where = f"CPU {cpu} (the one the benchmarks ran on)" if cpu is not None else "the CPUs"
        md += (
            f"\n_Other processes kept {where} up to {100 * max(busy):.0f}% busy between the timed steps: "
            "the numbers may be noisy; re-run on an idle machine before quoting them._\n"
        )
    (work / "summary.md").write_text(md, encoding="utf-8")
    if args.out:
        args.out.write_text(md, encoding="utf-8")
    print()
    print(md)
    log(f"done in {time.monotonic() - t_start:.0f} s; results in {work} (summary.md, harness.json, pytest-benchmark.json)")


if __name__ == "__main__":
    main()
