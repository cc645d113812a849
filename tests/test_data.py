"""Latency-table loader and device groups: small tables written into tmp_path, plus checks on the
shared data (../shared/data beside the checkout) when it is there."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.learn import data as D

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
HEADER = "nb201_index,arch_str,device,latency_ms"
ARCH = "|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def arch(i: int) -> str:
    """A valid, distinct NAS-Bench-201 arch string per i < 5**6."""
    digits = [(i // 5 ** e) % 5 for e in range(6)]
    return ARCH.format(**{k: OPS[v] for k, v in zip("abcdef", digits)})


def write_csv(path: Path, rows, header: str = HEADER) -> Path:
    """rows: (index, device, latency) or raw strings (written as they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header]
    for r in rows:
        lines.append(r if isinstance(r, str) else f"{r[0]},{arch(r[0])},{r[1]},{r[2]!r}")
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
    return path


def nb(dirpath: Path) -> Path:
    return dirpath / "nb201_latency.csv.gz"


# ---------------------------------------------------------------------------------------------
# loading


def test_load_sorts_arch_indices_and_marks_missing_as_nan(tmp_path):
    write_csv(nb(tmp_path), [(5, "cpu", 2.0), (1, "cpu", 1.0), (3, "gpu", 0.5), (5, "gpu", 0.25)])
    t = D.load_table(tmp_path, "nb201")
    assert t.index.tolist() == [1, 3, 5]
    assert t.archs == [arch(1), arch(3), arch(5)]
    assert t.devices == ["cpu", "gpu"]  # order of first appearance
    assert t.latency_ms.dtype == np.float64 and t.latency_ms.shape == (3, 2)
    np.testing.assert_array_equal(t.column("cpu"), [1.0, np.nan, 2.0])
    np.testing.assert_array_equal(t.column("gpu"), [np.nan, 0.5, 0.25])
    assert t.has("gpu").tolist() == [False, True, True]


def test_devices_argument_selects_and_orders_columns(tmp_path):
    write_csv(nb(tmp_path), [(0, "a", 1.0), (0, "b", 2.0), (0, "c", 3.0)])
    t = D.load_table(tmp_path, "nb201", devices=["c", "a"])
    assert t.devices == ["c", "a"]
    assert t.latency_ms.tolist() == [[3.0, 1.0]]
    s = t.select(["a"])
    assert s.devices == ["a"] and s.latency_ms.tolist() == [[1.0]]
    assert s.index.tolist() == t.index.tolist()  # rows stay aligned


def test_folders_are_searched_recursively_and_combined(tmp_path):
    write_csv(nb(tmp_path / "one" / "deep"), [(0, "a", 1.0), (1, "a", 2.0)])
    write_csv(nb(tmp_path / "two"), [(1, "b", 4.0), (2, "b", 8.0)])
    t = D.load_table([tmp_path / "one", tmp_path / "two"], "nb201")
    assert t.devices == ["a", "b"]
    assert t.index.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(t.latency_ms, [[1.0, np.nan], [2.0, 4.0], [np.nan, 8.0]])
    # The parent folder reaches both files; giving it together with a child reads each file once.
    t2 = D.load_table([tmp_path, tmp_path / "two"], "nb201")
    assert len(t2.sources) == 2
    np.testing.assert_array_equal(t2.latency_ms, t.latency_ms)


def test_same_device_in_two_folders_merges_when_values_agree(tmp_path):
    write_csv(nb(tmp_path / "x"), [(0, "a", 1.0), (1, "a", 2.0)])
    write_csv(nb(tmp_path / "y"), [(1, "a", 2.0), (2, "a", 3.0)])
    t = D.load_table([tmp_path / "x", tmp_path / "y"], "nb201")
    assert t.devices == ["a"] and t.column("a").tolist() == [1.0, 2.0, 3.0]


def test_same_device_with_conflicting_values_is_an_error_naming_both_files(tmp_path):
    write_csv(nb(tmp_path / "x"), [(0, "a", 1.0), (1, "a", 2.0)])
    write_csv(nb(tmp_path / "y"), [(1, "a", 2.5)])
    with pytest.raises(D.DataError) as e:
        D.load_table([tmp_path / "x", tmp_path / "y"], "nb201")
    msg = str(e.value)
    assert "'a'" in msg and str(tmp_path / "x") in msg and str(tmp_path / "y") in msg and "2.5" in msg


