"""Latency tables: architecture x device latencies (ms) read from the shared gzip CSV format.

The format (see the data folder's README): one gzip CSV per search space and folder,

    nb201_latency.csv.gz   nb201_index,arch_str,device,latency_ms
    fbnet_latency.csv.gz   fbnet_index,arch_ops,device,latency_ms

plus an optional ``devices.csv`` (one row per device) in the folder or above it. Any number of
folders may be read at once; each is searched recursively, and a device may appear in several
files as long as the values agree. Host-side only: csv + gzip + numpy, no pandas.

    table = load_table(["../shared/data"], "nb201")
    table.latency_ms            # float64 [n_archs, n_devices], NaN where a device lacks an arch
    device_groups(table)        # near-duplicate devices, to hold out together
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import zlib
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .._errors import InputError, MapleEdgeError

__all__ = [
    "SPACES",
    "LatencyTable",
    "DataError",
    "DataNotFoundError",
    "UnknownDeviceError",
    "load_table",
    "device_groups",
    "GROUP_THRESHOLD",
]

# space -> (file name, header)
SPACES = {
    "nb201": ("nb201_latency.csv.gz", ("nb201_index", "arch_str", "device", "latency_ms")),
    "fbnet": ("fbnet_latency.csv.gz", ("fbnet_index", "arch_ops", "device", "latency_ms")),
}

# Two devices whose log-latency columns correlate at least this much (Pearson, on the archs both
# have) are near-duplicates and are held out together; groups are closed transitively.
GROUP_THRESHOLD = 0.995
# Fewer shared archs than this: no evidence either way, the pair is not linked.
_GROUP_MIN_SHARED = 30

PathLike = Union[str, "os.PathLike[str]"]


class DataError(MapleEdgeError, ValueError):
    """A latency table that cannot be used: malformed rows, bad values, conflicting sources."""


class DataNotFoundError(MapleEdgeError, FileNotFoundError):
    """No latency file of the requested space under the given folders."""


class UnknownDeviceError(InputError):
    """A device that no loaded table contains; the message lists the known ones."""


class LatencyTable:
    """Latencies (ms) of ``len(index)`` architectures on ``len(devices)`` devices.

    index       int64 [n_archs], the space's arch indices, sorted ascending
    archs       list of n_archs arch strings, aligned with ``index``
    devices     list of device names, in column order
    latency_ms  float64 [n_archs, n_devices], NaN where a device was not measured on an arch
    device_info dict device -> dict of its devices.csv row (devices without a row are absent)
    space       "nb201" or "fbnet"
    sources     the files read, in order

    Arrays are owned by the table; ``select`` returns a new table with copied columns.
    """

    def __init__(self, space, index, archs, devices, latency_ms, device_info=None, sources=()):
        self.space = space
        self.index = np.asarray(index, dtype=np.int64)
        self.archs = list(archs)
        self.devices = list(devices)
        self.latency_ms = np.asarray(latency_ms, dtype=np.float64)
        self.device_info = dict(device_info or {})
        self.sources = [str(s) for s in sources]
        n, d = self.latency_ms.shape if self.latency_ms.ndim == 2 else (-1, -1)
        if n != len(self.index) or n != len(self.archs) or d != len(self.devices):
            raise InputError(
                f"LatencyTable: latency_ms has shape {self.latency_ms.shape}, expected "
                f"[{len(self.index)} archs, {len(self.devices)} devices]"
            )

    @property
    def n_archs(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (f"LatencyTable(space={self.space!r}, archs={self.n_archs}, devices={len(self.devices)}, "
                f"measured={int(np.isfinite(self.latency_ms).sum())})")

    def _col(self, device: str) -> int:
        try:
            return self.devices.index(device)
        except ValueError:
            raise UnknownDeviceError(
                f"unknown device {device!r}; this table has {len(self.devices)}: {', '.join(self.devices)}"
            ) from None

    def column(self, device: str) -> np.ndarray:
        """Latencies (ms) of one device, float64 [n_archs], NaN where not measured (a copy)."""
        return self.latency_ms[:, self._col(device)].copy()

    def has(self, device: str) -> np.ndarray:
        """bool [n_archs]: which archs the device was measured on."""
        return np.isfinite(self.latency_ms[:, self._col(device)])

    def select(self, devices: Iterable[str]) -> "LatencyTable":
        """A table with only these devices, in this order. The arch rows stay the same (so row
        positions, and features computed for this table, remain valid)."""
        devices = list(devices)
        cols = [self._col(d) for d in devices]
        if len(set(devices)) != len(devices):
            raise InputError(f"select: a device is listed twice in {devices}")
        info = {d: self.device_info[d] for d in devices if d in self.device_info}
        return LatencyTable(self.space, self.index.copy(), self.archs, devices,
                            self.latency_ms[:, cols].copy(), info, self.sources)


def _find_files(dirs: Sequence[PathLike], name: str) -> List[Path]:
    found: List[Path] = []
    for d in dirs:
        p = Path(d)
        if p.is_file():  # a file given directly is accepted if it has the right name
            if p.name != name:
                raise DataNotFoundError(f"{p} is not a {name} file")
            found.append(p)
            continue
        if not p.is_dir():
            raise DataNotFoundError(f"data folder {p} does not exist")
        hits = sorted(p.rglob(name))
        if not hits:
            raise DataNotFoundError(
                f"no {name} under {p} (searched recursively); give a folder in the shared data format"
            )
        found.extend(hits)
    # The same file reached through two given folders (a folder and its parent) is read once.
    seen, unique = set(), []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _find_devices_csv(start: Path) -> Optional[Path]:
    """The nearest devices.csv in the file's folder or any folder above it."""
    for d in [start, *start.parents]:
        c = d / "devices.csv"
        if c.is_file():
            return c
    return None


