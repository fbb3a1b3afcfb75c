"""Options declared once: for the pytest plugin (``--harness-*``) and the CLI, both ways.

``add_selection_options`` declares them, ``selection_from_options`` parses and validates
them, ``to_pytest_args`` turns a Selection back into plugin options for a nested pytest run.
``project_settings`` reads ``[tool.harness]`` from the user's pyproject.toml. No heavy
imports here: the plugin loads this module in every pytest run of the user's environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.cases.user import UserModel
from harness.timing.points import PROFILES, Selection, split_list

__all__ = [
    "EXTRAS",
    "OptionError",
    "add_cold_start_option",
    "add_selection_options",
    "namespace_get",
    "pair_settings",
    "parse_known_gaps",
    "project_settings",
    "selection_from_options",
    "stale_gaps_advice",
    "to_pytest_args",
]

#: Upper bounds that keep a typo from hanging the machine. MAX_THREADS is the engines' bound
#: (engines.config.MAX_THREADS; importing engines here would load onnxruntime for --help).
MAX_THREADS = max(16, 4 * (os.cpu_count() or 1))
MAX_BATCH = 10_000_000
_PROVIDERS = ("cpu", "cuda", "tensorrt")


#: The wheel's extra that brings each optional module, as the command that installs it.
EXTRAS = {
    "onnxruntime": 'pip install "onnx-anomaly-harness[cpu]" (or [gpu] for CUDA / TensorRT)',
    "pyod": 'pip install "onnx-anomaly-harness[pyod]"',
    "torch": 'pip install "onnx-anomaly-harness[torch]"',
    "onnxscript": 'pip install "onnx-anomaly-harness[torch]"',
    "pyarrow": 'pip install "onnx-anomaly-harness[parquet]"',
    "lightgbm": 'pip install "onnx-anomaly-harness[boost]"',
    "xgboost": 'pip install "onnx-anomaly-harness[boost]"',
    "onnxmltools": 'pip install "onnx-anomaly-harness[boost]"',
}


class OptionError(ValueError):
    """An option or a ``[tool.harness]`` value is invalid: a usage error (exit 2)."""


def add_selection_options(add: Any, prefix: str = "") -> None:
    """Declare the selection options once, for pytest (prefix 'harness-') and the CLI."""
    add(
        f"--{prefix}profile",
        choices=sorted(PROFILES),
        default="quick",
        help="how much to time: quick = batch 1/100/10000, 1 thread and all cores, best "
        "exporter per case; full = every exporter, more batches (default: quick)",
    )
    add(f"--{prefix}cases", default="", help="comma-separated zoo case names (default: all)")
    add(
        f"--{prefix}batch-sizes",
        default="",
        help="comma-separated batch sizes (default: the profile's)",
    )
    add(
        f"--{prefix}threads",
        default="",
        help="comma-separated intra-op thread counts (default: the profile's)",
    )
    add(
        f"--{prefix}providers",
        default="cpu",
        help="comma-separated: cpu, cuda, tensorrt (default: cpu)",
    )
    add(
        f"--{prefix}model",
        default=None,
        help="your own model instead of the zoo: .onnx (or .skops for a scikit-learn run) "
        "(default: none, the zoo)",
    )
    add(
        f"--{prefix}reference",
        default=None,
        help="the model --model was exported from (.skops; .pkl/.joblib with --trust-pickle) "
        "(default: none: --model is timed alone, its parity not checked)",
    )
    add(
        f"--{prefix}data",
        default=None,
        help="rows to score: .npy, .csv or .parquet (default: standard normal rows of the "
        "model's input width)",
    )
    add(
        f"--{prefix}n-features",
        type=int,
        default=None,
        help="--model input width when there is no --data and the model does not say "
        "(default: the model's or the data's)",
    )
    add(
        f"--{prefix}name",
        default=None,
        help="the benchmark name of --model (default: the model file's stem)",
    )
    add(
        f"--{prefix}trusted",
        action="append",
        default=None,
        metavar="TYPE",
        help="trust this type in a .skops reference (repeatable); see the refusal message "
        "(default: none beyond skops' and the harness's trusted types)",
    )
    add(
        f"--{prefix}trust-pickle",
        action="store_true",
        default=False,
        help="load a .pkl/.joblib reference (pickle runs code: only files you made)",
    )
    add(
        f"--{prefix}known-gap",
        action="append",
        default=None,
        metavar="CHECK=REASON",
        help="a parity check expected to fail, with the reason (repeatable; strict: it "
        "fails the run when it passes) (default: none, plus [tool.harness] known-gaps)",
    )
    add(
        f"--{prefix}input-bound",
        type=float,
        default=None,
        metavar="K",
        help="generated parity inputs stay within the data's range widened K times "
        "(default: unbounded, up to float32's limits)",
    )


def add_cold_start_option(add: Any, prefix: str = "") -> None:
    """Declare ``--no-cold-start`` once, for pytest (prefix 'harness-') and ``harness run``."""
    add(
        f"--{prefix}no-cold-start",
        action="store_true",
        default=False,
        help="do not measure each ONNX model's cold start (import, session creation, first "
        "call, memory) in a fresh process after the benchmarks",
    )


def _cli_flag(name: str) -> str:
    return f"--{name}"


def parse_known_gaps(
    items: list[str] | None, flag: Callable[[str], str] = _cli_flag
) -> dict[str, str]:
    """['score_close=reason', ...] -> {'score_close': 'reason'}. ``flag`` names an option in
    messages as the user spelled it (the plugin's are ``--harness-*``)."""
    gaps: dict[str, str] = {}
    for item in items or []:
        check, sep, reason = item.partition("=")
        if not sep or not check.strip() or not reason.strip():
            raise OptionError(f"{flag('known-gap')} expects CHECK=REASON, got {item!r}")
        gaps[check.strip()] = reason.strip()
    return gaps


def _ints(name: str, text: str | None, low: int, high: int) -> tuple[int, ...]:
    try:
        values = split_list(text, int)
    except ValueError:
        raise OptionError(f"{name} expects comma-separated integers, got {text!r}") from None
    for value in values:
        if not low <= value <= high:
            raise OptionError(f"{name}: {value} is outside [{low}, {high:,}]")
    return tuple(values)


def selection_from_options(
    get: Callable[[str], Any],
    settings: Mapping[str, Any] | None = None,
    flag: Callable[[str], str] = _cli_flag,
) -> Selection:
    """Build and validate a Selection from option values (``get(name)``, dashes as underscores).

    ``settings`` are ``[tool.harness]`` values; options given on the command line win.
    ``flag(name)`` names an option in messages (``--input-bound``; the plugin's
    ``--harness-input-bound``).
    """
    settings = settings or {}
    providers = split_list(get("providers")) or ("cpu",)
    unknown = [p for p in providers if p not in _PROVIDERS]
    if unknown:
        raise OptionError(f"unknown provider(s) {unknown}; known: {list(_PROVIDERS)}")
    cases = split_list(get("cases"))
    if cases:
        from harness.cases.zoo import cases as zoo_cases

        known = {c.name for c in zoo_cases("large")}
        missing = [c for c in cases if c not in known]
        if missing:
            raise OptionError(f"unknown case(s) {missing}; known: {sorted(known)}")
        for case in zoo_cases(names=list(cases)):
            if modules := case.missing():
                raise OptionError(
                    f"case {case.name} needs {', '.join(modules)}, not installed here: "
                    f"{EXTRAS.get(modules[0], 'pip install ' + modules[0])}"
                )
    model = get("model")
    user = None
    if model:
        gaps, bound, trusted = pair_settings(
            settings,
            known_gaps=parse_known_gaps(get("known_gap"), flag),
            input_bound=get("input_bound"),
            trusted=get("trusted") or (),
        )
        if bound is not None and not float(bound) > 0:
            raise OptionError(f"{flag('input-bound')} must be > 0, got {bound}")
        n_features = get("n_features")
        if n_features is not None and n_features < 1:
            raise OptionError(f"{flag('n-features')} must be >= 1, got {n_features}")
        user = UserModel(
            Path(model),
            Path(get("reference")) if get("reference") else None,
            Path(get("data")) if get("data") else None,
            n_features,
            name=get("name") or None,
            trusted=trusted,
            trust_pickle=bool(get("trust_pickle")),
            known_gaps=tuple(sorted(gaps.items())),
            input_bound=None if bound is None else float(bound),
        )
        if cases:
            raise OptionError(
                f"{flag('cases')} selects zoo cases; it cannot be combined with {flag('model')}"
            )
    elif get("reference") or get("data"):
        raise OptionError(
            f"{flag('reference')} and {flag('data')} describe {flag('model')}: "
            f"give {flag('model')} too"
        )
    return Selection(
        profile=get("profile"),
        cases=cases,
        batch_sizes=_ints(flag("batch-sizes"), get("batch_sizes"), 1, MAX_BATCH),
        threads=_ints(flag("threads"), get("threads"), 1, MAX_THREADS),
        providers=providers,
        user_model=user,
    )


def to_pytest_args(selection: Selection) -> list[str]:
    """The ``--harness-*`` options that reproduce ``selection`` in a nested pytest run."""
    args = ["--harness-profile", selection.profile]
    args += ["--harness-providers", ",".join(selection.providers)]
    if selection.cases:
        args += ["--harness-cases", ",".join(selection.cases)]
    if selection.batch_sizes:
        args += ["--harness-batch-sizes", ",".join(map(str, selection.batch_sizes))]
    if selection.threads:
        args += ["--harness-threads", ",".join(map(str, selection.threads))]
    user = selection.user_model
    if user is None:
        return args
    args += ["--harness-model", str(user.model)]
    for flag, value in (
        ("reference", user.reference),
        ("data", user.data),
        ("n-features", user.n_features),
        ("name", user.name),
        ("input-bound", user.input_bound),
    ):
        if value is not None:
            args += [f"--harness-{flag}", str(value)]
    for type_name in user.trusted:
        args += ["--harness-trusted", type_name]
    for check, reason in user.known_gaps:
        args += ["--harness-known-gap", f"{check}={reason}"]
    if user.trust_pickle:
        args.append("--harness-trust-pickle")
    return args


def namespace_get(args: argparse.Namespace) -> Callable[[str], Any]:
    """``get`` for selection_from_options over argparse results."""
    return lambda name: getattr(args, name, None)


def pair_settings(
    settings: Mapping[str, Any],
    *,
    known_gaps: Mapping[str, str],
    input_bound: float | None,
    trusted: Sequence[str],
) -> tuple[dict[str, str], float | None, tuple[str, ...]]:
    """(known gaps, input bound, trusted types) of a pair: ``[tool.harness]`` ``settings``
    with the given values on top (a gap given replaces the file's for its check, a bound
    given replaces the file's, trusted types add to the file's)."""
    gaps = {**dict(settings.get("known-gaps", {})), **dict(known_gaps)}
    bound = settings.get("input-bound") if input_bound is None else input_bound
    return gaps, bound, (*settings.get("trusted", ()), *trusted)


def stale_gaps_advice(
    outcomes: Sequence[Any], settings: Mapping[str, Any] | None = None, *, given: str
) -> str | None:
    """What to do about declared known gaps that no longer reproduce (their checks passed:
    xpass, a failure of the run), in one line; None when there are none. ``settings`` (from
    :func:`project_settings`) names the pyproject.toml; ``given`` the other way gaps are
    declared here (``--known-gap``, ``known_gaps=``)."""
    fixed = [str(o.check) for o in outcomes if o.status == "xpass"]
    if not fixed:
        return None
    where = (settings or {}).get("path") or "pyproject.toml"
    one = len(fixed) == 1
    return (
        f"known gap{'' if one else 's'} {', '.join(fixed)} no longer "
        f"reproduce{'s' if one else ''} (the check{'' if one else 's'} passed): remove "
        f"{'it' if one else 'them'} from [tool.harness.known-gaps] in {where}, or from {given}"
    )


def project_settings(start: Path | None = None) -> dict[str, Any]:
    """``[tool.harness]`` of the nearest pyproject.toml at or above ``start`` (default: cwd).

    Keys: ``known-gaps`` (table check -> reason), ``input-bound`` (number), ``trusted``
    (list of type names). Unknown keys are refused, so a typo is not silently ignored.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            break
    else:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise OptionError(f"cannot read {path}: {exc}") from exc
    table = data.get("tool", {}).get("harness", {})
    if not isinstance(table, dict):
        raise OptionError(f"{path}: [tool.harness] must be a table")
    known = {"known-gaps", "input-bound", "trusted"}
    extra = sorted(set(table) - known)
    if extra:
        raise OptionError(f"{path}: unknown [tool.harness] key(s) {extra}; known: {sorted(known)}")
    gaps = table.get("known-gaps", {})
    if not isinstance(gaps, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in gaps.items()
    ):
        raise OptionError(f"{path}: [tool.harness] known-gaps must map check names to reasons")
    bound = table.get("input-bound")
    if bound is not None and (not isinstance(bound, int | float) or bound <= 0):
        raise OptionError(f"{path}: [tool.harness] input-bound must be a number > 0")
    trusted = table.get("trusted", [])
    if not isinstance(trusted, list) or not all(isinstance(t, str) for t in trusted):
        raise OptionError(f"{path}: [tool.harness] trusted must be a list of type names")
    return {"known-gaps": gaps, "input-bound": bound, "trusted": trusted, "path": str(path)}
