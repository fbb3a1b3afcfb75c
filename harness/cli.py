"""The ``harness`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
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
    run.add_argument(
        "--results", type=Path, default=Path("results"), help="results store (default: results)"
    )
    run.add_argument("--no-store", action="store_true", help="write reports only, store nothing")
    run.add_argument(
        "--no-parity", action="store_true", help="benchmarks only, skip the parity suite"
    )
    run.add_argument("--json", type=Path, default=None, help="also write the whole run's JSON here")
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

    gate = sub.add_parser(
        "gate",
        help="fail CI on statistically real regressions (exit 0 ok, 1 regression, 2 input error)",
        description="Compare CANDIDATE against BASELINE (result files or folders, raw samples "
        "pooled per benchmark) or, with --ab REF, benchmark REF and the working tree in "
        "interleaved ABBA blocks first. Regressed = the whole bootstrap interval of the "
        "ratio is beyond --threshold AND Mann-Whitney U (Holm-corrected) is below --alpha.",
    )
    gate.add_argument("baseline", nargs="?", type=Path, help="baseline result file or folder")
    gate.add_argument("candidate", nargs="?", type=Path, help="candidate result file or folder")
    gate.add_argument("--ab", metavar="REF", help="benchmark git REF and the working tree now")
    gate.add_argument(
        "--rounds", type=int, default=100, help="ABBA rounds in all for --ab (default 100)"
    )
    gate.add_argument(
        "--pairs",
        type=int,
        default=10,
        help="fresh worker pairs the --ab rounds are spread over (default 10): each process "
        "has a speed bias of its own, which averages out over pairs",
    )
    gate.add_argument("--threshold", type=_percent, default=0.05, help="e.g. 5%% (default)")
    gate.add_argument("--alpha", type=float, default=0.01, help="significance after Holm")
    gate.add_argument(
        "--metric",
        choices=["median", "p90", "p99", "speedup"],
        default="median",
        help="speedup: the in-run speed-up against scikit-learn (drift-robust)",
    )
    gate.add_argument("--strict", action="store_true", help="inconclusive benchmarks exit 3")
    gate.add_argument("--json", type=Path, default=None, help="also write the verdicts as JSON")
    gate.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    add_selection_options(gate.add_argument)
    gate.set_defaults(handler=_cmd_gate)

    calibrate = sub.add_parser(
        "calibrate",
        help="A/A runs: measure this machine's noise floor and recommend a gate threshold",
    )
    calibrate.add_argument("--runs", type=int, default=3, help="A/A runs (default 3)")
    calibrate.add_argument("--rounds", type=int, default=100, help="ABBA rounds per run")
    calibrate.add_argument(
        "--pairs", type=int, default=10, help="fresh worker pairs per run, as in gate --ab"
    )
    calibrate.add_argument("--alpha", type=float, default=0.01)
    calibrate.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="store calibration.json under results/<machine>/",
    )
    add_selection_options(calibrate.add_argument)
    calibrate.set_defaults(handler=_cmd_calibrate)

    check = sub.add_parser(
        "check",
        help="parity of your ONNX model against its scikit-learn reference (exit 1 on any gap)",
        description="Run every applicable parity check with Hypothesis on a model pair and print "
        "the check, the numbers and the minimal failing input found.",
    )
    check.add_argument("--model", type=Path, required=True, help="the .onnx model")
    check.add_argument(
        "--reference", type=Path, required=True, help="the scikit-learn model (.skops)"
    )
    check.add_argument("--data", type=Path, default=None, help="representative rows (.npy or .csv)")
    check.add_argument(
        "--profile",
        choices=["dev", "ci", "nightly"],
        default=None,
        help="hypothesis effort (default: $HYPOTHESIS_PROFILE or ci)",
    )
    check.add_argument("--rtol", type=float, default=None, help="override the score tolerance")
    check.add_argument("--atol", type=float, default=None)
    check.add_argument("--json", type=Path, default=None, help="also write the outcomes as JSON")
    check.set_defaults(handler=_cmd_check)

    history = sub.add_parser(
        "history",
        help="each benchmark across stored runs: table, plot, level changes and slow creep",
    )
    history.add_argument("paths", nargs="+", type=Path, help="result folders or files")
    history.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for history.md/.html"
    )
    history.add_argument(
        "--threshold",
        type=_percent,
        default=0.05,
        help="smallest total drift reported as creep (default 5%%)",
    )
    history.set_defaults(handler=_cmd_history)
    return parser


def _percent(text: str) -> float:
    """'5%' or '0.05' -> 0.05."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a percentage like 5% or 0.05, got {text!r}"
        ) from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a percentage between 0 and 100%, got {text!r}")
    return value


