"""The ``harness`` command line.

Exit codes, the same for every command (CI can trust them):

- 0: pass.
- 1: a discrepancy (parity), a regression (``gate``), or a flagged benchmark (``history
  --fail-on-flag``).
- 2: a usage or input error: bad options, unreadable model, data or result files, an
  output location that cannot be written.
- 3: inconclusive under ``--strict`` (``gate``).
- 4: a fault of the harness itself; one line, the traceback with ``--verbose`` or in a log.
- 130: interrupted.

Imports are lazy: ``harness --help`` and the light commands load neither onnxruntime nor
pytest.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import __version__
from harness.options import (
    EXTRAS,
    OptionError,
    add_cold_start_option,
    add_selection_options,
    namespace_get,
    pair_settings,
    parse_known_gaps,
    project_settings,
    selection_from_options,
    stale_gaps_advice,
)

__all__ = ["DEPRECATED_OPTIONS", "EXAMPLES", "EXIT_CODES", "build_parser", "main"]

#: ``check --examples``: Hypothesis settings profiles (harness.checks.parity), how many examples.
EXAMPLES = ("dev", "ci", "nightly")

EXIT_CODES = {
    "pass": 0,
    "discrepancy": 1,
    "usage": 2,
    "inconclusive": 3,
    "harness_fault": 4,
    "interrupted": 130,
}


#: Deprecated option names: old -> (new, the release that removes the old one).
DEPRECATED_OPTIONS = {"check --profile": ("--examples", "0.3")}

_VERBOSE_HELP = (
    "print tracebacks of harness faults; in run, also pytest's own progress and "
    "pytest-benchmark's tables"
)


class _HelpFormatter(argparse.HelpFormatter):
    """Every option that takes a value shows its default: '(default: X)' is added where the
    help text does not say it already. Flags are off unless given."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings  # a positional: given, or said in its help
            or action.nargs == 0  # a flag
            or action.required
            or action.default is argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: %(default)s)"


class _DeprecatedAlias(argparse.Action):
    """An option's former name: still works, with a one-line note on stderr."""

    def __init__(
        self, option_strings: Sequence[str], dest: str, *, note: str, **kwargs: Any
    ) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.note = note

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(self.note, file=sys.stderr)
        setattr(namespace, self.dest, values)


