"""Architecture encoders (C++, through the C API and _core): agreement with the pure-Python
oracle (tests/_encode_ref.py) on every NAS-Bench-201 cell and every FBNet architecture of the
HELP tables, the published cost figures, the invalid-string matrix, Model.predict_archs against
predict(encode(...)) bit for bit, and the ENCODER section of the weights file: round trip,
corruption matrix, and the errors of models that cannot predict from strings."""

from __future__ import annotations

import csv
import ctypes
import gzip
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

import _encode_ref as ref
import maple_edge_lite as mel
from _util import random_layers
from maple_edge_lite import encode as arch

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
NB201_CSV = DATA / "nb201_archs.csv"
FBNET_CSV = DATA / "help" / "fbnet_latency.csv.gz"

NB = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
NB_INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ALL_POOL = "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|"
FB = "|".join(["k3_e1"] + ["k3_e6", "k5_e1", "skip", "k3_e1_g2"] * 5 + ["k5_e6"])
# FBNet-B (Wu et al. 2019), as listed in maskrcnn-benchmark's fbnet_modeldef.py
FBNET_B = "|".join(
    ["k3_e1"] + ["k3_e6", "k5_e1", "k3_e1", "k3_e1"] + ["k5_e6", "k5_e3", "k3_e6", "k5_e6"]
    + ["k5_e6", "k5_e1", "skip", "k5_e3"] + ["k5_e6", "k3_e1", "k5_e1", "k5_e3"]
    + ["k5_e6", "k5_e1", "k5_e6", "k5_e6"] + ["k3_e6"]
)


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def feature(space, row, name):
    return row[arch.feature_names(space).index(name)]


