"""Writer of the ``.melw`` weights format, version 1 (``docs/format.md``), and ``pack``.

The C++ core is the reader; this module only writes, so the two cannot drift apart without the
round-trip tests noticing."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ._errors import InputError, MapleEdgeError, MapleEdgeIOError, MapleEdgePermissionError, ModelNotFoundError
from .quantize import QUANT_SCHEME_VERSION, TRANSFORMS, QuantizedMLP, quantize

MAGIC = b"\x89MELW\r\n\x1a"
FORMAT_VERSION = 6  # the newest this package writes: 3 holds a layer cost model, 4 one with the spill term,
#                    5 one with the alignment term, 6 one with the channel term too;
#                    an MLP is written as 1 or 2
BYTE_ORDER_MARK = 0x01020304
HEADER_SIZE = 64
SECTION_ENTRY_SIZE = 24
SEC_INPUT, SEC_LAYER, SEC_OUTPUT, SEC_FEATURES, SEC_METADATA = 1, 2, 3, 4, 5
SEC_ENCODER = 6  # optional: search space and feature schema version of the model's encoder
SEC_INTERVAL = 7  # optional: the model's central interval around its predictions
SEC_LAYER_COST = 8  # format 3: a layer cost model, instead of INPUT, LAYER and OUTPUT
LAYER_COST_FORMAT_VERSION = 3
LAYER_COST_SCHEME = 1  # the LAYER_COST section's arithmetic (docs/format.md)
LAYER_COST_SPILL_FORMAT_VERSION = 4  # a layer cost model with the spill term: LAYER_COST scheme 2
LAYER_COST_SPILL_SCHEME = 2
LAYER_COST_ALIGN_FORMAT_VERSION = 5  # a layer cost model with the alignment term: LAYER_COST scheme 3
LAYER_COST_ALIGN_SCHEME = 3
LAYER_COST_CHANNEL_FORMAT_VERSION = 6  # ... and the channel term: LAYER_COST scheme 4
LAYER_COST_CHANNEL_SCHEME = 4
SECTION_OPTIONAL = 1
METADATA_SCHEMA = "maple_edge_lite.metadata/1"


def _pad8(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 8)


def _check_feature_names(names: Sequence[str], d: int) -> list:
    if isinstance(names, (str, bytes)):
        raise InputError("feature_names must be a sequence of strings, not one string")
    names = list(names)
    if len(names) != d:
        raise InputError(f"feature_names has {len(names)} names but the model takes {d} inputs")
    seen = set()
    for i, n in enumerate(names):
        if not isinstance(n, str) or not n or "\0" in n:
            raise InputError(f"feature name {i} must be a non-empty string without NUL (got {n!r})")
        if len(n.encode("utf-8", "strict")) > 1024:
            raise InputError(f"feature name {i} is longer than 1024 bytes")
        if n in seen:
            raise InputError(f"feature name {n!r} appears twice")
        seen.add(n)
    return names


def encoder_section(search_space: str, feature_names: Sequence[str]) -> tuple:
    """``(space_id, schema_version)`` of the ENCODER section for a model whose first features
    are ``search_space``'s encoder features; ``InputError`` if they are not."""
    from . import encode as arch

    if search_space not in arch.SPACES:
        raise InputError(f"search_space must be one of {', '.join(arch.SPACES)} or None (got {search_space!r})")
    want = arch.feature_names(search_space)
    names = list(feature_names)
    hint = f"the first {len(want)} must be maple_edge_lite.encode.feature_names({search_space!r}), in order"
    for i, (got, exp) in enumerate(zip(names, want)):
        if got != exp:
            raise InputError(
                f"search_space={search_space!r}: feature_names[{i}] is {got!r} but the {search_space} "
                f"encoder's feature {i} is {exp!r}; {hint}"
            )
    if len(names) < len(want):
        raise InputError(
            f"search_space={search_space!r}: the model takes {len(names)} features but the {search_space} "
            f"encoder computes {len(want)}; {hint}"
        )
    return arch.SPACE_IDS[search_space], arch.schema_version(search_space)


