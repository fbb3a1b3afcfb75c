"""The ``harness`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from engines import __version__, probe_providers
from harness.plugin import add_selection_options

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

    run = sub.add_parser(
        "run",
        help="the main job: benchmark the zoo (or your model), store results, write reports",
        description="Run the benchmark suites for a profile, store the results under "
        "results/<machine>/<provider>/ and write report.md and report.html.",
    )
    add_selection_options(run.add_argument)
    run.add_argument("--out", type=Path, default=Path("out"), help="report folder (default: out)")
    run.add_argument("--results", type=Path, default=Path("results"),
                     help="results store (default: results)")  # fmt: skip
    run.add_argument("--no-store", action="store_true", help="write reports only, store nothing")
    run.set_defaults(handler=_cmd_run)

    report = sub.add_parser(
        "report",
        help="regenerate report.md and report.html from stored results",
        description="Build the reports from result files or folders (searched recursively); "
        "unreadable files are reported and skipped.",
    )
    report.add_argument("paths", nargs="+", type=Path, help="result files or folders")
    report.add_argument(
        "--out", type=Path, default=Path("out"), help="report folder (default: out)"
    )
    report.add_argument("--title", default="Harness report")
    report.set_defaults(handler=_cmd_report)

    compare = sub.add_parser(
        "compare",
        help="put two runs side by side (B / A per benchmark), across machines and providers too",
    )
    compare.add_argument("a", type=Path, help="result file or folder A (the reference)")
    compare.add_argument("b", type=Path, help="result file or folder B")
    compare.add_argument("--out", type=Path, default=None, help="also write the table here")
    compare.set_defaults(handler=_cmd_compare)
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.plugin import namespace_get, selection_from_options
    from harness.run import run

    try:
        selection = selection_from_options(namespace_get(args))
    except ValueError as exc:
        print(f"harness run: {exc}", file=sys.stderr)
        return 2
    if selection.user_model is not None and not selection.user_model.model.exists():
        print(f"harness run: no such model file: {selection.user_model.model}", file=sys.stderr)
        return 2
    outcome = run(selection, out=args.out, results_dir=None if args.no_store else args.results)
    return outcome.exit_code


def _load_or_report(paths: list[Path], command: str) -> list[Any] | None:
    from harness.store import load_results

    missing = [p for p in paths if not p.exists()]
    if missing:
        print(
            f"harness {command}: no such file or folder: {', '.join(map(str, missing))}",
            file=sys.stderr,
        )
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = load_results(paths)
    for warning in caught:
        print(f"harness {command}: {warning.message}", file=sys.stderr)
    return results


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.report import write_reports

    results = _load_or_report(args.paths, "report")
    if results is None:
        return 2
    if not results:
        print("harness report: no readable result files", file=sys.stderr)
        return 2
    md, page = write_reports(results, args.out, args.title)
    print(f"{len(results)} result files -> {md}, {page}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.report import compare_markdown

    a = _load_or_report([args.a], "compare")
    b = _load_or_report([args.b], "compare")
    if not a or not b:
        print("harness compare: both sides need at least one readable result file", file=sys.stderr)
        return 2
    table = compare_markdown(a, b)
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


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
