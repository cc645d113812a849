"""perf_event counters: real software counters here, hardware ones where a PMU exists, and every
error path through the scripted fake syscall layer (with proof that no fd leaks)."""

from __future__ import annotations

import mmap
import threading
import time

import pytest

import maple_edge_lite as mel
from maple_edge_lite import _core
from maple_edge_lite.device import counters as C

from _util import counter_fds

pytestmark = pytest.mark.skipif(not hasattr(_core, "_Counters"), reason="counters need Linux perf_event")


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def software_events_work():
    r = C.probe(["task-clock"])["task-clock"]
    return r.state == "counted", r.reason


# --- real counters ---------------------------------------------------------------------------


def test_task_clock_matches_the_threads_cpu_time():
    ok, why = software_events_work()
    if not ok:
        pytest.skip(f"software events do not count here: {why}")
    c = C.Counters(["task-clock", "context-switches"], inherit=False)
    t0 = time.thread_time_ns()
    with c:
        spin(0.05)
    cpu = time.thread_time_ns() - t0
    r = c.results["task-clock"]
    assert r.state == "counted"
    assert abs(r.value - cpu) < 0.1 * cpu + 1_000_000
    assert r.running_ratio == 1.0


def test_counting_window_is_the_block():
    """The counts cover the block and nothing else: task-clock equals the CPU time the thread
    spent between the block's edges (perf stat's window ran about a second past the work)."""
    ok, why = software_events_work()
    if not ok:
        pytest.skip(f"software events do not count here: {why}")
    c = C.Counters(["task-clock"], inherit=False)
    for seconds in (0.0005, 0.02):
        t0 = time.thread_time_ns()
        with c:
            spin(seconds)
        cpu = time.thread_time_ns() - t0
        r = c.results["task-clock"]
        # Equal up to the cost of the reads and the clocks' own granularity.
        assert abs(cpu - r.value) < 100_000 + 0.02 * cpu


def test_page_faults_grow_with_freshly_touched_memory():
    ok, why = software_events_work()
    if not ok:
        pytest.skip(f"software events do not count here: {why}")
    pages = 4096
    size = pages * mmap.PAGESIZE
    c = C.Counters(["page-faults", "minor-faults"])
    with c:
        pass
    idle = c.results["page-faults"].value
    buf = mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        buf.madvise(mmap.MADV_NOHUGEPAGE)
    with c:
        for off in range(0, size, mmap.PAGESIZE):
            buf[off] = 1
    touched = c.results["page-faults"].value
    buf.close()
    assert touched >= 0.9 * pages
    assert idle < 0.1 * pages
    assert c.results["minor-faults"].value >= 0.9 * pages


@pytest.mark.parametrize("inherit", [True, False])
def test_worker_thread_is_counted_with_inherit(inherit):
    ok, why = software_events_work()
    if not ok:
        pytest.skip(f"software events do not count here: {why}")
    worker_cpu = []

    def work():
        t0 = time.thread_time_ns()
        spin(0.05)
        worker_cpu.append(time.thread_time_ns() - t0)

    c = C.Counters(["task-clock"], inherit=inherit)
    with c:
        t = threading.Thread(target=work)
        t.start()
        t.join()
    ns = c.results["task-clock"].value
    if inherit:
        assert ns >= 0.95 * worker_cpu[0], "the worker thread's CPU time is missing"
    else:
        assert ns < 0.5 * worker_cpu[0], "without inherit only the calling thread should be counted"


def test_hardware_events_are_a_state_not_an_error():
    c = C.Counters(C.MAPLE_EDGE_EVENTS)
    with c:
        spin(0.002)
    res = c.results
    assert list(res) == list(C.MAPLE_EDGE_EVENTS)
    cycles = res["cpu-cycles"]
    if cycles.state in ("counted", "scaled"):
        # A real PMU: cycles and instructions count something for 2 ms of work.
        assert cycles.value > 100_000
        assert res["instructions"].value > 100_000
    else:
        assert cycles.state in ("unsupported", "denied")
        assert cycles.value is None and cycles.raw is None
        assert cycles.errno != 0 and "errno" in cycles.reason
    assert res["cpu-migrations"].state in ("counted", "unsupported", "denied")
    for r in res.values():
        assert r.state in C.STATES


