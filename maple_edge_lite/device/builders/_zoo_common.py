"""What the zoo's families share: channel rounding, Conv-BN-activation and squeeze-and-excitation
blocks as torchvision writes them, and the weight-scale rules that keep activations O(1).

**Weights.** Every batch norm is the identity (scale 1, shift 0, running mean 0, variance 1), so
each conv's weights alone set the scale of what flows on. A conv's weights are normal with std
sqrt(gain / fan_in), fan_in = C_in / groups · k · k, the gain matched to what follows the conv
(``_graph.ACT_GAIN``: 2 before ReLU/ReLU6, i.e. He; 3 before hardswish; 2.8 before SiLU; 1 before
no activation, e.g. a linear bottleneck), which keeps the mean square of activations from one layer
to the next. Two places need more:

- *residual sums.* ``x + f(x)`` with both terms of the same size doubles the mean square at every
  block, 2^16 over ResNet-50. The last conv of every residual branch therefore has its gain divided
  by ``L``, the number of residual branches in the network (its std by sqrt(L)), so the sums grow by
  at most (1 + 1/L)^L < e over the whole network. Batch norms stay the identity: the scaling is in
  the conv weights, and zeroing a branch (a zero-initialised BN) is ruled out because it would make
  the branch's values, not only their scale, atypical.
- *squeeze-and-excitation.* Multiplying by the gate (sigmoid or hardsigmoid, mean about 0.5,
  measured mean square 0.35-0.5 on these networks) shrinks the mean square: the conv after the
  gate gets gain x 2. (x 4, for a gate stuck at 0.5, over-compensates and the excess compounds
  through SiLU and hardswish, which grow faster than their unit-scale gain assumes: EfficientNet-B1
  ended at std 200 with it, and ends at 0.6 with x 2.)

Latency does not depend on the values; these rules are there so that no activation overflows,
vanishes or turns denormal (which slows x86 and some ARM cores by orders of magnitude)."""

from __future__ import annotations

from ._graph import ACT_GAIN, Graph

#: Gain factor of the conv after a squeeze-and-excitation gate (see the module docstring).
SE_GAIN = 2.0


def make_divisible(v: float, divisor: int = 8, min_value=None) -> int:
    """torchvision's ``_make_divisible`` (from the TF MobileNet code): ``v`` rounded to the nearest
    multiple of ``divisor``, at least ``min_value`` (default ``divisor``) and never below 0.9·v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn(g: Graph, x: str, cin: int, cout: int, k: int, name: str, *, stride: int = 1, groups: int = 1,
            act=None, gain_scale: float = 1.0, eps: float = 1e-5, pad=None) -> str:
    """torchvision's ``Conv2dNormActivation``: Conv (no bias, padding (k - 1) // 2) -> identity
    BatchNormalization -> ``act`` (None, "relu", "relu6", "hardswish", "silu"). Nodes
    ``{name}.conv``, ``{name}.bn``, ``{name}.act``; weight gain ACT_GAIN[act] · ``gain_scale``."""
    y = g.conv(x, cin, cout, k, f"{name}.conv", stride=stride, groups=groups, pad=pad,
               gain=ACT_GAIN[act] * gain_scale)
    y = g.bn(y, cout, f"{name}.bn", identity=True, eps=eps)
    return g.act(y, act, f"{name}.act")


def squeeze_excitation(g: Graph, x: str, c: int, squeeze: int, name: str, *, act: str = "relu",
                       gate: str = "sigmoid") -> str:
    """torchvision's ``SqueezeExcitation``: GlobalAveragePool -> Conv 1x1 (bias) -> ``act`` ->
    Conv 1x1 (bias) -> ``gate`` (Sigmoid or HardSigmoid) -> Mul(gate, x)."""
    s = g.global_avg_pool(x, f"{name}.avgpool")
    s = g.conv(s, c, squeeze, 1, f"{name}.fc1", bias=True, gain=ACT_GAIN[act])
    s = g.act(s, act, f"{name}.act")
    s = g.conv(s, squeeze, c, 1, f"{name}.fc2", bias=True, gain=1.0)
    s = g.hardsigmoid(s, f"{name}.gate") if gate == "hardsigmoid" else g.sigmoid(s, f"{name}.gate")
    return g.mul(s, x, f"{name}.scale")


def classifier(g: Graph, x: str, c: int, num_classes: int, pool: str = "gap") -> str:
    """The usual head: ``adaptive_avg_pool2d`` + ``flatten`` (GlobalAveragePool, Flatten) or
    ``x.mean([2, 3])`` (ReduceMean), then ``nn.Linear`` (Gemm) to the logits (dropout is no node
    in an exported eval-mode model)."""
    if pool == "gap":
        x = g.flatten(g.global_avg_pool(x, "avgpool"), "flatten")
    else:
        x = g.reduce_mean(x, [2, 3], "mean")
    return g.linear(x, c, num_classes, "fc")


__all__ = ["SE_GAIN", "make_divisible", "conv_bn", "squeeze_excitation", "classifier"]
