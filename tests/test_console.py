"""The console: help texts of every command, the deprecated option name, and the progress
``harness run`` prints (plain lines off a terminal, estimates, no tables unless --verbose)."""

from __future__ import annotations

import argparse
import io
import re
import time
from pathlib import Path
from typing import Any

import pytest

import harness.checks.pair
from harness.checks.parity import PROFILES
from harness.cli import DEPRECATED_OPTIONS, EXAMPLES, build_parser, main
from harness.console import Progress, format_left, format_seconds, item_label, live_terminal
from harness.plugin import PytestProgress

# -- help texts ---------------------------------------------------------------------------


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"harness": parser, **sub.choices}


def test_every_command_has_a_help_line_and_a_description() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    listed = {action.dest: action.help for action in sub._choices_actions}
    assert set(listed) == set(sub.choices)
    for name, command in sub.choices.items():
        assert listed[name], f"harness --help lists {name} without a help line"
        assert command.description, f"harness {name} --help has no description"


@pytest.mark.parametrize("name", list(_commands()))
def test_every_option_has_help_and_shows_its_default(name: str) -> None:
    command = _commands()[name]
    formatter = command._get_formatter()
    for action in command._actions:
        shown = formatter._expand_help(action) if action.help else ""
        where = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert shown.strip(), f"{where} has no help text"
        takes_value = action.option_strings and action.nargs != 0 and not action.required
        if takes_value:
            assert "default" in shown, f"{where} does not show its default: {shown!r}"
    text = command.format_help()
    assert "default: None" not in text  # a default is said in words where it is no value
    if name not in ("harness", "providers"):  # those have flags only
        assert "(default: " in text


def test_one_option_name_means_one_thing() -> None:
    """--profile times quick/full in run and gate; check's example counts are --examples."""
    commands = _commands()
    for name in ("run", "gate", "calibrate"):
        (profile,) = [a for a in commands[name]._actions if "--profile" in a.option_strings]
        assert set(profile.choices or ()) == {"quick", "full"}
    (examples,) = [a for a in commands["check"]._actions if "--examples" in a.option_strings]
    assert list(examples.choices or ()) == list(EXAMPLES) == list(PROFILES)  # parity's own


def test_deprecated_profile_of_check_still_works_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def fake_check_pair(*args: Any, **kwargs: Any) -> list[Any]:
        seen.update(kwargs)  # no work: the options are what is tested
        return []

    monkeypatch.setattr(harness.checks.pair, "check_pair", fake_check_pair)
    pair = ["check", "--model", str(tmp_path / "m.onnx"), "--reference", str(tmp_path / "m.skops")]
    assert main([*pair, "--profile", "nightly"]) == 0
    assert seen["profile"] == "nightly"
    new, removed_in = DEPRECATED_OPTIONS["check --profile"]
    (note,) = capsys.readouterr().err.splitlines()  # one line
    assert note == (
        f"harness check: --profile is deprecated and goes in {removed_in}; use {new} "
        "(the same values)"
    )
    assert main([*pair, "--examples", "dev"]) == 0
    assert seen["profile"] == "dev"
    assert capsys.readouterr().err == ""
    assert main(pair) == 0
    assert seen["profile"] is None  # $HYPOTHESIS_PROFILE, else ci, decides
    with pytest.raises(SystemExit):
        main([*pair, "--profile", "quick"])  # the alias keeps --examples' choices
    assert "invalid choice: 'quick'" in capsys.readouterr().err


# -- progress -----------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_for_people() -> None:
    assert [format_seconds(s) for s in (0.4, 8, 60, 205, 3600 + 5 * 60)] == [
        "0 s",
        "8 s",
        "1 min",
        "3 min 25 s",
        "1 h 05 min",
    ]
    assert [format_left(s) for s in (0.5, 41, 100, 4300)] == [
        "~5 s left",
        "~45 s left",
        "~2 min left",
        "~1 h 12 min left",
    ]


