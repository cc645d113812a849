"""The layer cost model in the core (format 3, LAYER_COST; docs/format.md): ``learn.layer_cost.pack``
writes it, ``Model.predict_layers`` / ``mel_model_predict_layers`` evaluate it layer by layer.

Oracles: ``LayerCostModel.predict`` / ``interval`` over ``network_features`` (numpy, float64, per
class, a different path from the core's per-layer sum) on the 33 zoo networks; hand-worked
tables; the layer-table module's own constants for the schema, kinds and columns. Then the corrupt
files (truncations, flipped bytes with and without fixed checksums: always a clear error, never a
crash), the rows file, and a C program built against the installed package."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.device import layers as L
from maple_edge_lite.device.layers import _table as T
from maple_edge_lite.learn import layer_cost as LC

HERE = Path(__file__).resolve().parent
HEADER = HERE.parent / "csrc" / "include" / "maple_edge_lite" / "maple_edge_lite.h"


def _random_model(seed: int, calibrated: bool = True, cache_bytes=None, align=None, chan=False) -> LC.LayerCostModel:
    """A random model; with ``cache_bytes``, with a spill term of 0.01-0.1 ms per MB beyond it;
    with ``align``, with an alignment term of 0.001-0.02 ms per unaligned MMAC per class; with
    ``chan`` (and ``align``), with a channel term of 0.1-1 ms per 1000 depthwise channels off 4."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 0.2, len(LC.FEATURE_NAMES)) * (rng.random(len(LC.FEATURE_NAMES)) < 0.8)
    spill = {} if cache_bytes is None else {"cache_bytes": cache_bytes, "w_spill": rng.uniform(0.01, 0.1)}
    if align is not None:
        spill.update(align=align, w_align=rng.uniform(0.001, 0.02, len(LC.ALIGN_CLASSES)))
        if chan:
            spill.update(w_chan=rng.uniform(0.1, 1.0))
    m = LC.LayerCostModel(rng.uniform(0.05, 1.0), w, **spill)
    m.noise = 0.07
    if calibrated:  # multipliers away from 1 and a posterior of full rank
        F = rng.uniform(0, 20, (9, m.n_features))
        m.calibrate(F, m.predict(F) * rng.uniform(0.7, 1.4, len(F)))
    return m


def _packed(tmp_path, model, name="lc.melw") -> mel.Model:
    LC.pack(model, tmp_path / name, metadata={"provenance": {"test": name}})
    return mel.Model.load(tmp_path / name)


def _layer(kind, macs=0, r=0, w=0, act=""):
    return {"kind": kind, "name": kind, "op_types": ["X"], "inputs": [[1, 8, 4, 4]], "output": [1, 8, 4, 4],
            "kernel": [1, 1], "stride": [1, 1], "dilation": [1, 1], "padding": [0, 0, 0, 0], "groups": 1,
            "activation": act, "fused_add": False, "se": False, "macs": macs, "params": 0,
            "bytes_read": r, "bytes_written": w}


def _table(rows):
    return L.LayerTable.from_dict({"schema": L.SCHEMA, "source": {"path": None, "sha256": None, "batch": 1},
                                   "kinds": list(L.KINDS), "layers": rows})


@pytest.fixture(scope="module")
def zoo_tables():
    pytest.importorskip("onnx")
    from maple_edge_lite.device.builders import zoo

    return {n: L.from_onnx(zoo.zoo_onnx(n)) for n in zoo.zoo_names()}


# --- against the numpy model ---------------------------------------------------------------------


@pytest.mark.parametrize("seed, calibrated, cache", [(0, True, None), (1, False, None), (2, True, None),
                                                    (3, True, 2 * 2**20), (4, False, 2 * 2**20), (5, True, 250_000)])
def test_core_equals_numpy_model_on_the_zoo(tmp_path, zoo_tables, seed, calibrated, cache):
    """With and without the spill term (a 2 MiB L2 as here, and 250 kB, where most layers spill)."""
    assert len(zoo_tables) == 33
    m = _random_model(seed, calibrated, cache)
    core = _packed(tmp_path, m)
    assert core.layer_spill == ((0.0, 0.0) if cache is None else (cache, m.w_spill))
    spilled = 0
    for name, t in zoo_tables.items():
        f = m.features(t)[None]
        spilled += cache is not None and f[0, -1] > 0
        want = np.array([m.predict(f)[0], *(v[0] for v in m.interval(f))])
        got = np.array(core.predict_layers(t.array()))
        np.testing.assert_allclose(got, want, rtol=2e-6, err_msg=name)
        assert got[1] < got[0] < got[2]
        assert core.predict_layers(t.array(), interval=False) == (got[0],)
    assert cache is None or spilled >= 20  # the term is exercised: most zoo networks move bytes beyond the cache


@pytest.mark.parametrize("seed, calibrated, cache", [(7, True, None), (8, False, 2 * 2**20), (9, True, 250_000)])
def test_core_equals_numpy_model_with_the_alignment_term(tmp_path, zoo_tables, seed, calibrated, cache):
    """Format 5 (scheme 3): the zoo (ShuffleNetV2 x1.0's 58/116 channels, MobileNetV3's and
    EfficientNet's squeeze-excite 1x1s are unaligned; the rest not) and the same network families
    rebuilt at unaligned widths, with and without the spill term."""
    from maple_edge_lite.device.builders import zoo
    from maple_edge_lite.device.builders._graph import Graph
    from maple_edge_lite.device.builders._zoo_misc import shufflenet_v2
    from maple_edge_lite.device.builders._zoo_mobile import mobilenet_v1

    m = _random_model(seed, calibrated, cache, align=8)
    core = _packed(tmp_path, m)
    data = (tmp_path / "lc.melw").read_bytes()
    assert struct.unpack_from("<H", data, 12)[0] == 5 and struct.unpack_from("<I", data, _section(data, 8)[0])[0] == 3
    assert core.layer_spill == ((0.0, 0.0) if cache is None else (cache, m.w_spill))
    a, min_cin, per_kind = core.layer_align
    assert (a, min_cin) == (8, 4) and len(per_kind) == len(L.KINDS)
    for k, v in zip(L.KINDS, per_kind):  # the class's coefficient for conv-like kinds, 0 for the others
        cls = next((c for c, kinds in LC.CLASSES if k in kinds), "other")
        want = m.w_align[LC.ALIGN_CLASSES.index(cls)] if cls in LC.ALIGN_CLASSES else 0.0
        assert v == pytest.approx(want, rel=1e-7), k
    assert sum(v > 0 for v in per_kind) == 5  # conv, deconv, pointwise, depthwise, grouped

    def built(fn):
        g = Graph(0)
        g.rename_output(fn(g))
        return L.from_onnx(g.serialize("n", [1, 3, 160, 160], [1, 1000], "", {}))

    tables = dict(zoo_tables)
    tables["v1_0.6"] = built(lambda g: mobilenet_v1(g, 0.6, 1000))
    tables["v1_0.35"] = built(lambda g: mobilenet_v1(g, 0.35, 1000))
    tables["shufflenet_x1.0_160"] = built(lambda g: shufflenet_v2(g, "1.0", 1000, 160))
    unaligned = 0
    for name, t in tables.items():
        f = m.features(t)[None]
        unaligned += f[0, len(LC.FEATURE_NAMES):len(LC.FEATURE_NAMES) + 4].sum() > 0
        want = np.array([m.predict(f)[0], *(v[0] for v in m.interval(f))])
        np.testing.assert_allclose(core.predict_layers(t.array()), want, rtol=2e-6, err_msg=name)
    assert unaligned >= 5
    # aligned networks: exactly what the model without the term predicts
    plain = LC.LayerCostModel(m.c0, m.w, cache_bytes=m.cache_bytes, w_spill=m.w_spill)
    plain.mult, plain.post, plain.noise = m.mult, m.post, m.noise
    core0 = _packed(tmp_path, plain, "plain.melw")
    for name in ("resnet50", "mobilenet_v1_0.25_128", "regnet_x_400mf"):
        assert not LC.unaligned_mmacs(zoo_tables[name]).any()
        assert core.predict_layers(zoo_tables[name].array()) == core0.predict_layers(zoo_tables[name].array())
    assert zoo.zoo_family("shufflenet_v2_x1.0") == "shufflenet_v2"