def test_unknown_device_lists_the_known_ones(tmp_path):
    write_csv(nb(tmp_path), [(0, "cpu", 1.0), (0, "gpu", 2.0)])
    with pytest.raises(D.UnknownDeviceError) as e:
        D.load_table(tmp_path, "nb201", devices=["cpu", "tpu"])
    assert isinstance(e.value, mel.InputError) and isinstance(e.value, ValueError)
    assert "tpu" in str(e.value) and "cpu, gpu" in str(e.value)
    t = D.load_table(tmp_path, "nb201")
    with pytest.raises(D.UnknownDeviceError, match="cpu, gpu"):
        t.column("tpu")


def test_missing_folder_or_file_is_file_not_found(tmp_path):
    with pytest.raises(D.DataNotFoundError) as e:
        D.load_table(tmp_path / "nope", "nb201")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, mel.MapleEdgeError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="nb201_latency.csv.gz"):
        D.load_table(tmp_path / "empty", "nb201")
    write_csv(nb(tmp_path / "d"), [(0, "a", 1.0)])
    with pytest.raises(FileNotFoundError, match="fbnet_latency.csv.gz"):
        D.load_table(tmp_path / "d", "fbnet")
    with pytest.raises(mel.InputError, match="search space"):
        D.load_table(tmp_path / "d", "darts")


GOOD = f"0,{arch(0)},a,1.5"


