"""A compact ResNet-50 (torchvision's ``resnet50``, v1.5: stride on the 3x3 conv) as an ONNX model,
written with ``onnx.helper`` alone, for ``bench_layers.py`` and the MAC count in tests/test_layers.py.

Explicit ``BatchNormalization`` nodes after every convolution (as the model is before a runtime
folds them), ReLU after the first two convolutions of each bottleneck and after the residual
``Add``, ``MaxPool`` 3x3/2 after the stem, ``GlobalAveragePool`` -> ``Flatten`` -> ``Gemm`` (with
bias) to 1000 classes. torchvision publishes 25,557,032 parameters and 4.09 GFLOPs (multiply-
accumulates) for it at 224x224."""

from __future__ import annotations

import numpy as np


def resnet50_onnx(*, resolution: int = 224, batch="N", num_classes: int = 1000, opset: int = 17,
                  seed=None) -> bytes:
    """The serialized model. ``batch``: an int, or a name for a symbolic batch dimension.
    Weights are zeros unless ``seed`` is given (then He-normal from that seed): latency and the
    layer table do not depend on them, and zeros are built in a few milliseconds."""
    from onnx import TensorProto, helper, numpy_helper

    rng = None if seed is None else np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(name, shape):
        if rng is None:
            a = np.zeros(shape, np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            a = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        inits.append(numpy_helper.from_array(a, name))
        return name

    def conv_bn(x, cin, cout, k, stride, name, relu=True):
        w = weight(f"{name}.weight", (cout, cin, k, k))
        p = k // 2
        nodes.append(helper.make_node("Conv", [x, w], [f"{name}.conv"], name=f"{name}.conv", kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[p, p, p, p]))
        bn = [weight(f"{name}.bn.{s}", (cout,)) for s in ("weight", "bias", "running_mean")]
        var = f"{name}.bn.running_var"
        inits.append(numpy_helper.from_array(np.ones(cout, np.float32), var))
        nodes.append(helper.make_node("BatchNormalization", [f"{name}.conv", *bn, var], [f"{name}.bn"],
                                      name=f"{name}.bn", epsilon=1e-5))
        y = f"{name}.bn"
        if relu:
            nodes.append(helper.make_node("Relu", [y], [f"{name}.relu"], name=f"{name}.relu"))
            y = f"{name}.relu"
        return y

    x = conv_bn("input", 3, 64, 7, 2, "conv1")
    nodes.append(helper.make_node("MaxPool", [x], ["maxpool"], name="maxpool", kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = "maxpool", 64
    for li, (width, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
        for b in range(blocks):
            s = stride if b == 0 else 1
            name = f"layer{li}.{b}"
            y = conv_bn(x, cin, width, 1, 1, f"{name}.conv1")
            y = conv_bn(y, width, width, 3, s, f"{name}.conv2")
            y = conv_bn(y, width, width * 4, 1, 1, f"{name}.conv3", relu=False)
            short = conv_bn(x, cin, width * 4, 1, s, f"{name}.downsample", relu=False) if b == 0 else x
            nodes.append(helper.make_node("Add", [y, short], [f"{name}.add"], name=f"{name}.add"))
            nodes.append(helper.make_node("Relu", [f"{name}.add"], [f"{name}.out"], name=f"{name}.relu"))
            x, cin = f"{name}.out", width * 4
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["avgpool"], name="avgpool"))
    nodes.append(helper.make_node("Flatten", ["avgpool"], ["flatten"], name="flatten", axis=1))
    w = weight("fc.weight", (num_classes, 2048))
    b = weight("fc.bias", (num_classes,))
    nodes.append(helper.make_node("Gemm", ["flatten", w, b], ["output"], name="fc", transB=1))
    graph = helper.make_graph(
        nodes, "resnet50",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, resolution, resolution])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, num_classes])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="bench_layers")
    model.ir_version = 8
    return model.SerializeToString()
