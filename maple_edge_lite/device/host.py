"""What a measurement records about the machine: CPU model, frequencies, affinity, CPU pinning."""

from __future__ import annotations

import datetime
import os
import platform
import socket
from typing import Any, Dict, List, Optional, Sequence

from .._errors import InputError

def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (``model name``, or ARM's ``Hardware``/``CPU part``),
    else ``platform.processor()``, else "unknown"."""
    info = _read("/proc/cpuinfo") or ""
    fields: Dict[str, str] = {}
    for line in info.splitlines():
        k, _, v = line.partition(":")
        k, v = k.strip(), v.strip()
        if k and v and k not in fields:
            fields[k] = v
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        if key in fields:
            return fields[key]
    if "CPU implementer" in fields:
        return f"ARM implementer {fields['CPU implementer']} part {fields.get('CPU part', '?')}"
    return platform.processor() or "unknown"


def _affinity() -> Optional[List[int]]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_frequencies() -> Dict[str, Dict[str, Any]]:
    """Per online CPU, what /sys/devices/system/cpu/cpuN/cpufreq exposes (kHz, governor); an
    empty dict where there is no cpufreq (VMs)."""
    out: Dict[str, Dict[str, Any]] = {}
    base = "/sys/devices/system/cpu"
    try:
        cpus = sorted((d for d in os.listdir(base) if d.startswith("cpu") and d[3:].isdigit()),
                      key=lambda d: int(d[3:]))
    except OSError:
        return out
    for d in cpus:
        facts: Dict[str, Any] = {}
        for name in ("cpuinfo_min_freq", "cpuinfo_max_freq", "scaling_min_freq", "scaling_max_freq",
                     "scaling_cur_freq", "scaling_governor", "scaling_driver"):
            v = _read(os.path.join(base, d, "cpufreq", name))
            if v is not None:
                facts[name] = int(v) if v.isdigit() else v
        if facts:
            out[d] = facts
    return out


def host_facts() -> Dict[str, Any]:
    """What a measurement depends on besides the runtime: CPU model, counts, affinity, kernel,
    frequencies, load. JSON-ready."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "os": platform.system(),
        "cpu_count": os.cpu_count(),
        "online_cpus": _read("/sys/devices/system/cpu/online"),
        "cpu_affinity": _affinity(),
        "cpufreq": cpu_frequencies(),
        "loadavg": load,
        "python": platform.python_version(),
    }


_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def _cache_size(text: Optional[str]) -> Optional[int]:
    """Bytes of a sysfs cache ``size`` ("2048K", "1M", "512", "32 KiB"); None when unreadable."""
    import re

    m = re.fullmatch(r"(\d+)\s*([KMG]?)(?:i?B)?", (text or "").strip(), flags=re.IGNORECASE)
    if not m:
        return None
    n = int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]
    return n if n > 0 else None


def _cpu_set(text: Optional[str]) -> Optional[frozenset]:
    """CPU ids of a sysfs list ("0", "0-1", "0,4", "0-3,8-11"); None when missing or malformed."""
    out = set()
    for part in (text or "").strip().split(","):
        a, _, b = part.strip().partition("-")
        if not (a.isdigit() and (not b or b.isdigit())):
            return None
        out.update(range(int(a), int(b or a) + 1))
    return frozenset(out) or None


#: Where :func:`core_cache` reads the first CPU's caches and topology.
SYSFS_CPU0 = "/sys/devices/system/cpu/cpu0"