def test_core_equals_numpy_model_with_the_channel_term(tmp_path, zoo_tables):
    """Format 6 (scheme 4): the channel term in the depthwise kind's part, 0 for every other kind;
    the zoo and MobileNetV1s at widths whose depthwise channels are off 4 (0.6: 19, 38, 153, 307,
    614; 0.35: 11, 22, 89, 179, 358) predict as the numpy model does; a model whose channel term is
    0 is written as format 5."""
    from maple_edge_lite.device.builders._graph import Graph
    from maple_edge_lite.device.builders._zoo_mobile import mobilenet_v1

    m = _random_model(11, True, 2 * 2**20, align=8, chan=True)
    core = _packed(tmp_path, m)
    data = (tmp_path / "lc.melw").read_bytes()
    off = _section(data, 8)[0]
    assert struct.unpack_from("<H", data, 12)[0] == 6 and struct.unpack_from("<I", data, off)[0] == 4
    assert struct.unpack_from("<2I", data, off + 128) == (LC.DW_CHANNEL_ALIGN, 0)
    tables = dict(zoo_tables)
    for w in (0.6, 0.35):
        g = Graph(0)
        g.rename_output(mobilenet_v1(g, w, 1000))
        tables[f"v1_{w}"] = L.from_onnx(g.serialize("n", [1, 3, 160, 160], [1, 1000], "", {}))
    off4 = 0
    for name, t in tables.items():
        f = m.features(t)[None]
        off4 += f[0, len(LC.FEATURE_NAMES) + len(LC.ALIGN_CLASSES)] > 0
        want = np.array([m.predict(f)[0], *(v[0] for v in m.interval(f))])
        np.testing.assert_allclose(core.predict_layers(t.array()), want, rtol=2e-6, err_msg=name)
    assert off4 >= 3  # the two MobileNetV1s and ShuffleNetV2 x1.0 (58 channels)
    m0 = LC.LayerCostModel.from_dict(dict(m.to_dict(), w_chan=0.0))
    LC.pack(m0, tmp_path / "zero.melw")
    assert struct.unpack_from("<H", (tmp_path / "zero.melw").read_bytes(), 12)[0] == 5


def test_hand_worked_alignment_network(tmp_path):
    """Alignment 8; the conv class [0.01 ms, 0.002 ms/MMAC, 0, 0] and 0.003 ms per unaligned MMAC,
    the depthwise class [0.005, 0.004, 0, 0] and 0.02 per unaligned MMAC, pointwise [0, 0.001, 0,
    0] and 0 (fitted as nothing): a stem conv 3 -> 19 channels (10 MMACs; its output is off 8:
    0.01 + 0.02 + 0.03 = 0.06 ms), a stem conv 3 -> 16 (10 MMACs; 3 input channels are not counted:
    0.03 ms), a depthwise 38 -> 38 (2 MMACs: 0.005 + 0.008 + 0.04 = 0.053 ms), a depthwise 40 -> 40
    (2 MMACs: 0.013 ms), a pointwise 38 -> 64 (5 MMACs: 0.005 ms, no extra at 0), a conv 12 -> 16
    (1 MMAC: its 12 input channels, above 4 and off 8, count: 0.01 + 0.002 + 0.003 = 0.015 ms), a
    gemm 19 -> 1000 (not conv-like: its class's 0). c0 0.5 ms, uncalibrated."""
    w = np.zeros((len(LC.CLASSES), 4))
    names = [c for c, _ in LC.CLASSES]
    w[names.index("conv")] = [0.01, 0.002, 0.0, 0.0]
    w[names.index("depthwise")] = [0.005, 0.004, 0.0, 0.0]
    w[names.index("pointwise")] = [0.0, 0.001, 0.0, 0.0]
    m = LC.LayerCostModel(0.5, w.ravel(), align=8, w_align=[0.003, 0.0, 0.02, 0.0])
    m.noise = 0.05
    core = _packed(tmp_path, m)

    def row(kind, cin, cout, mmacs):
        A = _table([_layer(kind, int(mmacs * 1e6))]).array()
        A[0, L.ARRAY_COLUMNS.index("cin")], A[0, L.ARRAY_COLUMNS.index("cout")] = cin, cout
        return A

    rows = [row("conv", 3, 19, 10), row("conv", 3, 16, 10), row("depthwise", 38, 38, 2), row("depthwise", 40, 40, 2),
            row("pointwise", 38, 64, 5), row("conv", 12, 16, 1), row("gemm", 19, 1000, 0.019)]
    A = np.concatenate(rows)
    ms = 0.5 + 0.06 + 0.03 + 0.053 + 0.013 + 0.005 + 0.015
    assert core.predict_layers(A)[0] == pytest.approx(ms, rel=1e-6)
    np.testing.assert_allclose(LC.unaligned_mmacs(_Rows(A)), [10 + 1, 5, 2, 0])
    assert m.predict(m.features(_Rows(A))[None])[0] == pytest.approx(ms, rel=1e-12)
    # alignment 2 (packed as such): every count above but 19 is even, so only the 3 -> 19 stem
    m2 = LC.LayerCostModel(0.5, w.ravel(), align=2, w_align=[0.003, 0.0, 0.02, 0.0])
    assert _packed(tmp_path, m2, "a2.melw").predict_layers(A)[0] == pytest.approx(ms - 0.003 - 0.04, rel=1e-6)
    # a model whose term is all 0 is written without it (format 3) and predicts as the plain model
    m0 = LC.LayerCostModel(0.5, w.ravel(), align=8, w_align=[0.0] * 4)
    c0 = _packed(tmp_path, m0, "a0.melw")
    assert struct.unpack_from("<H", (tmp_path / "a0.melw").read_bytes(), 12)[0] == 3
    assert c0.layer_align == (0, 0, (0.0,) * len(L.KINDS))
    assert c0.predict_layers(A)[0] == pytest.approx(ms - 0.03 - 0.04 - 0.003, rel=1e-6)


