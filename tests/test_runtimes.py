"""Runtime adapters: each installed runtime runs the same seeded ONNX models and agrees with
onnxruntime; errors name the runtime and the fix; nothing is imported before it is asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.device import runtimes as R

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from maple_edge_lite.device.runtimes import _testnets as nets  # noqa: E402

MODELS = {"conv_net": nets.conv_net(seed=1), "op_zoo": nets.op_zoo(seed=2)}


@pytest.fixture(scope="module")
def ort_ref():
    """onnxruntime's outputs on each model for the fixed input and for a second input."""
    pytest.importorskip("onnxruntime")
    rt = R.get("onnxruntime")
    out = {}
    for name, m in MODELS.items():
        with rt.load(m) as s:
            x2 = np.random.default_rng(7).standard_normal(s.input_shape, dtype=np.float32)
            out[name] = (s.infer(), x2, s.infer(x2))
    return out


# --- the package stays light ---------------------------------------------------------------


def test_importing_runtimes_imports_no_runtime():
    code = (
        "import sys, maple_edge_lite, maple_edge_lite.device.runtimes as r; r.available(); r.names();"
        "heavy = ['onnxruntime', 'openvino', 'MNN', '_tools', 'torch', 'ncnn', 'pnnx', 'ai_edge_litert', 'onnx'];"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_available_names_every_builtin_with_a_version_or_the_install_line():
    av = R.available()
    assert set(av) >= {"onnxruntime", "openvino", "mnn", "torch", "ncnn", "litert"}
    for name, v in av.items():
        assert v and (v[0].isdigit() or v.startswith("not installed: pip install")), (name, v)


# --- onnxruntime: the one CI always has ----------------------------------------------------


def conv1x1_reference(model: bytes, x: np.ndarray) -> np.ndarray:
    g = onnx.load_model_from_string(model).graph
    w, b = (numpy_helper.to_array(t) for t in g.initializer)
    return np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x) + b[None, :, None, None]


def test_onnxruntime_matches_a_numpy_reference():
    pytest.importorskip("onnxruntime")
    m = nets.tiny(seed=3)
    with R.get("onnxruntime").load(m) as s:
        assert s.input_shape == (1, 3, 8, 8) and s.input.dtype == np.float32
        np.testing.assert_allclose(s.infer(), conv1x1_reference(m, s.input), rtol=1e-5, atol=1e-6)


def test_onnxruntime_is_deterministic_and_run_does_not_disturb_it():
    pytest.importorskip("onnxruntime")
    with R.get("onnxruntime").load(MODELS["conv_net"]) as a, R.get("onnxruntime").load(MODELS["conv_net"]) as b:
        np.testing.assert_array_equal(a.input, b.input)  # the same seeded input in every session
        first = a.infer()
        for _ in range(3):
            a.run()
        np.testing.assert_array_equal(a.infer(), first)
        np.testing.assert_array_equal(b.infer(), first)
        # run() computes through the IO binding: its output is the model's output.
        np.testing.assert_array_equal(a._binding.copy_outputs_to_cpu()[0], first)


def test_onnxruntime_session_options_honour_threads_and_settings():
    pytest.importorskip("onnxruntime")
    rt = R.get("onnxruntime", threads=2)
    with rt.load(nets.tiny()) as s:
        so = s.session.get_session_options()
        assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert s.session.get_providers() == ["CPUExecutionProvider"]
    spin = R.get("onnxruntime", threads=2, spinning=True).session_options()
    assert spin.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    info = rt.info()
    assert info["threads"] == 2 and info["allow_spinning"] is False and info["provider"] == "CPUExecutionProvider"
    json.dumps(info)


def test_onnxruntime_reads_a_path_and_sets_a_symbolic_batch_to_one(tmp_path):
    pytest.importorskip("onnxruntime")
    m = onnx.load_model_from_string(nets.tiny())
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    with R.get("onnxruntime").load(path) as s:
        assert s.input_shape == (1, 3, 8, 8)
        s.run()