@pytest.fixture(scope="module")
def nb201_rows():
    if not NB201_CSV.is_file():
        pytest.skip(f"the shared data folder is missing ({NB201_CSV})")
    with open(NB201_CSV, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def fbnet_archs():
    if not FBNET_CSV.is_file():
        pytest.skip(f"the shared data folder is missing ({FBNET_CSV})")
    with gzip.open(FBNET_CSV, "rt", newline="") as f:
        return sorted({row["arch_ops"] for row in csv.DictReader(f)})


# --- the schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("space", arch.SPACES)
def test_schema_is_the_oracles_fixed_ordered_and_unique(space):
    names_fn, _, version = ref.ENCODERS[space]
    names = arch.feature_names(space)
    assert isinstance(names, tuple) and list(names) == names_fn()
    assert len(set(names)) == len(names) == arch.dim(space) == {"nb201": 102, "fbnet": 238}[space]
    assert arch.schema_version(space) == version == {"nb201": 4, "fbnet": 1}[space]
    assert arch.schema_dims(space) == {"nb201": ref.NB201_VERSION_DIMS, "fbnet": (238,)}[space]
    assert arch.encode(space, []).shape == (0, len(names))
    assert arch.SPACE_IDS[space] == {"nb201": 1, "fbnet": 2}[space]


@pytest.mark.parametrize("call", [arch.feature_names, arch.schema_version, lambda s: arch.encode(s, [NB])])
def test_unknown_space_is_an_input_error(call):
    with pytest.raises(mel.InputError, match=r"unknown search space 'nb101'; known: nb201, fbnet") as e:
        call("nb101")
    assert e.value.status == "MEL_ERR_INVALID_ARGUMENT"


# --- the C++ against the oracle, on every architecture ------------------------------------------


def test_nb201_every_cell_matches_the_oracle(nb201_rows):
    archs = [r["arch_str"] for r in nb201_rows]
    assert len(archs) == 15625
    got = arch.encode("nb201", archs)
    assert got.dtype == np.float32 and got.shape == (15625, 102) and got.flags.c_contiguous
    want = ref.encode("nb201", archs)
    diff = np.argwhere(bits(got) != bits(want))
    assert diff.size == 0, [(archs[i], arch.feature_names("nb201")[j], got[i, j], want[i, j]) for i, j in diff[:5]]
    names = arch.feature_names("nb201")
    # the CSV's own columns: cell_connected, and the op index of each edge (Eagle's vector)
    connected = np.array([r["cell_connected"] == "True" for r in nb201_rows])
    assert np.array_equal(got[:, names.index("cell_connected")] == 1, connected) and (~connected).sum() == 341
    eagle = np.array([[int(c) for c in r["eagle_arch_vector"]] for r in nb201_rows])
    assert np.array_equal(got[:, :30].reshape(-1, 6, 5).argmax(axis=2), eagle)
    # NAS-Bench-201's published range over the space on CIFAR-10 (its API's cost_info)
    flops, params = got[:, names.index("flops_32")], got[:, names.index("params")]
    assert (flops.min(), flops.max()) == (np.float32(7.78305), np.float32(220.11969))
    assert (params.min(), params.max()) == (np.float32(0.073306), np.float32(1.531546))


def test_fbnet_every_help_architecture_matches_the_oracle(fbnet_archs):
    assert len(fbnet_archs) == 5000
    got = arch.encode("fbnet", fbnet_archs)
    want = ref.encode("fbnet", fbnet_archs)
    diff = np.argwhere(bits(got) != bits(want))
    assert diff.size == 0, [(fbnet_archs[i], arch.feature_names("fbnet")[j], got[i, j], want[i, j]) for i, j in diff[:5]]


def test_handmade_architectures_match_the_oracle():
    archs = {
        "nb201": [NB, ALL_CONV3, ALL_NONE, NB_INDEX0,
                  "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|",   # live path via node 1
                  "|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|",   # node 1 a dead end
                  "|none~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|nor_conv_3x3~2|"],  # ops after a zero node
        "fbnet": [FB, FBNET_B, "|".join(["skip"] * 22), "|".join(["k5_e6"] * 22), "|".join(["k3_e1_g2"] * 22)],
    }
    for space, a in archs.items():
        assert np.array_equal(bits(arch.encode(space, a)), bits(ref.encode(space, a))), space


# --- cost figures against the published ones ---------------------------------------------------


@pytest.mark.parametrize(
    "cell, flops, params",
    [
        (ALL_CONV3, 220.11969, 1.531546),  # the largest network; NAS-Bench-201 paper: 220 MFLOPs, 1.53 M
        (ALL_NONE, 7.78305, 0.073306),     # the smallest: the skeleton alone
        (NB_INDEX0, 15.64737, 0.129306),   # nb201_index 0, NAS-Bench-201 API cost_info (cifar10-valid)
    ],
)
def test_nb201_costs_equal_nas_bench_201s(cell, flops, params):
    row = arch.encode("nb201", cell)[0]
    assert feature("nb201", row, "flops_32") == np.float32(flops)
    assert feature("nb201", row, "params") == np.float32(params)
    # 224x224: the convolutions see 7x7 times the pixels, the linear head does not change
    f224 = (flops * 1e6 - 650) * 49 + 650
    assert feature("nb201", row, "flops_224") == np.float32(round(f224) / 1e6)


def test_nb201_structure_features():
    rows = arch.encode("nb201", [ALL_NONE, "|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|",
                                 "|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|none~1|none~2|",
                                 "|none~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|nor_conv_3x3~2|"])
    f = lambda r, n: feature("nb201", rows[r], n)  # noqa: E731
    assert f(0, "cell_connected") == 0 and f(0, "flops_live_32") == f(0, "flops_32")
    # 0 -skip-> 1 -conv3-> 3: one live path with one conv
    assert (f(1, "cell_connected"), f(1, "ops_live"), f(1, "longest_path_convs"), f(1, "live:nor_conv_3x3")) == (1, 2, 1, 1)
    # node 1 is a dead end: its conv is executed and reachable but not live
    assert (f(2, "ops_nonzero"), f(2, "ops_reachable"), f(2, "ops_live"), f(2, "longest_path_ops")) == (2, 2, 1, 1)
    assert f(2, "flops_live_32") < f(2, "flops_32")
    # node 1 is zero: the two convs after it are executed, neither reachable nor live
    assert (f(3, "cell_connected"), f(3, "ops_nonzero"), f(3, "ops_reachable"), f(3, "ops_live")) == (0, 2, 0, 0)
    assert f(3, "flops_live_32") == f(0, "flops_32")


def test_fbnet_b_costs_are_close_to_the_papers():
    row = arch.encode("fbnet", FBNET_B)[0]
    # FBNet paper, Table 2: FBNet-B 295 M FLOPs, 4.5 M parameters. Ours: 296.6 M multiply-
    # accumulates (+0.5%) and 4.81 M parameters (+7%: BN parameters and the e1 blocks' 1x1
    # expansion convs, which FBNet's own implementation may drop, are counted here).
    assert abs(feature("fbnet", row, "flops_224") / 295 - 1) < 0.01
    assert abs(feature("fbnet", row, "params") / 4.5 - 1) < 0.08


def test_fbnet_skip_semantics():
    row = arch.encode("fbnet", "|".join(["skip"] * 22))[0]
    f = lambda n: feature("fbnet", row, n)  # noqa: E731
    # only the six shape-changing positions (first layer of stages 1-6) hold a 1x1 projection
    assert (f("skips_projecting"), f("depth"), f("residual_count"), f("expansion_sum")) == (6, 6, 0, 0)
    assert f("stage0:flops_224") == 0 and f("stage4:flops_224") > 0


# --- invalid strings ------------------------------------------------------------------------------

NB_OPS = "none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"
FB_OPS = "k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip"
FB_LAYERS = FB.split("|")

INVALID = [
    ("nb201", "", "empty string; expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2|"),
    ("nb201", NB.replace("nor_conv_3x3~1|skip", "conv_5x5~1|skip"),
     f"edge 4 (node 3 <- node 1): unknown op 'conv_5x5'; expected one of {NB_OPS}"),
    ("nb201", NB.replace("nor_conv_3x3~1|skip_connect~2", "nor_conv_3x3~2|skip_connect~1"),
     "edge 4 (node 3 <- node 1): input node index '2', expected 1"),
    ("nb201", NB.replace("~2|", "~02|"), "edge 5 (node 3 <- node 2): input node index '02', expected 2"),
    ("nb201", NB.replace("|nor_conv_3x3~0|+", "|nor_conv_3x3|+", 1), "edge 0 (node 1 <- node 0): expected 'op~0', found 'nor_conv_3x3'"),
    ("nb201", NB.upper(), "edge 0 (node 1 <- node 0): unknown op 'NOR_CONV_3X3'"),
    ("nb201", NB.replace("|nor_conv_3x3~0|+", "| nor_conv_3x3~0|+", 1), "unknown op ' nor_conv_3x3'"),
    ("nb201", NB.replace("avg_pool_3x3", "avg_pool_3×3"), r"unknown op 'avg_pool_3\xC3\x973'"),
    ("nb201", NB + "x", "trailing characters after node 3: 'x'"),
    ("nb201", NB + "+", "trailing characters after node 3: '+'"),
    ("nb201", NB + "\n", r"trailing characters after node 3: '\x0A'"),
    ("nb201", NB + "|none~3|", "trailing characters after node 3: '|none~3|'"),
    ("nb201", " " + NB, "node 1: expected '|', found ' ' at position 0"),
    ("nb201", NB[:-1], "edge 5 (node 3 <- node 2): expected '|' after 'skip_connect~2', found the end of the string"),
    ("nb201", NB.rsplit("+", 1)[0], "ends after node 2; expected 3 nodes separated by '+'"),
    ("nb201", NB.replace("+", ",", 1), "expected '+' between node 1 and node 2, found ',' at position 16"),
    ("nb201", "|nor_conv_3x3~0|+|nor_conv_3x3~0|+" + NB.rsplit("+", 1)[1], "node 2 has 1 input edge, expected 2"),
    ("nb201", NB.replace("|nor_conv_3x3~0|+", "|none~0|none~1|+", 1), "node 1 has more than 1 input edge"),
    ("nb201", NB.replace("|+|nor_conv_3x3~0|", "|+||nor_conv_3x3~0|", 1), "edge 1 (node 2 <- node 0): empty edge ('||' at position 17)"),
    ("nb201", FB, "node 1: expected '|', found 'k' at position 0"),
    ("nb201", "|" * 2000, "longer than 1024 bytes; no nb201 architecture is that long"),
    ("fbnet", "", "empty string; expected 22 ops separated by '|'"),
    ("fbnet", "|".join(FB_LAYERS[:21]), "expected 22 layers separated by '|', got 21"),
    ("fbnet", FB + "|k3_e1", "expected 22 layers separated by '|', got 23"),
    ("fbnet", FB + "|", "expected 22 layers separated by '|', got 23 (a leading or trailing '|'?)"),
    ("fbnet", ",".join(FB_LAYERS), "expected 22 layers separated by '|', got 1"),
    ("fbnet", "|".join(FB_LAYERS[:5] + ["k7_e6"] + FB_LAYERS[6:]), f"layer 5: unknown op 'k7_e6'; expected one of {FB_OPS}"),
    ("fbnet", "|".join(FB_LAYERS[:3] + [""] + FB_LAYERS[4:]), "layer 3: empty op name (two '|' in a row?)"),
    ("fbnet", "|".join(FB_LAYERS[:21] + [FB_LAYERS[21] + " "]), "layer 21: unknown op 'k5_e6 '"),
    ("fbnet", FB.upper(), "layer 0: unknown op 'K3_E1'"),
    ("fbnet", NB, "expected 22 layers separated by '|', got 10"),
]


@pytest.mark.parametrize("space, bad, fragment", INVALID, ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(INVALID)])
def test_invalid_string_names_the_row_and_the_problem(space, bad, fragment):
    good = NB if space == "nb201" else FB
    with pytest.raises(mel.InputError) as e:
        arch.encode(space, [good, good, bad])
    msg = str(e.value)
    assert msg.startswith(f"archs[2]: invalid {space} architecture '"), msg
    assert fragment in msg, msg
    assert e.value.status == "MEL_ERR_INVALID_ARGUMENT"
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "archs, fragment",
    [
        ([NB, 1], "archs[1] must be a str (got int)"),
        ([NB.encode()], "archs[0] must be a str (got bytes)"),
        (NB.encode(), "archs must be a sequence of str"),
        (5, "archs must be a sequence of str (got int)"),
        ([NB + "\0"], "archs[0] contains a NUL character"),
        (["\ud800"], "archs[0] cannot be encoded as UTF-8"),
    ],
)
def test_bad_python_arguments(archs, fragment):
    with pytest.raises(mel.InputError) as e:
        arch.encode("nb201", archs)
    assert fragment in str(e.value)


