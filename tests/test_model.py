"""Pack -> load round trips and the Python API of Model: what a user sees."""

from __future__ import annotations


import numpy as np
import pytest

import maple_edge_lite as mel
from _util import feature_names, random_layers

SHAPES = [[64, 256, 256, 1], [7, 5, 1], [1, 1], [33, 17, 9, 1], [130, 64, 1]]


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dims", SHAPES, ids=lambda d: "x".join(map(str, d)))
def test_round_trip_is_bit_exact_with_numpy_reference(pack_random, dims):
    path, q = pack_random(dims, seed=len(dims))
    m = mel.Model.load(path)
    assert m.input_dim == dims[0]
    assert m.layer_dims == tuple(dims[1:])
    assert m.feature_names == tuple(feature_names(dims[0]))
    x = np.random.default_rng(1).standard_normal((257, dims[0])).astype(np.float32) * 2
    np.testing.assert_array_equal(bits(m.predict(x)), bits(q.predict(x)))
    np.testing.assert_array_equal(bits(m.predict_raw(x)), bits(q.predict_raw(x)))


def test_metadata_round_trip(pack_random):
    prov = {"tables": ["help/nb201_latency.csv.gz"], "devices": ["a", "b"], "seed": 7, "ünïcode": "ok"}
    path, _ = pack_random([8, 4, 1], metadata={"search_space": "nb201", "provenance": prov, "note": [1, 2.5]})
    meta = mel.Model.load(path).metadata
    assert meta["schema"] == "maple_edge_lite.metadata/1"
    assert meta["search_space"] == "nb201"
    assert meta["provenance"] == prov
    assert meta["note"] == [1, 2.5]
    assert meta["packed_by"] == f"maple_edge_lite {mel.__version__}"
    assert meta["quantization"]["scheme"] == 1


def test_int8_model_tracks_the_float_model(tmp_path):
    """Quantization must not change what the model says: compare with the float forward pass."""
    dims = [64, 256, 256, 1]
    layers = random_layers(dims, seed=0)
    rng = np.random.default_rng(2)
    calib = rng.standard_normal((2000, 64))
    mel.pack(layers, tmp_path / "m.melw", feature_names=feature_names(64), calibration=calib)
    x = rng.standard_normal((2000, 64)).astype(np.float32)
    h = x.astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    got = mel.Model.load(tmp_path / "m.melw").predict_raw(x)
    err = np.abs(got - h[:, 0])
    assert np.corrcoef(got, h[:, 0])[0, 1] > 0.995
    assert np.median(err) < 0.05 * np.std(h[:, 0])


def test_input_normalisation_and_output_transform(tmp_path):
    # A one-layer model y = 2 * (x - 10) / 4 with identity output: easy to check by hand.
    w = np.array([[2.0]])
    b = np.array([0.0])
    names = ["x"]
    q = mel.pack([(w, b)], tmp_path / "id.melw", feature_names=names, input_mean=[10.0], input_std=[4.0],
                 output="identity", output_scale=1.0, output_shift=0.5)
    m = mel.Model.load(tmp_path / "id.melw")
    x = np.array([[10.0], [14.0], [6.0]], np.float32)
    np.testing.assert_allclose(m.predict(x), [0.5, 2.5, -1.5], atol=0.05)
    np.testing.assert_array_equal(bits(m.predict(x)), bits(q.predict(x)))
    mel.pack([(w, b)], tmp_path / "exp.melw", feature_names=names, input_mean=[10.0], input_std=[4.0])
    np.testing.assert_allclose(mel.Model.load(tmp_path / "exp.melw").predict(x), np.exp([0.0, 2.0, -2.0]), rtol=0.05)



def test_floor_output_never_below_its_floor(tmp_path):
    """The "floor" transform (format 2), what device models use: y = 2 * (x - 10) / 4 + 0.5 as
    above, floored at 0.25 ms. Hand-computed: x = 10 -> 0.5, 14 -> 2.5, 6 -> -1.5 -> 0.25,
    9.5 -> 0.25 (exactly the floor), 11 -> 1.0."""
    w, b = np.array([[2.0]]), np.array([0.0])
    q = mel.pack([(w, b)], tmp_path / "f.melw", feature_names=["x"], input_mean=[10.0], input_std=[4.0],
                 output="floor", output_floor=0.25, output_shift=0.5)
    m = mel.Model.load(tmp_path / "f.melw")
    x = np.array([[10.0], [14.0], [6.0], [9.5], [11.0], [-1e4]], np.float32)
    got = m.predict(x)
    np.testing.assert_allclose(got, [0.5, 2.5, 0.25, 0.25, 1.0, 0.25], atol=0.05)
    assert got[2] == np.float32(0.25) and got[5] == np.float32(0.25)  # the floor itself, exactly
    np.testing.assert_array_equal(bits(got), bits(q.predict(x)))
    assert m.predict_raw(x)[2] < 0  # the raw output is not floored
    data = (tmp_path / "f.melw").read_bytes()
    assert int.from_bytes(data[12:14], "little") == 2  # a floored model is format 2 ...
    mel.pack([(w, b)], tmp_path / "i.melw", feature_names=["x"], output="identity")
    assert int.from_bytes((tmp_path / "i.melw").read_bytes()[12:14], "little") == 1  # ... others stay 1


