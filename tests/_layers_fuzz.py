"""Fuzz driver of the ONNX layer-table reader, run by tests/test_layers.py in a subprocess (so a
crash or a hang fails the test instead of killing or stalling the suite):

    python tests/_layers_fuzz.py MODEL.onnx SEED N

Applies N seeded mutations to the model (byte flips, truncations, inserted and deleted bytes,
and proto-level damage: wrong dims, dangling inputs, cycles, duplicate outputs, bad attributes,
swapped op types, odd input shapes, opsets, IR versions) and runs ``from_onnx`` on each. A case
passes when it gives a table that survives its own JSON round trip, or raises a MapleEdgeError.
Prints one line per case (the last one names the culprit of a hang) and a JSON report last."""

from __future__ import annotations

import faulthandler
import json
import random
import sys
import traceback
import warnings

faulthandler.enable()

import onnx  # noqa: E402

from maple_edge_lite._errors import MapleEdgeError  # noqa: E402
from maple_edge_lite.device.layers import LayerTable, LayerWarning, from_onnx  # noqa: E402

OPS = ["Conv", "Gemm", "Relu", "Add", "Mul", "MatMul", "Concat", "Reshape", "BatchNormalization", "MaxPool",
       "GlobalAveragePool", "Sigmoid", "Clip", "Flatten", "FooBar", "Identity", "ConvTranspose", "Resize"]
WEIRD_INTS = [0, -1, 1, 2, 3, 7, 100, 2**31 - 1, -(2**31)]


def byte_mutation(data: bytes, rng: random.Random):
    b = bytearray(data)
    how = rng.choice(["flip", "truncate", "insert", "delete", "duplicate"])
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        b = b[: rng.randrange(len(b))]
    elif how == "insert":
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif how == "delete":
        i = rng.randrange(len(b))
        del b[i:i + rng.randint(1, 32)]
    else:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b[j:j] = b[i:i + 64]
    return how, bytes(b)


def proto_mutation(base, rng: random.Random):
    m = onnx.ModelProto()
    m.CopyFrom(base)
    g = m.graph
    nodes = g.node
    how = rng.choice(["dims", "dangling", "cycle", "dup_output", "drop_node", "drop_init", "attr", "op_type",
                      "input_dim", "elem_type", "opset", "ir", "outputs", "shuffle", "domain", "swap_inputs",
                      "drop_input", "extra_input"])
    i = rng.randrange(len(nodes))
    if how == "dims":
        t = rng.choice(list(g.initializer))
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 2, 5, 17, 1000])
        else:
            t.dims.append(rng.choice([0, 3]))
    elif how == "dangling":
        if nodes[i].input:
            nodes[i].input[rng.randrange(len(nodes[i].input))] = "ghost"
    elif how == "cycle":
        j = rng.randrange(i, len(nodes))
        if nodes[i].input:
            nodes[i].input[0] = nodes[j].output[0]
    elif how == "dup_output":
        j = rng.randrange(len(nodes))
        nodes[i].output[0] = nodes[j].output[0] if j != i else g.input[0].name
    elif how == "drop_node":
        del nodes[i]
    elif how == "drop_init":
        del g.initializer[rng.randrange(len(g.initializer))]
    elif how == "attr":
        n = nodes[i]
        if n.attribute:
            a = n.attribute[rng.randrange(len(n.attribute))]
            if a.type == onnx.AttributeProto.INTS:
                del a.ints[:]
                a.ints.extend(rng.choice(WEIRD_INTS) for _ in range(rng.randint(0, 5)))
            elif a.type == onnx.AttributeProto.INT:
                a.i = rng.choice(WEIRD_INTS)
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rng.choice([float("nan"), float("inf"), -1.0, 0.0])
            else:
                a.type = rng.choice([onnx.AttributeProto.INT, onnx.AttributeProto.STRING])
    elif how == "op_type":
        nodes[i].op_type = rng.choice(OPS)
    elif how == "input_dim":
        dims = g.input[0].type.tensor_type.shape.dim
        d = dims[rng.randrange(len(dims))]
        choice = rng.choice(["zero", "negative", "param", "unset", "huge", "noshape"])
        if choice == "zero":
            d.dim_value = 0
        elif choice == "negative":
            d.dim_value = -3
        elif choice == "param":
            d.dim_param = "S"
        elif choice == "unset":
            d.Clear()
        elif choice == "huge":
            d.dim_value = 2**40
        else:
            g.input[0].type.tensor_type.ClearField("shape")
    elif how == "elem_type":
        g.input[0].type.tensor_type.elem_type = rng.randrange(0, 25)
    elif how == "opset":
        m.opset_import[0].version = rng.choice([0, 1, 6, 7, 8, 11, 13, 18, 21, 30, 1000, -5])
    elif how == "ir":
        m.ir_version = rng.choice([0, 1, 3, 4, 7, 10, 99, -1])
    elif how == "outputs":
        if rng.random() < 0.5:
            del g.output[:]
        else:
            g.output[0].name = "nothing"
    elif how == "shuffle":
        order = list(nodes)
        rng.shuffle(order)
        copies = [onnx.NodeProto() for _ in order]
        for c, n in zip(copies, order):
            c.CopyFrom(n)
        del nodes[:]
        nodes.extend(copies)
    elif how == "domain":
        nodes[i].domain = rng.choice(["x.y", "ai.onnx.ml", "com.microsoft"])
    elif how == "swap_inputs":
        n = nodes[i]
        if len(n.input) >= 2:
            n.input[0], n.input[1] = n.input[1], n.input[0]
    elif how == "drop_input":
        n = nodes[i]
        if n.input:
            del n.input[rng.randrange(len(n.input))]
    else:
        nodes[i].input.append(rng.choice([g.input[0].name, nodes[0].output[0], ""]))
    return how, m


def main(argv) -> int:
    path, seed, n = argv[1], int(argv[2]), int(argv[3])
    data = open(path, "rb").read()
    base = onnx.load_model_from_string(data)
    rng = random.Random(seed)
    report = {"seed": seed, "cases": 0, "tables": 0, "errors": 0, "bad": [], "other_warnings": 0}
    for k in range(n):
        if k % 2 == 0:
            how, case = byte_mutation(data, rng)
        else:
            how, proto = proto_mutation(base, rng)
            case = proto if k % 4 == 1 else proto.SerializeToString()
        print(f"case {k}: {how}", flush=True)
        report["cases"] += 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                t = from_onnx(case)
                back = LayerTable.from_dict(json.loads(json.dumps(t.to_dict())))
                if back != t:
                    report["bad"].append({"case": k, "how": how, "error": "the table does not survive its JSON round trip"})
                report["tables"] += 1
            except MapleEdgeError:
                report["errors"] += 1
            except Exception as e:  # the contract: nothing but the package's errors
                where = traceback.extract_tb(e.__traceback__)[-1]
                report["bad"].append({"case": k, "how": how, "error": f"{type(e).__name__}: {e}"[:300],
                                      "at": f"{where.filename}:{where.lineno}"})
        report["other_warnings"] += sum(not issubclass(w.category, LayerWarning) for w in caught)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