class _Rows:
    def __init__(self, a):
        self._a = a

    def array(self):
        return self._a


@pytest.mark.parametrize("cache", [None, 5_000_000])
def test_core_equals_numpy_model_on_hand_built_tables(tmp_path, cache):
    m = _random_model(5, cache_bytes=cache)
    core = _packed(tmp_path, m)
    rng = np.random.default_rng(6)
    for n in (0, 1, 2, 7, 60, 300):
        rows = [_layer(str(rng.choice(L.KINDS)), int(rng.integers(0, 10**9)), int(rng.integers(0, 10**7)),
                       int(rng.integers(0, 10**7)), str(rng.choice(L.ACTIVATIONS))) for _ in range(n)]
        t = _table(rows)
        f = m.features(t)[None]
        want = [m.predict(f)[0], *(v[0] for v in m.interval(f))]
        np.testing.assert_allclose(core.predict_layers(t.array()), want, rtol=2e-6)


def test_hand_worked_network(tmp_path):
    """c0 0.5 ms; conv class [0.01 ms, 0.002 ms/MMAC, 0.1 ms/MB read, 0.2 ms/MB written],
    fused_exp class [0.003, 0, 0.05, 0.07], activation class [0.001, 0, 0.01, 0.02], eltwise
    [0.004, 0, 0.02, 0.03]; uncalibrated, so the multipliers are 1 and share one scale of sd 0.3
    (the posterior is the prior)."""
    w = np.zeros((len(LC.CLASSES), 4))
    names = [c for c, _ in LC.CLASSES]
    w[names.index("conv")] = [0.01, 0.002, 0.1, 0.2]
    w[names.index("fused_exp")] = [0.003, 0.0, 0.05, 0.07]
    w[names.index("activation")] = [0.001, 0.0, 0.01, 0.02]
    w[names.index("eltwise")] = [0.004, 0.0, 0.02, 0.03]
    m = LC.LayerCostModel(0.5, w.ravel())
    m.noise = 0.05
    core = _packed(tmp_path, m)
    # conv 10 MMACs, 2 MB in, 1 MB out, fused SiLU: 0.01 + 0.02 + 0.2 + 0.2 = 0.43 ms, and its
    # fused_exp pass over the 1 MB output: 0.003 + 0.05 + 0.07 = 0.123 ms; an add reading 2 MB and
    # writing 1 MB: 0.004 + 0.04 + 0.03 = 0.074 ms; a depthwise (a class at 0 here) with a fused
    # hardswish writing 0.5 MB: its activation pass, 0.001 + 0.005 + 0.01 = 0.016 ms; a conv with a
    # fused ReLU: no pass.
    silu = _layer("conv", 10_000_000, 2_000_000, 1_000_000, "swish")
    add = _layer("add", 0, 2_000_000, 1_000_000)
    hsw = _layer("depthwise", 0, 1_000_000, 500_000, "hardswish")
    ms = 0.5 + 0.43 + 0.123 + 0.074 + 0.016
    # one shared scale (sd 0.3) over every part: relative sd sqrt(0.3^2 + 0.05^2)
    z = NormalDist().inv_cdf(0.95)
    w90 = z * np.sqrt(0.3**2 + 0.05**2)
    got = core.predict_layers(_table([silu, add, hsw]).array())
    np.testing.assert_allclose(got, [ms, ms * np.exp(-w90), ms * np.exp(w90)], rtol=1e-6)
    relu = dict(silu, activation="relu")
    assert core.predict_layers(_table([relu, add, hsw]).array())[0] == pytest.approx(ms - 0.123, rel=1e-6)
    # no layers: the per-inference cost alone
    assert core.predict_layers(np.zeros((0, len(L.ARRAY_COLUMNS))))[0] == pytest.approx(0.5, rel=1e-7)


def test_hand_worked_spill_network(tmp_path):
    """Three layers against a 2,000,000-byte cache at 0.04 ms per MB beyond it, the class costs of
    test_hand_worked_network: a conv (10 MMACs, 2 MB read, 1 MB written: 0.43 ms, and 3 - 2 = 1 MB
    beyond the cache: 0.04 ms), an add (2 MB + 1 MB: 0.074 ms + 0.04 ms) and a ReLU pass over 0.2
    + 0.1 MB (0.004 + 0.004 + 0.003 = 0.011 ms; inside the cache: no spill; one layer does not give
    back what another spills). Uncalibrated: one shared scale of sd 0.3 over every part, the spill
    part included, so the interval's relative sd is sqrt(0.3^2 + 0.05^2) as before."""
    w = np.zeros((len(LC.CLASSES), 4))
    names = [c for c, _ in LC.CLASSES]
    w[names.index("conv")] = [0.01, 0.002, 0.1, 0.2]
    w[names.index("eltwise")] = [0.004, 0.0, 0.02, 0.03]
    m = LC.LayerCostModel(0.5, w.ravel(), cache_bytes=2_000_000, w_spill=0.04)
    m.noise = 0.05
    core = _packed(tmp_path, m)
    data = (tmp_path / "lc.melw").read_bytes()
    off, _ = _section(data, 8)
    assert struct.unpack_from("<H", data, 12)[0] == 4 and struct.unpack_from("<I", data, off)[0] == 2
    assert core.layer_spill == (2_000_000.0, 0.04) and core.metadata["cache_bytes"] == 2_000_000
    conv = _layer("conv", 10_000_000, 2_000_000, 1_000_000)
    add = _layer("add", 0, 2_000_000, 1_000_000)
    relu = _layer("relu", 0, 200_000, 100_000)
    ms = 0.5 + (0.43 + 0.04) + (0.074 + 0.04) + 0.011
    w90 = NormalDist().inv_cdf(0.95) * np.sqrt(0.3**2 + 0.05**2)
    got = core.predict_layers(_table([conv, add, relu]).array())
    np.testing.assert_allclose(got, [ms, ms * np.exp(-w90), ms * np.exp(w90)], rtol=1e-6)
    # exactly at the cache: nothing spills; one byte more: 1e-6 MB
    at = _layer("add", 0, 1_000_000, 1_000_000)
    assert core.predict_layers(_table([at]).array())[0] == pytest.approx(0.5 + 0.004 + 0.02 + 0.03, rel=1e-7)
    # calibrated 1.25x (every multiplier, the spill part's too): 1.25x the milliseconds
    m.mult[:] = 1.25
    core = _packed(tmp_path, m, "c.melw")
    assert core.predict_layers(_table([conv, add, relu]).array())[0] == pytest.approx(1.25 * ms, rel=1e-6)


