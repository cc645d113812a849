"""Train a base predictor on latency tables and pack it as a base ``.melw`` (what
``maple-edge-lite train`` runs; ``tools/train_default.py`` trains the shipped ones)."""

from __future__ import annotations

import datetime
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .. import encode as enc
from ..registry import file_sha256
from .data import load_table

METHODS = ("bayes_linear", "mlp")


def _commit() -> Optional[str]:
    """The git commit of the package's folder, when it is a checkout (not an installed package)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def train_base(data, output, *, space: str = "nb201", method: str = "bayes_linear",
               devices: Optional[Sequence[str]] = None, exclude: Sequence[str] = (), seed: int = 0) -> Dict[str, Any]:
    """Fit the few-shot predictor's prior on the tables under ``data`` (a folder or a list) and
    write it to ``output`` as a base ``.melw`` with its provenance. ``method``: ``bayes_linear``
    (deterministic) or ``mlp`` (seeded). Returns a summary: space, method, devices, archs,
    seconds, bytes."""
    from .. import __version__

    t0 = time.perf_counter()
    table = load_table(data, space, devices=list(devices) if devices else None)
    if exclude:
        table = table.select([d for d in table.devices if d not in set(exclude)])
    X = enc.encode(space, table.archs)
    names = enc.feature_names(space)
    if method == "mlp":
        from .mlp import MLP

        fitted = MLP(seed=seed).fit(X, np.log(table.latency_ms), table.devices, names)
        how = (f"mlp (seed {seed}; {fitted.epochs_run} epochs, early stopping on "
               f"{', '.join(fitted.val_devices) or 'the training devices'})")
    elif method == "bayes_linear":
        from .bayes_linear import BayesLinear

        fitted = BayesLinear().fit(X, np.log(table.latency_ms), table.devices, names)
        how = "bayes_linear (deterministic: no seed)"
    else:
        from .._errors import InputError

        raise InputError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    provenance = {
        "tables": [{"path": s, "sha256": file_sha256(s)} for s in table.sources],
        "devices": table.devices,
        "n_archs": len(table.archs),
        "method": how,
        "trained_by": f"maple_edge_lite {__version__}",
        "commit": _commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if method == "mlp":
        from .mlp import pack_base as pack_mlp

        pack_mlp(fitted, output, archs=table.archs, search_space=space, provenance=provenance)
    else:
        from .bayes_linear import feature_absmax, pack_base

        pack_base(fitted, output, feature_names=names, absmax=feature_absmax(X), search_space=space,
                  provenance=provenance)
    return {"space": space, "method": method, "devices": len(table.devices), "archs": len(table.archs),
            "seconds": time.perf_counter() - t0, "bytes": Path(output).stat().st_size}
