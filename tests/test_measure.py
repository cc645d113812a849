"""maple_edge_lite.device.measure: the timing rule (on scripted sessions and a scripted clock), real
latencies under onnxruntime, the CSV + sidecar files, --sample, and the CLI's errors."""

from __future__ import annotations

import csv
import json
import time

import pytest

import maple_edge_lite as mel
from maple_edge_lite.device import measure as M
from maple_edge_lite.device import runtimes as R
from maple_edge_lite.cli import main

CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
FAST = dict(warmup=2, warmup_s=0.0, min_runs=5, min_time_s=0.0, budget_s=0.1)


# --- the timing core on a scripted clock -------------------------------------------------------


class ScriptedClock:
    """A clock that only moves when the fake session runs: each run takes the next duration."""

    def __init__(self, durations_ns):
        self.t = 10**9
        self.durations = list(durations_ns)
        self.calls = 0

    def __call__(self):
        return self.t

    def run(self):
        self.t += self.durations[self.calls % len(self.durations)]
        self.calls += 1


def test_statistics_follow_the_definitions_on_a_scripted_clock():
    # 20 warm-up runs of 1 ms, then a repeating pattern of 10 timed runs: 1..9 ms and one 100 ms.
    pattern = [k * 1_000_000 for k in range(1, 10)] + [100_000_000]
    clock = ScriptedClock([1_000_000] * 20 + pattern * 100)
    t = M.time_session(clock, warmup=20, warmup_s=0, min_runs=10, max_runs=10, budget_s=100, min_time_s=0,
                       clock=clock)
    assert t.warmup_runs == 20 and t.runs == 10
    assert t.samples_ms == [float(k) for k in range(1, 10)] + [100.0]
    assert t.median_ms == 5.5
    # 10% trimmed from each end of 10 values: drop 1 and 100, mean of 2..9.
    assert t.trimmed_mean_ms == pytest.approx(5.5)
    # Percentiles by linear interpolation between order statistics (rank (n - 1) * q over the
    # sorted values 1..9, 100): q = 0.1 -> rank 0.9, 1 + 0.9 * (2 - 1); q = 0.9 -> rank 8.1,
    # 9 + 0.1 * (100 - 9).
    assert t.p10_ms == pytest.approx(1.9)
    assert t.p90_ms == pytest.approx(18.1)
    assert t.mad_ms == pytest.approx(2.5)
    assert t.cv == pytest.approx(1.4826 * 2.5 / 5.5)
    assert t.window_ms == pytest.approx(sum(t.samples_ms))


@pytest.mark.parametrize("values, trim, want", [
    ([1, 2, 3, 4, 100], 0.10, 22.0),  # floor(0.5) = 0 values cut
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 1000], 0.10, 5.5),
    ([5] * 7 + [1000] * 3, 0.30, 5.0),
    ([3.0], 0.10, 3.0),
])
def test_trimmed_mean(values, trim, want):
    assert M.trimmed_mean(values, trim) == pytest.approx(want)


def test_a_steady_session_is_called_stable_after_min_runs():
    clock = ScriptedClock([2_000_000])
    t = M.time_session(clock, warmup=3, warmup_s=0, min_runs=40, budget_s=1000, rel_tol=0.01, clock=clock)
    assert t.stable and t.runs == 40 and t.median_ms == 2.0


def test_a_drifting_session_runs_until_the_budget_and_is_not_stable():
    # Every run is 10 us slower than the last: the median of the last half never settles.
    clock = ScriptedClock([1_000_000 + 10_000 * k for k in range(100_000)])
    t = M.time_session(clock, warmup=1, warmup_s=0, min_runs=10, budget_s=2.0, rel_tol=0.01, clock=clock)
    assert not t.stable
    # The whole call (warm-up included) stops at the first run that crosses the budget.
    assert 2.0 <= t.wall_s < 2.0 + t.samples_ms[-1] / 1e3 + 1e-9