@pytest.mark.parametrize("floor, fragment", [(None, "needs output_floor"), (0.0, "positive"), (-1.0, "positive"),
                                             (float("nan"), "positive"), (1e39, "float32")])
def test_floor_output_needs_a_positive_floor(tmp_path, floor, fragment):
    with pytest.raises(mel.InputError, match=fragment):
        mel.pack([(np.ones((1, 1)), np.zeros(1))], tmp_path / "f.melw", feature_names=["x"], output="floor",
                 output_floor=floor)
    with pytest.raises(mel.InputError, match="goes with output='floor'"):
        mel.pack([(np.ones((1, 1)), np.zeros(1))], tmp_path / "g.melw", feature_names=["x"], output="identity",
                 output_floor=0.1)


def test_exp_output_underflow_is_an_error_not_zero(tmp_path):
    """exp of a very negative raw output rounds to 0.0 in float32: an error, as overflow is."""
    q = mel.pack([(np.array([[1.0]]), np.array([0.0]))], tmp_path / "e.melw", feature_names=["x"],
                 output_scale=1.0, calibration=np.array([[200.0]]))
    m = mel.Model.load(tmp_path / "e.melw")
    assert m.predict(np.array([[-20.0]], np.float32))[0] > 0
    for f in (m.predict, q.predict):
        with pytest.raises(mel.NumericError, match="underflows to 0"):
            f(np.array([[-200.0]], np.float32))



def _interval_model(tmp_path, noise=0.05):
    """A linear model in ms over 4 features with a hand-made interval on features 1 and 3."""
    w, b = np.array([[0.5, 1.0, -0.25, 2.0]]), np.array([1.0])
    factor = np.array([[0.10, 0.00], [0.05, 0.02], [0.00, 0.30]])  # terms: 1, x1, x3
    iv = {"level": 0.9, "index": [1, 3], "factor": factor, "noise": noise}
    q = mel.pack([(w, b)], tmp_path / "iv.melw", feature_names=["a", "b", "c", "d"], output="floor",
                 output_floor=0.01, interval=iv, calibration=np.array([[4.0, 4.0, 4.0, 4.0]]))
    return q, mel.Model.load(tmp_path / "iv.melw")


def test_interval_by_hand_and_bit_exact(tmp_path):
    """The INTERVAL section: lo, hi = ms * exp(-+z * sqrt(|F^T a|^2 + (noise ms)^2) / ms),
    a = [1, x1, x3], z = 1.6449 for 90%, worked out here independently of the core."""
    q, m = _interval_model(tmp_path)
    assert m.interval_level == 0.9
    x = np.array([[1.0, 2.0, 0.0, 1.0], [0.0, 0.0, 4.0, 0.0], [3.0, 1.0, 1.0, 2.0]], np.float32)
    ms, lo, hi = m.predict_interval(x)
    np.testing.assert_array_equal(ms, m.predict(x))
    a = np.column_stack([np.ones(3), x[:, 1], x[:, 3]]).astype(np.float64)
    F = np.array([[0.10, 0.00], [0.05, 0.02], [0.00, 0.30]])
    sd = np.sqrt(((a @ F) ** 2).sum(1) + (0.05 * ms.astype(np.float64)) ** 2) / ms
    np.testing.assert_allclose(lo, ms * np.exp(-1.6448536269514722 * sd), rtol=1e-6)
    np.testing.assert_allclose(hi, ms * np.exp(1.6448536269514722 * sd), rtol=1e-6)
    assert np.all((lo < ms) & (ms < hi) & (lo > 0))
    for got, want in zip((ms, lo, hi), q.predict_interval(x)):
        np.testing.assert_array_equal(bits(got), bits(want))


