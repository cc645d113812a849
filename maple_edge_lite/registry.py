"""The predictors shipped inside the package: named, versioned (semver), checksummed.

    import maple_edge_lite as mel
    base = mel.load()                    # the default predictor (nb201, its latest version)
    base = mel.load("fbnet")             # a named one, latest version
    base = mel.load("nb201", "1.0.0")    # or mel.load("nb201@1.0.0")
    dev = mel.load("device.melw")        # a path (os.PathLike, or a str with "/" or ending .melw)

``predictors/registry.json`` (schema :data:`SCHEMA`) lists each predictor's versions with the
file name, its sha256 and its size; ``load`` checks the version string (semver 2.0.0), that the
version is registered, and the file's sha256 before the core reads it. Nothing is downloaded:
a predictor that is not in the package is an error that lists the ones that are. The format is
in docs/predict.md; ``tools/train_default.py`` writes the files and the registry.

Errors: an unknown name or version raises ``UnknownPredictorError`` (an ``InputError``, so a
``ValueError``) listing the known ones; a malformed version string raises ``InputError``; a
shipped file whose sha256 differs raises ``PredictorChecksumError`` (a ``ChecksumError``)
naming the file and saying to reinstall; a missing one ``ModelNotFoundError``."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ._errors import ChecksumError, FormatError, InputError, ModelNotFoundError

#: Schema of predictors/registry.json.
SCHEMA = "maple_edge_lite.registry/1"
#: Where the shipped predictors live (inside the installed package).
PREDICTORS_DIR = Path(__file__).resolve().parent / "predictors"

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
_REINSTALL = "pip install --force-reinstall --no-deps maple-edge-lite"


class UnknownPredictorError(InputError, LookupError):
    """A predictor name or version the package does not ship; the message lists the known ones."""


class PredictorChecksumError(ChecksumError):
    """A shipped predictor file whose sha256 is not the registry's: modified or damaged."""


def parse_semver(version: str) -> Tuple[int, int, int, Optional[str], Optional[str]]:
    """``"1.2.3-rc.1+build"`` -> ``(1, 2, 3, "rc.1", "build")``; ``InputError`` if ``version`` is
    not a semver 2.0.0 string (``"1.0"``, ``"v1.0.0"``, ``"01.0.0"`` are not)."""
    m = _SEMVER.match(version) if isinstance(version, str) else None
    if not m:
        raise InputError(f"malformed predictor version {version!r}: expected a semver string "
                         "MAJOR.MINOR.PATCH such as 1.0.0")
    return int(m[1]), int(m[2]), int(m[3]), m[4], m[5]


def semver_key(version: str):
    """Sort key in semver precedence: a pre-release sorts before its release; build metadata
    is ignored."""
    major, minor, patch, pre, _ = parse_semver(version)
    if pre is None:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


@dataclass(frozen=True)
class Entry:
    """One registered predictor version: ``path`` of its file in the package, the registry's
    ``sha256`` and ``bytes`` of it, and the registry's other facts in ``info``."""

    name: str
    version: str
    path: Path
    sha256: str
    bytes: int
    info: Dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


_registry: Optional[Dict[str, Any]] = None


def registry() -> Dict[str, Any]:
    """The parsed, checked ``predictors/registry.json`` (read once per process)."""
    global _registry
    if _registry is None:
        _registry = _read_registry(PREDICTORS_DIR / "registry.json")
    return _registry


def _read_registry(path: Path) -> Dict[str, Any]:
    def bad(why):
        raise FormatError(f"{path}: {why}; the installed package is damaged: reinstall it ({_REINSTALL})")

    try:
        with open(path, "rb") as f:
            reg = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise ModelNotFoundError(f"predictor registry {path} is missing; the installed package is incomplete: "
                                 f"reinstall it ({_REINSTALL})") from None
    except (UnicodeDecodeError, ValueError) as e:
        bad(f"not valid JSON ({e})")
    if not isinstance(reg, dict) or reg.get("schema") != SCHEMA:
        bad(f"schema {reg.get('schema') if isinstance(reg, dict) else None!r} is not {SCHEMA!r}")
    preds = reg.get("predictors")
    if not isinstance(preds, dict) or not preds:
        bad("no predictors listed")
    for name, p in preds.items():
        vs = p.get("versions") if isinstance(p, dict) else None
        if not isinstance(vs, dict) or not vs:
            bad(f"predictor {name!r} lists no versions")
        for v, e in vs.items():
            try:
                parse_semver(v)
            except InputError:
                bad(f"predictor {name!r} has a malformed version {v!r}")
            if (not isinstance(e, dict) or not isinstance(e.get("file"), str) or "/" in e["file"]
                    or not re.fullmatch(r"[0-9a-f]{64}", str(e.get("sha256", "")))
                    or not isinstance(e.get("bytes"), int)):
                bad(f"{name}@{v} needs file (a name), sha256 (64 hex digits) and bytes")
        if "latest" in p and p["latest"] not in vs:
            bad(f"predictor {name!r}: latest {p['latest']!r} is not one of its versions")
    if reg.get("default") not in preds:
        bad(f"default {reg.get('default')!r} is not a listed predictor")
    return reg


