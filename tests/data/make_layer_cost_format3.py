"""The fixture tests/test_layer_melw.py reads (layer_cost_format3.melw and .json), made once with the
package as of commit bebb56e (format 3 only, before the spill term):
    python tests/data/make_layer_cost_format3.py tests/data/layer_cost_format3
packs a layer cost model and records the float32 bits of what that core predicts for four layer tables."""
import json, sys
import numpy as np
import maple_edge_lite as mel, maple_edge_lite._core as core
from maple_edge_lite.learn import layer_cost as LC
from maple_edge_lite.device import layers as L
assert core.FORMAT_VERSION == 3
rng = np.random.default_rng(11)
w = rng.uniform(0.0, 0.2, len(LC.FEATURE_NAMES)) * (rng.random(len(LC.FEATURE_NAMES)) < 0.8)
m = LC.LayerCostModel(0.3, w)
m.noise = 0.07
F = rng.uniform(0, 20, (9, len(LC.FEATURE_NAMES)))
m.calibrate(F, m.predict(F) * rng.uniform(0.7, 1.4, len(F)))
out = sys.argv[1]
LC.pack(m, out + ".melw", metadata={"provenance": {"made_by": "maple_edge_lite at bebb56e (format 3)"}})
c = mel.Model.load(out + ".melw")
col = L.ARRAY_COLUMNS.index
cases = []
for n in (0, 1, 5, 40):
    A = np.zeros((n, len(L.ARRAY_COLUMNS)), np.float32)
    A[:, col("kind")] = rng.integers(0, len(L.KINDS), n)
    A[:, col("activation")] = rng.integers(0, len(L.ACTIVATIONS), n)
    A[:, col("macs")] = rng.integers(0, 10**9, n)
    A[:, col("bytes_read")] = rng.integers(0, 10**7, n)
    A[:, col("bytes_written")] = rng.integers(0, 10**7, n)
    ms, lo, hi = c.predict_layers(A)
    cases.append({"rows": A.tolist(), "ms_lo_hi_f32_bits": [int(np.float32(v).view(np.uint32)) for v in (ms, lo, hi)]})
json.dump({"made_by": "maple_edge_lite at bebb56e (format 3): tests/data/make_layer_cost_format3.py",
           "columns": list(L.ARRAY_COLUMNS), "cases": cases}, open(out + ".json", "w"), indent=None)
print("ok", [cs["ms_lo_hi_f32_bits"] for cs in cases])
