"""The zoo of published CNNs (maple_edge_lite.device.builders.zoo).

Oracles the builders did not produce: the published MACs and parameter counts (torchvision's
weights metadata, the TF-slim checkpoint tables, the MobileNet paper), node counts worked out by
hand from the reference definitions, numpy formulas for the new graph layers, hand-computed
MACs for ``count_macs`` on grouped and depthwise convolutions, and the layer table's own counter.

MAC convention: convolutions (k·k·C_in/groups per output element, squeeze-and-excitation convs
included) and linear layers (plus one per output for the bias); nothing for BN, activations,
pooling, additions, products. Every figure lands inside the rounding interval of its published
figure (torchvision: GFLOPS, which it counts as MACs, to 3 decimals; the TF-slim MobileNetV2 table
truncates to whole millions; the MobileNetV1 figures round), which is within 3% except where one
published digit is itself more than 3% (MobileNetV2 0.35 at 96 px: 11 M).
Parameter convention: torchvision's figures count every trainable tensor (BN scale and shift too,
not the running statistics) and match exactly; TF-slim's MobileNetV2 table counts no batch-norm
parameters and 1001 classes, its MobileNetV1 table counts them (1001 classes): within 1%."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.device import builders

from _util import count_params

NAMES = builders.zoo_names()
TINY = np.float32(1.1754944e-38)  # smallest normal float32


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime")


def session(ort, model_bytes, optimize=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


# --- the registry -----------------------------------------------------------------------------


def test_zoo_has_at_least_30_variants_of_8_families_with_stable_unique_names():
    assert len(NAMES) >= 30 and len(set(NAMES)) == len(NAMES)
    families = {builders.zoo_family(n) for n in NAMES}
    assert families == {"resnet", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3", "efficientnet", "squeezenet",
                        "shufflenet_v2", "mnasnet", "regnet"}
    for n in ("resnet18", "resnet34", "resnet50", "mobilenet_v2_1.0_224", "mobilenet_v2_1.4_224",
              "mobilenet_v2_0.35_96", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
              "efficientnet_b1", "squeezenet1_1", "shufflenet_v2_x0.5", "shufflenet_v2_x1.0", "shufflenet_v2_x1.5",
              "mnasnet1.0", "mnasnet0.5", "regnet_x_400mf", "regnet_x_800mf", "mobilenet_v1_0.25_128"):
        assert n in NAMES, n
    v2 = [builders.zoo_info(n) for n in NAMES if builders.zoo_family(n) == "mobilenet_v2"]
    assert {i["resolution"] for i in v2} == {96, 128, 160, 192, 224}
    assert {i["name"].split("_")[2] for i in v2} == {"0.35", "0.5", "0.75", "1.0", "1.4"}
    assert builders.zoo_info("efficientnet_b1")["resolution"] == 240
    assert builders.zoo_names() == NAMES and builders.zoo_names() is not NAMES  # a new list each call


def test_info_names_its_source_and_conventions():
    i = builders.zoo_info("resnet18")
    assert i["macs"] == 1_814_000_000 and i["params"] == 11_689_512 and i["num_classes"] == 1000
    assert "ResNet18_Weights" in i["source"] and i["reference"] == "torchvision.models.resnet18"
    i = builders.zoo_info("mobilenet_v2_1.4_224")
    assert (i["macs"], i["params"], i["num_classes"]) == (582_000_000, 6_060_000, 1001)
    assert i["params_convention"] == "no_batchnorm" and i["macs_rounding"] == "floor" and "TF-slim" in i["source"]
    i["macs"] = 0  # a new dict: the registry is not changed through it
    assert builders.zoo_info("mobilenet_v2_1.4_224")["macs"] == 582_000_000


@pytest.mark.parametrize("call", [builders.zoo_onnx, builders.zoo_info, builders.zoo_family])
def test_unknown_name_is_input_error_listing_the_names_with_a_suggestion(call):
    with pytest.raises(mel.InputError, match=r"unknown zoo network 'resnet-18': did you mean 'resnet18'\?") as e:
        call("resnet-18")
    assert isinstance(e.value, ValueError) and "mobilenet_v3_small" in str(e.value) and "regnet_x_800mf" in str(e.value)
    with pytest.raises(mel.InputError, match="known: resnet18, resnet34"):
        call("alexnet")
    with pytest.raises(mel.InputError, match="must be a string"):
        call(18)


@pytest.mark.parametrize("kw, match", [({"batch": 0}, "batch must be >= 1"), ({"num_classes": True}, "integer"),
                                       ({"seed": -1}, "non-negative"), ({"num_classes": 2.5}, "integer")])
def test_bad_arguments_are_input_errors(kw, match):
    with pytest.raises(mel.InputError, match=match):
        builders.zoo_onnx("squeezenet1_1", **kw)


# --- published figures ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_macs_and_params_agree_with_the_published_figures(onnx, name):
    info = builders.zoo_info(name)
    model_bytes = builders.zoo_onnx(name, num_classes=info["num_classes"])
    macs = builders.count_macs(model_bytes)
    params = count_params(onnx, onnx.load_from_string(model_bytes), info["params_convention"])
    pub, unit = info["macs"], info["macs_unit"]
    rel = macs / pub - 1
    msg = f"{name}: {macs / 1e6:.2f} M MACs vs published {pub / 1e6:g} M ({rel:+.2%}); {info['source']}"
    if info["macs_rounding"] == "floor":
        assert pub <= macs < pub + unit, msg
    else:
        assert abs(macs - pub) <= unit / 2, msg
    assert abs(rel) <= max(0.03, unit / pub), msg
    prel = params / info["params"] - 1
    pmsg = f"{name}: {params} parameters vs published {info['params']} ({prel:+.2%}); {info['source']}"
    assert abs(prel) <= 0.01, pmsg
    if info["params_unit"] == 1:  # an exact published count (torchvision's num_params)
        assert params == info["params"], pmsg


@pytest.mark.parametrize("name", NAMES)
def test_the_layer_table_counts_the_same_macs_and_params(onnx, name):
    """``device.layers.from_onnx`` (an independent counter, written for the layer tables) agrees
    with ``count_macs`` up to the linear layers' bias, which it does not count as MACs, and with
    this file's parameter count."""
    from maple_edge_lite.device.layers import from_onnx

    model_bytes = builders.zoo_onnx(name)
    m = onnx.load_from_string(model_bytes)
    weights = {t.name: list(t.dims) for t in m.graph.initializer}
    biases = sum(weights[n.input[1]][0] for n in m.graph.node if n.op_type == "Gemm")
    totals = from_onnx(model_bytes).totals()
    assert totals["macs"] == builders.count_macs(model_bytes) - biases
    assert totals["params"] == count_params(onnx, m, "trainable")