def test_any_sequence_of_str_and_one_str():
    one = arch.encode("nb201", NB)
    assert one.shape == (1, 102)
    for seq in ([NB, ALL_NONE], (NB, ALL_NONE), np.array([NB, ALL_NONE]), (a for a in [NB, ALL_NONE])):
        assert np.array_equal(bits(arch.encode("nb201", seq)[0]), bits(one[0]))


def test_threads_share_the_encoders(nb201_rows):
    archs = [r["arch_str"] for r in nb201_rows][:4000]
    want = arch.encode("nb201", archs)
    got = [None] * 4

    def work(i):
        got[i] = arch.encode("nb201", archs)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(bits(g), bits(want)) for g in got)


# --- models that predict from strings -------------------------------------------------------------


def pack_space(path, space, archs, extra=(), seed=0, **kw):
    """A small model on `space`'s features (plus `extra` descriptor features), packed with an
    ENCODER section (unless search_space=None is passed)."""
    x = arch.encode(space, archs)
    if extra:
        x = np.hstack([x, np.random.default_rng(seed).standard_normal((len(x), len(extra))).astype(np.float32)])
    names = list(arch.feature_names(space)) + list(extra)
    kw.setdefault("search_space", space)
    q = mel.pack(random_layers([len(names), 32, 1], seed), path, feature_names=names,
                 input_mean=x.mean(0), input_std=x.std(0) + 1e-3, calibration=x, output_shift=1.0, **kw)
    return mel.Model.load(path), q


