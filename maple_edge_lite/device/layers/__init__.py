"""Layer tables: any ONNX CNN as the list of layers a runtime executes after its fusions, with
each layer's kind, shapes, window, MACs, parameters and bytes moved (docs/layers.md).

    from maple_edge_lite.device.layers import from_onnx, LayerTable
    table = from_onnx("resnet50.onnx", batch=1)      # host: needs the onnx package
    table.totals()                                   # {"layers", "macs", "params", "bytes_read", ...}
    table.write("resnet50.layers.json")              # atomically; schema maple_edge_lite.layers/1
    LayerTable.read("resnet50.layers.json").array()  # board: numpy only, float64 [n, ARRAY_COLUMNS]
    table.write_rows("resnet50.layers.bin")          # float32 rows for a C program (mel_layer_rows_parse)

- ``_table``: :class:`Layer`, :class:`LayerTable`, ``KINDS``, the file and the array (numpy only).
- ``_onnx``: reading and checking the model, fixing dynamic dimensions, ONNX shape inference.
- ``_rows``: the fusion rules and the counting, :func:`from_onnx`.

Importing this package does not import ``onnx``; :func:`from_onnx` imports it on first use and
raises ``UnsupportedError`` naming ``pip install 'maple-edge-lite[onnx]'`` without it."""

from __future__ import annotations

from ._onnx import MIN_OPSET, supported_opsets
from ._rows import FREE, from_onnx
from ._table import (ACTIVATIONS, ARRAY_COLUMNS, CONV_KINDS, KINDS, KINDS_VERSION, SCHEMA, Layer, LayerTable,
                     LayerWarning, read_rows, table_schema_number)

__all__ = ["from_onnx", "Layer", "LayerTable", "LayerWarning", "KINDS", "KINDS_VERSION", "ACTIVATIONS",
           "ARRAY_COLUMNS", "CONV_KINDS", "SCHEMA", "FREE", "MIN_OPSET", "supported_opsets", "read_rows",
           "table_schema_number"]
