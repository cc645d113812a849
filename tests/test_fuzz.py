"""Builds the reader's fuzz driver (csrc/tools/fuzz_reader.cpp) with plain CMake under ASan and
UBSan (-fno-sanitize-recover=all: any report aborts) and runs it briefly on a few packed models.
A crash, a sanitizer report or a broken API contract makes the driver exit non-zero and fails the
test. MEL_FUZZ_SECONDS and MEL_FUZZ_SEED override the budget and the PRNG seed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
FUZZ_SECONDS = float(os.environ.get("MEL_FUZZ_SECONDS", "15"))
FUZZ_SEED = int(os.environ.get("MEL_FUZZ_SEED", "20240611"))
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "exitcode=87",
}


def _cxx():
    cxx = os.environ.get("CXX")
    if cxx:
        return cxx if shutil.which(cxx.split()[0]) else None
    return next((c for c in ("c++", "g++", "clang++") if shutil.which(c)), None)


@pytest.fixture(scope="module")
def fuzz_reader(tmp_path_factory):
    cmake = shutil.which("cmake")
    if not cmake:
        pytest.skip("cmake is not on PATH")
    cxx = _cxx()
    if not cxx:
        pytest.skip("no C++ compiler (c++, g++, clang++ or $CXX) on PATH")
    work = tmp_path_factory.mktemp("fuzz")
    probe = work / "probe.cpp"
    probe.write_text("int main() { return 0; }\n")
    r = subprocess.run(cxx.split() + ["-fsanitize=address,undefined", str(probe), "-o", str(work / "probe")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"{cxx} cannot build with -fsanitize=address,undefined: {r.stderr.strip()[-300:]}")
    # LeakSanitizer stops the process's threads with ptrace at exit. Where it cannot (under strace
    # or gdb, or under qemu-user: the emulated arm64 root of tools/aarch64/test_in_root.sh), every
    # run ends in "LeakSanitizer has encountered a fatal error": fuzz under ASan and UBSan alone.
    r = subprocess.run([str(work / "probe")], capture_output=True, text=True, env=dict(os.environ, **SAN_ENV))
    if "LeakSanitizer has encountered a fatal error" in r.stderr:
        SAN_ENV["ASAN_OPTIONS"] = SAN_ENV["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")

    build = work / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = [cmake, "-S", str(REPO), "-B", str(build), *gen, "-DMEL_BUILD_TOOLS=ON", "-DMEL_SANITIZE=ON",
           "-DMEL_BUILD_PYTHON=OFF",
           # -O1: a third of the build time of -O3 under the sanitizers, and about as many runs/s
           "-DCMAKE_BUILD_TYPE=None", "-DCMAKE_CXX_FLAGS=-O1", "-DCMAKE_C_FLAGS=-O1"]
    r = subprocess.run(cfg, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = subprocess.run([cmake, "--build", str(build), "--target", "fuzz_reader", "-j", "2"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
    exe = build / "fuzz_reader"
    assert exe.exists()
    return exe, build


def _run(exe, *args, cwd, timeout):
    env = dict(os.environ, **SAN_ENV)
    env.pop("MEL_KERNEL", None)
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def test_sanitizers_are_active(fuzz_reader, tmp_path):
    """The build really is instrumented, and a sanitizer report really fails the run."""
    exe, build = fuzz_reader
    r = _run(exe, "--self-test-crash=asan", cwd=tmp_path, timeout=60)
    assert r.returncode != 0 and "AddressSanitizer: heap-buffer-overflow" in r.stderr, r.stdout + r.stderr
    r = _run(exe, "--self-test-crash=ubsan", cwd=tmp_path, timeout=60)
    assert r.returncode != 0 and "runtime error: signed integer overflow" in r.stderr, r.stdout + r.stderr
    nm = shutil.which("nm")
    if nm:  # the reader itself (not only the driver) is compiled with the sanitizers
        archive = next(build.glob("libmaple_edge_lite.a"))
        syms = subprocess.run([nm, "-A", str(archive)], capture_output=True, text=True).stdout
        fmt = [line for line in syms.splitlines() if "format.cpp.o" in line]
        assert any("__asan_report" in line for line in fmt), "format.cpp is not built with ASan"
        assert any("__ubsan_handle" in line for line in fmt), "format.cpp is not built with UBSan"


def test_fuzz_reader(fuzz_reader, pack_random, tmp_path):
    exe, _ = fuzz_reader
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, dims, kw in [
        ("std.melw", [16, 32, 1], dict(metadata={"search_space": "nb201"})),
        ("odd.melw", [5, 7, 3, 1], dict(feature_names=["α", "b", "c", "d", "e"], output="identity", output_shift=2.0)),
        ("tiny.melw", [3, 1], dict(feature_names=["x", "y", "z"])),
    ]:
        path, _ = pack_random(dims, seed=len(name), name=name, **kw)
        shutil.move(str(path), seeds / name)
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    r = _run(exe, "--time", FUZZ_SECONDS, "--seed", FUZZ_SEED, "--crash-dir", crashes, seeds,
             cwd=tmp_path, timeout=FUZZ_SECONDS + 180)
    report = f"seed {FUZZ_SEED}, exit {r.returncode}\n{r.stdout}\n{r.stderr[-6000:]}"
    assert r.returncode == 0, report
    assert "runtime error" not in r.stderr and "Sanitizer" not in r.stderr, report
    assert not list(crashes.iterdir()), report
    m = re.search(r"executions: (\d+)", r.stdout)
    assert m and int(m.group(1)) >= 1000, report
    # the mutations got past the checksums to every kind of check, and some mutants loaded
    for status in ("MEL_OK", "MEL_ERR_FORMAT", "MEL_ERR_CHECKSUM", "MEL_ERR_VERSION", "MEL_ERR_LIMIT"):
        assert re.search(rf"\b{status}=\d+", r.stdout), report
    print(r.stdout)


def test_replay_of_seeds(fuzz_reader, model_bytes, tmp_path):
    """--replay runs given files once, unmutated (how a crash file is reproduced)."""
    exe, _ = fuzz_reader
    good = tmp_path / "model.melw"
    bad = tmp_path / "bad.melw"
    bad.write_bytes(model_bytes[0][:100])
    r = _run(exe, "--replay", good, bad, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "executions: 2" in r.stdout