def _cmd_gate(args: argparse.Namespace) -> int:
    from harness.gate import gate
    from harness.store import ResultsError, load_results

    options = {"metric": args.metric, "threshold": args.threshold, "alpha": args.alpha}
    try:
        if args.ab:
            if args.baseline or args.candidate:
                print(
                    "harness gate: give BASELINE CANDIDATE or --ab REF, not both", file=sys.stderr
                )
                return 2
            from harness.ab import ABError, ab_gate
            from harness.plugin import namespace_get, selection_from_options

            try:
                selection = selection_from_options(namespace_get(args))
                report, seconds, _ = ab_gate(
                    args.ab, selection, rounds=args.rounds, pairs=args.pairs, **options
                )
            except ABError as exc:
                print(f"harness gate: {exc}", file=sys.stderr)
                return 2
            print(f"(A/B measured and gated in {seconds:.0f} s)")
        else:
            if not (args.baseline and args.candidate):
                print("harness gate: needs BASELINE and CANDIDATE (or --ab REF)", file=sys.stderr)
                return 2
            sides = []
            for path in (args.baseline, args.candidate):
                if not path.exists():
                    print(f"harness gate: no such file or folder: {path}", file=sys.stderr)
                    return 2
                results = load_results([path], strict=True)
                if not results:
                    print(f"harness gate: no result files in {path}", file=sys.stderr)
                    return 2
                sides.append(results)
            report = gate(sides[0], sides[1], **options)
    except ResultsError as exc:
        print(f"harness gate: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"harness gate: {exc}", file=sys.stderr)
        return 2
    table = report.to_markdown()
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(report.to_json())
    if not report.rows:
        print("harness gate: no benchmark is present in both runs", file=sys.stderr)
        return 2
    if report.regressed:
        return 1
    if args.strict and report.inconclusive:
        return 3
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from harness.ab import ABError, calibrate
    from harness.plugin import namespace_get, selection_from_options

    try:
        summary = calibrate(
            selection_from_options(namespace_get(args)),
            runs=args.runs,
            rounds=args.rounds,
            pairs=args.pairs,
            alpha=args.alpha,
            results_dir=args.results,
        )
    except (ABError, ValueError) as exc:
        print(f"harness calibrate: {exc}", file=sys.stderr)
        return 2
    print(
        f"recommended gate threshold on {summary['machine_id']}: "
        f"{summary['recommended_threshold']:.0%} (from {summary['runs']} A/A runs)"
    )
    for name, noise in summary["noise"].items():
        print(
            f"  {name}: typical |A/A change| {np.expm1(noise['median_abs_log_ratio']):.1%}, "
            f"worst {np.expm1(noise['max_abs_log_ratio']):.1%}"
        )
    if "path" in summary:
        print(f"stored: {summary['path']}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from harness.check import CheckSetupError, check_pair, outcomes_table

    try:
        outcomes = check_pair(
            args.model,
            args.reference,
            data=args.data,
            profile=args.profile,
            rtol=args.rtol,
            atol=args.atol,
        )
    except CheckSetupError as exc:
        print(f"harness check: {exc}", file=sys.stderr)
        return 2
    print(outcomes_table(outcomes))
    if args.json:
        args.json.write_text(json.dumps([o.as_dict() for o in outcomes], indent=1, default=float))
    return 1 if any(not o.passed for o in outcomes) else 0


def _cmd_history(args: argparse.Namespace) -> int:
    from harness.history import build_series, write_history

    results = _load_or_report(args.paths, "history")
    if not results:
        print("harness history: no readable result files", file=sys.stderr)
        return 2
    series = build_series(results, threshold=args.threshold)
    md, page = write_history(series, args.out)
    flagged = [s for s in series if s.flags != "-"]
    print(
        f"{len(series)} benchmarks over {len(results)} runs; {len(flagged)} flagged -> {md}, {page}"
    )
    for s in flagged:
        print(f"  {s.machine}/{s.provider} {s.name}: {s.flags}")
    return 0


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
    outcome = run(
        selection,
        out=args.out,
        results_dir=None if args.no_store else args.results,
        json_out=args.json,
        parity=not args.no_parity,
    )
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