@pytest.fixture(scope="module")
def some_nb201(nb201_rows):
    return [r["arch_str"] for r in nb201_rows][::11]  # 1,421 cells


@pytest.mark.parametrize("space", arch.SPACES)
def test_predict_archs_equals_predict_of_encode_bit_for_bit(tmp_path, space, some_nb201, fbnet_archs):
    archs = some_nb201 if space == "nb201" else fbnet_archs[:700]
    m, q = pack_space(tmp_path / "m.melw", space, archs)
    assert m.metadata["search_space"] == space
    got = m.predict_archs(archs)  # several encoder chunks, GIL released
    x = arch.encode(space, archs)
    assert got.dtype == np.float32 and got.shape == (len(archs),)
    assert np.array_equal(bits(got), bits(m.predict(x)))
    assert np.array_equal(bits(got), bits(q.predict(x)))
    assert np.array_equal(bits(m.predict_archs(archs[3])), bits(got[3:4]))
    assert np.array_equal(bits(m.predict_archs(archs[:5])), bits(got[:5]))  # GIL held
    assert m.predict_archs([]).shape == (0,)


def test_predict_archs_names_the_bad_row_across_chunks(tmp_path, some_nb201):
    m, _ = pack_space(tmp_path / "m.melw", "nb201", some_nb201[:100])
    archs = list(some_nb201[:600])
    archs[517] = archs[517].replace("~1|", "~7|", 1)
    with pytest.raises(mel.InputError, match=r"^archs\[517\]: invalid nb201 architecture .*input node index '7', expected 1"):
        m.predict_archs(archs)


