"""The ``harness`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import onnxruntime as ort

from engines import __version__, probe_providers

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Conformance and performance harness for anomaly detectors exported to ONNX.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    providers = sub.add_parser(
        "providers",
        help="list installed execution providers and which really run on this machine",
        description="Create a tiny session on each provider and report whether it really runs.",
    )
    providers.add_argument("--json", action="store_true", help="print JSON instead of a table")
    providers.set_defaults(handler=_cmd_providers)
    return parser


def _cmd_providers(args: argparse.Namespace) -> int:
    statuses = probe_providers()
    if args.json:
        rows = [s.__dict__ for s in statuses]
        print(json.dumps({"onnxruntime": ort.__version__, "providers": rows}, indent=2))
        return 0
    print(f"onnxruntime {ort.__version__} ({ort.get_device()} build)")
    width = max(len(s.name) for s in statuses)
    print(f"{'provider':<{width}}  installed  usable  reason")
    for s in statuses:
        installed = "yes" if s.installed else "no"
        usable = "yes" if s.usable else "no"
        print(f"{s.name:<{width}}  {installed:<9}  {usable:<6}  {s.reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harness`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = handler(args)
    return code