def test_interval_at_the_floor_stays_finite_and_positive(tmp_path):
    """A prediction floored at 0.01 ms with a factor of 1e3 ms: sd = 1e5, so w is capped at 40:
    lo = 0.01 e^-40, hi = 0.01 e^40, both finite and > 0, in the core as in the reference."""
    iv = {"level": 0.9, "index": [0], "factor": np.array([[1e3], [0.0]]), "noise": 0.0}
    q = mel.pack([(np.array([[1.0]]), np.array([0.0]))], tmp_path / "f.melw", feature_names=["x"], output="floor",
                 output_floor=0.01, interval=iv, calibration=np.array([[4.0]]))
    m = mel.Model.load(tmp_path / "f.melw")
    ms, lo, hi = m.predict_interval(np.array([[-3.0]], np.float32))
    assert ms[0] == np.float32(0.01)
    np.testing.assert_allclose([lo[0], hi[0]], [0.01 * np.exp(-40.0), 0.01 * np.exp(40.0)], rtol=1e-6)
    for got, want in zip((ms, lo, hi), q.predict_interval(np.array([[-3.0]], np.float32))):
        np.testing.assert_array_equal(bits(got), bits(want))


def test_interval_absent_is_unsupported_not_zero(tmp_path, pack_random):
    path, _ = pack_random([5, 3, 1])
    m = mel.Model.load(path)
    assert m.interval_level is None
    with pytest.raises(mel.UnsupportedError, match="carries no interval"):
        m.predict_interval(np.zeros((1, 5), np.float32))


@pytest.mark.parametrize("bad, fragment", [
    (dict(level=1.0), "level must be in"), (dict(level=0.0), "level must be in"),
    (dict(index=[3, 1]), "increasing"), (dict(factor=np.ones((2, 1))), "factor must be"),
    (dict(factor=np.ones((3, 4))), "factor must be"), (dict(noise=-1.0), "noise"),
    (dict(factor=np.full((3, 1), np.inf)), "finite"), (dict(index=[1, 9]), "names feature 9"),
])
def test_interval_rejects_bad_input(tmp_path, bad, fragment):
    iv = {"level": 0.9, "index": [1, 3], "factor": np.ones((3, 2)), "noise": 0.0, **bad}
    with pytest.raises(mel.InputError, match=fragment):
        mel.pack([(np.ones((1, 4)), np.zeros(1))], tmp_path / "x.melw", feature_names=list("abcd"), interval=iv)


def test_single_row_forms_and_empty_batch(pack_random):
    path, q = pack_random([5, 3, 1])
    m = mel.Model.load(path)
    row = np.arange(5, dtype=np.float32)
    assert m.predict(row).shape == (1,)
    np.testing.assert_array_equal(m.predict(row), m.predict(row[None, :]))
    assert m.predict(np.zeros((0, 5), np.float32)).shape == (0,)


@pytest.mark.parametrize(
    "make_x, fragment",
    [
        (lambda: np.zeros((2, 5), np.float64), "float32"),
        (lambda: np.zeros((2, 5), np.int32), "float32"),
        (lambda: np.zeros((5, 2), np.float32).T, "C-contiguous"),
        (lambda: np.zeros((2, 10), np.float32)[:, ::2], "C-contiguous"),
        (lambda: np.zeros((2, 4), np.float32), "shape [n, 5]"),
        (lambda: np.zeros((2, 5, 1), np.float32), "shape [n, 5]"),
        (lambda: np.zeros((2, 5), ">f4"), "float32"),
        (lambda: np.array([[0, 1, np.nan, 3, 4]], np.float32), "feature 2 ('f2') is not a finite number"),
        (lambda: np.array([[0, 1, 2, 3, np.inf]], np.float32), "is not a finite number"),
    ],
    ids=["float64", "int32", "transposed", "strided", "wrong-width", "3d", "big-endian", "nan", "inf"],
)
def test_bad_input_is_a_clear_error(pack_random, make_x, fragment):
    path, _ = pack_random([5, 3, 1])
    m = mel.Model.load(path)
    with pytest.raises(mel.InputError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")) as ei:
        m.predict(make_x())
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, mel.MapleEdgeError)
    assert ei.value.status == "MEL_ERR_INVALID_ARGUMENT"