def test_probe_reports_every_known_event_with_a_reason():
    res = C.probe()
    assert set(C.MAPLE_EDGE_EVENTS) <= set(res)
    for name, r in res.items():
        assert r.state in C.STATES
        if r.state in ("unsupported", "denied", "not_counted"):
            assert r.reason, name
        else:
            assert r.reason == ""


def test_real_counters_leak_no_fd():
    before = counter_fds()
    for _ in range(50):
        c = C.Counters(C.MAPLE_EDGE_EVENTS + ("task-clock", "page-faults"))
        with c:
            pass
        c.close()
    assert counter_fds() == before


def test_unknown_event_and_bad_arguments():
    with pytest.raises(mel.InputError, match="unknown event 'cpu-cyclez'"):
        C.Counters(["cpu-cyclez"])
    with pytest.raises(mel.InputError, match="requested twice"):
        C.Counters(["task-clock", "task-clock"])
    with pytest.raises(mel.InputError, match="no events"):
        C.Counters([])
    c = C.Counters(["task-clock"])
    with pytest.raises(mel.InputError, match="no finished counting window"):
        c.results
    with pytest.raises(mel.InputError, match="without a matching"):
        c.stop()


def test_raw_codes_aliases_and_registered_events():
    c = C.Counters(["r00c0", "cycles", "cs"])
    with c:
        pass
    assert set(c.results) == {"r00c0", "cycles", "cs"}
    C.register_event("my-task-clock", 1, 1)  # PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK
    assert "my-task-clock" in C.known_events()
    c = C.Counters(["my-task-clock"])
    with c:
        t_end = time.thread_time_ns() + 2_000_000  # 2 ms of this thread's CPU, however busy the machine
        while time.thread_time_ns() < t_end:
            pass
    ok, _ = software_events_work()
    if ok:
        assert c.results["my-task-clock"].value > 1_000_000
    with pytest.raises(mel.InputError, match="built-in"):
        C.register_event("task-clock", 1, 2)
    with pytest.raises(mel.InputError, match="characters"):
        C.register_event("bad name!", 1, 2)


# --- the errno matrix through the fake syscall layer ------------------------------------------

EVENTS = ["cpu-cycles", "instructions", "task-clock"]

# (fake spec, event, expected state, fragment of the reason)
MATRIX = [
    ("errno:cpu-cycles=ENOENT", "cpu-cycles", "unsupported", "ENOENT"),
    ("errno:cpu-cycles=EOPNOTSUPP", "cpu-cycles", "unsupported", "EOPNOTSUPP"),
    ("errno:cpu-cycles=ENODEV", "cpu-cycles", "unsupported", "no PMU for this event type"),
    ("errno:cpu-cycles=EINVAL", "cpu-cycles", "unsupported", "rejected this event's configuration"),
    ("errno:cpu-cycles=EBUSY", "cpu-cycles", "unsupported", "exclusive use"),
    ("errno:cpu-cycles=ENOSYS", "cpu-cycles", "unsupported", "seccomp"),
    ("errno:cpu-cycles=EACCES;paranoid=3", "cpu-cycles", "denied", "kernel.perf_event_paranoid=2`"),
    ("errno:cpu-cycles=EPERM;paranoid=2", "cpu-cycles", "denied", "CAP_PERFMON"),
    ("errno:cpu-cycles=EPERM;seccomp=2", "cpu-cycles", "denied", "seccomp filter"),
    ("kernel=EACCES;exclude_kernel=EOPNOTSUPP", "cpu-cycles", "denied", "unable to exclude kernel mode"),
    ("running=0", "cpu-cycles", "not_counted", "time_running = 0"),
    ("running=0", "task-clock", "not_counted", "time_running = 0"),
    ("read=short", "instructions", "not_counted", "short or malformed read"),
    ("read_errno=EIO", "task-clock", "not_counted", "EIO"),
    ("running=half", "instructions", "scaled", "multiplexed"),
    ("member=EINVAL", "instructions", "counted", ""),
    ("group_max=1", "instructions", "counted", ""),
    ("kernel=EACCES", "cpu-cycles", "counted", ""),
    ("inherit=EINVAL", "task-clock", "counted", ""),
    ("", "cpu-cycles", "counted", ""),
]


