"""The sdist builds a working wheel with a C++17 compiler and CMake only, without network."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_sdist_builds_offline(tmp_path):
    pytest.importorskip("scikit_build_core", reason="scikit-build-core is needed to make the sdist")
    pytest.importorskip("pybind11", reason="pybind11 is needed to build from the sdist without network")
    pytest.importorskip("Cython", reason="Cython is needed to build from the sdist without network")
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        pytest.skip("no C++ compiler on PATH")
    if not (REPO / "pyproject.toml").is_file():
        pytest.skip("not running from a source checkout")
    sdist_dir = tmp_path / "sdist"
    subprocess.run(
        [sys.executable, "-c", f"from scikit_build_core.build import build_sdist; print(build_sdist({str(sdist_dir)!r}))"],
        cwd=REPO, check=True, capture_output=True, text=True,
    )
    (sdist,) = sdist_dir.glob("*.tar.gz")
    # The whole package tree (core client, device/, learn/, cli/, predictors/) goes into both.
    tree = sorted(str(p.relative_to(REPO)) for p in (REPO / "maple_edge_lite").rglob("*")
                  if p.is_file() and p.suffix in (".py", ".melw", ".json") and "__pycache__" not in p.parts)
    assert any(n.startswith("maple_edge_lite/learn/") for n in tree) and any(n.startswith("maple_edge_lite/device/") for n in tree)
    with tarfile.open(sdist) as tf:
        in_sdist = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert [n for n in tree if n not in in_sdist] == []
    # Any attempt to reach a network fails fast: no index, and a proxy that refuses connections.
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS="", http_proxy="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    wheel_dir = tmp_path / "wheel"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(wheel_dir), str(sdist)],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = wheel_dir.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "maple_edge_lite/include/maple_edge_lite/maple_edge_lite.h" in names
    assert "maple_edge_lite/lib/libmaple_edge_lite.so" in names
    assert any(n.startswith("maple_edge_lite/_core.") and n.endswith(".so") for n in names)
    assert any(n.startswith("maple_edge_lite/_cycore.") and n.endswith(".so") for n in names)
    assert not any(n.endswith(".pyx") for n in names)
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)
    assert [n for n in tree if n not in names] == []