def _deprecated(command: str, old: str) -> dict[str, Any]:
    """add_argument keywords of a deprecated name of an option (see DEPRECATED_OPTIONS)."""
    new, removed_in = DEPRECATED_OPTIONS[f"{command} {old}"]
    return {
        "action": _DeprecatedAlias,
        "dest": new.lstrip("-").replace("-", "_"),
        "default": argparse.SUPPRESS,  # the new name's default stands
        "note": f"harness {command}: {old} is deprecated and goes in {removed_in}; use {new} "
        "(the same values)",
        "help": f"deprecated name of {new}, removed in {removed_in} (same values and default)",
    }


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Conformance and performance harness for anomaly detectors exported to ONNX.",
        epilog="exit codes: 0 pass, 1 discrepancy, regression or (history --fail-on-flag) a "
        "flagged benchmark, 2 usage or input error, "
        "3 inconclusive (--strict), 4 fault of the harness itself, 130 interrupted",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="what to do; `harness COMMAND --help` says more"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP
    )

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], formatter_class=_HelpFormatter, **kwargs)

    providers = command(
        "providers",
        help="list installed execution providers and which really run on this machine",
        description="Create a tiny session on each provider and report whether it really runs.",
    )
    providers.add_argument("--json", action="store_true", help="print JSON instead of a table")
    providers.set_defaults(handler=_cmd_providers)

    run = command(
        "run",
        help="the main job: benchmark the zoo (or your model), store results, write reports",
        description="Run the benchmark suites for a profile, store the results under "
        "results/<machine>/<provider>/ and write report.md and report.html.",
    )
    add_selection_options(run.add_argument)
    run.add_argument("--out", type=Path, default=Path("out"), help="report folder")
    run.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="results store, one folder per machine and provider",
    )
    run.add_argument("--no-store", action="store_true", help="write reports only, store nothing")
    run.add_argument(
        "--no-parity", action="store_true", help="benchmarks only, skip the parity suite"
    )
    add_cold_start_option(run.add_argument)
    run.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the whole run's JSON here (default: not written)",
    )
    run.set_defaults(handler=_cmd_run)

    report = command(
        "report",
        help="regenerate report.md and report.html from stored results",
        description="Build the reports from result files or folders (searched recursively); "
        "unreadable files are reported and skipped, interrupted runs left out.",
    )
    report.add_argument("paths", nargs="+", type=Path, help="result files or folders")
    report.add_argument("--out", type=Path, default=Path("out"), help="report folder")
    report.add_argument("--title", default="Harness report", help="the reports' title")
    _add_include_interrupted(report)
    report.set_defaults(handler=_cmd_report)

    compare = command(
        "compare",
        help="put two runs side by side (B / A per benchmark), across machines too",
        description="Print a markdown table of each benchmark's median in A and in B and their "
        "ratio B / A; A and B may come from different machines. An ONNX benchmark never pairs "
        "with one on another provider (listed as not comparable); scikit-learn rows run on no "
        "provider and pair across them. Unreadable files are reported and skipped, interrupted "
        "runs left out.",
    )
    compare.add_argument("a", type=Path, help="result file or folder A (the reference)")
    compare.add_argument("b", type=Path, help="result file or folder B")
    compare.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the table to this file (default: printed only)",
    )
    _add_include_interrupted(compare)
    compare.set_defaults(handler=_cmd_compare)

    gate = command(
        "gate",
        help="fail CI on statistically real regressions (exit 0 ok, 1 regression, 2 input error)",
        description="Compare CANDIDATE against BASELINE (result files or folders, raw samples "
        "pooled per benchmark) or, with --ab REF, benchmark REF and the working tree in "
        "interleaved ABBA blocks first. Regressed = the whole bootstrap interval of the "
        "ratio is beyond --threshold AND Mann-Whitney U (Holm-corrected) is below --alpha.",
    )
    gate.add_argument("baseline", nargs="?", type=Path, help="baseline result file or folder")
    gate.add_argument("candidate", nargs="?", type=Path, help="candidate result file or folder")
    gate.add_argument(
        "--ab",
        metavar="REF",
        help="benchmark git REF and the working tree now (default: none, gate stored results)",
    )
    gate.add_argument(
        "--ab-prepare",
        metavar="CMD",
        default=None,
        help="with --ab: a shell command run in REF's worktree and in the working tree before "
        "timing, e.g. the export script that writes the --model file (default: none)",
    )
    gate.add_argument(
        "--model-change",
        choices=["refuse", "compare"],
        default=None,
        help="a user model whose sha256, width or estimator differs between the sides: refuse "
        "lists it as not comparable and exits 2 (the changed model is not judged), compare "
        "gates it marked 'model changed' (default: refuse for stored results, compare for "
        "--ab, whose point is a changed model)",
    )
    gate.add_argument("--rounds", type=int, default=100, help="ABBA rounds in all for --ab")
    gate.add_argument(
        "--pairs",
        type=int,
        default=10,
        help="fresh worker pairs the --ab rounds are spread over: each process has a speed "
        "bias of its own, which averages out over pairs",
    )
    gate.add_argument(
        "--threshold",
        type=_percent,
        default=0.05,
        help="smallest slowdown that counts as a regression, as 5%% or 0.05 (default: 5%%)",
    )
    gate.add_argument(
        "--alpha", type=float, default=0.01, help="significance level, Holm-corrected"
    )
    gate.add_argument(
        "--metric",
        choices=["median", "p90", "p99", "speedup"],
        default="median",
        help="what is compared; speedup: the in-run speed-up against scikit-learn (drift-robust)",
    )
    gate.add_argument("--strict", action="store_true", help="inconclusive benchmarks exit 3")
    gate.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the verdicts as JSON to this file (default: not written)",
    )
    gate.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="also write the table to this file (default: printed only)",
    )
    _add_include_interrupted(gate)
    add_selection_options(gate.add_argument)
    gate.set_defaults(handler=_cmd_gate)

    calibrate = command(
        "calibrate",
        help="A/A runs: measure this machine's noise floor and recommend a gate threshold",
        description="Benchmark the working tree against itself, interleaved exactly like gate "
        "--ab, --runs times: every change measured is noise. Print each benchmark's typical "
        "and worst A/A change and the recommended gate --threshold (the smallest at which no "
        "A/A comparison is called regressed or improved, plus a margin); store them in "
        "calibration.json.",
    )
    calibrate.add_argument("--runs", type=int, default=3, help="A/A runs")
    calibrate.add_argument("--rounds", type=int, default=100, help="ABBA rounds per run")
    calibrate.add_argument(
        "--pairs", type=int, default=10, help="fresh worker pairs per run, as in gate --ab"
    )
    calibrate.add_argument(
        "--alpha", type=float, default=0.01, help="significance level, as in gate"
    )
    calibrate.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="store calibration.json under RESULTS/<machine>/",
    )
    add_selection_options(calibrate.add_argument)
    calibrate.set_defaults(handler=_cmd_calibrate)

    check = command(
        "check",
        help="parity of your ONNX model against its reference (exit 1 on a discrepancy)",
        description="Run every applicable parity check with Hypothesis on a model pair and print "
        "the check, the measured error, the bound (and how it was derived) and the minimal "
        "failing input found. Known gaps and input bounds may also be declared under "
        "[tool.harness] in pyproject.toml (known-gaps, input-bound, trusted).",
    )
    check.add_argument("--model", type=Path, required=True, help="the .onnx model")
    check.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="the model it was exported from (.skops; .pkl/.joblib with --trust-pickle)",
    )
    check.add_argument(
        "--data",
        type=Path,
        default=None,
        help="representative rows: .npy, .csv (header optional) or .parquet "
        "(default: rows generated from the reference)",
    )
    check.add_argument(
        "--examples",
        choices=EXAMPLES,
        default=None,
        help="Hypothesis examples per check: dev 25, ci 40 (derandomized), nightly 500 "
        "(default: $HYPOTHESIS_PROFILE, else ci)",
    )
    check.add_argument("--profile", choices=EXAMPLES, **_deprecated("check", "--profile"))
    check.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="fixed relative score tolerance instead of the bound derived from the pair "
        "(default: the derived bound; a fixed tolerance leaves out the score_bias check)",
    )
    check.add_argument(
        "--atol",
        type=float,
        default=None,
        help="fixed absolute score tolerance instead of the bound derived from the pair "
        "(default: the derived bound)",
    )
    check.add_argument(
        "--known-gap",
        action="append",
        default=None,
        metavar="CHECK=REASON",
        help="a check expected to fail, with the reason (repeatable; strict: exit 1 once it "
        "passes) (default: none, plus [tool.harness] known-gaps)",
    )
    check.add_argument(
        "--input-bound",
        type=float,
        default=None,
        metavar="K",
        help="generated inputs stay within the data's range widened K times (default: "
        "unbounded, up to float32's limits)",
    )
    check.add_argument(
        "--trusted",
        action="append",
        default=None,
        metavar="TYPE",
        help="trust this type in the .skops reference (repeatable) (default: none beyond "
        "skops' and the harness's trusted types, plus [tool.harness] trusted)",
    )
    check.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a .pkl/.joblib reference (pickle runs code: only files you made)",
    )
    check.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the outcomes as JSON to this file (default: not written)",
    )
    check.set_defaults(handler=_cmd_check)

    history = command(
        "history",
        help="each benchmark across stored runs: table, plot, level changes and slow creep",
        description="Follow each benchmark through the stored runs (in run order) per machine "
        "and provider and write history.md and history.html: its medians, a plot, level "
        "changes (steps beyond 3 noise sigmas) and slow creep (a significant monotone trend "
        "whose total drift exceeds --threshold).",
    )
    history.add_argument("paths", nargs="+", type=Path, help="result folders or files")
    history.add_argument(
        "--out", type=Path, default=Path("out"), help="folder for history.md/.html"
    )
    history.add_argument(
        "--threshold",
        type=_percent,
        default=0.05,
        help="smallest total drift reported as creep, as 5%% or 0.05 (default: 5%%)",
    )
    history.add_argument(
        "--fail-on-flag",
        action="store_true",
        help="exit 1 when any benchmark is flagged (a level change or creep), for a nightly "
        "CI alarm; without it, flags are reported and the exit is 0",
    )
    _add_include_interrupted(history)
    history.set_defaults(handler=_cmd_history)
    return parser