@pytest.fixture
def fake():
    base_fds = counter_fds()
    yield C._fake_syscalls
    assert _core._counters_fake_open_fds() == 0, "a counter fd was leaked"
    assert _core._counters_fake_bad_closes() == 0, "an fd was closed twice or never opened"
    assert counter_fds() == base_fds


@pytest.mark.parametrize("spec, event, state, fragment", MATRIX, ids=[f"{m[0] or 'ok'}|{m[1]}" for m in MATRIX])
def test_errno_matrix(fake, spec, event, state, fragment):
    with fake(spec):
        c = C.Counters(EVENTS)
        with c:
            pass
        r = c.results[event]
        c.close()
    assert r.state == state
    assert fragment in r.reason
    if state in ("counted", "scaled"):
        assert r.value is not None and r.value > 0
    else:
        assert r.value is None
    if state == "scaled":
        assert r.value == 2 * r.raw and r.running_ratio == 0.5


def test_fallback_to_user_space_is_recorded(fake):
    with fake("kernel=EACCES"):
        c = C.Counters(EVENTS)
        with c:
            pass
        assert all(r.kernel_excluded for r in c.results.values())
        c.close()
    with fake(""):
        c = C.Counters(EVENTS)
        with c:
            pass
        assert not any(r.kernel_excluded for r in c.results.values())
        c.close()


def test_inherit_refused_is_recorded(fake):
    with fake("inherit=EINVAL"):
        c = C.Counters(["task-clock"])
        with c:
            pass
        assert c.results["task-clock"].inherited is False
        c.close()


def test_groups_split_when_the_pmu_refuses_members(fake):
    with fake("group_max=2"):
        c = C.Counters(["cpu-cycles", "instructions", "cache-misses", "branch-misses", "task-clock"])
        with c:
            pass
        # Every event still counts, in groups of at most two.
        assert {r.state for r in c.results.values()} == {"counted"}
        c.close()


@pytest.mark.parametrize("after", [0, 1, 2])
def test_emfile_is_an_error_and_closes_what_was_opened(fake, after):
    with fake(f"emfile_after={after}"):
        with pytest.raises(mel.ResourceError, match="ulimit -n") as ei:
            C.Counters(EVENTS)
        assert isinstance(ei.value, OSError)
        assert _core._counters_fake_open_fds() == 0


def test_every_event_missing_still_opens(fake):
    spec = ";".join(f"errno:{e}=ENOENT" for e in EVENTS)
    with fake(spec):
        c = C.Counters(EVENTS)
        with c:
            pass
        assert {r.state for r in c.results.values()} == {"unsupported"}
        c.close()


def test_fake_requires_cloexec_and_counts_reuse(fake):
    # The same set used for several windows gives fresh deltas each time.
    with fake(""):
        c = C.Counters(["task-clock"])
        vals = []
        for _ in range(3):
            with c:
                pass
            vals.append(c.results["task-clock"].value)
        c.close()
    assert vals == [vals[0]] * 3 and vals[0] > 0


def test_bad_fake_spec_is_rejected():
    with pytest.raises(mel.InputError, match="unknown rule"):
        _core._counters_fake("nonsense=1")
    with pytest.raises(mel.InputError, match="unknown errno"):
        _core._counters_fake("errno:cpu-cycles=EWHAT")
    _core._counters_fake(None)