def test_model_without_encoder_section(tmp_path):
    m, _ = pack_space(tmp_path / "m.melw", "nb201", [NB, ALL_CONV3, ALL_NONE, NB_INDEX0], search_space=None,
                      metadata={"search_space": "nb201"})
    with pytest.raises(mel.UnsupportedError) as e:
        m.predict_archs([NB])
    assert str(e.value) == "this model has no architecture encoder; pass feature vectors to mel_model_predict"
    assert e.value.status == "MEL_ERR_UNSUPPORTED"


def test_model_with_descriptor_features_must_be_adapted_first(tmp_path):
    archs = [NB, ALL_CONV3, ALL_NONE, NB_INDEX0]
    m, q = pack_space(tmp_path / "m.melw", "nb201", archs, extra=("desc:ref0_ms", "desc:ref1_ms"))
    assert m.input_dim == 104
    with pytest.raises(mel.InputError) as e:
        m.predict_archs(archs)
    msg = str(e.value)
    assert "takes 104 features: the 102 nb201 architecture features and 2 more (from 'desc:ref0_ms')" in msg
    assert "needs a device descriptor" in msg and "`maple-edge-lite adapt`" in msg
    x = np.hstack([arch.encode("nb201", archs), np.ones((4, 2), np.float32)])
    assert np.array_equal(bits(m.predict(x)), bits(q.predict(x)))  # features still work


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"search_space": "nb101"}, "search_space must be one of nb201, fbnet or None (got 'nb101')"),
        ({"names": lambda n: n[:4] + ["x"] + n[5:]}, "feature_names[4] is 'x' but the nb201 encoder's feature 4 is 'edge0:avg_pool_3x3'"),
        ({"names": lambda n: n[1:] + ["extra"]}, "feature_names[0] is 'edge0:skip_connect' but the nb201 encoder's feature 0 is 'edge0:none'"),
        ({"names": lambda n: n[:10]}, "the model takes 10 features but the nb201 encoder computes 102"),
        ({"names": lambda n: n, "search_space": "fbnet"}, "feature_names[0] is 'edge0:none' but the fbnet encoder's feature 0 is 'layer0:k3_e1'"),
        ({"metadata": {"search_space": "fbnet"}}, "metadata['search_space'] is 'fbnet' but search_space='nb201'"),
        ({"names": lambda n: ",".join(n)}, "feature_names must be a sequence of strings, not one string"),
    ],
)
def test_pack_checks_the_encoder_features(tmp_path, kw, fragment):
    names = kw.pop("names", lambda n: n)(list(arch.feature_names("nb201")))
    kw.setdefault("search_space", "nb201")
    d = len(names) if isinstance(names, list) else 102
    with pytest.raises(mel.InputError) as e:
        mel.pack(random_layers([d, 8, 1]), tmp_path / "m.melw", feature_names=names, **kw)
    assert fragment in str(e.value)
    assert not (tmp_path / "m.melw").exists()