def test_a_model_the_runtime_rejects_names_the_runtime(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(R.ModelRejectedError, match="onnxruntime rejected the model") as e:
        R.get("onnxruntime").load(b"this is not an onnx model")
    assert isinstance(e.value, mel.InputError) and isinstance(e.value, ValueError)
    with pytest.raises(mel.ModelNotFoundError, match="no-such.onnx"):
        R.get("onnxruntime").load(tmp_path / "no-such.onnx")
    with pytest.raises(mel.InputError, match="bytes or a path"):
        R.get("onnxruntime").load(12)


def test_closed_session_refuses_to_run():
    pytest.importorskip("onnxruntime")
    s = R.get("onnxruntime").load(nets.tiny())
    s.close()
    s.close()  # idempotent
    with pytest.raises(mel.InputError, match="closed"):
        s.run()
    with pytest.raises(mel.InputError, match="closed"):
        s.infer()


# --- every other installed runtime agrees with onnxruntime ---------------------------------

# (runtime, options, tolerance): fp32 settings where the runtime's default would use bf16/fp16
# on this CPU; the default-precision run is checked loosely below.
CASES = [
    ("openvino", {"precision": "f32"}, 1e-4),
    ("mnn", {}, 1e-4),
    ("torch", {}, 1e-4),
    ("torch", {"mode": "jit"}, 1e-4),
    ("torch", {"channels_last": True}, 1e-4),
    ("ncnn", {"fp16": False}, 1e-4),
]
IMPORTS = {"openvino": "openvino", "mnn": "MNN", "torch": "torch", "ncnn": "ncnn"}


@pytest.mark.parametrize("name,opts,tol", CASES, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("model", sorted(MODELS))
def test_runtime_matches_onnxruntime(name, opts, tol, model, ort_ref):
    pytest.importorskip(IMPORTS[name])
    if name == "ncnn":
        _need_pnnx()
    want, x2, want2 = ort_ref[model]
    rt = R.get(name, threads=1, **opts)
    with rt.load(MODELS[model]) as s:
        assert s.input_shape == x2.shape
        s.run()
        np.testing.assert_allclose(s.infer(), want, rtol=tol, atol=tol)
        np.testing.assert_allclose(s.infer(x2), want2, rtol=tol, atol=tol)
        s.run()
        np.testing.assert_allclose(s.infer(), want, rtol=tol, atol=tol)  # infer(x2) left no trace
    info = rt.info()
    assert info["name"] == name and info["version"] == rt.version and info["threads"] == 1
    json.dumps(info)


NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def nb201():
    """A real NAS-Bench-201 network from the project's builder and onnxruntime's output."""
    builders = pytest.importorskip("maple_edge_lite.device.builders")
    pytest.importorskip("onnxruntime")
    m = builders.nb201_onnx(NB201_ARCH)
    with R.get("onnxruntime").load(m) as s:
        return m, s.infer()


@pytest.mark.parametrize("name,opts,tol", CASES[:3] + CASES[-1:], ids=lambda v: v if isinstance(v, str) else None)
def test_runtime_runs_a_nb201_network_like_onnxruntime(name, opts, tol, nb201):
    pytest.importorskip(IMPORTS[name])
    if name == "ncnn":
        _need_pnnx()
    model, want = nb201
    with R.get(name, **opts).load(model) as s:
        s.run()
        np.testing.assert_allclose(s.infer(), want, rtol=tol, atol=tol * np.abs(want).max())


def _need_pnnx():
    import importlib.util

    if importlib.util.find_spec("pnnx") is None:
        pytest.skip("pnnx is not installed (pip install --no-deps pnnx)")


@pytest.mark.parametrize("name", ["openvino", "ncnn"])
def test_default_reduced_precision_stays_close(name, ort_ref):
    """OpenVINO (bf16 on AVX512-BF16 CPUs) and ncnn (fp16 storage) by default trade precision
    for speed: the answer still has to be the model's, to within ~3%."""
    pytest.importorskip(IMPORTS[name])
    if name == "ncnn":
        _need_pnnx()
    want = ort_ref["conv_net"][0]
    with R.get(name).load(MODELS["conv_net"]) as s:
        np.testing.assert_allclose(s.infer(), want, rtol=0.03, atol=0.03 * np.abs(want).max())


def test_openvino_honours_threads():
    pytest.importorskip("openvino")
    if len(os.sched_getaffinity(0)) < 2:  # OpenVINO caps its threads at the CPUs the process may use
        pytest.skip("this process may run on one CPU only (taskset?): OpenVINO caps INFERENCE_NUM_THREADS at 1")
    rt = R.get("openvino", threads=2)
    with rt.load(nets.tiny()) as s:
        assert s.compiled.get_property("INFERENCE_NUM_THREADS") == 2
        assert str(s.compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
    assert rt.info()["effective_threads"] == 2


def test_torch_honours_threads_even_after_someone_changes_them():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        with R.get("torch", threads=2).load(nets.tiny()) as s:
            assert torch.get_num_threads() == 2
            torch.set_num_threads(1)
            s.run()
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_converted_models_live_in_a_temp_dir_removed_on_close():
    done = 0
    for name, mod in (("mnn", "MNN"), ("ncnn", "ncnn"), ("openvino", "openvino")):
        try:
            __import__(mod)
            rt = R.get(name)
        except (ImportError, mel.UnsupportedError):
            continue
        s = rt.load(nets.tiny())
        folder = s._work.path
        assert os.path.isdir(folder) and os.listdir(folder)
        s.close()
        assert not os.path.exists(folder)
        done += 1
    if not done:
        pytest.skip("none of mnn, ncnn, openvino is installed")


def test_mnn_reports_a_model_its_converter_rejects():
    pytest.importorskip("MNN")
    # Valid ONNX that MNN's converter cannot read: an op from an unknown domain.
    node = helper.make_node("Frobnicate", ["input"], ["output"], domain="com.example")
    g = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])],
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    m.ir_version = 8
    with pytest.raises(R.ModelRejectedError, match="mnn: the converter rejected the model: .*Frobnicate"):
        R.get("mnn").load(m.SerializeToString())


