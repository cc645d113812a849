"""``maple-edge-lite layers``: an ONNX network's layer table (docs/layers.md).

    maple-edge-lite layers resnet50.onnx                       # one line per layer, then the totals
    maple-edge-lite layers model.onnx --batch 8 -o model.layers.json
    maple-edge-lite layers model.onnx --input-shape images=1,3,640,640 --json

Exit status: 0 the table was made (warnings, e.g. ops the table does not know, go to stderr);
1 an error (not an ONNX model, an unsupported opset, an unresolved dynamic dimension, a file
that cannot be read or written), one line on stderr; 2 a usage error. Imported only when the CLI
is built."""

from __future__ import annotations

import argparse
import json
import sys
import warnings


def _input_shape(text: str):
    name, sep, dims = text.rpartition("=")
    try:
        shape = [int(d) for d in dims.split(",")]
    except ValueError:
        shape = None
    if not sep or not name or not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"expected NAME=D0,D1,... with positive integers, got {text!r}")
    return name, shape


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "layers",
        help="an ONNX network as a layer table (kind, shapes, MACs, params, bytes per fused layer)",
        description="Read an ONNX model, fix its batch (and any --input-shape), run ONNX shape inference and list "
        "the layers a runtime executes after its fusions (Conv+BN+activation, Conv+residual Add, folded "
        "constants; view-only ops cost nothing): kind, output shape, MACs, parameters, bytes moved. Exit status: "
        "0 done (warnings on stderr); 1 error (one line on stderr); 2 usage error. Needs the onnx package "
        "(pip install 'maple-edge-lite[onnx]').",
    )
    p.add_argument("model", metavar="FILE", help="the ONNX model (.onnx)")
    p.add_argument("--batch", type=int, default=1, help="value of the inputs' dynamic batch dimension (default 1)")
    p.add_argument("--input-shape", action="append", default=[], type=_input_shape, metavar="NAME=D0,D1,...",
                   help="full shape of an input with other dynamic dimensions (repeatable)")
    p.add_argument("--json", action="store_true", help="print the table's JSON (the file's content) on stdout")
    p.add_argument("-o", "--output", metavar="OUT.layers.json", help="write the table here (atomically)")
    p.set_defaults(func=_layers)


def _fmt_shape(s) -> str:
    return "?" if s is None else "x".join(map(str, s)) or "scalar"


def _layers(args) -> int:
    from ..device.layers import LayerWarning, from_onnx

    shapes = dict(args.input_shape) if args.input_shape else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayerWarning)
        table = from_onnx(args.model, batch=args.batch, input_shapes=shapes)
    for w in caught:
        if issubclass(w.category, LayerWarning):
            print(f"maple-edge-lite: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.output:
        table.write(args.output)
    if args.json:
        print(json.dumps(table.to_dict(), indent=1, allow_nan=False))
        return 0
    rows = [(str(i), r.kind, _fmt_shape(r.output), f"{r.macs:,}", f"{r.params:,}",
             f"{r.bytes_read + r.bytes_written:,}",
             "+".join(x for x in (r.activation, "add" if r.fused_add else "", "se" if r.se else "") if x) or "-",
             r.name) for i, r in enumerate(table)]
    head = ("#", "kind", "output", "MACs", "params", "bytes r+w", "fused", "name")
    width = [max([len(h)] + [len(r[c]) for r in rows]) for c, h in enumerate(head)]
    right = (True, False, False, True, True, True, False, False)

    def line(cells):
        return "  ".join((c.rjust(w) if r else c.ljust(w)) for c, w, r in zip(cells[:-1], width, right)) + "  " + cells[-1]

    print(line(head))
    for r in rows:
        print(line(r))
    t = table.totals()
    scaled = f"{t['macs'] / 1e9:.3f} G" if t["macs"] >= 1e9 else f"{t['macs'] / 1e6:.3f} M"
    print(f"{t['layers']} layers: {t['macs']:,} MACs ({scaled}), {t['params']:,} params, "
          f"{t['bytes_read']:,} bytes read, {t['bytes_written']:,} bytes written (batch {table.source['batch']})")
    if args.output:
        print(f"wrote {args.output}")
    return 0