def test_mobilenet_v2_params_with_both_conventions():
    """torchvision counts 3,504,872 for MobileNetV2 1.0 (1000 classes, BN scale and shift); the
    TF-slim table's 3.47 M is the same network without the batch norms' two values per channel
    and with a 1001st class (1280 weights and a bias)."""
    onnx = pytest.importorskip("onnx")
    m = onnx.load_from_string(builders.zoo_onnx("mobilenet_v2_1.0_224"))
    assert count_params(onnx, m, "trainable") == 3_504_872
    bn_channels = sum(int(np.prod([d for d in t.dims])) for t in m.graph.initializer if t.name.endswith("running_var"))
    assert count_params(onnx, m, "no_batchnorm") == 3_504_872 - 2 * bn_channels
    m1001 = onnx.load_from_string(builders.zoo_onnx("mobilenet_v2_1.0_224", num_classes=1001))
    assert count_params(onnx, m1001, "no_batchnorm") == 3_504_872 - 2 * bn_channels + 1281
    assert round(count_params(onnx, m1001, "no_batchnorm") / 1e6, 2) == 3.47


def test_regnet_stage_widths_and_depths():
    """torchvision's ``BlockParams.from_init_params`` worked by hand (bottleneck ratio 1, group width 16):
    RegNetX-400MF w = 24 + 24.48 j, k = round(log_2.54(w / 24)) -> widths 24, 64, 152, 392 for 1, 2,
    7, 12 blocks, made divisible by 16 -> 32, 64, 160, 400; RegNetX-800MF -> 64, 128, 288, 672 for
    1, 3, 7, 5 blocks."""
    from maple_edge_lite.device.builders._zoo_resnet import REGNETX, regnet_stages

    assert regnet_stages(*REGNETX["400mf"]) == [(32, 1, 16), (64, 2, 16), (160, 7, 16), (400, 12, 16)]
    assert regnet_stages(*REGNETX["800mf"]) == [(64, 1, 16), (128, 3, 16), (288, 7, 16), (672, 5, 16)]