# --- the ONNX -> torch interpreter ---------------------------------------------------------


def _model(nodes, inits, in_shape, out_shape, opset=13):
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        inits,
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def test_torch_interpreter_covers_padding_and_layout_ops(ort_ref):
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((6, 3, 3, 3)).astype(np.float32), "w")
    gw = numpy_helper.from_array(rng.standard_normal((24, 5)).astype(np.float32), "gw")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64), "pads")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),  # 9x9 -> 5x5
        helper.make_node("HardSwish", ["c"], ["h"]),
        helper.make_node("Pad", ["h", "pads"], ["p"], mode="reflect"),  # 6x6
        helper.make_node("MaxPool", ["p"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),  # 3x3
        helper.make_node("LeakyRelu", ["m"], ["l"], alpha=0.1),
        helper.make_node("Transpose", ["l"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Tanh", ["t"], ["th"]),
        helper.make_node("GlobalMaxPool", ["l"], ["gm"]),
        helper.make_node("Flatten", ["th"], ["f"], axis=2),  # [1*3, 3*6]
        helper.make_node("ReduceMax", ["f"], ["r"], axes=[0], keepdims=1),  # [1, 18]
        helper.make_node("Flatten", ["gm"], ["gf0"]),  # [1, 6]
        helper.make_node("Unsqueeze", ["gf0", "axes"], ["u"]),  # [1, 1, 6]
        helper.make_node("Squeeze", ["u", "axes"], ["gf"]),
        helper.make_node("Concat", ["r", "gf"], ["cat"], axis=1),  # [1, 24]
        helper.make_node("Gemm", ["cat", "gw"], ["g"], alpha=0.5),
        helper.make_node("Softmax", ["g"], ["output"], axis=-1),
    ]
    m = _model(nodes, [w, gw, pads, axes], [1, 3, 9, 9], [1, 5], opset=14)  # HardSwish: opset 14
    with R.get("onnxruntime").load(m) as ref, R.get("torch").load(m) as s:
        np.testing.assert_allclose(s.infer(), ref.infer(), rtol=1e-5, atol=1e-6)


def test_torch_interpreter_names_an_op_it_lacks():
    pytest.importorskip("torch")
    m = _model([helper.make_node("Erf", ["input"], ["output"])], [], [1, 4], [1, 4])
    with pytest.raises(mel.UnsupportedError, match=r"no Erf \(it knows .*Conv"):
        R.get("torch").load(m)


# --- errors, registration, callables -------------------------------------------------------


def test_unknown_runtime_lists_the_known_ones():
    with pytest.raises(mel.InputError, match="unknown runtime 'tensorrt'; known runtimes: onnxruntime, openvino"):
        R.get("tensorrt")


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True, None])
def test_threads_must_be_a_positive_integer(threads):
    with pytest.raises(mel.InputError, match="threads"):
        R.get("onnxruntime", threads=threads)