def test_max_runs_and_min_time_are_honoured():
    clock = ScriptedClock([1_000_000])
    t = M.time_session(clock, warmup=0, warmup_s=0, min_runs=5, max_runs=7, budget_s=1000, min_time_s=1.0,
                       clock=clock)
    assert t.runs == 7 and not t.stable  # max_runs came before min_time_s
    t = M.time_session(clock, warmup=0, warmup_s=0, min_runs=5, budget_s=1000, min_time_s=0.05, clock=clock)
    assert t.runs == 50 and t.stable  # 50 runs of 1 ms reach min_time_s


def test_the_budget_stops_the_loop_at_the_first_run_that_crosses_it():
    # 2 ms runs on the scripted clock, a 0.25 s budget: warm-up is capped at a quarter of the
    # budget (it stops at the first run at or past 62.5 ms: 32 runs, 64 ms), then timed runs
    # until the whole call reaches 250 ms: (250 - 64) / 2 = 93 runs end exactly on it.
    clock = ScriptedClock([2_000_000])
    t = M.time_session(clock, warmup=2, warmup_s=1.0, min_runs=10_000, budget_s=0.25, clock=clock)
    assert t.warmup_runs == 32 and t.runs == 93 and clock.calls == 32 + 93
    assert t.wall_s == pytest.approx(0.25) and t.window_ms == pytest.approx(186.0)
    assert not t.stable  # min_runs was never reached: the budget, not the check, stopped it
    # An odd run length: the loop stops at the first run past the budget, not before it.
    clock = ScriptedClock([3_000_000])
    t = M.time_session(clock, warmup=0, warmup_s=0, min_runs=10_000, budget_s=0.1, clock=clock)
    assert t.warmup_runs == 0 and t.runs == 34 and t.wall_s == pytest.approx(0.102)


def test_a_run_longer_than_the_budget_is_timed_once():
    clock = ScriptedClock([500_000_000])  # 0.5 s per run, budget 0.1 s
    t = M.time_session(clock, warmup=5, warmup_s=0, min_runs=20, budget_s=0.1, clock=clock)
    assert t.warmup_runs == 1 and t.runs == 1 and t.median_ms == 500.0 and not t.stable


def test_preempted_runs_do_not_move_the_median():
    # Three runs in ten slowed 30x by another process: the check still settles (its medians
    # ignore the upper tail) and the median is the undisturbed run time.
    clock = ScriptedClock([300_000] * 7 + [9_000_000] * 3)
    t = M.time_session(clock, warmup=5, warmup_s=0, min_runs=30, budget_s=5.0, rel_tol=0.05, clock=clock)
    assert t.stable and t.runs == 30 and t.median_ms == pytest.approx(0.3)
    assert t.p90_ms > 8.0  # the slow runs are in the samples, just not in the median


def test_the_default_clock_times_real_runs():
    """The real clock (perf_counter_ns) without any bound on wall time: a sleep never returns
    early, so every sample is at least its length, and the timed runs fit in the window, which
    fits in the call."""
    class Sleeper:
        def run(self):
            time.sleep(0.002)

    t = M.time_session(Sleeper(), warmup=2, warmup_s=0, min_runs=5, max_runs=5, budget_s=60)
    assert t.runs == 5 and t.warmup_runs == 2 and min(t.samples_ms) >= 2.0
    assert sum(t.samples_ms) <= t.window_ms <= 1e3 * t.wall_s


def test_counters_window_is_exactly_the_timed_loop():
    events = []

    class Session:
        def run(self):
            events.append("run")

    class FakeCounters:
        results = {}

        def start(self):
            events.append("start")

        def stop(self):
            events.append("stop")

    t = M.time_session(Session(), warmup=4, warmup_s=0, min_runs=6, max_runs=6, budget_s=10, counters=FakeCounters())
    assert events == ["run"] * 4 + ["start"] + ["run"] * 6 + ["stop"]
    assert t.counters == {}


