"""Adversarial tests of the weights-file reader: a table of corrupt files, each built from a valid
one so that exactly one check is violated (the CRCs are re-computed unless the case is about a
CRC, so the check under test is the one reached), with the exact exception class and a fragment of
the message. Plus truncation everywhere, valid edge cases that must load, file-system errors and a
leak check."""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from dataclasses import dataclass, replace
from typing import Callable, List, Optional

import numpy as np
import pytest

import maple_edge_lite as mel
from maple_edge_lite.quantize import QLayer, QuantizedMLP

MAGIC = b"\x89MELW\r\n\x1a"
HEADER_SIZE = 64
ENTRY = 24
INPUT, LAYER, OUTPUT, FEATURES, METADATA = 1, 2, 3, 4, 5
INTERVAL = 7
KIND = {"INPUT": INPUT, "LAYER": LAYER, "OUTPUT": OUTPUT, "FEATURES": FEATURES, "METADATA": METADATA}
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I32_MAX = 2**31 - 1
I32_MIN = -(2**31)
MAX_DIM = 4096

STATUS = {
    mel.FormatError: "MEL_ERR_FORMAT",
    mel.VersionError: "MEL_ERR_VERSION",
    mel.ChecksumError: "MEL_ERR_CHECKSUM",
    mel.LimitError: "MEL_ERR_LIMIT",
}


# --- a small re-packer for .melw files ------------------------------------------------------------


@dataclass
class Sec:
    kind: int
    payload: bytes
    flags: int = 0


def u32(b, off):
    return struct.unpack_from("<I", b, off)[0]


def u64(b, off):
    return struct.unpack_from("<Q", b, off)[0]


def f32(v) -> int:
    """The bits of a float32 as a u32."""
    return struct.unpack("<I", struct.pack("<f", v))[0]


def parse(data: bytes) -> List[Sec]:
    secs = []
    for i in range(u32(data, 20)):
        kind, flags, off, size = struct.unpack_from("<IIQQ", data, HEADER_SIZE + ENTRY * i)
        secs.append(Sec(kind, bytes(data[off : off + size]), flags))
    return secs


def build(secs: List[Sec], order: Optional[List[int]] = None) -> bytes:
    """Lay sections out as the writer does (8-byte aligned, zero padding) with a correct header:
    file_size and both CRCs. ``order`` is the physical order of the payloads (default: table order)."""
    n = len(secs)
    table_end = HEADER_SIZE + ENTRY * n
    off = table_end + (-table_end % 8)
    body = b"\0" * (off - table_end)
    offsets = [0] * n
    for i in order if order is not None else range(n):
        offsets[i] = off
        p = secs[i].payload + b"\0" * (-len(secs[i].payload) % 8)
        body += p
        off += len(p)
    table = b"".join(struct.pack("<IIQQ", s.kind, s.flags, offsets[i], len(s.payload)) for i, s in enumerate(secs))
    payload = table + body
    # The writer's rule: format 2 for a model with the floor transform (2), else 1.
    version = 2 if any(s.kind == OUTPUT and len(s.payload) >= 4 and u32(s.payload, 0) == 2 for s in secs) else 1
    head = MAGIC + struct.pack("<IHHIIQQI", 0x01020304, version, 1, HEADER_SIZE, n, HEADER_SIZE + len(payload), HEADER_SIZE, zlib.crc32(payload))
    head += b"\0" * 16
    head += struct.pack("<I", zlib.crc32(head))
    return head + payload


def fix(data, *, size: bool = False) -> bytes:
    """Re-compute the payload CRC and the header CRC (and file_size if ``size``)."""
    b = bytearray(data)
    if len(b) < HEADER_SIZE:
        return bytes(b)
    if size:
        struct.pack_into("<Q", b, 24, len(b))
    struct.pack_into("<I", b, 40, zlib.crc32(bytes(b[HEADER_SIZE:])))
    struct.pack_into("<I", b, 60, zlib.crc32(bytes(b[:60])))
    return bytes(b)


def put(data: bytes, off: int, fmt: str, *vals, crc: bool = True) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, *vals)
    return fix(b) if crc else bytes(b)


