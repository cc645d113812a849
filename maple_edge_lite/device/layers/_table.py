"""The layer table itself: rows, totals, the JSON file and the numeric array. numpy and the
standard library only: a board reads the tables a host made without the ``onnx`` package."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..._errors import FormatError, VersionError

#: Schema of the layer-table file (docs/layers.md). The number changes with ``KINDS``, the row
#: fields or the counting rules.
SCHEMA = "maple_edge_lite.layers/1"
_SCHEMA_PREFIX = "maple_edge_lite.layers/"

#: The layer kinds, in order: ``array()``'s ``kind`` column is the index into this tuple. Fixed
#: for schema 1; a new kind makes a new schema. docs/layers.md says which ONNX ops give which.
KINDS: Tuple[str, ...] = (
    "conv", "pointwise", "depthwise", "grouped", "deconv", "gemm", "matmul",
    "maxpool", "avgpool", "globalpool", "batchnorm", "norm",
    "add", "mul", "elementwise", "concat",
    "relu", "clip", "hardswish", "hardsigmoid", "sigmoid", "swish", "other_activation",
    "resize", "softmax", "transpose", "pad", "reduce", "copy", "other",
)
KINDS_VERSION = 1
#: Activations a conv or gemm row can carry (``""``: none), in ``array()``'s column order.
ACTIVATIONS: Tuple[str, ...] = ("", "relu", "clip", "hardswish", "hardsigmoid", "sigmoid", "swish", "leakyrelu")
#: Kinds that are convolutions (their ``kernel``, ``stride``, ``groups`` mean what they say).
CONV_KINDS = ("conv", "pointwise", "depthwise", "grouped", "deconv")

#: Columns of ``LayerTable.array()``, in order.
ARRAY_COLUMNS: Tuple[str, ...] = (
    "kind", "macs", "params", "bytes_read", "bytes_written",
    "kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w", "groups",
    "cin", "cout", "in_h", "in_w", "out_h", "out_w",
    "activation", "fused_add", "se", "n_inputs",
)

Shape = Optional[Tuple[int, ...]]


class LayerWarning(UserWarning):
    """Something the table could not describe exactly (an op it does not know, a shape ONNX
    shape inference left unknown). The table is still made."""


@dataclass(frozen=True)
class Layer:
    """One row: a layer as the runtime executes it, after its fusions.

    ``inputs``: shapes of the activation tensors the layer reads (constants excluded; for a conv
    with ``fused_add`` the second is the residual); ``output``: the shape of its (first) output.
    A shape is ``None`` where ONNX shape inference could not say. ``kernel``, ``stride``,
    ``dilation`` have one entry per spatial axis, ``padding`` two (ONNX's begin..., end...
    order), all empty for layers without a window. Counts are for the whole batch:
    ``macs`` multiply-accumulates, ``params`` trainable parameters as PyTorch counts them,
    ``bytes_read`` / ``bytes_written`` float32 (4-byte) activations in and out plus weights read."""

    kind: str
    name: str
    op_types: Tuple[str, ...]
    inputs: Tuple[Shape, ...]
    output: Shape
    kernel: Tuple[int, ...] = ()
    stride: Tuple[int, ...] = ()
    dilation: Tuple[int, ...] = ()
    padding: Tuple[int, ...] = ()
    groups: int = 1
    activation: str = ""
    fused_add: bool = False
    se: bool = False
    macs: int = 0
    params: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["op_types"] = list(self.op_types)
        d["inputs"] = [None if s is None else list(s) for s in self.inputs]
        d["output"] = None if self.output is None else list(self.output)
        for k in ("kernel", "stride", "dilation", "padding"):
            d[k] = list(d[k])
        return d


_FIELDS = tuple(f.name for f in fields(Layer))
_COUNTS = ("macs", "params", "bytes_read", "bytes_written")


class LayerTable:
    """The layers of one network, in execution order, with where they came from.

    ``rows``: a list of :class:`Layer`; ``source``: ``{"path", "sha256", "batch"}`` (path and
    sha256 of the ONNX file, ``None`` when made from an in-memory ``ModelProto``)."""

    def __init__(self, rows: Iterable[Layer], source: Optional[Dict[str, Any]] = None):
        self.rows: List[Layer] = list(rows)
        src = {"path": None, "sha256": None, "batch": 1}
        src.update(source or {})
        self.source: Dict[str, Any] = src

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __eq__(self, other) -> bool:
        if not isinstance(other, LayerTable):
            return NotImplemented
        return self.rows == other.rows and self.source == other.source

    def __repr__(self) -> str:
        t = self.totals()
        return f"<LayerTable {t['layers']} layers, {t['macs']:,} MACs, {t['params']:,} params>"

    def kind_counts(self) -> Dict[str, int]:
        """Number of rows of each kind present, in ``KINDS`` order."""
        counts = {k: 0 for k in KINDS}
        for r in self.rows:
            counts[r.kind] += 1
        return {k: v for k, v in counts.items() if v}

    def totals(self) -> Dict[str, int]:
        """``{"layers", "macs", "params", "bytes_read", "bytes_written"}`` summed over the rows."""
        out = {"layers": len(self.rows)}
        for k in _COUNTS:
            out[k] = sum(getattr(r, k) for r in self.rows)
        return out

    # --- the file --------------------------------------------------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """The JSON-ready dict of the file (docs/layers.md)."""
        return {"schema": SCHEMA, "source": dict(self.source), "kinds": list(KINDS),
                "layers": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "layer table") -> "LayerTable":
        """Validate ``d`` (a dict as :meth:`to_dict` makes) and build the table. ``FormatError``
        (``VersionError`` for another schema) naming the field and the row otherwise."""
        return _from_dict(d, where)

    def write(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Write the JSON file atomically (temporary file, fsync, rename); returns the path."""
        from ...format import write_atomic

        text = json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"
        return write_atomic(path, text.encode("utf-8"))

    @classmethod
    def read(cls, path: Union[str, "os.PathLike[str]"]) -> "LayerTable":
        """Read and validate a file :meth:`write` wrote. ``ModelNotFoundError`` if it is missing,
        ``MapleEdgeIOError`` if it cannot be read, ``FormatError`` if it is not a valid table."""
        from ...format import read_bytes

        p = os.fspath(path)
        data = read_bytes(p, "layer table")
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(f"{p}: not a JSON layer table ({e})") from None
        return _from_dict(d, p)

    def write_rows(self, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Write :meth:`array` as a layer rows file (docs/layers.md, "The rows file"): a 32-byte
        header naming the layer-table schema, then float32 little-endian rows, CRC-32 checked.
        What a board program reads without a JSON parser (``mel_layer_rows_parse``) to predict
        with ``mel_model_predict_layers``. Atomic; returns the path."""
        from ...format import write_atomic

        return write_atomic(path, rows_bytes(self.array()))

    # --- numbers for a model ---------------------------------------------------------------

    def array(self) -> np.ndarray:
        """float64 ``[n_layers, len(ARRAY_COLUMNS)]``, one row per layer, columns ``ARRAY_COLUMNS``:
        ``kind`` (index into ``KINDS``), the four counts, kernel/stride/dilation height and
        width (the last two spatial axes; 1 for a 1-D window, 0 for layers without one),
        ``groups``, ``cin`` (channels of the first input), ``cout`` (of the output), ``in_h``,
        ``in_w``, ``out_h``, ``out_w`` (the last two axes of 4-D tensors, 1 and the length for
        3-D, 1 and 1 for 2-D, 0 when unknown), ``activation`` (index into ``ACTIVATIONS``),
        ``fused_add``, ``se`` (0/1) and ``n_inputs`` (activation inputs)."""
        out = np.zeros((len(self.rows), len(ARRAY_COLUMNS)), dtype=np.float64)
        for i, r in enumerate(self.rows):
            x = r.inputs[0] if r.inputs else None
            in_h, in_w = _hw(x)
            out_h, out_w = _hw(r.output)
            out[i] = (
                KINDS.index(r.kind), r.macs, r.params, r.bytes_read, r.bytes_written,
                *_last2(r.kernel, 0), *_last2(r.stride, 0), *_last2(r.dilation, 0), r.groups,
                _channels(x), _channels(r.output), in_h, in_w, out_h, out_w,
                ACTIVATIONS.index(r.activation), int(r.fused_add), int(r.se), len(r.inputs),
            )
        return out


#: The layer rows file (docs/layers.md): magic, then the container version (1).
ROWS_MAGIC = b"\x89MELR\r\n\x1a"
ROWS_VERSION = 1


def table_schema_number() -> int:
    """N of :data:`SCHEMA` (``maple_edge_lite.layers/N``): the row layout's version."""
    return int(SCHEMA.rsplit("/", 1)[1])


def rows_bytes(a: np.ndarray) -> bytes:
    """The bytes of a layer rows file for ``a`` (``LayerTable.array()``; float32 on disk: every
    count up to 2^24 is exact, larger ones within 6e-8 relative)."""
    import struct
    import zlib

    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != len(ARRAY_COLUMNS):
        raise FormatError(f"rows must be [n_layers, {len(ARRAY_COLUMNS)}] (got {list(a.shape)})")
    body = np.ascontiguousarray(a, dtype="<f4").tobytes()
    head = ROWS_MAGIC + struct.pack("<IHHIII", 0x01020304, ROWS_VERSION, table_schema_number(), a.shape[1], a.shape[0],
                                    zlib.crc32(body))
    return head + struct.pack("<I", zlib.crc32(head)) + body


def read_rows(path: Union[str, "os.PathLike[str]"]) -> np.ndarray:
    """float32 ``[n_layers, len(ARRAY_COLUMNS)]``: the rows of a file :meth:`LayerTable.write_rows`
    wrote, checked by the C core's reader (``mel_layer_rows_parse``). ``FormatError`` /
    ``ChecksumError`` for a damaged file, ``VersionError`` for rows of another layer-table
    schema (re-make them with this version)."""
    from ... import _core
    from ...format import read_bytes

    p = os.fspath(path)
    try:
        schema, rows = _core.parse_layer_rows(read_bytes(p, "layer rows file"))
    except FormatError as e:
        err = type(e)(f"{p}: {e}")
        err.status = e.status
        raise err from None
    if schema != table_schema_number() or rows.shape[1] != len(ARRAY_COLUMNS):
        raise VersionError(f"{p}: rows of layer-table schema {schema} ({rows.shape[1]} columns); this version reads "
                           f"schema {table_schema_number()} ({len(ARRAY_COLUMNS)} columns): re-make them with this "
                           "version's LayerTable.write_rows")
    return rows


def _last2(t: Sequence[int], empty: int) -> Tuple[int, int]:
    if not t:
        return empty, empty
    if len(t) == 1:
        return 1, t[0]
    return t[-2], t[-1]


def _hw(s: Shape) -> Tuple[int, int]:
    if s is None or len(s) < 2:
        return (0, 0) if s is None else (1, 1)
    if len(s) == 2:
        return 1, 1
    if len(s) == 3:
        return 1, s[2]
    return s[-2], s[-1]


def _channels(s: Shape) -> int:
    return s[1] if s is not None and len(s) >= 2 else 0


# --- validation ------------------------------------------------------------------------------

_SHA = re.compile(r"^[0-9a-f]{64}$")


def _bad(where: str, what: str) -> FormatError:
    return FormatError(f"{where}: {what}")


def _nonneg_int(v, where: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(where, f"must be an integer >= {minimum}, got {v!r}")
    if v < minimum:
        raise _bad(where, f"must be an integer >= {minimum}, got {v}")
    return v


def _int_list(v, where: str) -> Tuple[int, ...]:
    if not isinstance(v, list):
        raise _bad(where, f"must be a list of integers, got {type(v).__name__}")
    return tuple(_nonneg_int(x, f"{where}[{i}]") for i, x in enumerate(v))


def _shape(v, where: str) -> Shape:
    return None if v is None else _int_list(v, where)


def _row(d, where: str) -> Layer:
    if not isinstance(d, dict):
        raise _bad(where, f"must be an object, got {type(d).__name__}")
    missing = [f for f in _FIELDS if f not in d]
    if missing:
        raise _bad(where, f"missing field {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    kind = d["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise _bad(f"{where}.kind", f"unknown kind {kind!r} (schema {SCHEMA} knows {', '.join(KINDS)})")
    if not isinstance(d["name"], str):
        raise _bad(f"{where}.name", f"must be a string, got {type(d['name']).__name__}")
    ops = d["op_types"]
    if not isinstance(ops, list) or not ops or not all(isinstance(o, str) and o for o in ops):
        raise _bad(f"{where}.op_types", f"must be a non-empty list of op type names, got {ops!r}")
    ins = d["inputs"]
    if not isinstance(ins, list):
        raise _bad(f"{where}.inputs", f"must be a list of shapes, got {type(ins).__name__}")
    act = d["activation"]
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise _bad(f"{where}.activation", f"unknown activation {act!r} (known: {', '.join(repr(a) for a in ACTIVATIONS)})")
    for b in ("fused_add", "se"):
        if not isinstance(d[b], bool):
            raise _bad(f"{where}.{b}", f"must be true or false, got {d[b]!r}")
    row = Layer(
        kind=kind, name=d["name"], op_types=tuple(ops),
        inputs=tuple(_shape(s, f"{where}.inputs[{i}]") for i, s in enumerate(ins)),
        output=_shape(d["output"], f"{where}.output"),
        kernel=_int_list(d["kernel"], f"{where}.kernel"), stride=_int_list(d["stride"], f"{where}.stride"),
        dilation=_int_list(d["dilation"], f"{where}.dilation"), padding=_int_list(d["padding"], f"{where}.padding"),
        groups=_nonneg_int(d["groups"], f"{where}.groups", 1), activation=act,
        fused_add=d["fused_add"], se=d["se"],
        **{k: _nonneg_int(d[k], f"{where}.{k}") for k in _COUNTS},
    )
    if len(row.padding) != 2 * len(row.kernel) or not (len(row.stride) == len(row.dilation) == len(row.kernel)):
        raise _bad(where, f"kernel {list(row.kernel)}, stride {list(row.stride)}, dilation {list(row.dilation)} and "
                   f"padding {list(row.padding)} disagree on the number of spatial axes")
    return row


def _from_dict(d: Any, where: str) -> LayerTable:
    if not isinstance(d, dict):
        raise _bad(where, f"a layer table is a JSON object, got {type(d).__name__}")
    schema = d.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith(_SCHEMA_PREFIX):
            raise VersionError(f"{where}: layer-table schema {schema!r}; this version reads {SCHEMA!r} "
                               "(re-make the table with this version's `maple-edge-lite layers`)")
        raise _bad(f"{where}: schema", f"not a layer table (schema {schema!r}, expected {SCHEMA!r})")
    for k in ("source", "kinds", "layers"):
        if k not in d:
            raise _bad(where, f"missing field {k!r}")
    if d["kinds"] != list(KINDS):
        raise _bad(f"{where}: kinds", f"the kinds list differs from schema {SCHEMA}'s {len(KINDS)} kinds "
                   "(a file edited by hand, or made by another version)")
    src = d["source"]
    if not isinstance(src, dict):
        raise _bad(f"{where}: source", f"must be an object, got {type(src).__name__}")
    for k in ("path", "sha256", "batch"):
        if k not in src:
            raise _bad(f"{where}: source", f"missing field {k!r}")
    if src["path"] is not None and not isinstance(src["path"], str):
        raise _bad(f"{where}: source.path", f"must be a string or null, got {src['path']!r}")
    if src["sha256"] is not None and not (isinstance(src["sha256"], str) and _SHA.match(src["sha256"])):
        raise _bad(f"{where}: source.sha256", f"must be 64 lowercase hex digits or null, got {src['sha256']!r}")
    _nonneg_int(src["batch"], f"{where}: source.batch", 1)
    layers = d["layers"]
    if not isinstance(layers, list):
        raise _bad(f"{where}: layers", f"must be a list, got {type(layers).__name__}")
    rows = [_row(r, f"{where}: layers[{i}]") for i, r in enumerate(layers)]
    return LayerTable(rows, dict(src))


__all__ = ["SCHEMA", "KINDS", "KINDS_VERSION", "ACTIVATIONS", "CONV_KINDS", "ARRAY_COLUMNS", "Layer",
           "LayerTable", "LayerWarning", "read_rows", "rows_bytes", "table_schema_number", "ROWS_MAGIC", "ROWS_VERSION"]