def test_make_divisible_matches_torchvision_examples():
    from maple_edge_lite.device.builders._zoo_common import make_divisible

    # 32·0.35 = 11.2 -> 8 is below 0.9·11.2, so 16; 16·0.35 = 5.6 -> 8 (the minimum); 1280·1.4 = 1792
    assert [make_divisible(v) for v in (11.2, 5.6, 1792.0, 24 * 0.5, 96 * 0.75, 160 * 0.35)] == [16, 8, 1792, 16, 72, 56]
    assert make_divisible(24, 16) == 32 and make_divisible(152, 16) == 160 and make_divisible(392, 16) == 400


# Node counts worked out by hand from the reference definitions.
STRUCTURE = {
    # stem conv + 8 blocks x 2 + 3 downsample; ReLU: stem + 8 x 2; 8 additions
    "resnet18": {"Conv": 20, "BatchNormalization": 20, "Relu": 17, "Add": 8, "MaxPool": 1, "GlobalAveragePool": 1,
                 "Flatten": 1, "Gemm": 1},
    # 16 bottlenecks x 3 + stem + 4 downsample (layer1 changes 64 -> 256 channels)
    "resnet50": {"Conv": 53, "BatchNormalization": 53, "Relu": 49, "Add": 16, "MaxPool": 1, "GlobalAveragePool": 1,
                 "Flatten": 1, "Gemm": 1},
    # stem + 17 blocks (the first without expansion: 2 convs, 16 x 3) + last conv; 10 residuals
    "mobilenet_v2_1.0_224": {"Conv": 52, "BatchNormalization": 52, "Clip": 35, "Add": 10, "GlobalAveragePool": 1,
                             "Flatten": 1, "Gemm": 1},
    # 13 x (dw, pw) + stem: 27 convs, each with BN and ReLU6
    "mobilenet_v1_0.25_128": {"Conv": 27, "BatchNormalization": 27, "Clip": 27, "GlobalAveragePool": 1,
                              "Flatten": 1, "Gemm": 1},
    # 15 blocks (the first without expansion), SE in 8 of them (2 convs each), stem, last conv;
    # ReLU: 6 RE blocks x 2 (minus the first's expansion) + 8 SE; hardswish: stem, 9 HS blocks x 2,
    # last conv, classifier; residuals in blocks 1, 3, 5, 6, 8, 9, 10, 12, 14, 15
    "mobilenet_v3_large": {"Conv": 62, "BatchNormalization": 46, "Relu": 19, "HardSwish": 21, "HardSigmoid": 8,
                           "Mul": 8, "Add": 10, "GlobalAveragePool": 9, "Flatten": 1, "Gemm": 2},
    # SiLU (Sigmoid + Mul): stem, 15 expansions, 16 depthwise, 16 SE, last = 49; plus 16 gates
    "efficientnet_b0": {"Conv": 81, "BatchNormalization": 49, "Sigmoid": 65, "Mul": 65, "Add": 9,
                        "GlobalAveragePool": 17, "Flatten": 1, "Gemm": 1},
    # stem + 8 Fire x 3 + classifier conv; no BN
    "squeezenet1_1": {"Conv": 26, "Relu": 26, "Concat": 8, "MaxPool": 3, "GlobalAveragePool": 1, "Flatten": 1},
    # 16 units: 3 downsampling (5 convs, 3 ReLU), 13 with a split (3 convs, 2 ReLU); conv1, conv5
    "shufflenet_v2_x1.0": {"Conv": 56, "BatchNormalization": 56, "Relu": 37, "Split": 13, "Concat": 16,
                           "Reshape": 32, "Transpose": 16, "MaxPool": 1, "ReduceMean": 1, "Gemm": 1},
    # 3 stem convs + 16 blocks x 3 + last; residuals: 2 + 2 + 2 + 1 + 3 + 0
    "mnasnet1.0": {"Conv": 52, "BatchNormalization": 52, "Relu": 35, "Add": 10, "ReduceMean": 1, "Gemm": 1},
    # stem + 22 blocks x 3 + 4 projections; ReLU: stem + 22 x 2 + 22 after the additions
    "regnet_x_400mf": {"Conv": 71, "BatchNormalization": 71, "Relu": 67, "Add": 22, "GlobalAveragePool": 1,
                       "Flatten": 1, "Gemm": 1},
}