def test_an_option_the_adapter_lacks_is_an_input_error():
    pytest.importorskip("onnxruntime")
    with pytest.raises(mel.InputError, match="bad option"):
        R.get("onnxruntime", precision="f32")


@pytest.mark.parametrize(
    "name,modules,extra",
    [
        ("onnxruntime", ["onnxruntime"], "maple-edge-lite[onnxruntime]"),
        ("openvino", ["openvino"], "maple-edge-lite[openvino]"),
        ("mnn", ["MNN", "_tools"], "maple-edge-lite[mnn]"),
        ("torch", ["torch"], "maple-edge-lite[torch]"),
        ("ncnn", ["ncnn"], "pip install ncnn"),
        ("litert", ["ai_edge_litert", "ai_edge_litert.interpreter"], "pip install ai-edge-litert"),
    ],
)
def test_a_runtime_not_installed_says_how_to_install_it(monkeypatch, name, modules, extra):
    for mod in modules:
        monkeypatch.setitem(sys.modules, mod, None)  # import now raises ImportError
    with pytest.raises(R.RuntimeNotInstalledError) as e:
        R.get(name)
    assert extra in str(e.value) and name in str(e.value)
    assert isinstance(e.value, mel.UnsupportedError) and isinstance(e.value, ImportError)


def test_callable_runtime_runs_closes_and_describes_itself():
    calls = {"run": 0, "close": 0, "loaded": None}

    class Engine:
        def __call__(self):
            calls["run"] += 1

        def infer(self, x):
            return x * 2

        def close(self):
            calls["close"] += 1

    def load(model, threads):
        calls["loaded"] = (model, threads)
        return Engine()

    rt = R.CallableRuntime("tensorrt", "10.3", load, threads=4, details={"precision": "fp16"}, input_shape=(1, 3, 2, 2))
    assert rt.info() == {"name": "tensorrt", "version": "10.3", "threads": 4, "precision": "fp16"}
    with rt.load(b"onnx") as s:
        s.run()
        s.run()
        np.testing.assert_array_equal(s.infer(), s.input * 2)
    assert calls == {"run": 2, "close": 1, "loaded": (b"onnx", 4)}

    plain = R.CallableRuntime("x", 1, lambda m, t: (lambda: None))
    with plain.load("m.onnx") as s:
        s.run()
        with pytest.raises(mel.UnsupportedError):
            s.infer()
    with pytest.raises(mel.InputError, match="callable"):
        R.CallableRuntime("x", 1, lambda m, t: 42).load(b"")
    with pytest.raises(mel.InputError, match="threads"):
        R.CallableRuntime("x", 1, load, threads=0)


def test_register_get_and_unregister_a_runtime():
    factory = lambda threads=1, **kw: R.CallableRuntime("mine", "0.1", lambda m, t: (lambda: None), threads=threads)  # noqa: E731
    R.register("mine", factory)
    try:
        assert R.get("mine", threads=3).threads == 3
        assert R.available()["mine"] == "0.1"
        assert "mine" in R.names()
        with pytest.raises(mel.InputError, match="already exists"):
            R.register("mine", factory)
        with pytest.raises(mel.InputError, match="already exists"):
            R.register("onnxruntime", factory)
    finally:
        R.unregister("mine")
    with pytest.raises(mel.InputError, match="unknown runtime 'mine'"):
        R.get("mine")


# --- LiteRT: .tflite models only -------------------------------------------------------------


