"""``device.host.core_cache``: the per-core cache the layer cost model's spill term is priced
against, read from a fake sysfs tree (``tmp_path``) laid out as the kernel lays it out
(``cpuN/cache/indexK/{level,type,size,shared_cpu_list}``, ``cpuN/topology/*_list``). Oracles: the
trees are hand-made, each with the one answer a reader of Documentation/ABI/testing/sysfs-devices-system-cpu
would give; then the real machine's tree, which must give an answer and never raise."""

from __future__ import annotations

import pytest

from maple_edge_lite.device import host


def _tree(tmp_path, caches, core=None, cpu="cpu0"):
    """caches: [(level, type, size, shared_cpu_list)], None for a file left out."""
    d = tmp_path / cpu
    for i, fields in enumerate(caches):
        idx = d / "cache" / f"index{i}"
        idx.mkdir(parents=True)
        for name, v in zip(("level", "type", "size", "shared_cpu_list"), fields):
            if v is not None:
                (idx / name).write_text(f"{v}\n")
    if core is not None:
        (d / "topology").mkdir(parents=True, exist_ok=True)
        (d / "topology" / "thread_siblings_list").write_text(f"{core}\n")
    return str(d)


X86 = [(1, "Data", "48K", "0"), (1, "Instruction", "64K", "0"), (2, "Unified", "2048K", "0"),
       (3, "Unified", "491520K", "0-1")]


def test_private_l2_of_an_x86_core(tmp_path):
    """This VM's layout: a private 2 MiB L2 under a 480 MiB L3 shared by both CPUs."""
    c = host.core_cache(_tree(tmp_path, X86, core="0"))
    assert (c["bytes"], c["level"], c["shared_cpu_list"]) == (2 * 2**20, 2, "0")
    assert "private to one core" in c["reason"]


def test_hyperthreads_share_a_private_cache(tmp_path):
    """With SMT the L2 lists the core's two threads: still private to the core; the L3 is not."""
    caches = [(1, "Data", "32K", "0,8"), (2, "Unified", "1M", "0,8"), (3, "Unified", "16M", "0-15")]
    c = host.core_cache(_tree(tmp_path, caches, core="0,8"))
    assert c["bytes"] == 2**20 and c["level"] == 2
    # without topology files the core is this CPU alone: a cache listing two CPUs is not private,
    # and the L2 is then taken whole as a shared one
    c = host.core_cache(_tree(tmp_path / "b", caches))
    assert c["bytes"] == 2**20 and "shared by CPUs 0,8" in c["reason"]


def test_private_l3_wins_over_l2(tmp_path):
    caches = [(2, "Unified", "512K", "0"), (3, "Unified", "4M", "0")]
    assert host.core_cache(_tree(tmp_path, caches, core="0"))["bytes"] == 4 * 2**20


def test_arm_cluster_l2(tmp_path):
    """A big.LITTLE board: L1 private, a 512 KiB L2 shared by a cluster of four: that L2, whole."""
    caches = [(1, "Data", "32K", "0"), (1, "Instruction", "32K", "0"), (2, "Unified", "512K", "0-3")]
    c = host.core_cache(_tree(tmp_path, caches, core="0"))
    assert (c["bytes"], c["level"], c["shared_cpu_list"]) == (512 * 2**10, 2, "0-3")
    assert "no cache of level >= 2 is private" in c["reason"] and "shared by CPUs 0-3" in c["reason"]


@pytest.mark.parametrize("size, want", [("2048K", 2 * 2**20), ("1M", 2**20), ("1024", 1024), ("2 MiB", 2 * 2**20),
                                        ("512k", 512 * 2**10), ("1G", 2**30), ("0K", None), ("", None),
                                        ("1.5M", None), ("-1K", None), ("big", None), ("2048KB", 2 * 2**20)])
def test_sizes(tmp_path, size, want):
    c = host.core_cache(_tree(tmp_path, [(1, "Data", "32K", "0"), (2, "Unified", size, "0")], core="0"))
    assert c["bytes"] == want
    if want is None:
        assert "unreadable" in c["reason"] and c["level"] is None


@pytest.mark.parametrize("caches, why", [
    ([], "no cache information"),
    ([(1, "Data", "32K", "0"), (1, "Instruction", "32K", "0")], "only level-1 caches"),
    ([(2, "Instruction", "1M", "0")], "only level-1 caches"),
    ([(None, "Unified", "1M", "0")], "only level-1 caches"),   # level missing: not taken
    ([(2, None, "1M", "0")], "only level-1 caches"),           # type missing
    ([(2, "Unified", None, "0")], "size None unreadable"),     # size missing
])
def test_unknown_is_none_with_a_reason(tmp_path, caches, why):
    c = host.core_cache(_tree(tmp_path, caches, core="0"))
    assert c["bytes"] is None and c["level"] is None and why in c["reason"]


def test_missing_tree_and_shared_list(tmp_path):
    assert host.core_cache(str(tmp_path / "cpu0"))["bytes"] is None
    assert "no cache information" in host.core_cache(str(tmp_path / "nowhere"))["reason"]
    # an L2 without shared_cpu_list: sharing unknown, the L2 is taken and the reason says so
    c = host.core_cache(_tree(tmp_path, [(2, "Unified", "1M", None)], core="0"))
    assert c["bytes"] == 2**20 and "unknown sharing" in c["reason"]
    # a malformed list is unknown sharing too, not a crash
    c = host.core_cache(_tree(tmp_path / "m", [(2, "Unified", "1M", "0-x")], core="0"))
    assert c["bytes"] == 2**20 and c["shared_cpu_list"] == "0-x"


def test_this_machine_answers():
    c = host.core_cache()
    assert set(c) == {"bytes", "level", "shared_cpu_list", "reason"} and c["reason"]
    assert c["bytes"] is None or (c["bytes"] >= 2**10 and c["level"] >= 2)
