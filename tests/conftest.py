"""Shared fixtures. The suite imports the *installed* package (pytest runs in importlib mode, so
the source folder maple_edge_lite/ is never on sys.path); this file fails fast otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import maple_edge_lite as mel

# Test modules import their helpers with `from _util import ...`: put this folder (not the
# repository root, which holds the source package) on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import feature_names, random_layers  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    pkg = Path(mel.__file__).resolve().parent
    if pkg == REPO / "maple_edge_lite":
        raise pytest.UsageError(
            "the tests imported the source folder, not the installed package: "
            "run `pip install .` and then `pytest` from the repository root"
        )


@pytest.fixture
def pack_random(tmp_path):
    """pack_random(dims, seed=0, **pack_kwargs) -> (path, QuantizedMLP)."""

    def make(dims, seed=0, name="model.melw", **kw):
        path = tmp_path / name
        kw.setdefault("feature_names", feature_names(dims[0]))
        q = mel.pack(random_layers(dims, seed), path, **kw)
        return path, q

    return make


@pytest.fixture
def model_bytes(pack_random):
    """The bytes of a small valid model file (16 -> 32 -> 1) and its QuantizedMLP."""
    path, q = pack_random([16, 32, 1], seed=3, metadata={"search_space": "nb201"})
    return path.read_bytes(), q


@pytest.fixture
def precision_runtime():
    """A runtime "fake-prec" whose adapter takes a ``precision`` option (as OpenVINO's does): the
    fixture is the list of the precisions it was built with; runs do nothing."""
    from maple_edge_lite.device import runtimes

    seen = []

    def factory(threads=1, precision=None):
        seen.append(precision)
        return runtimes.CallableRuntime("fake-prec", "1.0", lambda model, threads: (lambda: None), threads=threads)

    runtimes.register("fake-prec", factory)
    yield seen
    runtimes.unregister("fake-prec")
