"""A benchmark worker: prepares engines once, then times blocks on request.

``harness gate --ab`` starts one worker per side and drives them alternately, block by block
in ABBA order, so both sides see the same moment of the machine. A worker always runs the
installed harness (the coordinator's); what differs between the sides is the data it is
given: the user's model files as they are in that side's tree (and, in this project's own
repository, the tree's ``engines`` package, put first on the worker's path). Protocol: JSON
lines on stdin/stdout.

    -> {"points": [{"case", "engine", "provider", "batch_size", "threads"}, ...],
        "workdir": path, "cpu": core-or-null,
        "selection": {"profile": name, "user_model": null or {"model": path, "reference",
                      "data", "n_features", ...every UserModel field}}}
    <- {"ready": true, "points": {id: {"calls": m, "skip": reason-or-null, "info": {...}}},
        "harness": path of harness/__init__.py, "engines": path of engines/__init__.py,
        "engines_elsewhere": [engines modules loaded from outside that folder]}
    -> {"time": id}            <- {"seconds": per-call mean over m calls}
    -> {"time": id, "calls": k} <- {"seconds": per-call mean over k calls}
    -> {"quit": true}

A first message without ``"selection"`` (older coordinators) may carry ``"profile"``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.timing.points import Selection

__all__ = ["main", "selection_from_message", "selection_message"]

#: A timed block lasts at least this long: one sample averages m calls (less per-call noise).
BLOCK_SECONDS = 0.004

_PATH_FIELDS = ("model", "reference", "data")


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _json_safe(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_json_safe(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def selection_message(selection: Selection) -> dict[str, Any]:
    """What a worker needs of a selection: the profile and the user model (paths as strings)."""
    user = selection.user_model
    fields = (
        None
        if user is None
        else {f.name: _json_safe(getattr(user, f.name)) for f in dataclasses.fields(user)}
    )
    return {"profile": selection.profile, "user_model": fields}


def selection_from_message(message: dict[str, Any]) -> Selection:
    """The inverse of ``selection_message`` (fields this harness does not know are ignored)."""
    from harness.cases.user import UserModel
    from harness.timing.points import Selection

    raw = message.get("user_model")
    user = None
    if raw is not None:
        known = {f.name for f in dataclasses.fields(UserModel)}
        values: dict[str, Any] = {
            name: (
                (None if value is None else Path(value)) if name in _PATH_FIELDS else _tuples(value)
            )
            for name, value in raw.items()
            if name in known
        }
        user = UserModel(**values)
    return Selection(profile=message.get("profile", "quick"), user_model=user)


def _elsewhere(package: str) -> list[str]:
    """Modules of ``package`` loaded from outside its folder."""
    # An editable install's finder fills in the submodules a package lacks from its own tree.
    home = Path(sys.modules[package].__file__ or ".").resolve().parent
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith(f"{package}.")
        and getattr(module, "__file__", None)
        and not Path(module.__file__ or ".").resolve().is_relative_to(home)
    )


def main() -> int:
    import engines
    import harness
    from harness.timing.prepare import BenchPoint, Selection, prepare

    request = json.loads(sys.stdin.readline())
    cpu = request.get("cpu")
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        # Both sides on one core: on a VM each vCPU has its own steal time and neighbours.
        os.sched_setaffinity(0, {int(cpu)})
    if "selection" in request:
        selection = selection_from_message(request["selection"])
    else:
        selection = Selection(profile=request.get("profile", "quick"))
    workdir = Path(request.get("workdir", "."))
    runners: dict[str, tuple[Any, Any, int]] = {}
    summary: dict[str, dict[str, Any]] = {}
    for raw in request["points"]:
        point = BenchPoint(**raw)
        runner = prepare(point, selection, workdir)
        if runner.skip_reason or runner.fn is None:
            summary[point.id] = {"calls": 0, "skip": runner.skip_reason or "nothing to run"}
            continue
        X = runner.batch(point.batch_size)
        runner.fn(X)
        start = time.perf_counter()
        runner.fn(X)
        once = max(time.perf_counter() - start, 1e-7)
        calls = max(1, int(BLOCK_SECONDS / once))
        runners[point.id] = (runner.fn, X, calls)
        summary[point.id] = {"calls": calls, "skip": None, "info": runner.info}
    _reply(
        {
            "ready": True,
            "points": summary,
            "harness": harness.__file__,
            "engines": engines.__file__,
            "engines_elsewhere": _elsewhere("engines"),
        }
    )
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("quit"):
            break
        fn, X, calls = runners[message["time"]]
        calls = int(message.get("calls") or calls)
        start = time.perf_counter()
        for _ in range(calls):
            fn(X)
        _reply({"seconds": (time.perf_counter() - start) / calls})
    return 0


if __name__ == "__main__":
    sys.exit(main())
