"""The device cache under concurrency and across upgrades: two first calls at once build one
entry and give identical answers; a reader never finds no entry while a writer replaces it; an
entry made by other code (package or adaptation version) is rebuilt, not served."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from maple_edge_lite import _cache
from maple_edge_lite.learn import adapt as A

ARCHS = ["|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|",
         "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"]

# A process that plays `predict` on a fake device: profile and measure are replaced by fakes
# that take a while (so two processes overlap) and return *random* latencies (so two separate
# builds would give different device models, and different answers).
WORKER = textwrap.dedent("""
    import json, os, random, sys, time
    import numpy as np
    from maple_edge_lite import _cache
    from maple_edge_lite.device import measure as M, profile as P, runtimes

    runtimes.register("fake-rt", lambda threads=1: runtimes.CallableRuntime(
        "fake-rt", "1.0", lambda model, threads: (lambda: None), threads=threads))
    rng = random.Random(os.getpid() ^ time.perf_counter_ns())

    def fake_profile(runtime, threads=1, progress=None, **kw):
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0.2")))
        return {"schema": P.SCHEMA, "feature_schema": P.FEATURE_SCHEMA, "created": "2025-01-01T00:00:00+00:00",
                "device": {"hostname": "board", "cpu_model": "Test CPU", "cores": 4, "kernel": "6.0", "pmus": {}},
                "runtime": {"name": runtime, "version": "1.0", "threads": threads},
                "suite": {}, "timing": {}, "features": []}

    def fake_measure(archs, runtime, threads=1, device=None, progress=None, **kw):
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0.2")))
        return M.Measurements([M.Row(None, a, device or "board", rng.uniform(0.2, 2.0), None) for a in archs],
                              conditions={"runtime": {"name": runtime, "version": "1.0", "threads": threads}})

    P.profile, M.measure = fake_profile, fake_measure
    mode = sys.argv[1]
    if mode == "predict":
        model, entry, built = _cache._device_model("fake-rt", 1)
        print(json.dumps({"built": built, "entry": str(entry),
                          "ms": [float(v) for v in model.predict_archs(json.loads(sys.argv[2]))]}))
    elif mode == "refresh":
        for _ in range(int(sys.argv[2])):
            _cache._device_model("fake-rt", 1, refresh=True)
        print("done")
""")


def _spawn(tmp_path, cache, *args, sleep="0.2"):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, MAPLE_EDGE_LITE_CACHE=str(cache), FAKE_SLEEP=sleep, OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))


def _entries(cache: Path):
    return sorted(p.name for p in (cache / "devices").iterdir())


@pytest.mark.slow
def test_two_first_predicts_at_once_build_one_entry(tmp_path):
    for round_ in range(20):
        cache = tmp_path / f"cache{round_}"
        procs = [_spawn(tmp_path, cache, "predict", json.dumps(ARCHS)) for _ in range(2)]
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            outs.append(json.loads(out))
        assert outs[0]["ms"] == outs[1]["ms"], f"round {round_}: two device models"
        assert sorted(o["built"] for o in outs) == [False, True], f"round {round_}: built {outs}"
        assert outs[0]["entry"] == outs[1]["entry"]
        # one entry: its link, the folder it points to, the lock; no half-built or old folder left
        names = _entries(cache)
        link = Path(outs[0]["entry"])
        assert link.is_symlink() and len(names) == 3, names
        assert sorted(names) == sorted([link.name, os.readlink(link), f".{link.name}.lock"])


@pytest.mark.slow
def test_a_reader_always_finds_an_entry_while_it_is_replaced(tmp_path):
    cache = tmp_path / "cache"
    first = _spawn(tmp_path, cache, "predict", json.dumps(ARCHS), sleep="0")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    entry = Path(json.loads(out)["entry"])
    manifest = json.loads((entry / "manifest.json").read_text())
    writer = _spawn(tmp_path, cache, "refresh", 100, sleep="0")
    reads = misses = 0
    seen = set()
    while writer.poll() is None:
        got = _cache._load_entry(entry, manifest["key"])
        reads += 1
        if got is None:
            misses += 1
        else:
            seen.add(got.metadata["provenance"]["cache_key"])
    assert writer.communicate()[0].strip() == "done"
    assert reads > 100 and misses == 0, f"{misses} of {reads} reads found no entry"
    assert len(_entries(cache)) == 3  # old folders removed after each swap


def test_an_entry_of_other_code_is_not_served(monkeypatch):
    key = {"schema": _cache.MANIFEST_SCHEMA, "device": {}, "runtime": {"name": "r", "threads": 1}, "base": {}}
    monkeypatch.setattr(_cache, "device_facts", lambda: {})
    monkeypatch.setattr(_cache, "runtime_identity", lambda n, t: {"name": n, "threads": t})
    monkeypatch.setattr(_cache, "_base_identity", lambda b: {})
    now = _cache.cache_key("r", 1)
    assert now["code"]["adapt"] == A.ADAPT_VERSION and now["code"]["maple_edge_lite"]
    monkeypatch.setattr(A, "ADAPT_VERSION", A.ADAPT_VERSION + 1)
    later = _cache.cache_key("r", 1)
    assert _cache.digest(later) != _cache.digest(now) and {k: later[k] for k in key} == key


def test_an_entry_folder_from_before_links_is_replaced(tmp_path):
    """0.1 wrote each entry as a real folder at the entry's path: _install swaps it out."""
    d = tmp_path / "devices" / "rt-1t-0123456789abcdef"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text("{}")
    new = tmp_path / "devices" / ".new.tmp"
    new.mkdir()
    (new / "manifest.json").write_text('{"new": 1}')
    _cache._install(new, d)
    assert d.is_symlink() and json.loads((d / "manifest.json").read_text()) == {"new": 1}
    assert sorted(p.name for p in d.parent.iterdir()) == sorted([d.name, os.readlink(d)])


def test_a_killed_build_releases_the_lock(tmp_path):
    d = tmp_path / "devices" / "rt-1t-x"
    code = ("import sys, time\nfrom pathlib import Path\nfrom maple_edge_lite import _cache\n"
            "with _cache._build_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, text=True, cwd=str(tmp_path))
    lock = d.parent / f".{d.name}.lock"

    def try_lock():
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    try:
        assert p.stdout.readline().strip() == "locked"
        assert not try_lock()  # held by the builder
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    assert try_lock()  # released with the process