def test_non_finite_prediction_is_an_error(tmp_path):
    q = mel.pack([(np.ones((1, 2)), np.zeros(1))], tmp_path / "m.melw", feature_names=["a", "b"], output_shift=200.0,
                 output_scale=100.0)
    m = mel.Model.load(tmp_path / "m.melw")
    x = np.full((1, 2), 3.0, np.float32)
    with pytest.raises(mel.NumericError, match="not finite"):
        m.predict(x)
    with pytest.raises(mel.NumericError):
        q.predict(x)
    assert np.isfinite(m.predict_raw(x)).all()  # the raw output stays available


def test_load_from_bytes_and_missing_file(tmp_path, model_bytes):
    data, q = model_bytes
    x = np.ones((3, 16), np.float32)
    for buf in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(mel.Model.from_bytes(buf).predict(x), q.predict(x))
    with pytest.raises(mel.ModelNotFoundError, match="not found") as ei:
        mel.Model.load(tmp_path / "nope.melw")
    assert isinstance(ei.value, FileNotFoundError)
    with pytest.raises(mel.FormatError):
        mel.Model.from_bytes(b"")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"feature_names": ["a"]}, "feature_names has 1 names but the model takes 4"),
        ({"feature_names": ["a", "b", "c", "a"]}, "appears twice"),
        ({"feature_names": ["a", "", "c", "d"]}, "non-empty string"),
        ({"feature_names": "abcd"}, "not one string"),
        ({"metadata": {"x": object()}}, "JSON-serialisable"),
        ({"metadata": {"x": float("nan")}}, "JSON-serialisable"),
        ({"metadata": {"schema": 3}}, "reserved"),
        ({"output": "log"}, "output must be one of"),
        ({"input_std": [1, 0, 1, 1]}, "input_std"),
        ({"input_mean": [1, 2]}, "shape"),
        ({"calibration": np.zeros((3, 2))}, "calibration must have shape"),
    ],
)
def test_pack_rejects_bad_arguments(tmp_path, kwargs, fragment):
    kwargs.setdefault("feature_names", list("abcd"))
    with pytest.raises(mel.InputError, match=fragment):
        mel.pack(random_layers([4, 3, 1]), tmp_path / "m.melw", **kwargs)
    assert not (tmp_path / "m.melw").exists()


@pytest.mark.parametrize(
    "layers, fragment",
    [
        ([], "non-empty list"),
        ([(np.ones((2, 3)), np.ones(2))], "one output"),
        ([(np.ones((2, 3)), np.ones(3))], "must be \\[out, in\\]"),
        ([(np.ones((2, 3)), np.ones(2)), (np.ones((1, 3)), np.ones(1))], "takes 3 inputs but layer 0 gives 2"),
        ([(np.full((1, 3), np.nan), np.ones(1))], "non-finite"),
        ([(np.ones((1, 3)), np.ones(1))] * 17, "at most 16"),
        ([(np.ones((1, 5000)), np.ones(1))], "within 1..4096"),
        ([(np.ones((1, 3)) * 1e-3, np.ones(1) * 1e6)], "too large relative to the weights"),
    ],
)
def test_pack_rejects_bad_layers(tmp_path, layers, fragment):
    with pytest.raises(mel.InputError, match=fragment):
        mel.pack(layers, tmp_path / "m.melw", feature_names=[f"f{i}" for i in range(5000)][:3] if layers else ["a"])


def test_failed_pack_keeps_the_existing_file(pack_random, tmp_path):
    path, _ = pack_random([4, 3, 1])
    before = path.read_bytes()
    with pytest.raises(mel.InputError):
        mel.pack(random_layers([4, 3, 1]), path, feature_names=list("abcd"), metadata={"bad": object()})
    assert path.read_bytes() == before
    with pytest.raises(mel.MapleEdgeError, match="does not exist"):
        mel.pack(random_layers([4, 3, 1]), tmp_path / "no" / "dir" / "m.melw", feature_names=list("abcd"))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_weights_file_size(pack_random):
    path, _ = pack_random([64, 256, 256, 1])
    assert path.stat().st_size <= 100 * 1024


def test_versions():
    from importlib.metadata import version

    assert mel.__version__ == version("maple-edge-lite")
    assert mel._core.abi_version() == mel._core.ABI_VERSION == 1
    assert mel._core.FORMAT_VERSION == 6 and mel._core.QUANT_SCHEME_VERSION == 1
    assert mel._core.kernel_name() in {"scalar", "avx2", "avx512vnni", "neon"}


def test_exception_family():
    for cls in (mel.FormatError, mel.VersionError, mel.ChecksumError, mel.LimitError, mel.InputError):
        assert issubclass(cls, mel.MapleEdgeError) and issubclass(cls, ValueError)
    assert issubclass(mel.ModelNotFoundError, FileNotFoundError)
    assert issubclass(mel.MapleEdgePermissionError, PermissionError)