def flip(data: bytes, off: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[off] ^= 1 << bit
    return bytes(b)


def index_of(data: bytes, kind: int, nth: int = 0) -> int:
    return [i for i, s in enumerate(parse(data)) if s.kind == kind][nth]


def entry(data: bytes, kind: int, nth: int = 0) -> int:
    """Offset of the section-table entry of the nth section of ``kind``."""
    return HEADER_SIZE + ENTRY * index_of(data, kind, nth)


def sec_off(data: bytes, kind: int, nth: int = 0) -> int:
    return u64(data, entry(data, kind, nth) + 8)


def in_sec(data: bytes, kind: int, rel: int, fmt: str, *vals, nth: int = 0) -> bytes:
    """Overwrite bytes ``rel`` bytes into a section's payload (CRCs re-fixed)."""
    return put(data, sec_off(data, kind, nth) + rel, fmt, *vals)


def edit(data: bytes, kind: int, fn: Callable[[bytes], bytes], nth: int = 0) -> bytes:
    """Replace a section's payload by fn(payload) and re-pack the file."""
    secs = parse(data)
    i = index_of(data, kind, nth)
    secs[i] = replace(secs[i], payload=fn(secs[i].payload))
    return build(secs)


def resecs(data: bytes, fn: Callable[[List[Sec]], List[Sec]]) -> bytes:
    return build(fn(parse(data)))


@dataclass
class Layer:
    w: np.ndarray  # int8 [out, in]
    bias: np.ndarray  # int32 [out]
    e1: np.ndarray  # u32 words [out]: hidden mult (i32) / output deq (f32)
    e2: np.ndarray  # u32 words [out]: hidden shift (i32) / output reserved
    kind: int
    reserved: int = 0
    pad: Optional[bytes] = None


def dec_layer(p: bytes) -> Layer:
    i, o, kind, res = struct.unpack_from("<4I", p)
    wb = (i * o + 3) // 4 * 4
    w = np.frombuffer(p, np.int8, i * o, 16).reshape(o, i).copy()
    bias = np.frombuffer(p, "<i4", o, 16 + wb).copy()
    e1 = np.frombuffer(p, "<u4", o, 16 + wb + 4 * o).copy()
    e2 = np.frombuffer(p, "<u4", o, 16 + wb + 8 * o).copy()
    return Layer(w, bias, e1, e2, kind, res)


def enc_layer(L: Layer) -> bytes:
    o, i = L.w.shape
    w = L.w.astype(np.int8).tobytes()
    w += L.pad if L.pad is not None else b"\0" * (-len(w) % 4)
    return (
        struct.pack("<4I", i, o, L.kind, L.reserved)
        + w
        + L.bias.astype("<i4").tobytes()
        + L.e1.astype("<u4").tobytes()
        + L.e2.astype("<u4").tobytes()
    )


def edit_layer(data: bytes, nth: int, fn: Callable[[Layer], Layer]) -> bytes:
    return edit(data, LAYER, lambda p: enc_layer(fn(dec_layer(p))), nth)


def layer_pos(data: bytes, nth: int, what: str, o: int = 0, i: int = 0) -> int:
    """Absolute offset of a field of the nth layer: 'w' (W[o, i]), 'bias', 'e1', 'e2' (of output o)."""
    off = sec_off(data, LAYER, nth)
    n_in, n_out = u32(data, off), u32(data, off + 4)
    wb = (n_in * n_out + 3) // 4 * 4
    return off + {
        "w": 16 + o * n_in + i,
        "bias": 16 + wb + 4 * o,
        "e1": 16 + wb + 4 * n_out + 4 * o,
        "e2": 16 + wb + 8 * n_out + 4 * o,
    }[what]


def features(names, count: Optional[int] = None) -> bytes:
    p = struct.pack("<I", len(names) if count is None else count)
    for n in names:
        b = n if isinstance(n, bytes) else n.encode()
        p += struct.pack("<I", len(b)) + b
    return p


def names_of(data: bytes) -> List[bytes]:
    p = parse(data)[index_of(data, FEATURES)].payload
    out, pos = [], 4
    for _ in range(u32(p, 0)):
        n = u32(p, pos)
        out.append(p[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def with_name0(data: bytes, name: bytes) -> bytes:
    names = names_of(data)
    return edit(data, FEATURES, lambda p: features([name] + names[1:]))


def reference(data: bytes) -> QuantizedMLP:
    """The numpy reference model of a (valid) file, decoded independently of the C++ reader."""
    secs = parse(data)
    inp = next(s.payload for s in secs if s.kind == INPUT)
    d = u32(inp, 0)
    mean = np.frombuffer(inp, "<f4", d, 8).astype(np.float32)
    mul = np.frombuffer(inp, "<f4", d, 8 + 4 * d).astype(np.float32)
    layers = []
    for s in secs:
        if s.kind != LAYER:
            continue
        L = dec_layer(s.payload)
        if L.kind == 1:
            layers.append(QLayer(L.w, L.bias, deq=L.e1.view("<f4").astype(np.float32)))
        else:
            layers.append(QLayer(L.w, L.bias, mult=L.e1.view("<i4"), shift=L.e2.view("<i4")))
    t, _, scale, shift = struct.unpack("<IIdd", next(s.payload for s in secs if s.kind == OUTPUT))
    return QuantizedMLP(mean, mul, tuple(layers), {0: "identity", 1: "exp"}[t], scale, shift)


def kernels_here():
    return [k for k in ("scalar", "avx2", "avx512vnni", "neon") if mel._core.kernel_available(k)]


def edge_rows(d: int, n_random: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    alt = np.where(np.arange(d) % 2 == 0, 1e30, -1e30)
    rows = [np.zeros(d), alt, -alt, np.full(d, 1e30), np.full(d, -1e30)]
    rows += list(rng.standard_normal((n_random, d)) * 3)
    return np.ascontiguousarray(np.array(rows, dtype=np.float32))


def expect_error(data: bytes, cls, fragment: str):
    with pytest.raises(cls) as ei:
        mel.Model.from_bytes(data)
    e = ei.value
    assert type(e) is cls, f"expected {cls.__name__}, got {type(e).__name__}: {e}"
    assert isinstance(e, ValueError)
    assert e.status == STATUS[cls]
    assert fragment in str(e), f"{fragment!r} not in {str(e)!r}"
    return e


@pytest.fixture
def bases(model_bytes, pack_random):
    """Valid files to corrupt: 'std' is 16 -> 32 -> 1 (sections INPUT, LAYER, LAYER, OUTPUT,
    FEATURES, METADATA); 'odd' is 5 -> 7 -> 3 -> 1, whose weight blocks have padding bytes."""
    made = {}

    def get(name):
        if name not in made:
            if name == "std":
                made[name] = model_bytes[0]
            elif name in ("floor", "interval"):  # format 2: a linear model in ms with a floor (and an interval)
                with tempfile.TemporaryDirectory() as tmp:
                    if name == "interval":  # terms 1, x1, x3 (index padded to 8 bytes), rank 2
                        p = os.path.join(tmp, "iv.melw")
                        mel.pack([(np.array([[0.5, 1.0, -0.25, 2.0]]), np.array([1.0]))], p, feature_names=list("abcd"),
                                 output="floor", output_floor=0.01,
                                 interval={"level": 0.9, "index": [1, 3], "factor": np.ones((3, 2)) * 0.1, "noise": 0.05})
                        with open(p, "rb") as f:
                            made[name] = f.read()
                    p = os.path.join(tmp, "floor.melw")
                    mel.pack([(np.array([[1.0, -2.0, 0.5]]), np.array([0.1]))], p, feature_names=["a", "b", "c"],
                             output="floor", output_floor=0.05)
                    if name == "floor":
                        with open(p, "rb") as f:
                            made[name] = f.read()
            else:
                path, _ = pack_random([5, 7, 3, 1], seed=4, name="odd.melw")
                made[name] = path.read_bytes()
            mel.Model.from_bytes(made[name])  # the base itself is valid
        return made[name]

    return get


# --- the corruption matrix ------------------------------------------------------------------------

F, V, C, LIM = mel.FormatError, mel.VersionError, mel.ChecksumError, mel.LimitError


def case(id_, fn, cls, fragment, base="std"):
    return pytest.param(base, fn, cls, fragment, id=id_)


def _add(kind, payload=b"", flags=0):
    return lambda d: resecs(d, lambda s: s + [Sec(kind, payload, flags)])


def _drop(kind):
    return lambda d: resecs(d, lambda s: [x for x in s if x.kind != kind])


def _dup(kind):
    return lambda d: resecs(d, lambda s: s + [next(x for x in s if x.kind == kind)])


def _set_layer_dims(i_, o_):
    return lambda d: in_sec(d, LAYER, 0, "<II", i_, o_)


def _many_layers(d):
    secs = parse(d)
    layer0 = next(x for x in secs if x.kind == LAYER)
    others = [x for x in secs if x.kind != LAYER]
    return build(others[:1] + [layer0] * 17 + others[1:])


def _out2(L: Layer) -> Layer:
    return replace(L, w=np.vstack([L.w, L.w]), bias=np.r_[L.bias, L.bias], e1=np.r_[L.e1, L.e1], e2=np.r_[L.e2, L.e2])


def _input_payload(d, mean_bits, mul_bits, dim=None, reserved=0):
    return struct.pack("<II", d if dim is None else dim, reserved) + struct.pack(f"<{d}I", *mean_bits) + struct.pack(f"<{d}I", *mul_bits)


def _input_value(which, k, value):
    """Set input mean or mul of feature k to a float value."""
    return lambda d: in_sec(d, INPUT, 8 + 4 * k + (4 * u32(d, sec_off(d, INPUT)) if which == "mul" else 0), "<f", value)


CORRUPT = [
    # header
    case("empty_file", lambda d: b"", F, "shorter than the 64-byte header"),
    case("bad_magic_first_byte", lambda d: flip(d, 0), F, "bad magic"),
    case("bad_magic_last_byte", lambda d: flip(d, 7), F, "bad magic"),
    case("png_file", lambda d: b"\x89PNG\r\n\x1a\n" + d[8:], F, "bad magic"),
    case("text_file", lambda d: b"not a model at all\n" * 8, F, "bad magic"),
    case("big_endian_byte_order_mark", lambda d: put(d, 8, ">I", 0x01020304), F, "big-endian"),
    case("corrupt_byte_order_mark", lambda d: put(d, 8, "<I", 0), F, "corrupt byte-order mark 0x00000000"),
    case("future_format_version", lambda d: put(d, 12, "<H", 7), V, "format version 7 is not supported"),
    # the version is read before the header CRC: a v2 header may be laid out differently
    case("future_format_version_stale_crc", lambda d: put(d, 12, "<H", 7, crc=False), V, "format version 7"),
    case("format_version_0", lambda d: put(d, 12, "<H", 0), V, "format version 0"),
    case("format_version_u16_max", lambda d: put(d, 12, "<H", 0xFFFF), V, "format version 65535"),
    case("future_quant_scheme", lambda d: put(d, 14, "<H", 2), V, "quantization scheme 2 is not supported"),
    case("quant_scheme_0", lambda d: put(d, 14, "<H", 0), V, "quantization scheme 0"),
    case("header_crc_field_flipped", lambda d: flip(d, 60, 3), C, "header CRC-32 mismatch"),
    case("header_field_changed_stale_crc", lambda d: put(d, 20, "<I", 7, crc=False), C, "header CRC-32 mismatch"),
    case("header_reserved_changed_stale_crc", lambda d: flip(d, 50), C, "header CRC-32 mismatch"),
    case("header_size_72", lambda d: put(d, 16, "<I", 72), F, "header_size is 72, expected 64"),
    case("header_size_0", lambda d: put(d, 16, "<I", 0), F, "header_size is 0"),
    case("header_reserved_byte_44", lambda d: put(d, 44, "<B", 1), F, "reserved header bytes 44..59 are not zero"),
    case("header_reserved_byte_59", lambda d: put(d, 59, "<B", 0x80), F, "reserved header bytes 44..59 are not zero"),
    case("file_size_larger_than_file", lambda d: put(d, 24, "<Q", len(d) + 8), F, "(truncated: re-copy the file)"),
    case("file_size_smaller_than_file", lambda d: put(d, 24, "<Q", len(d) - 8), F, "(trailing bytes)"),
    case("trailing_bytes_appended", lambda d: d + b"\0" * 8, F, "(trailing bytes)"),
    case("file_size_u64_max", lambda d: put(d, 24, "<Q", U64_MAX), F, f"header says the file is {U64_MAX} bytes"),
    case("payload_bit_flip_in_weights", lambda d: flip(d, layer_pos(d, 0, "w", 3, 5), 6), C, "payload CRC-32 mismatch"),
    case("payload_bit_flip_in_metadata", lambda d: flip(d, len(d) - 1), C, "payload CRC-32 mismatch"),
    case("payload_bit_flip_in_section_table", lambda d: flip(d, HEADER_SIZE + 1), C, "payload CRC-32 mismatch"),
    case("payload_crc_field_wrong", lambda d: fix_header_only(flip(d, 40)), C, "payload CRC-32 mismatch"),
    # section table
    case("n_sections_0", lambda d: put(d, 20, "<I", 0), F, "section count 0 is out of range"),
    case("n_sections_4", lambda d: put(d, 20, "<I", 4), F, "section count 4 is out of range"),
    case("n_sections_85", lambda d: put(d, 20, "<I", 85), F, "section count 85 is out of range"),
    case("n_sections_u32_max", lambda d: put(d, 20, "<I", U32_MAX), F, f"section count {U32_MAX} is out of range"),
    case("n_sections_one_short", lambda d: put(d, 20, "<I", 5), F, "missing METADATA section"),
    # one entry more: the table now covers the first section's payload
    case("n_sections_one_extra", lambda d: put(d, 20, "<I", 7), F, "section 0 (INPUT) [208, +136) lies outside the payload"),
    case("section_table_past_end", lambda d: put(d, 20, "<I", 84), F, "section table runs past the end of the file"),
    case("table_offset_72", lambda d: put(d, 32, "<Q", 72), F, "section table offset 72 is not 64"),
    case("table_offset_u64_max", lambda d: put(d, 32, "<Q", U64_MAX), F, f"section table offset {U64_MAX} is not 64"),
    case("section_offset_past_end", lambda d: put(d, entry(d, METADATA) + 8, "<Q", len(d) + 8), F, "lies outside the payload"),
    case("section_offset_u64_max", lambda d: put(d, entry(d, LAYER) + 8, "<Q", U64_MAX - 7), F, "lies outside the payload"),
    case("section_size_u64_max", lambda d: put(d, entry(d, LAYER) + 16, "<Q", U64_MAX), F, "lies outside the payload"),
    case("section_size_past_end", lambda d: put(d, entry(d, METADATA) + 16, "<Q", u64(d, entry(d, METADATA) + 16) + 16), F, "lies outside the payload"),
    case("section_offset_in_header", lambda d: put(d, entry(d, OUTPUT) + 8, "<Q", 0), F, "section 3 (OUTPUT) [0, +24) lies outside"),
    case("section_offset_in_table", lambda d: put(d, entry(d, OUTPUT) + 8, "<Q", 64), F, "section 3 (OUTPUT) [64, +24) lies outside"),
    case("section_offset_misaligned", lambda d: put(d, entry(d, INPUT) + 8, "<Q", sec_off(d, INPUT) + 4), F, "offset 212 is not 8-byte aligned"),
    case("sections_overlap_same_offset", lambda d: put(d, entry(d, LAYER, 1) + 8, "<Q", sec_off(d, LAYER, 0)), F, "sections overlap"),
    case("sections_overlap_grown", lambda d: put(d, entry(d, INPUT) + 16, "<Q", 136 + 8), F, "sections overlap"),
    case("section_unknown_flag_bit_1", lambda d: put(d, entry(d, LAYER) + 4, "<I", 2), F, "section 1 (LAYER) has unknown flag bits"),
    case("section_unknown_flag_bit_31", lambda d: put(d, entry(d, OUTPUT) + 4, "<I", 0x80000001), F, "has unknown flag bits"),
    case("missing_input", _drop(INPUT), F, "missing INPUT section"),
    case("missing_output", _drop(OUTPUT), F, "missing OUTPUT section"),
    case("missing_features", _drop(FEATURES), F, "missing FEATURES section"),
    case("missing_metadata", _drop(METADATA), F, "missing METADATA section"),
    case("missing_layers", lambda d: resecs(d, lambda s: [x for x in s if x.kind != LAYER] + [Sec(77, b"x", 1)]), F, "no LAYER section"),
    case("missing_layers_too_few_sections", _drop(LAYER), F, "section count 4 is out of range"),
    case("duplicate_input", _dup(INPUT), F, "more than one INPUT section"),
    case("duplicate_output", _dup(OUTPUT), F, "more than one OUTPUT section"),
    case("duplicate_features", _dup(FEATURES), F, "more than one FEATURES section"),
    case("duplicate_metadata", _dup(METADATA), F, "more than one METADATA section"),
    case("unknown_required_section", _add(99, b"future"), V, "has kind 99, unknown to this reader and not marked optional"),
    case("unknown_required_section_kind_0", _add(0, b""), V, "has kind 0, unknown"),
    case("unknown_required_section_kind_u32_max", _add(U32_MAX, b"\0" * 8), V, f"has kind {U32_MAX}"),
    case("too_many_layers", _many_layers, LIM, "more than 16 layers"),
    # INPUT
    case("input_dim_0", lambda d: in_sec(d, INPUT, 0, "<I", 0), F, "input_dim is 0"),
    case("input_dim_4097", lambda d: in_sec(d, INPUT, 0, "<I", MAX_DIM + 1), LIM, "input_dim 4097 exceeds this reader's limit of 4096"),
    case("input_dim_u32_max", lambda d: in_sec(d, INPUT, 0, "<I", U32_MAX), LIM, f"input_dim {U32_MAX} exceeds"),
    case("input_dim_vs_section_size", lambda d: in_sec(d, INPUT, 0, "<I", 15), F, "(INPUT) size does not match input_dim"),
    case("input_reserved", lambda d: in_sec(d, INPUT, 4, "<I", 1), F, "(INPUT) reserved field is not zero"),
    case("input_too_short", lambda d: edit(d, INPUT, lambda p: p[:4]), F, "(INPUT) is too short"),
    case("input_mean_nan", _input_value("mean", 3, float("nan")), F, "input mean of feature 3 is not finite"),
    case("input_mean_inf", _input_value("mean", 3, float("inf")), F, "input mean of feature 3 is not finite"),
    case("input_mean_neg_inf", _input_value("mean", 15, float("-inf")), F, "input mean of feature 15 is not finite"),
    case("input_mul_nan", _input_value("mul", 3, float("nan")), F, "input scale of feature 3 is not a finite positive number"),
    case("input_mul_inf", _input_value("mul", 3, float("inf")), F, "input scale of feature 3 is not a finite positive"),
    case("input_mul_zero", _input_value("mul", 0, 0.0), F, "input scale of feature 0 is not a finite positive"),
    case("input_mul_neg_zero", _input_value("mul", 0, -0.0), F, "input scale of feature 0 is not a finite positive"),
    case("input_mul_negative", _input_value("mul", 15, -1.5), F, "input scale of feature 15 is not a finite positive"),
    # LAYER: header and size
    case("layer_in_0", _set_layer_dims(0, 32), F, "(LAYER) has a zero dimension"),
    case("layer_out_0", _set_layer_dims(16, 0), F, "(LAYER) has a zero dimension"),
    case("layer_in_4097", _set_layer_dims(MAX_DIM + 1, 32), LIM, "dimensions 32x4097 exceed this reader's limit of 4096"),
    case("layer_out_u32_max", _set_layer_dims(16, U32_MAX), LIM, f"dimensions {U32_MAX}x16 exceed"),
    case("layer_in_and_out_u32_max", _set_layer_dims(U32_MAX, U32_MAX), LIM, "exceed this reader's limit"),
    case("layer_dims_product_overflows_u32", _set_layer_dims(65536, 65536), LIM, "dimensions 65536x65536 exceed"),
    case("layer_dims_at_limit_without_the_bytes", _set_layer_dims(MAX_DIM, MAX_DIM), F, "does not match its dimensions (expected 16826384)"),
    case("layer_truncated_section", lambda d: edit(d, LAYER, lambda p: p[:-4]), F, "does not match its dimensions"),
    case("layer_too_short", lambda d: edit(d, LAYER, lambda p: p[:12]), F, "(LAYER) is too short"),
    case("layer_unknown_kind", lambda d: in_sec(d, LAYER, 8, "<I", 2), F, "has unknown layer kind 2"),
    case("layer_reserved", lambda d: in_sec(d, LAYER, 12, "<I", 1), F, "(LAYER) reserved field is not zero"),
    case("layer_weight_padding", lambda d: edit_layer(d, 0, lambda L: replace(L, pad=b"\x01")), F, "weight padding is not zero", base="odd"),
    # LAYER: consistency between layers
    case("chain_mismatch_between_layers", lambda d: edit_layer(d, 1, lambda L: replace(L, w=L.w[:, :31])), F, "layer 1 takes 31 inputs but receives 32"),
    case("chain_mismatch_with_input", lambda d: edit_layer(d, 0, lambda L: replace(L, w=L.w[:, :15])), F, "layer 0 takes 15 inputs but receives 16"),
    case("chain_mismatch_odd", lambda d: edit_layer(d, 2, lambda L: replace(L, w=np.hstack([L.w, L.w]))), F, "layer 2 takes 6 inputs but receives 3", base="odd"),
    case("hidden_layer_marked_output", lambda d: in_sec(d, LAYER, 8, "<I", 1), F, "layer 0 is marked output but is not the last layer"),
    case("last_layer_marked_hidden", lambda d: in_sec(d, LAYER, 8, "<I", 0, nth=1), F, "layer 1 is marked hidden but is the last layer"),
    case("last_layer_two_outputs", lambda d: edit_layer(d, 1, _out2), F, "the output layer has 2 outputs; v1 models predict one value"),
    # LAYER: values
    case("weight_minus_128", lambda d: put(d, layer_pos(d, 0, "w", 0, 0), "<b", -128), F, "layer 0 weight [0,0] is -128"),
    case("weight_minus_128_output_layer", lambda d: put(d, layer_pos(d, 1, "w", 0, 31), "<b", -128), F, "layer 1 weight [0,31] is -128"),
    case("bias_overflows_accumulator", lambda d: put(d, layer_pos(d, 0, "bias", 5), "<i", I32_MAX), F, "layer 0 output 5 could overflow its int32 accumulator"),
    case("bias_int32_min", lambda d: put(d, layer_pos(d, 1, "bias", 0), "<i", I32_MIN), F, "layer 1 output 0 could overflow its int32 accumulator"),
    case("shift_0", lambda d: put(d, layer_pos(d, 0, "e2", 2), "<i", 0), F, "layer 0 requantization shift 2 is 0 (must be 1..62)"),
    case("shift_63", lambda d: put(d, layer_pos(d, 0, "e2", 2), "<i", 63), F, "requantization shift 2 is 63 (must be 1..62)"),
    case("shift_negative", lambda d: put(d, layer_pos(d, 0, "e2", 0), "<i", -1), F, "requantization shift 0 is -1"),
    case("shift_int32_min", lambda d: put(d, layer_pos(d, 0, "e2", 0), "<i", I32_MIN), F, f"requantization shift 0 is {I32_MIN}"),
    case("multiplier_negative", lambda d: put(d, layer_pos(d, 0, "e1", 7), "<i", -1), F, "layer 0 requantization multiplier 7 is negative"),
    case("multiplier_int32_min", lambda d: put(d, layer_pos(d, 0, "e1", 7), "<i", I32_MIN), F, "requantization multiplier 7 is negative"),
    case("output_deq_nan", lambda d: put(d, layer_pos(d, 1, "e1"), "<f", float("nan")), F, "layer 1 output scale 0 is not a finite positive number"),
    case("output_deq_inf", lambda d: put(d, layer_pos(d, 1, "e1"), "<f", float("inf")), F, "layer 1 output scale 0 is not a finite positive"),
    case("output_deq_zero", lambda d: put(d, layer_pos(d, 1, "e1"), "<f", 0.0), F, "layer 1 output scale 0 is not a finite positive"),
    case("output_deq_neg_zero", lambda d: put(d, layer_pos(d, 1, "e1"), "<f", -0.0), F, "layer 1 output scale 0 is not a finite positive"),
    case("output_deq_negative", lambda d: put(d, layer_pos(d, 1, "e1"), "<f", -1e-3), F, "layer 1 output scale 0 is not a finite positive"),
    case("output_layer_reserved", lambda d: put(d, layer_pos(d, 1, "e2"), "<i", 1), F, "layer 1 reserved field of output 0 is not zero"),
    # OUTPUT
    case("output_section_size_16", lambda d: edit(d, OUTPUT, lambda p: p[:16]), F, "(OUTPUT) size is not 24"),
    case("output_section_size_32", lambda d: edit(d, OUTPUT, lambda p: p + bytes(8)), F, "(OUTPUT) size is not 24"),
    case("output_transform_2_in_format_1", lambda d: in_sec(d, OUTPUT, 0, "<I", 2), F, "unknown output transform 2 for format version 1"),
    case("output_transform_3", lambda d: in_sec(d, OUTPUT, 0, "<I", 3), F, "unknown output transform 3"),
    case("output_transform_3_format_2", lambda d: in_sec(d, OUTPUT, 0, "<I", 3), F, "unknown output transform 3", base="floor"),
    case("floor_model_as_format_1", lambda d: put(d, 12, "<H", 1), F, "unknown output transform 2 for format version 1", base="floor"),
    case("output_floor_zero", lambda d: in_sec(d, OUTPUT, 4, "<f", 0.0), F, "output floor is not a finite positive number", base="floor"),
    case("output_floor_neg_zero", lambda d: in_sec(d, OUTPUT, 4, "<f", -0.0), F, "output floor is not a finite positive", base="floor"),
    case("output_floor_negative", lambda d: in_sec(d, OUTPUT, 4, "<f", -1.0), F, "output floor is not a finite positive", base="floor"),
    case("output_floor_nan", lambda d: in_sec(d, OUTPUT, 4, "<f", float("nan")), F, "output floor is not a finite positive", base="floor"),
    # INTERVAL (optional section 7): header u32 kind, terms, rank, reserved; f64 level, z, noise; u32 index[2], no pad; f32 F[3x2]
    case("interval_kind_2", lambda d: in_sec(d, INTERVAL, 0, "<I", 2), V, "(INTERVAL) has kind 2, unknown", base="interval"),
    case("interval_reserved", lambda d: in_sec(d, INTERVAL, 12, "<I", 1), F, "(INTERVAL) reserved field is not zero", base="interval"),
    case("interval_terms_0", lambda d: in_sec(d, INTERVAL, 4, "<I", 0), F, "(INTERVAL) has 0 terms for 4 features", base="interval"),
    case("interval_terms_6", lambda d: in_sec(d, INTERVAL, 4, "<I", 6), F, "(INTERVAL) has 6 terms for 4 features", base="interval"),
    case("interval_rank_0", lambda d: in_sec(d, INTERVAL, 8, "<I", 0), F, "(INTERVAL) rank 0 is not in 1..3", base="interval"),
    case("interval_rank_4", lambda d: in_sec(d, INTERVAL, 8, "<I", 4), F, "(INTERVAL) rank 4 is not in 1..3", base="interval"),
    case("interval_level_1", lambda d: in_sec(d, INTERVAL, 16, "<d", 1.0), F, "(INTERVAL) level is not in (0, 1)", base="interval"),
    case("interval_level_nan", lambda d: in_sec(d, INTERVAL, 16, "<d", float("nan")), F, "level is not in (0, 1)", base="interval"),
    case("interval_z_0", lambda d: in_sec(d, INTERVAL, 24, "<d", 0.0), F, "(INTERVAL) z is not a finite positive number", base="interval"),
    case("interval_z_inf", lambda d: in_sec(d, INTERVAL, 24, "<d", float("inf")), F, "z is not a finite positive", base="interval"),
    case("interval_noise_neg", lambda d: in_sec(d, INTERVAL, 32, "<d", -0.1), F, "(INTERVAL) noise is not a finite number >= 0", base="interval"),
    case("interval_noise_nan", lambda d: in_sec(d, INTERVAL, 32, "<d", float("nan")), F, "noise is not a finite number", base="interval"),
    case("interval_index_out_of_range", lambda d: in_sec(d, INTERVAL, 44, "<I", 4), F, "(INTERVAL) term 2 names feature 4 of 4", base="interval"),
    case("interval_index_not_increasing", lambda d: in_sec(d, INTERVAL, 44, "<I", 1), F, "feature indices are not increasing", base="interval"),
    case("interval_factor_nan", lambda d: in_sec(d, INTERVAL, 48 + 8, "<f", float("nan")), F, "(INTERVAL) factor value 2 is not finite", base="interval"),
    case("interval_size_short", lambda d: edit(d, INTERVAL, lambda p: p[:-4]), F, "(INTERVAL) size 68 does not match its terms and rank (expected 72)", base="interval"),
    case("interval_too_short", lambda d: edit(d, INTERVAL, lambda p: p[:32]), F, "(INTERVAL) is too short", base="interval"),
    case("interval_twice", lambda d: resecs(d, lambda s: s + [x for x in s if x.kind == INTERVAL]), F, "more than one INTERVAL section", base="interval"),
    case("output_floor_inf", lambda d: in_sec(d, OUTPUT, 4, "<f", float("inf")), F, "output floor is not a finite positive", base="floor"),
    case("output_reserved", lambda d: in_sec(d, OUTPUT, 4, "<I", 1), F, "(OUTPUT) reserved field is not zero"),
    case("output_scale_nan", lambda d: in_sec(d, OUTPUT, 8, "<d", float("nan")), F, "output scale or shift is not finite"),
    case("output_scale_inf", lambda d: in_sec(d, OUTPUT, 8, "<d", float("inf")), F, "output scale or shift is not finite"),
    case("output_scale_neg_inf", lambda d: in_sec(d, OUTPUT, 8, "<d", float("-inf")), F, "output scale or shift is not finite"),
    case("output_shift_nan", lambda d: in_sec(d, OUTPUT, 16, "<d", float("nan")), F, "output scale or shift is not finite"),
    case("output_shift_inf", lambda d: in_sec(d, OUTPUT, 16, "<d", float("inf")), F, "output scale or shift is not finite"),
    # FEATURES
    case("feature_count_below_input_dim", lambda d: edit(d, FEATURES, lambda p: features(names_of(d)[:15])), F, "FEATURES lists 15 names but input_dim is 16"),
    case("feature_count_above_input_dim", lambda d: edit(d, FEATURES, lambda p: features(names_of(d) + [b"extra"])), F, "FEATURES lists 17 names but input_dim is 16"),
    case("feature_count_4097", lambda d: in_sec(d, FEATURES, 0, "<I", MAX_DIM + 1), LIM, "lists more than 4096 features"),
    case("feature_count_u32_max", lambda d: in_sec(d, FEATURES, 0, "<I", U32_MAX), LIM, "lists more than 4096 features"),
    case("feature_count_beyond_data", lambda d: in_sec(d, FEATURES, 0, "<I", 17), F, "ends inside feature name 16"),
    case("feature_name_length_0", lambda d: with_name0(d, b""), F, "feature name 0 has length 0 (must be 1..1024)"),
    case("feature_name_length_1025", lambda d: with_name0(d, b"n" * 1025), F, "feature name 0 has length 1025 (must be 1..1024)"),
    case("feature_name_length_u32_max", lambda d: in_sec(d, FEATURES, 4, "<I", U32_MAX), F, f"feature name 0 has length {U32_MAX}"),
    case("feature_name_length_past_section", lambda d: in_sec(d, FEATURES, 4, "<I", 1000), F, "ends inside feature name 0"),
    case("features_trailing_bytes", lambda d: edit(d, FEATURES, lambda p: p + b"zz"), F, "(FEATURES) has trailing bytes"),
    case("features_too_short", lambda d: edit(d, FEATURES, lambda p: p[:3]), F, "(FEATURES) is too short"),
    case("duplicate_feature_names", lambda d: with_name0(d, b"f1"), F, "feature name 'f1' appears twice"),
    case("feature_name_utf8_ff", lambda d: with_name0(d, b"\xff"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_utf8_overlong_nul", lambda d: with_name0(d, b"a\xc0\x80"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_utf8_overlong_3byte", lambda d: with_name0(d, b"\xe0\x80\xaf"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_utf8_surrogate", lambda d: with_name0(d, b"\xed\xa0\x80"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_utf8_above_u10ffff", lambda d: with_name0(d, b"\xf4\x90\x80\x80"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_utf8_truncated", lambda d: with_name0(d, b"ms\xe2\x82"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_utf8_lone_continuation", lambda d: with_name0(d, b"\x80x"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_utf8_5byte_lead", lambda d: with_name0(d, b"\xf8\x88\x80\x80\x80"), F, "feature name 0 is not valid UTF-8"),
    case("feature_name_nul", lambda d: with_name0(d, b"f\x00g"), F, "feature name 0 is not valid UTF-8"),
    # METADATA
    case("metadata_utf8_ff", lambda d: edit(d, METADATA, lambda p: p[:-1] + b"\xff"), F, "(METADATA) is not valid UTF-8"),
    case("metadata_utf8_overlong", lambda d: edit(d, METADATA, lambda p: b"\xc1\xbf" + p), F, "(METADATA) is not valid UTF-8"),
    case("metadata_utf8_surrogate", lambda d: edit(d, METADATA, lambda p: p + b"\xed\xbf\xbf"), F, "(METADATA) is not valid UTF-8"),
    case("metadata_utf8_truncated_at_end", lambda d: edit(d, METADATA, lambda p: p + b"\xf0\x9f\x98"), F, "(METADATA) is not valid UTF-8"),
    case("metadata_nul", lambda d: edit(d, METADATA, lambda p: p + b"\0"), F, "(METADATA) is not valid UTF-8"),
    case("metadata_over_16_mib", lambda d: edit(d, METADATA, lambda p: b" " * ((16 << 20) + 1)), LIM, "(METADATA) is larger than 16 MiB"),
]


def fix_header_only(data: bytes) -> bytes:
    return put(data, 60, "<I", zlib.crc32(data[:60]), crc=False)


def test_repacker_reproduces_the_writer(bases):
    """The helpers above lay out a file byte for byte as maple_edge_lite.format does, so each case
    changes only what it means to change."""
    for name in ("std", "odd", "floor", "interval"):
        d = bases(name)
        assert build(parse(d)) == d
        assert fix(d, size=True) == d
        assert enc_layer(dec_layer(parse(d)[1].payload)) == parse(d)[1].payload


@pytest.mark.parametrize("base, mutate, cls, fragment", CORRUPT)
def test_corrupt_file_is_rejected(bases, base, mutate, cls, fragment):
    data = bases(base)
    bad = mutate(data)
    assert bad != data
    expect_error(bad, cls, fragment)


# --- truncation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(HEADER_SIZE), ids=lambda n: f"{n}_bytes")
def test_truncated_header(model_bytes, n):
    expect_error(model_bytes[0][:n], mel.FormatError, f"file is {n} bytes, shorter than the 64-byte header")


def _boundaries(data: bytes) -> dict:
    """Every header/table/section boundary of a file, by name."""
    n = u32(data, 20)
    ends = [u64(data, HEADER_SIZE + ENTRY * i + 8) + u64(data, HEADER_SIZE + ENTRY * i + 16) for i in range(n)]
    b = {"header_end": HEADER_SIZE, "table_end": HEADER_SIZE + ENTRY * n, "last_content_byte": max(ends) - 1}
    for i in range(n):
        b[f"table_entry_{i}"] = HEADER_SIZE + ENTRY * i
    for i in range(n):
        off, size = u64(data, HEADER_SIZE + ENTRY * i + 8), u64(data, HEADER_SIZE + ENTRY * i + 16)
        b[f"section_{i}_start"] = off
        b[f"section_{i}_middle"] = off + size // 2
        if off + size < len(data):
            b[f"section_{i}_end"] = off + size
    return b


BOUNDARY_NAMES = ["header_end", "table_end", "last_content_byte"]
BOUNDARY_NAMES += [f"table_entry_{i}" for i in range(6)]
BOUNDARY_NAMES += [f"section_{i}_{w}" for i in range(6) for w in ("start", "middle", "end")]


@pytest.mark.parametrize("where", BOUNDARY_NAMES)
def test_truncated_at_boundary(model_bytes, where):
    data = model_bytes[0]
    b = _boundaries(data)
    if where not in b:
        pytest.skip(f"{where} is the end of the file")  # section_5_end: the last section ends the file
    n = b[where]
    assert HEADER_SIZE <= n < len(data)
    # as copied: the header still describes the whole file
    expect_error(data[:n], mel.FormatError, f"header says the file is {len(data)} bytes but {n} were read (truncated")
    # with a header made consistent with the short file (file_size and CRCs), a later check must
    # catch it, unless the cut removed only the zero padding after the last section
    if n > b["last_content_byte"]:
        mel.Model.from_bytes(fix(data[:n], size=True))
        return
    e = expect_error(fix(data[:n], size=True), mel.FormatError, "")
    assert "section table runs past the end" in str(e) or "lies outside the payload" in str(e), str(e)


def test_truncated_at_every_byte(bases):
    """Every prefix of a valid file fails with FormatError, both as copied and with the header
    patched to match (unless the cut only removed the zero padding after the last section); none
    crashes."""
    for name in ("std", "odd"):
        data = bases(name)
        n_sec = u32(data, 20)
        content_end = max(u64(data, HEADER_SIZE + ENTRY * i + 8) + u64(data, HEADER_SIZE + ENTRY * i + 16) for i in range(n_sec))
        assert content_end > len(data) - 8
        for n in range(len(data)):
            for bad in (data[:n], fix(data[:n], size=True)):
                if n >= content_end and bad is not data[:n] and n >= HEADER_SIZE:
                    continue
                with pytest.raises(mel.FormatError) as ei:
                    mel.Model.from_bytes(bad)
                assert type(ei.value) is mel.FormatError, (name, n, str(ei.value))
        for n in range(content_end, len(data)):  # only padding cut: a consistent header makes it valid
            mel.Model.from_bytes(fix(data[:n], size=True))


def test_every_single_bit_flip_is_caught(model_bytes):
    """A flipped bit anywhere fails the load (CRC or an earlier check); it never loads silently."""
    data = model_bytes[0]
    for pos in range(len(data)):
        with pytest.raises(mel.FormatError):
            mel.Model.from_bytes(flip(data, pos, pos % 8))


# --- valid files at the edges: they load, and predict exactly like the numpy reference ------------


def _acc_edge(d: bytes) -> bytes:
    """Layer 0 rows at the accumulator bound exactly: |bias| + 127 * sum|W| == INT32_MAX, with the
    requantization extremes (multiplier INT32_MAX with shift 62, shift 1, multiplier 0)."""

    def f(L: Layer) -> Layer:
        w, bias, e1, e2 = L.w.copy(), L.bias.copy(), L.e1.copy(), L.e2.copy()
        n_in = w.shape[1]
        room = I32_MAX - 127 * 127 * n_in
        w[0], bias[0], e1[0], e2[0] = 127, room, I32_MAX, 62
        w[1], bias[1], e1[1], e2[1] = -127, -room, I32_MAX, 1
        w[2], bias[2], e1[2], e2[2] = np.where(np.arange(n_in) % 2 == 0, 127, -127), room, 0, 62
        w[3], bias[3], e1[3], e2[3] = 127, room, 1 << 30, 31
        return replace(L, w=w, bias=bias, e1=e1, e2=e2)

    def g(L: Layer) -> Layer:  # the output layer too, with a small deq so exp() stays finite
        n_in = L.w.shape[1]
        return replace(L, w=np.full_like(L.w, 127), bias=np.array([I32_MAX - 127 * 127 * n_in], np.int32),
                       e1=np.array([f32(1e-9)], np.uint32))

    return edit_layer(edit_layer(d, 0, f), 1, g)


VALID = [
    pytest.param(lambda d: _add(99, b"from the future", 1)(d), True, id="unknown_optional_section"),
    pytest.param(lambda d: _add(0, b"", 1)(d), True, id="unknown_optional_empty_section_kind_0"),
    pytest.param(lambda d: resecs(d, lambda s: [Sec(1234, b"\x01" * 40, 1)] + s), True, id="unknown_optional_section_first"),
    pytest.param(lambda d: build(parse(d), order=[5, 4, 3, 2, 1, 0]), True, id="payloads_in_reverse_physical_order"),
    pytest.param(lambda d: resecs(d, lambda s: [s[5], s[4], s[0], s[3], s[1], s[2]]), True, id="table_in_other_order"),
    pytest.param(lambda d: with_name0(d, "латентность µs 🚀".encode()), True, id="non_ascii_feature_name"),
    pytest.param(lambda d: with_name0(d, b"n" * 1024), True, id="feature_name_1024_bytes"),
    pytest.param(lambda d: edit(d, METADATA, lambda p: b'{"note": "\xe2\x82\xac \xf0\x9f\x98\x80"}'), True, id="metadata_4_byte_utf8"),
    pytest.param(lambda d: in_sec(d, OUTPUT, 8, "<d", -0.5), False, id="output_scale_negative"),
    pytest.param(lambda d: in_sec(d, OUTPUT, 8, "<d", 0.0), False, id="output_scale_zero"),
    pytest.param(lambda d: in_sec(d, OUTPUT, 0, "<I", 0), False, id="output_identity"),
    pytest.param(lambda d: put(d, layer_pos(d, 0, "w", 0, 0), "<b", -127), False, id="weight_minus_127"),
    pytest.param(_acc_edge, False, id="accumulators_at_int32_bound"),
    pytest.param(lambda d: _input_value("mul", 0, 1e-45)(d), False, id="input_mul_denormal"),
    pytest.param(lambda d: _input_value("mul", 0, 3.4e38)(_input_value("mean", 1, -3.4e38)(d)), False, id="input_extreme_mul_and_mean"),
]


@pytest.mark.parametrize("mutate, same_predictions", VALID)
def test_valid_edge_file_loads(model_bytes, mutate, same_predictions):
    data, _ = model_bytes
    good = mutate(data)
    assert good != data
    m = mel.Model.from_bytes(good)
    x = edge_rows(m.input_dim)
    ref = reference(good)
    with np.errstate(over="ignore"):  # extreme scales overflow to inf before the clip, as in C
        want = ref.predict_raw(x)
    for k in kernels_here():
        got = m._m.predict_raw(x, kernel=k)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), k
    if same_predictions:
        base = mel.Model.from_bytes(data)
        assert np.array_equal(m.predict_raw(x).view(np.uint64), base.predict_raw(x).view(np.uint64))
        assert m.feature_names[1:] == base.feature_names[1:]


def test_accumulator_bound_is_inclusive(model_bytes):
    """The accumulator check accepts |bias| + 127*sum|W| == INT32_MAX and rejects one more."""
    data = _acc_edge(model_bytes[0])
    mel.Model.from_bytes(data)
    room = I32_MAX - 127 * 127 * 16
    expect_error(put(data, layer_pos(data, 0, "bias", 0), "<i", room + 1), mel.FormatError,
                 "layer 0 output 0 could overflow its int32 accumulator (|bias| + 127*sum|W| = 2147483648)")
    expect_error(put(data, layer_pos(data, 0, "bias", 1), "<i", -room - 1), mel.FormatError,
                 "layer 0 output 1 could overflow")


# --- files on disk --------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    p = tmp_path / "nope.melw"
    with pytest.raises(mel.ModelNotFoundError) as ei:
        mel.Model.load(p)
    assert isinstance(ei.value, FileNotFoundError)
    assert ei.value.status == "MEL_ERR_NOT_FOUND"
    assert str(p) in str(ei.value)


def test_path_through_a_file(tmp_path, model_bytes):
    f = tmp_path / "model.melw"  # written by the fixture
    with pytest.raises(mel.ModelNotFoundError):
        mel.Model.load(f / "inner.melw")  # ENOTDIR


def test_directory_path(tmp_path):
    with pytest.raises(mel.MapleEdgeError) as ei:
        mel.Model.load(tmp_path)
    assert ei.value.status == "MEL_ERR_IO"
    assert "is a directory" in str(ei.value)
    assert not isinstance(ei.value, ValueError)  # not a format problem


def test_corrupt_file_error_names_the_path(tmp_path, model_bytes):
    p = tmp_path / "bad.melw"
    p.write_bytes(put(model_bytes[0], 12, "<H", 9))
    with pytest.raises(mel.VersionError) as ei:
        mel.Model.load(p)
    assert str(ei.value).startswith(f"{p}: ")


def _load_as_nobody(path: str):
    """Load ``path`` in a forked child that has dropped to uid/gid 65534 (nobody); returns the
    child's exit code and report (class|status|is PermissionError|message, or 'loaded')."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, always _exit
        code = 3
        try:
            os.close(r)
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            except OSError as e:
                os.write(w, f"cannot drop privileges: {e}".encode())
                code = 2
            else:
                try:
                    mel.Model.load(path)
                    msg = "loaded"
                except mel.MapleEdgeError as e:
                    msg = "|".join([type(e).__name__, e.status, str(isinstance(e, PermissionError)), str(e)])
                os.write(w, msg.encode())
                code = 0
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while True:
        c = os.read(r, 65536)
        if not c:
            break
        chunks.append(c)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_unreadable_file(model_bytes):
    """A file without read permission gives MapleEdgePermissionError (a PermissionError). Root
    reads any file (CAP_DAC_OVERRIDE), so as root the load runs in a forked child that first drops
    to uid 65534 (nobody); the test is skipped only if that is impossible."""
    d = tempfile.mkdtemp(prefix="mel-perm-")
    p = os.path.join(d, "locked.melw")
    try:
        os.chmod(d, 0o755)
        with open(p, "wb") as f:
            f.write(model_bytes[0])
        os.chmod(p, 0o000)
        if os.geteuid() == 0:
            code, report = _load_as_nobody(p)
            if code == 2:
                pytest.skip(f"running as root, which reads any file, and {report}")
            assert code == 0, report
        else:
            try:
                mel.Model.load(p)
                report = "loaded"
            except mel.MapleEdgeError as e:
                report = "|".join([type(e).__name__, e.status, str(isinstance(e, PermissionError)), str(e)])
        cls, status, is_perm, msg = (report.split("|", 3) + ["", "", ""])[:4]
        assert (cls, status, is_perm) == ("MapleEdgePermissionError", "MEL_ERR_PERMISSION", "True"), report
        assert p in msg and "permission denied" in msg
    finally:
        if os.path.exists(p):
            os.unlink(p)
        os.rmdir(d)


# --- no leak after failed loads -------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)")
def test_failed_loads_do_not_leak(pack_random):
    """10,000 loads that fail at different depths, most after the model's arena, names and
    metadata were allocated (a 64 -> 256 -> 256 -> 1 model: ~90 KB of arena per load), must not
    grow the resident set: a leak of one arena per load would add about 900 MB."""
    path, _ = pack_random([64, 256, 256, 1], seed=9, name="big.melw")
    data = path.read_bytes()
    bad = [
        put(data, layer_pos(data, 2, "bias", 0), "<i", I32_MAX),  # the very last check
        put(data, layer_pos(data, 1, "e2", 255), "<i", 0),  # layer 1, after layer 0 was copied
        with_name0(data, b"f1"),  # duplicate names, after all names were copied
        flip(data, len(data) - 1),  # payload CRC
        edit(data, METADATA, lambda p: p + b"\xff"),  # metadata, after the layers' sections
    ]
    for b in bad:
        with pytest.raises(mel.FormatError):
            mel.Model.from_bytes(b)
    for _ in range(200):  # warm up allocator pools and caches
        for b in bad:
            try:
                mel.Model.from_bytes(b)
            except mel.FormatError:
                pass
    before = _rss_bytes()
    for i in range(10_000):
        try:
            mel.Model.from_bytes(bad[i % len(bad)])
        except mel.FormatError:
            pass
        else:
            pytest.fail("a corrupt buffer loaded")
    grew = _rss_bytes() - before
    assert grew < 16 << 20, f"RSS grew by {grew / 2**20:.1f} MiB over 10,000 failed loads"