def test_item_labels_name_the_case() -> None:
    bench = "bench/test_inference.py::test_score_samples[iforest-300[onnx-native-cpu]-b100-t1]"
    assert item_label(bench) == ("iforest-300", "iforest-300 [onnx-native-cpu] b100 t1")
    parity = "parity/test_parity.py::test_parity[lof-novelty[fallback-cpu]-label_exact]"
    assert item_label(parity) == ("lof-novelty", "lof-novelty [fallback-cpu] label_exact")
    gpu = "parity/test_parity.py::test_parity_on_gpu_providers[cuda]"
    named = "test_parity_on_gpu_providers[cuda]"
    assert item_label(gpu) == (named, named)
    assert item_label("t.py::test_plain") == ("test_plain", "test_plain")


def test_plain_lines_carry_the_case_and_an_estimate_and_stay_few() -> None:
    clock, out = _Clock(), io.StringIO()
    progress = Progress("parity", "checks", stream=out, live=False, clock=clock)
    assert not progress.live
    progress.begin(10)
    progress.working_on("a", "a [onnx-native-cpu] label_exact")  # the first item: a line
    clock.now += 2
    progress.advance()  # the first estimate: a line, 2 s per check x 9 left
    progress.working_on("a", "a [onnx-native-cpu] score_close")  # same case, soon: none
    clock.now += 1
    progress.working_on("b", "b [fallback-cpu] label_exact")  # new case within 3 s: none
    clock.now += 2
    progress.advance()
    progress.working_on("c", "c [onnx-native-cpu] label_exact")  # new case, 4 s later: a line
    for _ in range(5):  # the same case, 2 s each: a line once 10 s have passed
        clock.now += 2
        progress.advance()
        progress.working_on("c", "c [onnx-native-cpu] row_order")
    progress.finish("7 checks done in 15 s")
    lines = out.getvalue().splitlines()
    assert lines == [
        "  parity 0/10 checks, a [onnx-native-cpu] label_exact",
        "  parity 1/10 checks, a [onnx-native-cpu] label_exact, ~20 s left",
        "  parity 2/10 checks, c [onnx-native-cpu] label_exact, ~20 s left",
        "  parity 7/10 checks, c [onnx-native-cpu] row_order, ~10 s left",
        "  parity: 7 checks done in 15 s",
    ]
    assert "\r" not in out.getvalue()
    progress.advance()  # after the closing line: silent
    assert out.getvalue().splitlines()[-1] == "  parity: 7 checks done in 15 s"


def test_before_the_total_is_known_the_status_says_what_it_waits_for() -> None:
    clock, out = _Clock(), io.StringIO()
    progress = Progress("parity", "checks", stream=out, live=False, clock=clock)
    progress.opened = clock.now  # what open() records, without its ticker thread
    progress.waiting = "starting 2 workers"
    clock.now += 40
    assert progress.status() == "parity: starting 2 workers, 40 s so far"
    progress._update(tick=True)  # the ticker, 40 s after the start: a line
    progress._update(tick=True)  # and not again at once
    assert out.getvalue() == "  parity: starting 2 workers, 40 s so far\n"


def test_the_ticker_says_the_status_while_nothing_happens() -> None:
    out = io.StringIO()
    progress = Progress("parity", "checks", stream=out, live=False, every=0.05)
    progress.open("starting 2 workers")
    try:
        deadline = time.monotonic() + 10
        while "starting 2 workers" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        progress.close()
    assert out.getvalue().startswith("  parity: starting 2 workers, 0 s so far\n")