def tflite_add(const):
    """A one-op .tflite model, output = input + const, input [1, 4] float32."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as S

    def tensor(name, buf):
        t = S.TensorT()
        t.name, t.shape, t.type, t.buffer = name, np.array([1, 4], np.int32), S.TensorType.FLOAT32, buf
        return t

    data = S.BufferT()
    data.data = np.frombuffer(np.asarray(const, np.float32).tobytes(), np.uint8)
    sg = S.SubGraphT()
    sg.tensors = [tensor("input", 1), tensor("c", 2), tensor("output", 3)]
    sg.inputs, sg.outputs = np.array([0], np.int32), np.array([2], np.int32)
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1], np.int32), np.array([2], np.int32)
    op.builtinOptionsType, op.builtinOptions = S.BuiltinOptions.AddOptions, S.AddOptionsT()
    sg.operators = [op]
    code = S.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = S.BuiltinOperator.ADD
    code.version = 1
    m = S.ModelT()
    m.version, m.subgraphs, m.operatorCodes = 3, [sg], [code]
    m.buffers = [S.BufferT(), S.BufferT(), data, S.BufferT()]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_litert_runs_tflite_and_refuses_onnx(tmp_path):
    pytest.importorskip("ai_edge_litert.interpreter")
    c = np.array([1, 2, 3, 4], np.float32)
    path = tmp_path / "add.tflite"
    path.write_bytes(tflite_add(c))
    rt = R.get("litert", threads=2)
    for model in (path, path.read_bytes()):
        with rt.load(model) as s:
            assert s.input_shape == (1, 4)
            s.run()
            np.testing.assert_allclose(s.infer(), s.input + c)
            x = np.ones((1, 4), np.float32)
            np.testing.assert_allclose(s.infer(x), x + c)
    assert rt.info()["threads"] == 2
    with pytest.raises(mel.UnsupportedError, match="needs a .tflite model"):
        rt.load(nets.tiny())


# --- the overhead command ------------------------------------------------------------------


def test_overhead_command_times_a_runtime(capsys):
    pytest.importorskip("onnxruntime")
    from maple_edge_lite.device.runtimes.__main__ import main

    assert main(["--calls", "5", "--warmup", "1", "--json", "onnxruntime"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["tiny", "conv_net"]
    assert all(r["name"] == "onnxruntime" and r["median_us"] > 0 for r in rows)


# --- what becomes ModelRejectedError: the runtime's refusals, not the adapter's bugs -------------


def _error_from(module: str, base=Exception):
    """An exception type as a runtime's extension module would define it."""
    return type("RuntimeOwnError", (base,), {"__module__": module})


def test_runtime_rejected_tells_a_refusal_from_a_bug():
    from maple_edge_lite.device.runtimes._base import runtime_rejected

    own = _error_from("fakert._native")
    assert runtime_rejected(own("bad graph"), ("fakert",))
    assert runtime_rejected(_error_from("fakert", TypeError)("its own TypeError"), ("fakert",))
    assert not runtime_rejected(_error_from("fakertx")("another package"), ("fakert",))
    assert runtime_rejected(RuntimeError("compile failed"), ("fakert",), (RuntimeError,))
    assert not runtime_rejected(RuntimeError("compile failed"), ("fakert",))
    for bug in (TypeError("x"), AttributeError("x"), NameError("x"), KeyError("x"), IndexError("x"),
                UnboundLocalError("x"), AssertionError("x"), NotImplementedError("x")):
        assert not runtime_rejected(bug, ("fakert",), (RuntimeError, ValueError, Exception)), bug
    # maple_edge_lite's own errors (an InputError is a ValueError) say what they mean already
    assert not runtime_rejected(mel.InputError("x"), ("fakert",), (ValueError,))
    assert not runtime_rejected(mel.ModelNotFoundError("x"), ("fakert",), (OSError,))