@pytest.mark.parametrize("name", sorted(STRUCTURE))
def test_graph_has_the_nodes_of_the_reference_definition(onnx, name):
    assert builders.count_ops(builders.zoo_onnx(name)) == dict(sorted(STRUCTURE[name].items()))


def test_grouped_convs_have_the_reference_groups(onnx):
    m = onnx.load_from_string(builders.zoo_onnx("regnet_x_800mf"))
    groups = {n.name: next(a.i for a in n.attribute if a.name == "group") for n in m.graph.node if n.op_type == "Conv"}
    # RegNetX-800MF group width 16: 64/16, 128/16, 288/16, 672/16 groups in the 3x3 of each stage
    assert sorted({g for k, g in groups.items() if k.endswith(".f.b.conv")}) == [4, 8, 18, 42]
    m = onnx.load_from_string(builders.zoo_onnx("mobilenet_v3_small"))
    dw = [n for n in m.graph.node if n.op_type == "Conv" and n.name.endswith(".dw.conv")]
    assert len(dw) == 11 and all(next(a.i for a in n.attribute if a.name == "group") > 1 for n in dw)


# --- count_macs on hand-worked grouped convolutions ------------------------------------------


def test_count_macs_counts_groups_padding_and_pooling_shapes(onnx):
    from maple_edge_lite.device.builders._graph import Graph

    g = Graph(0)
    y = g.conv("input", 8, 8, 3, "dw", stride=2, groups=8)  # 8x10x10 -> 8x5x5: 8·25·9 = 1800
    y = g.conv(y, 8, 16, 1, "grouped", groups=2)  # 16x5x5, 4 inputs per output: 16·25·4 = 1600
    y = g.max_pool(y, 3, 2, 0, "pool", ceil_mode=True)  # ceil((5 - 3) / 2) + 1 = 2: 16x2x2
    y = g.conv(y, 16, 4, 2, "valid", pad=0, bias=True)  # 2x2 -> 1x1: 4·16·2·2 = 256 (bias not counted)
    y = g.flatten(y, "flatten")
    g.rename_output(g.linear(y, 4, 3, "fc"))  # 4·3 + 3 for the bias = 15
    m = g.serialize("t", [1, 8, 10, 10], [1, 3], "", {})
    assert builders.count_macs(m) == 1800 + 1600 + 256 + 15


# --- the new graph layers against numpy ---------------------------------------------------------