def test_a_failing_run_closes_the_window_and_restores_gc():
    import gc

    events = []

    class Flaky:
        n = 0

        def run(self):
            self.n += 1
            if self.n == 5:
                raise RuntimeError("device lost")

    class FakeCounters:
        def start(self):
            events.append("start")

        def stop(self):
            events.append("stop")

    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="device lost"):
        M.time_session(Flaky(), warmup=2, warmup_s=0, min_runs=10, budget_s=10, counters=FakeCounters())
    assert events == ["start", "stop"] and gc.isenabled()


@pytest.mark.parametrize("kw, fragment", [
    (dict(min_runs=0), "min_runs"),
    (dict(min_runs=10, max_runs=5), "max_runs"),
    (dict(budget_s=0), "budget_s"),
    (dict(rel_tol=0), "rel_tol"),
    (dict(warmup=-1), "warmup"),
    (dict(min_time_s=float("nan")), "min_time_s"),
])
def test_bad_timing_settings_are_input_errors(kw, fragment):
    with pytest.raises(mel.InputError, match=fragment):
        M.time_session(ScriptedClock([1]), **kw)


# --- architectures ------------------------------------------------------------------------------


def test_sample_is_deterministic_distinct_and_valid():
    a = M.sample_archs(25, seed=3)
    assert a == M.sample_archs(25, seed=3)
    assert a != M.sample_archs(25, seed=4)
    assert len(set(a)) == 25
    for s in a:
        assert M.check_arch(s) == s
    # The first of a longer draw is the same draw (a prefix), so --sample N grows consistently.
    assert M.sample_archs(5, seed=3) == a[:5]
    assert len(set(M.sample_archs(15625, seed=0))) == 15625
    with pytest.raises(mel.InputError, match="sample size"):
        M.sample_archs(0)


def test_arch_files_lines_and_csv(tmp_path):
    lines = tmp_path / "archs.txt"
    lines.write_text(f"# two networks\n{CONV}\n\n{SKIP}\n{CONV}\n")
    assert M.read_archs(lines) == ([CONV, SKIP], {})
    table = tmp_path / "archs.csv"
    table.write_text(f"nb201_index,arch_str,eagle_arch_vector\n7,{CONV},123\n,{SKIP},\n")
    assert M.read_archs(table) == ([CONV, SKIP], {CONV: 7})
    with pytest.raises(mel.ModelNotFoundError):
        M.read_archs(tmp_path / "missing.txt")


def test_invalid_arch_is_named():
    with pytest.raises(mel.InputError, match="conv_5x5"):
        M.check_arch(CONV.replace("nor_conv_3x3~0|+", "conv_5x5~0|+", 1))


# --- real measurements ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")


def test_conv_network_is_slower_than_skip_network(ort):
    rows = M.measure([CONV, SKIP], **FAST)
    conv, skip = rows
    assert (conv.arch_str, skip.arch_str) == (CONV, SKIP)
    # 3x3 convs everywhere vs identities: an order of magnitude apart on any CPU.
    assert conv.latency_ms > 3 * skip.latency_ms
    assert conv.latency_ms == conv.timing.median_ms
    # min_runs=5, unless one run outlasts the window's budget (emulated CPUs: qemu-user takes 1.3 s)
    assert conv.timing.runs >= 5 or conv.timing.wall_s >= FAST["budget_s"]
    # Three windows by default, each a fresh session; the latency is the fastest one's median.
    assert len(conv.window_medians_ms) == M.MEASURE_PASSES == 3
    assert conv.latency_ms == min(conv.window_medians_ms)


