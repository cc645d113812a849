"""Architecture encoders: architecture strings -> float32 feature vectors.

The encoders are C++ (``csrc/src/encode/``), the same code a board runs through
``mel_model_predict_arch``; this module is their Python face, so a model trained on
``encode(space, archs)`` sees on the device exactly the features it was trained on.

Spaces (``SPACES``):

- ``"nb201"``: NAS-Bench-201 cells in the official notation,
  ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
- ``"fbnet"``: 22 FBNet layer ops joined by ``|``, e.g. ``k3_e1|k3_e6|...|skip``.

Each space has a fixed, ordered, named feature schema (``feature_names``) with a version
(``schema_version``); the features are described in ``docs/format.md`` (ENCODER). Strings must be
in the official notation exactly; anything else raises ``InputError`` (a ``ValueError``) naming
the string's index and what is wrong."""

from __future__ import annotations

from typing import Iterable, Union

import numpy as np

from . import _core

SPACES = ("nb201", "fbnet")
SPACE_IDS = {"nb201": _core.SPACE_NB201, "fbnet": _core.SPACE_FBNET}

_names: dict = {}


def feature_names(space: str) -> tuple:
    """The ordered feature names of ``space``'s encoder, e.g. ``("edge0:none", ...)``."""
    names = _names.get(space)
    if names is None:
        names = tuple(_core.encoder_feature_names(space))
        _names[space] = names
    return names


def schema_version(space: str) -> int:
    """Version of ``space``'s feature schema (changes whenever a feature does)."""
    return _core.encoder_schema_version(space)


def schema_dims(space: str) -> tuple:
    """Features of each of ``space``'s schema versions, 1 to ``schema_version(space)``: a schema only
    grows at its end, so a model made on version v takes the first ``schema_dims(space)[v - 1]``
    features (the core loads and evaluates it with the newer encoder)."""
    return tuple(_core.encoder_schema_dims(space))


def dim(space: str) -> int:
    """Number of features of ``space``'s encoder."""
    return len(feature_names(space))


def notation(arch: str) -> Union[str, None]:
    """The space whose notation ``arch`` looks like, without checking it: ``"nb201"`` for a string
    that starts with ``|`` (``|op~0|+|...``), ``"fbnet"`` for other ``|``-joined ops, else None.
    :func:`encode` is the check."""
    if not isinstance(arch, str):
        return None
    return "nb201" if arch.startswith("|") else ("fbnet" if "|" in arch else None)


def encode(space: str, archs: Union[str, Iterable[str]]) -> np.ndarray:
    """Features of ``archs`` (a sequence of architecture strings, or one string) as a float32
    ``[n, dim]`` array, row i for ``archs[i]``. Runs in the C++ core, without the GIL for large
    batches (all 15,625 NAS-Bench-201 cells take a few milliseconds)."""
    return _core.encode(space, (archs,) if isinstance(archs, str) else archs)


__all__ = ["SPACES", "SPACE_IDS", "feature_names", "schema_version", "schema_dims", "dim", "notation", "encode"]