def _read_devices_csv(path: Path) -> Dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "device" not in reader.fieldnames:
            raise DataError(f"{path}: no 'device' column in the header")
        return {row["device"]: dict(row) for row in reader if row.get("device")}


class _FileData:
    __slots__ = ("path", "idx", "dev", "lat", "line", "devices", "archs")


def _read_file(path: Path, space: str, header: tuple, archs: Dict[int, str], arch_src: Dict[int, str],
               wanted: Optional[set]) -> _FileData:
    """Parse one gzip CSV. ``archs``/``arch_src`` (shared across files) map arch index -> string and
    the file that first named it, so two files disagreeing on an arch are caught."""
    idx_l, dev_l, lat_l, line_l = [], [], [], []
    dev_code: Dict[str, int] = {}
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        head = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file (expected the header {','.join(header)})") from None
    if tuple(h.strip() for h in head) != header:
        raise DataError(f"{path}: line 1: header {','.join(head)!r}, expected {','.join(header)!r}")
    isfinite = math.isfinite
    try:
        for row in reader:
            if len(row) != 4:
                if not row:  # blank line
                    continue
                raise DataError(f"{path}: line {reader.line_num}: {len(row)} fields, expected 4 ({','.join(header)})")
            s_idx, arch, device, s_lat = row
            if wanted is not None and device not in wanted:
                continue
            try:
                i = int(s_idx)
            except ValueError:
                raise DataError(f"{path}: line {reader.line_num}: {header[0]} {s_idx!r} is not an integer") from None
            try:
                v = float(s_lat)
            except ValueError:
                raise DataError(f"{path}: line {reader.line_num}: latency_ms {s_lat!r} is not a number") from None
            if not (isfinite(v) and v > 0.0):
                raise DataError(f"{path}: line {reader.line_num}: latency_ms {s_lat!r} must be positive and finite")
            if i < 0:
                raise DataError(f"{path}: line {reader.line_num}: {header[0]} {i} is negative")
            if not device:
                raise DataError(f"{path}: line {reader.line_num}: empty device name")
            a = archs.get(i)
            if a is None:
                if not arch:
                    raise DataError(f"{path}: line {reader.line_num}: empty {header[1]}")
                archs[i] = arch
                arch_src[i] = f"{path}: line {reader.line_num}"
            elif a != arch:
                raise DataError(
                    f"{path}: line {reader.line_num}: {header[0]} {i} is {arch!r} here but {a!r} in {arch_src[i]}"
                )
            c = dev_code.get(device)
            if c is None:
                c = dev_code[device] = len(dev_code)
            idx_l.append(i)
            dev_l.append(c)
            lat_l.append(v)
            line_l.append(reader.line_num)
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: {e}") from None
    fd = _FileData()
    fd.path = path
    fd.idx = np.array(idx_l, dtype=np.int64)
    fd.dev = np.array(dev_l, dtype=np.int64)
    fd.lat = np.array(lat_l, dtype=np.float64)
    fd.line = np.array(line_l, dtype=np.int64)
    fd.devices = list(dev_code)
    return fd