def test_old_format_3_file_predicts_as_before():
    """tests/data/layer_cost_format3.melw was packed by the package as of bebb56e (format 3, before
    the spill term) and its .json holds the float32 bits that core predicted for four tables:
    this core loads it as a model without the spill term and returns the same bits."""
    import json

    core = mel.Model.load(HERE / "data" / "layer_cost_format3.melw")
    ref = json.loads((HERE / "data" / "layer_cost_format3.json").read_text())
    assert core.kind == "layer_cost" and core.layer_spill == (0.0, 0.0) and ref["columns"] == list(L.ARRAY_COLUMNS)
    assert struct.unpack_from("<H", (HERE / "data" / "layer_cost_format3.melw").read_bytes(), 12)[0] == 3
    for case in ref["cases"]:
        rows = np.array(case["rows"], np.float32).reshape(-1, len(L.ARRAY_COLUMNS))
        got = np.array(core.predict_layers(rows), np.float32).view(np.uint32)
        assert got.tolist() == case["ms_lo_hi_f32_bits"]


def test_model_names_its_kinds_activations_schema_and_columns(tmp_path):
    core = _packed(tmp_path, _random_model(0))
    assert core.kind == "layer_cost" and core.layer_kinds == L.KINDS and core.layer_activations == L.ACTIVATIONS
    assert core.feature_names == L.ARRAY_COLUMNS and core.input_dim == len(L.ARRAY_COLUMNS)
    assert core.layer_table_schema == L.table_schema_number() == mel._core.LAYER_TABLE_SCHEMA
    assert mel._core.LAYER_COLUMNS == len(L.ARRAY_COLUMNS)
    assert core.interval_level == pytest.approx(0.9) and core.layer_dims == ()
    meta = core.metadata
    assert meta["model_kind"] == "layer_cost" and meta["classes"] == [c for c, _ in LC.CLASSES]
    assert meta["layer_table_schema"] == L.SCHEMA and meta["provenance"] == {"test": "lc.melw"}
    # the header documents the row layout: its column list is ARRAY_COLUMNS, in order
    text = HEADER.read_text()
    block = text[text.index("in this order (LayerTable.array() in Python):"):text.index("The schema number changes")]
    cols = re.findall(r"\b(\d+) ([a-z_]+)", re.sub(r"\([^)]*\)", "", block.split(":", 1)[1]))
    assert [int(i) for i, _ in cols] == list(range(len(L.ARRAY_COLUMNS)))
    assert tuple(c for _, c in cols) == L.ARRAY_COLUMNS


# --- errors --------------------------------------------------------------------------------------


def test_bad_rows_are_clear_errors(tmp_path, pack_random):
    core = _packed(tmp_path, _random_model(0))
    A = _table([_layer("conv", 1000, 10, 10), _layer("add", 0, 10, 10)]).array()
    col = L.ARRAY_COLUMNS.index

    def bad(i, c, v):
        B = A.copy()
        B[i, col(c)] = v
        return B

    cases = [
        (bad(1, "macs", np.nan), mel.InputError, r"layer 1, column 1 \('macs'\) is nan: every column must be a finite"),
        (bad(0, "bytes_read", -1), mel.InputError, r"layer 0, column 3 \('bytes_read'\) is -1"),
        (bad(0, "cout", np.inf), mel.InputError, r"column 13 \('cout'\) is inf"),
        (bad(0, "kind", 30), mel.InputError, r"\('kind'\) is 30.*not the index of one of the model's 30 layer kinds"),
        (bad(1, "kind", 1.5), mel.InputError, r"layer 1, column 0 \('kind'\) is 1.5"),
        (bad(0, "activation", 8), mel.InputError, r"\('activation'\) is 8.*8 activations"),
        (A[:, :21], mel.InputError, r"the rows have 21 columns but the model's layer-table schema has 22"),
        (A[0], mel.InputError, r"2-d array"),
    ]
    for rows, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            core.predict_layers(rows)
    with pytest.raises(mel.VersionError, match="rows are in layer-table schema 2 but the model was packed for schema 1"):
        core.predict_layers(A, table_schema=2)
    # the other entry points know which model they hold
    mlp = mel.Model.load(pack_random((4, 8, 1), name="mlp.melw")[0])
    assert mlp.kind == "mlp"
    with pytest.raises(mel.UnsupportedError, match="not a layer cost model"):
        mlp.predict_layers(A)
    with pytest.raises(mel.UnsupportedError, match="not a layer cost model"):
        mlp.layer_kinds
    x = np.zeros((1, len(L.ARRAY_COLUMNS)), np.float32)
    for call in (core.predict, core.predict_raw, core.predict_interval):
        with pytest.raises(mel.UnsupportedError, match="this is a layer cost model"):
            call(x)
    with pytest.raises(mel.UnsupportedError, match="this is a layer cost model"):
        core.predict_archs(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])


def test_negative_prediction_is_a_numeric_error(tmp_path):
    m = LC.LayerCostModel(0.0, np.zeros(len(LC.FEATURE_NAMES)))
    core = _packed(tmp_path, m)
    with pytest.raises(mel.NumericError, match="predicts 0.000000 ms, not a finite positive latency"):
        core.predict_layers(np.zeros((0, len(L.ARRAY_COLUMNS))))


def test_pack_refuses_features_that_are_not_a_per_layer_sum(tmp_path, monkeypatch):
    m = _random_model(0)
    real = LC.network_features
    monkeypatch.setattr(LC, "network_features", lambda t, *terms: np.sqrt(real(t, *terms)))
    with pytest.raises(mel.InputError, match="no longer a per-layer sum"):
        LC.pack(m, tmp_path / "x.melw")
    assert not (tmp_path / "x.melw").exists()


# --- corrupt files -------------------------------------------------------------------------------


def _fix_crcs(b: bytearray) -> bytes:
    struct.pack_into("<I", b, 40, zlib.crc32(bytes(b[64:])))
    struct.pack_into("<I", b, 60, zlib.crc32(bytes(b[:60])))
    return bytes(b)


def _section(data: bytes, kind: int):
    n = struct.unpack_from("<I", data, 20)[0]
    for i in range(n):
        k, _, off, size = struct.unpack_from("<IIQQ", data, 64 + 24 * i)
        if k == kind:
            return off, size
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def lc_bytes(tmp_path_factory):
    p = tmp_path_factory.mktemp("lc") / "m.melw"
    return LC.pack(_random_model(3), p)


@pytest.fixture(scope="module")
def spill_bytes(tmp_path_factory):
    p = tmp_path_factory.mktemp("lc") / "s.melw"
    return LC.pack(_random_model(3, cache_bytes=2 * 2**20), p)


@pytest.fixture(scope="module")
def align_bytes(tmp_path_factory):
    p = tmp_path_factory.mktemp("lc") / "a.melw"
    return LC.pack(_random_model(3, align=8), p)


@pytest.fixture(scope="module")
def chan_bytes(tmp_path_factory):
    p = tmp_path_factory.mktemp("lc") / "c.melw"
    return LC.pack(_random_model(3, align=8, chan=True), p)


def _edit(data, at, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, at, value)
    return _fix_crcs(b)