def test_repr(pack_random):
    path, _ = pack_random([6, 4, 1])
    assert "6→4→1" in repr(mel.Model.load(path))


def test_written_file_has_the_usual_mode(pack_random):
    import os

    umask = os.umask(0o022)
    try:
        path, _ = pack_random([4, 3, 1], name="mode.melw")
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644


def _umask_now():
    """The process umask read from /proc (reading it with os.umask would change it for a moment)."""
    import os

    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    pytest.skip("this kernel's /proc/<pid>/status has no Umask line (Linux < 4.7)")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o027, 0o640)])
def test_write_atomic_mode_is_what_open_would_give(tmp_path, monkeypatch, umask, mode):
    """The file's mode is 0666 minus the umask (the modes written out by hand), and write_atomic
    never calls os.umask: it is process-wide, so even a read-and-restore races other threads."""
    import os

    from maple_edge_lite.format import write_atomic

    old = os.umask(umask)
    try:
        def no_umask(*_):
            raise AssertionError("write_atomic touched the process umask")

        monkeypatch.setattr(os, "umask", no_umask)
        write_atomic(tmp_path / "f.bin", b"abc")
        monkeypatch.undo()
        assert os.umask(umask) == umask  # unchanged
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == mode
    assert (tmp_path / "f.bin").read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_write_atomic_from_threads_leaves_the_umask_alone(tmp_path):
    """Writers in eight threads while another thread watches the umask through /proc: it never
    moves, every file has its own content and the usual mode, and no temporary file is left."""
    import os
    import threading

    from maple_edge_lite.format import write_atomic

    old = os.umask(0o022)
    try:
        seen, stop = set(), threading.Event()

        def watch():
            while not stop.is_set():
                seen.add(_umask_now())

        def write(k):
            for i in range(40):
                write_atomic(tmp_path / f"w{k}.bin", f"{k}:{i}".encode())

        watcher = threading.Thread(target=watch)
        watcher.start()
        writers = [threading.Thread(target=write, args=(k,)) for k in range(8)]
        for t in writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        watcher.join()
    finally:
        os.umask(old)
    assert seen == {0o022}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"w{k}.bin" for k in range(8))
    for k in range(8):
        p = tmp_path / f"w{k}.bin"
        assert p.read_bytes() == f"{k}:39".encode() and p.stat().st_mode & 0o777 == 0o644


def test_write_atomic_failure_removes_its_temporary_file(tmp_path):
    from maple_edge_lite.format import write_atomic

    (tmp_path / "d").mkdir()  # the rename onto a directory fails after the data was written
    with pytest.raises(mel.MapleEdgeError, match="cannot write"):
        write_atomic(tmp_path / "d", b"x" * 100)
    assert [p.name for p in tmp_path.iterdir()] == ["d"] and list((tmp_path / "d").iterdir()) == []


def test_endless_or_huge_inputs_are_refused_early(tmp_path):
    import time

    t0 = time.perf_counter()
    with pytest.raises(mel.LimitError, match="320 MiB"):
        mel.Model.load("/dev/zero")
    assert time.perf_counter() - t0 < 30  # refused after 320 MiB at most, not after gigabytes
    big = tmp_path / "big.melw"
    with open(big, "wb") as f:
        f.truncate(400 << 20)  # sparse: no disk used
    with pytest.raises(mel.LimitError, match="larger than any"):
        mel.Model.load(big)
    with pytest.raises(mel.MapleEdgeIOError, match="is a directory") as ei:
        mel.Model.load(tmp_path)
    assert isinstance(ei.value, OSError)


def test_raw_output_overflow_is_an_error(tmp_path):
    mel.pack([(np.ones((1, 2)), np.zeros(1))], tmp_path / "m.melw", feature_names=["a", "b"], output="identity",
             output_scale=1e308)
    with pytest.raises(mel.NumericError, match="not finite"):
        mel.Model.load(tmp_path / "m.melw").predict_raw(np.full((1, 2), 3.0, np.float32))


def test_quantize_submodule_is_not_shadowed(pack_random):
    pack_random([4, 3, 1])  # imports maple_edge_lite.format and .quantize
    import maple_edge_lite.quantize as qmod

    assert mel.quantize is qmod and callable(qmod.quantize)
    assert mel.QuantizedMLP is qmod.QuantizedMLP