def test_pack_accepts_matching_metadata_and_any_name_sequence(tmp_path):
    names = arch.feature_names("fbnet")
    mel.pack(random_layers([len(names), 8, 1]), tmp_path / "m.melw", feature_names=(n for n in names),
             search_space="fbnet", metadata={"search_space": "fbnet", "provenance": {"seed": 1}})
    m = mel.Model.load(tmp_path / "m.melw")
    assert m.metadata["search_space"] == "fbnet" and m.metadata["provenance"] == {"seed": 1}
    assert m.feature_names == names
    assert m.predict_archs([FB]).shape == (1,)


# --- the ENCODER section in the file --------------------------------------------------------------

HEADER, ENTRY, FEATURES, ENCODER = 64, 24, 4, 6


def sections(data: bytes):
    out = []
    for i in range(struct.unpack_from("<I", data, 20)[0]):
        kind, flags, off, size = struct.unpack_from("<IIQQ", data, HEADER + ENTRY * i)
        out.append([kind, flags, bytes(data[off : off + size])])
    return out


def build(secs) -> bytes:
    """A .melw file with these sections, laid out as the writer does, CRCs fixed."""
    table_end = HEADER + ENTRY * len(secs)
    off = table_end + (-table_end % 8)
    table, body = b"", b"\0" * (off - table_end)
    for kind, flags, payload in secs:
        table += struct.pack("<IIQQ", kind, flags, off, len(payload))
        padded = payload + b"\0" * (-len(payload) % 8)
        body += padded
        off += len(padded)
    payload = table + body
    head = b"\x89MELW\r\n\x1a" + struct.pack("<IHHIIQQI", 0x01020304, 1, 1, 64, len(secs), 64 + len(payload), 64,
                                               zlib.crc32(payload)) + b"\0" * 16
    return head + struct.pack("<I", zlib.crc32(head)) + payload


@pytest.fixture(scope="module")
def nb201_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("enc") / "m.melw"
    pack_space(path, "nb201", [NB, ALL_CONV3, ALL_NONE, NB_INDEX0])
    return path.read_bytes()


def test_encoder_section_round_trip(nb201_file):
    secs = sections(nb201_file)
    enc = [s for s in secs if s[0] == ENCODER]
    assert enc == [[ENCODER, 1, struct.pack("<II", 1, 4)]]  # optional flag, nb201, schema 4
    assert secs[-1][0] == ENCODER
    m = mel.Model.from_bytes(build(secs))  # the re-builder itself reproduces a loadable file
    assert m.predict_archs([NB]).shape == (1,)
    # what an older reader sees: the same model without the section
    old = mel.Model.from_bytes(build([s for s in secs if s[0] != ENCODER]))
    with pytest.raises(mel.UnsupportedError):
        old.predict_archs([NB])
    assert np.array_equal(bits(old.predict(arch.encode("nb201", [NB]))), bits(m.predict_archs([NB])))
    # this reader knows kind 6: the section is read even without the optional flag
    required = [[k, 0 if k == ENCODER else f, p] for k, f, p in secs]
    assert mel.Model.from_bytes(build(required)).predict_archs([NB]).shape == (1,)


def _enc(payload):
    return lambda secs: [s if s[0] != ENCODER else [ENCODER, 1, payload] for s in secs]


def _rename_feature(i, name):
    def edit(secs):
        out = []
        for kind, flags, p in secs:
            if kind == FEATURES:
                names, pos = [], 4
                for _ in range(struct.unpack_from("<I", p)[0]):
                    n = struct.unpack_from("<I", p, pos)[0]
                    names.append(p[pos + 4 : pos + 4 + n])
                    pos += 4 + n
                names[i] = name.encode()
                p = struct.pack("<I", len(names)) + b"".join(struct.pack("<I", len(n)) + n for n in names)
            out.append([kind, flags, p])
        return out

    return edit