def test_a_terminal_gets_one_line_redrawn_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert live_terminal(Terminal())
    assert not live_terminal(io.StringIO())  # a pipe, a file: plain lines
    monkeypatch.setenv("CI", "true")
    assert not live_terminal(Terminal())  # CI logs keep no carriage returns
    monkeypatch.delenv("CI")
    monkeypatch.setenv("TERM", "dumb")
    assert not live_terminal(Terminal())

    clock, out = _Clock(), Terminal()
    progress = Progress("benchmarks", stream=out, live=True, clock=clock)
    progress.begin(2)
    progress.working_on("a", "a [sklearn] b1 t1")
    clock.now += 1
    progress.advance()
    progress.note("  a line of its own")
    progress.finish("2 done in 2 s")
    text = out.getvalue()
    assert text.startswith("\rbenchmarks 0/2, a [sklearn] b1 t1\x1b[K")
    assert "\rbenchmarks 1/2, a [sklearn] b1 t1, ~5 s left\x1b[K" in text
    assert "\r\x1b[K  a line of its own\n" in text  # the live line cleared first
    assert text.endswith("  benchmarks: 2 done in 2 s\n")


_SUITE = """
import pytest

@pytest.mark.parametrize("case", ["a[onnx-native-cpu]-ok", "b[fallback-cpu]-ok"])
def test_passes(case):
    pass

def test_skips():
    pytest.skip("not here")

@pytest.mark.xfail(strict=True, reason="a known gap")
def test_known_gap():
    assert False

def test_finding():
    assert 1 == 2, "score_close: 0.5 > bound 1e-6"
"""


def test_a_pytest_session_reports_progress_counts_and_failures_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "test_small_suite.py").write_text(_SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = io.StringIO()
    plugin = PytestProgress(Progress("parity", "checks", stream=out, live=False))
    args = [str(tmp_path / "test_small_suite.py"), "-c", str(tmp_path / "pytest.ini")]
    args += ["--rootdir", str(tmp_path), "-p", "no:cacheprovider", "-p", "no:xdist"]
    args += ["-p", "no:terminal", "--import-mode=importlib"]
    assert pytest.main(args, plugins=[plugin]) == pytest.ExitCode.TESTS_FAILED
    assert capsys.readouterr().out == ""  # pytest's own progress: not without --verbose
    assert plugin.counts == {"passed": 2, "skipped": 1, "xfailed": 1, "failed": 1}
    lines = out.getvalue().splitlines()
    assert lines[0] == "  parity 0/5 checks, a [onnx-native-cpu] ok"
    assert "  FAILED test_finding: AssertionError: score_close: 0.5 > bound 1e-6" in lines
    assert lines[-1].startswith("  parity: 5 checks done in ")
    assert lines[-1].endswith(": 2 passed, 1 failed, 1 xfailed, 1 skipped")


# -- harness run ----------------------------------------------------------------------------

_TABLE = "Name (time in"  # the header of pytest-benchmark's tables


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_harness_run_says_progress_and_prints_tables_only_when_verbose(
    verbose: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--cases", "iforest-100", "--batch-sizes", "1", "--threads", "1"]
    argv += ["--no-parity", "--no-store", "--no-cold-start", "--out", str(tmp_path / "out")]
    assert main([*(["--verbose"] if verbose else []), *argv]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out  # not a terminal: plain lines
    assert "\n  benchmarks: 2 done in " in out  # the phase's closing line, on a line of its own
    assert "  parity:  not run (--no-parity)" in out
    assert "  results: not stored (--no-store)" in out
    assert f"  report:  {tmp_path / 'out' / 'report.md'}" in out
    if verbose:  # pytest's own progress, one line per benchmark, and the tables
        assert "test_score_samples[iforest-100[sklearn]-b1-t1] PASSED [ 50%]" in out
        assert _TABLE in out
        assert "benchmarks 1/2" not in out
    else:  # the harness's: the case and an estimate
        assert re.search(r"\n  benchmarks 1/2, iforest-100 \[[\w-]+\] b1 t1, ~\d+ s left\n", out)
        assert _TABLE not in out
        assert "PASSED" not in out
        assert len(out.splitlines()) <= 12