def _add_include_interrupted(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--include-interrupted",
        action="store_true",
        help="also read runs stored marked interrupted (left out by default)",
    )


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


class _Refused(Exception):
    """A gate that cannot run: its message (if any: empty when already said) is printed, the
    exit code is 2."""


def _cmd_gate(args: argparse.Namespace) -> int:
    from harness.results.store import OutputError, ResultsError

    options: dict[str, Any] = {"metric": args.metric, "threshold": args.threshold}
    options["alpha"] = args.alpha
    if args.model_change:
        options["model_change"] = args.model_change
    try:
        _check_outputs((args.markdown, "--markdown"), (args.json, "--json"))
        report = _gate_ab(args, options) if args.ab else _gate_files(args, options)
    except (_Refused, OutputError, ResultsError, ValueError) as exc:
        if str(exc):
            print(f"harness gate: {exc}", file=sys.stderr)
        return 2
    table = report.to_markdown()
    print(table)
    written = _write_outputs(
        "gate", ((args.markdown, "--markdown", table), (args.json, "--json", report.to_json()))
    )
    return _gate_exit(report, written, strict=args.strict)


def _gate_ab(args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """``gate --ab REF``: time REF and the working tree interleaved, then gate."""
    from harness.timing.ab import ABError, ab_gate

    if args.baseline or args.candidate:
        raise _Refused("give BASELINE CANDIDATE or --ab REF, not both")
    try:
        selection = selection_from_options(namespace_get(args), project_settings())
        report, seconds, _ = ab_gate(
            args.ab,
            selection,
            rounds=args.rounds,
            pairs=args.pairs,
            prepare_cmd=args.ab_prepare,
            **options,
        )
    except (ABError, OptionError) as exc:
        raise _Refused(str(exc)) from exc
    print(f"(A/B measured and gated in {seconds:.0f} s)")
    return report


def _gate_files(args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """``gate BASELINE CANDIDATE``: gate stored results (files or folders)."""
    from harness.results.gate import gate

    if args.ab_prepare:
        raise _Refused("--ab-prepare applies to --ab REF only")
    if not (args.baseline and args.candidate):
        raise _Refused("needs BASELINE and CANDIDATE (or --ab REF)")
    sides = []
    for path in (args.baseline, args.candidate):
        results = _gate_side(path, args.include_interrupted)
        if results is None:
            raise _Refused("")  # _gate_side said why
        sides.append(results)
    baseline = _not_the_candidate(sides[0], sides[1], args.baseline)
    return gate(baseline, sides[1], **options)


def _not_the_candidate(baseline: list[Any], candidate: list[Any], where: Path) -> list[Any]:
    """The baseline's runs less those that are also candidate files (``harness gate
    results/<machine>/cpu/ new.json`` where the new run was stored in that folder), said in
    one line; _Refused where none is left: a run gated against itself cannot regress."""
    theirs = {r.path.resolve() for r in candidate}
    left_out = [r for r in baseline if r.path.resolve() in theirs]
    if not left_out:
        return baseline
    kept = [r for r in baseline if r.path.resolve() not in theirs]
    if not kept:
        same = (
            f"BASELINE and CANDIDATE are the same file ({baseline[0].path})"
            if len(baseline) == len(candidate) == 1
            else f"every baseline run in {where} is a candidate run too"
        )
        raise _Refused(
            f"{same}: a run gated against itself cannot regress; give earlier runs as "
            "BASELINE (a result file, or a folder of them)"
        )
    names = ", ".join(r.path.name for r in left_out)
    print(
        f"harness gate: left out of the baseline {len(left_out)} run(s) that are the "
        f"candidate ({names})",
        file=sys.stderr,
    )
    return kept


def _gate_exit(report: Any, written: bool, *, strict: bool) -> int:
    """0 pass, 1 a regression (it outranks an output that could not be written, said above),
    2 an output not written, nothing comparable, or a model under test that changed and was
    therefore not judged (unless --model-change compare), 3 inconclusive under --strict."""
    if report.unjudged:
        print(
            f"harness gate: the model under test changed in {len(report.unjudged)} "
            "benchmark(s) and was not judged (see 'Not comparable' above); to judge it: "
            f"{report.judge_it()}",
            file=sys.stderr,
        )
    if report.regressed:
        return 1
    if not written or report.unjudged:
        return 2
    if not report.rows:
        where = "'Not comparable'" if report.not_comparable else "'Only in the baseline/candidate'"
        print(
            f"harness gate: no benchmark is comparable in both runs (see {where} above)",
            file=sys.stderr,
        )
        return 2
    if report.inconclusive:
        print(
            f"harness gate: {len(report.inconclusive)} inconclusive (the table says why"
            + ("" if strict else "; --strict makes them exit 3")
            + ")",
            file=sys.stderr,
        )
    return 3 if strict and report.inconclusive else 0


def _gate_side(path: Path, include_interrupted: bool) -> list[Any] | None:
    """The results of one gate side; None (after saying why) if any file is malformed or
    none is left: the gate refuses to decide on part of the evidence."""
    from harness.results.store import scan_results

    if not path.exists():
        print(f"harness gate: no such file or folder: {path}", file=sys.stderr)
        return None
    scan = scan_results([path], include_interrupted=include_interrupted)
    for bad, reason in scan.skipped:
        print(f"harness gate: {bad}: {reason}", file=sys.stderr)
    if scan.skipped:
        return None
    if not scan.results:
        left_out = "; ".join(f"{p.name}: {why}" for p, why in scan.ignored)
        print(
            f"harness gate: no result files in {path}" + (f" ({left_out})" if left_out else ""),
            file=sys.stderr,
        )
        return None
    return scan.results


def _check_outputs(*outputs: tuple[Path | None, str]) -> None:
    """Every output file given, proved writable before any work (OutputError if not)."""
    from harness.results.store import check_output_file

    for path, flag in outputs:
        if path is not None:
            check_output_file(path, flag)


def _write_outputs(command: str, outputs: Sequence[tuple[Path | None, str, str]]) -> bool:
    """Write each (path, flag, text); where one fails after the work (a full disk), keep the
    text in a temporary file and say where. False if any failed."""
    from harness.results.store import keep_somewhere

    ok = True
    for path, flag, text in outputs:
        if path is None:
            continue
        try:
            with open(path, "w") as handle:
                handle.write(text)
        except OSError as exc:
            ok = False
            kept = keep_somewhere(text.encode(), f"harness-{command}")
            where = f"kept in {kept}" if kept else "printed above only (nowhere could keep it)"
            print(
                f"harness {command}: could not write {flag} {path} ({exc.strerror or exc}); "
                f"it is {where}",
                file=sys.stderr,
            )
    return ok


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from harness.timing.ab import ABError, calibrate

    if not _output_folder(args.results, "--results", "calibrate"):
        return 2  # calibration.json goes there after minutes of work: proved writable first
    try:
        summary = calibrate(
            selection_from_options(namespace_get(args)),
            runs=args.runs,
            rounds=args.rounds,
            pairs=args.pairs,
            alpha=args.alpha,
            results_dir=args.results,
        )
    except (ABError, OptionError, ValueError) as exc:
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
    from harness.checks.pair import CheckSetupError, check_pair, outcomes_table

    try:
        settings = project_settings()
        gaps, bound, trusted = pair_settings(
            settings,
            known_gaps=parse_known_gaps(args.known_gap),
            input_bound=args.input_bound,
            trusted=args.trusted or (),
        )
        if bound is not None and not bound > 0:
            raise OptionError(f"--input-bound must be > 0, got {bound}")
        _writable_file(args.json, "--json")
        outcomes = check_pair(
            args.model,
            args.reference,
            data=args.data,
            profile=args.examples,
            rtol=args.rtol,
            atol=args.atol,
            known_gaps=gaps,
            input_bound=bound,
            trusted=trusted,
            trust_pickle=args.trust_pickle,
            progress=lambda line: print(f"harness check: {line}", file=sys.stderr, flush=True),
        )
    except (CheckSetupError, OptionError) as exc:
        print(f"harness check: {exc}", file=sys.stderr)
        return 2
    print(outcomes_table(outcomes))
    stale = stale_gaps_advice(outcomes, settings, given="--known-gap")
    if stale is not None:
        print(f"harness check: {stale}", file=sys.stderr)
    payload = json.dumps([o.as_dict() for o in outcomes], indent=1, default=float)
    written = _write_outputs("check", ((args.json, "--json", payload),))
    if any(o.status in ("fail", "xpass", "error") for o in outcomes):
        return 1  # a finding outranks an output that could not be written (said above)
    return 0 if written else 2


def _writable_file(path: Path | None, flag: str) -> None:
    """Refuse an output file that cannot be written, before the work."""
    from harness.results.store import OutputError, check_output_file

    if path is None:
        return
    try:
        check_output_file(path, flag)
    except OutputError as exc:
        raise OptionError(str(exc)) from None


def _cmd_history(args: argparse.Namespace) -> int:
    from harness.reports.history import write_history
    from harness.results.history import build_series

    if not _output_folder(args.out, "--out", "history"):
        return 2
    results = _load_or_report(args.paths, "history", args.include_interrupted)
    if results is None:
        return 2
    if not results:
        print("harness history: no readable result files", file=sys.stderr)
        return 2
    series = build_series(results, threshold=args.threshold)
    try:
        md, page = write_history(series, args.out)
    except OSError as exc:
        return _unwritten("history", args.out, exc, "re-run `harness history` once it is fixed")
    flagged = [s for s in series if s.flags != "-"]
    print(
        f"{len(series)} benchmarks over {len(results)} runs; {len(flagged)} flagged -> {md}, {page}"
    )
    for s in flagged:
        print(f"  {s.machine}/{s.provider} {s.name}: {s.flags}")
    if flagged and args.fail_on_flag:
        print(
            f"harness history: {len(flagged)} benchmark(s) flagged (--fail-on-flag)",
            file=sys.stderr,
        )
        return 1
    return 0


def _output_folder(folder: Path, flag: str, command: str) -> bool:
    """Create ``folder`` and prove it writable before any work; False after saying why."""
    from harness.results.store import OutputError, check_output_folder

    try:
        check_output_folder(folder, flag)
    except OutputError as exc:
        print(f"harness {command}: {exc}", file=sys.stderr)
        return False
    return True


def _unwritten(command: str, where: Path, exc: OSError, what_to_do: str) -> int:
    """A report that could not be written after the work: nothing measured is lost."""
    print(
        f"harness {command}: could not write into {where} ({exc.strerror or exc}); the result "
        f"files are untouched: {what_to_do}",
        file=sys.stderr,
    )
    return 2


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.run import RunError, run

    try:
        selection = selection_from_options(namespace_get(args), project_settings())
    except OptionError as exc:
        print(f"harness run: {exc}", file=sys.stderr)
        return 2
    try:
        outcome = run(
            selection,
            out=args.out,
            results_dir=None if args.no_store else args.results,
            json_out=args.json,
            parity=not args.no_parity,
            verbose=args.verbose,
            cold_start=not args.no_cold_start,
        )
    except RunError as exc:
        print(f"harness run: {exc}", file=sys.stderr)
        return 2
    return outcome.exit_code


def _load_or_report(
    paths: list[Path], command: str, include_interrupted: bool = False
) -> list[Any] | None:
    """The readable results under ``paths``; each unreadable file skipped with one line that
    names it and the reason. None if a path does not exist."""
    from harness.results.store import scan_results

    missing = [p for p in paths if not p.exists()]
    if missing:
        print(
            f"harness {command}: no such file or folder: {', '.join(map(str, missing))}",
            file=sys.stderr,
        )
        return None
    scan = scan_results(paths, include_interrupted=include_interrupted)
    for path, reason in scan.skipped:
        print(f"harness {command}: skipped {path}: {reason}", file=sys.stderr)
    interrupted = [p for p, why in scan.ignored if why.startswith("an interrupted run")]
    if interrupted:
        names = ", ".join(p.name for p in interrupted[:3]) + (", ..." if interrupted[3:] else "")
        print(
            f"harness {command}: left out {len(interrupted)} interrupted run(s) ({names}); "
            "--include-interrupted reads them",
            file=sys.stderr,
        )
    return scan.results


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.reports.html import write_reports

    if not _output_folder(args.out, "--out", "report"):
        return 2
    results = _load_or_report(args.paths, "report", args.include_interrupted)
    if results is None:
        return 2
    if not results:
        print("harness report: no readable result files", file=sys.stderr)
        return 2
    try:
        md, page = write_reports(results, args.out, args.title)
    except OSError as exc:
        return _unwritten("report", args.out, exc, "re-run `harness report` once it is fixed")
    print(f"{len(results)} result files -> {md}, {page}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from harness.reports.compare import compare_markdown
    from harness.results.store import OutputError

    try:
        _check_outputs((args.out, "--out"))
    except OutputError as exc:
        print(f"harness compare: {exc}", file=sys.stderr)
        return 2
    a = _load_or_report([args.a], "compare", args.include_interrupted)
    b = _load_or_report([args.b], "compare", args.include_interrupted)
    if a is None or b is None:  # a path that does not exist: said above
        return 2
    sides = (("A", args.a, a), ("B", args.b, b))
    empty = [f"{side} ({path})" for side, path, got in sides if not got]
    if empty:
        print(
            f"harness compare: no readable result file in {' nor in '.join(empty)}; each side "
            "needs at least one",
            file=sys.stderr,
        )
        return 2
    table = compare_markdown(a, b)
    print(table)
    return 0 if _write_outputs("compare", ((args.out, "--out", table),)) else 2


def _cmd_providers(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from engines import probe_providers

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


#: Modules that come with an extra of the package, and how to install them.
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harness`` console script; see the module for the exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        print(f"harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a fault of the harness: one line, the evidence kept
        module = exc.name if isinstance(exc, ModuleNotFoundError) else None
        extra = EXTRAS.get((module or "").split(".")[0])
        if extra is not None:  # not a fault: an extra this command needs is not installed
            print(f"harness {args.command}: {module} is not installed: {extra}", file=sys.stderr)
            return 2
        if args.verbose:
            traceback.print_exc()
            where = "the traceback is above"
        else:
            with tempfile.NamedTemporaryFile(
                "w", prefix="harness-fault-", suffix=".log", delete=False
            ) as log:
                traceback.print_exc(file=log)
            where = f"traceback in {log.name}; --verbose prints it"
        print(
            f"harness {args.command}: internal error ({type(exc).__name__}: {exc}); {where}. "
            "This is a fault of the harness, not a finding about your model: please report it.",
            file=sys.stderr,
        )
        return 4
    return code
