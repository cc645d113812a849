"""Device models never predict 0 ms or less, through the core: the shipped NB201 base adapted to
every pair of the committed cross-runtime pool (its descriptor, 10 random measurements of that
pair), 20 draws each, predicting all 15,625 cells. Without the floor inside the device model
the same adaptations give raw outputs <= 0 (checked too, so the test exercises the floor)."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite import encode as enc
from maple_edge_lite.device import measure as M, profile as P
from maple_edge_lite.learn.adapt import adapt_base

POOL = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "pool"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DRAWS = 20


def all_cells():
    return [f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|" for o in itertools.product(OPS, repeat=6)]


@pytest.fixture(scope="module")
def pool_pairs():
    pairs = sorted(p for p in POOL.glob("*.csv") if (POOL / f"{p.stem}.descriptor.json").exists())
    if not pairs:
        pytest.skip(f"the cross-runtime pool is not here ({POOL}): run from a source checkout")
    return pairs


def test_no_device_model_predicts_zero_or_less(pool_pairs, tmp_path):
    base = mel.load("nb201")
    cells = all_cells()
    X = enc.encode("nb201", cells)
    out = tmp_path / "device.melw"
    worst, raw_nonpositive, models = np.inf, 0, 0
    for csv in pool_pairs:
        rows = M.read_csv(csv)
        archs = [r["arch_str"] for r in rows]
        ms = np.array([r["latency_ms"] for r in rows])
        desc = P.load_descriptor(POOL / f"{csv.stem}.descriptor.json")
        rng = np.random.default_rng(zlib.crc32(csv.stem.encode()))
        for _ in range(DRAWS):
            idx = rng.choice(len(archs), 10, replace=False)
            adapt_base(base, [archs[i] for i in idx], ms[idx], out=out, descriptor=desc)
            dev = mel.Model.load(out)
            pred = dev.predict_archs(cells)
            assert np.all(np.isfinite(pred))
            worst = min(worst, float(pred.min()))
            raw_nonpositive += int((dev.predict_raw(X) <= 0).sum())
            models += 1
    assert models == len(pool_pairs) * DRAWS
    assert worst > 0, f"a device model predicted {worst} ms"
    # The adaptations are adversarial enough to need the floor: without it some cells would be <= 0.
    assert raw_nonpositive > 0