def test_layer_cost_file_layout_and_version(lc_bytes):
    assert struct.unpack_from("<H", lc_bytes, 12)[0] == 3
    assert sorted(struct.unpack_from("<I", lc_bytes, 64 + 24 * i)[0] for i in range(3)) == [4, 5, 8]


NK, NA, P = len(L.KINDS), len(L.ACTIVATIONS), len(LC.CLASSES) + 1  # kinds, activations, parts
IDX = 88 + (4 * (NK + NA) + 7) // 8 * 8  # where the f32 tables start in the section

CORRUPT = [  # (name, edit of (data, LAYER_COST offset), exception, message)
    ("format_2", lambda d, o: _edit(d, 12, "<H", 2), mel.FormatError, "section count 3 is out of range"),
    ("scheme_5", lambda d, o: _edit(d, o, "<I", 5), mel.VersionError, "arithmetic scheme 5, unknown to this reader"),
    ("scheme_3_in_format_3", lambda d, o: _edit(d, o, "<I", 3), mel.FormatError,
     "arithmetic scheme 3 (the alignment term) in a format-3 file"),
    ("scheme_2_in_format_3", lambda d, o: _edit(d, o, "<I", 2), mel.FormatError,
     "arithmetic scheme 2 (the spill term) in a format-3 file"),
    ("schema_0", lambda d, o: _edit(d, o + 4, "<I", 0), mel.FormatError, "layer-table schema is 0"),
    ("columns_18", lambda d, o: _edit(d, o + 8, "<I", 18), mel.FormatError, "column of activation is 18, beyond the 18"),
    ("columns_21", lambda d, o: _edit(d, o + 8, "<I", 21), mel.FormatError,
     "FEATURES lists 22 names but the LAYER_COST section has 21 columns"),
    ("columns_huge", lambda d, o: _edit(d, o + 8, "<I", 5000), mel.LimitError, "5000 columns"),
    ("kinds_0", lambda d, o: _edit(d, o + 12, "<I", 0), mel.FormatError, "0 kinds"),
    ("kinds_huge", lambda d, o: _edit(d, o + 12, "<I", 0xFFFFFFFF), mel.FormatError, "4294967295 kinds"),
    ("parts_1", lambda d, o: _edit(d, o + 20, "<I", 1), mel.FormatError, "1 parts"),
    ("rank_0", lambda d, o: _edit(d, o + 24, "<I", 0), mel.FormatError, f"rank 0 is not in 1..{P}"),
    ("reserved", lambda d, o: _edit(d, o + 28, "<I", 1), mel.FormatError, "reserved field is not zero"),
    ("col_kind", lambda d, o: _edit(d, o + 32, "<I", 22), mel.FormatError, "column of kind is 22"),
    ("c0_nan", lambda d, o: _edit(d, o + 56, "<d", float("nan")), mel.FormatError, "c0 is not a finite number"),
    ("c0_negative", lambda d, o: _edit(d, o + 56, "<d", -1.0), mel.FormatError, "c0 is not a finite number"),
    ("level_1", lambda d, o: _edit(d, o + 64, "<d", 1.0), mel.FormatError, "level is not in"),
    ("z_inf", lambda d, o: _edit(d, o + 72, "<d", float("inf")), mel.FormatError, "z is not a finite"),
    ("noise_negative", lambda d, o: _edit(d, o + 80, "<d", -0.1), mel.FormatError, "noise is not a finite"),
    ("kind_part_0", lambda d, o: _edit(d, o + 88, "<I", 0), mel.FormatError, "kind 0 names part 0"),
    ("kind_part_P", lambda d, o: _edit(d, o + 88 + 4 * 5, "<I", P), mel.FormatError, f"kind 5 names part {P}"),
    ("act_part_P", lambda d, o: _edit(d, o + 88 + 4 * (NK + 1), "<I", P), mel.FormatError, f"activation 1 names part {P}"),
    ("coef_nan", lambda d, o: _edit(d, o + IDX, "<f", float("nan")), mel.FormatError, "kind coefficient value 0 is not finite"),
    ("coef_inf", lambda d, o: _edit(d, o + IDX + 4 * (4 * NK + 10), "<f", float("inf")), mel.FormatError,
     "activation pass coefficient value 10 is not finite"),
    ("mult_nan", lambda d, o: _edit(d, o + IDX + 4 * (4 * NK + 4 * NA), "<f", float("nan")), mel.FormatError,
     "multiplier value 0 is not finite"),
    ("post_nan", lambda d, o: _edit(d, o + IDX + 4 * (4 * NK + 4 * NA + P), "<f", float("nan")), mel.FormatError,
     "posterior factor value 0 is not finite"),
]


