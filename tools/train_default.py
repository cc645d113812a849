#!/usr/bin/env python3
"""Train the predictors that ship inside the package and register them.

    OPENBLAS_NUM_THREADS=1 python tools/train_default.py                      # ../shared/data, 1.0.0
    OPENBLAS_NUM_THREADS=1 python tools/train_default.py --version 1.1.0 --spaces nb201

For each search space (``nb201``, the default predictor, and ``fbnet``): fit the few-shot prior
(``learn.bayes_linear.BayesLinear``, deterministic) on every device of every table of that space under
``--data``, choose the space's reference architectures with ``method.select(10, every
architecture of the table, np.random.default_rng(0))``, and write
``maple_edge_lite/predictors/<space>-<version>.melw`` with the tables (path relative to
``--data``, sha256, bytes), the devices, the commit and the selection rule in its provenance.
Then ``maple_edge_lite/predictors/registry.json`` gets the file's sha256 and size under
``predictors[<space>].versions[<version>]`` and ``latest``; other versions stay listed. See
docs/predict.md for the registry format.

Runs against the *installed* package (``pip install .`` first, from this checkout): the encoder is
the compiled one. The provenance names the checkout's commit; a checkout with uncommitted
changes is refused (``--allow-dirty`` records ``<commit>-dirty`` and warns).
``SOURCE_DATE_EPOCH`` fixes the ``created`` time, so two runs on the same tables and commit
write identical files. Host-side tool: never imported by the package."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREDICTORS = REPO / "maple_edge_lite" / "predictors"
REGISTRY_SCHEMA = "maple_edge_lite.registry/1"
N_REFERENCE = 10


def created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
         else datetime.datetime.now(datetime.timezone.utc))
    return t.isoformat(timespec="seconds")


def commit(repo: Path = REPO) -> tuple:
    """(the checkout's HEAD commit or None, the tracked files with uncommitted changes)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=repo)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=repo)
    except (OSError, subprocess.SubprocessError):
        return None, []
    sha = out.stdout.strip() if out.returncode == 0 else ""
    return (sha or None), [line[3:] for line in dirty.stdout.splitlines() if line.strip()]


def train_space(space: str, data: Path, version: str, out_dir: Path, when: str, rev) -> dict:
    import numpy as np

    import maple_edge_lite as mel
    from maple_edge_lite import encode as enc
    from maple_edge_lite.learn.data import load_table
    from maple_edge_lite.learn.bayes_linear import BayesLinear, feature_absmax, pack_base
    from maple_edge_lite.device.profile import FEATURE_SCHEMA
    from maple_edge_lite.registry import file_sha256

    t0 = time.perf_counter()
    table = load_table([data], space)
    X = enc.encode(space, table.archs)
    names = enc.feature_names(space)
    method = BayesLinear().fit(X, np.log(table.latency_ms), table.devices, names)
    pool = np.arange(len(table.archs))
    refs = [table.archs[i] for i in method.select(N_REFERENCE, pool, np.random.default_rng(0))]
    measured = np.isfinite(table.latency_ms).sum(0)
    provenance = {
        "predictor": {"name": space, "version": version},
        "tables": [{"path": os.path.relpath(s, data), "sha256": file_sha256(s), "bytes": os.path.getsize(s)}
                   for s in table.sources],
        "data_dir": os.path.basename(os.path.normpath(data)),
        "devices": table.devices,
        "archs_per_device": {d: int(n) for d, n in zip(table.devices, measured)},
        "n_archs": len(table.archs),
        "method": method.describe(),
        "encoder_schema_version": enc.schema_version(space),
        "descriptor_features": "none (the public tables carry no counters)",
        "reference_archs": f"BayesLinear.select({N_REFERENCE}, all {len(table.archs)} archs of the table, "
                           "numpy.random.default_rng(0))",
        "trained_by": f"maple_edge_lite {mel.__version__}, tools/train_default.py",
        "commit": rev,
        "created": when,
    }
    out = out_dir / f"{space}-{version}.melw"
    pack_base(method, out, feature_names=names, absmax=feature_absmax(X), search_space=space,
              provenance=provenance, reference_archs=refs, descriptor_feature_schema=FEATURE_SCHEMA)
    mel.Model.load(out)  # the core reads what was written
    size = out.stat().st_size
    print(f"{space} {version}: {len(table.devices)} devices x {len(table.archs)} archs, "
          f"{len(method.cols)} structural features -> {_shown(out)} ({size} bytes, "
          f"{time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return {"file": out.name, "sha256": file_sha256(out), "bytes": size, "search_space": space, "kind": "base",
            "method": "bayes_linear", "devices": len(table.devices), "created": when,
            "tables": [t["path"] for t in provenance["tables"]]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"),
                    help="folder of latency tables in the shared format (default ../shared/data)")
    ap.add_argument("--version", default="1.0.0", help="semver of the predictors written (default 1.0.0)")
    ap.add_argument("--spaces", default="nb201,fbnet", help="comma-separated search spaces (default nb201,fbnet)")
    ap.add_argument("--default", default="nb201", help="the registry's default predictor name (default nb201)")
    ap.add_argument("--out-dir", default=str(PREDICTORS), help="where the .melw files and registry.json go")
    ap.add_argument("--force", action="store_true", help="replace a version that is already registered")
    ap.add_argument("--allow-dirty", action="store_true",
                    help="train from a checkout with uncommitted changes (recorded as <commit>-dirty, with a "
                    "warning); without it the tool refuses, since the record could not name the code")
    ap.add_argument("--repo", default=str(REPO), help=argparse.SUPPRESS)  # tests: the checkout whose commit is recorded
    args = ap.parse_args(argv)
    from maple_edge_lite._errors import InputError
    from maple_edge_lite.registry import parse_semver

    try:  # the rule `maple_edge_lite.load` checks versions with
        parse_semver(args.version)
    except InputError:
        ap.error(f"--version {args.version!r} is not a semver string (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    data = Path(args.data).resolve()
    if not data.is_dir():
        ap.error(f"--data {data} is not a folder")
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    reg_path = out_dir / "registry.json"
    reg = (json.loads(reg_path.read_text()) if reg_path.exists()
           else {"schema": REGISTRY_SCHEMA, "default": args.default, "predictors": {}})
    if reg.get("schema") != REGISTRY_SCHEMA:
        ap.error(f"{reg_path}: schema {reg.get('schema')!r} is not {REGISTRY_SCHEMA!r}")
    spaces = [s.strip() for s in args.spaces.split(",") if s.strip()]
    for space in spaces:
        known = reg["predictors"].get(space, {}).get("versions", {})
        if args.version in known and not args.force:
            ap.error(f"{space} {args.version} is already registered: bump --version, or --force to replace it")
    sha, dirty = commit(Path(args.repo))
    if sha is None:
        ap.error(f"{args.repo} is not a git checkout: the provenance could not name the commit the predictors "
                 "were trained at (train from a checkout)")
    if dirty and not args.allow_dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        ap.error(f"the checkout has uncommitted changes ({shown}): commit them first, so the predictors' "
                 f"provenance names the code they were trained with, or pass --allow-dirty")
    rev = sha + ("-dirty" if dirty else "")
    if dirty:
        print(f"WARNING: training from a checkout with uncommitted changes; the provenance says {rev}: "
              "these files cannot be reproduced from any commit", file=sys.stderr)
    when = created()
    from maple_edge_lite.format import write_atomic

    for space in spaces:
        entry = train_space(space, data, args.version, out_dir, when, rev)
        p = reg["predictors"].setdefault(space, {"versions": {}})
        p["versions"][args.version] = entry
        p["latest"] = max(p["versions"], key=_semver_key)
        p["versions"] = dict(sorted(p["versions"].items(), key=lambda kv: _semver_key(kv[0])))
    reg["default"] = args.default
    if reg["default"] not in reg["predictors"]:
        ap.error(f"--default {args.default!r} is not a registered predictor ({', '.join(reg['predictors'])})")
    write_atomic(reg_path, (json.dumps(reg, indent=2) + "\n").encode())
    print(f"registry: {_shown(reg_path)}", file=sys.stderr)
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _semver_key(v: str):
    from maple_edge_lite.registry import semver_key

    return semver_key(v)


if __name__ == "__main__":
    sys.exit(main())