def test_hardware_counters_count_real_work():
    r = C.probe(["cpu-cycles", "instructions"])
    if r["cpu-cycles"].state not in ("counted", "scaled"):
        pytest.skip(f"no hardware PMU counters here: cpu-cycles is {r['cpu-cycles'].state}: {r['cpu-cycles'].reason}")
    c = C.Counters(["cpu-cycles", "instructions"], inherit=False)
    with c:
        spin(0.001)
    short = c.results["instructions"].value
    with c:
        spin(0.01)
    long = c.results["instructions"].value
    assert c.results["cpu-cycles"].value > 0
    assert 5 < long / short < 20  # ten times the work, about ten times the instructions


# --- the CLI ----------------------------------------------------------------------------------


def run_cli(*args):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([sys.executable, "-m", "maple_edge_lite", *args], capture_output=True, text=True,
                          cwd=Path(__file__).parent)


def documented_exit_code(states):
    """The exit status of `maple-edge-lite counters` by the rule the README and the CLI's help
    document, from the events' states: 0 every event counts; 3 some hardware events count (the
    rest unsupported or denied); 5 no hardware event counts and some event is denied (the fix is
    printed); 4 otherwise (software events only: VMs, containers)."""
    ok = {n for n, s in states.items() if s in ("counted", "scaled")}
    if len(ok) == len(states):
        return 0
    if ok - set(C.SOFTWARE_EVENTS):
        return 3
    return 5 if "denied" in states.values() else 4


def test_cli_counters_json_and_exit_codes():
    import json

    r = run_cli("counters", "--json")
    report = json.loads(r.stdout)
    states = {n: e["state"] for n, e in report["events"].items()}
    assert set(C.MAPLE_EDGE_EVENTS) <= set(states)
    assert r.returncode == report["exit_code"] == documented_exit_code(states), states
    # and the states are this machine's, as the library probes them
    probed = C.probe(list(states))
    assert {n: p.state for n, p in probed.items()} == states
    ok, _ = software_events_work()
    if ok:
        r = run_cli("counters", "--events", "task-clock,page-faults")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "2 of 2 events count" in r.stdout


HW2 = "cpu-cycles,instructions"
# (fake spec, --events, exit code worked out by hand from the rule above, what the text must say)
EXIT_CASES = [
    ("", HW2 + ",task-clock", 0, "3 of 3 events count"),
    ("", "task-clock,page-faults", 0, "2 of 2 events count"),
    ("errno:cpu-cycles=ENOENT", HW2 + ",task-clock", 3, "2 of 3 events count"),
    ("errno:cpu-cycles=EACCES;paranoid=3", HW2 + ",task-clock", 3, "perf_event_paranoid=2"),
    ("errno:cpu-cycles=ENOENT;errno:instructions=ENOENT", HW2 + ",task-clock", 4, "1 of 3 events count"),
    ("running=0", "task-clock,page-faults", 4, "0 of 2 events count"),
    ("errno:cpu-cycles=EACCES;errno:instructions=EACCES;paranoid=3", HW2 + ",task-clock", 5,
     "sudo sysctl -w kernel.perf_event_paranoid=2"),
    ("errno:cpu-cycles=EPERM;errno:instructions=ENOENT;paranoid=2", HW2 + ",task-clock", 5, "cap_perfmon"),
]


@pytest.mark.parametrize("spec, events, code, text", EXIT_CASES, ids=[f"{c[2]}:{c[0] or 'ok'}" for c in EXIT_CASES])
def test_cli_counters_exit_code_for_each_case(fake, capsys, spec, events, code, text):
    """Every exit status of `maple-edge-lite counters`, through the scripted syscall layer."""
    import json

    from maple_edge_lite.cli import main

    with fake(spec):
        rc = main(["counters", "--events", events])
        out = capsys.readouterr().out
        assert rc == code, out
        assert text in out
        rc = main(["counters", "--events", events, "--json"])
        report = json.loads(capsys.readouterr().out)
    assert rc == report["exit_code"] == code
    states = {n: e["state"] for n, e in report["events"].items()}
    assert documented_exit_code(states) == code
    assert (report["fix"] is not None) == ("denied" in states.values())


def test_cli_counters_unknown_event_is_one_line_error():
    r = run_cli("counters", "--events", "task-clock,bogus-event")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown event 'bogus-event'" in lines[0]