@pytest.mark.parametrize(
    "bad, words",
    [
        (f"1,{arch(1)},a", "3 fields"),
        (f"1,{arch(1)},a,1.0,extra", "5 fields"),
        (f"x1,{arch(1)},a,1.0", "not an integer"),
        (f"1,{arch(1)},a,fast", "not a number"),
        (f"1,{arch(1)},a,0", "positive and finite"),
        (f"1,{arch(1)},a,-2.0", "positive and finite"),
        (f"1,{arch(1)},a,nan", "positive and finite"),
        (f"1,{arch(1)},a,inf", "positive and finite"),
        (f"-1,{arch(1)},a,1.0", "negative"),
        (f"0,{arch(2)},a,1.5", "but"),                 # one index, two arch strings
        (f"0,{arch(0)},a,1.6", "conflicts"),           # one (arch, device), two values
        (f"1,{arch(1)},,1.0", "empty device"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, bad, words):
    path = write_csv(nb(tmp_path), [GOOD, f"2,{arch(2)},a,2.0", bad])
    with pytest.raises(D.DataError) as e:
        D.load_table(tmp_path, "nb201")
    msg = str(e.value)
    assert str(path) in msg and "line 4" in msg and words in msg, msg
    assert isinstance(e.value, ValueError)


def test_bad_header_and_not_gzip(tmp_path):
    write_csv(nb(tmp_path / "h"), [GOOD], header="index,arch,device,ms")
    with pytest.raises(D.DataError, match="line 1: header"):
        D.load_table(tmp_path / "h", "nb201")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "nb201_latency.csv.gz").write_text(HEADER + "\n" + GOOD + "\n")
    with pytest.raises(D.DataError, match="gzip"):
        D.load_table(tmp_path / "z", "nb201")


def test_duplicate_rows_with_equal_values_are_accepted(tmp_path):
    write_csv(nb(tmp_path), [GOOD, GOOD])
    assert D.load_table(tmp_path, "nb201").latency_ms.tolist() == [[1.5]]


def test_fbnet_format(tmp_path):
    ops = "|".join(["k3_e1"] * 21 + ["skip"])
    write_csv(tmp_path / "fbnet_latency.csv.gz", [f"7,{ops},a,3.0", f"2,{ops.replace('skip', 'k5_e6')},a,4.0"],
              header="fbnet_index,arch_ops,device,latency_ms")
    t = D.load_table(tmp_path, "fbnet")
    assert t.space == "fbnet" and t.index.tolist() == [2, 7] and t.archs[1] == ops


def test_device_info_comes_from_the_nearest_devices_csv_above(tmp_path):
    (tmp_path / "devices.csv").write_text("device,source,batch_size\na,R1,1\nzz,R1,\n")
    write_csv(nb(tmp_path / "sub"), [(0, "a", 1.0), (0, "b", 2.0)])
    t = D.load_table(tmp_path / "sub", "nb201")
    assert t.device_info == {"a": {"device": "a", "source": "R1", "batch_size": "1"}}


# ---------------------------------------------------------------------------------------------
# correlation and groups


def _table(cols: dict, info=None) -> D.LatencyTable:
    n = len(next(iter(cols.values())))
    return D.LatencyTable("nb201", np.arange(n), [arch(i) for i in range(n)], list(cols),
                          np.column_stack(list(cols.values())), info or {})


def test_correlation_uses_the_archs_both_devices_have():
    rng = np.random.default_rng(0)
    x = np.exp(rng.normal(size=200))
    y = np.exp(np.log(x) * 0.5 + rng.normal(scale=0.5, size=200))
    y_gappy = y.copy()
    y_gappy[:50] = np.nan
    R = D.log_latency_correlation(_table({"x": x, "y": y_gappy}))
    want = np.corrcoef(np.log(x[50:]), np.log(y[50:]))[0, 1]
    assert R[0, 1] == pytest.approx(want, abs=1e-12) and R[1, 0] == pytest.approx(want, abs=1e-12)
    assert R[0, 0] == pytest.approx(1.0)


def test_groups_link_near_duplicates_transitively_and_keep_others_alone():
    rng = np.random.default_rng(1)
    base = rng.normal(size=500)
    a = base
    b = base + rng.normal(scale=0.06, size=500)   # r(a, b) ~ 0.998
    c = b + rng.normal(scale=0.06, size=500)      # r(b, c) ~ 0.998, r(a, c) ~ 0.993 < 0.995: linked through b
    d = rng.normal(size=500)
    t = _table({k: np.exp(v) for k, v in {"d": d, "a": a, "b": b, "c": c}.items()})
    R = D.log_latency_correlation(t)
    assert R[1, 3] < D.GROUP_THRESHOLD <= min(R[1, 2], R[2, 3])
    assert D.device_groups(t) == [["d"], ["a", "b", "c"]]
    assert D.device_groups(t, threshold=0.9999) == [["d"], ["a"], ["b"], ["c"]]


def test_groups_also_link_devices_csv_setups():
    rng = np.random.default_rng(2)
    cols = {k: np.exp(rng.normal(size=300)) for k in ("g1", "g2", "p", "q")}
    info = {"g1": {"source": "R", "device_class": "gpu", "batch_size": "32"},
            "g2": {"source": "R", "device_class": "gpu", "batch_size": "32"},
            "p": {"source": "R", "device_class": "gpu", "batch_size": "1"},
            "q": {"source": "R", "device_class": "phone", "batch_size": ""}}
    t = _table(cols, info)
    assert D.device_groups(t) == [["g1", "g2"], ["p"], ["q"]]
    assert D.device_groups(t, metadata=False) == [["g1"], ["g2"], ["p"], ["q"]]


# ---------------------------------------------------------------------------------------------
# the shared data

needs_shared = pytest.mark.skipif(not (SHARED / "help" / "nb201_latency.csv.gz").is_file(),
                                  reason=f"the shared data is not at {SHARED}")


@pytest.fixture(scope="module")
def nb201():
    return D.load_table([SHARED], "nb201")


@needs_shared
def test_shared_nb201_loads_all_30_devices(nb201):
    assert len(nb201.devices) == 30 and nb201.n_archs == 15625
    assert nb201.index.tolist() == list(range(15625))
    measured = np.isfinite(nb201.latency_ms).sum(0)
    assert measured.max() == 15625 and measured.min() == 15252  # Eagle's Adreno 506 misses the most
    assert set(nb201.device_info) == set(nb201.devices)
    assert nb201.device_info["pixel3"]["device_class"] == "mobile_phone"


@needs_shared
def test_shared_nb201_has_the_18_documented_groups(nb201):
    groups = D.device_groups(nb201)
    assert len(groups) == 18
    multi = sorted(sorted(g) for g in groups if len(g) > 1)
    assert multi == sorted([
        sorted(["1080ti_1", "2080ti_1", "titan_rtx_1", "titanx_1", "titanxp_1"]),
        sorted(["1080ti_32", "2080ti_32", "titan_rtx_32", "titanx_32", "titanxp_32"]),
        sorted(["1080ti_256", "2080ti_256", "titanx_256", "titanxp_256"]),
        sorted(["desktop_cpu_core_i7_7820x_fp32", "desktop_gpu_gtx_1080ti_fp32"]),
    ])
    # Correlation alone finds the near-copies (Eagle pair, three batch-256 GPUs), not all siblings.
    corr_only = [sorted(g) for g in D.device_groups(nb201, metadata=False) if len(g) > 1]
    assert sorted(corr_only) == [["1080ti_256", "titanx_256", "titanxp_256"],
                                 ["desktop_cpu_core_i7_7820x_fp32", "desktop_gpu_gtx_1080ti_fp32"]]


@needs_shared
def test_shared_fbnet_groups_by_batch_size():
    t = D.load_table([SHARED], "fbnet")
    assert len(t.devices) == 21 and t.n_archs == 5000
    groups = D.device_groups(t)
    assert len(groups) == 10
    assert sorted(["1080ti_64", "2080ti_64", "titanx_64", "titanxp_64"]) in [sorted(g) for g in groups]
    assert not np.isnan(D.log_latency_correlation(t)).any()
