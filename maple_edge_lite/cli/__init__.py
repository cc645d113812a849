"""Command line: ``maple-edge-lite`` or ``python -m maple_edge_lite``.

Every failure prints one line a person can act on and exits non-zero."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="maple-edge-lite", description="Latency predictor for edge devices.")
    p.add_argument("--cflags", action="store_true", help="print compiler flags for the C API header")
    p.add_argument("--libs", action="store_true", help="print linker flags for libmaple_edge_lite")
    p.add_argument("--version", action="store_true", help="print the package version")
    sub = p.add_subparsers(dest="command")
    from .core import add_parser as _add_core; _add_core(sub)  # noqa: E702
    from .device import add_parser as _add_dev; _add_dev(sub)  # noqa: E702
    from .evaluate import add_parser as _add_eval; _add_eval(sub)  # noqa: E702
    from .layers import add_parser as _add_layers; _add_layers(sub)  # noqa: E702
    from .predict import add_parser as _add_pred; _add_pred(sub)  # noqa: E702
    from .validate import add_parser as _add_val; _add_val(sub)  # noqa: E702
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cflags or args.libs or args.version:
        if args.version:
            import maple_edge_lite as mel

            print(mel.__version__)
        from .core import cflags, libs

        flags = ([cflags()] if args.cflags else []) + ([libs()] if args.libs else [])
        if flags:
            print(" ".join(flags))
        return 0
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    from .._errors import MapleEdgeError

    try:
        return args.func(args)
    except MapleEdgeError as e:
        print(f"maple-edge-lite: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("maple-edge-lite: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"maple-edge-lite: error: {e}", file=sys.stderr)
        return 1