def test_csv_and_sidecar_format(ort, tmp_path):
    out = tmp_path / "lat.csv"
    rows = M.measure([SKIP], device="test-board", index={SKIP: 42}, **FAST)
    csv_path, side = M.write_csv(rows, out)
    assert side == str(out) + ".json"
    with open(csv_path, newline="") as f:
        got = list(csv.reader(f))
    assert got[0] == ["nb201_index", "arch_str", "device", "latency_ms"]
    assert got[1][:3] == ["42", SKIP, "test-board"]
    assert float(got[1][3]) == pytest.approx(rows[0].latency_ms, abs=1e-6)
    assert M.read_csv(csv_path)[0]["nb201_index"] == 42
    with open(side) as f:
        meta = json.load(f)
    assert meta["schema"] == M.SIDECAR_SCHEMA and meta["csv"] == "lat.csv"
    assert meta["runtime"]["name"] == "onnxruntime" and meta["threads"] == 1
    assert meta["package"]["version"] == mel.__version__
    for key in ("cpu_model", "kernel", "cpu_affinity", "arch", "loadavg"):
        assert key in meta["host"]
    assert meta["cpu_affinity"]
    assert {"warmup", "min_runs", "budget_s", "rel_tol", "statistic"} <= set(meta["timing"])
    (arch,) = meta["archs"]
    assert arch["arch_str"] == SKIP and arch["nb201_index"] == 42
    for key in ("median_ms", "trimmed_mean_ms", "p10_ms", "p90_ms", "mad_ms", "runs", "stable"):
        assert key in arch
    # No index known: the column is empty, not -1 or 0.
    rows = M.measure([SKIP], **FAST)
    M.write_csv(rows, out)
    assert M.read_csv(out)[0]["nb201_index"] is None
    assert out.read_text().splitlines()[1].startswith(",|skip_connect~0|")


def test_pinning_restores_the_affinity(ort):
    if not hasattr(__import__("os"), "sched_getaffinity"):
        pytest.skip("no sched_getaffinity on this platform")
    import os

    before = os.sched_getaffinity(0)
    cpu = min(before)
    rows = M.measure([SKIP], cpus=str(cpu), **FAST)
    assert rows.conditions["pinned_cpus"] == [cpu] and rows.conditions["cpu_affinity"] == [cpu]
    assert os.sched_getaffinity(0) == before


# --- the CLI ----------------------------------------------------------------------------------


def one_error_line(capsys, code):
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("maple-edge-lite: error:"), err
    return err[0]


