from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from . import _core, _cycore
from ._errors import FormatError


class Model:
    """A loaded ``.melw`` predictor (immutable; safe to share between threads).

    ``predict`` runs in the C++ core: int8 MLP, no PyTorch, a few microseconds per call."""

    __slots__ = ("_m", "_path", "_metadata", "_names", "_predict")

    def __init__(self, core_model, path: Optional[str] = None):
        self._m = core_model
        # predict goes through Cython, the rest through _core (docs/bindings.md)
        self._predict = _cycore.Predictor(core_model).predict
        self._path = path
        self._metadata = None
        self._names = None

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Model":
        """Load a weights file. Raises ``ModelNotFoundError`` (a ``FileNotFoundError``) if it is
        missing and ``FormatError`` (a ``ValueError``) or a subclass if it is not valid."""
        p = os.fspath(path)
        return cls(_core._Model.load_file(p), p)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Model":
        """Load a model from the bytes of a weights file (copied; ``data`` may go away)."""
        return cls(_core._Model.load_buffer(memoryview(data).cast("B")))

    @property
    def input_dim(self) -> int:
        return self._m.input_dim

    @property
    def layer_dims(self) -> tuple:
        """Output width of each layer, e.g. ``(256, 256, 1)``."""
        return tuple(self._m.layer_dims)

    @property
    def feature_names(self) -> tuple:
        """The feature schema: the ordered names of the input features."""
        if self._names is None:
            self._names = tuple(self._m.feature_names)
        return self._names

    @property
    def metadata(self) -> dict:
        """The metadata stored with the model: search space, provenance, quantization."""
        if self._metadata is None:
            import json

            try:
                meta = json.loads(self._m.metadata_json)
            except ValueError as e:
                raise FormatError(f"{self._path or 'model'}: metadata is not valid JSON: {e}") from None
            if not isinstance(meta, dict):
                raise FormatError(f"{self._path or 'model'}: metadata is not a JSON object")
            self._metadata = meta
        return self._metadata

    def predict(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Latency in milliseconds (float32 ``[n]``) for ``x``, a float32 ``[n, input_dim]``
        array of raw features (or one ``[input_dim]`` row). ``x`` is read in place; a
        non-contiguous or non-float32 array raises ``InputError`` instead of being copied.

        ``out``: a float32 ``[n]`` array (writeable, C-contiguous) to write the result into and
        return, so a caller predicting row after row allocates nothing; the caller owns it."""
        return self._predict(x, out)

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """The output before the transform (log-milliseconds for an ``exp`` model), float64."""
        return self._m.predict_raw(x)

    def predict_archs(self, archs) -> np.ndarray:
        """Latency in milliseconds (float32 ``[n]``) straight from architecture strings (a
        sequence of str, or one str), for a model packed with ``search_space=`` whose input is
        exactly that space's encoder features: the C++ core encodes and predicts in one call, the
        same as ``predict(maple_edge_lite.encode.encode(space, archs))`` bit for bit.

        Raises ``UnsupportedError`` for a model without an encoder and ``InputError`` for a model
        that also takes device-descriptor features (adapt it to a device first) or an invalid
        string."""
        return self._m.predict_arch((archs,) if isinstance(archs, str) else archs)

    @property
    def interval_level(self) -> Optional[float]:
        """The level of the central interval this model gives around its predictions (e.g. 0.9),
        or None for a model that carries none (only device models written by ``adapt`` do)."""
        return self._m.interval_level

    def predict_interval(self, x: np.ndarray):
        """``(ms, lo, hi)``, float32 ``[n]`` each: the prediction and the model's central interval
        (``interval_level``) around it, for ``x`` as in :meth:`predict`. ``UnsupportedError`` for a
        model without an interval."""
        return self._m.predict_interval(x)

    def predict_archs_interval(self, archs):
        """``(ms, lo, hi)`` straight from architecture strings (see :meth:`predict_archs`)."""
        return self._m.predict_arch_interval((archs,) if isinstance(archs, str) else archs)

    @property
    def kind(self) -> str:
        """``"mlp"`` (an int8 MLP over a feature vector: :meth:`predict`) or ``"layer_cost"`` (a
        layer cost model: :meth:`predict_layers`)."""
        return self._m.kind

    @property
    def layer_kinds(self) -> tuple:
        """A layer cost model's layer kinds, in the index order of its rows' ``kind`` column."""
        return tuple(self._m.layer_names(0))

    @property
    def layer_activations(self) -> tuple:
        """A layer cost model's fused activations (``""``: none), in the order of the
        ``activation`` column."""
        return tuple(self._m.layer_names(1))

    @property
    def layer_align(self) -> tuple:
        """A layer cost model's alignment term, ``(align, min_cin, ms_per_mmac)``: a layer whose
        ``cout``, or whose ``cin`` when above ``min_cin``, is not a multiple of ``align`` channels
        adds ``ms_per_mmac[kind]`` (one per :attr:`layer_kinds`) per MMAC to its kind's part;
        ``(0, 0, zeros)`` for a model without the term (formats 3 and 4)."""
        a, c, w = self._m.layer_align
        return int(a), int(c), tuple(w)

    @property
    def layer_spill(self) -> tuple:
        """A layer cost model's spill term, ``(threshold_bytes, ms_per_mb)``: each layer adds
        ``ms_per_mb`` per MB its bytes read plus written exceed the threshold (the device's
        per-core cache); ``(0.0, 0.0)`` for a model without the term (format 3)."""
        return tuple(self._m.layer_spill)

    @property
    def layer_table_schema(self) -> int:
        """The layer-table schema (``maple_edge_lite.layers/N``) a layer cost model was packed for."""
        return self._m.layer_table_schema

    def predict_layers(self, rows: np.ndarray, table_schema: Optional[int] = None, interval: bool = True):
        """``(ms, lo, hi)`` (floats; ``(ms,)`` with ``interval=False``): one network's latency
        from its layer table, in the C++ core, with the model's central interval
        (``interval_level``). ``rows``: ``LayerTable.array()`` (float64 is converted) or the array
        of a rows file, ``[n_layers, columns]`` in the layout of layer-table schema
        ``table_schema`` (default: this library's, ``_core.LAYER_TABLE_SCHEMA``, the layout
        ``LayerTable.array()`` makes); another schema than the model's is a ``VersionError``.
        ``UnsupportedError`` for an MLP model; ``InputError`` for a negative, non-finite or
        out-of-range value (naming the layer and column)."""
        a = np.asarray(rows)
        if a.ndim != 2:
            from ._errors import InputError

            raise InputError(f"rows must be a 2-d array [n_layers, columns] (got shape {list(a.shape)})")
        a = np.ascontiguousarray(a, dtype=np.float32)
        schema = _core.LAYER_TABLE_SCHEMA if table_schema is None else int(table_schema)
        return tuple(float(v) for v in self._m.predict_layers(a, schema, bool(interval)))

    def __repr__(self) -> str:
        if self.kind == "layer_cost":
            where = f" from {self._path!r}" if self._path else ""
            return f"<maple_edge_lite.Model layer cost, {len(self.layer_kinds)} kinds{where}>"
        dims = "→".join(str(d) for d in (self.input_dim,) + self.layer_dims)
        where = f" from {self._path!r}" if self._path else ""
        return f"<maple_edge_lite.Model {dims}{where}>"
