"""ONNX network builders (maple_edge_lite.device.builders): NAS-Bench-201 and FBNet networks and the
MAPLE-Edge op suite. Expectations (node counts, MACs, parameters) are computed here from the
architecture strings and the papers' tables, independently of the builders' code, and checked
against the C++ encoders' published-figure features where those apply."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.device import builders
from maple_edge_lite import encode as enc

NB_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from) in string order
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_POOL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"


def nb_arch(ops):
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def nb_ops(arch):
    return [op for op, _ in re.findall(r"([a-z0-9_]+)~(\d)", arch)]


EDGE_CASES = [
    BEST,
    nb_arch(["nor_conv_3x3"] * 6),  # the largest network of the space
    ALL_NONE,  # every cell outputs zeros
    nb_arch(["none", "none", "none", "skip_connect", "none", "none"]),  # cell = identity: no node at all
    nb_arch(["nor_conv_3x3", "none", "none", "none", "none", "nor_conv_3x3"]),  # node 1 dead, node 2 zero
    nb_arch(["nor_conv_1x1", "nor_conv_3x3", "none", "none", "none", "avg_pool_3x3"]),  # node 1 dead
    nb_arch(["none", "none", "avg_pool_3x3", "none", "nor_conv_1x1", "skip_connect"]),  # node 1 zero, read twice
    nb_arch(["skip_connect"] * 6),
]
_rng = random.Random(201)
RANDOM_ARCHS = [nb_arch([_rng.choice(NB_OPS) for _ in range(6)]) for _ in range(6)]


def expected_nb201(arch, N=5, C=16, res=32, classes=10):
    """(node counts, MACs) of the network the builder documents, derived from the string alone:
    an edge is built when it is not `none` and its output node has a path of non-`none` edges to
    node 3; a node read by a built edge (or node 3) without built inputs is one Mul by zero."""
    ops = nb_ops(arch)
    live = lambda e: ops[e] != "none"  # noqa: E731
    to3 = {3: True, 2: live(5), 1: live(4) or (live(2) and live(5))}
    built = [e for e, (to, _) in enumerate(EDGES) if live(e) and to3[to]]
    read = {3} | {EDGES[e][1] for e in built}
    inputs = {j: sum(EDGES[e][0] == j for e in built) for j in (1, 2, 3)}
    zeros = sum(1 for j in (1, 2, 3) if j in read and inputs[j] == 0)
    adds = sum(max(0, k - 1) for k in inputs.values())
    n3 = sum(ops[e] == "nor_conv_3x3" for e in built)
    n1 = sum(ops[e] == "nor_conv_1x1" for e in built)
    pools = sum(ops[e] == "avg_pool_3x3" for e in built)
    cells = 3 * N
    counts = {
        "Conv": 1 + cells * (n3 + n1) + 2 * 3,  # stem, cell convs, 3 per reduction block
        "BatchNormalization": 1 + cells * (n3 + n1) + 2 * 2 + 1,  # stem, cells, blocks, lastact
        "Relu": cells * (n3 + n1) + 2 * 2 + 1,
        "AveragePool": cells * pools + 2,
        "Add": cells * adds + 2,
        "Mul": cells * zeros,
        "GlobalAveragePool": 1,
        "Flatten": 1,
        "Gemm": 1,
    }
    macs = 27 * C * res * res + 4 * C * classes + classes
    for s in range(3):
        c, side = C << s, res >> s
        macs += N * c * c * side * side * (9 * n3 + n1)
        if s < 2:
            cout, side_out = 2 * c, side // 2
            macs += (9 * c * cout + 9 * cout * cout + c * cout) * side_out * side_out
    return {k: v for k, v in counts.items() if v}, macs


def float_params(onnx_mod, model_bytes):
    """Trainable parameters: float initializers but BN running statistics and the zero scalars."""
    m = onnx_mod.load_from_string(model_bytes)
    return sum(int(np.prod(t.dims)) for t in m.graph.initializer
               if t.data_type == onnx_mod.TensorProto.FLOAT
               and not t.name.endswith((".running_mean", ".running_var", ".zero")))


def feature(space, arch, name):
    return float(enc.encode(space, [arch])[0][enc.feature_names(space).index(name)])


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


def run(ort, model_bytes, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    return sess, sess.run(["output"], {"input": x})[0]


# --- package hygiene ------------------------------------------------------------------------


def test_importing_the_package_and_builders_does_not_import_onnx():
    code = ("import sys, maple_edge_lite, maple_edge_lite.device.builders as b; b.OpSpec; b.default_suite(); "
            "b.nb201_onnx; b.fbnet_onnx; b.save; "
            "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(__file__))
    assert out.stdout.strip() == "[]"


def test_missing_onnx_is_unsupported_and_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    for build in (lambda: builders.nb201_onnx(BEST), lambda: builders.op_onnx(builders.default_suite()[0]),
                  lambda: builders.fbnet_onnx("|".join(["skip"] * 22))):
        with pytest.raises(mel.UnsupportedError, match=re.escape("pip install 'maple-edge-lite[onnx]'")):
            build()


# --- NAS-Bench-201: argument checking (no onnx needed: strings are checked first) --------------


@pytest.mark.parametrize("arch, match", [
    ("", "empty string"),
    (BEST.replace("conv_3x3~0", "conv_5x5~0", 1), "unknown op 'nor_conv_5x5'"),
    (BEST.replace("~0|+", "~1|+", 1), "edge 0 .*input node index '1'"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "ends after node 2"),
    (" " + BEST, "position 0"),
    ("k3_e1", "invalid nb201 architecture"),
])
def test_invalid_nb201_string_is_input_error_naming_the_fault(arch, match):
    with pytest.raises(mel.InputError, match=match) as e:
        builders.nb201_onnx(arch)
    assert isinstance(e.value, ValueError)
    assert not str(e.value).startswith("archs[0]")  # one string in, no batch index in the message


@pytest.mark.parametrize("kw, match", [
    ({"resolution": 30}, "multiple of 4"),
    ({"resolution": 0}, "resolution must be >= 4"),
    ({"channels": 0}, "channels must be >= 1"),
    ({"cells": 2.0}, "cells must be an integer"),
    ({"num_classes": -1}, "num_classes"),
    ({"batch": True}, "batch must be an integer"),
    ({"seed": -1}, "seed"),
])
def test_invalid_nb201_arguments_are_input_errors(kw, match):
    with pytest.raises(mel.InputError, match=match):
        builders.nb201_onnx(BEST, **kw)


def test_non_string_arch_is_input_error():
    with pytest.raises(mel.InputError, match="architecture string"):
        builders.nb201_onnx(None)


# --- NAS-Bench-201: the graphs --------------------------------------------------------------


@pytest.mark.parametrize("arch", EDGE_CASES + RANDOM_ARCHS)
def test_nb201_graph_matches_the_string(onnx, arch):
    m = builders.nb201_onnx(arch)
    onnx.checker.check_model(onnx.load_from_string(m), full_check=True)
    counts, macs = expected_nb201(arch)
    assert builders.count_ops(m) == counts
    assert builders.count_macs(m) == macs
    # Where the builder executes every non-none edge, its graph is NAS-Bench-201's network
    # exactly: the encoder's flops_32 and params are NAS-Bench-201's published figures.
    built_all = (counts.get("Mul", 0) == 0
                 and feature("nb201", arch, "ops_live") == feature("nb201", arch, "ops_nonzero"))
    if built_all:
        assert builders.count_macs(m) / 1e6 == pytest.approx(feature("nb201", arch, "flops_32"), rel=1e-6)
        assert float_params(onnx, m) / 1e6 == pytest.approx(feature("nb201", arch, "params"), rel=1e-6)


def test_nb201_extremes_are_the_published_flops(onnx):
    # NAS-Bench-201 CIFAR-10: 7.78305 MFLOPs (no conv in the cells) to 220.11969 (all 3x3 convs).
    assert builders.count_macs(builders.nb201_onnx(ALL_NONE)) == 7_783_050
    assert builders.count_macs(builders.nb201_onnx(nb_arch(["nor_conv_3x3"] * 6))) == 220_119_690


def test_nb201_runs_with_the_declared_shapes(onnx, ort):
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    sess, y = run(ort, builders.nb201_onnx(BEST, batch=2), x)
    assert [i.name for i in sess.get_inputs()] == ["input"] and sess.get_inputs()[0].shape == [2, 3, 32, 32]
    assert y.shape == (2, 10) and y.dtype == np.float32 and np.isfinite(y).all()
    assert not np.allclose(y[0], y[1])  # the output depends on the input


def test_nb201_224_and_other_sizes(onnx, ort):
    # At 224x224 the stem runs at full resolution, as the encoder's flops_224 counts it.
    m = builders.nb201_onnx(ALL_POOL, resolution=224)
    assert builders.count_macs(m) / 1e6 == pytest.approx(feature("nb201", ALL_POOL, "flops_224"), rel=1e-6)
    _, y = run(ort, m, np.ones((1, 3, 224, 224), np.float32))
    assert y.shape == (1, 10) and np.isfinite(y).all()
    m = builders.nb201_onnx(BEST, resolution=64, channels=8, cells=1, num_classes=100, batch=3)
    onnx.checker.check_model(onnx.load_from_string(m), full_check=True)
    _, y = run(ort, m, np.ones((3, 3, 64, 64), np.float32))
    assert y.shape == (3, 100)
    assert builders.count_macs(m) == expected_nb201(BEST, N=1, C=8, res=64, classes=100)[1]


def test_all_none_cells_give_a_valid_network_whose_output_ignores_the_input(onnx, ort):
    # NAS-Bench-201 semantics: a cell with no path to its output node outputs zeros, so the
    # logits are the same for every image; the network still runs (Mul by zero, not a constant).
    m = builders.nb201_onnx(ALL_NONE)
    onnx.checker.check_model(onnx.load_from_string(m), full_check=True)
    rng = np.random.default_rng(1)
    sess, a = run(ort, m, rng.standard_normal((1, 3, 32, 32)).astype(np.float32))
    b = sess.run(["output"], {"input": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)})[0]
    assert a.shape == (1, 10) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_seeded_models_are_byte_identical(onnx):
    assert builders.nb201_onnx(BEST, seed=3) == builders.nb201_onnx(BEST, seed=3)
    assert builders.nb201_onnx(BEST, seed=3) != builders.nb201_onnx(BEST, seed=4)
    spec = builders.default_suite()[4]
    assert builders.op_onnx(spec, seed=1) == builders.op_onnx(spec, seed=1)
    assert builders.op_onnx(spec, seed=1) != builders.op_onnx(spec, seed=2)


def test_model_metadata_names_what_was_built(onnx):
    m = onnx.load_from_string(builders.nb201_onnx(BEST, seed=7))
    props = {p.key: p.value for p in m.metadata_props}
    assert props["maple_edge_lite.arch"] == BEST and props["maple_edge_lite.seed"] == "7"
    assert props["maple_edge_lite.builder_version"] == str(builders.BUILDER_VERSION)
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]


# --- save -------------------------------------------------------------------------------------


def test_save_writes_the_bytes(onnx, tmp_path):
    m = builders.nb201_onnx(ALL_NONE)
    p = builders.save(m, tmp_path / "net.onnx")
    assert p.read_bytes() == m
    assert builders.count_ops(p.read_bytes()) == builders.count_ops(m)


def test_save_to_a_missing_directory_or_under_a_file_is_a_clear_error(tmp_path):
    with pytest.raises(mel.MapleEdgeError, match="does not exist"):
        builders.save(b"x", tmp_path / "missing" / "net.onnx")
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(mel.MapleEdgeError, match=r"cannot write .*file/net\.onnx.*[Nn]ot a directory"):
        builders.save(b"x", tmp_path / "file" / "net.onnx")
    with pytest.raises(mel.MapleEdgeError, match="cannot write"):
        builders.save(b"x", tmp_path)  # a directory
    with pytest.raises(mel.InputError, match="bytes"):
        builders.save("not bytes", tmp_path / "net.onnx")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories")
def test_save_into_a_read_only_directory_is_a_permission_error(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(mel.MapleEdgePermissionError, match="permission denied"):
            builders.save(b"x", d / "net.onnx")
    finally:
        d.chmod(0o755)


# --- the op suite -----------------------------------------------------------------------------

SUITE_NAMES = (
    ["stem@16x32x32"]
    + [f"{op}@16x32x32" for op in NB_OPS] + ["reduction@16x32x32"]
    + [f"{op}@32x16x16" for op in NB_OPS] + ["reduction@32x16x16"]
    + [f"{op}@64x8x8" for op in NB_OPS] + ["head@64x8x8"]
)
CHAIN_NODE = {"none": "Mul", "skip_connect": "Identity", "avg_pool_3x3": "AveragePool"}


def test_default_suite_is_deterministic_unique_and_covers_the_network():
    suite = builders.default_suite()
    assert [s.name for s in suite] == SUITE_NAMES
    assert suite == builders.default_suite()
    assert len({s.name for s in suite}) == len(suite)
    assert all(s.repeat == (8 if s.op in NB_OPS else 1) for s in suite)
    assert [s.repeat for s in builders.default_suite(repeat=3) if s.op in NB_OPS] == [3] * 15


def test_every_suite_model_is_valid_and_runs(onnx, ort):
    for spec in builders.default_suite():
        m = builders.op_onnx(spec)
        onnx.checker.check_model(onnx.load_from_string(m), full_check=True)
        cin = 3 if spec.op == "stem" else spec.channels
        x = np.random.default_rng(0).standard_normal((1, cin, spec.hw, spec.hw)).astype(np.float32)
        _, y = run(ort, m, x)
        want = {"reduction": (1, 2 * spec.channels, spec.hw // 2, spec.hw // 2), "head": (1, 10)}
        assert y.shape == want.get(spec.op, (1, spec.channels, spec.hw, spec.hw)), spec.name
        assert np.isfinite(y).all(), spec.name
        counts = builders.count_ops(m)
        if spec.op in CHAIN_NODE:
            assert counts == {CHAIN_NODE[spec.op]: spec.repeat}, spec.name
        elif spec.op.startswith("nor_conv"):
            k = int(spec.op[-1])
            assert counts == {"Relu": 8, "Conv": 8, "BatchNormalization": 8}, spec.name
            assert builders.count_macs(m) == 8 * k * k * spec.channels ** 2 * spec.hw ** 2
        elif spec.op == "reduction":
            assert counts == {"Relu": 2, "Conv": 3, "BatchNormalization": 2, "AveragePool": 1, "Add": 1}
        if spec.op == "none":
            assert not y.any()


def test_suite_ops_compute_what_nb201_computes(onnx, ort):
    # avg_pool_3x3 excludes the padding (count_include_pad=False): a constant stays constant.
    _, y = run(ort, builders.op_onnx(builders.OpSpec.of("avg_pool_3x3", 2, 4, 1)), np.full((1, 2, 4, 4), 3, np.float32))
    np.testing.assert_allclose(y, 3.0, rtol=1e-6)
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    _, y = run(ort, builders.op_onnx(builders.OpSpec.of("skip_connect", 2, 4)), x)
    np.testing.assert_array_equal(y.ravel(), np.arange(32))


@pytest.mark.parametrize("spec, match", [
    (builders.OpSpec("x", "conv_5x5", 16, 8, 1), "unknown op 'conv_5x5'"),
    (builders.OpSpec("x", "stem", 16, 32, 4), "repeat must be 1"),
    (builders.OpSpec("x", "reduction", 16, 31, 1), "must be even"),
    (builders.OpSpec("x", "nor_conv_3x3", 0, 8, 8), "channels must be >= 1"),
    (builders.OpSpec("x", "nor_conv_3x3", 16, 8, 0), "repeat must be >= 1"),
    ("nor_conv_3x3@16x32x32", "expected an OpSpec"),
])
def test_invalid_op_spec_is_input_error(spec, match):
    with pytest.raises(mel.InputError, match=match):
        builders.op_onnx(spec)


# --- FBNet ------------------------------------------------------------------------------------

FB_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
# FBNet (Wu et al. 2019), Table 1: (layers, channels, stride of the first layer) after the stem.
FB_STAGES = ((1, 16, 1), (4, 24, 2), (4, 32, 2), (4, 64, 2), (4, 112, 1), (4, 184, 2), (1, 352, 1))
_frng = random.Random(2019)
FB_ARCHS = ["|".join(["k5_e6"] * 22), "|".join(["skip"] * 22), "|".join(["k3_e1_g2"] * 22),
            "|".join(_frng.choice(FB_OPS) for _ in range(22))]


def expected_fbnet(arch):
    ops = arch.split("|")
    layers, cin = [], 16  # (C_in, C_out, stride) of the 22 layers; the stem has 16 channels
    for n, c, s in FB_STAGES:
        for j in range(n):
            layers.append((cin, c, s if j == 0 else 1))
            cin = c
    blocks = [(op, cin, cout, s) for op, (cin, cout, s) in zip(ops, layers)]
    convs = sum(3 if op != "skip" else int(s != 1 or cin != cout) for op, cin, cout, s in blocks)
    relus = sum(2 if op != "skip" else int(s != 1 or cin != cout) for op, cin, cout, s in blocks)
    g2 = sum(op.endswith("_g2") for op in ops)
    counts = {"Conv": 2 + convs, "BatchNormalization": 2 + convs, "Relu": 2 + relus,
              "Add": sum(op != "skip" and s == 1 and cin == cout for op, cin, cout, s in blocks),
              "Reshape": 2 * g2, "Transpose": g2, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1}
    return {k: v for k, v in counts.items() if v}


def test_fbnet_graphs_match_the_string_and_the_encoder(onnx):
    for arch in FB_ARCHS:
        m = builders.fbnet_onnx(arch)
        onnx.checker.check_model(onnx.load_from_string(m), full_check=True)
        assert builders.count_ops(m) == expected_fbnet(arch), arch
        assert builders.count_macs(m) / 1e6 == pytest.approx(feature("fbnet", arch, "flops_224"), rel=1e-6), arch
        assert float_params(onnx, m) / 1e6 == pytest.approx(feature("fbnet", arch, "params"), rel=1e-6), arch


def test_fbnet_runs_at_224(onnx, ort):
    m = builders.fbnet_onnx(FB_ARCHS[3], num_classes=100)
    _, y = run(ort, m, np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    assert y.shape == (1, 100) and np.isfinite(y).all()
    assert builders.fbnet_onnx(FB_ARCHS[2], seed=5) == builders.fbnet_onnx(FB_ARCHS[2], seed=5)


@pytest.mark.parametrize("arch, kw, match", [
    ("|".join(["k3_e1"] * 21), {}, "expected 22 layers"),
    ("|".join(["k3_e1"] * 21 + ["k7_e1"]), {}, "layer 21: unknown op 'k7_e1'"),
    ("|".join(["skip"] * 22), {"resolution": 100}, "multiple of 32"),
])
def test_invalid_fbnet_input_is_input_error(arch, kw, match):
    with pytest.raises(mel.InputError, match=match):
        builders.fbnet_onnx(arch, **kw)