def core_cache(cpu_dir: str = SYSFS_CPU0) -> Dict[str, Any]:
    """The cache the layer cost model's spill term is priced against: the largest (highest-level)
    data or unified cache of level >= 2 private to one core, from sysfs
    (``<cpu_dir>/cache/index*/{level,type,size,shared_cpu_list}``; private: shared only by the
    core's own hardware threads, ``topology/core_cpus_list`` or ``thread_siblings_list``).

    Returns ``{"bytes", "level", "shared_cpu_list", "reason"}``: ``bytes`` None when no such cache
    is known (no cache information at all, as in some containers and boards; only level-1 caches;
    unreadable sizes), and then ``reason`` says why; never raises. Where the L2 is shared by a
    cluster of cores (many ARM boards) and no level >= 2 cache is private, that L2 is taken whole
    (one inference thread has it to itself while its cluster is idle), and ``reason`` says so."""
    base = os.path.join(cpu_dir, "cache")
    try:
        names = sorted(d for d in os.listdir(base) if d.startswith("index") and d[5:].isdigit())
    except OSError:
        names = []
    none = {"bytes": None, "level": None, "shared_cpu_list": None}
    if not names:
        return dict(none, reason=f"no cache information in {base}")
    cpu = os.path.basename(os.path.normpath(cpu_dir))
    own = frozenset([int(cpu[3:])]) if cpu[3:].isdigit() else None
    core = None
    for name in ("core_cpus_list", "thread_siblings_list"):
        core = _cpu_set(_read(os.path.join(cpu_dir, "topology", name)))
        if core is not None:
            break
    core = core if core is not None else own
    found = []  # (level, bytes, shared text, shared set)
    skipped = []
    for d in names:
        lv, kind = _read(os.path.join(base, d, "level")), _read(os.path.join(base, d, "type"))
        if kind not in ("Data", "Unified") or not (lv or "").isdigit() or int(lv) < 2:
            continue
        raw = _read(os.path.join(base, d, "size"))
        size = _cache_size(raw)
        if size is None:
            skipped.append(f"{d}: size {raw!r} unreadable")
            continue
        shared = _read(os.path.join(base, d, "shared_cpu_list"))
        found.append((int(lv), size, shared, _cpu_set(shared)))
    private = [c for c in found if c[3] is not None and core is not None and c[3] <= core]
    if private:
        lv, size, shared, _ = max(private, key=lambda c: (c[0], c[1]))
        return {"bytes": size, "level": lv, "shared_cpu_list": shared,
                "reason": f"the level-{lv} cache private to one core ({base})"}
    l2 = [c for c in found if c[0] == 2]
    if l2:
        lv, size, shared, _ = max(l2, key=lambda c: c[1])
        who = f"shared by CPUs {shared}" if shared else "of unknown sharing (no shared_cpu_list)"
        return {"bytes": size, "level": 2, "shared_cpu_list": shared,
                "reason": f"no cache of level >= 2 is private to one core; the L2 {who} is taken whole ({base})"}
    why = "; ".join(skipped) if skipped else "only level-1 caches are listed"
    return dict(none, reason=f"no data or unified cache of level >= 2 in {base} ({why})")


def default_device(runtime: str, threads: int) -> str:
    """``<hostname>-<runtime>-<threads>t``: the device column when none is given."""
    return f"{socket.gethostname()}-{runtime}-{threads}t"


def parse_cpus(spec) -> Optional[List[int]]:
    """``"2"``, ``"0,2"`` or ``"0-3"`` (or an iterable of ints) -> sorted CPU ids; None -> None."""
    if spec is None:
        return None
    if isinstance(spec, int) and not isinstance(spec, bool):
        cpus = {spec}
    elif isinstance(spec, str):
        cpus = set()
        for part in spec.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    a, b = part.split("-", 1)
                    cpus.update(range(int(a), int(b) + 1))
                elif part:
                    cpus.add(int(part))
            except ValueError:
                raise InputError(f"bad CPU list {spec!r}: expected e.g. 2, 0,2 or 0-3") from None
    else:
        cpus = set(int(c) for c in spec)
    if not cpus or min(cpus) < 0:
        raise InputError(f"bad CPU list {spec!r}")
    allowed = _affinity()
    if allowed is not None and not cpus <= set(allowed):
        raise InputError(f"CPUs {sorted(cpus - set(allowed))} are not available to this process "
                         f"(allowed: {allowed})")
    return sorted(cpus)


class pinned:
    """Context manager: run the block with this process's CPU affinity set to ``cpus`` (None:
    unchanged), restoring the previous affinity after. Set it before the runtime creates its
    threads: they inherit it."""

    def __init__(self, cpus: Optional[Sequence[int]]):
        self.cpus = None if cpus is None else list(cpus)
        self._old = None

    def __enter__(self):
        if self.cpus is not None:
            if not hasattr(os, "sched_setaffinity"):
                from .._errors import UnsupportedError

                raise UnsupportedError("CPU pinning needs os.sched_setaffinity (Linux)")
            self._old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, self.cpus)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            os.sched_setaffinity(0, self._old)


def _package_version() -> str:
    from .. import __version__

    return __version__


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