def test_zoo_layers_compute_what_pytorch_computes(onnx, ort):
    from maple_edge_lite.device.builders._graph import Graph

    g = Graph(0)
    outs = {
        "relu6": g.relu6("input", "relu6"),
        "hardswish": g.hardswish("input", "hs"),
        "hardsigmoid": g.hardsigmoid("input", "hsig"),
        "silu": g.silu("input", "silu"),
        "shuffle": g.channel_shuffle("input", 6, 2, 2, "shuffle"),
        "mean": g.reduce_mean("input", [2, 3], "mean"),
        "maxpool": g.max_pool("input", 2, 2, 0, "maxpool", ceil_mode=True),
    }
    a, b = g.split("input", [2, 4], "split")
    outs["split_cat"] = g.concat([b, a], "cat")
    m = onnx.load_from_string(g.serialize("t", [1, 6, 2, 2], [1], "", {}))
    del m.graph.output[:]
    for v in outs.values():
        m.graph.output.append(onnx.helper.make_tensor_value_info(v, onnx.TensorProto.FLOAT, None))
    x = np.linspace(-8, 8, 24, dtype=np.float32).reshape(1, 6, 2, 2)
    got = dict(zip(outs, session(ort, m.SerializeToString()).run(list(outs.values()), {"input": x})))
    t = x.astype(np.float64)
    want = {
        "relu6": np.clip(t, 0, 6),
        "hardswish": t * np.clip(t + 3, 0, 6) / 6,
        "hardsigmoid": np.clip(t + 3, 0, 6) / 6,
        "silu": t / (1 + np.exp(-t)),
        "shuffle": t[:, [0, 3, 1, 4, 2, 5]],  # channels (0 1 2 | 3 4 5) interleaved
        "mean": t.mean(axis=(2, 3)),
        "maxpool": t.max(axis=(2, 3), keepdims=True),
        "split_cat": np.concatenate([t[:, 2:], t[:, :2]], axis=1),
    }
    for k in outs:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


# --- bytes, metadata, shapes ------------------------------------------------------------------


def test_same_arguments_same_bytes_other_seed_other_bytes(onnx):
    for n in ("mobilenet_v3_small", "shufflenet_v2_x0.5"):
        assert builders.zoo_onnx(n, seed=5) == builders.zoo_onnx(n, seed=5)
        assert builders.zoo_onnx(n, seed=5) != builders.zoo_onnx(n, seed=6)
        assert builders.zoo_onnx(n) == builders.zoo_onnx(n, batch=1, num_classes=1000, seed=0)


def test_metadata_names_the_builder_and_variant(onnx):
    m = onnx.load_from_string(builders.zoo_onnx("mnasnet0.5", seed=3, batch=2, num_classes=10))
    props = {p.key: p.value for p in m.metadata_props}
    assert props["maple_edge_lite.builder"] == "zoo_onnx" and props["maple_edge_lite.zoo.name"] == "mnasnet0.5"
    assert props["maple_edge_lite.zoo.family"] == "mnasnet" and props["maple_edge_lite.seed"] == "3"
    assert props["maple_edge_lite.config"] == "resolution=224,num_classes=10,batch=2"
    assert props["maple_edge_lite.builder_version"] == str(builders.BUILDER_VERSION)
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)] and m.ir_version == 8


def test_batch_and_classes_shape_the_model(onnx, ort):
    m = builders.zoo_onnx("efficientnet_b1", batch=2, num_classes=10)
    s = session(ort, m)
    assert s.get_inputs()[0].shape == [2, 3, 240, 240] and s.get_outputs()[0].shape == [2, 10]
    x = np.random.default_rng(0).standard_normal((2, 3, 240, 240)).astype(np.float32)
    y = s.run(["output"], {"input": x})[0]
    assert y.shape == (2, 10) and np.isfinite(y).all() and not np.allclose(y[0], y[1])


# --- values: finite, O(1), no denormals -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_every_network_runs_to_finite_nonzero_logits_of_unit_scale(onnx, ort, name):
    model_bytes = builders.zoo_onnx(name)
    onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    r = builders.zoo_info(name)["resolution"]
    x = np.random.default_rng(1).standard_normal((1, 3, r, r)).astype(np.float32)
    y = session(ort, model_bytes).run(["output"], {"input": x})[0]
    std = float(y.std())
    assert y.shape == (1, 1000) and np.isfinite(y).all() and np.any(y != 0), f"{name}: output std {std:.3g}"
    assert 1e-3 <= std <= 1e3, f"{name}: output std {std:.3g}"


