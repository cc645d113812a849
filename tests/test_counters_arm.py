"""ARM boards through the fake syscall layer playing their kernels: recorded sysfs layouts
(tests/data/sysfs/<board>) of a Raspberry Pi 4 (Cortex-A72), an RK3399 (big.LITTLE, Cortex-A53 +
Cortex-A72) and a Jetson Orin (Cortex-A78AE); what differs from x86 (missing last-level-cache
events, generic events mapped to other PMUv3 events, six counters plus a cycle counter, one PMU per
core type with its own CPUs) and what the library does about it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import maple_edge_lite as mel
from maple_edge_lite import _core
from maple_edge_lite.device import counters as C

from _util import counter_fds

pytestmark = pytest.mark.skipif(not hasattr(_core, "_Counters"), reason="counters need Linux perf_event")

SYSFS = Path(__file__).resolve().parent / "data" / "sysfs"
HW_OK = ("counted", "scaled")


def board(name):
    return str(SYSFS / name)


@pytest.fixture
def fake():
    base_fds = counter_fds()
    yield C._fake_syscalls
    assert _core._counters_fake_open_fds() == 0, "a counter fd was leaked"
    assert _core._counters_fake_bad_closes() == 0, "an fd was closed twice or never opened"
    assert counter_fds() == base_fds


def window(names, spec, **kw):
    """Open `names` over the fake kernel `spec`, count one empty window, return the results."""
    with C._fake_syscalls(spec):
        c = C.Counters(names, **kw)
        try:
            with c:
                pass
            return c.results
        finally:
            c.close()


# --- pmus(): every PMU with its type and CPUs --------------------------------------------------


@pytest.mark.parametrize(
    "name, cores",
    [
        ("rpi4", {"armv8_cortex_a72": (8, (0, 1, 2, 3))}),
        ("rk3399", {"armv8_cortex_a53": (8, (0, 1, 2, 3)), "armv8_cortex_a72": (9, (4, 5))}),
        ("orin", {"armv8_pmuv3_0": (8, tuple(range(12)))}),
    ],
)
def test_pmus_lists_each_pmu_with_its_cpus(name, cores):
    listed = C.pmus(root=board(name))
    assert {"software", "tracepoint", "breakpoint", "kprobe", "uprobe"} <= set(listed)
    assert listed["software"] == 1 and not listed["software"].core and listed["software"].cpus is None
    got = {p.name: (p.type, p.cpus) for p in C.core_pmus(root=board(name))}
    assert got == cores
    for n, (t, cpus) in cores.items():
        p = listed[n]
        assert p == t and isinstance(p, int) and p.core and p.cpus == cpus
        assert f"{p}" == str(t)  # prints as the type number, as pmus() always did
    # The old use of pmus() (name -> type, into JSON) is unchanged.
    assert json.loads(json.dumps(listed))[next(iter(cores))] == next(iter(cores.values()))[0]


def test_pmus_of_this_machine_and_a_missing_root():
    assert C.pmus(root="/nonexistent") == {}
    for n, p in C.pmus().items():  # whatever this machine has
        assert p is None or (isinstance(p, int) and p.name == n)


# --- Raspberry Pi 4: one Cortex-A72 PMU ----------------------------------------------------------

RPI4 = f"sysfs={board('rpi4')};counters=6"


def test_rpi4_maple_edge_events(fake):
    """On a Cortex-A72 six of the ten hardware events count, in one group (cycles on the cycle
    counter + five of the six counters); the last-level-cache events do not exist, and the
    reason says why and what to count instead."""
    res = window(list(C.MAPLE_EDGE_EVENTS) + ["branch-instructions", "branch-misses"], RPI4)
    counted = [n for n, r in res.items() if r.state in HW_OK]
    assert counted == ["cpu-cycles", "instructions", "cache-references", "cache-misses", "L1-dcache-loads",
                       "L1-dcache-load-misses", "cpu-migrations", "branch-misses"]
    for n in counted:
        assert res[n].state == "counted" and res[n].running_ratio == 1.0, n  # one group: no multiplexing
        assert not res[n].per_pmu
    for n in ("LLC-loads", "LLC-load-misses"):
        r = res[n]
        assert r.state == "unsupported" and r.value is None
        assert "ENOENT" in r.reason and "armv8_cortex_a72 does not implement ll_cache" in r.reason
        assert "Armv8.1" in r.reason and "armv8_cortex_a72/l2d_cache/" in r.reason
    for n in ("LLC-stores", "LLC-store-misses"):
        assert res[n].state == "unsupported" and "no Arm PMUv3 event" in res[n].reason
    r = res["branch-instructions"]
    assert r.state == "unsupported" and "br_retired" in r.reason and "pc_write_retired" in r.reason


def test_rpi4_groups_split_at_six_counters(fake):
    """Seven non-cycle events do not fit six counters: the seventh starts a second group, and the
    two groups are multiplexed (scaled, half the window each)."""
    names = ["cpu-cycles", "instructions", "cache-references", "cache-misses", "branch-misses",
             "armv8_cortex_a72/l2d_cache/", "armv8_cortex_a72/l2d_cache_refill/", "armv8_cortex_a72/br_pred/"]
    res = window(names, RPI4)
    assert {r.state for r in res.values()} == {"scaled"}
    assert all(r.running_ratio == 0.5 and r.value == 2 * r.raw for r in res.values())
    # Seven fit (cycles on the cycle counter): one group, exact.
    res = window(names[:7], RPI4)
    assert {r.state for r in res.values()} == {"counted"}


def test_pmu_events_by_name(fake):
    """perf's <pmu>/<event>/ names: from the PMU's events/ folder (config by its format), raw
    codes, and generic events bound to the PMU; unknown ones are an error that says what exists."""
    res = window(["armv8_cortex_a72/l2d_cache/", "armv8_cortex_a72/r17", "armv8_cortex_a72/cpu-cycles/"], RPI4)
    assert {r.state for r in res.values()} == {"counted"}
    with C._fake_syscalls(RPI4):
        with pytest.raises(mel.InputError, match="lists no event 'll_cache_rd'"):
            C.Counters(["armv8_cortex_a72/ll_cache_rd/"])
        with pytest.raises(mel.InputError, match=r"no PMU 'armv8_cortex_a53'.*core PMUs here: armv8_cortex_a72"):
            C.Counters(["armv8_cortex_a53/cpu_cycles/"])
        with pytest.raises(mel.InputError, match="software event"):
            C.Counters(["armv8_cortex_a72/task-clock/"])
        with pytest.raises(mel.InputError, match="requested twice"):
            C.Counters(["armv8_cortex_a72/l2d_cache/", "armv8_cortex_a72/l2d_cache"])


# --- RK3399: big.LITTLE, one PMU per core type --------------------------------------------------

RK = f"sysfs={board('rk3399')};counters=6"
EVENTS = ["cpu-cycles", "instructions", "task-clock"]


@pytest.mark.parametrize("kernel", ["", "ext_type=ENOENT", "ext_type=EINVAL"],
                         ids=["extended-types", "arm-before-6.6", "before-5.13"])
@pytest.mark.parametrize("share", [(0.5, 0.5), (0.75, 0.25), (1.0, 0.0), (0.0, 1.0)])
def test_big_little_sums_the_core_types(fake, kernel, share):
    """A generic event counts only on the cores of the PMU it is bound to: it is opened on both
    core PMUs (extended type, or the PMU's own type with the PMUv3 event where the kernel refuses
    that) and summed. However the task's time splits between the clusters, the sum is the whole
    count and exact (the fake counts 1000 cycles and 2000 instructions per window in all)."""
    spec = f"{RK};{kernel};share:armv8_cortex_a53={share[0]};share:armv8_cortex_a72={share[1]}"
    res = window(EVENTS, spec)
    for n, want in (("cpu-cycles", 1000), ("instructions", 2000)):
        r = res[n]
        assert r.state == "counted" and r.per_pmu and r.running_ratio == 1.0, (n, r.reason)
        assert r.value == r.raw == want
    assert res["task-clock"].state == "counted" and not res["task-clock"].per_pmu


def test_big_little_fallback_uses_the_pmus_own_type(fake):
    """Where the kernel refuses extended types, each core type gets its PMU's own type and the
    PMUv3 event number: an errno rule on that raw event reaches exactly one cluster, whose share
    of the window is then extrapolated from the other (scaled, with the reason)."""
    spec = f"{RK};ext_type=ENOENT;share:armv8_cortex_a53=0.75;share:armv8_cortex_a72=0.25;errno:armv8_cortex_a53/r11=EBUSY"
    r = window(EVENTS, spec)["cpu-cycles"]
    assert r.state == "scaled" and r.per_pmu
    assert r.raw == 250 and r.value == 1000 and r.running_ratio == 0.25
    assert "not countable on some core types" in r.reason and "armv8_cortex_a53" in r.reason and "EBUSY" in r.reason
    # With extended types the same events are named by generic name on each PMU.
    spec = f"{RK};share:armv8_cortex_a53=0.75;share:armv8_cortex_a72=0.25;errno:armv8_cortex_a72/instructions=EBUSY"
    r = window(EVENTS, spec)["instructions"]
    assert r.state == "scaled" and r.raw == 1500 and r.value == 2000


def test_big_little_event_missing_on_one_core_type(fake):
    """branch-instructions: the Cortex-A53 counts it (PC_WRITE_RETIRED), the Cortex-A72 has no such
    event. Exact while the task stays on the A53s, an extrapolation once it runs on the A72s."""
    for kernel in ("", "ext_type=ENOENT"):
        r = window(["branch-instructions"], f"{RK};{kernel};share:armv8_cortex_a53=1.0;share:armv8_cortex_a72=0.0")["branch-instructions"]
        assert r.state == "counted" and r.value == 1000, r.reason
        r = window(["branch-instructions"], f"{RK};{kernel};share:armv8_cortex_a53=0.5;share:armv8_cortex_a72=0.5")["branch-instructions"]
        assert r.state == "scaled" and r.raw == 500 and r.value == 1000
        assert "armv8_cortex_a72" in r.reason and "br_retired" in r.reason


def test_big_little_event_missing_everywhere(fake):
    res = window(["LLC-loads", "LLC-stores"], RK)
    r = res["LLC-loads"]
    assert r.state == "unsupported" and r.per_pmu and r.value is None
    assert r.reason.startswith("on no core type") and "armv8_cortex_a53 does not implement ll_cache_rd" in r.reason
    assert "armv8_cortex_a72 does not implement ll_cache_rd" in r.reason
    assert res["LLC-stores"].state == "unsupported" and "no Arm PMUv3 event" in res["LLC-stores"].reason


def test_big_little_one_core_type_by_name(fake):
    """<pmu>/<event>/ counts one core type: the count while the task ran there, not scaled for
    the time it spent on the other cluster (CounterResult.core_type)."""
    spec = f"{RK};share:armv8_cortex_a53=0.75;share:armv8_cortex_a72=0.25"
    res = window(["armv8_cortex_a53/cpu-cycles/", "armv8_cortex_a72/cpu-cycles/"], spec)
    little, big = res["armv8_cortex_a53/cpu-cycles/"], res["armv8_cortex_a72/cpu-cycles/"]
    both = window(["cpu-cycles"], spec)["cpu-cycles"]
    assert little.state == big.state == "counted" and little.core_type and big.core_type
    assert (little.value, big.value) == (750, 250)
    assert little.running_ratio == 0.75 and big.running_ratio == 0.25
    assert both.value == little.value + big.value == 1000
    r = window(["armv8_cortex_a72/cpu-cycles/"], f"{RK};share:armv8_cortex_a53=1.0;share:armv8_cortex_a72=0")[
        "armv8_cortex_a72/cpu-cycles/"]
    assert r.state == "not_counted" and "did not run on armv8_cortex_a72's CPUs (4-5)" in r.reason


def test_big_little_maple_edge_events(fake):
    """The authors' eleven events on an RK3399: one group per core type, every countable event
    exact over both clusters, the last-level-cache ones unsupported on both."""
    res = window(C.MAPLE_EDGE_EVENTS, f"{RK};share:armv8_cortex_a53=0.5;share:armv8_cortex_a72=0.5")
    for n in C.MAPLE_EDGE_EVENTS:
        r = res[n]
        if n.startswith("LLC-"):
            assert r.state == "unsupported", n
        else:
            assert r.state == "counted" and r.running_ratio == 1.0, (n, r.reason)
            assert r.per_pmu == (n != "cpu-migrations")


def test_big_little_read_error_on_one_cluster(fake):
    r = window(EVENTS, f"{RK};read=short")["cpu-cycles"]
    assert r.state == "not_counted" and "short or malformed read" in r.reason


# --- Jetson Orin: Cortex-A78AE, all eleven hardware events exist, six counters ----------------


def test_orin_has_llc_events_and_multiplexes(fake):
    """A78 (Armv8.2) has the last-level-cache read events: eight hardware events count, more than
    six counters (plus the cycle counter) hold, so they split into two groups and are scaled."""
    res = window(C.MAPLE_EDGE_EVENTS, f"sysfs={board('orin')};counters=6")
    hw = [n for n in C.MAPLE_EDGE_EVENTS if n != "cpu-migrations"]
    ok = [n for n in hw if res[n].state in HW_OK]
    assert ok == [n for n in hw if n not in ("LLC-stores", "LLC-store-misses")]
    for n in ok:
        assert res[n].state == "scaled" and res[n].running_ratio == 0.5 and res[n].value == 2 * res[n].raw
        assert not res[n].per_pmu  # one core PMU: plain generic events
    assert res["cpu-migrations"].state == "counted"


def test_fake_rejects_a_missing_tree():
    with pytest.raises(mel.InputError, match="no PMUs"):
        _core._counters_fake("sysfs=/nonexistent")
    _core._counters_fake(None)
