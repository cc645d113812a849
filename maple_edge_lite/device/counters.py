"""Linux perf_event counters, read in-process by the C++ core (no ``perf`` subprocess).

    from maple_edge_lite.device.counters import Counters
    with Counters(["instructions", "cpu-cycles", "task-clock"]) as c:
        run_inference()
    c.results["task-clock"].value        # ns of CPU time in exactly that block
    c.results["cpu-cycles"].state        # "counted", "scaled", "not_counted", "unsupported", "denied"

A missing counter is a state, not an error: on a VM without a hardware PMU the hardware events
are ``unsupported`` with the reason, and the software events still count. ``value`` is ``None``
whenever the state is not ``counted`` or ``scaled`` — never a zero that means "unknown".
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence

from .. import _core, _cycore
from .._errors import UnsupportedError

#: The eleven generic events MAPLE-Edge's authors sampled, in their order.
MAPLE_EDGE_EVENTS = (
    "cpu-cycles",
    "instructions",
    "cache-references",
    "cache-misses",
    "L1-dcache-loads",
    "L1-dcache-load-misses",
    "LLC-loads",
    "LLC-load-misses",
    "LLC-stores",
    "LLC-store-misses",
    "cpu-migrations",
)
#: Hardware events among the built-in ones (need a PMU).
HARDWARE_EVENTS = MAPLE_EDGE_EVENTS[:10] + ("branch-instructions", "branch-misses")
#: Software events (the kernel counts them; they work in VMs).
SOFTWARE_EVENTS = (
    "task-clock",
    "cpu-clock",
    "page-faults",
    "minor-faults",
    "major-faults",
    "context-switches",
    "cpu-migrations",
    "alignment-faults",
    "emulation-faults",
)
STATES = ("counted", "scaled", "not_counted", "unsupported", "denied")

# mel_counter_value.flags beyond those _core exports (maple_edge_lite.h).
_FLAG_PER_PMU = 4
_FLAG_CORE_TYPE = 8
#: Where the kernel lists its PMUs.
PMU_ROOT = "/sys/bus/event_source/devices"


def _require():
    if not hasattr(_core, "_Counters"):
        raise UnsupportedError("performance counters need Linux perf_event; this build has none")


class CounterResult:
    """One event's result for the last counting window."""

    __slots__ = ("name", "state", "value", "raw", "enabled_ns", "running_ns", "errno", "reason", "flags")

    def __init__(self, name, state, value, raw, enabled_ns, running_ns, errno, flags, reason):
        self.name = name
        self.state = state
        counted = state in ("counted", "scaled")
        #: count in the window (scaled estimate when multiplexed); None when not counted
        self.value: Optional[int] = value if counted else None
        #: count while the event was on a hardware counter; None when not counted
        self.raw: Optional[int] = raw if counted else None
        self.enabled_ns = enabled_ns
        self.running_ns = running_ns
        self.errno = errno
        self.flags = flags
        #: why the state is not "counted": errno and remedy ("" when counted)
        self.reason = reason

    @property
    def running_ratio(self) -> Optional[float]:
        """Share of the window the event was on a counter (1.0 = exact; None if not enabled)."""
        return self.running_ns / self.enabled_ns if self.enabled_ns else None

    @property
    def kernel_excluded(self) -> bool:
        """True when only user space was counted (asked for, or forced by perf_event_paranoid)."""
        return bool(self.flags & _core.COUNTER_FLAG_KERNEL_EXCLUDED)

    @property
    def per_pmu(self) -> bool:
        """True on heterogeneous CPUs (big.LITTLE, hybrid) for a generic hardware event: it was
        opened on every core type's PMU and ``value`` is the sum over the core types."""
        return bool(self.flags & _FLAG_PER_PMU)

    @property
    def core_type(self) -> bool:
        """True for a ``"<pmu>/<event>/"`` event on a heterogeneous system: it counts only while
        the task runs on that PMU's CPUs, and ``value`` is that count, not scaled for the time the
        task spent on other core types (``enabled_ns - running_ns``)."""
        return bool(self.flags & _FLAG_CORE_TYPE)

    @property
    def inherited(self) -> bool:
        """False when the kernel refused inherit and only the calling thread was counted."""
        return not self.flags & _core.COUNTER_FLAG_NO_INHERIT

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "state": self.state,
            "value": self.value,
            "raw": self.raw,
            "enabled_ns": self.enabled_ns,
            "running_ns": self.running_ns,
            "errno": self.errno,
            "kernel_excluded": self.kernel_excluded,
            "per_pmu": self.per_pmu,
            "reason": self.reason,
        }

    def __repr__(self) -> str:
        v = "" if self.value is None else f" value={self.value}"
        return f"<CounterResult {self.name} {self.state}{v}>"