REPRESENTATIVE = ["resnet50", "mobilenet_v2_0.35_96", "mobilenet_v3_small", "efficientnet_b1", "squeezenet1_1",
                  "shufflenet_v2_x1.0", "mnasnet1.0", "regnet_x_400mf"]


@pytest.mark.slow
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_no_intermediate_activation_is_denormal_infinite_or_out_of_scale(onnx, ort, name):
    """Every node's output made a graph output, the graph run unoptimised (what the nodes compute,
    not what fused kernels do): no denormal, inf or nan anywhere, and every tensor's RMS within
    1e-2..1e2, the logits' std within 1e-3..1e3 (identity BN, activation-matched gains,
    residual branches scaled by 1/sqrt(L))."""
    m = onnx.load_from_string(builders.zoo_onnx(name))
    names = [o for n in m.graph.node for o in n.output if o != "output"]
    for o in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None))
    r = builders.zoo_info(name)["resolution"]
    x = np.random.default_rng(2).standard_normal((1, 3, r, r)).astype(np.float32)
    values = dict(zip(["output"] + names, session(ort, m.SerializeToString(), optimize=False).run(
        ["output"] + names, {"input": x})))
    rms = {k: float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))) for k, v in values.items()}
    summary = (f"{name}: output std {values['output'].std():.3g}, RMS {min(rms.values()):.3g} "
               f"({min(rms, key=rms.get)}) .. {max(rms.values()):.3g} ({max(rms, key=rms.get)})")
    for k, v in values.items():
        assert np.isfinite(v).all(), f"{k} not finite; {summary}"
        denormal = int(np.count_nonzero((np.abs(v) < TINY) & (v != 0)))
        assert denormal == 0, f"{k}: {denormal} denormals; {summary}"
    assert 1e-3 <= values["output"].std() <= 1e3, summary
    assert 1e-2 <= min(rms.values()) and max(rms.values()) <= 1e2, summary


# --- package hygiene and the file writer -----------------------------------------------------


def test_importing_the_zoo_does_not_import_onnx():
    code = ("import sys, maple_edge_lite.device.builders as b; b.zoo_onnx; b.zoo_names(); b.zoo_info('resnet18'); "
            "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(__file__))
    assert out.stdout.strip() == "[]"


def test_missing_onnx_is_unsupported(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(mel.UnsupportedError, match=re.escape("pip install 'maple-edge-lite[onnx]'")):
        builders.zoo_onnx("resnet18")


def test_module_main_writes_the_named_models(onnx, tmp_path, capsys):
    from maple_edge_lite.device.builders import zoo

    out = tmp_path / "models"
    assert zoo.main(["--out", str(out), "--names", "squeezenet1_1, mobilenet_v3_small", "--seed", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mobilenet_v3_small.onnx", "squeezenet1_1.onnx"]
    assert (out / "squeezenet1_1.onnx").read_bytes() == builders.zoo_onnx("squeezenet1_1", seed=2)
    assert capsys.readouterr().out.split() == [str(out / "squeezenet1_1.onnx"), str(out / "mobilenet_v3_small.onnx")]
    assert zoo.main(["--out", str(out), "--names", "resnet18,vgg16"]) == 1
    err = capsys.readouterr().err
    assert "unknown zoo network 'vgg16'" in err and not (out / "resnet18.onnx").exists()


def test_module_runs_as_a_script(onnx, tmp_path):
    r = subprocess.run([sys.executable, "-m", "maple_edge_lite.device.builders.zoo", "--out", str(tmp_path),
                        "--names", "shufflenet_v2_x0.5"], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "shufflenet_v2_x0.5.onnx").read_bytes() == builders.zoo_onnx("shufflenet_v2_x0.5")
