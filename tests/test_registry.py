"""The shipped predictors: named, versioned, checksummed; load() refuses what it cannot vouch for."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite import encode as enc
from maple_edge_lite import registry

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def copied_registry(tmp_path, monkeypatch):
    """The shipped predictors copied to a temporary folder that the registry reads instead."""
    dst = tmp_path / "predictors"
    shutil.copytree(registry.PREDICTORS_DIR, dst)
    monkeypatch.setattr(registry, "PREDICTORS_DIR", dst)
    monkeypatch.setattr(registry, "_registry", None)
    yield dst
    registry._registry = None  # monkeypatch restores the cached one; drop the copy's either way


def test_default_is_the_nb201_base_with_its_reference_archs():
    m = mel.load()
    meta = m.metadata
    assert registry.default_name() == "nb201"
    assert meta["search_space"] == "nb201" and meta["model_kind"] == "base"
    refs = registry.reference_archs(m)
    assert len(refs) == 10 and len(set(refs)) == 10
    enc.encode("nb201", refs)  # valid strings
    prov = meta["provenance"]
    assert prov["predictor"] == {"name": "nb201", "version": registry.resolve().version}
    tables = {t["path"] for t in prov["tables"]}
    assert tables == {"help/nb201_latency.csv.gz", "eagle_latbench/nb201_latency.csv.gz"}
    assert all(len(t["sha256"]) == 64 for t in prov["tables"])
    assert len(prov["devices"]) == 30 and "pixel3" in prov["devices"]
    assert meta["descriptor_feature_schema"].startswith("maple_edge_lite.descriptor_features/")


@pytest.mark.parametrize("name", ["nb201", "fbnet"])
def test_each_search_space_ships_a_small_base(name):
    e = registry.resolve(name)
    assert e.path.is_file() and e.path.stat().st_size == e.bytes < 200_000
    m = mel.load(name)
    assert m.metadata["search_space"] == name
    assert m.feature_names == enc.feature_names(name)
    assert len(registry.reference_archs(m)) == 10


def test_names_versions_and_paths_select_the_same_file(tmp_path):
    v = registry.resolve("nb201").version
    a = mel.load("nb201", v)
    b = mel.load(f"nb201@{v}")
    assert a.metadata == b.metadata == mel.load().metadata
    x = enc.encode("nb201", ["|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"])
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    # a path: a str with a separator or ending in .melw, or a Path
    p = tmp_path / "copy.melw"
    shutil.copy(registry.resolve("fbnet").path, p)
    assert mel.load(str(p)).metadata["search_space"] == "fbnet"
    assert mel.load(p).metadata["search_space"] == "fbnet"
    with pytest.raises(mel.InputError, match="applies to registry names"):
        mel.load(p, "1.0.0")
    with pytest.raises(mel.ModelNotFoundError):
        mel.load(tmp_path / "missing.melw")


def test_unknown_version_lists_the_known_ones():
    known = registry.versions("nb201")
    with pytest.raises(registry.UnknownPredictorError) as e:
        mel.load("nb201", "99.0.0")
    msg = str(e.value)
    assert "99.0.0" in msg and all(v in msg for v in known) and "nothing is downloaded" in msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, mel.MapleEdgeError)
    with pytest.raises(registry.UnknownPredictorError, match="99.0.0"):
        mel.load("nb201@99.0.0")


def test_unknown_name_lists_the_shipped_predictors():
    with pytest.raises(registry.UnknownPredictorError) as e:
        mel.load("mobilenet")
    assert "mobilenet" in str(e.value) and "nb201" in str(e.value) and "fbnet" in str(e.value)


@pytest.mark.parametrize("bad", ["1.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.x", "", "1.0.0-", "latest"])
def test_malformed_semver_is_refused(bad):
    with pytest.raises(mel.InputError, match="malformed predictor version"):
        mel.load("nb201", bad)


def test_semver_precedence():
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
             "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "2.0.0", "10.0.0"]
    assert sorted(reversed(order), key=registry.semver_key) == order
    assert registry.parse_semver("1.2.3-rc.1+build.5") == (1, 2, 3, "rc.1", "build.5")


def test_tampered_predictor_is_refused_with_the_file_and_the_fix(copied_registry):
    e = registry.resolve("nb201")
    data = bytearray(e.path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, deep in the payload
    e.path.write_bytes(bytes(data))
    with pytest.raises(registry.PredictorChecksumError) as err:
        mel.load("nb201")
    msg = str(err.value)
    assert str(e.path) in msg and "reinstall" in msg and "sha256" in msg
    assert isinstance(err.value, mel.ChecksumError)  # a FormatError, a ValueError
    mel.load("fbnet")  # the other one is intact


def test_registry_checksum_is_what_is_compared(copied_registry):
    # A file that is a *valid* model but not the registered one is refused too: the core's own CRC
    # cannot tell, the registry's sha256 can.
    nb, fb = registry.resolve("nb201"), registry.resolve("fbnet")
    shutil.copy(fb.path, nb.path)
    with pytest.raises(registry.PredictorChecksumError, match="reinstall"):
        mel.load("nb201")
    reg = json.loads((copied_registry / "registry.json").read_text())
    reg["predictors"]["nb201"]["versions"][nb.version]["sha256"] = hashlib.sha256(nb.path.read_bytes()).hexdigest()
    reg["predictors"]["nb201"]["versions"][nb.version]["bytes"] = nb.path.stat().st_size
    (copied_registry / "registry.json").write_text(json.dumps(reg))
    registry._registry = None
    assert mel.load("nb201").metadata["search_space"] == "fbnet"  # now it is what the registry vouches for


def test_missing_or_damaged_registry_says_reinstall(copied_registry):
    registry.resolve("nb201").path.unlink()
    with pytest.raises(mel.ModelNotFoundError, match="reinstall"):
        mel.load("nb201")
    (copied_registry / "registry.json").write_text("{not json")
    registry._registry = None
    with pytest.raises(mel.FormatError, match="reinstall"):
        mel.load()
    (copied_registry / "registry.json").write_text(json.dumps({"schema": registry.SCHEMA, "default": "nb201",
                                                               "predictors": {"nb201": {"versions": {"1.0": {}}}}}))
    registry._registry = None
    with pytest.raises(mel.FormatError, match="malformed version"):
        mel.load()


def test_import_stays_cheap():
    code = ("import sys, maple_edge_lite as m; m.load; "
            "print(sorted(k for k in ('onnx', 'onnxruntime', 'maple_edge_lite.learn.bayes_linear', 'maple_edge_lite.learn.evaluate') "
            "if k in sys.modules))")
    r = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, cwd=REPO.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_sdist_and_wheel_select_the_shipped_predictors(tmp_path):
    """*.melw is git-ignored; pyproject's sdist.include (which the wheel's file selection uses too)
    must bring the predictors back. The installed package (what the other tests load) is the
    wheel's side; this builds the sdist (no compilation) and looks inside."""
    pytest.importorskip("scikit_build_core", reason="scikit-build-core is needed to make the sdist")
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("not running from a source checkout")
    out = tmp_path / "sdist"
    r = subprocess.run([sys.executable, "-c", "from scikit_build_core.build import build_sdist; "
                        f"print(build_sdist({str(out)!r}))"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (sdist,) = out.glob("*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    shipped = {f"maple_edge_lite/predictors/{e['file']}" for p in registry.registry()["predictors"].values()
               for e in p["versions"].values()}
    assert shipped <= names, sorted(shipped - names)
    assert "maple_edge_lite/predictors/registry.json" in names


def test_train_default_writes_and_registers_a_predictor(tmp_path, monkeypatch):
    """tools/train_default.py on a small table: the file, its registry entry, its provenance."""
    tool = REPO / "tools" / "train_default.py"
    if not tool.is_file():
        pytest.skip("not running from a source checkout")
    from _util import write_table

    write_table(tmp_path / "data", n_archs=300, n_devices=5)
    out = tmp_path / "predictors"
    repo = _git_checkout(tmp_path / "repo")
    cmd = [sys.executable, "-P", str(tool), "--data", str(tmp_path / "data"), "--out-dir", str(out),
           "--spaces", "nb201", "--version", "0.2.0", "--repo", str(repo)]
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = (out / "nb201-0.2.0.melw").read_bytes()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode != 0 and "already registered" in r.stderr  # a version is never silently replaced
    r = subprocess.run(cmd + ["--force"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and (out / "nb201-0.2.0.melw").read_bytes() == first  # reproducible
    r = subprocess.run([("0.2" if a == "0.2.0" else a) for a in cmd], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode != 0 and "semver" in r.stderr
    monkeypatch.setattr(registry, "PREDICTORS_DIR", out)
    monkeypatch.setattr(registry, "_registry", None)
    assert registry.names() == ["nb201"] and registry.versions("nb201") == ["0.2.0"]
    meta = mel.load().metadata
    prov = meta["provenance"]
    assert prov["devices"] == [f"dev{d}" for d in range(5)] and prov["created"].startswith("2023-11-14")
    assert [t["path"] for t in prov["tables"]] == ["nb201_latency.csv.gz"]
    assert len(meta["fewshot"]["reference_archs"]) == 10
    assert prov["commit"] == _head(repo)  # the commit it was trained at, exactly
    registry._registry = None


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _head(repo):
    return _git(repo, "rev-parse", "HEAD")


def _git_checkout(path):
    """A one-commit git checkout (what train_default reads its provenance from)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path.mkdir(parents=True)
    _git(path, "init", "-q")
    (path / "code.py").write_text("x = 1\n")
    _git(path, "add", "code.py")
    _git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return path


def test_train_default_refuses_a_dirty_checkout(tmp_path):
    tool = REPO / "tools" / "train_default.py"
    if not tool.is_file():
        pytest.skip("not running from a source checkout")
    from _util import write_table

    write_table(tmp_path / "data", n_archs=300, n_devices=5)
    repo = _git_checkout(tmp_path / "repo")
    (repo / "code.py").write_text("x = 2\n")  # an uncommitted change
    out = tmp_path / "predictors"
    cmd = [sys.executable, "-P", str(tool), "--data", str(tmp_path / "data"), "--out-dir", str(out),
           "--spaces", "nb201", "--version", "0.3.0", "--repo", str(repo)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and "uncommitted changes (code.py)" in r.stderr and "--allow-dirty" in r.stderr
    assert not out.exists() or not list(out.glob("*.melw"))  # nothing written
    r = subprocess.run(cmd + ["--allow-dirty"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and "WARNING" in r.stderr and f"{_head(repo)}-dirty" in r.stderr
    prov = mel.Model.load(out / "nb201-0.3.0.melw").metadata["provenance"]
    assert prov["commit"] == f"{_head(repo)}-dirty"
    r = subprocess.run(cmd[:-1] + [str(tmp_path / "data"), "--force"], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 2 and "not a git checkout" in r.stderr  # a folder that is no checkout


SHARED = REPO.parent / "shared" / "data"


@pytest.mark.slow
def test_shipped_predictors_reproduce_from_this_checkout(tmp_path):
    """Re-train the shipped predictors with tools/train_default.py on the shared tables and compare
    them with the shipped files through the core, bit for bit; and their provenance names a commit
    of this repository that is no -dirty tree."""
    tool = REPO / "tools" / "train_default.py"
    if not tool.is_file() or not SHARED.is_dir():
        pytest.skip("needs a source checkout with ../shared/data beside it")
    from maple_edge_lite.learn.operator_sum import _nb201_space  # noqa: F401  (the space's encodings)

    out = tmp_path / "predictors"
    latest = {name: entry["latest"] for name, entry in registry.registry()["predictors"].items()}
    for version in sorted(set(latest.values())):  # each latest version, re-trained as it was shipped
        names = ",".join(n for n, v in latest.items() if v == version)
        r = subprocess.run([sys.executable, "-P", str(tool), "--data", str(SHARED), "--out-dir", str(out),
                            "--version", version, "--spaces", names, "--default", names.split(",")[0],
                            "--allow-dirty"], capture_output=True,
                           text=True, cwd=tmp_path, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(0)
    for name, version in latest.items():
        shipped = mel.load(name, version)
        fresh = mel.Model.load(out / f"{name}-{version}.melw")
        space = shipped.metadata["search_space"]
        if space == "nb201":
            X = _nb201_space()
        else:
            X = np.ascontiguousarray(rng.random((5000, shipped.input_dim)).astype(np.float32)
                                     * np.asarray(shipped.metadata["feature_absmax"], np.float32))
        assert np.array_equal(shipped.predict(X).view(np.uint32), fresh.predict(X).view(np.uint32)), name
        assert np.array_equal(shipped.predict_raw(X), fresh.predict_raw(X)), name
        # The float prior (JSON metadata) to BLAS round-off: another BLAS or thread count may move its last bits.
        a, b = shipped.metadata["fewshot"], fresh.metadata["fewshot"]
        assert a.keys() == b.keys() and a["reference_archs"] == b["reference_archs"], name
        np.testing.assert_allclose(a["mu"], b["mu"], rtol=1e-9, atol=1e-12, err_msg=name)
        commit = shipped.metadata["provenance"]["commit"]
        assert commit and not commit.endswith("-dirty"), f"{name}: trained from a dirty tree ({commit})"
        if shutil.which("git") and (REPO / ".git").exists():
            shallow = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"],
                                     capture_output=True, text=True).stdout.strip() == "true"
            r = subprocess.run(["git", "-C", str(REPO), "merge-base", "--is-ancestor", commit, "HEAD"],
                               capture_output=True)
            # a shallow clone may not hold the commit: then only its form is checked above
            assert r.returncode == 0 or shallow, f"{name}: provenance commit {commit} is not in this history"
        assert enc.schema_version(space) == shipped.metadata["provenance"]["encoder_schema_version"]