class Counters:
    """Counters over this process, as a context manager counting exactly the block inside it.

    ``inherit`` (default on) counts the threads the block creates, such as a runtime's worker
    pool; the kernel then keeps a counter per thread, which costs a little at thread creation
    and exit. The set is reusable: each ``with`` block (or ``start()``/``stop()`` pair) is a new
    window; ``close()`` releases the file descriptors (also done when the object is collected)."""

    def __init__(
        self,
        names: Sequence[str] = MAPLE_EDGE_EVENTS,
        *,
        inherit: bool = True,
        exclude_kernel: bool = False,
        group: bool = True,
    ):
        _require()
        if isinstance(names, str):
            names = [names]
        self.names = tuple(names)
        flags = 0
        if not inherit:
            flags |= _core.COUNTERS_NO_INHERIT
        if exclude_kernel:
            flags |= _core.COUNTERS_EXCLUDE_KERNEL
        if not group:
            flags |= _core.COUNTERS_NO_GROUP
        # The window's two calls go through Cython, the rest through _core (docs/bindings.md).
        self._c = _cycore._Counters(list(self.names), flags)
        self._results: Optional[Dict[str, CounterResult]] = None

    # A window is two calls into the core: start(), and stop(), which also reads the counts into a
    # buffer the core allocated at open. No Python object is made per window: the
    # CounterResult objects are built from that buffer when ``results`` is first asked for.
    def start(self) -> None:
        self._results = None
        self._c.start()

    def stop(self) -> Dict[str, CounterResult]:
        self._c.stop()
        return self.results

    @property
    def results(self) -> Dict[str, CounterResult]:
        """Name -> CounterResult for the last finished window (built on first access)."""
        if self._results is None:
            self._results = {r[0]: CounterResult(*r) for r in self._c.read()}
        return self._results

    def __enter__(self) -> "Counters":
        self._results = None  # start(), inlined: the window is the scheduler's per-inference cost
        self._c.start()
        return self

    def __exit__(self, *exc) -> None:
        self._c.stop()

    def close(self) -> None:
        self._c.close()

    def __repr__(self) -> str:
        return f"<Counters {', '.join(self.names)}>"


def known_events() -> List[str]:
    """Every event name the core knows: built-ins, then those added with register_event."""
    _require()
    return list(_core.counters_known_events())


def register_event(name: str, type: int, config: int) -> None:
    """Add a named event, e.g. a PMU-specific one: ``type`` from
    ``/sys/bus/event_source/devices/<pmu>/type`` and ``config`` from its ``events/`` folder.
    Raw codes need no registration: use the name ``"r<hex>"``."""
    _require()
    _core.counters_register_event(name, int(type), int(config))


def paranoid_level() -> Optional[int]:
    """kernel.perf_event_paranoid, or None where it cannot be read."""
    _require()
    return _core.perf_event_paranoid()


def _busy(ns: int) -> None:
    end = time.perf_counter_ns() + ns
    x = 0
    while time.perf_counter_ns() < end:
        x += 1


