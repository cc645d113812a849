"""``maple-edge-lite layers``: an ONNX network's layer table (docs/layers.md).

    maple-edge-lite layers resnet50.onnx                       # one line per layer, then the totals
    maple-edge-lite layers model.onnx --batch 8 -o model.layers.json
    maple-edge-lite layers model.onnx --input-shape images=1,3,640,640 --json
    maple-edge-lite layers resnet50.onnx --predict             # + this device's milliseconds per layer
    maple-edge-lite layers net.layers.json --model layer_model.melw   # a table made on a host, a model made here

Exit status: 0 the table was made (warnings, e.g. ops the table does not know, go to stderr);
1 an error (not an ONNX model, an unsupported opset, an unresolved dynamic dimension, a file
that cannot be read or written), one line on stderr; 2 a usage error. Imported only when the CLI
is built."""

from __future__ import annotations

import json
import sys
import warnings


def add_parser(subparsers) -> None:
    from .predict import PRECISION_HELP, _input_shape

    p = subparsers.add_parser(
        "layers",
        help="an ONNX network as a layer table (kind, shapes, MACs, params, bytes per fused layer)",
        description="Read an ONNX model, fix its batch (and any --input-shape), run ONNX shape inference and list "
        "the layers a runtime executes after its fusions (Conv+BN+activation, Conv+residual Add, folded "
        "constants; view-only ops cost nothing): kind, output shape, MACs, parameters, bytes moved; with "
        "--predict or --model, the milliseconds each layer costs on a device and the network's prediction. "
        "Exit status: 0 done (warnings on stderr); 1 error (one line on stderr); 2 usage error. An ONNX file "
        "needs the onnx package (pip install 'maple-edge-lite[onnx]'); a .json table does not.",
    )
    p.add_argument("model", metavar="FILE", help="the ONNX model (.onnx), or a layer table made before (.json, from -o)")
    p.add_argument("--batch", type=int, default=1, help="value of the inputs' dynamic batch dimension (default 1)")
    p.add_argument("--input-shape", action="append", default=[], type=_input_shape, metavar="NAME=D0,D1,...",
                   help="full shape of an input with other dynamic dimensions (repeatable)")
    p.add_argument("--json", action="store_true", help="print the table's JSON (the file's content) on stdout; with "
                   "--predict or --model, with a \"prediction\" member (latency_ms, lo_ms, hi_ms, "
                   "per_inference_ms, layer_ms: one per row)")
    p.add_argument("-o", "--output", metavar="OUT.layers.json", help="write the table here (atomically)")
    pm = p.add_mutually_exclusive_group()
    pm.add_argument("--predict", action="store_true",
                    help="add the milliseconds each layer costs on this device, from its cached layer cost model "
                    "(the one `predict --onnx` uses, built on first use: about 65 s), and the network's prediction")
    pm.add_argument("--model", metavar="FILE.melw", dest="model_file",
                    help="as --predict, from this layer cost model (e.g. a cache's layer_model.melw)")
    p.add_argument("--runtime", default=None, metavar="NAME", help="with --predict: the runtime (default onnxruntime)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="with --predict: runtime threads (default 1)")
    p.add_argument("--precision", choices=("f32", "bf16", "f16"), default=None,
                   help="with --predict: " + PRECISION_HELP)
    p.set_defaults(func=_layers)


def _fmt_shape(s) -> str:
    return "?" if s is None else "x".join(map(str, s)) or "scalar"


def _layer_ms(core, table):
    """``(per-inference ms, [ms per layer], (ms, lo, hi))`` of a table through a layer cost
    ``Model``: the model is a sum over the layers (plus the per-inference cost), so each layer's
    share is the core's prediction of that layer alone less that of no layer."""
    import numpy as np

    rows = np.asarray(table.array(), dtype=np.float64)
    c0 = core.predict_layers(rows[:0], interval=False)[0]
    per = [core.predict_layers(rows[i:i + 1], interval=False)[0] - c0 for i in range(len(rows))]
    return c0, per, core.predict_layers(rows)


def _device_model(args):
    """(core Model, where it is) for --model or --predict."""
    from .._model import Model

    if args.model_file:
        core = Model.load(args.model_file)
        where = args.model_file
    else:
        import time

        from .._cache import LAYER_FILES
        from .predict import _layer_core

        core, entry = _layer_core(args, time.perf_counter())[:2]
        where = str(entry / LAYER_FILES["core"])
    if core.kind != "layer_cost":
        from .._errors import InputError

        raise InputError(f"{where} is not a layer cost model (it predicts architecture strings): give the "
                         "layer_model.melw of a device's cache, or use --predict")
    return core, where


def _layers(args) -> int:
    from ..device.layers import LayerTable, LayerWarning, from_onnx

    if (args.runtime is not None or args.threads is not None or args.precision) and not args.predict:
        print("maple-edge-lite layers: error: --runtime, --threads and --precision go with --predict", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print("maple-edge-lite layers: error: --threads must be at least 1", file=sys.stderr)
        return 2
    predicting = args.predict or args.model_file
    shapes = dict(args.input_shape) if args.input_shape else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayerWarning)
        if str(args.model).lower().endswith(".json"):  # a table made before (-o), e.g. on a host
            table = LayerTable.read(args.model)
        else:
            table = from_onnx(args.model, batch=args.batch, input_shapes=shapes)
    for w in caught:
        if issubclass(w.category, LayerWarning):
            print(f"maple-edge-lite: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.output:
        table.write(args.output)
    pred = None
    if predicting:
        from .predict import _unpriced

        _unpriced(args.model, table)  # as predict --onnx: says what it cannot price, refuses an int8 network
        core, where = _device_model(args)
        c0, per, (ms, lo, hi) = _layer_ms(core, table)
        pred = {"model": where, "latency_ms": round(ms, 6), "lo_ms": round(lo, 6), "hi_ms": round(hi, 6),
                "interval_level": core.interval_level, "per_inference_ms": round(c0, 6),
                "layer_ms": [round(v, 6) for v in per]}
    if args.json:
        doc = table.to_dict()
        if pred is not None:
            doc["prediction"] = pred
        print(json.dumps(doc, indent=1, allow_nan=False))
        return 0
    rows = [(str(i), r.kind, _fmt_shape(r.output), f"{r.macs:,}", f"{r.params:,}",
             f"{r.bytes_read + r.bytes_written:,}",
             "+".join(x for x in (r.activation, "add" if r.fused_add else "", "se" if r.se else "") if x) or "-")
            + ((f"{pred['layer_ms'][i]:.4f}",) if pred else ()) + (r.name,) for i, r in enumerate(table)]
    head = ("#", "kind", "output", "MACs", "params", "bytes r+w", "fused") + (("ms",) if pred else ()) + ("name",)
    width = [max([len(h)] + [len(r[c]) for r in rows]) for c, h in enumerate(head)]
    right = (True, False, False, True, True, True, False) + ((True,) if pred else ()) + (False,)

    def line(cells):
        return "  ".join((c.rjust(w) if r else c.ljust(w)) for c, w, r in zip(cells[:-1], width, right)) + "  " + cells[-1]

    print(line(head))
    for r in rows:
        print(line(r))
    t = table.totals()
    scaled = f"{t['macs'] / 1e9:.3f} G" if t["macs"] >= 1e9 else f"{t['macs'] / 1e6:.3f} M"
    print(f"{t['layers']} layers: {t['macs']:,} MACs ({scaled}), {t['params']:,} params, "
          f"{t['bytes_read']:,} bytes read, {t['bytes_written']:,} bytes written (batch {table.source['batch']})")
    if pred is not None:
        print(f"predicted {pred['latency_ms']:.4f} ms [{pred['lo_ms']:.4f}, {pred['hi_ms']:.4f}] (90% interval): "
              f"the layers plus {pred['per_inference_ms']:.4f} ms per inference; layer cost model {pred['model']}")
    if args.output:
        print(f"wrote {args.output}")
    return 0