ENCODER_CORRUPT = [
    ("schema_version_5", _enc(struct.pack("<II", 1, 5)), mel.VersionError,
     "the model takes nb201 features of schema version 5 but this library's nb201 encoder computes versions 1 to 4"),
    ("schema_version_0", _enc(struct.pack("<II", 1, 0)), mel.VersionError, "schema version 0"),
    ("unknown_space_id", _enc(struct.pack("<II", 7, 1)), mel.VersionError,
     "ENCODER section names search space id 7, unknown to this library (it knows 1 = nb201, 2 = fbnet)"),
    ("space_id_u32_max", _enc(struct.pack("<II", 2**32 - 1, 1)), mel.VersionError, f"search space id {2**32 - 1}"),
    ("space_id_0", _enc(struct.pack("<II", 0, 1)), mel.FormatError, "ENCODER section: search space id 0 is not valid"),
    ("wrong_space_for_the_names", _enc(struct.pack("<II", 2, 1)), mel.FormatError,
     "feature 0 of the model is 'edge0:none' but the fbnet encoder's feature 0 is 'layer0:k3_e1'"),
    ("size_12", _enc(struct.pack("<III", 1, 1, 0)), mel.FormatError, "(ENCODER) size is 12, expected 8"),
    ("size_4", _enc(struct.pack("<I", 1)), mel.FormatError, "(ENCODER) size is 4, expected 8"),
    ("size_0", _enc(b""), mel.FormatError, "(ENCODER) size is 0, expected 8"),
    ("duplicate", lambda s: s + [[ENCODER, 1, struct.pack("<II", 1, 1)]], mel.FormatError, "more than one ENCODER section"),
    ("renamed_feature", _rename_feature(7, "edge1:nor_conv_3x3_v2"), mel.FormatError,
     "ENCODER section: feature 7 of the model is 'edge1:nor_conv_3x3_v2' but the nb201 encoder's feature 7 is 'edge1:nor_conv_1x1'"),
    ("last_feature_renamed", _rename_feature(50, "act"), mel.FormatError, "feature 50 of the model is 'act'"),
]


@pytest.mark.parametrize("edit, cls, fragment", [c[1:] for c in ENCODER_CORRUPT], ids=[c[0] for c in ENCODER_CORRUPT])
def test_encoder_section_corruption(nb201_file, edit, cls, fragment):
    data = build(edit(sections(nb201_file)))
    with pytest.raises(cls) as e:
        mel.Model.from_bytes(data)
    assert type(e.value) is cls
    assert fragment in str(e.value), str(e.value)


@pytest.mark.parametrize("version", [1, 2])
def test_a_model_made_on_an_older_schema_predicts_on_its_features(tmp_path, version):
    # A schema grows only at its end: a version-v model takes the first schema_dims[v - 1]
    # features of the current encoder's rows, through predict_archs as through predict.
    d = arch.schema_dims("nb201")[version - 1]
    path = tmp_path / "m.melw"
    mel.pack(random_layers([d, 8, 1]), path, feature_names=arch.feature_names("nb201")[:d])
    m = mel.Model.from_bytes(build(sections(path.read_bytes()) + [[ENCODER, 1, struct.pack("<II", 1, version)]]))
    archs = [NB, ALL_CONV3, ALL_NONE, NB_INDEX0, ALL_POOL] * 9  # more rows than one chunk of the core's buffer
    x = np.ascontiguousarray(arch.encode("nb201", archs)[:, :d])
    assert np.array_equal(bits(m.predict_archs(archs)), bits(m.predict(x)))


def test_the_shipped_schema_2_bases_still_predict_from_strings():
    archs = [NB, ALL_CONV3, ALL_POOL, NB_INDEX0] * 11
    for version in ("1.0.0", "1.1.0"):
        base = mel.load("nb201", version)
        assert base.input_dim == 99
        x = np.ascontiguousarray(arch.encode("nb201", archs)[:, :99])
        assert np.array_equal(bits(base.predict_archs(archs)), bits(base.predict(x)))