def names() -> List[str]:
    """The shipped predictors' names, the default first."""
    reg = registry()
    return [reg["default"]] + [n for n in reg["predictors"] if n != reg["default"]]


def versions(name: str) -> List[str]:
    """The registered versions of ``name``, in semver order."""
    p = registry()["predictors"].get(name)
    if p is None:
        raise UnknownPredictorError(f"unknown predictor {name!r}; shipped predictors: {', '.join(names())}")
    return sorted(p["versions"], key=semver_key)


def default_name() -> str:
    return registry()["default"]


def split_ref(ref: str) -> Tuple[str, Optional[str]]:
    """``"nb201@1.0.0"`` -> ``("nb201", "1.0.0")``; ``"nb201"`` -> ``("nb201", None)``."""
    name, sep, version = ref.partition("@")
    return name, (version if sep else None)


def is_path(ref: Union[str, os.PathLike]) -> bool:
    """Whether ``load`` reads ``ref`` as a file path rather than a registry name: an
    ``os.PathLike``, or a str containing a path separator or ending in ``.melw``."""
    if not isinstance(ref, str):
        return isinstance(ref, os.PathLike)
    return "/" in ref or os.sep in ref or ref.endswith(".melw")


def resolve(name: Optional[str] = None, version: Optional[str] = None) -> Entry:
    """The registry entry for ``name`` (default: the registry's default; ``"name@version"``
    works too) at ``version`` (default: the predictor's latest). Checks the version string and
    that it is registered; does not read the predictor file."""
    if name is None:
        name = default_name()
    if not isinstance(name, str):
        raise InputError(f"predictor name must be a string, got {type(name).__name__}")
    name, at = split_ref(name)
    if at is not None:
        if version is not None and version != at:
            raise InputError(f"two versions given for {name!r}: {at!r} and {version!r}")
        version = at
    if version is not None:
        parse_semver(version)
    known = versions(name)
    p = registry()["predictors"][name]
    if version is None:
        version = p.get("latest") or max((v for v in known if parse_semver(v)[3] is None), key=semver_key,
                                         default=known[-1])
    elif version not in p["versions"]:
        raise UnknownPredictorError(f"predictor {name!r} has no version {version!r}; known versions: "
                                    f"{', '.join(known)} (nothing is downloaded: newer predictors come "
                                    "with newer maple_edge_lite releases)")
    e = p["versions"][version]
    return Entry(name, version, PREDICTORS_DIR / e["file"], e["sha256"], e["bytes"], dict(e))


def file_sha256(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_verified(entry: Entry) -> bytes:
    """The bytes of ``entry``'s file after checking its size and sha256 against the registry."""
    try:
        with open(entry.path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ModelNotFoundError(f"shipped predictor {entry.ref} is missing ({entry.path}); the installed "
                                 f"package is incomplete: reinstall it ({_REINSTALL})") from None
    got = hashlib.sha256(data).hexdigest()
    if got != entry.sha256 or len(data) != entry.bytes:
        raise PredictorChecksumError(
            f"shipped predictor {entry.ref} ({entry.path}) does not match the registry: sha256 {got[:16]}... "
            f"({len(data)} bytes), expected {entry.sha256[:16]}... ({entry.bytes} bytes). The file was modified "
            f"or damaged: reinstall maple_edge_lite ({_REINSTALL})")
    return data


def load(name: Union[str, os.PathLike, None] = None, version: Optional[str] = None):
    """A predictor as a :class:`maple_edge_lite.Model`: the registry's default (``name=None``),
    a shipped one by name (``"nb201"``, ``"nb201@1.0.0"``, or ``version=``), or a weights file
    by path (``os.PathLike``, or a str with a ``/`` or ending in ``.melw``). Shipped files are
    checked against the registry's sha256 before the core reads them; see the module doc for
    the errors."""
    from ._model import Model

    if name is not None and is_path(name):
        if version is not None:
            raise InputError(f"version={version!r} applies to registry names, not to a path ({os.fspath(name)})")
        return Model.load(name)
    entry = resolve(name, version)
    model = Model.from_bytes(read_verified(entry))
    model._path = str(entry.path)  # for messages and repr: the bytes read are that file's
    return model


def reference_archs(model) -> List[str]:
    """The reference architectures a base model recommends measuring on a new device
    (``metadata["fewshot"]["reference_archs"]``); ``InputError`` if it names none."""
    meta = model.metadata
    refs = (meta.get("fewshot") or {}).get("reference_archs")
    if not refs:
        raise InputError(f"{model._path or 'this model'} names no reference architectures (not a base predictor "
                         "packed with reference_archs)")
    return list(refs)


__all__ = [
    "load",
    "resolve",
    "names",
    "versions",
    "default_name",
    "read_verified",
    "reference_archs",
    "parse_semver",
    "semver_key",
    "Entry",
    "UnknownPredictorError",
    "PredictorChecksumError",
    "SCHEMA",
    "PREDICTORS_DIR",
]