def encode(
    q: QuantizedMLP, feature_names: Sequence[str], metadata: Mapping, encoder: Optional[tuple] = None
) -> bytes:
    """The bytes of a ``.melw`` file for a quantized model. ``encoder``: ``(space_id,
    schema_version)`` for an ENCODER section (see :func:`encoder_section`), or None."""
    d = q.input_dim
    names = _check_feature_names(feature_names, d)
    try:
        meta = json.dumps(metadata, sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise InputError(f"metadata must be JSON-serialisable without NaN/Inf: {e}") from None

    sections = []  # (kind, payload[, flags])
    sections.append(
        (
            SEC_INPUT,
            struct.pack("<II", d, 0)
            + q.input_mean.astype("<f4").tobytes()
            + q.input_mul.astype("<f4").tobytes(),
        )
    )
    for layer in q.layers:
        out_dim, in_dim = layer.w.shape
        w = layer.w.astype(np.int8).tobytes()
        w += b"\0" * (-len(w) % 4)
        body = struct.pack("<IIII", in_dim, out_dim, 1 if layer.is_output else 0, 0) + w
        body += layer.bias.astype("<i4").tobytes()
        if layer.is_output:
            body += layer.deq.astype("<f4").tobytes() + np.zeros(out_dim, "<i4").tobytes()
        else:
            body += layer.mult.astype("<i4").tobytes() + layer.shift.astype("<i4").tobytes()
        sections.append((SEC_LAYER, body))
    if q.transform == "floor":  # format 2: the floor (f32) where format 1 has a reserved zero
        output = struct.pack("<Ifdd", TRANSFORMS[q.transform], q.output_floor, q.output_scale, q.output_shift)
    else:
        output = struct.pack("<IIdd", TRANSFORMS[q.transform], 0, q.output_scale, q.output_shift)
    sections.append((SEC_OUTPUT, output))
    feat = struct.pack("<I", d)
    for n in names:
        b = n.encode("utf-8")
        feat += struct.pack("<I", len(b)) + b
    sections.append((SEC_FEATURES, feat))
    sections.append((SEC_METADATA, meta))
    if encoder is not None:
        sections.append((SEC_ENCODER, struct.pack("<II", *encoder), SECTION_OPTIONAL))
    if q.interval is not None:
        iv = q.interval
        if len(iv.index) and int(iv.index.max()) >= d:
            raise InputError(f"interval index names feature {int(iv.index.max())} of a model with {d}")
        terms, rank = iv.factor.shape
        idx = np.asarray(iv.index, "<u4").tobytes()
        idx += b"\0" * (-len(idx) % 8)
        body = struct.pack("<IIIIddd", 1, terms, rank, 0, iv.level, iv.z, iv.noise) + idx
        body += np.ascontiguousarray(iv.factor, "<f4").tobytes()
        sections.append((SEC_INTERVAL, body, SECTION_OPTIONAL))

    return _container(sections, 2 if q.transform == "floor" else 1)  # the oldest version that holds the model


def _container(sections: list, version: int) -> bytes:
    """Header, section table and the sections (``(kind, payload[, flags])``), each padded to 8."""
    table_end = HEADER_SIZE + SECTION_ENTRY_SIZE * len(sections)
    offset = table_end + (-table_end % 8)
    table = b""
    body = b"\0" * (offset - table_end)
    for kind, payload, *flags in sections:
        table += struct.pack("<IIQQ", kind, flags[0] if flags else 0, offset, len(payload))
        padded = _pad8(payload)
        body += padded
        offset += len(padded)
    payload = table + body
    file_size = HEADER_SIZE + len(payload)
    head = MAGIC + struct.pack(
        "<IHHIIQQI",
        BYTE_ORDER_MARK,
        version,
        QUANT_SCHEME_VERSION,
        HEADER_SIZE,
        len(sections),
        file_size,
        HEADER_SIZE,
        zlib.crc32(payload),
    )
    head += b"\0" * 16
    head += struct.pack("<I", zlib.crc32(head))
    assert len(head) == HEADER_SIZE
    return head + payload


def _names_bytes(names: Sequence[str]) -> bytes:
    out = b""
    for n in names:
        b = n.encode("utf-8")
        out += struct.pack("<I", len(b)) + b
    return out


def encode_layer_cost(
    *,
    table_schema: int,
    columns: Sequence[str],
    kinds: Sequence[str],
    activations: Sequence[str],
    kind_part: Sequence[int],
    kind_w: np.ndarray,
    act_part: Sequence[int],
    act_w: np.ndarray,
    c0_ms: float,
    mult: np.ndarray,
    post: np.ndarray,
    noise: float,
    level: float,
    metadata: Mapping,
    spill: Optional[tuple] = None,
    align: Optional[tuple] = None,
) -> bytes:
    """The bytes of a format-3 ``.melw`` file holding a layer cost model (docs/format.md,
    LAYER_COST): per layer ``kind_w[kind] . [1, MMACs, MB read, MB written]`` into part
    ``kind_part[kind]``, plus, for a fused activation with ``act_part[a] > 0``, the pass
    ``act_w[a] . [1, 0, MB written, MB written]`` into that part; the parts (part 0 = ``c0_ms``)
    weighted by ``mult``; the interval from ``post`` (``[parts, rank]``), ``noise`` and ``level``.
    ``spill``: ``(part, threshold_bytes, ms_per_mb)``, the spill term (each layer adds
    ``ms_per_mb * max(0, bytes_read + bytes_written - threshold_bytes) / 1e6`` to ``part``); the
    file is then format 4 (LAYER_COST scheme 2), which readers before it refuse with a version
    error; without it, format 3 as before.
    ``align``: ``(alignment, min_cin, per_kind)``, the alignment term (a layer whose ``cout``, or
    whose ``cin`` when above ``min_cin``, is not a multiple of ``alignment`` adds
    ``per_kind[kind] * MMACs`` to its kind's part); the file is then format 5 (LAYER_COST scheme 3,
    which carries the spill term too when ``spill`` is given); ``columns`` must then name ``cin``
    and ``cout``. ``align`` may carry a fourth item, ``(channel_alignment, per_kind_chan)``, the
    channel term: a layer whose ``cout`` is not a multiple of ``channel_alignment`` adds
    ``per_kind_chan[kind] * cout / 1000`` to its kind's part; the file is then format 6 (LAYER_COST
    scheme 4).
    ``columns``: the row layout (``ARRAY_COLUMNS``), which must name ``kind``, ``macs``,
    ``bytes_read``, ``bytes_written`` and ``activation``. ``InputError`` for anything out of shape
    or range."""
    from statistics import NormalDist

    cols = _check_feature_names(columns, len(columns))
    need = ("kind", "macs", "bytes_read", "bytes_written", "activation")
    missing = [c for c in need if c not in cols]
    if missing:
        raise InputError(f"layer cost model: the row columns lack {missing}")
    kinds, activations = list(kinds), list(activations)
    nk, na = len(kinds), len(activations)
    kind_w = np.asarray(kind_w, dtype=np.float64)
    act_w = np.asarray(act_w, dtype=np.float64)
    mult = np.asarray(mult, dtype=np.float64)
    post = np.asarray(post, dtype=np.float64)
    kind_part = np.asarray(kind_part, dtype=np.int64)
    act_part = np.asarray(act_part, dtype=np.int64)
    p = len(mult)
    if not (1 <= nk <= 1024 and 1 <= na <= 1024 and 2 <= p <= 64):
        raise InputError(f"layer cost model: {nk} kinds, {na} activations, {p} parts (1..1024, 1..1024, 2..64)")
    if len(set(kinds)) != nk or len(set(activations)) != na or not all(k and isinstance(k, str) for k in kinds):
        raise InputError("layer cost model: kind names must be unique non-empty strings, activation names unique")
    if kind_w.shape != (nk, 4) or act_w.shape != (na, 4) or kind_part.shape != (nk,) or act_part.shape != (na,):
        raise InputError("layer cost model: kind_w [kinds, 4], act_w [activations, 4], one part per kind and activation")
    if post.ndim != 2 or post.shape[0] != p or not 1 <= post.shape[1] <= p:
        raise InputError(f"layer cost model: post must be [{p}, rank <= {p}] (got {list(post.shape)})")
    if np.any((kind_part < 1) | (kind_part >= p)) or np.any((act_part < 0) | (act_part >= p)):
        raise InputError(f"layer cost model: kind parts must be in 1..{p - 1}, activation parts in 0..{p - 1}")
    f32 = [np.float32(v) for v in (kind_w, act_w, mult, post)]
    if not all(np.isfinite(a).all() for a in f32):
        raise InputError("layer cost model: coefficients, multipliers and posterior must be finite in float32")
    if not (np.isfinite(c0_ms) and c0_ms >= 0 and np.isfinite(noise) and noise >= 0 and 0 < level < 1):
        raise InputError("layer cost model: c0_ms >= 0, noise >= 0 finite, level in (0, 1)")
    try:
        meta = json.dumps(metadata, sort_keys=True, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise InputError(f"metadata must be JSON-serialisable without NaN/Inf: {e}") from None
    if spill is not None:
        sp, threshold, w_spill = spill
        if not (isinstance(sp, (int, np.integer)) and 1 <= sp < p and np.isfinite(threshold) and threshold >= 0
                and np.isfinite(w_spill) and w_spill >= 0):
            raise InputError(f"layer cost model: spill must be (part in 1..{p - 1}, threshold bytes >= 0, ms per MB "
                             f">= 0), finite; not {spill!r}")
    floats = [kind_w, act_w]
    chan = None
    if align is not None:
        al, min_cin, per_kind = align[:3]
        chan = align[3] if len(align) > 3 else None
        per_kind = np.asarray(per_kind, dtype=np.float64)
        if any(c not in cols for c in ("cin", "cout")):
            raise InputError("layer cost model: the alignment term needs the row columns 'cin' and 'cout'")
        if not (isinstance(al, (int, np.integer)) and 2 <= al <= 1024 and isinstance(min_cin, (int, np.integer))
                and 0 <= min_cin < 2**32 and per_kind.shape == (nk,) and np.all(np.isfinite(np.float32(per_kind)))
                and np.all(per_kind >= 0)):
            raise InputError(f"layer cost model: align must be (alignment in 2..1024, min_cin >= 0, {nk} finite "
                             f"ms per unaligned MMAC >= 0, one per kind); not {align!r}")
        floats.append(per_kind)
    if chan is not None:
        cal, per_chan = chan
        per_chan = np.asarray(per_chan, dtype=np.float64)
        if not (isinstance(cal, (int, np.integer)) and 2 <= cal <= 1024 and per_chan.shape == (nk,)
                and np.all(np.isfinite(np.float32(per_chan))) and np.all(per_chan >= 0)):
            raise InputError(f"layer cost model: the channel term must be (alignment in 2..1024, {nk} finite ms per "
                             f"1000 channels >= 0, one per kind); not {chan!r}")
        floats.append(per_chan)
    z = NormalDist().inv_cdf((1 + level) / 2)
    # The oldest scheme, and its container version, that holds the model's terms.
    scheme, version = ((LAYER_COST_CHANNEL_SCHEME, LAYER_COST_CHANNEL_FORMAT_VERSION) if chan is not None else
                       (LAYER_COST_ALIGN_SCHEME, LAYER_COST_ALIGN_FORMAT_VERSION) if align is not None else
                       (LAYER_COST_SPILL_SCHEME, LAYER_COST_SPILL_FORMAT_VERSION) if spill is not None else
                       (LAYER_COST_SCHEME, LAYER_COST_FORMAT_VERSION))
    body = struct.pack("<8I", scheme, int(table_schema), len(cols), nk, na, p, post.shape[1], 0)
    body += struct.pack("<6I", *(cols.index(c) for c in need), 0)
    body += struct.pack("<4d", float(c0_ms), float(level), float(z), float(noise))
    if spill is not None:
        body += struct.pack("<2I2d", int(sp), 0, float(threshold), float(w_spill))
    elif align is not None:  # scheme 3 without the spill term: spill_part 0
        body += struct.pack("<2I2d", 0, 0, 0.0, 0.0)
    if align is not None:
        body += struct.pack("<4I", int(al), int(min_cin), cols.index("cin"), cols.index("cout"))
    if chan is not None:
        body += struct.pack("<2I", int(cal), 0)
    idx = np.concatenate([kind_part, act_part]).astype("<u4").tobytes()
    body += idx + b"\0" * (-len(idx) % 8)
    flt = b"".join(np.ascontiguousarray(a, "<f4").tobytes() for a in (*floats, mult, post))
    body += flt + b"\0" * (-len(flt) % 8)
    body += _names_bytes(kinds) + _names_bytes(activations)
    sections = [(SEC_LAYER_COST, body), (SEC_FEATURES, struct.pack("<I", len(cols)) + _names_bytes(cols)),
                (SEC_METADATA, meta)]
    return _container(sections, version)


def _create_temp(parent: Path, name: str):
    """``(fd, path)`` of a new file ``.{name}.<random>.tmp`` in ``parent``, created like mkstemp
    (O_EXCL, a random name retried on collision) but with mode 0666, so the kernel applies the
    process umask: the file gets the mode a plain open() would, and nothing reads or changes the
    umask (process-wide state, not thread-safe to touch)."""
    import errno
    import secrets

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(parent, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", os.fspath(parent))


def read_bytes(path: Union[str, os.PathLike], what: str) -> bytes:
    """The contents of a file the package reads; ``what`` names it in messages ("ONNX model",
    "layer table", ...). ``ModelNotFoundError`` if it is missing, ``MapleEdgePermissionError``
    if it may not be read, ``MapleEdgeIOError`` for a directory or another I/O error."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ModelNotFoundError(f"{what} not found: {p}") from None
    except IsADirectoryError:
        raise MapleEdgeIOError(f"cannot read {what} {p}: it is a directory") from None
    except PermissionError:
        raise MapleEdgePermissionError(f"cannot read {what} {p}: permission denied") from None
    except OSError as e:
        raise MapleEdgeIOError(f"cannot read {what} {p}: {e.strerror or e}") from None


def write_atomic(path: Union[str, os.PathLike], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename: a reader sees the
    old file or the new one, never half of one, and a failure leaves the old file in place."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = _create_temp(parent, path.name)
    except PermissionError as e:
        raise MapleEdgePermissionError(f"cannot write {path}: permission denied in {parent}") from e
    except OSError as e:
        if parent.is_dir():
            why = f"cannot create a file in {parent} ({e.strerror or e})"
        elif parent.exists() or any(p.exists() and not p.is_dir() for p in parent.parents):
            why = f"{parent} is not a directory"
        else:
            why = f"directory {parent} does not exist"
        raise MapleEdgeError(f"cannot write {path}: {why}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, PermissionError):
            raise MapleEdgePermissionError(f"cannot write {path}: {e}") from e
        if isinstance(e, OSError):
            raise MapleEdgeError(f"cannot write {path}: {e}") from e
        raise
    try:  # make the rename durable
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def pack(
    layers: Sequence,
    path: Union[str, os.PathLike],
    *,
    feature_names: Sequence[str],
    input_mean: Optional[np.ndarray] = None,
    input_std: Optional[np.ndarray] = None,
    output: str = "exp",
    metadata: Optional[Mapping] = None,
    output_scale: float = 1.0,
    output_shift: float = 0.0,
    calibration: Optional[np.ndarray] = None,
    search_space: Optional[str] = None,
    output_floor: Optional[float] = None,
    interval: Optional[Mapping] = None,
) -> QuantizedMLP:
    """Quantize a float MLP and write it as a ``.melw`` file; returns the quantized model
    (whose ``predict`` is the numpy reference of what the core will compute).

    ``layers``: ``(W[out, in], b[out])`` float pairs with ReLU between them, the last with one
    output. The model computes ``t = output_scale * mlp((x - input_mean) / input_std) +
    output_shift`` and returns ``exp(t)`` milliseconds (``output="exp"``: the MLP predicts
    log-latency), ``t`` (``output="identity"``) or ``max(t, output_floor)`` (``output="floor"``:
    a linear model in milliseconds that must never predict 0 or less; ``output_floor`` is a
    positive float32, and the file is format version 2, which libraries before 0.2 refuse with a
    version error). ``interval``: ``{"level", "index", "factor", "noise"}`` (see
    :func:`maple_edge_lite.quantize.make_interval`), a central interval the core computes around
    each prediction (``Model.predict_interval``). ``metadata``: JSON-serialisable mapping; by
    convention ``search_space`` (e.g. ``"nb201"``) and ``provenance`` (tables, devices, seed,
    commit). ``calibration``: representative raw inputs that set the activation scales (see
    :func:`maple_edge_lite.quantize.quantize`). ``search_space``: ``"nb201"`` or ``"fbnet"`` when
    the model's first features are that space's encoder features
    (``maple_edge_lite.encode.feature_names``): the file then carries an ENCODER section, so the
    core can predict straight from architecture strings (``Model.predict_archs``), and
    ``metadata["search_space"]`` is set to it."""
    from . import __version__

    q = quantize(
        layers,
        input_mean=input_mean,
        input_std=input_std,
        output=output,
        output_scale=output_scale,
        output_shift=output_shift,
        calibration=calibration,
        output_floor=output_floor,
    )
    if interval is not None:
        import dataclasses

        from .quantize import make_interval

        q = dataclasses.replace(q, interval=make_interval(**dict(interval)))
    user = dict(metadata or {})
    reserved = {"schema", "packed_by", "quantization"} & set(user)
    if reserved:
        raise InputError(f"metadata keys {sorted(reserved)} are reserved for the packer")
    encoder = None
    if search_space is not None:
        if isinstance(feature_names, (str, bytes)):
            raise InputError("feature_names must be a sequence of strings, not one string")
        feature_names = list(feature_names)
        encoder = encoder_section(search_space, feature_names)
        if user.get("search_space", search_space) != search_space:
            raise InputError(
                f"metadata['search_space'] is {user['search_space']!r} but search_space={search_space!r}; "
                "give the search space once, as search_space="
            )
        user["search_space"] = search_space
    meta = {
        "schema": METADATA_SCHEMA,
        "packed_by": f"maple_edge_lite {__version__}",
        "quantization": {
            "scheme": QUANT_SCHEME_VERSION,
            "calibration": "user" if calibration is not None else "gaussian",
            "calibration_rows": int(len(calibration)) if calibration is not None else None,
        },
        "search_space": user.pop("search_space", None),
        "provenance": user.pop("provenance", {}),
    }
    meta.update(user)
    write_atomic(path, encode(q, feature_names, meta, encoder))
    return q
