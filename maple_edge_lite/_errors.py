"""The exception family. Every error the package raises derives from MapleEdgeError and,
where one fits, from the matching builtin, so ``except ValueError`` keeps working."""

from __future__ import annotations


class MapleEdgeError(Exception):
    """Base of every maple_edge_lite error. ``status`` names the C status (``MEL_ERR_*``)."""

    status: str = "MEL_ERR_INTERNAL"


class FormatError(MapleEdgeError, ValueError):
    """Not a valid weights file: corrupt, truncated or inconsistent."""


class VersionError(FormatError):
    """A format or quantization-scheme version this library does not read."""


class ChecksumError(FormatError):
    """A CRC-32 mismatch: the file was damaged after it was written."""


class LimitError(FormatError):
    """Valid, but beyond this reader's limits (dimensions, layers)."""


class InputError(MapleEdgeError, ValueError):
    """Bad arguments: wrong dtype, shape or layout, non-finite features."""


class NumericError(MapleEdgeError, ArithmeticError):
    """A prediction that is not a finite number."""


class ModelNotFoundError(MapleEdgeError, FileNotFoundError):
    """The weights file does not exist."""


class MapleEdgePermissionError(MapleEdgeError, PermissionError):
    """Permission denied (a file, or a performance counter)."""


class MapleEdgeIOError(MapleEdgeError, OSError):
    """A file exists but cannot be read (a directory, an I/O error)."""


class UnsupportedError(MapleEdgeError):
    """Not supported on this machine or build."""


class ResourceError(MapleEdgeError, OSError):
    """Out of a system resource, e.g. file descriptors (raise `ulimit -n`)."""


__all__ = [
    "MapleEdgeError",
    "FormatError",
    "VersionError",
    "ChecksumError",
    "LimitError",
    "InputError",
    "NumericError",
    "ModelNotFoundError",
    "MapleEdgePermissionError",
    "MapleEdgeIOError",
    "UnsupportedError",
    "ResourceError",
]
