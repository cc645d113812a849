"""The evaluation harness and its baselines, on small synthetic tables (fast), plus a few checks on
the shared data when it is there."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.learn import data as D
from maple_edge_lite.learn import baselines as B, evaluate as E, methods as Methods

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def arch(i: int) -> str:
    d = [(i // 5 ** e) % 5 for e in range(6)]
    o = [OPS[v] for v in d]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


class ArrayEncoder:
    """Features given as an array, one row per arch string (for synthetic tables)."""

    def __init__(self, archs, X, names):
        self.row = {a: i for i, a in enumerate(archs)}
        self.X = np.asarray(X, dtype=np.float32)
        self.names = list(names)

    def encode(self, space, archs):
        return self.X[[self.row[a] for a in archs]]

    def feature_names(self, space):
        return self.names


def linear_world(n=300, m=6, seed=0):
    """Training devices t0..t{m-1} whose log latencies are linear in 5 arch factors z; "lin" is
    another such device (so it is exactly linear in the encoding and in the training devices'
    columns), "flp" is exactly linear in log FLOPs (= z0). The encoding is [z, flops_32 = e^z0]."""
    rng = np.random.default_rng(seed)
    Zf = rng.normal(size=(n, 5))
    Z = Zf.astype(np.float32).astype(np.float64)  # what the float32 encoder carries, exactly
    cols = {f"t{j}": rng.normal() + Z @ (rng.normal(size=5) * 0.3) for j in range(m)}
    cols["lin"] = 0.7 + Z @ (rng.normal(size=5) * 0.3)
    cols["flp"] = 1.0 + 0.6 * Z[:, 0]
    archs = [arch(i) for i in range(n)]
    table = D.LatencyTable("nb201", np.arange(n), archs, list(cols), np.exp(np.column_stack(list(cols.values()))))
    X = np.column_stack([Z, np.exp(Z[:, 0])])
    enc = ArrayEncoder(archs, X, [f"z{i}" for i in range(5)] + ["flops_32"])
    return table, enc


TRAIN = [f"t{j}" for j in range(6)]


# ---------------------------------------------------------------------------------------------
# metrics


def test_metrics_on_a_hand_computed_case():
    true = [1.0, 2.0, 4.0, 8.0]
    pred = [1.04, 2.2, 3.0, 8.8]  # relative errors +4 %, +10 %, -25 %, +10 %
    m = E.metrics(pred, true)
    assert m["acc5"] == 0.25 and m["acc10"] == 0.75 and m["acc15"] == 0.75
    assert m["spearman"] == pytest.approx(1.0)
    assert m["rmspe"] == pytest.approx(100 * np.sqrt((0.04**2 + 0.1**2 + 0.25**2 + 0.1**2) / 4))
    assert m["mape"] == pytest.approx(100 * (0.04 + 0.1 + 0.25 + 0.1) / 4)


def test_metric_thresholds_are_inclusive_and_spearman_averages_ties():
    m = E.metrics([1.1, 0.9, 1.05, 0.85], [1.0, 1.0, 1.0, 1.0])
    assert m["acc5"] == 0.25 and m["acc10"] == 0.75 and m["acc15"] == 1.0
    # ranks [0, 1.5, 1.5, 3] vs [0, 2, 1, 3]: r = 4.5 / sqrt(4.5 * 5)
    assert E.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    assert E.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(E.spearman([1, 1, 1], [1, 2, 3]))


def test_metrics_reject_bad_input():
    with pytest.raises(mel.InputError):
        E.metrics([1.0, 2.0], [1.0])
    with pytest.raises(mel.InputError, match="positive"):
        E.metrics([1.0], [0.0])
    with pytest.raises(mel.InputError, match="finite"):
        E.metrics([np.nan], [1.0])


# ---------------------------------------------------------------------------------------------
# baselines


@pytest.mark.parametrize("name", ["ridge_enc", "ridge_dev", "kriging", "kriging_greedy", "ceiling"])
def test_baseline_recovers_an_exactly_linear_device(name):
    table, enc = linear_world()
    r = E.evaluate(table, enc, [name], TRAIN, ["lin"], shots=30, seeds=2)
    dev = r["methods"][name]["devices"]["lin"]
    assert dev["acc5"] == 1.0, dev
    assert dev["spearman"] > 0.999 and dev["mape"] < 1.0


def test_flops_baseline_recovers_a_device_linear_in_log_flops():
    table, enc = linear_world()
    r = E.evaluate(table, enc, ["flops"], TRAIN, ["flp"], shots=10, seeds=2)
    dev = r["methods"]["flops"]["devices"]["flp"]
    assert dev["mape"] < 1e-3 and dev["spearman"] == pytest.approx(1.0)
    assert "flops_32" in r["methods"]["flops"]["description"]


def test_flops_baseline_says_when_it_falls_back_to_a_proxy():
    table, enc = linear_world()
    enc.names[-1] = "size"
    r = E.evaluate(table, enc, ["flops"], TRAIN, ["flp"], shots=10, seeds=1)
    assert "proxy" in r["methods"]["flops"]["description"]


def test_greedy_selection_is_deterministic_and_beats_random_on_posterior_variance():
    rng = np.random.default_rng(3)
    n, m = 400, 8
    Y = rng.normal(size=(n, 3)) @ rng.normal(size=(3, m)) + 0.3 * rng.normal(size=(n, m)) + 2.0
    k = B.Kriging(select="greedy").fit(np.zeros((n, 1), np.float32), Y, [f"d{j}" for j in range(m)])
    pool = np.arange(0, n, 2)
    a = k.select(6, pool, np.random.default_rng(0))
    b = k.select(6, pool, np.random.default_rng(99))
    assert a.tolist() == b.tolist() and len(set(a)) == 6 and np.isin(a, pool).all()

    def total_variance(S):
        U = k.U
        post = np.linalg.inv(np.eye(U.shape[1]) + U[S].T @ U[S] / k.sigma2)
        return float(np.trace(U @ post @ U.T))

    random_draws = [total_variance(np.random.default_rng(s).choice(pool, 6, replace=False)) for s in range(20)]
    assert total_variance(a) < min(random_draws)


# ---------------------------------------------------------------------------------------------
# the harness


def spy_factory(made):
    class Spy(Methods.Method):
        """records what the harness gives it; predicts 1 ms."""

        name = "spy"

        def fit(self, X, Y, devices, feature_names=()):
            self.devices, self.Y, self.calls = list(devices), Y.copy(), []
            made.append(self)
            return self

        def select(self, k, pool, rng):
            self.pool = np.asarray(pool).copy()
            return super().select(k, pool, rng)

        def adapt(self, idx, y_log):
            self.calls.append({"idx": np.asarray(idx).copy(), "y": np.asarray(y_log).copy(), "pool": self.pool})
            return self

        def predict(self, idx):
            self.calls[-1]["query"] = np.asarray(idx).copy()
            return np.zeros(len(idx))

    return Spy


def test_help_protocol_pools_and_query():
    rng = np.random.default_rng(4)
    n = 2100
    lat = np.exp(rng.normal(size=(n, 3)))
    lat[[5, 950, 1500], 2] = np.nan  # the test device misses a few archs
    table = D.LatencyTable("nb201", np.arange(n), [arch(i) for i in range(n)], ["a", "b", "t"], lat)
    made = []
    E.evaluate(table, "simple", {"spy": spy_factory(made)}, ["a", "b"], ["t"], shots=10, seeds=2, protocol="help")
    col = lat[:, 2]

    def trimmed(lo, hi):
        rows = [i for i in range(lo, hi) if np.isfinite(col[i])]
        rows = sorted(rows, key=lambda i: col[i])
        return sorted(rows[int(len(rows) * 0.1):int(len(rows) * 0.9)])

    (spy,) = made
    assert len(spy.calls) == 2
    for call in spy.calls:
        assert call["pool"].tolist() == trimmed(0, 900)       # 10-90th percentile of indices 0-899
        assert call["query"].tolist() == trimmed(900, 1900)   # ... and of 900-1899, as HELP
        assert np.isin(call["idx"], call["pool"]).all() and len(call["idx"]) == 10
        np.testing.assert_allclose(call["y"], np.log(col[call["idx"]]))


def test_all_protocol_queries_every_other_measured_arch():
    table, enc = linear_world(n=120)
    table.latency_ms[:7, table.devices.index("lin")] = np.nan
    made = []
    E.evaluate(table, enc, {"spy": spy_factory(made)}, TRAIN, ["lin"], shots=10, seeds=1)
    call = made[0].calls[0]
    assert call["pool"].tolist() == list(range(7, 120))
    assert sorted(call["query"].tolist() + call["idx"].tolist()) == list(range(7, 120))


def test_every_random_method_sees_the_same_archs_and_shots_are_nested():
    table, enc = linear_world(n=200)
    made = []
    facs = {"s1": spy_factory(made), "s2": spy_factory(made)}
    E.evaluate(table, enc, facs, TRAIN, ["lin", "flp"], shots=5, seeds=3)
    E.evaluate(table, enc, facs, TRAIN, ["lin", "flp"], shots=12, seeds=3)
    s1, s2, t1, _ = made
    assert [c["idx"].tolist() for c in s1.calls] == [c["idx"].tolist() for c in s2.calls]
    assert len({tuple(c["idx"]) for c in s1.calls}) == 6  # seeds and devices differ
    for small, big in zip(s1.calls, t1.calls):
        assert big["idx"][:5].tolist() == small["idx"].tolist()


def test_leave_one_out_never_trains_on_a_held_out_device():
    rng = np.random.default_rng(5)
    n = 150
    base = rng.normal(size=n)
    # device j sits at log level 10*j, so any column or measurement tells which device it is
    profiles = {"a": base, "a2": base + rng.normal(scale=0.01, size=n)}
    profiles.update({k: rng.normal(size=n) for k in ("b", "c", "d", "e")})
    names = list(profiles)
    lat = np.exp(np.column_stack([10 * j + 0.1 * profiles[d] for j, d in enumerate(names)]))
    table = D.LatencyTable("nb201", np.arange(n), [arch(i) for i in range(n)], names, lat)
    made = []
    r = E.leave_one_out(table, "simple", {"spy": spy_factory(made), "kriging": B.Kriging}, shots=5, seeds=2)
    assert r["groups"] == [["a", "a2"], ["b"], ["c"], ["d"], ["e"]]
    assert len(made) == 5
    for spy, group in zip(made, r["groups"]):
        assert spy.devices == [d for d in names if d not in group]
        levels_in_training = set(np.round(np.nanmean(spy.Y, axis=0) / 10).astype(int))
        assert levels_in_training == {names.index(d) for d in spy.devices}
        tested = {names[int(round(np.mean(c["y"]) / 10))] for c in spy.calls}
        assert tested == set(group)
    assert set(r["methods"]["kriging"]["devices"]) == set(names)
    means = [g["acc10"] for g in r["methods"]["kriging"]["groups"]]
    assert r["methods"]["kriging"]["mean"]["acc10"] == pytest.approx(np.mean(means))  # each group once
    p = r["paired"]
    assert p["primary"] == "spy" and p["vs"]["kriging"]["acc10"]["n"] == 5


def test_harness_rejects_overlapping_or_unknown_devices_and_bad_groups():
    table, enc = linear_world(n=50)
    with pytest.raises(mel.InputError, match="both in train and test"):
        E.evaluate(table, enc, ["ridge_dev"], TRAIN, ["t0"])
    with pytest.raises(D.UnknownDeviceError, match="t0"):
        E.evaluate(table, enc, ["ridge_dev"], TRAIN, ["nope"])
    with pytest.raises(mel.InputError, match="partition"):
        E.leave_one_out(table, enc, ["ridge_dev"], groups=[["t0"], ["t1"]])
    with pytest.raises(mel.InputError, match="protocol"):
        E.evaluate(table, enc, ["ridge_dev"], TRAIN, ["lin"], protocol="some")


def test_import_does_not_load_the_host_tooling():
    code = "import sys, maple_edge_lite; print([m for m in ('maple_edge_lite.learn.data', 'maple_edge_lite.evaluate') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------------
# the command line


def write_table(folder: Path, table: D.LatencyTable):
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "nb201_latency.csv.gz", "wt", encoding="utf-8", newline="") as f:
        f.write("nb201_index,arch_str,device,latency_ms\n")
        for j, d in enumerate(table.devices):
            for i, a in zip(table.index, table.archs):
                f.write(f"{i},{a},{d},{float(table.latency_ms[i, j])!r}\n")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "maple_edge_lite", "evaluate", *args], capture_output=True,
                          text=True, cwd=HERE)


def test_cli_leave_one_out_json_layout(tmp_path):
    table, _ = linear_world(n=120)
    write_table(tmp_path / "d", table)
    r = cli("--data", str(tmp_path / "d"), "--leave-one-out", "--shots", "8", "--seeds", "2",
            "--methods", "ridge_dev,kriging", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert set(rep) >= {"config", "groups", "methods", "paired"}
    assert rep["config"]["shots"] == 8 and rep["config"]["mode"] == "leave_one_group_out"
    assert "encode" in rep["config"]["encoder"]
    assert list(rep["methods"]) == ["ridge_dev", "kriging"]
    block = rep["methods"]["kriging"]
    assert set(block["devices"]) == set(table.devices)
    for key in ("acc5", "acc10", "acc15", "spearman", "rmspe", "mape"):
        assert key in block["mean"] and key + "_std" in block["mean"]
        assert key in block["devices"]["lin"] and key + "_std" in block["devices"]["lin"]
    assert len(block["groups"]) == len(rep["groups"])
    text = cli("--data", str(tmp_path / "d"), "--train-devices", "t0,t1,t2,t3", "--test-devices", "lin",
               "--methods", "kriging", "--seeds", "1")
    assert text.returncode == 0, text.stderr
    assert "lin" in text.stdout and "kriging" in text.stdout


def test_cli_failures_are_one_line(tmp_path):
    table, _ = linear_world(n=40)
    write_table(tmp_path / "d", table)
    for args in (["--data", str(tmp_path / "d")],
                 ["--data", str(tmp_path / "d"), "--train-devices", "t0", "--test-devices", "nope"],
                 ["--data", str(tmp_path / "missing"), "--leave-one-out"],
                 ["--data", str(tmp_path / "d"), "--leave-one-out", "--methods", "magic"]):
        r = cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("maple-edge-lite: error:"), r.stderr


def test_observe_sees_the_scored_predictions():
    """The observer gets, per method, device and draw, exactly the measurements and predictions the
    report's metrics were computed from."""
    table, _ = linear_world(n=120)
    seen = {}

    def observe(method, device, seed, measured, predicted, lo, hi):
        seen[(method, device, seed)] = (np.asarray(measured), np.asarray(predicted), lo, hi)

    rep = E.evaluate(table, "simple", ["ridge_dev", "bayes_linear"], TRAIN, ["lin"], shots=8, seeds=2, observe=observe)
    assert set(seen) == {(m, "lin", s) for m in ("ridge_dev", "bayes_linear") for s in (0, 1)}
    for m in ("ridge_dev", "bayes_linear"):
        acc = np.mean([np.mean(np.abs(seen[(m, "lin", s)][1] / seen[(m, "lin", s)][0] - 1) <= 0.10) for s in (0, 1)])
        assert acc == pytest.approx(rep["methods"][m]["devices"]["lin"]["acc10"])
    y, p, lo, hi = seen[("bayes_linear", "lin", 0)]
    assert lo is not None and np.all(lo <= p) and np.all(p <= hi)
    assert seen[("ridge_dev", "lin", 0)][2] is None  # no intervals from a method without them