def load_table(dirs: Union[PathLike, Sequence[PathLike]], space: str = "nb201",
               devices: Optional[Sequence[str]] = None) -> LatencyTable:
    """Read every ``<space>_latency.csv.gz`` under ``dirs`` (each searched recursively) into one
    table. ``devices``: keep these, in this order (default: all, in order of first appearance).

    Raises DataNotFoundError (no such folder/file), UnknownDeviceError (a requested device no file
    has; the message lists the known ones), DataError (malformed row or header, with the file and
    line; a non-positive or non-finite latency; one arch index with two arch strings; one device
    with two different values for the same arch, within a file or across folders).
    """
    if space not in SPACES:
        raise InputError(f"unknown search space {space!r}; known: {', '.join(SPACES)}")
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    dirs = list(dirs)
    if not dirs:
        raise InputError("load_table: no data folder given")
    if devices is not None:
        devices = list(devices)
        if len(set(devices)) != len(devices):
            raise InputError(f"load_table: a device is listed twice in {devices}")
    name, header = SPACES[space]
    files = _find_files(dirs, name)

    archs: Dict[int, str] = {}
    arch_src: Dict[int, str] = {}
    wanted = set(devices) if devices is not None else None
    parsed = [_read_file(f, space, header, archs, arch_src, wanted) for f in files]

    all_devices: List[str] = []
    for fd in parsed:
        for d in fd.devices:
            if d not in all_devices:
                all_devices.append(d)
    if devices is not None:
        missing = [d for d in devices if d not in all_devices]
        if missing:
            # Re-read the device names only (cheap relative to failing late) to list what exists.
            known = _known_devices(files)
            raise UnknownDeviceError(
                f"unknown device{'s' if len(missing) > 1 else ''} {', '.join(missing)} in "
                f"{', '.join(str(f) for f in files)}; known ({len(known)}): {', '.join(known)}"
            )
        out_devices = devices
    else:
        out_devices = all_devices
    if not out_devices:
        raise DataError(f"no rows in {', '.join(str(f) for f in files)}")

    index = np.array(sorted(archs), dtype=np.int64)
    col_of = {d: j for j, d in enumerate(out_devices)}
    n, m = len(index), len(out_devices)
    lat = np.full((n, m), np.nan)
    origin = np.full((n, m), -1, dtype=np.int64)  # which file set the cell, for messages
    for fi, fd in enumerate(parsed):
        if len(fd.idx) == 0:
            continue
        cols = np.array([col_of.get(d, -1) for d in fd.devices], dtype=np.int64)[fd.dev]
        keep = cols >= 0
        rows = np.searchsorted(index, fd.idx[keep])
        cols = cols[keep]
        vals = fd.lat[keep]
        lines = fd.line[keep]
        # Duplicates inside this file: same (arch, device) twice.
        key = rows * m + cols
        order = np.argsort(key, kind="stable")
        ks = key[order]
        dup = np.nonzero(ks[1:] == ks[:-1])[0]
        if len(dup):
            a, b = order[dup], order[dup + 1]
            bad = np.nonzero(vals[a] != vals[b])[0]
            if len(bad):
                a, b = a[bad[0]], b[bad[0]]
                raise DataError(
                    f"{fd.path}: line {lines[b]}: device {out_devices[cols[b]]!r}, {header[0]} "
                    f"{index[rows[b]]}: latency {vals[b]!r} ms conflicts with {vals[a]!r} ms on line {lines[a]}"
                )
        # Across files: the same device in two folders must agree where both have a value.
        prev = lat[rows, cols]
        both = np.isfinite(prev)
        if both.any():
            # Relative tolerance: the same measurement written by two converters may differ in
            # the last printed digit; anything beyond that is a different measurement.
            diff = both & ~np.isclose(prev, vals, rtol=1e-9, atol=0.0)
            if diff.any():
                j = int(np.nonzero(diff)[0][0])
                other = parsed[origin[rows[j], cols[j]]].path
                raise DataError(
                    f"device {out_devices[cols[j]]!r} has conflicting values for {header[0]} "
                    f"{index[rows[j]]}: {vals[j]!r} ms in {fd.path} (line {lines[j]}) but "
                    f"{prev[j]!r} ms in {other}; drop one of the folders or rename the device"
                )
        lat[rows, cols] = vals
        origin[rows, cols] = fi

    info: Dict[str, dict] = {}
    csv_cache: Dict[Path, Dict[str, dict]] = {}
    for fd in parsed:
        c = _find_devices_csv(fd.path.parent)
        if c is None:
            continue
        if c not in csv_cache:
            csv_cache[c] = _read_devices_csv(c)
        for d in fd.devices:
            if d in col_of and d not in info and d in csv_cache[c]:
                info[d] = csv_cache[c][d]
    return LatencyTable(space, index, [archs[int(i)] for i in index], out_devices, lat, info, files)