@pytest.mark.parametrize("name, edit, exc, msg", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_corrupt_layer_cost_sections(lc_bytes, name, edit, exc, msg):
    off, _ = _section(lc_bytes, 8)
    with pytest.raises(exc, match=re.escape(msg)):
        mel.Model.from_bytes(edit(lc_bytes, off))


SIDX = 112 + (4 * (NK + NA) + 7) // 8 * 8  # where the f32 tables start in a scheme-2 section
CORRUPT_SPILL = [  # the format-4 (scheme 2) file's own fields
    ("format_3", lambda d, o: _edit(d, 12, "<H", 3), mel.FormatError, "arithmetic scheme 2 (the spill term) in a format-3"),
    ("format_7", lambda d, o: _edit(d, 12, "<H", 7), mel.VersionError, "format version 7 is not supported"),
    # read in scheme 1's layout, the spill part is kind 0's and the reserved 0 kind 1's part
    ("scheme_1", lambda d, o: _edit(d, o, "<I", 1), mel.FormatError, "kind 1 names part 0"),
    ("scheme_3", lambda d, o: _edit(d, o, "<I", 3), mel.FormatError, "arithmetic scheme 3 (the alignment term) in a format-4"),
    ("scheme_5", lambda d, o: _edit(d, o, "<I", 5), mel.VersionError, "arithmetic scheme 5, unknown"),
    ("spill_part_0", lambda d, o: _edit(d, o + 88, "<I", 0), mel.FormatError, "spill term names part 0"),
    ("spill_part_P+1", lambda d, o: _edit(d, o + 88, "<I", P + 1), mel.FormatError, f"spill term names part {P + 1}"),
    ("spill_reserved", lambda d, o: _edit(d, o + 92, "<I", 7), mel.FormatError, "reserved field is not zero"),
    ("threshold_nan", lambda d, o: _edit(d, o + 96, "<d", float("nan")), mel.FormatError, "spill threshold is not a finite"),
    ("threshold_inf", lambda d, o: _edit(d, o + 96, "<d", float("inf")), mel.FormatError, "spill threshold is not a finite"),
    ("threshold_negative", lambda d, o: _edit(d, o + 96, "<d", -1.0), mel.FormatError, "spill threshold is not a finite"),
    ("spill_w_nan", lambda d, o: _edit(d, o + 104, "<d", float("nan")), mel.FormatError, "spill coefficient is not a finite"),
    ("spill_w_inf", lambda d, o: _edit(d, o + 104, "<d", float("-inf")), mel.FormatError, "spill coefficient is not a finite"),
    ("spill_w_negative", lambda d, o: _edit(d, o + 104, "<d", -0.5), mel.FormatError, "spill coefficient is not a finite"),
    ("kind_part_0", lambda d, o: _edit(d, o + 112, "<I", 0), mel.FormatError, "kind 0 names part 0"),
    ("coef_nan", lambda d, o: _edit(d, o + SIDX, "<f", float("nan")), mel.FormatError, "kind coefficient value 0 is not"),
    ("post_nan", lambda d, o: _edit(d, o + SIDX + 4 * (4 * NK + 4 * NA + P + 1), "<f", float("nan")), mel.FormatError,
     "posterior factor value 0 is not finite"),
]


@pytest.mark.parametrize("name, edit, exc, msg", CORRUPT_SPILL, ids=[c[0] for c in CORRUPT_SPILL])
def test_corrupt_spill_sections(spill_bytes, name, edit, exc, msg):
    off, _ = _section(spill_bytes, 8)
    assert struct.unpack_from("<H", spill_bytes, 12)[0] == 4 and struct.unpack_from("<I", spill_bytes, off)[0] == 2
    with pytest.raises(exc, match=re.escape(msg)):
        mel.Model.from_bytes(edit(spill_bytes, off))
    b = bytearray(spill_bytes)  # a scheme-2 section cut inside its 112-byte head
    body = bytes(b[off:off + 100])
    from maple_edge_lite.format import _container

    table = [struct.unpack_from("<IIQQ", spill_bytes, 64 + 24 * i) for i in range(3)]
    secs = [(k, body if k == 8 else spill_bytes[o:o + s]) for k, _, o, s in table]
    with pytest.raises(mel.FormatError, match="is too short"):
        mel.Model.from_bytes(_container(secs, 4))


AIDX = 128 + (4 * (NK + NA) + 7) // 8 * 8  # where the f32 tables start in a scheme-3 section
CORRUPT_ALIGN = [  # the format-5 (scheme 3) file's own fields; this one has no spill term (part 0)
    ("format_4", lambda d, o: _edit(d, 12, "<H", 4), mel.FormatError, "scheme 3 (the alignment term) in a format-4"),
    ("format_7", lambda d, o: _edit(d, 12, "<H", 7), mel.VersionError, "format version 7 is not supported"),
    ("scheme_5", lambda d, o: _edit(d, o, "<I", 5), mel.VersionError, "arithmetic scheme 5, unknown"),
    ("spill_part_P", lambda d, o: _edit(d, o + 88, "<I", P), mel.FormatError, f"spill term names part {P} (must be 0"),
    ("spill_w_without_part", lambda d, o: _edit(d, o + 104, "<d", 0.5), mel.FormatError,
     "no spill term (part 0) but a nonzero spill threshold or coefficient"),
    ("align_0", lambda d, o: _edit(d, o + 112, "<I", 0), mel.FormatError, "channel alignment is 0 (must be 2..1024)"),
    ("align_1", lambda d, o: _edit(d, o + 112, "<I", 1), mel.FormatError, "channel alignment is 1"),
    ("align_huge", lambda d, o: _edit(d, o + 112, "<I", 4096), mel.FormatError, "channel alignment is 4096"),
    ("col_cin", lambda d, o: _edit(d, o + 120, "<I", 22), mel.FormatError, "column of cin or cout is beyond"),
    ("col_cout", lambda d, o: _edit(d, o + 124, "<I", 99), mel.FormatError, "column of cin or cout is beyond"),
    ("kind_part_0", lambda d, o: _edit(d, o + 128, "<I", 0), mel.FormatError, "kind 0 names part 0"),
    ("align_w_nan", lambda d, o: _edit(d, o + AIDX + 4 * (4 * NK + 4 * NA), "<f", float("nan")), mel.FormatError,
     "alignment coefficient value 0 is not finite"),
    ("align_w_negative", lambda d, o: _edit(d, o + AIDX + 4 * (4 * NK + 4 * NA + 2), "<f", -0.5), mel.FormatError,
     "alignment coefficient 2 is negative"),
    ("mult_nan", lambda d, o: _edit(d, o + AIDX + 4 * (5 * NK + 4 * NA), "<f", float("nan")), mel.FormatError,
     "multiplier value 0 is not finite"),
]


def _refused(data, version, scheme, edit, exc, msg):
    """A file of ``version`` whose LAYER_COST section is ``scheme``, edited: ``exc`` naming ``msg``."""
    off, _ = _section(data, 8)
    assert struct.unpack_from("<H", data, 12)[0] == version and struct.unpack_from("<I", data, off)[0] == scheme
    assert struct.unpack_from("<4I", data, off + 112) == (8, 4, L.ARRAY_COLUMNS.index("cin"), L.ARRAY_COLUMNS.index("cout"))
    with pytest.raises(exc, match=re.escape(msg)):
        mel.Model.from_bytes(edit(data, off))


@pytest.mark.parametrize("name, edit, exc, msg", CORRUPT_ALIGN, ids=[c[0] for c in CORRUPT_ALIGN])
def test_corrupt_align_sections(align_bytes, name, edit, exc, msg):
    _refused(align_bytes, 5, 3, edit, exc, msg)


CIDX = 136 + (4 * (NK + NA) + 7) // 8 * 8  # where the f32 tables start in a scheme-4 section
CORRUPT_CHAN = [  # the format-6 (scheme 4) file's own fields
    ("format_5", lambda d, o: _edit(d, 12, "<H", 5), mel.FormatError, "scheme 4 (the channel term) in a format-5"),
    ("format_7", lambda d, o: _edit(d, 12, "<H", 7), mel.VersionError, "format version 7 is not supported"),
    ("chan_align_0", lambda d, o: _edit(d, o + 128, "<I", 0), mel.FormatError,
     "channel term's alignment is 0 (must be 2..1024)"),
    ("chan_align_huge", lambda d, o: _edit(d, o + 128, "<I", 4096), mel.FormatError, "channel term's alignment is 4096"),
    ("chan_reserved", lambda d, o: _edit(d, o + 132, "<I", 1), mel.FormatError, "reserved field is not zero"),
    ("chan_w_nan", lambda d, o: _edit(d, o + CIDX + 4 * (5 * NK + 4 * NA), "<f", float("nan")), mel.FormatError,
     "channel coefficient value 0 is not finite"),
    ("chan_w_negative", lambda d, o: _edit(d, o + CIDX + 4 * (5 * NK + 4 * NA + 2), "<f", -0.5), mel.FormatError,
     "channel coefficient 2 is negative"),
    ("mult_nan", lambda d, o: _edit(d, o + CIDX + 4 * (6 * NK + 4 * NA), "<f", float("nan")), mel.FormatError,
     "multiplier value 0 is not finite"),
]


@pytest.mark.parametrize("name, edit, exc, msg", CORRUPT_CHAN, ids=[c[0] for c in CORRUPT_CHAN])
def test_corrupt_channel_sections(chan_bytes, name, edit, exc, msg):
    _refused(chan_bytes, 6, 4, edit, exc, msg)


def test_corrupt_structure(lc_bytes, pack_random, tmp_path):
    off, size = _section(lc_bytes, 8)
    # an MLP section beside LAYER_COST
    mlp = pack_random((4, 8, 1), name="mlp.melw")[0].read_bytes()
    o_in, s_in = _section(mlp, 1)
    table = [struct.unpack_from("<IIQQ", lc_bytes, 64 + 24 * i) for i in range(3)]
    secs = [(k, lc_bytes[o:o + s]) for k, _, o, s in table] + [(1, mlp[o_in:o_in + s_in])]
    from maple_edge_lite.format import _container

    with pytest.raises(mel.FormatError, match="has no INPUT, LAYER, OUTPUT, ENCODER or INTERVAL section"):
        mel.Model.from_bytes(_container(secs, 3))
    with pytest.raises(mel.FormatError, match="more than one LAYER_COST section"):
        mel.Model.from_bytes(_container(secs[:3] + [secs[0]], 3))
    with pytest.raises(mel.FormatError, match="missing FEATURES section"):
        mel.Model.from_bytes(_container([s for s in secs[:3] if s[0] != 4] + [(9, b"x", 1)], 3))
    # a name list edited: a repeated kind, trailing bytes, a short section
    body = secs[0][1]
    dup = body.replace(b"\x09\0\0\0pointwise", b"\x09\0\0\0conv\0\0\0\0\0", 1)
    assert dup != body
    with pytest.raises(mel.FormatError):  # the name "conv\0..." is not valid UTF-8 (NUL): refused
        mel.Model.from_bytes(_container([(8, dup)] + secs[1:3], 3))
    dup = body.replace(b"\x09\0\0\0pointwise", b"\x04\0\0\0conv\x05\0\0\0pwise", 1)
    with pytest.raises(mel.FormatError, match="kind name 'conv' appears twice"):
        mel.Model.from_bytes(_container([(8, dup)] + secs[1:3], 3))
    with pytest.raises(mel.FormatError, match="has trailing bytes"):
        mel.Model.from_bytes(_container([(8, body + b"\0" * 8)] + secs[1:3], 3))
    with pytest.raises(mel.FormatError, match="ends inside its tables"):
        mel.Model.from_bytes(_container([(8, body[:300])] + secs[1:3], 3))
    with pytest.raises(mel.FormatError, match="FEATURES lists 21 names but the LAYER_COST section has 22 columns"):
        feat = struct.pack("<I", 21) + b"".join(struct.pack("<I", len(c)) + c.encode() for c in L.ARRAY_COLUMNS[:21])
        mel.Model.from_bytes(_container([secs[0], (4, feat), secs[2]], 3))


@pytest.mark.parametrize("which", ["format_3", "format_4_spill", "format_5_align", "format_6_chan"])
def test_every_truncation_and_bit_flip_is_a_clear_error(lc_bytes, spill_bytes, align_bytes, chan_bytes, which):
    """Every truncation; a flipped bit in every byte of the LAYER_COST section, with the checksums
    left stale (ChecksumError) and fixed (then the field checks: a FormatError, or a model that
    still loads and predicts a finite positive number or refuses with a MapleEdgeError)."""
    lc_bytes = {"format_3": lc_bytes, "format_4_spill": spill_bytes, "format_5_align": align_bytes,
                "format_6_chan": chan_bytes}[which]
    for n in range(len(lc_bytes)):
        with pytest.raises(mel.FormatError):
            mel.Model.from_bytes(lc_bytes[:n])
    off, size = _section(lc_bytes, 8)
    A = _table([_layer(k, 10**6, 10**5, 10**5, a) for k in L.KINDS for a in L.ACTIVATIONS]).array()
    outcomes = {"checksum": 0, "format": 0, "loads": 0}
    for i in range(off, off + size):
        b = bytearray(lc_bytes)
        b[i] ^= 1 << (i % 8)
        with pytest.raises(mel.ChecksumError):
            mel.Model.from_bytes(bytes(b))
        outcomes["checksum"] += 1
        try:
            m = mel.Model.from_bytes(_fix_crcs(b))
        except mel.FormatError:
            outcomes["format"] += 1
            continue
        outcomes["loads"] += 1
        try:
            ms, lo, hi = m.predict_layers(A)
            assert 0 < lo <= ms <= hi < np.inf
        except (mel.InputError, mel.NumericError, mel.VersionError):
            pass
    assert outcomes["format"] > 100 and outcomes["loads"] > 100, outcomes


# --- the rows file -------------------------------------------------------------------------------


def test_rows_file_round_trip_and_corruption(tmp_path, zoo_tables):
    t = zoo_tables["resnet18"]
    p = t.write_rows(tmp_path / "r.bin")
    data = p.read_bytes()
    assert data[:8] == b"\x89MELR\r\n\x1a" and len(data) == 32 + 4 * len(t) * len(L.ARRAY_COLUMNS)
    rows = L.read_rows(p)
    assert rows.dtype == np.float32 and np.array_equal(rows, t.array().astype(np.float32))
    core = _packed(tmp_path, _random_model(0))
    assert core.predict_layers(rows) == core.predict_layers(t.array())

    def check(b, exc, msg):
        q = tmp_path / "bad.bin"
        q.write_bytes(bytes(b))
        with pytest.raises(exc, match=re.escape(msg)) as e:
            L.read_rows(q)
        assert str(e.value).startswith(str(q))

    def head(b):
        b = bytearray(b)
        struct.pack_into("<I", b, 28, zlib.crc32(bytes(b[:28])))
        return b

    check(data[:31], mel.FormatError, "shorter than the 32-byte header")
    check(data[:-4], mel.FormatError, "(truncated: re-copy the file)")
    check(data + b"\0\0\0\0", mel.FormatError, "(trailing bytes)")
    check(b"x" + data[1:], mel.FormatError, "bad magic")
    flipped = bytearray(data)
    flipped[100] ^= 4
    check(flipped, mel.ChecksumError, "the rows are damaged")
    flipped = bytearray(data)
    flipped[17] ^= 4
    check(flipped, mel.ChecksumError, "header CRC-32 mismatch")
    b = bytearray(data)
    struct.pack_into("<H", b, 12, 2)
    check(head(b), mel.VersionError, "layer rows file version 2 is not supported")
    b = bytearray(data)
    struct.pack_into(">I", b, 8, 0x01020304)
    check(head(b), mel.FormatError, "big-endian")
    b = bytearray(data)
    struct.pack_into("<H", b, 14, 2)
    check(head(b), mel.VersionError, "rows of layer-table schema 2 (22 columns); this version reads schema 1")
    with pytest.raises(mel.ModelNotFoundError):
        L.read_rows(tmp_path / "missing.bin")


# --- from C --------------------------------------------------------------------------------------


def _c_program(tmp_path) -> Path:
    cc = None
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            cc = [name]
            break
    if cc is None:
        pytest.skip("no C compiler (cc, gcc, clang) on PATH")
    r = subprocess.run([sys.executable, "-m", "maple_edge_lite", "--cflags", "--libs"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    exe = tmp_path / "layers"
    cmd = cc + ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", str(HERE / "c" / "layers.c"), "-o",
                str(exe)] + shlex.split(r.stdout) + ["-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{shlex.join(cmd)}\n{r.stderr}"
    return exe


def test_c_program_predicts_from_host_made_rows_files(tmp_path, zoo_tables, pack_random):
    """tests/c/layers.c, built against the installed header and library, reads rows files written
    here (as a host would) and a device's layer model: the same numbers as Model.predict_layers
    (bit for bit: one C path) and as the numpy model (float32 tolerance)."""
    exe = _c_program(tmp_path)
    m = _random_model(7, cache_bytes=2 * 2**20)  # with the spill term (format 4)
    LC.pack(m, tmp_path / "dev.melw")
    core = mel.Model.load(tmp_path / "dev.melw")
    names = ["resnet50", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1.0"]
    files = [zoo_tables[n].write_rows(tmp_path / f"{n}.bin") for n in names]
    r = subprocess.run([str(exe), str(tmp_path / "dev.melw"), *map(str, files)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "kinds 30 activations 8 schema 1 level 0.9"
    for line, n, f in zip(lines[1:], names, files):
        ms, lo, hi, layers, path = line.split()
        assert path == str(f) and int(layers) == len(zoo_tables[n])
        got = np.array([ms, lo, hi], dtype=np.float64).astype(np.float32)
        want = np.array(core.predict_layers(zoo_tables[n].array()), np.float32)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        fe = m.features(zoo_tables[n])[None]
        np.testing.assert_allclose(got, [m.predict(fe)[0], *(v[0] for v in m.interval(fe))], rtol=2e-6)
    # errors, each with the status name and the detail
    bad = bytearray(files[0].read_bytes())
    bad[200] ^= 1
    (tmp_path / "bad.bin").write_bytes(bytes(bad))
    nan = T.rows_bytes(np.where(np.arange(len(L.ARRAY_COLUMNS)) == 1, np.nan, zoo_tables["resnet18"].array()))
    (tmp_path / "nan.bin").write_bytes(nan)
    pack_random((4, 8, 1), name="mlp.melw")
    for args, msg in [
        ((tmp_path / "dev.melw", tmp_path / "bad.bin"), "rows: MEL_ERR_CHECKSUM: layer rows file CRC-32 mismatch"),
        ((tmp_path / "dev.melw", tmp_path / "nan.bin"), "predict: MEL_ERR_INVALID_ARGUMENT: layer 0, column 1 ('macs') is nan"),
        ((tmp_path / "mlp.melw", files[0]), "predict: MEL_ERR_UNSUPPORTED: this model is an MLP"),
        ((tmp_path / "dev.melw", tmp_path / "missing.bin"), "cannot read"),
    ]:
        r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and msg in r.stderr, r.stderr


# --- the CLI's per-layer milliseconds --------------------------------------------------------------


def test_cli_layers_per_layer_milliseconds(tmp_path, zoo_tables, capsys, pack_random):
    """``layers FILE --model X.melw``: one more column, the milliseconds each layer costs, which
    with the per-inference cost add up to the core's prediction of the network (the spill and
    alignment terms are per layer too); the same from a ``.json`` table made before; --json adds
    a ``prediction`` member. A cell model, a missing file or --runtime without --predict: clear
    errors, exit codes 1 and 2."""
    from maple_edge_lite.cli import main
    from maple_edge_lite.device.builders import zoo

    m = _random_model(21, True, 2 * 2**20, align=8)
    core = _packed(tmp_path, m, "dev.melw")
    onnx_file = tmp_path / "shufflenet.onnx"
    onnx_file.write_bytes(zoo.zoo_onnx("shufflenet_v2_x0.5"))
    t = zoo_tables["shufflenet_v2_x0.5"]
    ms, lo, hi = core.predict_layers(t.array())
    c0, per = m.layer_ms(t)
    assert main(["layers", str(onnx_file), "--model", str(tmp_path / "dev.melw"), "-o", str(tmp_path / "t.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:8] == ["#", "kind", "output", "MACs", "params", "bytes", "r+w", "fused"]
    assert out[0].split()[8] == "ms"
    got = [float(line.split()[7]) for line in out[1:1 + len(t)]]
    np.testing.assert_allclose(got, per, rtol=1e-3, atol=1e-4)  # printed to 4 decimals
    assert out[-2].startswith(f"predicted {ms:.4f} ms [{lo:.4f}, {hi:.4f}]") and f"{c0:.4f} ms per inference" in out[-2]
    assert main(["layers", str(tmp_path / "t.json"), "--model", str(tmp_path / "dev.melw"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert L.LayerTable.from_dict({k: v for k, v in doc.items() if k != "prediction"}).rows == t.rows
    p = doc["prediction"]
    assert len(p["layer_ms"]) == len(t) and p["latency_ms"] == pytest.approx(ms, abs=1e-6)
    assert (p["lo_ms"], p["hi_ms"]) == (pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6))
    assert p["per_inference_ms"] + sum(p["layer_ms"]) == pytest.approx(ms, rel=1e-5)
    np.testing.assert_allclose(p["layer_ms"], per, rtol=1e-4, atol=1e-6)
    assert p["interval_level"] == core.interval_level == 0.9
    LC.pack(m, tmp_path / "dev80.melw", level=0.8)  # the level is the model's
    assert main(["layers", str(tmp_path / "t.json"), "--model", str(tmp_path / "dev80.melw"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prediction"]["interval_level"] == pytest.approx(0.8)
    pack_random((4, 8, 1), name="mlp.melw")
    assert main(["layers", str(onnx_file), "--model", str(tmp_path / "mlp.melw")]) == 1
    err = capsys.readouterr().err
    assert "not a layer cost model" in err and len(err.strip().splitlines()) == 1
    assert main(["layers", str(onnx_file), "--model", str(tmp_path / "nope.melw")]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["layers", str(onnx_file), "--runtime", "openvino"]) == 2
    assert "--predict" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        main(["layers", str(onnx_file), "--predict", "--model", str(tmp_path / "dev.melw")])
    assert ei.value.code == 2
    # a quantized network: the table alone is fine, a prediction is refused as predict --onnx refuses it
    from onnx import TensorProto, helper, numpy_helper

    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 8, 4, 4])],
                          [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                           numpy_helper.from_array(np.array(0, np.int8), "z")])
    q = tmp_path / "q.onnx"
    q.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert main(["layers", str(q)]) == 0
    capsys.readouterr()
    assert main(["layers", str(q), "--model", str(tmp_path / "dev.melw")]) == 1
    assert "quantized (int8) network" in capsys.readouterr().err