def test_cli_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="the [plot] extra is not installed")
    table, _ = linear_world(n=120)
    write_table(tmp_path / "d", table)
    png = tmp_path / "e.png"
    r = cli("--data", str(tmp_path / "d"), "--leave-one-out", "--shots", "8", "--seeds", "1",
            "--methods", "bayes_linear,kriging", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {png}" in r.stdout
    r = cli("--data", str(tmp_path / "d"), "--leave-one-out", "--plot", str(tmp_path / "nope" / "e.png"))
    assert r.returncode == 1 and "nope" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    code = ("import sys; sys.modules['matplotlib'] = None; from maple_edge_lite.cli import main; "
            f"sys.exit(main(['evaluate', '--data', {str(tmp_path / 'd')!r}, '--leave-one-out', '--plot', 'x.png']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 3 and "pip install 'maple-edge-lite[plot]'" in r.stderr and not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------------------------
# the shared data

needs_shared = pytest.mark.skipif(not (SHARED / "help" / "nb201_latency.csv.gz").is_file(),
                                  reason=f"the shared data is not at {SHARED}")


@needs_shared
def test_shared_data_split_and_help_pools():
    train = ["silver_4114", "gold_6240", "1080ti_1", "pixel3", "samsung_s7", "essential_ph_1"]
    table = D.load_table([SHARED / "help"], "nb201", devices=train + ["silver_4210r"])
    r = E.evaluate(table, "simple", ["ridge_dev", "kriging"], train, ["silver_4210r"], shots=10, seeds=1,
                   protocol="help")
    for m in ("ridge_dev", "kriging"):
        dev = r["methods"][m]["devices"]["silver_4210r"]
        assert dev["n_query"] == 800 and dev["shots"] == 10  # 1000 query archs, 10-90th percentile
        assert dev["spearman"] > 0.8  # a CPU from a handful of other devices: clearly informative