def test_cli_measure_writes_csv_and_sidecar(ort, tmp_path, capsys):
    out = tmp_path / "m.csv"
    archs = tmp_path / "archs.csv"
    archs.write_text(f"nb201_index,arch_str\n5,{SKIP}\n")
    code = main(["measure", "--archs", str(archs), "--sample", "1", "--seed", "9", "--device", "d1", "-o", str(out),
                 "--budget-s", "0.1", "--min-time-s", "0", "--passes", "2", "--json", "-q"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    rows = M.read_csv(out)
    assert [r["arch_str"] for r in rows] == [SKIP] + M.sample_archs(1, 9)
    assert [r["nb201_index"] for r in rows] == [5, None]
    assert {r["device"] for r in rows} == {"d1"}
    assert [r["latency_ms"] for r in rows] == pytest.approx([r["latency_ms"] for r in printed["rows"]], abs=1e-6)
    assert [len(r["window_medians_ms"]) for r in printed["rows"]] == [2, 2]
    side = json.loads((tmp_path / "m.csv.json").read_text())
    assert side["device"] == "d1"
    assert side["selection"] == {"onnx": 0, "arch": 0, "archs_file": str(archs), "sample": {"n": 1, "seed": 9}}


def test_cli_invalid_arch_is_one_line_and_leaves_the_old_output(tmp_path, capsys):
    out = tmp_path / "m.csv"
    out.write_text("old\n")
    code = main(["measure", "--arch", SKIP, "--arch", "|nor_conv_3x3~0|+|bogus~0|", "-o", str(out)])
    line = one_error_line(capsys, code)
    assert "bogus" in line
    assert out.read_text() == "old\n"


@pytest.mark.parametrize("where", ["missing_dir", "a_directory"])
def test_cli_unwritable_output_fails_before_measuring(tmp_path, capsys, where):
    target = tmp_path / "nope" / "m.csv" if where == "missing_dir" else tmp_path
    t0 = time.perf_counter()
    code = main(["measure", "--arch", SKIP, "-o", str(target)])
    line = one_error_line(capsys, code)
    assert str(target) in line
    assert time.perf_counter() - t0 < 1.0  # nothing was measured


def test_cli_runtime_not_installed(capsys):
    def factory(threads=1):
        raise R.RuntimeNotInstalledError("runtime 'boardsdk' is not installed: pip install boardsdk")

    R.register("boardsdk", factory)
    try:
        code = main(["measure", "--arch", SKIP, "--runtime", "boardsdk"])
    finally:
        R.unregister("boardsdk")
    line = one_error_line(capsys, code)
    assert "pip install boardsdk" in line


def test_cli_needs_an_architecture(capsys):
    line = one_error_line(capsys, main(["measure"]))
    assert "--arch" in line and "--sample" in line


def test_a_rejected_network_is_left_out_and_reported(tmp_path, capsys):
    """A runtime that refuses one network (as pnnx's converter crashes on some): the others are
    measured and written, the refused one is listed in the sidecar, the CLI exits 3; a one-off
    refusal is retried; a runtime that refuses everything is an error (exit 1, nothing written)."""
    from maple_edge_lite.device import runtimes
    from maple_edge_lite.device.runtimes import ModelRejectedError

    bad = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
    pool = "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    calls = {"flaky": 0}

    def load(model, threads):
        if bad.encode() in model:
            raise ModelRejectedError("fake: converter crashed (signal 11)")
        if b"avg_pool" in model and calls["flaky"] == 0:  # the first such load fails once
            calls["flaky"] += 1
            raise ModelRejectedError("fake: one-off")
        return lambda: None

    runtimes.register("fake_rejecting", lambda threads=1, **kw: runtimes.CallableRuntime(
        "fake_rejecting", "1", load, threads=threads))
    try:
        archs = [SKIP, bad, pool]
        rows = M.measure(archs, runtime="fake_rejecting", budget_s=0.02, min_time_s=0, passes=2)
        assert [r.arch_str for r in rows] == [SKIP, pool] and calls["flaky"] == 1
        assert rows.conditions["rejected"] == [{"arch_str": bad, "error": "fake: converter crashed (signal 11)"}]
        out = tmp_path / "m.csv"
        code = main(["measure", "--arch", SKIP, "--arch", bad, "--runtime", "fake_rejecting", "-o", str(out),
                     "--budget-s", "0.02", "--min-time-s", "0", "-q"])
        err = capsys.readouterr().err
        assert code == 3 and "rejected 1 network" in err and bad in err
        assert [r["arch_str"] for r in M.read_csv(out)] == [SKIP]
        assert json.loads((tmp_path / "m.csv.json").read_text())["rejected"][0]["arch_str"] == bad
        out2 = tmp_path / "n.csv"
        code = main(["measure", "--arch", bad, "--runtime", "fake_rejecting", "-o", str(out2), "-q"])
        assert code == 1 and "rejected every model" in capsys.readouterr().err and not out2.exists()
    finally:
        runtimes.unregister("fake_rejecting")


def test_measure_onnx_files(ort, tmp_path, capsys, monkeypatch):
    """``measure --onnx``: any ONNX files, the same timing, CSV path,sha256,device,latency_ms with
    the files' hashes; a missing file fails before anything is measured; the sources do not mix."""
    import hashlib

    from maple_edge_lite.device.builders import nb201_onnx

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(nb201_onnx(SKIP))
    b.write_bytes(nb201_onnx("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                             "nor_conv_3x3~2|"))
    out = tmp_path / "m.csv"
    code = main(["measure", "--onnx", str(a), str(b), "-o", str(out), "--budget-s", "0.1", "--min-time-s", "0",
                 "--passes", "1", "-q"])
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "path,sha256,device,latency_ms" and len(lines) == 3
    rows = [ln.split(",") for ln in lines[1:]]
    assert [r[0] for r in rows] == [str(a), str(b)]
    assert rows[0][1] == hashlib.sha256(a.read_bytes()).hexdigest()
    assert float(rows[1][3]) > float(rows[0][3]) > 0  # six 3x3 convs per cell vs skips only
    side = json.loads((tmp_path / "m.csv.json").read_text())
    assert side["network"] == {"onnx": True} and [f["path"] for f in side["files"]] == [str(a), str(b)]
    capsys.readouterr()
    code = main(["measure", "--onnx", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "n.csv")])
    assert "not found" in one_error_line(capsys, code) and not (tmp_path / "n.csv").exists()
    code = main(["measure", "--onnx", str(a), "--arch", SKIP])
    assert "--onnx" in one_error_line(capsys, code)
    # weights in an external data file beside the model (torch's dynamo exporter writes one), run
    # from another working directory: read from the model's folder; the file gone, a clear error
    onnx = pytest.importorskip("onnx")
    d = tmp_path / "ext"
    d.mkdir()
    onnx.save_model(onnx.load_from_string(b.read_bytes()), str(d / "b.onnx"), save_as_external_data=True,
                    location="b.onnx.data", size_threshold=0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code = main(["measure", "--onnx", str(d / "b.onnx"), "-o", str(out), "--budget-s", "0.1", "--min-time-s", "0",
                 "--passes", "1", "-q"])
    assert code == 0 and float(out.read_text().splitlines()[1].split(",")[3]) > 0
    capsys.readouterr()
    (d / "b.onnx.data").unlink()
    code = main(["measure", "--onnx", str(d / "b.onnx"), "-o", str(tmp_path / "n.csv")])
    assert "external data file" in one_error_line(capsys, code) and not (tmp_path / "n.csv").exists()
    # a dynamic height and width: fixed by --input-shape in the model the runtime loads
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.ones((8, 8, 3, 3), np.float32), "w")])
    dyn = tmp_path / "dyn.onnx"
    dyn.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    fast = ["--budget-s", "0.1", "--min-time-s", "0", "--passes", "1", "-q"]
    code = main(["measure", "--onnx", str(dyn), "-o", str(out), "--input-shape", "x=1,8,32,32", *fast])
    assert code == 0 and json.loads((tmp_path / "m.csv.json").read_text())["input_shapes"] == {"x": [1, 8, 32, 32]}
    capsys.readouterr()
    for args, msg in ((["--input-shape", "z=1,8,32,32"], "not an input"), (["--input-shape", "x=1,8,32"], "dimensions"),
                      (["--input-shape", "x=1,4,32,32"], "fixes it at 8")):
        code = main(["measure", "--onnx", str(dyn), "-o", str(tmp_path / "n.csv"), *args, *fast])
        assert msg in one_error_line(capsys, code) and not (tmp_path / "n.csv").exists()
    code = main(["measure", "--arch", SKIP, "--input-shape", "x=1,8,32,32"])
    assert "--onnx" in one_error_line(capsys, code)


def test_measure_precision_reaches_the_runtime(tmp_path, capsys, precision_runtime):
    """``measure --precision f32``: the adapter is built with it (OpenVINO's inference precision),
    the device column says it (``<host>-<runtime>-f32-<threads>t``); a runtime without such an
    option is a one-line error."""
    out = tmp_path / "m.csv"
    assert main(["measure", "--arch", SKIP, "--runtime", "fake-prec", "--precision", "f32", "-o", str(out), "-q",
                 "--passes", "1", "--budget-s", "0.05", "--min-time-s", "0"]) == 0
    assert precision_runtime and set(precision_runtime) == {"f32"}
    assert next(iter(M.read_csv(out)))["device"].endswith("-fake-prec-f32-1t")
    capsys.readouterr()
    code = main(["measure", "--arch", SKIP, "--runtime", "onnxruntime", "--precision", "f32", "-o",
                 str(tmp_path / "n.csv")])
    assert "precision" in one_error_line(capsys, code) and not (tmp_path / "n.csv").exists()