def _known_devices(files: Sequence[Path]) -> List[str]:
    known: List[str] = []
    seen = set()
    for f in files:
        with gzip.open(f, "rt", newline="", encoding="utf-8") as fh:
            r = csv.reader(fh)
            next(r, None)
            for row in r:
                if len(row) == 4 and row[2] not in seen:
                    seen.add(row[2])
                    known.append(row[2])
    return known


def log_latency_correlation(table: LatencyTable, min_shared: int = _GROUP_MIN_SHARED) -> np.ndarray:
    """Pearson correlation of log latency between every pair of devices, each pair on the archs
    both have. float64 [n_devices, n_devices]; NaN where fewer than ``min_shared`` archs are shared
    or a column is constant there."""
    L = np.log(table.latency_ms)
    M = np.isfinite(L)
    # Shift each column by its mean first: the pairwise sums below then lose no precision.
    L = L - np.nanmean(np.where(M, L, np.nan), axis=0) if M.any() else L
    W = M.astype(np.float64)
    Lz = np.where(M, L, 0.0)
    n = W.T @ W                     # shared counts
    sx = Lz.T @ W                   # sum of x over the archs shared with y: [x, y]
    sxx = (Lz * Lz).T @ W
    sxy = Lz.T @ Lz
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sxy - sx * sx.T / n
        vx = sxx - sx * sx / n
        R = cov / np.sqrt(vx * vx.T)
    R[(n < min_shared) | ~np.isfinite(R)] = np.nan
    return np.clip(R, -1.0, 1.0, where=np.isfinite(R), out=R)


def _setup_key(info: Optional[dict]):
    """The measurement setup a devices.csv row declares, or None when it declares none: devices of
    one release, one hardware class and one stated batch size (e.g. HELP's desktop GPUs at batch
    32) are sibling measurements of the same workload."""
    if not info:
        return None
    batch = (info.get("batch_size") or "").strip()
    if not batch:
        return None
    return ((info.get("source") or "").strip(), (info.get("device_class") or "").strip(), batch,
            (info.get("precision") or "").strip())


def device_groups(table: LatencyTable, threshold: float = GROUP_THRESHOLD, metadata: bool = True,
                  min_shared: int = _GROUP_MIN_SHARED) -> List[List[str]]:
    """Near-duplicate devices, to be held out together in a leave-one-device-out evaluation.

    Two devices are linked when
      - their log-latency columns correlate at r >= ``threshold`` (Pearson, on the archs both
        have; at least ``min_shared`` of them), or
      - (``metadata``) their devices.csv rows declare the same setup: same source release, same
        device class and the same non-empty batch size (and precision);
    a group is a connected component of the links (transitive closure). Nothing depends on device
    names. Groups are in the table's device order (by first member), members in table order.

    Why both: the correlation rule alone finds near-copies in any folder (Eagle's GTX 1080 Ti is a
    near-copy of its i7-7820X, r = 0.998; HELP's 1080 Ti/Titan X/Titan Xp at batch 256, r >= 0.997),
    but not all the sibling groups the data README names: on NAS-Bench-201, HELP's batch-1 GPUs
    correlate with each other at only r = 0.968-0.994, and 2080ti_256 with the other batch-256
    GPUs at r = 0.82. The devices.csv rule adds those. For the 30 NAS-Bench-201 devices of the
    shared data the result is 18 groups: the HELP GPUs of each batch size (1, 32, 256) together,
    the Eagle i7/1080 Ti pair together, every other device alone. With ``metadata=False`` (or no
    devices.csv) only correlation links count.
    """
    R = log_latency_correlation(table, min_shared)
    m = len(table.devices)
    parent = list(range(m))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    keys = [_setup_key(table.device_info.get(d)) if metadata else None for d in table.devices]
    for a in range(m):
        for b in range(a + 1, m):
            if np.isfinite(R[a, b]) and R[a, b] >= threshold:
                union(a, b)
            elif keys[a] is not None and keys[a] == keys[b]:
                union(a, b)
    groups: Dict[int, List[str]] = {}
    for j in range(m):
        groups.setdefault(find(j), []).append(table.devices[j])
    return [groups[k] for k in sorted(groups)]