def test_encoder_section_on_a_model_with_fewer_features(tmp_path):
    path = tmp_path / "m.melw"
    mel.pack(random_layers([16, 8, 1]), path, feature_names=arch.feature_names("nb201")[:16])
    secs = sections(path.read_bytes()) + [[ENCODER, 1, struct.pack("<II", 1, 2)]]
    with pytest.raises(mel.FormatError, match=r"the nb201 encoder computes 99 features \(schema version 2\) but the model takes only 16"):
        mel.Model.from_bytes(build(secs))


# --- the C API directly ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lib():
    path = Path(mel.__file__).resolve().parent / "lib" / "libmaple_edge_lite.so"
    if not path.is_file():
        pytest.skip(f"no shared library at {path}")
    lib = ctypes.CDLL(str(path))
    lib.mel_last_error.restype = ctypes.c_char_p
    return lib


def test_c_api_arguments(lib, nb201_file):
    size, version, name = ctypes.c_size_t(), ctypes.c_int(), ctypes.c_char_p()
    assert lib.mel_encoder_dim(b"fbnet", ctypes.byref(size)) == 0 and size.value == 238
    assert lib.mel_encoder_schema_version(b"nb201", ctypes.byref(version)) == 0 and version.value == 4
    assert lib.mel_encoder_feature_name(b"nb201", ctypes.c_size_t(46), ctypes.byref(name)) == 0
    assert name.value == b"flops_32"
    bad = -1  # MEL_ERR_INVALID_ARGUMENT
    assert lib.mel_encoder_dim(None, ctypes.byref(size)) == bad and lib.mel_last_error() == b"space is NULL"
    assert lib.mel_encoder_dim(b"nb201", None) == bad and lib.mel_last_error() == b"dim is NULL"
    assert lib.mel_encoder_feature_name(b"nb201", ctypes.c_size_t(102), ctypes.byref(name)) == bad
    assert b"feature index 102 out of range (the nb201 encoder has 102 features)" in lib.mel_last_error()
    for v, d in ((1, 75), (2, 99), (3, 101), (4, 102)):
        assert lib.mel_encoder_schema_dim(b"nb201", v, ctypes.byref(size)) == 0 and size.value == d
    for v in (0, 5, -1):
        assert lib.mel_encoder_schema_dim(b"nb201", v, ctypes.byref(size)) == bad
        assert f"the nb201 feature schema has versions 1 to 4, not {v}".encode() == lib.mel_last_error()
    assert lib.mel_encoder_schema_dim(b"nb201", 1, None) == bad and lib.mel_last_error() == b"dim is NULL"
    out = (ctypes.c_float * 102)()
    assert lib.mel_encode(b"nb201", None, ctypes.c_size_t(0), None) == 0  # nothing to do
    assert lib.mel_encode(b"nb201", None, ctypes.c_size_t(1), out) == bad and lib.mel_last_error() == b"archs is NULL"
    archs = (ctypes.c_char_p * 2)(NB.encode(), None)
    assert lib.mel_encode(b"nb201", archs, ctypes.c_size_t(2), out) == bad
    assert lib.mel_last_error() == b"archs[1] is NULL"
    assert lib.mel_encode(b"nb201", archs, ctypes.c_size_t(1), out) == 0
    assert np.array_equal(bits(np.ctypeslib.as_array(out)), bits(arch.encode("nb201", NB)[0]))
    assert lib.mel_model_predict_arch(None, archs, ctypes.c_size_t(1), out) == bad
    assert lib.mel_last_error() == b"model is NULL"
    m = ctypes.c_void_p()
    assert lib.mel_model_load_buffer(nb201_file, ctypes.c_size_t(len(nb201_file)), ctypes.byref(m)) == 0
    try:
        assert lib.mel_model_predict_arch(m, None, ctypes.c_size_t(0), None) == 0
        assert lib.mel_model_predict_arch(m, archs, ctypes.c_size_t(1), None) == bad
        assert lib.mel_last_error() == b"out_ms is NULL"
        ms = (ctypes.c_float * 1)()
        assert lib.mel_model_predict_arch(m, archs, ctypes.c_size_t(1), ms) == 0
        assert np.array_equal(bits(np.ctypeslib.as_array(ms)), bits(mel.Model.from_bytes(nb201_file).predict_archs(NB)))
    finally:
        lib.mel_model_free(m)