def _unsupported_op_model():
    node = helper.make_node("Frobnicate", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_onnxruntime_rejections_and_bugs(monkeypatch):
    """ORT's own error types (InvalidGraph for an op it lacks) become ModelRejectedError; a bug in
    the adapter's code, here session options of the wrong type or a missing attribute, comes
    out as the TypeError / AttributeError it is."""
    pytest.importorskip("onnxruntime")
    rt = R.get("onnxruntime")
    with pytest.raises(R.ModelRejectedError, match="onnxruntime rejected the model: .*Frobnicate"):
        rt.load(_unsupported_op_model())
    def wrong_type():
        so = rt._ort.SessionOptions()
        so.intra_op_num_threads = "one"  # ORT's binding refuses a str: TypeError
        return so

    monkeypatch.setattr(rt, "session_options", wrong_type)
    with pytest.raises(TypeError) as e:
        rt.load(nets.tiny())
    assert not isinstance(e.value, R.ModelRejectedError)
    monkeypatch.setattr(rt, "session_options", lambda: rt.no_such_attribute)
    with pytest.raises(AttributeError, match="no_such_attribute"):
        rt.load(nets.tiny())


def test_a_bug_in_load_onnx_is_not_an_invalid_model(monkeypatch):
    from maple_edge_lite.device.runtimes._base import load_onnx

    with pytest.raises(R.ModelRejectedError, match="fake: not a valid ONNX model"):
        load_onnx(b"\xff\xff not protobuf", "fake")
    monkeypatch.setattr(onnx, "load_model_from_string", lambda data: data.no_such_attribute)
    with pytest.raises(AttributeError, match="no_such_attribute"):
        load_onnx(nets.tiny(), "fake")
    with pytest.raises(mel.ModelNotFoundError):  # not "not a valid ONNX model"
        load_onnx("/no/such/model.onnx", "fake")


def _fake_litert(exc):
    from types import SimpleNamespace

    from maple_edge_lite.device.runtimes._litert import LiteRtSession

    def interpreter(**_):
        raise exc

    rt = SimpleNamespace(_interp=SimpleNamespace(Interpreter=interpreter), threads=1)
    return lambda: LiteRtSession(rt, b"\0\0\0\0TFL3 a flatbuffer")


def _fake_openvino(exc):
    from types import SimpleNamespace

    from maple_edge_lite.device.runtimes._openvino import OpenVinoSession

    def read_model(path):
        raise exc

    rt = SimpleNamespace(_ov=SimpleNamespace(), _core=SimpleNamespace(read_model=read_model), config=dict, threads=1)
    return lambda: OpenVinoSession(rt, nets.tiny())


def _fake_mnn(exc):
    from types import SimpleNamespace

    from maple_edge_lite.device.runtimes._mnn import MnnSession

    def mnnconvert(argv):
        with open(argv[argv.index("--MNNModel") + 1], "wb") as f:
            f.write(b"converted")
        return True

    def interpreter(path):
        raise exc

    rt = SimpleNamespace(_mnn=SimpleNamespace(Interpreter=interpreter), _tools=SimpleNamespace(mnnconvert=mnnconvert),
                         threads=1, precision="high")
    return lambda: MnnSession(rt, nets.tiny())


# (adapter, its runtime's module, a builtin type the adapter documents its runtime raising)
FAKE_ADAPTERS = [("litert", _fake_litert, "ai_edge_litert.interpreter", ValueError),
                 ("openvino", _fake_openvino, "openvino._pyopenvino", RuntimeError),
                 ("mnn", _fake_mnn, "MNN", RuntimeError)]


@pytest.mark.parametrize("name, make, module, documented", FAKE_ADAPTERS, ids=[a[0] for a in FAKE_ADAPTERS])
def test_adapters_reject_for_the_runtime_and_let_bugs_through(name, make, module, documented):
    """Each adapter's load over a fake runtime module: the runtime's own error types and the
    builtin type it documents raising become ModelRejectedError naming the runtime and keeping
    the runtime's words; Python programming errors raised in the same place propagate as they
    are (before, every exception became an "unsupported" model)."""
    for exc in (_error_from(module)("the runtime's words"), documented("the runtime's words")):
        with pytest.raises(R.ModelRejectedError, match=f"{name} rejected the model: the runtime's words"):
            make(exc)()
    for bug in (TypeError("bug"), AttributeError("bug"), KeyError("bug"), NameError("bug")):
        with pytest.raises(type(bug), match="bug") as e:
            make(bug)()
        assert type(e.value) is type(bug)


def test_profile_reports_an_adapter_bug_instead_of_an_unsupported_op():
    """Through the profiler: a rejection is an "unsupported" op and the run goes on; an adapter
    bug stops the run with its own exception."""
    pytest.importorskip("onnxruntime")
    from maple_edge_lite.device import profile as P
    from maple_edge_lite.device.builders import OpSpec
    from maple_edge_lite.device.runtimes._onnxruntime import OnnxRuntime

    class Buggy(OnnxRuntime):
        def session_options(self):
            so = super().session_options()
            so.intra_op_num_threads = "one"  # the bug: a string where ORT takes an int
            return so

    R.register("buggy-ort", lambda threads=1: Buggy(threads))
    try:
        with pytest.raises(TypeError):
            P.profile("buggy-ort", suite=[OpSpec.of("skip_connect", 16, 8, repeat=2)], events=("task-clock",),
                      passes=1, warmup=1, warmup_s=0, min_runs=2, budget_s=0.05)
    finally:
        R.unregister("buggy-ort")
