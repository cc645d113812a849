"""The C API from C: tests/c/scheduler.c, compiled with the system C compiler against the installed
header and shared library (flags from `python -m maple_edge_lite --cflags --libs`), must agree with
Model.predict bit for bit and report errors by status name."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import maple_edge_lite as mel

SRC = Path(__file__).resolve().parent / "c" / "scheduler.c"


def _c_compiler():
    cc = os.environ.get("CC")
    if cc:
        return shlex.split(cc)
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    return None


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    cc = _c_compiler()
    if cc is None or not shutil.which(cc[0]):
        pytest.skip("no C compiler (cc, gcc, clang or $CC) on PATH")
    # from a scratch directory: `python -m` puts the current directory first on sys.path, and in
    # the repository root that is the source folder, not the installed package
    out = tmp_path_factory.mktemp("c_api")
    r = subprocess.run([sys.executable, "-m", "maple_edge_lite", "--cflags", "--libs"], capture_output=True, text=True, cwd=out)
    assert r.returncode == 0, r.stderr
    flags = shlex.split(r.stdout)
    assert any(f.startswith("-I") for f in flags) and "-lmaple_edge_lite" in flags, flags
    exe = out / "scheduler"
    cmd = cc + ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", str(SRC), "-o", str(exe)] + flags + ["-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{shlex.join(cmd)}\n{r.stderr}"
    return exe


def run(exe, *args, env=None):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=60, env=env)


def write_candidates(path: Path, x: np.ndarray):
    lines = ["# one candidate architecture per line: raw features"]
    lines += [" ".join("%.9g" % v for v in row) for row in x.astype(np.float32)]
    path.write_text("\n".join(lines) + "\n\n")


def parse_output(out: str):
    preds = {}
    fastest = None
    for line in out.splitlines():
        m = re.fullmatch(r"candidate (\d+) (\S+)", line)
        if m:
            preds[int(m.group(1))] = np.float32(float(m.group(2)))
        m = re.fullmatch(r"fastest (\d+) (\S+)", line)
        if m:
            fastest = (int(m.group(1)), np.float32(float(m.group(2))))
    got = np.array([preds[i] for i in range(len(preds))], dtype=np.float32)
    return got, fastest


@pytest.fixture
def candidates(tmp_path):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((41, 24)) * 2).astype(np.float32)
    x[7] = 0.0
    x[9, ::2] = 1e30  # saturates the input quantization
    x[40] = x[3]  # a tie: the first of equals wins, in C as in np.argmin
    path = tmp_path / "candidates.txt"
    write_candidates(path, x)
    return path, x


def test_text_round_trip_is_exact(candidates):
    """%.9g round-trips a float32, so C (strtof) sees exactly the array Python predicts on."""
    path, x = candidates
    rows = [r for r in path.read_text().splitlines() if r and not r.startswith("#")]
    back = np.array([[np.float32(float(v)) for v in r.split()] for r in rows], dtype=np.float32)
    assert np.array_equal(back.view(np.uint32), x.view(np.uint32))


def _kernels():
    return [k for k in ("scalar", "avx2", "avx512vnni", "neon") if mel._core.kernel_available(k)]


@pytest.mark.parametrize("output", ["exp", "identity"])
def test_scheduler_matches_python_bit_for_bit(scheduler, pack_random, candidates, output):
    model_path, q = pack_random([24, 48, 32, 1], seed=5, output=output, output_shift=1.0)
    cand_path, x = candidates
    want = mel.Model.load(model_path).predict(x)
    assert np.array_equal(want.view(np.uint32), q.predict(x).view(np.uint32))
    for kernel in [None] + _kernels():
        env = dict(os.environ)
        env.pop("MEL_KERNEL", None)
        if kernel:
            env["MEL_KERNEL"] = kernel
        r = run(scheduler, model_path, cand_path, env=env)
        assert r.returncode == 0, r.stderr
        head = f"input_dim 24, 3 layers, kernel {kernel}" if kernel else "input_dim 24, 3 layers"
        assert head in r.stdout, r.stdout
        got, fastest = parse_output(r.stdout)
        assert got.shape == want.shape
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), (kernel, got, want)
        assert fastest == (int(np.argmin(want)), want.min())


def test_scheduler_corrupt_model(scheduler, model_bytes, candidates, tmp_path):
    data, _ = model_bytes
    bad = bytearray(data)
    bad[220] ^= 0x10  # inside the INPUT section: the payload CRC no longer matches
    p = tmp_path / "damaged.melw"
    p.write_bytes(bytes(bad))
    r = run(scheduler, p, candidates[0])
    assert r.returncode == 1
    assert r.stdout == ""
    assert f"error: MEL_ERR_CHECKSUM: {p}: payload CRC-32 mismatch" in r.stderr


def test_scheduler_future_version(scheduler, model_bytes, candidates, tmp_path):
    data = bytearray(model_bytes[0])
    struct.pack_into("<H", data, 12, 7)
    struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[:60])))
    p = tmp_path / "future.melw"
    p.write_bytes(bytes(data))
    r = run(scheduler, p, candidates[0])
    assert r.returncode == 1
    assert "error: MEL_ERR_VERSION: " in r.stderr and "format version 7 is not supported" in r.stderr


def test_scheduler_missing_model(scheduler, candidates, tmp_path):
    p = tmp_path / "missing.melw"
    r = run(scheduler, p, candidates[0])
    assert r.returncode == 1
    assert f"error: MEL_ERR_NOT_FOUND: weights file not found: {p}" in r.stderr


def test_scheduler_non_finite_candidate(scheduler, model_bytes, tmp_path):
    path = tmp_path / "model.melw"  # written by the fixture: 16 features f0..f15
    rows = [["0.5"] * 16, ["0.5"] * 16]
    rows[1][4] = "nan"
    c = tmp_path / "nan.txt"
    c.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    r = run(scheduler, path, c)
    assert r.returncode == 1
    assert "error: MEL_ERR_INVALID_ARGUMENT: input row 1, feature 4 ('f4') is not a finite number" in r.stderr


def test_scheduler_bad_candidates_and_usage(scheduler, model_bytes, tmp_path):
    path = tmp_path / "model.melw"
    c = tmp_path / "short.txt"
    c.write_text("1 2 3\n")
    r = run(scheduler, path, c)
    assert r.returncode == 2 and "expected 16 numbers" in r.stderr
    assert run(scheduler).returncode == 2


def test_c_api_argument_handling(scheduler, model_bytes, tmp_path):
    """NULL pointers, n_rows = 0, out-of-range indices, load_buffer copying: see check_api() in
    tests/c/scheduler.c."""
    r = run(scheduler, "--check-api", tmp_path / "model.melw")
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"ok (\d+) checks", r.stdout)
    assert m and int(m.group(1)) >= 80, r.stdout


def test_interval_from_c_matches_python_bit_for_bit(scheduler, tmp_path):
    """tests/c/interval.c: a device model's interval through mel_model_predict_arch_interval and
    mel_model_interval_level, compiled against the installed package like the scheduler."""
    from maple_edge_lite import encode as enc
    from maple_edge_lite.learn.adapt import adapt_base

    cc = _c_compiler()
    flags = subprocess.run([sys.executable, "-m", "maple_edge_lite", "--cflags", "--libs"], capture_output=True,
                           text=True, cwd=tmp_path).stdout.split()
    exe = tmp_path / "interval"
    cmd = cc + ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", str(SRC.parent / "interval.c"), "-o",
                str(exe)] + flags + ["-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rng = np.random.default_rng(3)
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    archs = ["|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*rng.choice(ops, 6)) for _ in range(30)]
    ms = np.exp(rng.normal(0, 0.5, 10))
    adapt_base(mel.load(), archs[:10], ms, out=tmp_path / "dev.melw")
    r = run(exe, tmp_path / "dev.melw", *archs)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    got = np.array([[np.float32(float(v)) for v in line.split()[:3]] for line in lines[:-1]], np.float32)
    assert [line.split()[3] for line in lines[:-1]] == archs and lines[-1] == "level 0.9"
    want = np.column_stack(mel.Model.load(tmp_path / "dev.melw").predict_archs_interval(archs))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.all((got[:, 1] < got[:, 0]) & (got[:, 0] < got[:, 2]))
    mel.pack([(np.ones((1, len(enc.feature_names("nb201")))), np.zeros(1))], tmp_path / "plain.melw",
             feature_names=enc.feature_names("nb201"), output="identity", search_space="nb201")
    r = run(exe, tmp_path / "plain.melw", archs[0])
    assert r.returncode == 1 and "level: MEL_ERR_UNSUPPORTED" in r.stderr and "carries no interval" in r.stderr
