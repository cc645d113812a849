"""Import cost, the CLI, and the flags a C program builds with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import maple_edge_lite as mel


# Subprocesses start in the tests folder: the repository root would put the source package,
# which has no compiled core, in front of the installed one.
HERE = Path(__file__).resolve().parent


def run(*args, **kw):
    kw.setdefault("cwd", HERE)
    return subprocess.run([sys.executable, "-m", "maple_edge_lite", *args], capture_output=True, text=True, **kw)


def test_import_loads_nothing_beyond_numpy_and_the_stdlib():
    code = (
        "import sys, json; before = set(sys.modules); import maple_edge_lite; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=HERE).stdout
    new = json.loads(out)
    # cython_runtime and _cython_<version> are made in memory by maple_edge_lite._cycore (Cython's
    # shared types), not imported from anywhere.
    foreign = [
        m for m in new
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ("numpy", "maple_edge_lite")
        and not (m == "cython_runtime" or m.startswith("_cython_"))
    ]
    assert foreign == []
    assert "maple_edge_lite._core" in new and "maple_edge_lite._cycore" in new


def test_cflags_and_libs_point_at_the_installed_header_and_library():
    pkg = Path(mel.__file__).resolve().parent
    cflags = run("--cflags").stdout.split()
    assert cflags == [f"-I{pkg / 'include'}"]
    assert (pkg / "include" / "maple_edge_lite" / "maple_edge_lite.h").is_file()
    libs = run("--libs").stdout.split()
    assert f"-L{pkg / 'lib'}" in libs and "-lmaple_edge_lite" in libs
    assert any(a.startswith("-Wl,-rpath,") for a in libs)
    assert (pkg / "lib" / "libmaple_edge_lite.so").is_file()
    both = run("--cflags", "--libs").stdout.split()
    assert both == cflags + libs


def test_selfcheck_is_bit_exact(tmp_path):
    r = run("selfcheck", "--json", "--out", str(tmp_path / "s.melw"))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["bit_exact_vs_numpy"] is True
    assert report["predicted_ms_row0"] > 0
    assert (tmp_path / "s.melw").stat().st_size == report["file_bytes"]


def test_cli_failure_is_one_line_and_non_zero(tmp_path):
    r = run("selfcheck", "--out", str(tmp_path / "missing" / "s.melw"))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("maple-edge-lite: error:") and "does not exist" in lines[0]
    r = run("no-such-command")
    assert r.returncode == 2
    assert run().returncode == 2


def test_console_script_matches_module():
    import shutil

    exe = shutil.which("maple-edge-lite", path=str(Path(sys.executable).parent))
    assert exe, "the maple-edge-lite console script is not installed beside this Python"
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == mel.__version__


def test_inspect_reports_the_model_and_fails_cleanly(tmp_path):
    import numpy as np

    mel.pack([(np.ones((3, 4)), np.zeros(3)), (np.ones((1, 3)), np.zeros(1))], tmp_path / "m.melw",
             feature_names=list("abcd"), metadata={"search_space": None, "provenance": {"tables": ["t.csv"]}})
    r = run("inspect", str(tmp_path / "m.melw"), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["layers"] == [4, 3, 1] and rep["feature_names"] == list("abcd")
    assert rep["provenance"] == {"tables": ["t.csv"]} and rep["quantization"]["scheme"] == 1
    assert "4 -> 3 -> 1 int8 MLP" in run("inspect", str(tmp_path / "m.melw")).stdout
    (tmp_path / "bad.melw").write_bytes(b"not a model at all, just some bytes" * 3)
    r = run("inspect", str(tmp_path / "bad.melw"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "bad magic" in r.stderr
    r = run("inspect", str(tmp_path / "missing.melw"))
    assert r.returncode == 1 and "not found" in r.stderr