def probe(events: Optional[Iterable[str]] = None) -> Dict[str, CounterResult]:
    """Open each event on its own, count a short busy loop, and report its state with the
    reason: what this machine can count, and why the rest cannot be."""
    _require()
    out = {}
    for name in list(events) if events is not None else known_events():
        c = Counters([name])
        try:
            with c:
                _busy(200_000)
            out[name] = c.results[name]
        finally:
            c.close()
    return out


class Pmu(int):
    """A PMU's perf type (an ``int``, so ``pmus()`` keeps its old meaning) with the rest of what
    sysfs says about it: ``name``, ``cpus`` (the CPU numbers of a core PMU, ``None`` for others),
    ``cpus_text`` (the ``cpus`` file as written, e.g. ``"0-3"``) and ``core`` (a CPU PMU: named
    ``cpu`` or with a ``cpus`` file; perf's rule). On big.LITTLE boards each core type has its own
    core PMU with its own type and CPUs, e.g. ``armv8_cortex_a53`` on CPUs 0-3 and
    ``armv8_cortex_a72`` on 4-5."""

    name: str
    cpus: Optional[tuple]
    cpus_text: Optional[str]
    core: bool

    def __new__(cls, type_: int, name: str = "", cpus_text: Optional[str] = None, core: bool = False):
        self = super().__new__(cls, type_)
        self.name = name
        self.cpus_text = cpus_text
        self.cpus = _cpu_list(cpus_text) if cpus_text is not None else None
        self.core = core
        return self

    @property
    def type(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        cpus = f", cpus={self.cpus_text!r}" if self.cpus_text is not None else ""
        return f"Pmu({self.name!r}, type={int(self)}{cpus}{', core' if self.core else ''})"

    __str__ = int.__repr__  # prints and formats as the type number, as before

    def __reduce__(self):
        return (Pmu, (int(self), self.name, self.cpus_text, self.core))


def _cpu_list(text: str) -> tuple:
    """ "0-3,8" -> (0, 1, 2, 3, 8); malformed parts are skipped."""
    out = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return tuple(out)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def pmus(root: Optional[str] = None) -> Dict[str, Optional[Pmu]]:
    """The PMUs the kernel exposes (``/sys/bus/event_source/devices``, or ``root``: a recorded
    tree such as ``tests/data/sysfs/rk3399``), name -> perf type as a :class:`Pmu` (an ``int``
    carrying ``cpus`` and ``core``), or ``None`` where the type is unreadable. A machine with a
    hardware PMU lists a core PMU such as ``cpu``, ``armv8_pmuv3_0`` or ``armv8_cortex_a72``; a
    big.LITTLE board one per core type, each with its CPUs."""
    base = root or PMU_ROOT
    out: Dict[str, Optional[Pmu]] = {}
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return out
    for n in names:
        t = _read(os.path.join(base, n, "type"))
        try:
            type_ = int(t) if t is not None else None
        except ValueError:
            type_ = None
        if type_ is None:
            out[n] = None
            continue
        cpus = _read(os.path.join(base, n, "cpus"))
        out[n] = Pmu(type_, n, cpus, core=(n == "cpu" or cpus is not None))
    return out


def core_pmus(root: Optional[str] = None) -> List[Pmu]:
    """The CPU PMUs, by name: one on most machines, one per core type on big.LITTLE and hybrid
    CPUs. With more than one, :class:`Counters` opens each generic hardware event once per core
    PMU and sums them (``CounterResult.per_pmu``); name ``"<pmu>/<event>/"`` to count one core
    type alone."""
    return [p for p in pmus(root).values() if p is not None and p.core]


@contextlib.contextmanager
def _fake_syscalls(spec: str = ""):
    """Tests only: run the block over the scripted fake syscall layer (see csrc/src/counters/sys.hpp)."""
    _require()
    _core._counters_fake(spec)
    try:
        yield
    finally:
        _core._counters_fake(None)
